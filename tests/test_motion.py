"""Tier 1: motion paths, keyframes, schedules and chunks (pure logic)."""
import pytest
import torch

from attention_motion.core.motion import (
    chunk_rows, ease, frame_offsets, interpolate, parse_keyframes, schedule_shifts, straight_path,
)

pytestmark = pytest.mark.core


def test_straight_path_spreads_the_total_over_the_clip():
    p = straight_path(0.3, -0.15, 4)
    assert torch.allclose(p, torch.tensor([[0, 0], [0.1, -0.05], [0.2, -0.1], [0.3, -0.15]]), atol=1e-6)
    assert torch.equal(straight_path(0.3, 0.2, 1), torch.zeros(1, 2))


def test_ease_in_out_is_slow_at_the_ends_and_symmetric():
    assert ease(0.0, "ease-in-out") == 0.0 and abs(ease(1.0, "ease-in-out") - 1.0) < 1e-12
    assert abs(ease(0.5, "ease-in-out") - 0.5) < 1e-12
    assert ease(0.1, "ease-in-out") < 0.1 < 0.9 < ease(0.9, "ease-in-out")
    p = straight_path(0.4, 0.0, 9, "ease-in-out")[:, 0]
    steps = p[1:] - p[:-1]
    assert steps[0] < steps[3] and steps[-1] < steps[4]
    assert torch.allclose(steps, steps.flip(0), atol=1e-6)


def test_keyframes_interpolate_and_hold_at_the_ends():
    keys = parse_keyframes("[[2, 0.0, 0.0], [6, 0.4, -0.2], [8, 0.4, 0.2]]", 10, ["cat"])["cat"]
    off = interpolate(keys, 10, "linear")
    assert torch.allclose(off[0], torch.tensor([0.0, 0.0])) and torch.allclose(off[2], off[0])
    assert torch.allclose(off[4], torch.tensor([0.2, -0.1]))
    assert torch.allclose(off[7], torch.tensor([0.4, 0.0]))
    assert torch.allclose(off[9], torch.tensor([0.4, 0.2]))


def test_keyframes_may_differ_per_word_and_unnamed_words_follow_the_path():
    off = frame_offsets(5, ["cat", "dog"], 0.0, 0.2, '{"cat": [[0, 0, 0], [4, -0.4, 0]]}')
    assert off.shape == (5, 2, 2)
    assert torch.allclose(off[4, 0], torch.tensor([-0.4, 0.0]))
    assert torch.allclose(off[4, 1], torch.tensor([0.0, 0.2]))
    assert torch.allclose(off[2, 1], torch.tensor([0.0, 0.1]))


def test_schedules():
    off = straight_path(0.3, 0.0, 4)[:, None]
    var = schedule_shifts(off, "variation")
    inc = schedule_shifts(off, "incremental")
    assert torch.allclose(var[:, 0, 0], torch.tensor([0.0, 0.1, 0.2, 0.3]))
    assert torch.allclose(inc[:, 0, 0], torch.tensor([0.0, 0.1, 0.1, 0.1]))
    assert torch.allclose(inc.cumsum(0), var, atol=1e-6)  # incremental steps add up to the path


def test_chunks_keep_the_anchor():
    assert chunk_rows(10, 0, 0) == list(range(10))
    assert chunk_rows(10, 4, 0) == [0, 1, 2, 3]
    assert chunk_rows(10, 4, 1) == [0, 4, 5, 6, 7]
    assert chunk_rows(10, 4, 2) == [0, 8, 9]
    with pytest.raises(ValueError, match="chunk_index is 3"):
        chunk_rows(10, 4, 3)


@pytest.mark.parametrize("text,match", [
    ("[[0, 0, 0], [3, 0.2", "not valid JSON"),
    ("[[0, 0]]", r"each entry must be \[frame, dx, dy\]"),
    ("[]", "non-empty list"),
    ('[[0, "a", 0]]', "dx must be a finite number"),
    ("[[1.5, 0, 0]]", "whole number"),
    ("[[12, 0, 0]]", r"outside the clip \(frames 0..9\)"),
    ("[[0, 0, 0], [0, 0.1, 0]]", "more than one keyframe"),
    ("[[0, 0, 0], [5, 1.5, 0]]", "out of range"),
    ('{"horse": [[0, 0, 0]]}', "not among the moving words"),
    ("42", "non-empty list"),
])
def test_bad_keyframes_say_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        frame_offsets(10, ["cat"], 0.0, 0.0, text)


def test_bad_frames_and_shifts():
    with pytest.raises(ValueError, match="at least 1 frame"):
        frame_offsets(0, ["cat"], 0.1, 0.0)
    with pytest.raises(ValueError, match="out of range"):
        frame_offsets(4, ["cat"], 1.2, 0.0)
    with pytest.raises(ValueError, match="interpolation"):
        frame_offsets(4, ["cat"], 0.1, 0.0, "", "cubic")
    with pytest.raises(ValueError, match="schedule"):
        schedule_shifts(torch.zeros(2, 1, 2), "sideways")
