"""Temporal consistency of frames sampled as one batch (after Text2Video-Zero).

* :class:`CrossFrameController`: every frame's self-attention takes its keys and values from an
  anchor frame (row 0), or from the anchor and the previous frame concatenated. With the
  ``pairs`` layout (TokenShift's LATENT: source rows, then their moved copies) each moved row's
  anchor is its own source row. The host's
  optimised attention does the work; no N x N map is formed.
* :class:`BackgroundLock`: after each step, outside the moving words' region (where the object
  is in the anchor and where it goes), a frame's x0 prediction is pulled towards the anchor's.

Row 0 is the anchor and is never changed, so it comes out exactly as a plain generation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.controller import AttnCall, Controller, RunInfo
from ..core.maps import MapAccumulator, map_boxes, map_centroids, normalize, word_maps
from ..core.shift import EDGE_MARGIN, clamp_offset, shift_maps

CROSS_FRAME_MODES = ("anchor", "anchor+previous", "off")
LAYOUTS = ("frames", "pairs")


class CrossFrameController(Controller):
    """Self-attention K/V of every row from the anchor row (and the previous row)."""

    def __init__(self, mode: str = "anchor", own_window: tuple[float, float] | None = None,
                 moving_rows: frozenset[int] = frozenset(), layout: str = "frames"):
        """``own_window``: a progress window in which ``moving_rows`` attend to their own K/V as
        well as the anchor's, so the anchor's layout does not hold a moving object in place while
        the layout forms. ``layout`` ``pairs``: the second half of the rows are the moving rows,
        each anchored to the row half a batch before it (``moving_rows`` is ignored)."""
        if mode not in CROSS_FRAME_MODES:
            raise ValueError(f"cross-frame mode must be one of {CROSS_FRAME_MODES}, got {mode!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "pairs" and mode == "anchor+previous":
            raise ValueError("the pairs layout has no previous frame; use mode 'anchor'")
        self.mode = mode
        self.own_window = own_window
        self.moving_rows = frozenset(moving_rows)
        self.layout = layout

    def __deepcopy__(self, memo):
        return self

    def wants_self(self, call: AttnCall) -> bool:
        return self.mode != "off" and call.rows > 1

    def _in_window(self, call: AttnCall) -> bool:
        if self.own_window is None or (self.layout == "frames" and not self.moving_rows):
            return False
        return call.run.within(self.own_window)

    def sources(self, call: AttnCall) -> list[list[int]]:
        """For every row, the rows whose keys/values it attends to (the same count for all rows).

        Repeating a whole set of keys leaves attention unchanged (every weight halves), so the
        anchor row, which only ever sees itself, pads to the common count exactly.
        """
        own = self._in_window(call)
        if self.layout == "pairs":
            half = call.rows // 2
            if own:
                return [[r, r] if r < half else [r, r - half] for r in range(call.rows)]
            return [[r] if r < half else [r - half] for r in range(call.rows)]
        out = []
        for r in range(call.rows):
            src = [0] if self.mode == "anchor" else [0, max(r - 1, 0)]
            if own:
                src = [r] + src if r in self.moving_rows else src + [src[-1]]
                if r == 0:
                    src = [0] * len(src)
            out.append(src)
        return out

    def self_qkv(self, call, q, k, v):
        srcs = self.sources(call)
        if all(s == [r] * len(s) for r, s in enumerate(srcs)) and len(srcs[0]) == 1:
            return q, k, v
        ks = [torch.cat([k[i:i + 1] for i in s], dim=1) for s in srcs]
        vs = [torch.cat([v[i:i + 1] for i in s], dim=1) for s in srcs]
        return q, torch.cat(ks), torch.cat(vs)


class BackgroundLock(Controller):
    """Blend each frame's x0 prediction with the anchor's outside the moving words' region."""

    def __init__(self, token_groups: list[list[int]], offsets: torch.Tensor, strength: float = 0.5,
                 start: float = 0.2, threshold: float = 0.3, edge_margin: float | None = EDGE_MARGIN):
        """``offsets`` ``[rows, words, 2]``: where each word is in each row relative to row 0,
        clamped by the same edge rule as the shift (``edge_margin``) on the anchor's maps."""
        self.groups = [list(g) for g in token_groups]
        self.offsets = torch.as_tensor(offsets, dtype=torch.float32)
        self.strength = float(strength)
        self.start = float(start)
        self.threshold = float(threshold)
        self.edge_margin = edge_margin
        self._acc: MapAccumulator | None = None

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        self._acc = None

    def wants_cross(self, call: AttnCall) -> bool:
        return call.is_cond and self.strength > 0

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        maps = word_maps(probs[:1], self.groups, call.grid)  # the anchor's maps
        if self._acc is None:
            self._acc = MapAccumulator(call.grid)
        self._acc.add(maps)
        return probs

    def wants_denoised(self) -> bool:
        return self.strength > 0

    def masks(self, rows: int, size: tuple[int, int]) -> torch.Tensor | None:
        """Foreground masks ``[rows, 1, H, W]`` (1 = the words' region in the anchor or the row)."""
        if self._acc is None or self._acc.mean() is None:
            return None
        anchor = self._acc.mean()[0]  # [words, h, w]
        base = (normalize(anchor) >= self.threshold).float()
        centre, box = map_centroids(anchor), map_boxes(anchor)  # [words, 2], [words, 4]
        out = []
        for r in range(rows):
            off = self.offsets[min(r, self.offsets.shape[0] - 1)].to(centre)
            if self.edge_margin is not None:
                off = clamp_offset(centre, off, self.edge_margin, box)
            m = base.clone()
            for w in range(base.shape[0]):
                m[w] = torch.maximum(base[w], shift_maps(base[w], float(off[w, 0]), float(off[w, 1]), "zero"))
            out.append(m.amax(dim=0, keepdim=True))
        mask = torch.stack(out)  # [rows, 1, h, w]
        mask = F.max_pool2d(mask, 3, stride=1, padding=1)
        return F.interpolate(mask, size=size, mode="nearest")

    def denoised(self, run: RunInfo, denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        rows = denoised.shape[0]
        if rows < 2 or run.progress < self.start:
            return denoised
        mask = self.masks(rows, tuple(denoised.shape[-2:]))
        if mask is None:
            return denoised
        mask = mask.to(denoised)
        anchor = denoised[:1]
        keep = 1.0 - mask
        keep[0] = 0.0
        return denoised + self.strength * keep * (anchor - denoised)
