"""Spatial shifts of maps by fractions of the grid, with zero or edge fill (never wrap-around)."""
from __future__ import annotations

import math

import torch

FILLS = ("zero", "edge")


def _shift_int(x: torch.Tensor, d: int, dim: int, fill: str) -> torch.Tensor:
    size = x.shape[dim]
    if d == 0:
        return x
    if abs(d) >= size:
        if fill == "zero":
            return torch.zeros_like(x)
        edge = x.narrow(dim, 0 if d > 0 else size - 1, 1)
        return edge.expand_as(x).clone()
    if d > 0:
        kept = x.narrow(dim, 0, size - d)
        pad = torch.zeros_like(x.narrow(dim, 0, d)) if fill == "zero" else x.narrow(dim, 0, 1).expand_as(x.narrow(dim, 0, d))
        return torch.cat([pad, kept], dim=dim)
    d = -d
    kept = x.narrow(dim, d, size - d)
    pad = torch.zeros_like(x.narrow(dim, 0, d)) if fill == "zero" else x.narrow(dim, size - 1, 1).expand_as(x.narrow(dim, 0, d))
    return torch.cat([kept, pad], dim=dim)


def _shift_axis(x: torch.Tensor, cells: float, dim: int, fill: str) -> torch.Tensor:
    lo = math.floor(cells)
    frac = cells - lo
    a = _shift_int(x, lo, dim, fill)
    if frac < 1e-6:
        return a
    b = _shift_int(x, lo + 1, dim, fill)
    return a * (1.0 - frac) + b * frac


def shift_maps(x: torch.Tensor, dx: float, dy: float, fill: str = "zero") -> torch.Tensor:
    """Shift ``[..., h, w]`` maps right by ``dx`` and down by ``dy`` (fractions of width/height).

    Fractional cell offsets are linearly interpolated, so one setting means the same at every
    grid size. ``fill`` is "zero" (vacated cells become 0) or "edge" (they repeat the border).
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    h, w = x.shape[-2:]
    out = _shift_axis(x, dx * w, x.dim() - 1, fill)
    return _shift_axis(out, dy * h, x.dim() - 2, fill)


def shift_tokens(flat: torch.Tensor, grid: tuple[int, int], dx: float, dy: float, fill: str = "zero") -> torch.Tensor:
    """Shift a ``[..., N, C]`` tensor whose N axis is a flattened (h, w) grid; returns the same layout."""
    h, w = grid
    lead = flat.shape[:-2]
    c = flat.shape[-1]
    spatial = flat.reshape(*lead, h, w, c).movedim(-1, -3)  # [..., C, h, w]
    shifted = shift_maps(spatial, dx, dy, fill)
    return shifted.movedim(-3, -1).reshape(*lead, h * w, c)


EDGE_MARGIN = 0.15  # fraction of each side: a moved word's map centre stays at least this far inside
BOX_MAX_EXTENT = 0.9  # fraction of a side: a peak region this wide (a diffuse map) is no extent


def clamp_offset(centre: torch.Tensor, offset: torch.Tensor, margin: float = EDGE_MARGIN,
                 box: torch.Tensor | None = None) -> torch.Tensor:
    """The part of ``offset`` that keeps a map centred at ``centre`` inside the frame (``[..., 2]``,
    x and y as fractions of width and height).

    The edge rule of every move: the destination ``centre + offset`` is clamped so the centre
    stays at least ``margin`` from each edge; a centre already closer than that may stay where it
    is (it is never pushed inward) but goes no further out. With ``box`` ``[..., 4]`` (x0, y0, x1,
    y1: the map's peak region, :func:`core.maps.map_boxes`) that region must stay inside the frame
    too (on each axis where it spans at most :data:`BOX_MAX_EXTENT`), so a large object stops when its
    edge meets the frame's. Moves that stay inside are
    unchanged.
    """
    lo = torch.clamp(centre, max=margin)
    hi = torch.clamp(centre, min=1.0 - margin)
    if box is not None:  # centre - x0 <= centre and centre + 1 - x1 >= centre: still never pushed inward
        # a peak region wider than BOX_MAX_EXTENT (a diffuse early map) says nothing of the object's edges
        compact = box[..., 2:] - box[..., :2] <= BOX_MAX_EXTENT
        lo = torch.where(compact, torch.maximum(lo, centre - box[..., :2]), lo)
        hi = torch.where(compact, torch.minimum(hi, centre + 1.0 - box[..., 2:]), hi)
    dest = centre + offset
    kept = torch.minimum(torch.maximum(dest, lo), hi)
    return torch.where(kept == dest, offset, kept - centre)  # unclamped moves exactly as asked
