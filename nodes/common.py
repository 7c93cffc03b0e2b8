"""Shared pieces of node definitions: category, input specs, validation with clear messages.

Every node checks what it received against its own ``INPUT_TYPES`` with :func:`check_inputs`,
optional inputs included: hosts before 2025 validate only required inputs, and a graph or a
direct call can hand a node anything. A bound is declared once, in ``INPUT_TYPES``, and
checked here.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable, Mapping

import torch

from ..core.grid import parse_levels
from ..core.numbers import check_prompt_depth, check_token_weights, finite_float, quote
from ..core.store import AttentionStore
from ..host.progress import Progress
from ..host.tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt, with_bound

CATEGORY = "attention_motion"
STORE_TYPE = "ATTENTION_STORE"

MAX_TEXT_LENGTH = 65536  # characters of any STRING input (a 5000-word prompt is about 60 000)
LISTED_ITEMS = 30  # words or choices listed in an error
LATENT_CHANNELS = 4  # SD1.x / SD2.x / SDXL latents


# -- messages ---------------------------------------------------------------------------------
def listing(items, limit: int = LISTED_ITEMS) -> str:
    """The first ``limit`` items, comma-separated, then how many more there are."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _shown(value: Any) -> str:
    """A value as an error quotes it: repr, cut, with its type when that is not obvious."""
    text = quote(repr(value), 60)
    if isinstance(value, (str, bool)) or value is None:
        return text
    return f"{text} ({type(value).__name__})"


def _span(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


# -- ranges -----------------------------------------------------------------------------------
def check_range(node: str, name: str, value: float, lo: float, hi: float) -> None:
    """Raise ValueError naming the node and input when ``value`` is outside [lo, hi] (or NaN)."""
    if not (lo <= value <= hi):
        raise ValueError(f"{node}: input '{name}' is {value}, but it must lie between {lo} and {hi}.")


def check_window(node: str, start: float, end: float, start_name: str = "start", end_name: str = "end") -> tuple[float, float]:
    """The step window [start, end]; each end's range is declared in INPUT_TYPES and checked by
    :func:`check_inputs`, this checks their order."""
    if start > end:
        raise ValueError(f"{node}: input '{start_name}' ({start}) is after '{end_name}' ({end}); use start <= end.")
    return float(start), float(end)


# -- inputs against INPUT_TYPES ---------------------------------------------------------------------
def _is_latent(v) -> bool:
    return isinstance(v, dict) and isinstance(v.get("samples"), torch.Tensor) and v["samples"].dim() == 4


def _is_conditioning(v) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(c, (list, tuple)) and len(c) >= 2 and isinstance(c[0], torch.Tensor) and isinstance(c[1], dict)
        for c in v)


OBJECT_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "CONDITIONING": (_is_conditioning, "a CONDITIONING (a CLIP Text Encode output)"),
    "MODEL": (lambda v: hasattr(v, "clone") and hasattr(v, "model_options"), "a MODEL (a model loader's MODEL output)"),
    "CLIP": (lambda v: hasattr(v, "tokenize") and hasattr(v, "tokenizer"), "a CLIP (a model loader's CLIP output)"),
    "LATENT": (_is_latent, "a LATENT with 'samples' [batch, channels, height, width]"),
    "IMAGE": (lambda v: isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[0] > 0 and v.shape[-1] in (1, 3, 4),
              "an IMAGE batch [images, height, width, channels]"),
    "MASK": (lambda v: isinstance(v, torch.Tensor) and v.dim() in (2, 3) and v.numel() > 0,
             "a MASK [masks, height, width]"),
    STORE_TYPE: (lambda v: isinstance(v, AttentionStore),
                 "an ATTENTION_STORE (the 'store' output of Attention Capture or Load Attention Store)"),
}


def _check_int(node: str, name: str, value, opts: dict) -> None:
    lo, hi, step = opts.get("min"), opts.get("max"), int(opts.get("step", 1) or 1)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{node}: input '{name}' is {_shown(value)}; use a whole number, {_span(lo, hi)}.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{node}: input '{name}' is {value}; use {_span(lo, hi)}.")
    if step > 1 and value % step:
        raise ValueError(f"{node}: input '{name}' is {value}; use a multiple of {step}, {_span(lo, hi)}.")


def _check_float(node: str, name: str, value, opts: dict) -> None:
    """Range only: a FLOAT's 'step' is the widget's increment; links and the host pass any value."""
    lo, hi = opts.get("min", -math.inf), opts.get("max", math.inf)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{node}: input '{name}' is {_shown(value)}; use a number between {lo} and {hi}.")
    if finite_float(value) is None:  # NaN, an infinity, or an int too large for a float (10**400)
        shown = value if isinstance(value, float) else _shown(value)
        raise ValueError(f"{node}: input '{name}' is {shown}; use a finite number between {lo} and {hi}.")
    check_range(node, name, value, lo, hi)


def _check_one(node: str, name: str, spec: tuple, value) -> None:
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if kind == "COMBO":
        kind = list(opts.get("options", ()))
    if isinstance(kind, (list, tuple)):
        if not isinstance(value, str) or value not in kind:
            raise ValueError(f"{node}: input '{name}' is {_shown(value)}; use one of {listing(kind)}.")
    elif kind == "INT":
        _check_int(node, name, value, opts)
    elif kind == "FLOAT":
        _check_float(node, name, value, opts)
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{node}: input '{name}' is {_shown(value)}; use true or false.")
    elif kind == "STRING":
        if not isinstance(value, str):
            raise ValueError(f"{node}: input '{name}' is {_shown(value)}; use text.")
        if len(value) > MAX_TEXT_LENGTH:
            raise ValueError(f"{node}: input '{name}' is {len(value)} characters long; use at most {MAX_TEXT_LENGTH}.")
    elif kind in OBJECT_TYPES:
        valid, what = OBJECT_TYPES[kind]
        if not valid(value):
            raise ValueError(f"{node}: input '{name}' is not {what} (got {_shown(value)}).")


def check_inputs(node: object, values: Mapping[str, Any]) -> None:
    """Check the inputs a node function received against the node's own ``INPUT_TYPES``.

    Call first thing in the node function as ``check_inputs(self, locals())``. Checks INT
    (whole number, min/max, step), FLOAT (finite number, min/max), BOOLEAN, STRING (text of at
    most MAX_TEXT_LENGTH characters), combo choices and the known object types (MODEL, CLIP,
    LATENT, IMAGE, MASK, CONDITIONING, ATTENTION_STORE); other types are the host's. An optional input left
    out (None) is fine; a required one is not. Raises ValueError naming the node, the input and
    what would be valid.
    """
    name = type(node).__name__
    declared = type(node).INPUT_TYPES()
    for section in ("required", "optional"):
        for key, spec in (declared.get(section) or {}).items():
            if key not in values:
                continue
            value = values[key]
            if value is None:
                if section == "required":
                    raise ValueError(f"{name}: required input '{key}' is missing; connect or set it.")
                continue
            _check_one(name, key, spec, value)


# -- prompts ------------------------------------------------------------------------------------
def prompt_chunks(node: str, name: str, clip, prompt: str) -> int:
    """How many 77-token chunks the host's tokenizer makes of ``prompt`` (input ``name``), after
    refusing bracket nesting and token weights that are not finite numbers in range."""
    check_prompt_depth(node, name, prompt)
    tokens = clip.tokenize(prompt)
    check_token_weights(node, name, tokens)
    return max(len(v) for v in tokens.values())


# -- resolutions --------------------------------------------------------------------------------
def _fractions(levels) -> str:
    return ", ".join(f"1/{2 ** lv}" for lv in sorted(levels))


def model_levels(model) -> frozenset[int] | None:
    """Levels (latent side / 2**level) at which the model's UNet has cross-attention, found by
    counting the downsamples before each transformer block; None for a model of another layout."""
    unet = getattr(getattr(model, "model", None), "diffusion_model", None)
    if unet is None or not all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        return None

    def has_cross(block) -> bool:
        return any(getattr(m, "attn2", None) is not None for m in block.modules())

    def holds(block, cls_name: str) -> bool:
        return any(type(m).__name__ == cls_name for m in block.children())

    levels, level = set(), 0
    for block in unet.input_blocks:
        level += holds(block, "Downsample")
        if has_cross(block):
            levels.add(level)
    if has_cross(unet.middle_block):
        levels.add(level)
    for block in unet.output_blocks:
        if has_cross(block):
            levels.add(level)
        level -= holds(block, "Upsample")
    return frozenset(levels) or None


def resolution_levels(node: str, spec: str, model=None, name: str = "resolutions") -> frozenset[int] | None:
    """Parse a resolutions input (None: every level); with ``model``, every level must be one
    at which the model has cross-attention."""
    try:
        levels = parse_levels(spec)
    except ValueError as e:
        raise ValueError(f"{node}: input '{name}': {e}") from None
    have = model_levels(model) if model is not None else None
    if levels is not None and have is not None and not levels <= have:
        raise ValueError(
            f"{node}: input '{name}' is {quote(repr(spec), 60)}, but the model has no cross-attention at "
            f"{_fractions(levels - have)} of the latent; it has {_fractions(have)}. Use those or 'all'.")
    return levels


# -- words ----------------------------------------------------------------------------------------
def locate(node: str, clip, prompt: str, words: str, input_name: str = "words",
           bind: str = "typed words") -> tuple[list[str], list[list[int]]]:
    """The entries of a comma-separated word list and their token positions in ``prompt``; with
    ``bind`` "noun phrase" each entry's positions include its modifiers' (``core.phrase``).

    Raises WordNotFoundError naming the node, the input and the missing word, quoting at most
    ``core.numbers.QUOTE_LENGTH`` characters of the prompt and LISTED_ITEMS of its words."""
    entries = parse_word_list(words)
    pt = tokenize_prompt(clip, prompt)
    try:
        groups = locate_words(clip, pt, entries, node, input_name)
    except WordNotFoundError:
        groups = None
    if groups is not None:
        if bind == "noun phrase":
            groups = with_bound(pt, groups)
        return entries, groups
    known = listing(dict.fromkeys(pt.words)) or "(none)"
    if not entries:
        raise WordNotFoundError(f"{node}: input '{input_name}' is empty. Give one or more words of the prompt, "
                                f"separated by commas (prompt words: {known}).") from None
    for entry in entries:
        try:
            locate_words(clip, pt, [entry], node, input_name)
        except WordNotFoundError:
            raise WordNotFoundError(
                f"{node}: word '{quote(entry, 60)}' (input '{input_name}') is not in the prompt \"{quote(prompt)}\". "
                f"Prompt words: {known}. Use words of the prompt, separated by commas.") from None
    raise AssertionError("locate_words failed for the list but not for any entry")


def other_words(clip, prompt: str, groups: list[list[int]]) -> list[int]:
    """The token positions of ``prompt``'s words outside ``groups`` (start, end and padding
    excluded): the words an edit of ``groups`` leaves alone."""
    chosen = {j for g in groups for j in g}
    pt = tokenize_prompt(clip, prompt)
    return sorted({p for positions in pt.word_positions for p in positions} - chosen)


# -- latents ------------------------------------------------------------------------------------
def empty_latent(rows: int, width: int, height: int) -> dict:
    """A zero LATENT of ``rows`` images of ``width`` x ``height`` pixels (sizes checked by the caller's
    INPUT_TYPES)."""
    return {"samples": torch.zeros(rows, LATENT_CHANNELS, height // 8, width // 8)}


def picture_rows(latent: dict, rows: int, node: str, input_name: str = "latent") -> dict:
    """``rows`` copies of the one picture in ``latent`` (an inverted or VAE-encoded LATENT), all
    with its initial noise (``batch_index``) and noise mask; the inversion's path is not copied
    (the node that made the rows puts its own guide on the MODEL)."""
    samples = latent["samples"]
    if samples.shape[0] != 1:
        raise ValueError(f"{node}: input '{input_name}' holds {samples.shape[0]} pictures; connect one "
                         "(Latent From Batch picks one).")
    index = list(latent.get("batch_index") or [0])[:1]
    out = {"samples": samples.repeat(rows, 1, 1, 1), "batch_index": index * rows}
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor):
        out["noise_mask"] = mask
    return out


# -- previews -----------------------------------------------------------------------------------
def save_preview_images(images, prefix: str) -> list[dict]:
    """Write ``[B, H, W, 3]`` images in [0, 1] as PNGs to ComfyUI's temp folder for the node's UI,
    advancing the host's progress bar by one per image."""
    import folder_paths
    import numpy as np
    from PIL import Image

    out_dir = folder_paths.get_temp_directory()
    full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, out_dir, images.shape[2], images.shape[1])
    os.makedirs(full, exist_ok=True)
    results = []
    progress = Progress(len(images))
    for i, img in enumerate(images):
        arr = (img.detach().cpu().float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        name = f"{filename}_{counter + i:05}_.png"
        Image.fromarray(arr).save(os.path.join(full, name), compress_level=1)
        results.append({"filename": name, "subfolder": subfolder, "type": "temp"})
        progress.advance()
    return results
