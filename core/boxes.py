"""Regions for region attention: boxes, box paths over frames, rasterising, boxes from maps, schedules.

Pure torch, no ComfyUI. A *box* is ``(x, y, w, h)`` in fractions of the image width and height,
(0, 0) at the top-left corner. A *path* is a list of boxes (keyframes) spread evenly over the
frames of a clip, linearly interpolated; a single box is a still region.
A *weight schedule* gives the region weight of each sampling step:

* ``constant``: ``weight`` at every step;
* ``linear``: from ``weight`` at the first step to ``weight_end`` at the last (by run progress);
* ``cosine``: the same ends on a half cosine (slow at both ends);
* ``list``: one value per step (``"1, 1, 0.8, 0.5"``); the last value holds for later steps.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .motion import read_json, show

SCHEDULE_KINDS = ("constant", "linear", "cosine", "list")


# -- schedules ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightSchedule:
    """A per-step weight: see the module docstring for the kinds."""

    kind: str = "constant"
    start: float = 1.0
    end: float = 1.0
    values: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULE_KINDS)}, got {self.kind!r}")
        if self.kind == "list" and not self.values:
            raise ValueError("a 'list' schedule needs at least one value, e.g. '1, 1, 0.8, 0.5, 0'")

    def weight(self, step: int, progress: float) -> float:
        """The weight at sampling step ``step`` (0-based) with run progress ``progress`` in [0, 1]."""
        p = min(max(float(progress), 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * p
        if self.kind == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * p))
        return self.values[min(max(int(step), 0), len(self.values) - 1)]


MAX_WEIGHT_LIST_CHARS = 20_000  # characters of a weight list (one value per step)


def parse_weight_list(text: str) -> tuple[float, ...]:
    """``"1, 0.8 0.5"`` -> (1.0, 0.8, 0.5); commas and/or spaces separate; values must be finite
    (``nan``, ``inf`` and ``1e400``, which overflows to inf, are refused); at most
    :data:`MAX_WEIGHT_LIST_CHARS` characters."""
    text = str(text or "")
    if len(text) > MAX_WEIGHT_LIST_CHARS:
        raise ValueError(f"too long ({len(text)} characters; at most {MAX_WEIGHT_LIST_CHARS})")
    parts = [p for p in text.replace(",", " ").split() if p]
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"'{p}' is not a number; give numbers separated by commas, e.g. '1, 1, 0.8, 0.5'") from None
        if not math.isfinite(v):
            raise ValueError(f"'{p}' is not a finite number; give finite numbers, e.g. '1, 1, 0.8, 0.5'")
        out.append(v)
    return tuple(out)


# -- boxes and paths ----------------------------------------------------------------------------
def _finite(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def check_box(box, where: str) -> tuple[float, float, float, float]:
    """Validate one ``[x, y, w, h]`` box of fractions; returns it as floats."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"{where} is {show(box)}; a box is [x, y, w, h], fractions of the image "
                         "(e.g. [0.1, 0.2, 0.4, 0.3])")
    if not all(_finite(v) for v in box):
        raise ValueError(f"{where} is {show(box)}; every value must be a finite number")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"{where} is {show(box)}; width and height must be above 0")
    if x < -1 or y < -1 or x > 1 or y > 1 or w > 2 or h > 2:
        raise ValueError(f"{where} is {show(box)}; x, y must lie in [-1, 1] and w, h in (0, 2] "
                         "(fractions of the image; parts outside the image are ignored)")
    return x, y, w, h


def path_boxes(path: torch.Tensor, frames: int) -> torch.Tensor:
    """Boxes ``[frames, 4]`` along a path of keyframe boxes ``[K, 4]`` spread evenly over the frames."""
    path = torch.as_tensor(path, dtype=torch.float32).reshape(-1, 4)
    k = path.shape[0]
    if frames < 1:
        raise ValueError(f"frames is {frames}; use at least 1")
    if k == 1:
        return path.expand(frames, 4).clone()
    if frames == 1:
        return path[:1].clone()
    t = torch.linspace(0, k - 1, frames, dtype=torch.float64)
    i0 = t.floor().long().clamp(max=k - 2)
    a = (t - i0).float().unsqueeze(1)
    return path[i0] * (1 - a) + path[i0 + 1] * a


def row_boxes(path: torch.Tensor, rows: int, frames: int = 0) -> torch.Tensor:
    """Box of every latent row ``[rows, 4]``.

    ``frames`` 0 spreads the path over the rows of the batch (row 0 = first keyframe, last row =
    last keyframe); ``frames`` > 0 spreads it over that many frames and row r takes frame r (rows
    beyond the last frame keep the last box).
    """
    n = rows if frames <= 0 else frames
    boxes = path_boxes(path, n)
    idx = torch.arange(rows).clamp(max=n - 1)
    return boxes[idx]


@dataclass
class RegionSpec:
    """One region as the user gave it: a description and a box path, or a mask index."""

    prompt: str
    path: torch.Tensor | None  # [K, 4] keyframe boxes, or None for a mask region
    mask: int | None = None  # index into the node's MASK batch
    weight: float = 1.0  # multiplies the schedule's weight


REGION_KEYS = ("prompt", "box", "path", "mask", "weight")
MAX_REGION_WEIGHT = 2.0
REGIONS_EXAMPLE = '[{"prompt": "a red circle", "box": [0.1, 0.1, 0.4, 0.4]}]'


def parse_regions(text: str) -> list[RegionSpec]:
    """Regions from JSON: a list of ``{"prompt": ..., "box": [x, y, w, h]}`` objects ([] for an empty text).

    Instead of ``box`` a region may give ``path`` (a list of boxes over the frames of a batch) or
    ``mask`` (index into the node's MASK batch); ``weight`` (default 1, in [0, 2]) scales the
    schedule. Raises ValueError with what is wrong and what is valid. js/region_math.js
    parseRegions applies the same rules.
    """
    text = (text or "").strip()
    if not text:
        return []
    data = read_json(text, "", REGIONS_EXAMPLE)  # the node names the input
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"expected a list of regions like {REGIONS_EXAMPLE}, got {show(data)}")
    out = []
    for i, item in enumerate(data):
        where = f"region {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where} is {show(item)}; each region is an object with 'prompt' and 'box'")
        unknown = set(item) - set(REGION_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}; valid keys: {', '.join(REGION_KEYS)}")
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where} needs a non-empty 'prompt' (its local description, e.g. \"a red circle\")")
        prompt = prompt.strip()
        given = [k for k in ("box", "path", "mask") if k in item]
        if len(given) != 1:
            raise ValueError(f"{where} ('{prompt}') must give exactly one of 'box', 'path' or 'mask' (it gives "
                             f"{', '.join(given) or 'none'})")
        weight = item.get("weight", 1.0)
        if not _finite(weight):
            raise ValueError(f"{where} ('{prompt}'): 'weight' is {show(weight)}; use a number (default 1)")
        if not 0 <= weight <= MAX_REGION_WEIGHT:
            raise ValueError(f"{where} ('{prompt}'): 'weight' is {show(weight)}; use a number in [0, "
                             f"{MAX_REGION_WEIGHT:g}] (default 1; it scales the schedule's weight)")
        path, mask = None, None
        if "box" in item:
            path = torch.tensor([check_box(item["box"], f"{where} ('{prompt}') box")])
        elif "path" in item:
            boxes = item["path"]
            if not isinstance(boxes, list) or not boxes:
                raise ValueError(f"{where} ('{prompt}'): 'path' must be a non-empty list of boxes [x, y, w, h]")
            path = torch.tensor([check_box(b, f"{where} ('{prompt}') path entry {j}") for j, b in enumerate(boxes)])
        else:
            m = item["mask"]
            if not _finite(m) or m != int(m) or m < 0:
                raise ValueError(f"{where} ('{prompt}'): 'mask' is {show(m)}; use the index (0, 1, ...) of "
                                 "a mask in the node's MASK input")
            mask = int(m)
        out.append(RegionSpec(prompt, path, mask, float(weight)))
    return out


def regions_to_json(regions: list[RegionSpec]) -> str:
    """The JSON text :func:`parse_regions` reads back (boxes rounded to 4 decimals)."""
    items = []
    for r in regions:
        item: dict = {"prompt": r.prompt}
        if r.mask is not None:
            item["mask"] = r.mask
        elif r.path is not None and r.path.shape[0] == 1:
            item["box"] = [round(float(v), 4) for v in r.path[0]]
        elif r.path is not None:
            item["path"] = [[round(float(v), 4) for v in b] for b in r.path]
        if r.weight != 1.0:
            item["weight"] = r.weight
        items.append(item)
    return json.dumps(items)


# -- rasterising --------------------------------------------------------------------------------
def _edges(cells: int, extent: float) -> torch.Tensor:
    return torch.linspace(0.0, extent, cells + 1).clamp(max=1.0)


def box_coverage(boxes: torch.Tensor, grid: tuple[int, int], extent: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Fraction of every grid cell inside each box: ``[..., 4]`` boxes -> ``[..., h, w]`` in [0, 1].

    ``extent`` is how much of the image height/width the grid spans (above 1 when a downsampled
    grid rounds up past the image edge; cells past the edge are clipped to it).
    """
    h, w = grid
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    ye, xe = _edges(h, extent[0]), _edges(w, extent[1])

    def overlap(lo: torch.Tensor, size: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        a, b = edges[:-1], edges[1:]
        inter = (torch.minimum(b, (lo + size).unsqueeze(-1)) - torch.maximum(a, lo.unsqueeze(-1))).clamp(min=0)
        width = (b - a).clamp(min=1e-12)
        return torch.where(b > a, inter / width, torch.zeros_like(inter))

    fy = overlap(boxes[..., 1], boxes[..., 3], ye)  # [..., h]
    fx = overlap(boxes[..., 0], boxes[..., 2], xe)  # [..., w]
    cov = (fy.unsqueeze(-1) * fx.unsqueeze(-2)).clamp(0, 1)
    # snap float dust at box edges that fall on cell edges: a cell is then exactly in or out
    cov = torch.where(cov < 1e-4, torch.zeros_like(cov), cov)
    return torch.where(cov > 1 - 1e-4, torch.ones_like(cov), cov)


def mask_coverage(mask: torch.Tensor, grid: tuple[int, int], extent: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Mean of a mask ``[..., H, W]`` (values in [0, 1]) over every cell of ``grid`` -> ``[..., h, w]``."""
    h, w = grid
    m = torch.as_tensor(mask, dtype=torch.float32).clamp(0, 1)
    lead = m.shape[:-2]
    m = m.reshape(-1, 1, *m.shape[-2:])
    # pad the mask so the grid's cells past the image edge (extent > 1) read zeros
    ph = max(0, round(m.shape[-2] * extent[0]) - m.shape[-2])
    pw = max(0, round(m.shape[-1] * extent[1]) - m.shape[-1])
    if ph or pw:
        m = F.pad(m, (0, pw, 0, ph))
    out = F.adaptive_avg_pool2d(m, (h, w))
    return out.reshape(*lead, h, w)


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel masks ``[n, height, width]`` of boxes ``[n, 4]`` (fractional edge pixels get their share)."""
    return box_coverage(boxes, (height, width))


# -- boxes from attention maps ------------------------------------------------------------------
def boxes_from_maps(maps: torch.Tensor, threshold: float = 0.5, margin: float = 0.0) -> torch.Tensor:
    """Bounding box ``[words, 4]`` of the cells where each map ``[words, h, w]`` reaches
    ``threshold`` times its maximum, grown by ``margin`` (fraction of the image) on every side.

    Raises ValueError for a map that is zero everywhere (no attention recorded for the word).
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must be [words, h, w], got shape {tuple(maps.shape)}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold is {threshold}; use a value in (0, 1]")
    n, h, w = maps.shape
    out = torch.zeros(n, 4)
    for i in range(n):
        m = maps[i].float()
        top = float(m.max())
        if not top > 0:
            raise ValueError(f"the map of word {i} is empty (zero everywhere); no box can be read from it")
        ys, xs = torch.nonzero(m >= threshold * top, as_tuple=True)
        x0, x1 = float(xs.min()) / w, float(xs.max() + 1) / w
        y0, y1 = float(ys.min()) / h, float(ys.max() + 1) / h
        x0, y0 = max(0.0, x0 - margin), max(0.0, y0 - margin)
        x1, y1 = min(1.0, x1 + margin), min(1.0, y1 + margin)
        out[i] = torch.tensor([x0, y0, x1 - x0, y1 - y0])
    return out
