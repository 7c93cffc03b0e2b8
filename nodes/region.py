"""RegionAttention (local descriptions in boxes, per-step weights) and RegionsFromAttention."""
from __future__ import annotations

import torch

from ..controllers.region import Region, RegionController
from ..core.boxes import (SCHEDULE_KINDS, RegionSpec, WeightSchedule, box_masks, boxes_from_maps,
                          parse_regions, parse_weight_list, regions_to_json)
from ..core.grid import parse_levels
from ..core.phrase import BINDINGS, is_function_word
from ..host.router import install
from ..host.tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt, with_bound
from .common import CATEGORY, STORE_TYPE, check_inputs, check_range

MAX_WEIGHT = 2.0
MAX_FRAMES = 1024
EXAMPLE_REGIONS = '[{"prompt": "a red circle", "box": [0.05, 0.3, 0.4, 0.4]},\n {"prompt": "a blue square", "box": [0.55, 0.3, 0.4, 0.4]}]'


def encode_region(clip, prompt: str) -> torch.Tensor:
    """The description's text tokens ``[77*k, C]`` as CLIP Text Encode makes them (SDXL: both encoders)."""
    cond = clip.encode_from_tokens(clip.tokenize(prompt))
    if isinstance(cond, (tuple, list)):
        cond = cond[0]
    return cond.reshape(-1, cond.shape[-1]).float().cpu()


def region_word_tokens(clip, pt, description: str) -> list[int]:
    """Positions in the global prompt of the description's content words (those the prompt has)."""
    out: list[int] = []
    for word in description.split():
        if is_function_word(word.lower().strip(".,;:!?")):
            continue
        try:
            out.extend(locate_words(clip, pt, [word], "RegionAttention", "prompt")[0])
        except WordNotFoundError:
            continue
    return sorted(set(out))


def build_schedule(node: str, schedule: str, weight: float, weight_end: float, weight_list: str) -> WeightSchedule:
    if schedule not in SCHEDULE_KINDS:
        raise ValueError(f"{node}: input 'schedule' is {schedule!r}; use one of {', '.join(SCHEDULE_KINDS)}.")
    check_range(node, "weight", weight, 0.0, MAX_WEIGHT)
    check_range(node, "weight_end", weight_end, 0.0, MAX_WEIGHT)
    values: tuple[float, ...] = ()
    if schedule == "list":
        try:
            values = parse_weight_list(weight_list)
        except ValueError as e:
            raise ValueError(f"{node}: input 'weight_list': {e}") from None
        if not values:
            raise ValueError(f"{node}: input 'weight_list' is empty; with schedule 'list' give one weight per "
                             "step, e.g. '1, 1, 0.8, 0.5, 0' (the last value holds for later steps).")
        for i, v in enumerate(values):
            check_range(node, f"weight_list value {i}", v, 0.0, MAX_WEIGHT)
    return WeightSchedule(schedule, float(weight), float(weight_end), values)


class RegionAttention:
    """Give objects of the prompt their own region and description, with a weight per step."""

    DESCRIPTION = (
        "Places objects in regions. Each region has a local description ('a red circle') and a box "
        "[x, y, w, h] (fractions of the image), a box path over the frames of a batch, or a mask. Inside a "
        "region the cross-attention output moves from the global prompt (the sampler's positive "
        "conditioning) towards attention to the region's description by the step's weight; outside every "
        "region only the global prompt acts. Overlapping regions are averaged. The negative prompt is not "
        "changed. Optional 'prompt' (the same global prompt): its tokens for each region's words are also "
        "given the object's footprint in the box (a disc at its centre), by 'confine' times the step's weight; "
        "on models that draw objects where their words' maps are this is what places them (use a decaying "
        "schedule). Stacks with the other attention nodes."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: encodes each region's description."}),
                "regions": ("STRING", {"multiline": True, "default": EXAMPLE_REGIONS, "tooltip": "JSON list of {\"prompt\": ..., \"box\": [x, y, w, h]} (fractions of the image from the top-left), or \"path\"/\"mask\" instead of \"box\"."}),
                "schedule": (list(SCHEDULE_KINDS), {"tooltip": "Weight per step: 'constant' (weight), 'linear'/'cosine' (weight -> weight_end), 'list' (weight_list)."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": MAX_WEIGHT, "step": 0.05, "tooltip": "0-2: how far attention inside a region moves to its description (0 = plain model, 1 = description alone)."}),
                "weight_end": ("FLOAT", {"default": 0.0, "min": 0.0, "max": MAX_WEIGHT, "step": 0.05, "tooltip": "0-2: weight at the last step for 'linear' and 'cosine'."}),
                "weight_list": ("STRING", {"default": "", "tooltip": "For 'list': one weight per step, e.g. '1, 1, 0.8, 0.5' (the last value holds); at most 20000 characters."}),
                "resolutions": ("STRING", {"default": "all", "tooltip": "'all', or fractions of the latent side to act on, e.g. '1/2, 1/4'."}),
                "frames": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES, "tooltip": "For 'path' regions: 0 spreads the path over the batch rows; N spreads it over N frames (row r = frame r)."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional MASK batch for regions that give \"mask\": index into it."}),
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "Optional: the same global prompt as the sampler's positive; also moves its words' maps into their boxes."}),
                "confine": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "0-1: how strongly the prompt's word maps are pulled into their boxes (needs 'prompt'; times the step's weight)."}),
                "bind": (list(BINDINGS), {"tooltip": "With 'prompt': 'noun phrase' also confines the prompt's words describing each region's words ('red' for 'apple'); 'typed words': only those words."}),
            },
        }

    def patch(self, model, clip, regions, schedule="constant", weight=1.0, weight_end=0.0, weight_list="",
              resolutions="all", frames=0, mask=None, prompt="", confine=1.0, bind="noun phrase"):
        check_inputs(self, locals())
        node = "RegionAttention"
        try:
            specs = parse_regions(regions)
        except ValueError as e:
            raise ValueError(f"{node}: input 'regions': {e}") from None
        if not specs:
            raise ValueError(f"{node}: input 'regions' is empty; give a JSON list such as {EXAMPLE_REGIONS}")
        sched = build_schedule(node, schedule, weight, weight_end, weight_list)
        try:
            levels = parse_levels(resolutions)
        except ValueError as e:
            raise ValueError(f"{node}: input 'resolutions': {e}") from None
        if isinstance(frames, bool) or not isinstance(frames, int) or not 0 <= frames <= MAX_FRAMES:
            raise ValueError(f"{node}: input 'frames' is {frames!r}; use 0 (spread box paths over the batch) "
                             f"or the number of frames (1 to {MAX_FRAMES}).")
        check_range(node, "confine", confine, 0.0, 1.0)
        built = [self._region(node, clip, s, mask) for s in specs]
        if (prompt or "").strip():
            pt = tokenize_prompt(clip, prompt)
            groups = [region_word_tokens(clip, pt, r.prompt) for r in built]
            if bind == "noun phrase":
                groups = with_bound(pt, groups)
            for r, g in zip(built, groups):
                r.prompt_tokens = g
        widths = {r.tokens.shape[-1] for r in built}
        if len(widths) != 1:
            raise ValueError(f"{node}: the regions encode to different widths {sorted(widths)}; use one CLIP.")
        return (install(model, RegionController(built, sched, levels, frames, float(confine)), node),)

    @staticmethod
    def _region(node: str, clip, spec: RegionSpec, mask) -> Region:
        m = None
        if spec.mask is not None:
            if mask is None:
                raise ValueError(f"{node}: region '{spec.prompt}' uses mask {spec.mask} but the 'mask' input is "
                                 "not connected; connect a MASK or give the region a 'box'.")
            masks = mask if mask.dim() == 3 else mask.reshape(-1, *mask.shape[-2:])
            if spec.mask >= masks.shape[0]:
                raise ValueError(f"{node}: region '{spec.prompt}' uses mask {spec.mask} but the 'mask' input "
                                 f"holds {masks.shape[0]} mask(s); use 0 to {masks.shape[0] - 1}.")
            m = masks[spec.mask].float().cpu()
        return Region(spec.prompt, encode_region(clip, spec.prompt), spec.path, m, spec.weight)


class RegionsFromAttention:
    """Boxes of the words of a captured attention store: a layout for RegionAttention."""

    DESCRIPTION = (
        "Turns each word's attention map of an ATTENTION_STORE into a box: the bounding box of the cells "
        "reaching 'threshold' times the map's maximum, grown by 'margin'. Outputs the regions as JSON for "
        "RegionAttention's 'regions' input (descriptions: one per word, comma-separated; empty = the words) "
        "and the boxes as masks."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "MASK")
    RETURN_NAMES = ("regions", "mask")
    FUNCTION = "boxes"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "store": (STORE_TYPE, {"tooltip": "An ATTENTION_STORE of an earlier run (Attention Capture or Load Attention Store)."}),
                "threshold": ("FLOAT", {"default": 0.5, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "0.01-1: a word's box covers the cells whose map reaches this fraction of its maximum."}),
                "margin": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 0.5, "step": 0.01, "tooltip": "0-0.5: grow each box by this fraction of the image on every side."}),
                "descriptions": ("STRING", {"default": "", "tooltip": "Optional region prompts, comma-separated, one per word of the store (empty = the words)."}),
                "row": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": "Which latent row of the store to read (0 = first)."}),
            }
        }

    def boxes(self, store, threshold=0.5, margin=0.02, descriptions="", row=0):
        check_inputs(self, locals())
        node = "RegionsFromAttention"
        check_range(node, "threshold", threshold, 0.01, 1.0)
        check_range(node, "margin", margin, 0.0, 0.5)
        maps = store.maps()
        if not 0 <= row < maps.shape[0]:
            raise ValueError(f"{node}: input 'row' is {row}; the store holds rows 0 to {maps.shape[0] - 1}.")
        texts = parse_word_list(descriptions)
        if texts and len(texts) != len(store.words):
            raise ValueError(f"{node}: input 'descriptions' gives {len(texts)} description(s) for the store's "
                             f"{len(store.words)} word(s) ({', '.join(store.words)}); give one per word, "
                             "comma-separated, or leave it empty to use the words.")
        try:
            boxes = boxes_from_maps(maps[row], threshold, margin)
        except ValueError as e:
            raise ValueError(f"{node}: {e} (words: {', '.join(store.words)})") from None
        texts = texts or list(store.words)
        specs = [RegionSpec(t, b.unsqueeze(0)) for t, b in zip(texts, boxes)]
        lat = store.latent_hw or store.grid
        masks = box_masks(boxes, int(lat[0]) * 8, int(lat[1]) * 8)
        return (regions_to_json(specs), masks)


NODE_CLASS_MAPPINGS = {"RegionAttention": RegionAttention, "RegionsFromAttention": RegionsFromAttention}
NODE_DISPLAY_NAME_MAPPINGS = {"RegionAttention": "Region Attention", "RegionsFromAttention": "Regions From Attention"}
