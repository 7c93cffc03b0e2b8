"""The guided filter (core/guided.py) as pure math: box means, edge following, the fast variant."""
import torch
import torch.nn.functional as F

from attention_motion.core.guided import box_mean, guided_filter


def test_box_mean_is_the_clipped_window_mean():
    x = torch.rand(2, 37, 53, generator=torch.Generator().manual_seed(0))
    for r in (0, 1, 3, 10, 60):
        total = F.avg_pool2d(F.pad(x[None], (r, r, r, r)), 2 * r + 1, stride=1)[0]
        count = F.avg_pool2d(F.pad(torch.ones(1, 1, 37, 53), (r, r, r, r)), 2 * r + 1, stride=1)[0]
        assert torch.allclose(box_mean(x, r), total / count, atol=1e-6), r


def _step(size=64, edge=29, cells=8):
    """An image with a colour edge at x = ``edge`` and class scores whose edge is the grid cell's."""
    image = torch.zeros(3, size, size)
    image[0, :, edge:] = 1.0
    coarse = torch.zeros(2, cells, cells)
    coarse[1, :, cells // 2:] = 1.0
    coarse[0] = 1 - coarse[1]
    return image, F.interpolate(coarse[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def _edge(scores):
    return int((scores[1] > scores[0])[0].nonzero()[0])


def test_scores_move_to_the_colour_edge_and_stay_without_one():
    image, up = _step()
    assert _edge(up) == 32
    assert _edge(guided_filter(image, up, 8, 1e-2)) == 29
    flat = guided_filter(torch.full_like(image, 0.3), up, 8, 1e-2)
    assert _edge(flat) == 32
    constant = guided_filter(image, torch.full((1, 64, 64), 0.7), 8, 1e-2)
    assert torch.allclose(constant, torch.full_like(constant, 0.7), atol=1e-5)


def test_the_fast_filter_agrees_with_the_full_one():
    image, up = _step(size=256, edge=117, cells=16)
    image = image + 0.05 * torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    full = guided_filter(image, up, 24, 1e-2)
    for s in (2, 3):
        fast = guided_filter(image, up, 24, 1e-2, subsample=s)
        assert fast.shape == full.shape
        agree = ((fast[1] > fast[0]) == (full[1] > full[0])).float().mean()
        assert agree >= 0.99, (s, float(agree))
