"""LocalBlend (stacked on P2PReplace) and the node that returns its final mask."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..controllers.blend import NODE, LocalBlendController
from ..controllers.p2p import P2PController
from ..core.grid import parse_levels
from ..host.router import find_router, install
from ..host.tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt
from .common import CATEGORY, check_inputs, check_range, quote

BLEND_TYPE = "LOCAL_BLEND"


def _row_tokens(clip, prompts: list[str], entries: list[str], input_name: str) -> list[list[int]]:
    """Token positions of ``entries`` in every row's prompt; each entry must occur in some row."""
    tokens = [tokenize_prompt(clip, p) for p in prompts]
    rows: list[set[int]] = [set() for _ in prompts]
    for entry in entries:
        found = False
        for r, pt in enumerate(tokens):
            try:
                rows[r].update(locate_words(clip, pt, [entry], NODE, input_name)[0])
                found = True
            except WordNotFoundError:
                pass
        if not found:
            listing = "; ".join(f"\"{quote(p)}\"" for p in prompts)
            raise ValueError(f"{NODE}: word '{entry}' (input '{input_name}') is in none of the P2P prompts "
                             f"({listing}). Use words of the source or target prompts, separated by commas.")
    return [sorted(r) for r in rows]


class LocalBlend:
    """Keep the target rows equal to the source outside the edited words' region."""

    DESCRIPTION = (
        "Stack on the MODEL of P2PReplace. Builds a mask from the cross-attention of 'words' (in the source "
        "and/or target prompts) at 'resolution' of the latent (default 1/4: the 16x16 layers at 512x512), "
        "averaged over the steps so far, dilated by max-pooling ('dilation' cells), upsampled, divided by its "
        "maximum and thresholded; union of the source's and each target's mask, minus the region of "
        "'subtract_words'. From 'start' (fraction of the steps) on, outside the mask every target row is set "
        "to the source row: in the latent the model sees at each step and in each step's x0 prediction, so "
        "the final latent's background is the source's. Connect the sampler's LATENT to 'Local Blend Mask' "
        "to get the final mask. Optional 'mask' (e.g. the word masks of Self Segmentation Masks): their union is "
        "the region instead of the attention map (resampled to the latent, >= 0.5, dilated by 'dilation' latent "
        "cells); 'words', 'subtract_words' and 'threshold' are then not used."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", BLEND_TYPE)
    RETURN_NAMES = ("model", "blend")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The MODEL output of P2P Replace (the blend acts on its target rows)."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: finds the words' tokens."}),
                "words": ("STRING", {"default": "cat, dog", "tooltip": "Comma-separated words (of the source and/or target prompts) whose region may change."}),
                "subtract_words": ("STRING", {"default": "", "tooltip": "Optional words whose region is kept from the source even inside the mask."}),
                "threshold": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "0-1: mask cut-off on the normalised attention map; lower = larger edited region."}),
                "dilation": ("INT", {"default": 1, "min": 0, "max": 8, "tooltip": "0-8 attention cells (latent cells with 'mask'): grow the mask by max-pooling."}),
                "start": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "From this fraction of the steps on, outside the mask the targets are set to the source."}),
                "resolution": ("STRING", {"default": "1/4", "tooltip": "Fraction of the latent side whose attention builds the mask (default '1/4': the 16x16 layers at 512 px)."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Optional: masks (e.g. from Self Segmentation Masks) whose union is the edited region instead of the attention mask; words and threshold are then unused."}),
            },
        }

    def build(self, model, clip, words, subtract_words, threshold, dilation, start, resolution, mask=None):
        check_inputs(self, locals())
        check_range(NODE, "threshold", threshold, 0.0, 1.0)
        check_range(NODE, "start", start, 0.0, 1.0)
        check_range(NODE, "dilation", dilation, 0, 64)
        region = None
        if mask is not None:
            masks = mask.reshape(-1, *mask.shape[-2:]).float().cpu()
            if not bool(torch.isfinite(masks).all()):
                raise ValueError(f"{NODE}: input 'mask' holds NaN or infinite values; connect a MASK with values 0 to 1.")
            region = (masks >= 0.5).any(dim=0).float()
        try:
            levels = parse_levels(resolution)
        except ValueError as e:
            raise ValueError(f"{NODE}: input 'resolution': {e}") from None
        if levels is None:
            raise ValueError(f"{NODE}: input 'resolution' must name levels such as '1/4' (or '1/4, 1/8'), not 'all'.")
        router = find_router(model)
        p2p = next((c for c in (router.controllers if router else ()) if isinstance(c, P2PController)), None)
        if p2p is None:
            raise ValueError(f"{NODE}: input 'model' has no Prompt-to-Prompt edit; connect the MODEL output of P2PReplace.")
        prompts = [p2p.prompts.source] + list(p2p.prompts.targets)
        if region is not None:
            blend = LocalBlendController(len(prompts), [[] for _ in prompts], None, frozenset({0}), threshold,
                                         dilation, start, region)
            return (install(model, blend, NODE), blend)
        entries = parse_word_list(words)
        if not entries:
            raise ValueError(f"{NODE}: input 'words' is empty; give the edited words (source and/or target), "
                             "separated by commas.")
        word_tokens = _row_tokens(clip, prompts, entries, "words")
        sub_entries = parse_word_list(subtract_words)
        sub_tokens = _row_tokens(clip, prompts, sub_entries, "subtract_words") if sub_entries else None
        blend = LocalBlendController(len(prompts), word_tokens, sub_tokens, levels, threshold, dilation, start)
        return (install(model, blend, NODE), blend)


class LocalBlendMask:
    """The final LocalBlend mask of the last sampling run, as a MASK."""

    DESCRIPTION = (
        "The mask LocalBlend applied at the last step (one per latent row: row 0 the source's own, then "
        "each target's union with the source), at the image size (latent x 8). Connect the sampler's LATENT "
        "so it runs after sampling."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    FUNCTION = "get"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "blend": (BLEND_TYPE, {"tooltip": "The LOCAL_BLEND output of Local Blend."}),
            "latent": ("LATENT", {"tooltip": "The sampler's LATENT output: connect it so this node runs after sampling (its values are not used)."}),
        }}

    def get(self, blend, latent):
        check_inputs(self, locals())
        mask = blend.final_mask
        if mask is None:
            raise ValueError("LocalBlendMask: no mask yet: sample with the MODEL of LocalBlend (its 'start' must be "
                             "reached) and connect that sampler's LATENT here.")
        h, w = latent["samples"].shape[-2:]
        out = F.interpolate(mask.float().cpu()[:, None], size=(int(h) * 8, int(w) * 8), mode="nearest")[:, 0]
        return (out.clamp(0, 1).to(torch.float32),)


NODE_CLASS_MAPPINGS = {"LocalBlend": LocalBlend, "LocalBlendMask": LocalBlendMask}
NODE_DISPLAY_NAME_MAPPINGS = {"LocalBlend": "Local Blend (P2P)", "LocalBlendMask": "Local Blend Mask"}
