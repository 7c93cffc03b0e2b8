"""StyleAligned: a batch of prompts that share the style of its first row (or of a loaded picture)."""
from __future__ import annotations

from ..controllers.style import BLOCKS, SharedStyle, block_matches
from ..core.inversion import RowPlan
from ..core.numbers import check_text
from ..host.conditioning import encode_rows
from ..host.groupnorm import NormShare, install_norm_share
from ..host.inversion import install_guide, trajectory_of
from ..host.router import install
from .common import CATEGORY, check_inputs, check_window, empty_latent, prompt_chunks, resolution_levels

NODE = "StyleAligned"
MAX_PROMPT_CHARS = 2000  # characters of each line
MAX_ROWS = 64  # prompt lines: latent rows
MAX_CHUNKS = 4  # 77-token chunks of a line
MIN_SIZE, MAX_SIZE, LATENT_FACTOR = 64, 8192, 8
ADAIN = {"queries and keys": (True, True), "keys": (False, True), "off": (False, False)}


def prompt_lines(node: str, name: str, text: str, max_lines: int, max_chars: int) -> list[str]:
    """The non-empty lines of a one-prompt-per-line input, each checked for length; raises
    ValueError naming node and input when there are none or too many."""
    lines = [line.strip() for line in check_text(node, name, text, max_lines * (max_chars + 1)).splitlines()
             if line.strip()]
    if not lines:
        raise ValueError(f"{node}: input '{name}' is empty; give one prompt per line.")
    if len(lines) > max_lines:
        raise ValueError(f"{node}: input '{name}' has {len(lines)} lines; use at most {max_lines} (one prompt per line).")
    for i, line in enumerate(lines):
        if len(line) > max_chars:
            raise ValueError(f"{node}: input '{name}': line {i + 1} is {len(line)} characters long; use at most {max_chars}.")
    return lines


def line_chunks(node: str, name: str, clip, lines: list[str], max_chunks: int) -> int:
    """The 77-token chunk count every row is padded to (the longest line's), after refusing deep
    bracket nesting, bad token weights and lines longer than ``max_chunks`` chunks."""
    most = 1
    for i, line in enumerate(lines):
        n = prompt_chunks(node, name, clip, line)
        if n > max_chunks:
            raise ValueError(f"{node}: input '{name}': line {i + 1} needs {n} 77-token chunks; use at most {max_chunks}.")
        most = max(most, n)
    return most


class StyleAligned:
    """Rows that share the style of the reference row through their self-attention."""

    DESCRIPTION = (
        "Style Aligned (Hertz et al. 2024). One prompt per line, one latent row per line; every row shares "
        "the style of the first (the reference): in the chosen self-attention layers, each row's queries and "
        "keys are normalised to the reference's statistics (AdaIN) and it attends to the reference's keys and "
        "values as well as its own. The reference row is never changed: it comes out as in a plain batch of "
        "these prompts. strength blends the shared attention with the row's own (0 = the plain model). "
        "share_group_norm: every GroupNorm of the UNet also normalises each row with statistics taken jointly "
        "over the row and the reference (blended by strength). "
        "With 'latent' from Diffusion Inversion the reference is your picture (line 1 describes it) and the "
        "other rows are new pictures in its style; sample with the inversion's sampler, scheduler and steps. "
        "Returns a MODEL, a positive CONDITIONING (one row per line) and a LATENT: sample them with KSampler."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("model", "positive", "latent")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: encodes one conditioning row per prompt line."}),
                "prompts": ("STRING", {"multiline": True, "default": "a house, in watercolor painting style\na cat, in watercolor painting style\na car, in watercolor painting style", "tooltip": "One prompt per line (at most 64 lines, 2000 characters each); line 1 is the reference row whose style the others share."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "0-1: how much of each row's self-attention is the shared one (1 = Style Aligned, 0 = the plain model)."}),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Fraction of the steps (0-1) at which sharing starts."}),
                "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Fraction of the steps (0-1) at which sharing ends."}),
                "resolutions": ("STRING", {"default": "all", "tooltip": "'all', or fractions of the latent side whose self-attention is shared, e.g. '1/1, 1/2'."}),
                "blocks": (list(BLOCKS), {"tooltip": "Which UNet blocks share: all, decoder (output blocks: style and texture) or encoder (input and middle)."}),
                "adain": (list(ADAIN), {"tooltip": "Normalise each row's queries and keys to the reference's mean and spread per channel (the paper: both), only keys, or off."}),
                "width": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image width in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
                "height": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image height in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
            },
            "optional": {
                "latent": ("LATENT", {"tooltip": "Optional: one picture's latent from Diffusion Inversion; it is the reference row (line 1 describes it) and width and height are the picture's."}),
                "share_group_norm": ("BOOLEAN", {"default": False, "tooltip": "Each row's GroupNorm statistics taken jointly with the reference row's (the paper's share_group_norm), in the same steps, blocks and resolutions."}),
                "latent_adain": ("BOOLEAN", {"default": False, "tooltip": "Each row's predicted clean latent takes the reference's background colour, gradient and spread per channel at every step of the window (not in the paper)."}),
            },
        }

    def build(self, model, clip, prompts, strength, start, end, resolutions, blocks, adain, width, height, latent=None,
              share_group_norm=False, latent_adain=False):
        check_inputs(self, locals())
        window = check_window(NODE, start, end)
        lines = prompt_lines(NODE, "prompts", prompts, MAX_ROWS, MAX_PROMPT_CHARS)
        if len(lines) < 2:
            raise ValueError(f"{NODE}: input 'prompts' has one line; give the reference prompt on line 1 and at "
                             "least one more prompt, one per line.")
        levels = resolution_levels(NODE, resolutions, model)
        chunks = line_chunks(NODE, "prompts", clip, lines, MAX_CHUNKS)
        trajectory = trajectory_of(latent, NODE)
        if latent is not None and trajectory is None:
            raise ValueError(f"{NODE}: input 'latent' is not an inverted picture; connect the LATENT of Diffusion "
                             "Inversion (VAE Encode -> Diffusion Inversion), or leave 'latent' out.")
        if latent is not None and latent["samples"].shape[0] != 1:
            raise ValueError(f"{NODE}: input 'latent' holds {latent['samples'].shape[0]} pictures; connect one "
                             "(Latent From Batch picks one).")
        queries, keys = ADAIN[adain]
        share = NormShare(strength, levels, lambda site: block_matches(blocks, (site,))) if share_group_norm else None
        patched = install(model, SharedStyle(strength, window, levels, blocks, queries, keys, share, latent_adain), NODE)
        if share is not None:
            install_norm_share(patched, share)
        rows = len(lines)
        install_guide(patched, trajectory, RowPlan.reference(rows) if trajectory else None, NODE)
        if latent is not None:
            _, _, h, w = latent["samples"].shape
            width, height = w * LATENT_FACTOR, h * LATENT_FACTOR
        return (patched, encode_rows(clip, lines, chunks), empty_latent(rows, width, height))


NODE_CLASS_MAPPINGS = {"StyleAligned": StyleAligned}
NODE_DISPLAY_NAME_MAPPINGS = {"StyleAligned": "Style Aligned (shared style)"}
