"""Cross-image attention (Alaluf et al., SIGGRAPH 2024): one image's layout in another's appearance.

Every conditioning chunk holds three latent rows: the structure row (0), the appearance row (1)
and the output row (2). In the chosen self-attention layers and steps the output row attends
with the structure row's queries to the appearance row's keys and values, so each place of the
structure image fetches the look of the matching place of the appearance image. Rows 0 and 1 are
never touched: they come out exactly as a plain batched run of the same rows.

The paper sharpens the swapped attention map (contrast ``beta``). The host's optimised attention
never forms the N x N map, so the contrast is a temperature on the logits instead: the output
row's queries are multiplied by ``beta``, i.e. ``softmax(beta * q k^T / sqrt(d))``. Like the
paper's ``(A - mean) * beta + mean`` it keeps the order of every row's weights, raises the large
ones and lowers the small ones (more for larger ``beta``); unlike it, the weights stay a
distribution (no clipping) and the sharpening is exponential rather than linear in the weights.
``beta = 1`` is no contrast.

The paper also applies AdaIN to the output latent w.r.t. the appearance latent from 20% of the
steps on (``masked_adain`` in its code, with object masks from a self-segmentation labelled by an
object noun's cross-attention; ``use_masked_adain=False`` is the whole latent). Here the masks
are the cross-attention maps of the object words (structure row: the structure's and output's
mask; appearance row: the appearance's), averaged over heads, chosen layers and the steps so far,
upsampled to the latent, divided by their maximum and ``> 0.5``; the AdaIN acts on the output row's
guided x0 prediction after every step of its window (post-CFG, so any sampler), which the final
latent of every built-in sampler is. Modes (:data:`ADAIN_MODES`): ``object`` (the paper: the
output's object region takes the mean and spread per channel of the appearance's object region),
``object and background`` (the background regions too; not in the paper), ``whole latent`` (the
paper without masks) and ``off``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.controller import AttnCall, Controller, RunInfo
from ..core.grid import level_grid
from ..core.maps import MapAccumulator
from .style import block_matches, channel_stats

STRUCTURE, APPEARANCE, OUTPUT = 0, 1, 2
ROWS = 3
BLOCKS = ("decoder", "all")
NODE = "CrossImageAttention"
ADAIN_MODES = ("object", "object and background", "whole latent", "off")
MASK_THRESHOLD = 0.5  # of the normalised word map
ADAIN_EPS = 1e-5


def region_adain(x: torch.Tensor, ref: torch.Tensor, x_mask: torch.Tensor | None = None,
                 ref_mask: torch.Tensor | None = None, eps: float = ADAIN_EPS) -> torch.Tensor:
    """``x`` ``[C, H, W]`` with each channel's mean and std inside ``x_mask`` (``[H, W]`` bool; None:
    everywhere) set to those of ``ref`` inside ``ref_mask``; outside ``x_mask`` unchanged. Float32."""
    xf, rf = x.float().flatten(1), ref.float().flatten(1)
    xm = None if x_mask is None else x_mask.flatten()
    rm = None if ref_mask is None else ref_mask.flatten()
    xs, rs = (xf if xm is None else xf[:, xm]), (rf if rm is None else rf[:, rm])
    (mx, sx), (mr, sr) = channel_stats(xs, 1, eps), channel_stats(rs, 1, eps)
    y = (xf - mx) / sx * sr + mr
    if xm is not None:
        y = torch.where(xm[None], y, xf)
    return y.reshape(x.shape).to(x.dtype)


def word_masks(maps: torch.Tensor, size: tuple[int, int], threshold: float = MASK_THRESHOLD) -> torch.Tensor:
    """Boolean masks ``[rows, H, W]`` from mean word maps ``[rows, h, w]``: upsampled to ``size``,
    divided by each map's maximum, ``> threshold``."""
    m = F.interpolate(maps.float()[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return m / m.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12) > threshold


def in_window(window: tuple[float, float], progress: float) -> bool:
    """True while ``start <= progress < end``; an end of 1 covers the last step too."""
    start, end = window
    return start <= progress and (progress < end or end >= 1.0)


class CrossImageController(Controller):
    """Output row: structure row's queries (times ``contrast``), appearance row's keys and values."""

    def __init__(self, window: tuple[float, float] = (0.0, 1.0), levels: frozenset[int] | None = None,
                 blocks: str = "decoder", contrast: float = 1.0, node: str = NODE, adain: str = "off",
                 adain_start: float = 0.2, word_tokens: tuple[list[int], list[int]] | None = None):
        """``window``: progress ``[start, end)`` of the run (fractions of the steps); ``levels``:
        attention levels acted on (latent side / 2**level; None = every level); ``blocks``:
        'decoder' (the UNet's output blocks, as the paper) or 'all'; ``contrast``: the
        temperature on the swapped attention's logits (1 = none); ``adain``: one of
        :data:`ADAIN_MODES`, from progress ``adain_start`` to the end; ``word_tokens``: the token
        positions of the object words in the structure and the appearance prompt (the masks of
        the masked modes)."""
        start, end = float(window[0]), float(window[1])
        if not (0.0 <= start <= end <= 1.0):
            raise ValueError(f"{node}: the step window must satisfy 0 <= start <= end <= 1, got ({start}, {end})")
        if blocks not in BLOCKS:
            raise ValueError(f"{node}: blocks must be one of {BLOCKS}, got {blocks!r}")
        if not (contrast > 0 and torch.isfinite(torch.tensor(float(contrast)))):
            raise ValueError(f"{node}: contrast must be a positive finite number, got {contrast!r}")
        self.window = (start, end)
        self.levels = None if levels is None else frozenset(levels)
        self.blocks = blocks
        self.contrast = float(contrast)
        self.node = node
        if adain not in ADAIN_MODES:
            raise ValueError(f"{node}: adain must be one of {ADAIN_MODES}, got {adain!r}")
        if adain in ADAIN_MODES[:2] and not (word_tokens and all(word_tokens)):
            raise ValueError(f"{node}: adain '{adain}' needs the object words' tokens in the structure and the "
                             "appearance prompt")
        self.adain = adain
        self.adain_start = float(adain_start)
        self.word_tokens = word_tokens
        self.reset()

    @property
    def masked(self) -> bool:
        return self.adain in ADAIN_MODES[:2]

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        self.calls = 0  # self-attention chunks edited in the current run
        self.acc: MapAccumulator | None = None  # the object words' maps of rows 0 and 1
        self.levels_seen: set[int] = set()
        self.adain_steps = 0  # x0 predictions the AdaIN changed in the current run
        self.final_masks: torch.Tensor | None = None  # [2, H, W] masks of the last AdaIN (masked modes)

    def acts_on(self, call: AttnCall) -> bool:
        """True if ``call`` is a self-attention of a chosen block and level inside the window."""
        if not block_matches(self.blocks, call.key):
            return False
        if self.levels is not None and call.level not in self.levels:
            return False
        return in_window(self.window, call.run.progress)

    def wants_self(self, call: AttnCall) -> bool:
        return self.acts_on(call)

    def self_qkv(self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        if call.rows != ROWS:
            raise ValueError(
                f"{self.node}: the sampler's latent has {call.rows} rows per prompt, but cross-image attention "
                f"needs exactly {ROWS} (structure, appearance, output). Sample the LATENT and the positive "
                "CONDITIONING this node returns.")
        q = torch.cat([q[:OUTPUT], q[STRUCTURE:STRUCTURE + 1] * self.contrast])
        k = torch.cat([k[:OUTPUT], k[APPEARANCE:APPEARANCE + 1]])
        v = torch.cat([v[:OUTPUT], v[APPEARANCE:APPEARANCE + 1]])
        call.edited.add(OUTPUT)
        self.calls += 1
        return q, k, v

    # -- AdaIN of the output latent (the paper's masked_adain) ------------------------------------
    def wants_cross(self, call: AttnCall) -> bool:
        if not self.masked or not call.is_cond:
            return False
        self.levels_seen.add(call.level)
        return self.levels is None or call.level in self.levels

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        if call.rows != ROWS:
            return probs
        mean = probs[:OUTPUT].mean(dim=1)  # [2, N, T]: structure and appearance rows
        t = mean.shape[-1]
        maps = mean.new_zeros(OUTPUT, mean.shape[1])
        for r, idx in enumerate(self.word_tokens):
            idx = [j for j in idx if j < t]
            if idx:
                maps[r] = mean[r][:, idx].sum(dim=-1)
        if self.acc is None:
            self.acc = MapAccumulator(level_grid(call.latent_hw, min(self.levels) if self.levels else 0))
        self.acc.add(maps.reshape(OUTPUT, 1, *call.grid))
        return probs

    def masks(self, size: tuple[int, int]) -> torch.Tensor | None:
        """``[2, H, W]`` object masks of the structure and the appearance row (maps so far), or None."""
        mean = None if self.acc is None else self.acc.mean()
        return None if mean is None else word_masks(mean[:, 0], size)

    def wants_denoised(self) -> bool:
        return self.adain != "off"

    def denoised(self, run: RunInfo, denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if run is None or not run.within((self.adain_start, 1.0)) or denoised.shape[0] != ROWS:
            return denoised
        out, app = denoised[OUTPUT], denoised[APPEARANCE]
        if self.adain == "whole latent":
            new = region_adain(out, app)
        else:
            m = self.masks(tuple(denoised.shape[-2:]))
            if m is None:
                if self.levels_seen and not (self.levels is None or self.levels & self.levels_seen):
                    raise ValueError(
                        f"{self.node}: input 'resolutions': this model has no cross-attention at the chosen "
                        "resolutions, so the object words have no map for the masked AdaIN; choose "
                        f"{', '.join(f'1/{2 ** lv}' for lv in sorted(self.levels_seen))} or adain 'whole latent'.")
                return denoised
            m = m.to(denoised.device)
            self.final_masks = m
            new = out
            pairs = [(m[STRUCTURE], m[APPEARANCE])]
            if self.adain == "object and background":
                pairs.append((~m[STRUCTURE], ~m[APPEARANCE]))
            for xm, rm in pairs:
                if int(xm.sum()) >= 2 and int(rm.sum()) >= 2:
                    new = region_adain(new, app, xm, rm)
        denoised = denoised.clone()
        denoised[OUTPUT] = new
        self.adain_steps += 1
        return denoised
