"""Cross-attention maps: per-word maps from attention probabilities and their running means."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def word_maps(probs: torch.Tensor, token_groups: list[list[int]], grid: tuple[int, int]) -> torch.Tensor:
    """Per-word maps ``[rows, words, h, w]`` from probabilities ``[rows, heads, N, T]``.

    A word's map is the mean over heads of the mean over the word's tokens of each query's
    attention to them. Token indices beyond T (a shorter context) are ignored.
    """
    rows, _, n, t = probs.shape
    h, w = grid
    if h * w != n:
        raise ValueError(f"grid {grid} does not hold {n} queries")
    groups = [[j for j in g if j < t] for g in token_groups]
    flat = sorted({j for g in groups for j in g})
    out = probs.new_zeros(rows, len(groups), n)
    if flat:
        where = {j: i for i, j in enumerate(flat)}
        cols = probs[..., flat].mean(dim=1)  # [rows, N, len(flat)]: only the needed tokens
        for i, g in enumerate(groups):
            if g:
                out[:, i] = cols[..., [where[j] for j in g]].mean(dim=-1)
    return out.reshape(rows, len(groups), h, w)


def resample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample ``[..., h, w]`` maps to ``size``: area when shrinking, bilinear when growing."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    if size[0] <= maps.shape[-2] and size[1] <= maps.shape[-1]:
        out = F.adaptive_avg_pool2d(flat, size)
    else:
        out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size).to(maps.dtype)


class MapAccumulator:
    """Running mean of maps on a fixed grid; memory is one map set, whatever the number of adds."""

    def __init__(self, grid: tuple[int, int]):
        self.grid = tuple(grid)
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, maps: torch.Tensor) -> None:
        """Add ``[rows, words, h, w]`` maps, resampled to this accumulator's grid."""
        maps = resample(maps.detach().float(), self.grid)
        if self.total is None or self.total.shape != maps.shape:
            self.total = torch.zeros_like(maps)
            self.count = 0
        self.total += maps
        self.count += 1

    def mean(self) -> torch.Tensor | None:
        """The mean of everything added, or None when nothing was added."""
        if self.total is None or self.count == 0:
            return None
        return self.total / self.count

    def clear(self) -> None:
        self.total = None
        self.count = 0


def centroid(maps: torch.Tensor) -> torch.Tensor:
    """Centroid ``[..., 2]`` as (x, y) in fractions of the width and height of ``[..., h, w]`` maps.

    Cell centres sit at (i + 0.5) / size, so a map uniform over the grid has centroid (0.5, 0.5).
    """
    h, w = maps.shape[-2:]
    m = maps.float().clamp_min(0)
    total = m.sum(dim=(-2, -1)).clamp_min(1e-12)
    ys = (torch.arange(h, dtype=torch.float32, device=m.device) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32, device=m.device) + 0.5) / w
    cy = (m.sum(dim=-1) * ys).sum(dim=-1) / total
    cx = (m.sum(dim=-2) * xs).sum(dim=-1) / total
    return torch.stack([cx, cy], dim=-1)


def map_centroids(maps: torch.Tensor, floor: float = 0.5) -> torch.Tensor:
    """Centroids ``[..., 2]`` (x, y as fractions of width and height) of ``[..., h, w]`` maps.

    Weighted by the part of each normalised map above ``floor`` (the map's peak region, so a
    broad low background does not pull the centroid to the middle); a flat map gives the centre.
    """
    h, w = maps.shape[-2:]
    weight = (normalize(maps.float()) - floor).clamp_min(0)
    total = weight.sum(dim=(-2, -1))
    ys = (torch.arange(h, dtype=weight.dtype, device=weight.device) + 0.5) / h
    xs = (torch.arange(w, dtype=weight.dtype, device=weight.device) + 0.5) / w
    cx = (weight.sum(dim=-2) * xs).sum(dim=-1) / total.clamp_min(1e-12)
    cy = (weight.sum(dim=-1) * ys).sum(dim=-1) / total.clamp_min(1e-12)
    flat = total <= 1e-12
    cx = torch.where(flat, torch.full_like(cx, 0.5), cx)
    cy = torch.where(flat, torch.full_like(cy, 0.5), cy)
    return torch.stack([cx, cy], dim=-1)


def map_boxes(maps: torch.Tensor, floor: float = 0.5) -> torch.Tensor:
    """Bounding boxes ``[..., 4]`` (x0, y0, x1, y1 as fractions) of each ``[..., h, w]`` map's cells
    at or above ``floor`` of its normalised value (the peak region :func:`map_centroids` weighs)."""
    h, w = maps.shape[-2:]
    peak = normalize(maps.float()) >= floor
    cols, rows = peak.any(dim=-2), peak.any(dim=-1)  # [..., w], [..., h]
    xs = torch.arange(w, device=maps.device)
    ys = torch.arange(h, device=maps.device)
    x0 = torch.where(cols, xs, w).amin(dim=-1) / w
    x1 = (torch.where(cols, xs, -1).amax(dim=-1) + 1) / w
    y0 = torch.where(rows, ys, h).amin(dim=-1) / h
    y1 = (torch.where(rows, ys, -1).amax(dim=-1) + 1) / h
    box = torch.stack([x0, y0, x1, y1], dim=-1).clamp(0.0, 1.0)
    flat = ~cols.any(dim=-1, keepdim=True)  # a constant map has no peak region: the whole frame
    return torch.where(flat, torch.tensor([0.0, 0.0, 1.0, 1.0], device=box.device), box)


def normalize(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``[h, w]`` map to [0, 1] by its own min and max."""
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    hi = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)
