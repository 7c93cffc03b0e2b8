"""SelfSegmentation: K-means on one grid's self-attention features, segments labelled by words.

Tiny-model tests (the real host samples in-process): the masks and background cover the image
exactly once, K is respected, the recorder only observes (bit-identical samples), nothing
survives a run, an interrupted run is not segmented, and the inputs are checked. LocalBlend and
RegionAttention take the masks as their region.

Semantic tier (trained shapes model, skipped without its weights), prompt "a red circle and a
blue square", words "circle, square", seeds 0-11, 16 steps, cfg 5, defaults (K 10, threshold
0.15, window 0.3-1, auto grid 16x16). True mask of a word: every object of its colour the model
drew, read from the pixels (the mask is what it drew). Measured IoU on the second shapes model,
24 objects of 552-1858 px (`python tests/test_segment.py --all`; the first model's figures, 24
objects of 103-1358 px, after the slash):

    masks                         mean            lowest          objects >= 0.8
    edges 'image' (default)       0.988 / 0.944   0.976 / 0.805   24 / 24 of 24
    edges 'grid'                  0.835 / 0.743   0.687 / 0.337   19 / 12 of 24
    cross-attention mask (>= 0.5) 0.406 / 0.556   0.295 / 0.134    0 / 4 of 24

The image-edge settings (controllers/segment.py GUIDE_*) were chosen on seeds 0-5 of the first
model (lowest 0.805, seed 0's circle of 161 px) and checked on seeds 6-11 (lowest 0.880). The
test asserts IoU >= 0.9 for every object (measured 0.976 at lowest; the brief's bar was 0.8) and
the order image > grid > cross-attention of the means.

LocalBlend on a P2P colour swap (square blue -> yellow), background PSNR source vs target (pixels
more than 6 px from every object), cross-attention mask (words 'square', threshold 0.3, dilation 1,
1/1) against the segmentation mask of the source: seed 2: 45.95 / 49.43 dB; seed 5: 51.01 / 51.19
dB (first model, grid edges: 44.36 / 45.47, 44.37 / 44.06). The test runs seed 2 (time) and allows
PSNR_SLACK below the cross-attention mask's.

    python tests/test_segment.py   # prints the measured IoUs and background PSNRs (needs the weights)
"""
import json
import os
import sys

if __name__ == "__main__":  # standalone measurement: configure the host and the pack first
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    harness.setup_host()
    harness.install_pack_package()

import pytest  # noqa: E402
import torch  # noqa: E402

import harness  # noqa: E402
from attention_motion.controllers.segment import (SegmentationError, SegmentRecorder, class_masks,  # noqa: E402
                                                  kmeans, label_segments)
from attention_motion.nodes.segment import SelfSegmentation, SelfSegmentationMasks  # noqa: E402

PROMPT = "a red cat sitting on a car"
WORDS = "cat, car"
STEPS = 4


# -- pure torch -----------------------------------------------------------------------------------
def test_kmeans_is_deterministic_respects_k_and_separates_blobs():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    pts = torch.cat([c + 0.3 * torch.randn(20, 2, generator=g) for c in centres])
    a, b = kmeans(pts, 3), kmeans(pts.clone(), 3)
    assert torch.equal(a, b)
    assert set(a.tolist()) == {0, 1, 2}
    for i in range(3):  # every blob is one cluster
        assert len(set(a[20 * i:20 * (i + 1)].tolist())) == 1
    assert int(kmeans(pts, 5).max()) <= 4
    assert set(kmeans(pts[:3], 8).tolist()) <= {0, 1, 2}  # K above the points: one point each


def test_labels_follow_cross_attention_and_background_threshold():
    segs = torch.tensor([0, 0, 1, 1, 2, 2])
    cross = torch.tensor([[1.0, 0.9, 0.0, 0.0, 0.1, 0.0],   # word 0 in segment 0
                          [0.0, 0.0, 0.8, 1.0, 0.1, 0.0]])  # word 1 in segment 1
    cls, scores = label_segments(segs, 3, cross, 0.3)
    assert cls.tolist() == [1, 2, 0] and scores.shape == (3, 2)
    cls, _ = label_segments(segs, 3, cross, 0.99)
    assert cls.tolist() == [0, 0, 0]


def test_class_masks_cover_every_pixel_once():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(2, 4, 5, 7, generator=g)
    for image in (None, torch.rand(2, 37, 53, 3, generator=g)):
        m = class_masks(scores, (37, 53), image)
        assert m.shape == (2, 4, 37, 53)
        assert torch.equal(m.sum(1), torch.ones(2, 37, 53))


def test_image_edges_follow_the_picture_inside_a_cell():
    # an object (class 1) whose true edge is at x = 29 of 64 px; the 8x8 grid puts it at a cell edge (32)
    image = torch.zeros(1, 64, 64, 3)
    image[:, :, 29:, 0] = 1.0
    scores = torch.zeros(1, 2, 8, 8)
    scores[:, 1, :, 4:] = 1.0
    scores[:, 0] = 1 - scores[:, 1]
    grid_edge = int(class_masks(scores, (64, 64))[0, 1, 0].nonzero()[0])
    image_edge = int(class_masks(scores, (64, 64), image)[0, 1, 0].nonzero()[0])
    assert grid_edge == 32 and image_edge == 29
    flat = class_masks(scores, (64, 64), torch.full((1, 64, 64, 3), 0.5))  # no colour edge: the grid's
    assert int(flat[0, 1, 0].nonzero()[0]) == 32


# -- tiny model -----------------------------------------------------------------------------------
def _record(model, clip, clusters=4, threshold=0.15, resolution="auto", start=0.0, end=1.0, words=WORDS):
    return SelfSegmentation().record(model, clip, PROMPT, words, clusters, threshold, resolution, start, end)


def _sample(model, clip, seed=3, steps=STEPS):
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    return harness.ksample(model, pos, neg, harness.empty_latent(128, 128, 1), seed=seed, steps=steps)


def _image(vae, latent):
    with torch.inference_mode():
        return vae.decode(latent)


@pytest.mark.host
def test_masks_cover_the_image_once_and_k_is_respected(tiny_sd15):
    model, clip, vae = tiny_sd15
    for k in (2, 6):
        m, rec = _record(model, clip, clusters=k)
        img = _image(vae, _sample(m, clip))
        h, w = img.shape[1:3]
        for edges in ("image", "grid"):
            masks, labels, background = SelfSegmentationMasks().masks(rec, img, edges)
            assert masks.shape == (2, h, w) and background.shape == (1, h, w) and labels.shape == (1, h, w, 3)
            assert set(masks.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(masks.sum(0) + background[0], torch.ones(h, w))  # exactly once
        seg = rec.result
        assert int(seg.segments.max()) < k and seg.segment_words.shape == (1, k)
        assert int(seg.classes.max()) <= 2
        assert rec.features == {}  # the recorded features are dropped once segmented
        assert seg.segments.shape[-2] * seg.segments.shape[-1] <= 32 * 32


@pytest.mark.host
def test_the_recorder_only_observes(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, rec = _record(model, clip)
    plain = _sample(model, clip)
    recorded = _sample(m, clip)
    assert rec.recorded
    assert torch.equal(plain, recorded)


@pytest.mark.host
def test_nothing_survives_a_run(tiny_sd15):
    model, clip, vae = tiny_sd15
    m, rec = _record(model, clip, start=0.5)
    _sample(m, clip, seed=1)
    counts = {key: slot[1] for key, slot in rec.features.items()}
    cross_count = rec.cross_acc.count
    first = rec.segment().segments.clone()
    runs = rec.runs
    _sample(m, clip, seed=2)
    assert rec.runs == runs + 1 and rec.result is None  # the first run's result is gone
    assert {key: slot[1] for key, slot in rec.features.items()} == counts  # one run's steps, not two
    assert rec.cross_acc.count == cross_count
    assert counts and all(c == STEPS // 2 for c in counts.values())  # steps 2 and 3 of 4 (window 0.5-1)
    assert rec.segment().segments.shape == first.shape


class _StopAt:
    """UNet function wrapper (installed below the pack's) that raises at model call ``n`` of a run."""

    def __init__(self):
        self.n, self.calls = None, 0

    def __call__(self, apply_model, args):
        self.calls += 1
        if self.n is not None and self.calls >= self.n:
            raise KeyboardInterrupt("stopped by the test")
        return apply_model(args["input"], args["timestep"], **args["c"])

    def __deepcopy__(self, memo):
        return self


@pytest.mark.host
def test_an_interrupted_run_is_not_segmented(tiny_sd15):
    from test_p2p import custom
    model, clip, vae = tiny_sd15
    stop = _StopAt()
    base = model.clone()
    base.set_model_unet_function_wrapper(stop)
    m, rec = _record(base, clip)
    pos, neg, lat = harness.encode(clip, PROMPT), harness.encode(clip, ""), harness.empty_latent(128, 128, 1)
    # the pack's sampler publishes the run's steps on every host (ComfyUI's KSampler does not on 2024
    # hosts: there a stopped run cannot be told from a finished one, and the graph never runs
    # SelfSegmentationMasks after a failed sampler anyway)
    img = _image(vae, custom(m, pos, neg, lat, "euler", steps=STEPS))
    assert SelfSegmentationMasks().masks(rec, img)[0].shape[0] == 2  # a finished run is segmented
    stop.calls, stop.n = 0, 3  # the next run stops at its third step
    with pytest.raises(KeyboardInterrupt):
        custom(m, pos, neg, lat, "euler", steps=STEPS)
    with pytest.raises(ValueError, match=r"SelfSegmentation: the last run stopped at step 2 of 4"):
        SelfSegmentationMasks().masks(rec, img)
    assert rec.result is None


@pytest.mark.host
def test_errors_name_node_input_and_what_is_valid(tiny_sd15):
    model, clip, vae = tiny_sd15
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'clusters' is 1; use 2 to 16"):
        _record(model, clip, clusters=1)
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'clusters' is 17; use 2 to 16"):
        _record(model, clip, clusters=17)
    with pytest.raises(ValueError, match=r"SelfSegmentation: word 'dog' \(input 'words'\) is not in the prompt"):
        _record(model, clip, words="cat, dog")
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'resolution': resolution '1/3'"):
        _record(model, clip, resolution="1/3")
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'resolution' is '1/4, 1/8'; give 'auto' or one"):
        _record(model, clip, resolution="1/4, 1/8")
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'resolution' is '1/16', but the model has no attention"):
        _record(model, clip, resolution="1/16")
    with pytest.raises(ValueError, match=r"SelfSegmentation: input 'start' \(0.8\) is after 'end' \(0.2\)"):
        _record(model, clip, start=0.8, end=0.2)
    big, _ = _record(model, clip, resolution="1/1")  # 128x128 cells at 1024 px: the N x N would be 1 GB
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    with pytest.raises(SegmentationError, match=r"SelfSegmentation: input 'resolution' gives a 128x128 grid at this "
                                                r"image size; segmentation works on grids of at most 4096 cells"):
        harness.ksample(big, pos, neg, harness.empty_latent(1024, 1024, 1), steps=1)
    _, rec = _record(model, clip)
    img = torch.zeros(1, 128, 128, 3)
    with pytest.raises(ValueError, match=r"SelfSegmentation: nothing recorded"):
        SelfSegmentationMasks().masks(rec, img)
    with pytest.raises(ValueError, match=r"SelfSegmentationMasks: input 'segments' is not a SELF_SEGMENTS"):
        SelfSegmentationMasks().masks("segments", img)
    with pytest.raises(ValueError, match=r"SelfSegmentationMasks: input 'image' is not an IMAGE"):
        SelfSegmentationMasks().masks(rec, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"SelfSegmentationMasks: input 'edges' is 'pixels'; use one of"):
        SelfSegmentationMasks().masks(rec, img, "pixels")
    m, rec = _record(model, clip)
    _sample(m, clip)  # a recorded run of one row
    with pytest.raises(ValueError, match=r"SelfSegmentationMasks: input 'image' holds 2 images but the sampled latent "
                                         r"had 1 rows; connect the decoded IMAGE of that sampler, or set 'edges' to 'grid'"):
        SelfSegmentationMasks().masks(rec, torch.zeros(2, 128, 128, 3))
    assert SelfSegmentationMasks().masks(rec, torch.zeros(2, 128, 128, 3), "grid")[0].shape == (2, 128, 128)
    with pytest.raises(SegmentationError, match="nothing recorded"):
        SegmentRecorder(["cat"], [[3]], 4).segment()


@pytest.mark.host
def test_local_blend_keeps_the_source_outside_a_given_mask(tiny_sd15):
    from test_p2p import build, custom

    from attention_motion.nodes.blend import LocalBlend
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, self_replace=0.2)
    h, w = lat["samples"].shape[-2:]
    region = torch.zeros(1, h * 8, w * 8)
    region[:, : h * 4, : w * 4] = 1.0  # top-left quarter
    with torch.inference_mode():
        m2, blend = LocalBlend().build(m, clip, "no such word", "", 0.5, 0, 0.0, "1/4", mask=region)
    out = custom(m2, pos, harness.encode(clip, ""), lat, "euler", steps=STEPS)
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[: h // 2, : w // 2] = False
    assert torch.equal(blend.final_mask[1], (~outside).float())
    assert torch.equal(out[1][:, outside], out[0][:, outside])
    assert not torch.equal(out[1][:, ~outside], out[0][:, ~outside])  # the edit acts inside
    with pytest.raises(ValueError, match=r"LocalBlend: input 'mask' is not a MASK"):
        LocalBlend().build(m, clip, "cat", "", 0.5, 0, 0.0, "1/4", mask=torch.zeros(1, 1, 2, 2))


@pytest.mark.host
def test_region_attention_takes_a_segmentation_mask(tiny_sd15):
    from attention_motion.nodes.region import RegionAttention
    model, clip, vae = tiny_sd15
    m, rec = _record(model, clip)
    img = _image(vae, _sample(m, clip))
    masks = SelfSegmentationMasks().masks(rec, img)[0]
    regions = json.dumps([{"prompt": "a blue cat", "mask": 0}])
    with torch.inference_mode():
        regional = RegionAttention().patch(model, clip, regions, mask=masks)[0]
    assert not torch.equal(_sample(regional, clip), _sample(model, clip))
    with pytest.raises(ValueError, match=r"RegionAttention: region 'a blue cat' uses mask 2 but the 'mask' input holds 2"):
        RegionAttention().patch(model, clip, json.dumps([{"prompt": "a blue cat", "mask": 2}]), mask=masks)


# -- semantic: shapes model -------------------------------------------------------------------------
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")
SHAPES_PROMPT = "a red circle and a blue square"
SHAPES_WORDS = (("circle", "red"), ("square", "blue"))
SEEDS = tuple(range(12))  # 0-5 chose the image-edge settings, 6-11 checked them
SHAPES_STEPS, CFG = 16, 5.0
IOU_MIN = 0.9          # every object, image edges; measured min 0.976 (seeds 0-5), 0.976 (6-11) (first model
#                        0.805, 0.880, against the brief's bar of 0.8)
BLEND_SEEDS = (2,)
PSNR_SLACK = 0.5       # dB; measured +3.48 (seed 2), +0.19 (seed 5) (first model +1.11, -0.31)


def _iou(a, b) -> float:
    a, b = a.bool(), b.bool()
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def segmentation_ious(model, clip, vae, seeds=SEEDS):
    """Per seed and word: IoU of the masks with image edges, with grid edges, of the cross-attention
    mask, and the true area in px. The true mask of a word: every object of its colour the model drew."""
    from attention_motion.core import render
    from attention_motion.shapes import quality as q
    out = {}
    for seed in seeds:
        m, rec = SelfSegmentation().record(model, clip, SHAPES_PROMPT, ", ".join(w for w, _ in SHAPES_WORDS),
                                           10, 0.15, "auto", 0.3, 1.0)
        with torch.inference_mode():
            pos, neg = q.encode(clip, SHAPES_PROMPT), q.encode(clip, "")
            img = q.decode(vae, q.ksample(m, pos, neg, seed, SHAPES_STEPS, CFG))
        image = SelfSegmentationMasks().masks(rec, img.movedim(1, -1), "image")[0]
        grid = SelfSegmentationMasks().masks(rec, img.movedim(1, -1), "grid")[0]
        cross = render.masks(rec.result.cross, tuple(img.shape[-2:]), 0.5)
        objs = q.read_objects(img[0])
        for i, (word, colour) in enumerate(SHAPES_WORDS):
            drawn = [o["mask"] for o in objs if o["colour"] == colour]
            if drawn:
                truth = torch.stack(drawn).any(0)
                out[(seed, word)] = (_iou(image[i], truth), _iou(grid[i], truth), _iou(cross[i], truth),
                                     int(truth.sum()))
    return out


def blend_backgrounds(pack, model, clip, vae, seed):
    """Background PSNR source vs target of a P2P colour swap with LocalBlend: cross-attention mask
    (words 'square', threshold 0.3, dilation 1, 1/1) against the self-segmentation mask of the source."""
    import nodes as host_nodes

    from attention_motion.nodes.blend import LocalBlend
    from attention_motion.nodes.p2p import P2PReplace
    from attention_motion.shapes import probes
    from attention_motion.shapes import quality as q
    source, target = SHAPES_PROMPT, "a red circle and a yellow square"
    with torch.inference_mode():
        neg = q.encode(clip, "")
        m, rec = SelfSegmentation().record(model, clip, source, "circle, square", 10, 0.15, "auto", 0.3, 1.0)
        seg_img = q.decode(vae, q.ksample(m, q.encode(clip, source), neg, seed, SHAPES_STEPS, CFG))
        square = SelfSegmentationMasks().masks(rec, seg_img.movedim(1, -1))[0][1:2]
        m2, pos, lat = P2PReplace().build(model, clip, source, target, "replace", 0.8, "", 0.4, "", 128, 128)
        images = {}
        for name, kw in (("cross", {}), ("segmentation", {"mask": square})):
            m3, _ = LocalBlend().build(m2, clip, "square", "", 0.3, 1, 0.2, "1/1", **kw)
            lat_out = host_nodes.common_ksampler(m3, seed, SHAPES_STEPS, CFG, "euler", "normal", pos, neg, lat)[0]
            images[name] = q.decode(vae, lat_out["samples"])
    masks = [o["mask"] for im in images.values() for row in im for o in q.read_objects(row)]
    bg = probes.background_mask(masks)
    return {name: probes.psnr(im[0], im[1], bg) for name, im in images.items()}


@pytest.fixture(scope="module")
def shapes(host, pack):
    if not os.path.isfile(os.path.join(WEIGHTS, "unet.safetensors")):
        pytest.skip("shapes model weights are not in models/shapes")
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    model, clip, vae = getattr(node, node.FUNCTION)()
    return pack, model, clip, vae


@pytest.mark.semantic
def test_segmentation_masks_reach_the_true_masks_and_beat_the_cross_attention_masks(shapes):
    _, model, clip, vae = shapes
    ious = segmentation_ious(model, clip, vae)
    assert len(ious) >= len(SEEDS) * 3 // 2, ious  # the model drew most objects
    image, grid, cross = ([v[k] for v in ious.values()] for k in range(3))
    assert min(image) >= IOU_MIN, ious  # every object
    mean = [sum(x) / len(x) for x in (image, grid, cross)]
    assert mean[0] > mean[1] > mean[2], (mean, ious)


@pytest.mark.semantic
@pytest.mark.parametrize("seed", BLEND_SEEDS)
def test_local_blend_keeps_the_background_with_the_segmentation_mask(shapes, seed):
    psnr = blend_backgrounds(*shapes, seed)
    assert psnr["segmentation"] >= psnr["cross"] - PSNR_SLACK, psnr


if __name__ == "__main__":
    pack = harness.import_pack()
    harness.init_host()
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    args = getattr(node, node.FUNCTION)()
    if "--blend" not in sys.argv:
        for (seed, word), (im, g, c, area) in sorted(segmentation_ious(*args).items()):
            print(f"seed {seed} {word}: IoU image edges {im:.3f}, grid edges {g:.3f}, cross-attention {c:.3f}, "
                  f"area {area} px")
    for seed in BLEND_SEEDS + ((5,) if "--all" in sys.argv else ()):  # noqa
        print(f"seed {seed}: background PSNR source vs target:", blend_backgrounds(pack, *args, seed))
