"""Region attention: inside each region, cross-attention also attends to the region's own description.

After Wu et al., "Harnessing the Spatial-Temporal Attention of Diffusion Models". For every
cross-attention call of the conditional branch, with ``g`` the output of attention to the global
prompt and ``l_i`` the output of attention to region i's description (its tokens projected by the
same layer), the output at a cell is::

    out = g + sum_i m_i * w_i * (l_i - g) / max(1, sum_i m_i)

``m_i`` is the share of the cell inside region i (box coverage or mask mean, in [0, 1]) and
``w_i`` the region's weight at this step (schedule times the region's own weight). Outside every
region ``out = g``: only the global prompt acts. Overlap rule: where regions overlap, their pulls
are averaged (normalised by the summed coverage), so no region wins by order and a cell fully
inside two regions at weight 1 takes the mean of the two local outputs. The negative (uncond)
branch is never changed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.boxes import WeightSchedule, box_coverage, mask_coverage, row_boxes
from ..core.controller import AttnCall, Controller


@dataclass
class Region:
    """One region: its description's tokens ``[E, C]`` and a box path ``[K, 4]`` or a mask ``[H, W]``."""

    prompt: str
    tokens: torch.Tensor
    path: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    weight: float = 1.0


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Plain softmax attention of ``[rows, N, heads*d]`` queries over ``[rows, T, heads*d]`` keys."""
    r, n, c = q.shape
    d = c // heads
    qh = q.reshape(r, n, heads, d).transpose(1, 2)
    kh = k.reshape(r, k.shape[1], heads, d).transpose(1, 2)
    vh = v.reshape(r, v.shape[1], heads, d).transpose(1, 2)
    return F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(r, n, c)


def mix_regions(g: torch.Tensor, local: list[torch.Tensor], cover: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """``g + sum_i m_i w_i (l_i - g) / max(1, sum_i m_i)`` with ``cover`` ``[rows, R, N]``."""
    norm = cover.sum(1).clamp(min=1.0).unsqueeze(-1)  # [rows, N, 1]
    delta = torch.zeros_like(g, dtype=torch.float32)
    for i, (l, w) in enumerate(zip(local, weights)):
        delta += (cover[:, i].unsqueeze(-1) * w) * (l.float() - g.float())
    return (g.float() + delta / norm).to(g.dtype)


class RegionController(Controller):
    """Mixes each region's local attention into the conditional cross-attention inside its region.

    ``frames`` > 0: box paths spread over that many frames, row r takes frame r; 0: paths spread over
    the rows of the batch. ``levels``: attention levels to act on (None: all).
    ``applied`` records the schedule weight of every step of the current run (``{step: weight}``).
    """

    def __init__(self, regions: list[Region], schedule: WeightSchedule, levels: frozenset[int] | None = None,
                 frames: int = 0):
        if not regions:
            raise ValueError("RegionController needs at least one region")
        self.regions = list(regions)
        self.schedule = schedule
        self.levels = levels
        self.frames = int(frames)
        self._tokens = torch.cat([r.tokens.reshape(-1, r.tokens.shape[-1]) for r in self.regions])
        self._spans = []
        pos = 0
        for r in self.regions:
            n = r.tokens.reshape(-1, r.tokens.shape[-1]).shape[0]
            self._spans.append((pos, pos + n))
            pos += n
        self._cover: dict = {}
        self.applied: dict[int, float] = {}

    def reset(self) -> None:
        self.applied = {}
        self._cover = {}

    def context_tokens(self) -> torch.Tensor:
        return self._tokens

    def step_weight(self, call: AttnCall) -> float:
        w = float(self.schedule.weight(call.run.step, call.run.progress))
        self.applied[call.run.step] = w
        return w

    def wants_cross_output(self, call: AttnCall) -> bool:
        if not call.is_cond or (self.levels is not None and call.level not in self.levels):
            return False
        return self.step_weight(call) != 0.0

    def coverage(self, call: AttnCall) -> torch.Tensor:
        """Share of every query cell inside each region: ``[rows, R, N]`` (cached per grid)."""
        key = (call.grid, call.latent_hw, call.level, call.rows)
        if key not in self._cover:
            scale = 2 ** call.level
            extent = (call.grid[0] * scale / call.latent_hw[0], call.grid[1] * scale / call.latent_hw[1])
            parts = []
            for r in self.regions:
                if r.mask is not None:
                    m = mask_coverage(r.mask, call.grid, extent).expand(call.rows, *call.grid)
                else:
                    m = box_coverage(row_boxes(r.path, call.rows, self.frames), call.grid, extent)
                parts.append(m.reshape(call.rows, -1))
            self._cover[key] = torch.stack(parts, 1)
        return self._cover[key]

    def cross_output(self, call, q, k, v, out, k_extra, v_extra):
        w = self.applied.get(call.run.step, self.schedule.weight(call.run.step, call.run.progress))
        weights = [w * r.weight for r in self.regions]
        cover = self.coverage(call).to(out.device)
        local = [attend(q, k_extra[:, a:b], v_extra[:, a:b], call.heads) if wt else out
                 for (a, b), wt in zip(self._spans, weights)]
        return mix_regions(out, local, cover, weights)
