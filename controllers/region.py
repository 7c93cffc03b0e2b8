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

Placement (``confine`` > 0, with the region's words located in the global prompt): the mix
above adds the description's values inside the box but leaves the global prompt's word maps
where the model put them, and a model that draws objects where their words' maps are then
draws them there. So the global prompt's own tokens for a region's words are also given the
object's expected footprint in the box (a disc of radius ``FOOTPRINT`` x the box's shorter side,
at its centre; a mask region: the mask), carrying ``PLACED_SHARE`` of each cell's attention
shared among the region's words; the other tokens keep their proportions. The edited
probabilities move toward that layout by ``confine`` times the step's weight (capped at 1), so
a decaying schedule places early and lets the model refine. A token named by several regions
takes the union of their footprints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    prompt_tokens: list[int] = field(default_factory=list)  # its words' positions in the global prompt


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
    for i, (li, w) in enumerate(zip(local, weights)):
        delta += (cover[:, i].unsqueeze(-1) * w) * (li.float() - g.float())
    return (g.float() + delta / norm).to(g.dtype)


FOOTPRINT = 0.35     # radius of an object's expected disc, as a share of its box's shorter side
PLACED_SHARE = 0.9   # attention a cell of the footprint gives the region's words together


def footprints(boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Discs ``[rows, h*w]`` in [0, 1] centred in ``[rows, 4]`` boxes, edges soft over one cell."""
    h, w = grid
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    cx = (boxes[:, 0] + boxes[:, 2] / 2)[:, None, None]
    cy = (boxes[:, 1] + boxes[:, 3] / 2)[:, None, None]
    radius = (FOOTPRINT * torch.minimum(boxes[:, 2], boxes[:, 3]))[:, None, None]
    dist = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
    return (1 - (dist - radius) * max(h, w)).clamp(0, 1).reshape(boxes.shape[0], -1)


def place_words(probs: torch.Tensor, targets: dict[int, torch.Tensor], strength: float) -> torch.Tensor:
    """Move probabilities ``[rows, heads, N, T]`` toward a layout: token t takes ``targets[t]``
    ``[rows, N]``, the other tokens share the rest in their own proportions; rows still sum to 1."""
    tokens = [t for t in targets if t < probs.shape[-1]]
    if not tokens or strength <= 0:
        return probs
    target = torch.zeros(probs.shape[0], 1, probs.shape[2], probs.shape[3], dtype=probs.dtype, device=probs.device)
    for t in tokens:
        target[:, 0, :, t] = targets[t].to(probs)
    free = torch.ones(probs.shape[-1], dtype=probs.dtype, device=probs.device)
    free[tokens] = 0
    others = probs * free
    others = others / others.sum(-1, keepdim=True).clamp_min(1e-12)
    placed = others * (1 - target.sum(-1, keepdim=True)) + target
    return probs + min(1.0, strength) * (placed - probs)


class RegionController(Controller):
    """Mixes each region's local attention into the conditional cross-attention inside its region.

    ``frames`` > 0: box paths spread over that many frames, row r takes frame r; 0: paths spread over
    the rows of the batch. ``levels``: attention levels to act on (None: all).
    ``applied`` records the schedule weight of every step of the current run (``{step: weight}``).
    """

    def __init__(self, regions: list[Region], schedule: WeightSchedule, levels: frozenset[int] | None = None,
                 frames: int = 0, confine: float = 0.0):
        if not regions:
            raise ValueError("RegionController needs at least one region")
        self.regions = list(regions)
        self.confine = float(confine)
        owners: dict[int, list[int]] = {}
        for i, r in enumerate(self.regions):
            for t in r.prompt_tokens:
                owners.setdefault(int(t), []).append(i)
        self._owners = owners  # global prompt token -> the regions that place it
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
        self._feet: dict = {}
        self.applied: dict[int, float] = {}

    def reset(self) -> None:
        self.applied = {}
        self._cover = {}
        self._feet = {}

    def context_tokens(self) -> torch.Tensor:
        return self._tokens

    def step_weight(self, call: AttnCall) -> float:
        w = float(self.schedule.weight(call.run.step, call.run.progress))
        self.applied[call.run.step] = w
        return w

    def _acts(self, call: AttnCall) -> bool:
        return call.is_cond and (self.levels is None or call.level in self.levels)

    def wants_cross(self, call: AttnCall) -> bool:
        return bool(self._owners) and self.confine > 0 and self._acts(call) and self.step_weight(call) != 0.0

    def footprint(self, call: AttnCall) -> torch.Tensor:
        """Each region's expected object footprint on this grid: ``[rows, R, N]`` (cached)."""
        key = (call.grid, call.latent_hw, call.level, call.rows)
        if key not in self._feet:
            cover = self.coverage(call)
            parts = [cover[:, i] if r.mask is not None else footprints(row_boxes(r.path, call.rows, self.frames), call.grid)
                     for i, r in enumerate(self.regions)]
            self._feet[key] = torch.stack(parts, 1)
        return self._feet[key]

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        w = self.applied.get(call.run.step, self.schedule.weight(call.run.step, call.run.progress))
        feet = self.footprint(call)
        targets = {}
        for t, owners in self._owners.items():
            words = max(len(self.regions[i].prompt_tokens) for i in owners)
            targets[t] = PLACED_SHARE / words * feet[:, owners].amax(dim=1)
        call.edited.update(range(call.rows))
        return place_words(probs, targets, self.confine * w)

    def wants_cross_output(self, call: AttnCall) -> bool:
        return self._acts(call) and self.step_weight(call) != 0.0

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
