"""AttentionCapture and the nodes that view, save and load attention stores."""
from __future__ import annotations

import os

import torch

from ..controllers.capture import CaptureController
from ..core import render
from ..core.store import STORE_TENSORS, AttentionStore
from ..host.router import install
from .common import CATEGORY, STORE_TYPE, check_inputs, check_window, locate, quote, resolution_levels, save_preview_images

STORE_FOLDER = "attention_stores"


class AttentionCapture:
    """Record each word's cross-attention map while the returned MODEL samples."""

    DESCRIPTION = (
        "Records, for each word, its cross-attention map during sampling (conditional branch; mean over "
        "heads, layers and the steps in [start, end]). Sample with the MODEL output, then connect the "
        "sampler's LATENT to 'Attention Heatmaps' or 'Save Attention Store'."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", STORE_TYPE)
    RETURN_NAMES = ("model", "store")
    FUNCTION = "capture"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: used to find the words' tokens in the prompt."}),
                "prompt": ("STRING", {"multiline": True, "default": "a red circle", "tooltip": "The prompt given to the positive CLIP Text Encode (needed to find the words' tokens)."}),
                "words": ("STRING", {"default": "circle", "tooltip": "Comma-separated words of the prompt (an entry may hold several words); every token of each word counts. Each word gets its own map."}),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Start of the step window, as a fraction of the sampling steps (0 = first step). Maps are averaged from here."}),
                "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "End of the step window, as a fraction of the sampling steps (1 = last step)."}),
                "resolutions": ("STRING", {"default": "all", "tooltip": "'all', or fractions of the latent side to record, e.g. '1/4, 1/8'; each must be a level where the model has cross-attention."}),
            }
        }

    def capture(self, model, clip, prompt, words, start, end, resolutions):
        check_inputs(self, locals())
        node = "AttentionCapture"
        window = check_window(node, start, end)
        levels = resolution_levels(node, resolutions, model)
        entries, indices = locate(node, clip, prompt, words)
        store = AttentionStore(prompt=prompt, words=entries, token_indices=indices, step_range=window, levels=levels)
        return (install(model, CaptureController(store), node), store)


class AttentionHeatmaps:
    """Render a store's maps as heatmaps (over the image when given) and thresholded masks."""

    DESCRIPTION = (
        "Shows the maps of an attention store as heatmap images (one per row and word, in the order of "
        "the words) and as masks (map normalised to [0, 1], then >= threshold). Connect the sampler's "
        "LATENT so this node runs after sampling; connect the decoded IMAGE to overlay the heatmaps."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("heatmaps", "masks")
    FUNCTION = "render"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "store": (STORE_TYPE, {"tooltip": "An ATTENTION_STORE: the store output of Attention Capture or Load Attention Store."}),
                "latent": ("LATENT", {"tooltip": "The sampler's LATENT output: connect it so this node runs after sampling (its values are not used)."}),
                "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Mask cut-off on the map normalised to 0..1: cells >= threshold are 1 in the mask."}),
                "layout": (["overlay", "beside", "heatmap only"], {"tooltip": "'overlay' (heatmap over image), 'beside' (image and heatmap side by side) or 'heatmap only'."}),
            },
            "optional": {"image": ("IMAGE", {"tooltip": "Optional decoded IMAGE of the same run, for 'overlay' and 'beside' (1 image, or one per latent row)."})},
        }

    def render(self, store, latent, threshold, layout, image=None):
        check_inputs(self, locals())
        node = "AttentionHeatmaps"
        maps = store.maps().float().cpu()
        if image is not None:
            size = (int(image.shape[1]), int(image.shape[2]))
        else:
            lat = latent["samples"].shape
            size = (int(lat[-2]) * 8, int(lat[-1]) * 8)
        rows, words = maps.shape[:2]
        img = None if image is None else image.float().cpu()
        if img is not None and img.shape[0] not in (1, rows):
            raise ValueError(
                f"{node}: input 'image' has {img.shape[0]} images but the store has {rows} rows; "
                "connect the decoded image of the same sampler run."
            )
        heat = render.heatmaps(maps, size, img if layout == "overlay" else None)
        if layout == "beside" and img is not None:
            src = img.expand(rows, *img.shape[1:]) if img.shape[0] == 1 else img
            src = src[:, None].expand(rows, words, *src.shape[1:]).reshape(rows * words, *src.shape[1:])
            heat = torch.cat([src, heat], dim=2)
        mask = render.masks(maps, size, threshold)
        ui = {"images": save_preview_images(heat, "attention_heatmap")}
        return {"ui": ui, "result": (heat, mask)}


class SaveAttentionStore:
    """Write a store to a .safetensors file under ComfyUI's output folder."""

    DESCRIPTION = (
        "Saves the maps of an attention store, with prompt, words, token indices, grid and step range as "
        f"metadata, to output/{STORE_FOLDER}/<prefix>_NNNNN.safetensors. Connect the sampler's LATENT so "
        "it runs after sampling."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "store": (STORE_TYPE, {"tooltip": "An ATTENTION_STORE: the store output of Attention Capture or Load Attention Store."}),
                "latent": ("LATENT", {"tooltip": "The sampler's LATENT output: connect it so this node runs after sampling (its values are not used)."}),
                "filename_prefix": ("STRING", {"default": "attention", "tooltip": "File name start: writes output/attention_stores/<prefix>_NNNNN.safetensors."}),
            }
        }

    def save(self, store, latent, filename_prefix):
        import folder_paths
        from safetensors.torch import save_file

        check_inputs(self, locals())
        tensors, meta = store.to_tensors()
        out_dir = os.path.join(folder_paths.get_output_directory(), STORE_FOLDER)
        os.makedirs(out_dir, exist_ok=True)
        prefix = os.path.basename(filename_prefix.strip()) or "attention"
        existing = [f for f in os.listdir(out_dir) if f.startswith(prefix + "_") and f.endswith(".safetensors")]
        counter = 1 + max([_counter(f, prefix) for f in existing] or [0])
        name = f"{prefix}_{counter:05}.safetensors"
        save_file(tensors, os.path.join(out_dir, name), metadata=meta)
        return {"ui": {"stores": [{"filename": name, "subfolder": STORE_FOLDER, "type": "output"}]}}


def _counter(filename: str, prefix: str) -> int:
    digits = filename[len(prefix) + 1:].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _store_files() -> list[str]:
    import folder_paths

    out_dir = os.path.join(folder_paths.get_output_directory(), STORE_FOLDER)
    if not os.path.isdir(out_dir):
        return []
    return sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))


class LoadAttentionStore:
    """Read a store saved by 'Save Attention Store' so its maps can be reused in a later run."""

    DESCRIPTION = f"Loads an attention store from output/{STORE_FOLDER}/."
    CATEGORY = CATEGORY
    RETURN_TYPES = (STORE_TYPE,)
    RETURN_NAMES = ("store",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"file": (_store_files() or ["(no saved stores yet)"],
                                      {"tooltip": "A store saved by Save Attention Store (files of output/attention_stores/)."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, file):
        return _missing_store(file) or True

    @classmethod
    def IS_CHANGED(cls, file):
        import folder_paths

        path = os.path.join(folder_paths.get_output_directory(), STORE_FOLDER, file)
        return os.path.getmtime(path) if os.path.exists(path) else ""

    def load(self, file):
        import folder_paths
        from safetensors import safe_open

        node = "LoadAttentionStore"
        missing = _missing_store(file)
        if missing:
            raise FileNotFoundError(missing)
        check_inputs(self, locals())
        path = os.path.join(folder_paths.get_output_directory(), STORE_FOLDER, os.path.basename(file))
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys() if k in STORE_TENSORS or k.startswith("level_")}
        except Exception as e:  # noqa: BLE001 - the reader's errors (header, truncation, I/O) all mean one thing here
            raise ValueError(f"{node}: input 'file': {quote(file, 80)} is not a readable safetensors file "
                             f"({quote(str(e), 120)}); save the store again with Save Attention Store.") from None
        try:
            return (AttentionStore.from_tensors(tensors, meta),)
        except ValueError as e:
            raise ValueError(f"{node}: input 'file': {quote(file, 80)} is not a valid attention store ({e}); "
                             "save the store again with Save Attention Store.") from None


def _missing_store(file) -> str | None:
    """The error for a 'file' that is not a saved store, or None."""
    if not isinstance(file, str) or file not in _store_files():
        return (f"LoadAttentionStore: input 'file' is {quote(repr(file), 80)}, which is not in "
                f"output/{STORE_FOLDER}/; save a store first or pick one of the list.")
    return None


NODE_CLASS_MAPPINGS = {
    "AttentionCapture": AttentionCapture,
    "AttentionHeatmaps": AttentionHeatmaps,
    "SaveAttentionStore": SaveAttentionStore,
    "LoadAttentionStore": LoadAttentionStore,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "AttentionCapture": "Attention Capture",
    "AttentionHeatmaps": "Attention Heatmaps",
    "SaveAttentionStore": "Save Attention Store",
    "LoadAttentionStore": "Load Attention Store",
}
