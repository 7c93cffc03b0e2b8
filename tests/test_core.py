"""Tier 1: pure tensor logic (no ComfyUI)."""
import pytest
import torch

from attention_motion.core.grid import attention_grid, level_grid, parse_levels
from attention_motion.core.maps import MapAccumulator, centroid, resample, word_maps
from attention_motion.core.render import heatmaps, masks
from attention_motion.core.shift import shift_maps, shift_tokens
from attention_motion.core.store import AttentionStore, StoreEmptyError

pytestmark = pytest.mark.core


@pytest.mark.parametrize("latent,n,expected", [
    ((64, 64), 64 * 64, (64, 64, 0)),
    ((64, 64), 16 * 16, (16, 16, 2)),
    ((64, 64), 8 * 8, (8, 8, 3)),
    ((48, 80), 24 * 40, (24, 40, 1)),
    ((45, 29), 12 * 8, (12, 8, 2)),  # odd sides round up at every level
    ((128, 96), 32 * 24, (32, 24, 2)),
])
def test_attention_grid_any_size(latent, n, expected):
    assert attention_grid(n, latent) == expected


def test_attention_grid_rejects_foreign_length():
    with pytest.raises(ValueError, match="cannot place 77"):
        attention_grid(77, (64, 64))


def test_level_grid_matches_attention_grid():
    for lv in range(4):
        h, w = level_grid((45, 29), lv)
        assert attention_grid(h * w, (45, 29))[2] == lv


def test_parse_levels():
    assert parse_levels("all") is None
    assert parse_levels("1/4, 1/8") == {2, 3}
    assert parse_levels("0,1") == {0, 1}
    for bad in ("1/3", "x", "9", ","):
        with pytest.raises(ValueError):
            parse_levels(bad)


def test_word_maps_mean_over_heads_and_tokens():
    probs = torch.softmax(torch.randn(2, 4, 6, 10), dim=-1)
    maps = word_maps(probs, [[1], [2, 3]], (2, 3))
    assert maps.shape == (2, 2, 2, 3)
    assert torch.allclose(maps[:, 0].reshape(2, 6), probs[..., 1].mean(1))
    assert torch.allclose(maps[:, 1].reshape(2, 6), probs[..., 2:4].mean(-1).mean(1))
    # the maps of every token together sum to one per query
    every = word_maps(probs, [[t] for t in range(10)], (2, 3)).sum(1)
    assert torch.allclose(every, torch.ones_like(every))


def test_accumulator_is_a_mean_with_constant_memory():
    acc = MapAccumulator((4, 4))
    ms = [torch.rand(1, 2, 8, 8) for _ in range(5)]
    for m in ms:
        acc.add(m)
    assert acc.total.shape == (1, 2, 4, 4)
    expected = torch.stack([resample(m, (4, 4)) for m in ms]).mean(0)
    assert torch.allclose(acc.mean(), expected, atol=1e-6)


def test_resample_preserves_mean_when_shrinking():
    m = torch.rand(3, 16, 16)
    assert torch.allclose(resample(m, (4, 4)).mean((-1, -2)), m.mean((-1, -2)), atol=1e-6)


def test_centroid_of_single_cell():
    m = torch.zeros(8, 8)
    m[2, 5] = 1
    c = centroid(m)
    assert torch.allclose(c, torch.tensor([5.5 / 8, 2.5 / 8]))


@pytest.mark.parametrize("size", [(8, 8), (16, 12), (32, 32)])
def test_shift_moves_centroid_by_fraction(size):
    h, w = size
    m = torch.zeros(h, w)
    m[h // 4: h // 4 + 2, w // 4: w // 4 + 2] = 1
    out = shift_maps(m, 0.25, 0.125)
    moved = centroid(out) - centroid(m)
    assert torch.allclose(moved, torch.tensor([0.25, 0.125]), atol=1e-5)


def test_shift_never_wraps_and_fills():
    m = torch.zeros(1, 4, 4)
    m[0, :, 3] = 1  # right column
    z = shift_maps(m, 0.25, 0.0, fill="zero")
    assert z.sum() == 0  # pushed out of the grid, nothing reappears on the left
    e = shift_maps(torch.arange(4.0).expand(4, 4), 0.5, 0.0, fill="edge")
    assert e[0].tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="fill"):
        shift_maps(m, 0.1, 0.1, fill="wrap")


def test_fractional_shift_interpolates_and_zero_is_identity():
    m = torch.rand(2, 6, 6)
    assert torch.equal(shift_maps(m, 0.0, 0.0), m)
    half = shift_maps(m, 0.5 / 6, 0.0)
    one = shift_maps(m, 1 / 6, 0.0)
    assert torch.allclose(half, 0.5 * m + 0.5 * one, atol=1e-6)


def test_shift_tokens_matches_shift_maps():
    flat = torch.rand(2, 12, 5)  # [rows, N=3*4, C]
    out = shift_tokens(flat, (3, 4), 0.25, -1 / 3)
    ref = shift_maps(flat.reshape(2, 3, 4, 5).permute(0, 3, 1, 2), 0.25, -1 / 3).permute(0, 2, 3, 1).reshape(2, 12, 5)
    assert torch.allclose(out, ref)


def test_render_shapes_and_mask_threshold():
    maps = torch.zeros(2, 3, 4, 4)
    maps[:, :, 1, 1] = 1
    hm = heatmaps(maps, (32, 32), image=torch.rand(2, 32, 32, 3))
    assert hm.shape == (6, 32, 32, 3) and hm.min() >= 0 and hm.max() <= 1
    mk = masks(maps, (32, 32), 0.5)
    assert mk.shape == (6, 32, 32)
    assert mk[0, 12, 12] == 1 and mk[0, 28, 28] == 0


def _store():
    return AttentionStore(prompt="a red circle", words=["circle"], token_indices=[[3]], step_range=(0.0, 1.0))


def test_store_empty_read_raises_with_guidance():
    with pytest.raises(StoreEmptyError, match="Connect the MODEL output"):
        _store().maps()


def test_store_levels_combine_and_roundtrip():
    s = _store()
    s.start_run()
    s.add(0, (8, 8), torch.ones(1, 1, 8, 8), (8, 8))
    s.add(1, (4, 4), 3 * torch.ones(1, 1, 4, 4), (8, 8))
    s.add(1, (4, 4), 3 * torch.ones(1, 1, 4, 4), (8, 8))
    assert s.grid == (8, 8)
    assert torch.allclose(s.maps(), torch.full((1, 1, 8, 8), (1 + 3 + 3) / 3))
    tensors, meta = s.to_tensors()
    loaded = AttentionStore.from_tensors(tensors, meta)
    assert loaded.words == ["circle"] and loaded.token_indices == [[3]] and loaded.grid == (8, 8)
    assert torch.equal(loaded.maps(), s.maps())
    assert set(loaded.level_maps()) == {0, 1}
    with pytest.raises(ValueError, match="not an attention store"):
        AttentionStore.from_tensors(tensors, {"format": "x"})


def test_store_start_run_forgets():
    s = _store()
    s.start_run()
    s.add(0, (4, 4), torch.ones(1, 1, 4, 4), (4, 4))
    s.start_run()
    assert not s.recorded
