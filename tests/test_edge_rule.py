"""The edge rule: a move that would take a word's map centre past EDGE_MARGIN from the frame's
edge stops there (core.shift.clamp_offset), the same in every reference of the shift controller,
in the background lock and in the motion path widget (tests/js)."""
import logging

import pytest
import torch

from attention_motion.controllers.frames import BackgroundLock
from attention_motion.controllers.shift import ShiftController
from attention_motion.core.controller import AttnCall, RunInfo
from attention_motion.core.maps import map_centroids, word_maps
from attention_motion.core.shift import EDGE_MARGIN, clamp_offset, shift_tokens

pytestmark = pytest.mark.core

GRID = (4, 10)  # h, w: columns are 0.1 wide


def _call(rows: int) -> AttnCall:
    return AttnCall(kind="cross", key=("input", 1, 0), chunk=0, chunk_index=0, rows=rows, heads=1, grid=GRID,
                    level=0, latent_hw=GRID, run=RunInfo(step=0, progress=0.1, sigma=10.0))


def _column_probs(cols: list[int], tokens: int = 4, word: int = 2) -> torch.Tensor:
    """One row per entry of ``cols``: the word's map is one sharp grid column (centre (c + 0.5) / 10)."""
    h, w = GRID
    probs = torch.full((len(cols), 1, h * w, tokens), 0.1)
    cells = torch.arange(h * w)
    for r, c in enumerate(cols):
        probs[r, 0, cells % w == c, word] = 5.0
    return probs / probs.sum(-1, keepdim=True)


def test_clamp_offset():
    c = torch.tensor([[0.35, 0.5], [0.1, 0.9], [0.5, 0.5]])
    o = torch.tensor([[-0.35, 0.0], [-0.2, 0.3], [0.2, -0.1]])
    kept = clamp_offset(c, o)
    assert EDGE_MARGIN == 0.15
    assert torch.allclose(kept[0], torch.tensor([-0.2, 0.0]))  # stops with its centre at 0.15
    assert torch.allclose(kept[1], torch.tensor([0.0, 0.0]))  # already past the margin: stays, not pushed in
    assert torch.equal(kept[2], o[2])  # inside: exactly as asked
    assert torch.allclose(clamp_offset(torch.tensor([0.1, 0.5]), torch.tensor([0.3, 0.0])), torch.tensor([0.3, 0.0]))


def _centre_x(probs: torch.Tensor, row: int) -> float:
    return float(map_centroids(word_maps(probs[row:row + 1], [[2]], GRID))[0, 0, 0])


def test_pairs_reference_stops_at_the_edge_and_reports_it(caplog):
    """Source row's object at x 0.35 asked to move -0.35 (to 0.0): the moved row's map lands at
    0.15; a move that stays inside is exact."""
    probs = _column_probs([3, 3])
    shifts = torch.tensor([[[0.0, 0.0]], [[-0.35, 0.0]]])
    ctrl = ShiftController([[2]], shifts, reference="pairs", node="TokenShift", names=["circle"])
    with caplog.at_level(logging.WARNING):
        out = ctrl.cross(_call(2), probs)
        ctrl.cross(_call(2), probs)  # reported once per run
    assert abs(_centre_x(out, 1) - EDGE_MARGIN) < 1e-4
    assert torch.equal(out[0], probs[0])
    (wanted, kept), = ctrl.clamped.values()
    assert wanted == pytest.approx((-0.35, 0.0)) and kept == pytest.approx((-0.2, 0.0), abs=1e-6)
    warnings = [r.getMessage() for r in caplog.records if "leave the frame" in r.getMessage()]
    assert warnings == ["TokenShift: 'circle' (row 1) would leave the frame: move (-0.35, 0.00) applied as "
                        "(-0.20, 0.00), its centre stays 0.15 inside the edge"]
    ctrl.reset()
    assert ctrl.clamped == {}
    inside = ShiftController([[2]], torch.tensor([[[0.0, 0.0]], [[0.2, 0.0]]]), reference="pairs")
    out = inside.cross(_call(2), probs)
    assert torch.equal(out[1][..., [2]], shift_tokens(probs[0][..., [2]], GRID, 0.2, 0.0)) and inside.clamped == {}


def test_anchor_and_previous_references_stop_at_the_edge(caplog):
    """Frames of a path from x 0.55 to 0.55 + 0.6 in three steps: the anchor and the incremental
    schedules both end at 0.85 and never go past it."""
    probs = _column_probs([5, 5, 5, 5])
    offsets = torch.tensor([[[0.0, 0.0]], [[0.2, 0.0]], [[0.4, 0.0]], [[0.6, 0.0]]])
    ctrl = ShiftController([[2]], offsets, reference="anchor", names=["ball"])
    with caplog.at_level(logging.WARNING):
        anchor = ctrl.cross(_call(4), probs)
    assert len([r for r in caplog.records if "'ball'" in r.getMessage()]) == 1  # one line per word and run
    assert sorted(ctrl.clamped) == [(2, 0), (3, 0)]  # rows 2 and 3 stop, row 1 moves as asked
    assert [round(_centre_x(anchor, r), 3) for r in range(4)] == [0.55, 0.75, 0.85, 0.85]
    steps = offsets - torch.cat([offsets[:1], offsets[:-1]])
    prev = ShiftController([[2]], steps, reference="previous")
    # each row takes row r-1's map: feed rows already where the previous frames landed
    placed = _column_probs([5, 7, 8, 8])
    out = prev.cross(_call(4), placed)
    dx = [_centre_x(out, r) - _centre_x(placed, r - 1) if r else 0.0 for r in range(4)]
    assert dx == pytest.approx([0.0, 0.2, 0.1, 0.0], abs=1e-3)


def test_own_reference_holds_the_clamped_target():
    probs = _column_probs([8])  # centre 0.85: already at the margin
    ctrl = ShiftController([[2]], torch.tensor([[[0.3, 0.0]]]), reference="own")
    out = ctrl.cross(_call(1), probs)
    assert torch.allclose(out, probs, atol=1e-6)  # nothing more to the right
    assert list(ctrl.clamped.values())[0][1] == pytest.approx((0.0, 0.0), abs=1e-6)


def test_background_lock_masks_follow_the_clamped_place():
    lock = BackgroundLock([[2]], torch.tensor([[[0.0, 0.0]], [[0.6, 0.0]]]), strength=1.0)
    lock.cross(_call(1), _column_probs([5]))
    masks = lock.masks(2, GRID)[:, 0]  # [rows, h, w]
    cols = [sorted(set((masks[r] > 0).nonzero()[:, 1].tolist())) for r in range(2)]
    assert cols[0] == [4, 5, 6]  # the anchor's column, dilated by one cell
    assert cols[1] == [4, 5, 6, 7, 8, 9]  # anchor and its clamped place (0.85, column 8), dilated


def test_a_large_object_stops_when_its_edge_meets_the_frame():
    """Moves of +0.3: a map of columns 4-7 (0.4-0.8, centre 0.6) stops when its right edge meets
    the frame (+0.2; the centre rule alone would allow +0.25); a diffuse map (every column, wider
    than BOX_MAX_EXTENT, centre 0.5) is held by the centre rule alone (+0.3 reaches 0.8); a narrow
    one (column 5, centre 0.55) moves exactly as asked (to 0.85)."""
    from attention_motion.core.maps import map_boxes
    from attention_motion.core.shift import BOX_MAX_EXTENT

    h, w = GRID
    maps = torch.zeros(3, h, w)
    maps[0, :, 4:8] = 1.0
    maps[1] = 1.0
    maps[1, 0, 0] = 0.0
    maps[2, :, 5] = 1.0
    boxes = map_boxes(maps)
    assert torch.allclose(boxes[0], torch.tensor([0.4, 0.0, 0.8, 1.0]))
    assert float(boxes[1, 2] - boxes[1, 0]) > BOX_MAX_EXTENT
    assert map_boxes(torch.ones(h, w)).tolist() == [0.0, 0.0, 1.0, 1.0]  # a flat map: the whole frame
    kept = clamp_offset(map_centroids(maps), torch.tensor([[0.3, 0.0]] * 3), box=boxes)
    assert kept[:, 0].tolist() == pytest.approx([0.2, 0.3, 0.3], abs=1e-6)


def test_the_motion_path_widget_draws_with_the_same_rule():
    """js/motion_math.js clampOffset (the path the widget draws) equals core.shift.clamp_offset
    (what the nodes apply, centre part) on the frame's inside, margins, edges and outside."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: `node` must be on PATH to run js/motion_math.js")
    grid = [-0.1, 0.0, 0.05, 0.15, 0.3, 0.5, 0.84, 0.85, 0.9, 1.0]
    moves = [-1.0, -0.4, -0.2, -0.05, 0.0, 0.1, 0.3, 0.7, 1.0]
    cases = [[[cx, cy], [dx, dy]] for cx in grid for cy in grid[::3] for dx in moves for dy in moves[::4]]
    script = Path(__file__).resolve().parent / "js" / "edge_cases.mjs"
    run = subprocess.run([node, str(script)], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    js = torch.tensor(json.loads(run.stdout), dtype=torch.float64)
    centres = torch.tensor([c for c, _ in cases], dtype=torch.float64)
    offsets = torch.tensor([o for _, o in cases], dtype=torch.float64)
    py = clamp_offset(centres, offsets)
    assert len(cases) > 1000 and torch.allclose(js, py, atol=1e-12)
    assert (py != offsets).any() and (py == offsets).any()  # both clamped and free moves are compared
