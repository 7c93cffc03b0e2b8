"""Synthetic scenes of coloured shapes with captions (pure torch).

A scene is 128x128 RGB in [0, 1]: a neutral background (plain or a soft linear gradient) and
one or two non-overlapping shapes (circle, square, triangle) in one of a few saturated palette
colours.  Captions: "a red circle", "a blue square and a yellow triangle".

Everything is drawn from a ``torch.Generator`` so a seed gives the same scenes everywhere.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

SIZE = 128
COLOURS = {
    "red": (0.86, 0.14, 0.14),
    "green": (0.14, 0.66, 0.22),
    "blue": (0.14, 0.30, 0.88),
    "yellow": (0.93, 0.80, 0.10),
}
COLOUR_NAMES = tuple(COLOURS)
SHAPES = ("circle", "square", "triangle")
MIN_R, MAX_R = 13.0, 24.0   # "radius": half side of a square, circumradius-ish for others
SUPERSAMPLE = 2


@dataclass
class Obj:
    """One shape: colour and shape names, centre (x, y) in pixels, radius in pixels."""
    colour: str
    shape: str
    cx: float
    cy: float
    r: float


@dataclass
class Scene:
    objects: List[Obj]
    bg: Tuple[float, float, float, float]  # base grey, gradient amplitude, gradient angle, tint

    @property
    def caption(self) -> str:
        return caption_of(self.objects)


def caption_of(objects) -> str:
    return " and ".join("a {} {}".format(o.colour, o.shape) for o in objects)


def all_captions() -> List[str]:
    """Every caption the generator can produce (singles, then ordered pairs of distinct objects)."""
    singles = [(c, s) for c in COLOUR_NAMES for s in SHAPES]
    out = ["a {} {}".format(c, s) for c, s in singles]
    for a in singles:
        for b in singles:
            if a != b:
                out.append("a {} {} and a {} {}".format(a[0], a[1], b[0], b[1]))
    return out


def _uniform(gen, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _choice(gen, seq):
    return seq[int(torch.randint(len(seq), (), generator=gen))]


PAIR_SHARE = 0.5  # share of two-object scenes (the bundled model's training set)


def sample_scene(gen: torch.Generator, n_objects: Optional[int] = None, pair_share: float = PAIR_SHARE,
                 same_colour: Optional[float] = None) -> Scene:
    """Draw one scene description (no pixels): ``n_objects`` objects, or two with probability
    ``pair_share`` and else one. ``same_colour``: the probability that a two-object scene's
    objects share their colour (None: colours drawn independently, 2 in 11 pairs)."""
    if n_objects is None:
        n_objects = 1 if float(torch.rand((), generator=gen)) < 1.0 - pair_share else 2
    same = None if same_colour is None or n_objects != 2 else float(torch.rand((), generator=gen)) < same_colour
    objs: List[Obj] = []
    while len(objs) < n_objects:
        colour, shape = _choice(gen, COLOUR_NAMES), _choice(gen, SHAPES)
        if any(o.colour == colour and o.shape == shape for o in objs):
            continue
        if same is not None and objs and (colour == objs[0].colour) != same:
            continue
        r = _uniform(gen, MIN_R, MAX_R) if n_objects == 1 else _uniform(gen, MIN_R, MAX_R - 4)
        m = r + 3
        cx, cy = _uniform(gen, m, SIZE - m), _uniform(gen, m, SIZE - m)
        if any(((cx - o.cx) ** 2 + (cy - o.cy) ** 2) ** 0.5 < (r + o.r) * 1.15 + 4 for o in objs):
            continue
        objs.append(Obj(colour, shape, cx, cy, r))
    plain = float(torch.rand((), generator=gen)) < 0.4
    base = _uniform(gen, 0.74, 0.94)
    amp = 0.0 if plain else _uniform(gen, 0.02, 0.10)
    ang = _uniform(gen, 0.0, 6.2832)
    tint = _uniform(gen, -0.015, 0.015)
    return Scene(objs, (base, amp, ang, tint))


def shape_mask(shape: str, cx: float, cy: float, r: float, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Boolean mask of a shape on pixel-centre coordinates ``xs``, ``ys`` (same shape tensors)."""
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        h = r * 0.85  # equal-ish area to the circle of radius r
        return (dx.abs() <= h) & (dy.abs() <= h)
    if shape == "triangle":
        # upright isosceles triangle: apex at top (cy - 1.15 r), base at cy + 0.85 r, width 2.3 r
        top, bottom, half = cy - 1.15 * r, cy + 0.85 * r, 1.15 * r
        t = (ys - top) / (bottom - top)
        return (t >= 0) & (t <= 1) & (dx.abs() <= half * t)
    raise ValueError("unknown shape {!r}; valid: {}".format(shape, ", ".join(SHAPES)))


def shape_centroid(shape: str, cx: float, cy: float, r: float) -> Tuple[float, float]:
    """Area centroid of a drawn shape (the triangle's is below its bounding-circle centre)."""
    if shape == "triangle":
        top, bottom = cy - 1.15 * r, cy + 0.85 * r
        return cx, top + 2.0 * (bottom - top) / 3.0
    return cx, cy


_GRID = {}


def _grid(n: int):
    if n not in _GRID:
        c = (torch.arange(n, dtype=torch.float32) + 0.5) * (SIZE / n)
        _GRID[n] = torch.meshgrid(c, c, indexing="xy")  # xs, ys: [n, n]
    return _GRID[n]


def render(scene: Scene) -> torch.Tensor:
    """Pixels [3, SIZE, SIZE] in [0, 1] (2x2 supersampled edges)."""
    n = SIZE * SUPERSAMPLE
    xs, ys = _grid(n)
    base, amp, ang, tint = scene.bg
    u = ((xs - SIZE / 2) * torch.cos(torch.tensor(ang)) + (ys - SIZE / 2) * torch.sin(torch.tensor(ang))) / SIZE
    g = base + amp * u * 2
    img = torch.stack([g + tint, g, g - tint])
    for o in scene.objects:
        m = shape_mask(o.shape, o.cx, o.cy, o.r, xs, ys)
        col = torch.tensor(COLOURS[o.colour]).view(3, 1, 1)
        img = torch.where(m.unsqueeze(0), col.expand(3, n, n), img)
    img = torch.nn.functional.avg_pool2d(img.unsqueeze(0), SUPERSAMPLE)[0]
    return img.clamp(0, 1)


def batch(gen: torch.Generator, n: int, n_objects: Optional[int] = None, pair_share: float = PAIR_SHARE,
          same_colour: Optional[float] = None):
    """``n`` scenes: (pixels [n, 3, SIZE, SIZE], list of Scene); see :func:`sample_scene`."""
    scenes = [sample_scene(gen, n_objects, pair_share, same_colour) for _ in range(n)]
    return torch.stack([render(s) for s in scenes]), scenes
