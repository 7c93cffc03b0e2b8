"""LocalBlend (Prompt-to-Prompt): outside the edited words' region, target rows follow the source.

Mask (Hertz et al.): each row's cross-attention to its words at the chosen attention levels,
mean over heads and layers and the steps so far, summed over the words' tokens; max-pooled
(dilation), upsampled to the latent, divided by its maximum, ``> threshold``; union of the
source row's mask and each target row's. "Subtract" words remove their own (unpooled) region.

Given mask (``region``, e.g. a word's mask from SelfSegmentation): the region is that mask instead
(:func:`region_mask`: resampled to the latent by area, ``>= 0.5``, dilated by max-pooling
``dilation`` latent cells), the same for every row; no cross-attention map is computed.

Blending, from progress ``start`` on (``x_r <- x_src + mask_r * (x_r - x_src)`` for target rows):

* :meth:`LocalBlendController.model_input`: the latent rows the model sees at every evaluation,
  with the mask of the steps before;
* :meth:`LocalBlendController.denoised`: the guided x0 prediction after every evaluation, with
  the mask including the current step. The final latent of every built-in sampler is its last
  x0 prediction, so the final latent is blended with :attr:`final_mask`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.controller import AttnCall, Controller, RunInfo
from ..core.grid import level_grid
from ..core.maps import MapAccumulator

NODE = "LocalBlend"


def blend_masks(words: torch.Tensor, size: tuple[int, int], threshold: float, dilation: int,
                subtract: torch.Tensor | None = None) -> torch.Tensor:
    """Binary float masks ``[rows, H, W]`` from mean word maps ``[rows, h, w]`` (row 0 = source)."""

    def one(maps: torch.Tensor, pool: int) -> torch.Tensor:
        m = maps.float().unsqueeze(1)
        if pool > 0:
            m = F.max_pool2d(m, kernel_size=2 * pool + 1, stride=1, padding=pool)
        m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
        m = m / m.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        m = m > threshold
        return m | m[:1]

    mask = one(words, dilation)
    if subtract is not None:
        mask = mask & ~one(subtract, 0)
    return mask.float()


def region_mask(region: torch.Tensor, size: tuple[int, int], dilation: int) -> torch.Tensor:
    """Binary float mask ``[H, W]`` at latent ``size`` from a mask ``[h, w]`` (e.g. image size):
    area resampling, ``>= 0.5``, then dilation by max-pooling ``dilation`` cells."""
    m = F.interpolate(region.float()[None, None], size=tuple(size), mode="area")
    m = (m >= 0.5).float()
    if dilation > 0:
        m = F.max_pool2d(m, kernel_size=2 * dilation + 1, stride=1, padding=dilation)
    return m[0, 0]


def blend_rows(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x_r = x_0 + mask_r * (x_r - x_0)`` for rows r >= 1 of ``[rows, C, H, W]`` (binary mask: exact)."""
    inside = mask[1:, None] > 0.5
    return torch.cat([x[:1], torch.where(inside, x[1:], x[:1])])


class LocalBlendController(Controller):
    """Accumulates the words' maps; blends target rows towards the source outside the mask."""

    def __init__(self, rows: int, word_tokens: list[list[int]], subtract_tokens: list[list[int]] | None,
                 levels: frozenset[int], threshold: float, dilation: int, start: float,
                 region: torch.Tensor | None = None):
        """``region``: a fixed mask ``[h, w]`` used instead of the words' attention (None: attention)."""
        self.rows = rows
        self.region = None if region is None else region.detach().float().cpu()
        self.word_tokens = word_tokens
        self.subtract_tokens = subtract_tokens
        self.levels = frozenset(levels)
        self.threshold, self.dilation, self.start = float(threshold), int(dilation), float(start)
        self.reset()

    def __deepcopy__(self, memo):  # run state shared by the model clones of one graph node
        return self

    def reset(self) -> None:
        self.acc: MapAccumulator | None = None
        self.levels_seen: set[int] = set()
        self._mask_cache: tuple | None = None
        self.input_mask: torch.Tensor | None = None  # mask used at the last model input
        self.final_mask: torch.Tensor | None = None  # mask used at the last x0 prediction

    # -- maps ------------------------------------------------------------------------------
    def wants_cross(self, call: AttnCall) -> bool:
        if not call.is_cond or self.region is not None:
            return False
        self.levels_seen.add(call.level)
        return call.level in self.levels

    def _row_maps(self, probs: torch.Tensor, tokens: list[list[int]]) -> torch.Tensor:
        mean = probs.mean(dim=1)  # [rows, N, T]
        t = mean.shape[-1]
        out = mean.new_zeros(mean.shape[:2])
        for r, idx in enumerate(tokens):
            idx = [j for j in idx if j < t]
            if idx:
                out[r] = mean[r][:, idx].sum(dim=-1)
        return out

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        if call.rows != self.rows:
            raise ValueError(f"{NODE}: the latent batch has {call.rows} rows, the P2P edit below it {self.rows}; "
                             "sample the LATENT of P2PReplace.")
        h, w = call.grid
        maps = [self._row_maps(probs, self.word_tokens)]
        if self.subtract_tokens:
            maps.append(self._row_maps(probs, self.subtract_tokens))
        maps = torch.stack(maps, dim=1).reshape(call.rows, len(maps), h, w)
        if self.acc is None:
            self.acc = MapAccumulator(level_grid(call.latent_hw, min(self.levels)))
        self.acc.add(maps)
        self._mask_cache = None
        return probs

    def mask(self, size: tuple[int, int]) -> torch.Tensor | None:
        """The current mask ``[rows, H, W]`` (maps of every step so far, or the given region), or None
        before any map."""
        if self.region is not None:
            if self._mask_cache is None or self._mask_cache[0] != tuple(size):
                m = region_mask(self.region, size, self.dilation)
                self._mask_cache = (tuple(size), m[None].expand(self.rows, *m.shape).contiguous())
            return self._mask_cache[1]
        mean = None if self.acc is None else self.acc.mean()
        if mean is None:
            return None
        key = (tuple(size), self.acc.count)
        if self._mask_cache is None or self._mask_cache[0] != key:
            sub = mean[:, 1] if mean.shape[1] > 1 else None
            self._mask_cache = (key, blend_masks(mean[:, 0], size, self.threshold, self.dilation, sub))
        return self._mask_cache[1]

    def _active_mask(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor | None:
        if run is None or run.progress < self.start - 1e-9 or x.shape[0] != self.rows:
            return None
        m = self.mask(tuple(x.shape[-2:]))
        if m is None and self.levels_seen:
            seen = ", ".join(f"1/{2 ** lv}" for lv in sorted(self.levels_seen))
            raise ValueError(
                f"{NODE}: input 'resolution': this model has no cross-attention at "
                f"{', '.join(f'1/{2 ** lv}' for lv in sorted(self.levels))} of the latent at this size; "
                f"it has {seen}. Choose one of those."
            )
        return m

    # -- blending --------------------------------------------------------------------------
    def wants_model_input(self) -> bool:
        return True

    def model_input(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor:
        m = self._active_mask(run, x)
        if m is None:
            return x
        self.input_mask = m
        return blend_rows(x, m.to(x.device))

    def wants_denoised(self) -> bool:
        return True

    def denoised(self, run: RunInfo, denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m = self._active_mask(run, denoised)
        if m is None:
            return denoised
        self.final_mask = m
        return blend_rows(denoised, m.to(denoised.device))
