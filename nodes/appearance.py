"""CrossImageAttention: the layout of a structure image in the look of an appearance image.

After Cross-Image Attention (Alaluf et al., SIGGRAPH 2024); the controller is
:class:`..controllers.appearance.CrossImageController`.
"""
from __future__ import annotations

import torch

from ..controllers.appearance import ADAIN_MODES, BLOCKS, NODE, OUTPUT, CrossImageController
from ..core.inversion import RowPlan
from ..core.numbers import check_text
from ..host.conditioning import encode_rows
from ..host.inversion import install_guide, trajectory_of
from ..host.router import install
from ..host.tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt
from .common import CATEGORY, check_inputs, check_range, check_window, empty_latent, prompt_chunks, quote, resolution_levels

MAX_PROMPT_CHARS = 2000  # characters of each prompt
MAX_CHUNKS = 4  # 77-token chunks of a prompt
MIN_SIZE, MAX_SIZE, LATENT_FACTOR = 64, 8192, 8  # image side in pixels; the latent is 1/8 of it
ROW_ORDER = ("structure", "appearance", "output")
PICTURES = 2  # a LATENT input holds the structure picture, then the appearance picture


def _chunks(clip, name: str, prompt: str) -> int:
    """77-token chunks of ``prompt`` (input ``name``), after refusing deep brackets and bad weights."""
    n = prompt_chunks(NODE, name, clip, prompt)
    if n > MAX_CHUNKS:
        raise ValueError(f"{NODE}: input '{name}' needs {n} chunks of 77 tokens; use at most {MAX_CHUNKS}.")
    return n


def picture_rows_of(latent: dict) -> tuple[dict, RowPlan]:
    """The three sampler rows made from a LATENT of one or two pictures, and the rows' plan.

    Two pictures: structure, appearance, structure again (the output row), each with its
    picture's initial noise (``batch_index``) and noise mask. One picture: it is the structure
    row (and the output row's start); the appearance row is a new generation of its prompt, with
    noise of its own and no guide (a free row). The inversion's path is not copied (the node puts
    its own guide on the MODEL)."""
    samples = latent["samples"]
    if samples.shape[0] not in (1, PICTURES):
        raise ValueError(
            f"{NODE}: input 'latent' holds {samples.shape[0]} pictures; connect one (the structure picture; the "
            "appearance row then comes from its prompt) or two: the structure picture first, then the appearance "
            "picture (Batch Images before VAE Encode), inverted together by Diffusion Inversion.")
    index = list(latent.get("batch_index") or range(samples.shape[0]))
    if samples.shape[0] == 1:
        free = torch.zeros_like(samples[:1])  # a new generation: the sampler's noise on an empty latent
        rows = {"samples": torch.cat([samples[:1], free, samples[:1]]), "batch_index": [index[0], index[0] + 1, index[0]]}
        return rows, RowPlan((0, 0, 0), (0, 0, 0), frozenset({1}))
    order = [0, 1, 0]
    out = {"samples": samples[order].clone(), "batch_index": [index[i] for i in order]}
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor):
        out["noise_mask"] = mask[order] if mask.dim() >= 3 and mask.shape[0] == PICTURES else mask
    return out, RowPlan((0, 1, 0), (0, 1, 0))


def object_tokens(clip, structure: str, appearance: str, words: str) -> tuple[list[int], list[int]]:
    """Token positions of the object words in the structure and the appearance prompt: each entry
    of the comma-separated ``words`` counts for every one of the two prompts it is in; each prompt
    needs one."""
    entries = parse_word_list(words)
    if not entries:
        raise ValueError(f"{NODE}: input 'object_words' is empty; give the object's word in the structure and "
                         "in the appearance prompt, separated by commas (e.g. 'horse, zebra'), or set adain to "
                         "'whole latent' or 'off'.")
    rows: list[set[int]] = [set(), set()]
    for entry in entries:
        found = False
        for r, prompt in enumerate((structure, appearance)):
            try:
                rows[r].update(locate_words(clip, tokenize_prompt(clip, prompt), [entry], NODE, "object_words")[0])
                found = True
            except WordNotFoundError:
                pass
        if not found:
            raise ValueError(f"{NODE}: word '{entry}' (input 'object_words') is in neither the structure prompt "
                             f"(\"{quote(structure)}\") nor the appearance prompt (\"{quote(appearance)}\").")
    for r, name in enumerate(("structure", "appearance")):
        if not rows[r]:
            raise ValueError(f"{NODE}: input 'object_words' has no word of the {name} prompt; give the object's "
                             f"word in each prompt, separated by commas.")
    return sorted(rows[0]), sorted(rows[1])


class CrossImageAttention:
    """Structure, appearance and output rows sampled together; the output row's self-attention
    queries come from the structure row, its keys and values from the appearance row."""

    DESCRIPTION = (
        "Cross-Image Attention (Alaluf et al. 2024): draws the structure image's layout in the appearance "
        "image's look. Returns a MODEL, a positive CONDITIONING (one row per prompt: structure, appearance, "
        "output) and a LATENT of 3 rows; sample them with one KSampler (negative: any CONDITIONING) and "
        "decode: row 0 is the structure image, row 1 the appearance image, row 2 the output. In the step "
        "window [start, end) and the chosen self-attention layers, the output row takes its queries from "
        "the structure row and its keys and values from the appearance row; rows 0 and 1 are untouched "
        "(exactly a plain batched run of their prompts). The structure and output rows share the initial "
        "noise. contrast sharpens the swapped attention (a temperature on its logits; 1 = none). "
        "adain (from adain_start to the last step): the output's guided x0 prediction takes the appearance's mean and "
        "spread per channel in its object region (the paper; masks from the cross-attention of object_words), in "
        "the object and the background regions, in the whole latent, or off. "
        "With 'latent' from Diffusion Inversion holding one picture, it is the structure row (the appearance "
        "row comes from its prompt); holding two (structure, then appearance), both rows are your pictures. Sample with a deterministic sampler (euler, ddim; with an inverted "
        "latent: the inversion's sampler, scheduler, steps and denoise)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("model", "positive", "latent")
    OUTPUT_TOOLTIPS = (
        "The patched clone of the model: sample the LATENT with it.",
        "Positive conditioning, one row per latent row: structure, appearance, output prompt.",
        "Three rows: structure (0), appearance (1), output (2); rows 0 and 2 share the initial noise.",
    )
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: encodes the three prompts, one conditioning row each."}),
                "structure_prompt": ("STRING", {"multiline": True, "default": "a photo of a horse in a field", "tooltip": "Prompt of the structure row (row 0): its layout and shapes are kept in the output. At most 2000 characters, 4 chunks of 77 tokens."}),
                "appearance_prompt": ("STRING", {"multiline": True, "default": "a photo of a zebra", "tooltip": "Prompt of the appearance row (row 1): its colours and textures go to the output. At most 2000 characters, 4 chunks of 77 tokens."}),
                "contrast": ("FLOAT", {"default": 1.67, "min": 1.0, "max": 3.0, "step": 0.01, "tooltip": "Sharpens the swapped attention (1.0-3.0; 1 = none, 1.67 as in the paper): each place takes its look from fewer, better-matching places."}),
                "start": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Start of the step window, as a fraction of the sampling steps (0 = first step; the paper starts at 0.1)."}),
                "end": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "End of the step window, as a fraction of the steps (exclusive; 1 = to the last step; the paper ends at 0.7-0.9)."}),
                "resolutions": ("STRING", {"default": "1/1, 1/2", "tooltip": "'all', or fractions of the latent side to act on; default '1/1, 1/2' (the two finest levels, as the paper: 64x64 and 32x32 at 512 px)."}),
                "blocks": (list(BLOCKS), {"default": "decoder", "tooltip": "'decoder': only the UNet's up (output) blocks, as the paper; 'all': down, middle and up blocks at the chosen resolutions."}),
                "width": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image width in pixels (64-8192, multiple of 8); the latent is 1/8 of it. Unused when 'latent' is connected."}),
                "height": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image height in pixels (64-8192, multiple of 8); the latent is 1/8 of it. Unused when 'latent' is connected."}),
            },
            "optional": {
                "output_prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "Prompt of the output row (row 2); empty = the structure prompt (as the paper). At most 2000 characters."}),
                "latent": ("LATENT", {"tooltip": "Optional, from Diffusion Inversion: one picture (the structure row) or two (structure, then appearance; Batch Images before VAE Encode)."}),
                "adain": (list(ADAIN_MODES), {"default": "object", "tooltip": "AdaIN of the output latent to the appearance's: object region (the paper; needs object_words), object and background, whole latent, or off."}),
                "object_words": ("STRING", {"default": "horse, zebra", "tooltip": "The object's word in the structure and in the appearance prompt, comma-separated: their cross-attention gives the AdaIN masks."}),
                "adain_start": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Fraction of the steps (0-1) from which the AdaIN acts, to the last step (the paper: 0.2)."}),
            },
        }

    def build(self, model, clip, structure_prompt, appearance_prompt, contrast, start, end, resolutions, blocks,
              width, height, output_prompt="", latent=None, adain="off", object_words="", adain_start=0.2):
        """(patched MODEL, 3-row positive CONDITIONING, 3-row LATENT); see DESCRIPTION."""
        check_inputs(self, locals())
        window = check_window(NODE, start, end)
        levels = resolution_levels(NODE, resolutions, model)
        prompts = []
        for name, text in (("structure_prompt", structure_prompt), ("appearance_prompt", appearance_prompt),
                           ("output_prompt", output_prompt)):
            prompts.append(check_text(NODE, name, text, MAX_PROMPT_CHARS).strip())
        for name, text in zip(("structure_prompt", "appearance_prompt"), prompts):
            if not text:
                raise ValueError(f"{NODE}: input '{name}' is empty; describe the {name.split('_')[0]} image.")
        names = ("structure_prompt", "appearance_prompt", "output_prompt" if prompts[OUTPUT] else "structure_prompt")
        if not prompts[OUTPUT]:
            prompts[OUTPUT] = prompts[0]
        chunks = max(_chunks(clip, n, p) for n, p in zip(names, prompts))
        check_range(NODE, "adain_start", adain_start, 0.0, 1.0)
        words = check_text(NODE, "object_words", object_words, MAX_PROMPT_CHARS)
        tokens = object_tokens(clip, prompts[0], prompts[1], words) if adain in ADAIN_MODES[:2] else None

        trajectory = trajectory_of(latent, NODE)
        plan = None
        if latent is not None:
            rows, plan = picture_rows_of(latent)
        else:
            rows = {**empty_latent(len(ROW_ORDER), width, height), "batch_index": [0, 1, 0]}
        patched = install(model, CrossImageController(window, levels, blocks, float(contrast), NODE, adain,
                                                      float(adain_start), tokens), NODE)
        install_guide(patched, trajectory, plan if trajectory is not None else None, NODE)
        positive = encode_rows(clip, prompts, chunks)
        return (patched, positive, rows)


NODE_CLASS_MAPPINGS = {"CrossImageAttention": CrossImageAttention}
NODE_DISPLAY_NAME_MAPPINGS = {"CrossImageAttention": "Cross-Image Attention"}
