"""Move words by shifting their cross-attention maps (conditional branch, within a step window).

One controller serves the single-image TokenShift node and the frames of FrameSequence: it
holds a shift per latent row and word, and a *reference* saying whose map each row shifts:

* ``own``: row r shifts its own map (TokenShift). Its map is recomputed every step from features
  in which the object has already begun to move, so a fixed shift would compound over the
  window; instead the map is moved so its centroid lands at its *home* (the centroid at the
  first step the controller acts in that layer) plus the requested offset: the shift applied is
  ``home + offset - current centroid``;
* ``anchor``: row r takes row 0's map shifted by its offset (the *variation* schedule);
* ``previous``: row r takes row r-1's map shifted by one path step (the *incremental* schedule);
* ``pairs``: the batch is source rows then as many moved rows (TokenShift's LATENT); moved row
  ``half + i`` takes source row i's map shifted by its offset, source rows are left alone. The
  source rows follow their own unedited trajectory, so the moved row's object lands exactly at
  the offset (``own`` has only a blurry first-step map to measure from).

Held words (``kept_tokens``): with every reference but ``own``, the prompt's other word tokens
(not moved) take the reference row's maps unshifted, inside the same window and layers, so the
other objects of the prompt stay where the reference has them instead of being redrawn by the
moved row's own sampling (``own`` has no other row to hold them to).

Row r never reads rows after it, so a batch computes exactly what a frame-by-frame run that
replays the previous frame's maps would.

Edge rule (``edge_margin``, :func:`core.shift.clamp_offset`): a move that would take a word's map
centre closer than the margin to the frame's edge, or its peak region (:func:`core.maps.map_boxes`)
past the edge, is clamped there, measured on the map it moves (the source row's, row 0's, or for
``own`` its home) at every call, so the object stops at the edge instead of losing its map.
Each clamped word is logged once per run (its first clamped row); every clamped (row, word) is
kept in :attr:`ShiftController.clamped`.

Self-attention (``self_mode``):

* ``free``: left alone (the router's other controllers may still edit it);
* ``shift``: inside the window, the row's self-attention queries, keys and values in the
  object's destination region are replaced by the reference's tokens from the object's source
  region, so the object's self-attention pattern moves with its cross-attention map.
"""
from __future__ import annotations

import logging

import torch

from ..core.controller import AttnCall, Controller
from ..core.maps import map_boxes, map_centroids, normalize, word_maps
from ..core.shift import EDGE_MARGIN, clamp_offset, shift_maps, shift_tokens

log = logging.getLogger(__name__)

REFERENCES = ("own", "anchor", "previous", "pairs")
PAIR_TOLERANCE = 1e-3  # attention probabilities of identical rows in one batch agree to about 1e-7
SELF_MODES = ("free", "shift")
CLAMP_REPORT = 0.01  # fraction of the side by which a clamp must cut a move to be reported


class ShiftController(Controller):
    """Shift the cross-attention columns of word tokens by per-row, per-word offsets."""

    def __init__(
        self,
        token_groups: list[list[int]],
        shifts: torch.Tensor,
        window: tuple[float, float] = (0.0, 0.5),
        levels: frozenset[int] | None = None,
        fill: str = "zero",
        reference: str = "own",
        self_mode: str = "free",
        mask_threshold: float = 0.3,
        node: str = "ShiftController",
        rows: int | None = None,
        edge_margin: float | None = EDGE_MARGIN,
        names: list[str] | None = None,
        kept_tokens: list[int] | None = None,
    ):
        """``shifts`` is ``[rows, words, 2]`` (dx, dy as fractions of width/height); a table with
        fewer rows than the batch repeats its last row. With ``pairs`` it has two rows: the source
        rows' shift (zero) and the moved rows' shift. ``node`` names the node in errors. ``rows``:
        the rows of the LATENT the node built (one per frame); the first call of a run refuses a
        sampled latent of another size. ``edge_margin``: see the module's edge rule (None: moves
        are not clamped). ``names``: the words of the groups, for messages. ``kept_tokens``: token
        positions held on the reference row's maps unshifted (the module's held words; not with
        ``own``, where a row is its own reference)."""
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if self_mode not in SELF_MODES:
            raise ValueError(f"self_mode must be one of {SELF_MODES}, got {self_mode!r}")
        shifts = torch.as_tensor(shifts, dtype=torch.float32)
        if shifts.dim() != 3 or shifts.shape[1] != len(token_groups) or shifts.shape[2] != 2:
            raise ValueError(f"shifts must be [rows, {len(token_groups)}, 2], got {tuple(shifts.shape)}")
        self.groups = [list(g) for g in token_groups]
        moved = {j for g in self.groups for j in g}
        self.kept = sorted({int(j) for j in (kept_tokens or ())} - moved)
        if self.kept and reference == "own":
            raise ValueError("kept_tokens need a reference row ('anchor', 'previous' or 'pairs'), not 'own'")
        self.shifts = shifts
        self.window = window
        self.levels = levels
        self.fill = fill
        self.reference = reference
        self.self_mode = self_mode
        self.mask_threshold = mask_threshold
        self.node = node
        self.rows = rows
        self.edge_margin = edge_margin
        self.names = list(names) if names is not None else [f"word {i + 1}" for i in range(len(self.groups))]
        self.clamped: dict[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]] = {}
        self.runs = 0
        self._last_maps: dict[int, torch.Tensor] = {}  # level -> reference maps [rows, words, h, w]
        self._home: dict[tuple, torch.Tensor] = {}  # layer key -> home centroids [rows, words, 2]
        self._home_box: dict[tuple, torch.Tensor] = {}  # layer key -> home peak boxes [rows, words, 4]
        self._last_held: dict[int, torch.Tensor | None] = {}  # level -> the shifts cross() applied
        self._checked = False  # the first call of the run checked the sampled latent's rows

    def __deepcopy__(self, memo):
        return self

    def release(self, earlier: tuple) -> None:
        """Stop holding the words that an earlier ShiftController of the same router moves: it
        runs first, so holding them here would put them back on the reference's unmoved maps."""
        moved = {j for c in earlier if isinstance(c, ShiftController) for g in c.groups for j in g}
        self.kept = [j for j in self.kept if j not in moved]

    def reset(self) -> None:
        self.runs += 1
        self._last_maps = {}
        self._home = {}
        self._home_box = {}
        self._last_held = {}
        self._checked = False
        self.clamped = {}

    # -- helpers ---------------------------------------------------------------------------
    def _table_row(self, row: int, rows: int) -> int:
        if self.reference == "pairs":
            return 0 if row < rows // 2 else min(1, self.shifts.shape[0] - 1)
        return min(row, self.shifts.shape[0] - 1)

    def source_row(self, row: int, rows: int) -> int:
        if self.reference == "anchor":
            return 0
        if self.reference == "previous":
            return max(row - 1, 0)
        if self.reference == "pairs" and row >= rows // 2:
            return row - rows // 2
        return row

    def _check_rows(self, rows: int) -> None:
        if self.rows is not None and rows != self.rows:
            raise ValueError(
                f"{self.node}: the sampled latent has {rows} row(s), but the node built {self.rows} "
                f"(one per frame), and each row is moved as its frame. Connect {self.node}'s 'latent' output "
                f"to the sampler instead of another latent (such as Empty Latent Image).")
        if self.reference == "pairs" and rows % 2:
            raise ValueError(
                f"{self.node}: the sampled latent has {rows} row(s), but 'reference' is 'source row', which "
                f"needs the node's own LATENT output (source rows, then their moved copies). Connect "
                f"{self.node}'s 'latent' output to the sampler, or set 'reference' to 'none'.")

    def _check_pairs(self, call: AttnCall, probs: torch.Tensor) -> None:
        """First cross-attention call of a run: the moved rows must be copies of their source rows
        (same latent, same noise), so their word maps must agree before anything moved them.
        Only this controller's word columns are compared: other controllers may have edited others."""
        half = call.rows // 2
        cols = [j for g in self.groups for j in g if j < probs.shape[-1]]
        if not half or not cols:
            return
        gap = float((probs[:half][..., cols] - probs[half:][..., cols]).abs().amax())
        if gap > PAIR_TOLERANCE:
            raise ValueError(
                f"{self.node}: rows {half}-{call.rows - 1} of the sampled latent are not copies of rows 0-{half - 1} "
                f"(their word maps differ by {gap:.3g} before any shift), so they cannot be moved from them. "
                f"'reference' 'source row' needs the node's own LATENT output: connect {self.node}'s 'latent' "
                f"output to the sampler, or set 'reference' to 'none'.")

    def _active(self, call: AttnCall) -> bool:
        return call.is_cond and call.run.within(self.window) and (self.levels is None or call.level in self.levels)

    def _moves(self, row: int, rows: int) -> bool:
        """True when the row's map differs from its own unedited map."""
        if self.source_row(row, rows) != row:
            return True
        return bool(self.shifts[self._table_row(row, rows)].abs().sum() > 0)

    # -- cross-attention ---------------------------------------------------------------------
    def _checks_rows(self) -> bool:
        return self.reference == "pairs" or self.rows is not None

    def wants_cross(self, call: AttnCall) -> bool:
        first = self._checks_rows() and call.is_cond and not self._checked
        return first or self._active(call)

    def _applied_offsets(self, call: AttnCall, maps: torch.Tensor | None) -> torch.Tensor:
        """Per row and word ``[rows, words, 2]``, the shift this call applies to the row's reference map.

        The requested move, clamped by the edge rule; ``own``: the shift that puts the map's
        centroid at home + move; ``previous``: the step between the clamped places of row r-1
        and row r (each measured from row 0). ``maps``: the call's word maps, None when neither
        the reference nor the edge rule needs them."""
        rows = call.rows
        table = self.shifts[torch.tensor([self._table_row(r, rows) for r in range(rows)])]
        if maps is None:
            return table
        now = map_centroids(maps)  # [rows, words, 2]
        boxes = map_boxes(maps)
        table = table.to(now)
        if self.reference == "own":
            home = self._home.setdefault(call.key, now)
            if home.shape != now.shape:
                home = self._home[call.key] = now
            centre, wanted = home, table
            box = self._home_box.setdefault(call.key, boxes)
            if box.shape != boxes.shape:
                box = self._home_box[call.key] = boxes
        elif self.reference == "previous":
            centre, wanted = now[:1].expand_as(now), torch.cumsum(table, dim=0)
            box = boxes[:1].expand_as(boxes)
        else:
            src = torch.tensor([self.source_row(r, rows) for r in range(rows)])
            centre, wanted = now[src], table
            box = boxes[src]
        kept = wanted if self.edge_margin is None else clamp_offset(centre, wanted, self.edge_margin, box)
        clamped = not torch.equal(kept, wanted)
        if clamped:
            self._note_clamps(wanted, kept)
        if self.reference == "own":
            return kept + (centre - now)
        if not clamped:
            return table  # exactly the asked shifts (``previous``: the steps, not their sums)
        if self.reference == "previous":  # the step from row r-1's clamped place to row r's
            return kept - torch.cat([torch.zeros_like(kept[:1]), kept[:-1]])
        return kept

    def _note_clamps(self, wanted: torch.Tensor, kept: torch.Tensor) -> None:
        cut = (wanted - kept).abs().amax(dim=-1) > CLAMP_REPORT  # [rows, words]
        for r, w in cut.nonzero().tolist():
            first = not any(word == w for _, word in self.clamped)  # one line per word and run
            self.clamped[(r, w)] = (tuple(wanted[r, w].tolist()), tuple(kept[r, w].tolist()))
            if first:
                (dx, dy), (kx, ky) = self.clamped[(r, w)]
                log.warning("%s: '%s' (row %d) would leave the frame: move (%.2f, %.2f) applied as (%.2f, %.2f), "
                            "its centre stays %.2f inside the edge", self.node, self.names[w], r, dx, dy, kx, ky,
                            self.edge_margin)

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        if self._checks_rows():
            self._check_rows(call.rows)
            if not self._checked and self.reference == "pairs":
                self._check_pairs(call, probs)
            self._checked = True
            if not self._active(call):
                return probs
        t = probs.shape[-1]
        raw = probs
        out = probs.clone()
        needs_maps = self.reference == "own" or self.edge_margin is not None or self.self_mode == "shift"
        maps = word_maps(raw, self.groups, call.grid) if needs_maps else None
        held = self._applied_offsets(call, maps)
        kept = [j for j in self.kept if j < t]
        for r in range(call.rows):
            if not self._moves(r, call.rows):
                continue
            src = self.source_row(r, call.rows)
            for w, group in enumerate(self.groups):
                cols = [j for j in group if j < t]
                if not cols:
                    continue
                dx, dy = held[r, w].tolist()
                sub = raw[src][..., cols]  # [heads, N, tokens]
                out[r][..., cols] = shift_tokens(sub, call.grid, dx, dy, self.fill)
            if kept and src != r:
                out[r][..., kept] = raw[src][..., kept]
            call.edited.add(r)
        if self.self_mode == "shift":
            self._last_maps[call.level] = maps.detach()
            self._last_held[call.level] = held
        return out

    # -- self-attention ----------------------------------------------------------------------
    def wants_self(self, call: AttnCall) -> bool:
        return self.self_mode == "shift" and self._active(call) and call.level in self._last_maps

    def self_qkv(self, call, q, k, v):
        maps = self._last_maps[call.level]
        held = self._last_held.get(call.level)
        if held is None or maps.shape[0] != call.rows or tuple(maps.shape[-2:]) != tuple(call.grid):
            return q, k, v
        src_masks = (normalize(maps) >= self.mask_threshold).float()  # [rows, words, h, w]
        orig = (q, k, v)
        q, k, v = q.clone(), k.clone(), v.clone()
        for r in range(call.rows):
            if not self._moves(r, call.rows):
                continue
            s = self.source_row(r, call.rows)
            for w in range(len(self.groups)):
                dx, dy = held[r, w].tolist()
                dest = shift_maps(src_masks[s, w], dx, dy, "zero").reshape(-1, 1).to(q.dtype)
                if float(dest.sum()) == 0:
                    continue
                for t, t0 in zip((q, k, v), orig):
                    moved = shift_tokens(t0[s], call.grid, dx, dy, "edge")
                    t[r] = t[r] + dest * (moved - t[r])
        return q, k, v
