"""TokenShift (move words in one image) and FrameSequence (a clip of frames from one batch)."""
from __future__ import annotations

import torch

from ..controllers.frames import CROSS_FRAME_MODES, BackgroundLock, CrossFrameController
from ..controllers.shift import SELF_MODES, ShiftController
from ..core.phrase import BINDINGS
from ..core.motion import INTERPOLATIONS, SCHEDULES, chunk_rows, frame_offsets, schedule_shifts
from ..core.shift import FILLS
from ..host.router import find_router, install
from ..core.inversion import RowPlan
from ..host.inversion import LATENT_KEY, install_guide, trajectory_of
from .common import (CATEGORY, check_inputs, check_window, empty_latent, locate, other_words, picture_rows,
                     resolution_levels)

MAX_FRAMES = 1024
FRAME_SELF_MODES = ("free", "shift", "anchor")


REFERENCES = ("source row", "none")
MAX_BATCH = 64


def paired_latent(latent: dict, node: str = "TokenShift") -> dict:
    """The rows of ``latent`` twice: source rows, then their copies to move, each copy sharing its
    source's initial noise (``batch_index``) and noise mask."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4:
        raise ValueError(f"{node}: input 'latent' is not a LATENT with 'samples' [batch, channels, height, width].")
    rows = samples.shape[0]
    index = list(latent.get("batch_index") or range(rows))
    out = dict(latent, samples=torch.cat([samples, samples]), batch_index=index + index)
    mask = latent.get("noise_mask")
    if isinstance(mask, torch.Tensor) and mask.dim() >= 3 and mask.shape[0] == rows and rows > 1:
        out["noise_mask"] = torch.cat([mask, mask])
    return out


class TokenShift:
    """Move the objects of chosen words by shifting their cross-attention maps."""

    DESCRIPTION = (
        "Moves the objects named by 'words' by (dx, dy), fractions of the image width and height "
        "(+x right, +y down), by shifting those words' cross-attention maps in the conditional branch "
        "during the step window [start, end] (early steps decide the layout). Vacated cells fill with "
        "zeros or the edge value, never wrap. reference 'source row' (default): sample the node's LATENT "
        "(made from 'latent' if connected, else width x height x batch_size): it holds each image twice, "
        "the unedited source rows first, then the moved rows, which take their source's maps shifted "
        "and its self-attention keys, so the object lands at the offset and the rest stays as the "
        "source. The prompt's other words keep the source row's maps during the window, so other objects "
        "stay in place. Pick the moved rows with 'Latent From Batch' (batch_index = batch_size). "
        "reference 'none': every row of any latent shifts its own map, held at its first-step "
        "centroid plus the offset (cheaper, one row per image, but the move is approximate). "
        "Stacks with other attention nodes."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "LATENT")
    RETURN_NAMES = ("model", "latent")
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: used to find the words' tokens in the prompt."}),
                "prompt": ("STRING", {"multiline": True, "default": "a red circle", "tooltip": "The prompt given to the positive CLIP Text Encode (the same text)."}),
                "words": ("STRING", {"default": "circle", "tooltip": "Comma-separated words of the prompt (an entry may hold several words); every token of each word counts. These are moved."}),
                "dx": ("FLOAT", {"default": 0.25, "min": -1.0, "max": 1.0, "step": 0.01, "tooltip": "Horizontal move, as a fraction of the image width (-1..1; +0.25 = a quarter of the width to the right)."}),
                "dy": ("FLOAT", {"default": 0.0, "min": -1.0, "max": 1.0, "step": 0.01, "tooltip": "Vertical move, as a fraction of the image height (-1..1; + = down)."}),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Start of the step window, as a fraction of the sampling steps (0 = first step). Early steps decide the layout."}),
                "end": ("FLOAT", {"default": 0.4, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "End of the shift window, as a fraction of the steps (default 0.4); later steps refine details."}),
                "resolutions": ("STRING", {"default": "all", "tooltip": "'all', or fractions of the latent side to act on, e.g. '1/4, 1/8' (at 512 px: the 16x16 and 8x8 layers)."}),
                "fill": (list(FILLS), {"tooltip": "Cells vacated by the shift: 'zero' (no attention) or 'edge' (repeat the border). Never wraps."}),
                "self_attention": (list(SELF_MODES), {"tooltip": "'free': leave the object's self-attention alone; 'shift': move its self-attention too (stronger, smears more)."}),
            },
            "optional": {
                "reference": (list(REFERENCES), {"tooltip": "'source row': each image is sampled twice, unedited and moved, so the object lands at the offset; 'none': one row, cheaper, less exact."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Image width in pixels (64-8192, multiple of 8); the latent is 1/8 of it. Used when 'latent' is not connected."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Image height in pixels (64-8192, multiple of 8); the latent is 1/8 of it. Used when 'latent' is not connected."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": MAX_BATCH, "tooltip": "Images per run (1-64) when 'latent' is not connected; with 'source row' the LATENT has twice as many rows."}),
                "latent": ("LATENT", {"tooltip": "Optional LATENT to start from (img2img, inpainting, or Diffusion Inversion: the source rows are then your pictures); its rows are doubled for 'source row'."}),
                "bind": (list(BINDINGS), {"tooltip": "'noun phrase': each word moves with the words describing it in front of it ('red' in 'a red circle'); 'typed words': exactly the typed tokens."}),
            },
        }

    def patch(self, model, clip, prompt, words, dx, dy, start, end, resolutions, fill="zero", self_attention="free",
              reference="source row", width=512, height=512, batch_size=1, latent=None, bind="noun phrase"):
        check_inputs(self, locals())
        node = "TokenShift"
        window = check_window(node, start, end)
        levels = resolution_levels(node, resolutions, model)
        base = latent if latent is not None else empty_latent(batch_size, width, height)
        entries, groups = locate(node, clip, prompt, words, bind=bind)
        offset = [[float(dx), float(dy)]] * len(groups)
        trajectory = trajectory_of(latent, node)
        if reference == "none":
            if trajectory is not None:
                raise ValueError(f"{node}: input 'latent' is an inverted picture; use reference 'source row' (the "
                                 "picture is the source row, the moved row is the edit). 'none' has no row to keep.")
            ctrl = ShiftController(groups, torch.tensor([offset]), window, levels, fill, reference="own",
                                   self_mode=self_attention, node=node, names=entries)
            return (install(model, ctrl, node), base)
        out = paired_latent(base, node)
        out.pop(LATENT_KEY, None)
        shifts = torch.tensor([[[0.0, 0.0]] * len(groups), offset])
        ctrl = ShiftController(groups, shifts, window, levels, fill, reference="pairs", self_mode=self_attention,
                               node=node, names=entries, kept_tokens=other_words(clip, prompt, groups))
        m = install(model, ctrl, node)
        router = find_router(m)
        ctrl.release(router.controllers[:-1])
        if not any(isinstance(c, CrossFrameController) and c.layout == "pairs" for c in router.controllers[:-1]):
            # a second Token Shift on the same pairs (another word, another offset) shares the first's
            own = window if self_attention == "free" else None
            m = install(m, CrossFrameController("anchor", own, layout="pairs"), node)
        install_guide(m, trajectory, RowPlan.pairs(trajectory.rows) if trajectory else None, node)
        return (m, out)


class FrameSequence:
    """Turn a motion of words into N frames that one KSampler run samples as one batch."""

    DESCRIPTION = (
        "Builds a clip: a LATENT batch with one row per frame (all rows share the initial noise) and a "
        "MODEL that moves the words of each row along the motion. Connect both to one KSampler with the "
        "same prompt as positive conditioning, decode, then save with 'Save Motion Clip'. Temporal "
        "consistency: cross-frame self-attention to the anchor frame (frame 0) and an optional "
        "background lock; the prompt's other words keep frame 0's maps during the window, so other objects "
        "stay still. Frame 0 without shift is exactly the plain generation of the prompt and seed."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "LATENT")
    RETURN_NAMES = ("model", "latent")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: used to find the words' tokens in the prompt."}),
                "prompt": ("STRING", {"multiline": True, "default": "a red circle", "tooltip": "The prompt given to the positive CLIP Text Encode (the same text)."}),
                "words": ("STRING", {"default": "circle", "tooltip": "Comma-separated words of the prompt (an entry may hold several words); every token of each word counts. These move along the path."}),
                "frames": ("INT", {"default": 16, "min": 1, "max": MAX_FRAMES, "tooltip": "Number of frames (latent rows), 1-1024."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Image width in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": "Image height in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
                "dx": ("FLOAT", {"default": 0.3, "min": -1.0, "max": 1.0, "step": 0.01, "tooltip": "Move at the last frame, as a fraction of the image width (-1..1); the path is straight from 0 at frame 0."}),
                "dy": ("FLOAT", {"default": 0.0, "min": -1.0, "max": 1.0, "step": 0.01, "tooltip": "Move at the last frame, as a fraction of the image height (-1..1; + = down)."}),
                "keyframes": ("STRING", {"multiline": True, "default": "", "tooltip": "Optional JSON [[frame, dx, dy], ...] or {\"word\": [[frame, dx, dy], ...]}; replaces dx/dy. Empty = straight path."}),
                "interpolation": (list(INTERPOLATIONS), {"tooltip": "Between keyframes: 'linear' or 'ease-in-out'."}),
                "schedule": (list(SCHEDULES), {"tooltip": "'variation': frame k = frame 0's map shifted; 'incremental': frame k = frame k-1's map shifted one step (smoother, errors add up)."}),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Start of the step window, as a fraction of the sampling steps (0 = first step). Early steps decide the layout."}),
                "end": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "End of the shift window, as a fraction of the steps (default 0.5)."}),
                "resolutions": ("STRING", {"default": "all", "tooltip": "'all', or fractions of the latent side to act on, e.g. '1/4, 1/8' (at 512 px: the 16x16 and 8x8 layers)."}),
                "fill": (list(FILLS), {"tooltip": "Cells vacated by the shift: 'zero' (no attention) or 'edge' (repeat the border). Never wraps."}),
                "self_attention": (list(FRAME_SELF_MODES), {"tooltip": "'free': moving frames also attend to their own keys; 'anchor': only frame 0's; 'shift': also move the object's self-attention."}),
                "cross_frame": (list(CROSS_FRAME_MODES), {"tooltip": "Self-attention keys/values from frame 0 ('anchor'), frame 0 and the previous frame, or 'off'. Keeps frames consistent."}),
                "shared_noise": ("BOOLEAN", {"default": True, "tooltip": "Give every frame frame 0's initial noise (recommended for clips)."}),
                "background_lock": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "0-1: from 20% of the run, pull each frame's background towards frame 0's by this much (0 = off)."}),
                "chunk_size": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES, "tooltip": "Frames per run for long clips (0 = the whole clip at once)."}),
                "chunk_index": ("INT", {"default": 0, "min": 0, "max": MAX_FRAMES, "tooltip": "Which chunk this run makes (0 = first); later chunks start with frame 0 as anchor."}),
            },
            "optional": {
                "bind": (list(BINDINGS), {"tooltip": "'noun phrase': each word moves with the words describing it in front of it ('red' in 'a red circle'); 'typed words': exactly the typed tokens."}),
                "latent": ("LATENT", {"tooltip": "Optional: one picture's latent. From Diffusion Inversion, frame 0 is your picture and the clip moves its object; width and height are then the picture's."}),
            },
        }

    def build(self, model, clip, prompt, words, frames, width=512, height=512, dx=0.3, dy=0.0, keyframes="",
              interpolation="linear", schedule="variation", start=0.0, end=0.5, resolutions="all", fill="zero",
              self_attention="free", cross_frame="anchor", shared_noise=True, background_lock=0.0,
              chunk_size=0, chunk_index=0, bind="noun phrase", latent=None):
        check_inputs(self, locals())
        node = "FrameSequence"
        window = check_window(node, start, end)
        levels = resolution_levels(node, resolutions, model)
        entries, groups = locate(node, clip, prompt, words, bind=bind)
        try:
            offsets = frame_offsets(frames, entries, dx, dy, keyframes, interpolation)
        except ValueError as e:
            raise ValueError(f"{node}: input 'keyframes' / 'dx', 'dy': {e}") from None
        try:
            rows = chunk_rows(frames, chunk_size, chunk_index)
        except ValueError as e:
            raise ValueError(f"{node}: {e}") from None

        batch_offsets = offsets[rows]  # [rows, words, 2] relative to the source
        shifts = schedule_shifts(batch_offsets, schedule)
        reference = "anchor" if schedule == "variation" else "previous"
        shift = ShiftController(groups, shifts, window, levels, fill, reference=reference,
                                self_mode="shift" if self_attention == "shift" else "free", node=node, rows=len(rows),
                                names=entries, kept_tokens=other_words(clip, prompt, groups))
        m = install(model, shift, node)
        shift.release(find_router(m).controllers[:-1])
        moving = frozenset(r for r in range(len(rows)) if r > 0 or bool(shifts[0].abs().sum() > 0))
        if cross_frame != "off":
            own = window if self_attention == "free" else None
            m = install(m, CrossFrameController(cross_frame, own, moving), node)
        if background_lock > 0:
            rel = batch_offsets - batch_offsets[:1]
            m = install(m, BackgroundLock(groups, rel, background_lock, start=0.2), node)

        trajectory = trajectory_of(latent, node)
        install_guide(m, trajectory, RowPlan.one_source(len(rows)) if trajectory else None, node)
        if latent is not None:
            out = picture_rows(latent, len(rows), node)
            if not shared_noise:
                out["batch_index"] = [out["batch_index"][0] + r for r in rows]
            return (m, out)
        batch_index = [0] * len(rows) if shared_noise else list(rows)
        return (m, dict(empty_latent(len(rows), width, height), batch_index=batch_index))


NODE_CLASS_MAPPINGS = {"TokenShift": TokenShift, "FrameSequence": FrameSequence}
NODE_DISPLAY_NAME_MAPPINGS = {"TokenShift": "Token Shift", "FrameSequence": "Frame Sequence"}
