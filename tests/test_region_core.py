"""Tier 1: region boxes, paths, rasterising, boxes from maps, weight schedules, the region mix."""
import math

import pytest
import torch

from attention_motion.controllers.region import attend, mix_regions
from attention_motion.core.boxes import (WeightSchedule, box_coverage, boxes_from_maps, mask_coverage,
                                         parse_regions, parse_weight_list, path_boxes, regions_to_json,
                                         row_boxes)

pytestmark = pytest.mark.core


def test_schedules_follow_their_formula():
    steps = 5
    prog = [i / (steps - 1) for i in range(steps)]
    const = WeightSchedule("constant", 0.7, 0.1)
    assert [const.weight(i, p) for i, p in enumerate(prog)] == [0.7] * steps
    lin = WeightSchedule("linear", 1.0, 0.2)
    assert [round(lin.weight(i, p), 6) for i, p in enumerate(prog)] == [1.0, 0.8, 0.6, 0.4, 0.2]
    cos = WeightSchedule("cosine", 1.0, 0.0)
    got = [cos.weight(i, p) for i, p in enumerate(prog)]
    assert got[0] == pytest.approx(1.0) and got[-1] == pytest.approx(0.0) and got[2] == pytest.approx(0.5)
    assert got[1] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # slow start, unlike linear
    lst = WeightSchedule("list", values=(1.0, 0.5, 0.25))
    assert [lst.weight(i, 0.0) for i in range(5)] == [1.0, 0.5, 0.25, 0.25, 0.25]  # last value holds
    with pytest.raises(ValueError, match="one of"):
        WeightSchedule("step")
    with pytest.raises(ValueError, match="at least one value"):
        WeightSchedule("list")
    assert parse_weight_list("1, 0.8 0.5,") == (1.0, 0.8, 0.5)
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_weight_list("1, x")


def test_parse_regions_and_round_trip():
    text = ('[{"prompt": "a red circle", "box": [0.1, 0.2, 0.3, 0.4]},'
            ' {"prompt": "a car", "path": [[0, 0, 0.2, 0.2], [0.8, 0, 0.2, 0.2]], "weight": 0.5},'
            ' {"prompt": "sky", "mask": 1}]')
    regs = parse_regions(text)
    assert [r.prompt for r in regs] == ["a red circle", "a car", "sky"]
    assert regs[0].path.tolist() == [[pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3), pytest.approx(0.4)]]
    assert regs[1].path.shape == (2, 4) and regs[1].weight == 0.5
    assert regs[2].mask == 1 and regs[2].path is None
    again = parse_regions(regions_to_json(regs))
    assert [(r.prompt, r.mask, r.weight) for r in again] == [(r.prompt, r.mask, r.weight) for r in regs]
    assert torch.allclose(again[1].path, regs[1].path)
    assert parse_regions("") == []


@pytest.mark.parametrize("text, match", [
    ("[{", "not valid JSON"),
    ('[{"box": [0, 0, 1, 1]}]', "non-empty 'prompt'"),
    ('[{"prompt": "a", "box": [0, 0, 1]}]', r"a box is \[x, y, w, h\]"),
    ('[{"prompt": "a", "box": [0, 0, 0, 1]}]', "above 0"),
    ('[{"prompt": "a", "box": [0, 0, 1, 1], "mask": 0}]', "exactly one of"),
    ('[{"prompt": "a", "boxes": [0, 0, 1, 1]}]', "unknown keys"),
    ('[{"prompt": "a", "path": []}]', "non-empty list of boxes"),
    ('[{"prompt": "a", "mask": -1}]', "index"),
    ('"a"', "expected a list"),
])
def test_parse_regions_errors_say_what_is_valid(text, match):
    with pytest.raises(ValueError, match=match):
        parse_regions(text)


def test_box_coverage_is_area_share_per_cell():
    cov = box_coverage(torch.tensor([0.25, 0.5, 0.5, 0.5]), (4, 4))
    expected = torch.zeros(4, 4)
    expected[2:, 1:3] = 1.0
    assert torch.equal(cov, expected)
    half = box_coverage(torch.tensor([0.125, 0.0, 0.25, 1.0]), (2, 4))  # half of cells 0 and 1
    assert torch.allclose(half, torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0]]))
    # a grid rounded up past the image edge: cells span 0.4 of the image, the last is clipped to it
    padded = box_coverage(torch.tensor([0.0, 0.0, 0.5, 1.0]), (1, 3), extent=(1.0, 1.2))
    assert torch.allclose(padded, torch.tensor([[1.0, 0.25, 0.0]]))
    right = box_coverage(torch.tensor([0.8, 0.0, 0.2, 1.0]), (1, 3), extent=(1.0, 1.2))
    assert torch.allclose(right, torch.tensor([[0.0, 0.0, 1.0]]))
    # batched boxes keep their leading dims; parts outside the image are ignored
    many = box_coverage(torch.tensor([[0.0, 0.0, 0.5, 0.5], [-0.5, -0.5, 1.0, 1.0]]), (2, 2))
    assert torch.equal(many[0], many[1]) and many.shape == (2, 2, 2)


def test_mask_coverage_means_over_cells():
    m = torch.zeros(8, 8)
    m[:4, :4] = 1
    assert torch.equal(mask_coverage(m, (2, 2)), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert mask_coverage(m, (3, 5)).shape == (3, 5)


def test_paths_spread_over_frames_and_rows():
    path = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.8, 0.4, 0.2, 0.2]])
    b = path_boxes(path, 5)
    assert torch.allclose(b[:, 0], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    assert torch.allclose(b[:, 1], torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))
    assert torch.equal(path_boxes(path[:1], 3), path[:1].expand(3, 4))
    rows = row_boxes(path, 3)  # spread over the rows of the batch
    assert torch.allclose(rows[:, 0], torch.tensor([0.0, 0.4, 0.8]))
    framed = row_boxes(path, 3, frames=5)  # rows are the first frames of a 5-frame path
    assert torch.allclose(framed[:, 0], torch.tensor([0.0, 0.2, 0.4]))
    assert torch.allclose(row_boxes(path, 4, frames=2)[:, 0], torch.tensor([0.0, 0.8, 0.8, 0.8]))


def test_boxes_from_maps_threshold_and_bounding_box():
    maps = torch.zeros(2, 10, 20)
    maps[0, 2:5, 4:9] = 1.0
    maps[0, 0, 0] = 0.3  # below the threshold: ignored
    maps[1, 6:10, 10:20] = 0.15
    maps[1, 7, 15] = 0.4
    boxes = boxes_from_maps(maps, 0.5)
    assert torch.allclose(boxes[0], torch.tensor([4 / 20, 2 / 10, 5 / 20, 3 / 10]))
    assert torch.allclose(boxes[1], torch.tensor([15 / 20, 7 / 10, 1 / 20, 1 / 10]))
    low = boxes_from_maps(maps, 0.25)  # the 0.3 cell now counts for word 0
    assert torch.allclose(low[0], torch.tensor([0.0, 0.0, 9 / 20, 5 / 10]))
    grown = boxes_from_maps(maps[:1], 0.5, margin=0.1)
    assert torch.allclose(grown[0], torch.tensor([0.1, 0.1, 0.45, 0.5]))
    with pytest.raises(ValueError, match="empty"):
        boxes_from_maps(torch.zeros(1, 4, 4))


def test_mix_is_global_outside_and_normalised_on_overlap():
    torch.manual_seed(0)
    g = torch.randn(2, 6, 8)
    l1, l2 = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    cover = torch.zeros(2, 2, 6)
    cover[:, 0, :3] = 1.0  # region 1: cells 0-2
    cover[:, 1, 2:4] = 1.0  # region 2: cells 2-3 (overlap at cell 2)
    cover[:, 1, 4] = 0.5  # half of cell 4
    out = mix_regions(g, [l1, l2], cover, [1.0, 0.6])
    assert torch.equal(out[:, 5], g[:, 5])  # outside every region: exactly the global output
    assert torch.allclose(out[:, 0], l1[:, 0], atol=1e-6)
    assert torch.allclose(out[:, 3], g[:, 3] + 0.6 * (l2[:, 3] - g[:, 3]), atol=1e-6)
    assert torch.allclose(out[:, 2], g[:, 2] + (1.0 * (l1[:, 2] - g[:, 2]) + 0.6 * (l2[:, 2] - g[:, 2])) / 2, atol=1e-6)
    assert torch.allclose(out[:, 4], g[:, 4] + 0.5 * 0.6 * (l2[:, 4] - g[:, 4]), atol=1e-6)
    assert torch.equal(mix_regions(g, [l1, l2], cover, [0.0, 0.0]), g)


def test_attend_matches_explicit_softmax():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 8)
    heads, d = 2, 4
    qh, kh, vh = (t.reshape(2, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    ref = (torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), -1) @ vh).transpose(1, 2).reshape(2, 5, 8)
    assert torch.allclose(attend(q, k, v, heads), ref, atol=1e-5)


def test_footprints_are_discs_centred_in_their_boxes():
    from attention_motion.controllers.region import FOOTPRINT, footprints
    boxes = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.25, 0.5, 0.5]])
    f = footprints(boxes, (16, 16)).reshape(2, 16, 16)
    assert f.min() >= 0 and f.max() <= 1
    ys, xs = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    for i, (cx, cy) in enumerate(((0.25, 0.5), (0.75, 0.5))):
        m = f[i]
        assert abs(float((m * xs).sum() / m.sum()) / 16 - cx) < 1e-3
        assert abs(float((m * ys).sum() / m.sum()) / 16 - cy) < 1e-3
        inside = ((xs / 16 - cx) ** 2 + (ys / 16 - cy) ** 2).sqrt() <= FOOTPRINT * 0.5 - 1 / 16
        assert torch.all(m[inside] == 1)
    assert float(f[1].reshape(16, 16)[:, :8].sum()) == 0  # nothing outside its box


def test_place_words_moves_maps_and_keeps_rows_normalised():
    from attention_motion.controllers.region import place_words
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 3, 16, 8), -1)
    target = torch.zeros(2, 16)
    target[:, :4] = 0.45
    out = place_words(probs, {2: target, 3: target}, 1.0)
    assert torch.allclose(out.sum(-1), torch.ones(2, 3, 16), atol=1e-6)
    assert torch.allclose(out[:, :, :, 2], target.unsqueeze(1).expand(2, 3, 16), atol=1e-6)
    assert torch.equal(out[:, :, 4:, 2], torch.zeros(2, 3, 12))  # the words leave cells outside the footprint
    ratio = out[..., 5] / out[..., 0]  # the other tokens keep their proportions
    assert torch.allclose(ratio, probs[..., 5] / probs[..., 0], rtol=1e-4)
    half = place_words(probs, {2: target, 3: target}, 0.5)
    assert torch.allclose(half, (probs + out) / 2, atol=1e-6)
    assert torch.equal(place_words(probs, {2: target}, 0.0), probs)
    assert torch.equal(place_words(probs, {9: target}, 1.0), probs)  # a token past the context is ignored
