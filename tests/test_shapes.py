"""The shapes world: generator, analytic encoder, object reader, loader node (fast checks).

The semantic behaviour of the pack's nodes on the trained model is in test_semantic.py.
"""
import inspect
import os

import pytest
import torch

from attention_motion.shapes import data, vae
from attention_motion.shapes import quality as q


@pytest.mark.core
def test_scenes_are_deterministic_and_captions_known():
    a, sa = data.batch(torch.Generator().manual_seed(3), 6)
    b, sb = data.batch(torch.Generator().manual_seed(3), 6)
    assert torch.equal(a, b)
    assert [s.caption for s in sa] == [s.caption for s in sb]
    caps = set(data.all_captions())
    assert len(caps) == 12 + 12 * 11
    assert all(s.caption in caps for s in sa)
    assert a.shape == (6, 3, 128, 128) and 0 <= float(a.min()) and float(a.max()) <= 1


@pytest.mark.core
def test_object_reader_recovers_generated_scenes():
    x, scenes = data.batch(torch.Generator().manual_seed(11), 16)
    for img, s in zip(x, scenes):
        objs = q.read_objects(img)
        r = q.score(s.caption, objs)
        assert r["exact"], (s.caption, [(o["colour"], o["shape"]) for o in objs])
        for o in s.objects:  # pixel centroid of the read object = analytic centroid (<1 px)
            got = [g for g in objs if g["colour"] == o.colour and g["shape"] == o.shape][0]
            cx, cy = data.shape_centroid(o.shape, o.cx, o.cy, o.r)
            assert abs(got["cx"] - cx) < 1.0 and abs(got["cy"] - cy) < 1.0


@pytest.mark.core
def test_analytic_encoder_is_8x8_pooling_of_features():
    x, _ = data.batch(torch.Generator().manual_seed(2), 64)
    A, b = vae.fit_whitening(vae.pooled_features(x))
    lat = vae.encode(x, A, b)
    assert lat.shape == (64, 4, 16, 16)
    assert torch.allclose(lat.mean((0, 2, 3)), torch.zeros(4), atol=1e-3)
    assert torch.allclose(lat.std((0, 2, 3)), torch.ones(4), atol=1e-2)
    with torch.no_grad():
        taesd = vae.analytic_encoder(A, b)(x[:4])
    assert (taesd - lat[:4]).abs().max() < 1e-4


WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")


@pytest.mark.host
def test_loader_node_gives_model_clip_vae(host, pack):
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    model, clip, vae_ = getattr(node, node.FUNCTION)()
    import comfy.model_patcher
    import comfy.sd
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    assert isinstance(clip, comfy.sd.CLIP) and isinstance(vae_, comfy.sd.VAE)
    # the host VAE's TAESD encoder is the analytic pooling encoder: a decoded-free check
    x, _ = data.batch(torch.Generator().manual_seed(4), 2)
    with torch.inference_mode():
        lat = vae_.encode(x.movedim(1, -1))
    from safetensors.torch import load_file
    A, b = vae.whitening_from_state(load_file(os.path.join(WEIGHTS, "vae.safetensors")))
    ref = vae.encode(x, A, b) / vae.SD15_SCALE  # raw latent; the UNet sees raw * 0.18215
    assert lat.shape == (2, 4, 16, 16)
    assert (lat - ref).abs().max() < 0.01 * float(ref.abs().max())


def test_quality_report_counts_every_caption_and_each_shape(host, pack):
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    report = q.evaluate(*getattr(node, node.FUNCTION)(), n=1, pairs=2, steps=2)
    single, pair = report["single"], report["pair"]
    assert single["n"] == 12 and pair["n"] == 2 and len(report["rows"]) == 14
    by_shape = single["correct_by_shape"]
    assert set(by_shape) == set(data.SHAPES)
    assert all(v in (0.0, 0.25, 0.5, 0.75, 1.0) for v in by_shape.values())  # 4 captions of each shape
    assert abs(sum(by_shape.values()) / 3 - single["correct"]) < 1e-9
    assert 0.0 <= single["exact"] <= single["correct"] <= 1.0
    assert pair["same_colour"]["n"] + pair["different_colour"]["n"] == 2
    lo, hi = pair["both_interval"]
    assert 0.0 <= lo <= pair["both_correct"] <= hi <= 1.0


@pytest.mark.core
def test_wilson_interval_matches_the_textbook_figures():
    lo, hi = q.wilson(8, 10)
    assert abs(lo - 0.4902) < 1e-3 and abs(hi - 0.9433) < 1e-3   # 8 of 10, the usual worked example
    assert q.wilson(0, 20)[0] == 0.0 and q.wilson(20, 20)[1] == 1.0
    assert q.wilson(0, 0) == [0.0, 1.0]
    narrow, wide = q.wilson(96, 132), q.wilson(16, 24)
    assert narrow[1] - narrow[0] < 0.5 * (wide[1] - wide[0])


@pytest.mark.core
def test_placement_of_a_split_object_is_measured_on_the_union():
    """The cross-image probe's place figures: a structure object whose output is split into two
    halves of different colours is in place as a whole, not as either half."""
    from attention_motion.shapes.probes_appearance import _placement
    target = torch.zeros(128, 128, dtype=torch.bool)
    target[40:72, 40:72] = True
    left, right = target.clone(), target.clone()
    left[:, 56:] = False
    right[:, :56] = False
    half = _placement(left, target)
    assert abs(half["offset"] - 8 / 128) < 1e-6 and abs(half["iou"] - 0.5) < 1e-6
    whole = _placement(left | right, target)
    assert whole == {"offset": 0.0, "iou": 1.0}
    moved = torch.roll(target, 4, dims=0)  # down 4 px: 28 of 36 rows overlap
    m = _placement(moved, target)
    assert abs(m["offset"] - 4 / 128) < 1e-6 and abs(m["iou"] - 28 / 36) < 1e-6


@pytest.mark.core
def test_every_pair_caption_is_measured_by_default_and_same_colour_pairs_are_told_apart():
    assert q.PAIR_CAPTIONS == 132
    assert inspect.signature(q.evaluate).parameters["pairs"].default == q.PAIR_CAPTIONS
    assert q.same_colour("a red circle and a red square")
    assert not q.same_colour("a red circle and a blue circle")


@pytest.mark.core
@pytest.mark.parametrize("argv, named", [(["--pairs", "133"], "--pairs"), (["--pairs", "-1"], "--pairs"),
                                          (["--n", "0"], "--n"), (["--cfg", "nan"], "--cfg"),
                                          (["--cfg", "inf"], "--cfg"), (["--steps", "0"], "--steps")])
def test_quality_refuses_out_of_range_numbers_before_loading_anything(argv, named, capsys):
    with pytest.raises(SystemExit) as exc:
        q.main(argv)
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.core
def test_teacher_forced_maps_follow_the_masks():
    from attention_motion.shapes import train
    torch.manual_seed(0)
    b, heads, g, tokens = 3, 2, 4, 10
    p = torch.softmax(torch.randn(b, heads, g * g, tokens), -1)
    masks = torch.zeros(b, train.MAX_OBJECTS, 16, 16)
    masks[:, 0, :8, :8] = 1.0      # object 0: top-left quarter
    masks[:, 1, 8:, 8:] = 1.0      # object 1: bottom-right quarter
    present = torch.tensor([[True, True], [True, False], [True, True]])
    rows = torch.tensor([True, True, False])
    out = train.forced_probs(p, masks, present, rows)
    assert torch.allclose(out.sum(-1), torch.ones(b, heads, g * g), atol=1e-6)
    assert torch.equal(out[2], p[2])                               # rows not forced are untouched
    c0, s0 = train.object_token_positions(0)
    top_left = torch.tensor([y * g + x for y in range(2) for x in range(2)])
    assert torch.allclose(out[0][:, top_left][..., [c0, s0]], torch.full((heads, 4, 2), train.FORCE_SHARE / 2))
    outside = 3 * g + 0  # bottom-left cell: in neither object
    assert torch.equal(out[0][:, outside][..., [c0, s0]], torch.zeros(heads, 2))
    c1, s1 = train.object_token_positions(1)
    # an absent object's words are not forced: they keep their share relative to the other free tokens
    assert torch.allclose(out[1][..., [c1, s1]] / out[1][..., [0]], p[1][..., [c1, s1]] / p[1][..., [0]], rtol=1e-4)


@pytest.mark.core
def test_attention_loss_prefers_maps_inside_the_masks():
    from attention_motion.shapes import train
    g, tokens = 8, 12
    masks = torch.zeros(1, train.MAX_OBJECTS, 16, 16)
    masks[0, 0, 4:12, 2:8] = 1.0
    present = torch.tensor([[True, False]])
    m = torch.nn.functional.adaptive_avg_pool2d(masks, g).flatten(2)[0, 0]  # [cells]
    good = torch.full((1, g * g, tokens), 1.0 / tokens)
    c, s = train.object_token_positions(0)
    good[0, :, [c, s]] = (m * train.FORCE_SHARE / 2).unsqueeze(-1)
    good = good / good.sum(-1, keepdim=True)
    flat = torch.full((1, g * g, tokens), 1.0 / tokens)
    assert float(train.attention_loss([good], masks, present)) < 0.5 * float(train.attention_loss([flat], masks, present))
    assert float(train.attention_loss([flat], masks, torch.zeros(1, 2, dtype=torch.bool))) == 0.0


@pytest.mark.core
def test_object_weighted_diffusion_loss_weighs_the_objects_and_their_rim():
    from attention_motion.shapes import train
    gen = torch.Generator().manual_seed(0)
    pred, eps = torch.randn(2, 4, 16, 16, generator=gen), torch.randn(2, 4, 16, 16, generator=gen)
    masks = torch.zeros(2, train.MAX_OBJECTS, 16, 16)
    masks[0, 0, 4:8, 4:8] = 1.0
    masks[1, 1, 10:12, 2:5] = 0.3  # a partly covered cell counts as the object's
    plain = torch.nn.functional.mse_loss(pred, eps)
    assert torch.equal(train.diffusion_loss(pred, eps, masks, None), plain)
    assert torch.equal(train.diffusion_loss(pred, eps, masks, 0.0), plain)
    # the weights keep the plain scale: a uniform error gives the same loss either way
    ones = torch.ones_like(pred)
    assert abs(float(train.diffusion_loss(ones, 0 * ones, masks, 4.0)) - 1.0) < 1e-6
    # an error on an object's rim cell (one cell outside it) counts 5x one far from every object
    rim, far = torch.zeros_like(pred), torch.zeros_like(pred)
    rim[0, :, 3, 4] = 1.0
    far[0, :, 14, 14] = 1.0
    ratio = float(train.diffusion_loss(rim, 0 * rim, masks, 4.0)) / float(train.diffusion_loss(far, 0 * far, masks, 4.0))
    assert abs(ratio - 5.0) < 1e-5
    one_far = far.clone()
    far[1, :, 12, 6] = 1.0  # two cells from the second row's object: weighted 1 like the first far cell
    assert abs(float(train.diffusion_loss(far, 0 * far, masks, 4.0))
               - 2 * float(train.diffusion_loss(one_far, 0 * far, masks, 4.0))) < 1e-6


@pytest.mark.core
def test_signal_scheduled_object_weight_is_full_on_clean_latents_and_none_on_pure_noise():
    from attention_motion.shapes import train
    masks = torch.zeros(2, train.MAX_OBJECTS, 16, 16)
    masks[:, 0, 4:8, 4:8] = 1.0
    rim, far = torch.zeros(2, 4, 16, 16), torch.zeros(2, 4, 16, 16)
    rim[:, :, 3, 4] = 1.0
    far[:, :, 14, 14] = 1.0

    def ratio(signal):
        return float(train.diffusion_loss(rim, 0 * rim, masks, 4.0, signal)) / float(
            train.diffusion_loss(far, 0 * far, masks, 4.0, signal))
    assert abs(ratio(torch.ones(2)) - 5.0) < 1e-5      # alpha-bar 1: the flat weight
    assert abs(ratio(torch.zeros(2)) - 1.0) < 1e-6     # pure noise: the plain loss
    assert abs(ratio(torch.full((2,), 0.5)) - 3.0) < 1e-5
    # per sample: the clean sample's rim error counts 5x, the noisy one's 1x
    one = rim.clone()
    one[1] = 0
    other = rim.clone()
    other[0] = 0
    signal = torch.tensor([1.0, 0.0])
    assert abs(float(train.diffusion_loss(one, 0 * one, masks, 4.0, signal))
               / float(train.diffusion_loss(other, 0 * other, masks, 4.0, signal)) - 5.0) < 1e-5


@pytest.mark.core
def test_the_share_of_two_object_scenes_is_a_setting():
    counts = {}
    for share in (0.0, 0.5, 0.85, 1.0):
        _, scenes = data.batch(torch.Generator().manual_seed(5), 200, pair_share=share)
        counts[share] = sum(len(s.objects) == 2 for s in scenes)
    assert counts[0.0] == 0 and counts[1.0] == 200
    assert 80 <= counts[0.5] <= 120 and 155 <= counts[0.85] <= 185, counts
    # the default is half (the bundled model's training set)
    _, default = data.batch(torch.Generator().manual_seed(5), 200)
    assert sum(len(s.objects) == 2 for s in default) == counts[0.5]


@pytest.mark.core
def test_the_share_of_same_colour_pairs_is_a_setting():
    def pairs(same):
        _, scenes = data.batch(torch.Generator().manual_seed(6), 300, pair_share=1.0, same_colour=same)
        assert all(len(s.objects) == 2 and len({(o.colour, o.shape) for o in s.objects}) == 2 for s in scenes)
        return [s for s in scenes if s.objects[0].colour == s.objects[1].colour], scenes
    (none, _), (every, _), (half, _) = pairs(0.0), pairs(1.0), pairs(0.5)
    assert len(none) == 0 and len(every) == 300 and 120 <= len(half) <= 180, len(half)
    drawn, scenes = pairs(None)
    assert 30 <= len(drawn) <= 80, len(drawn)  # independent colours: 2 in 11 (55 of 300)
    # unset, the scenes are the ones drawn before the setting existed (the trained models' data):
    # the digest of these captions as the data code before it drew them
    import hashlib
    digest = hashlib.sha256("|".join(s.caption for s in scenes).encode()).hexdigest()[:16]
    assert digest == "132f209ead0f5daf"


@pytest.mark.core
def test_training_refuses_a_share_outside_0_to_1_and_a_bad_object_weight(capsys):
    from attention_motion.shapes import train
    with pytest.raises(SystemExit):
        train.main(["unet", "--work", "unused", "--pair-share", "1.5"])
    assert "--pair-share is 1.5; give a share from 0 to 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["unet", "--work", "unused", "--same-colour-share", "nan"])
    assert "--same-colour-share is nan; give a share from 0 to 1" in capsys.readouterr().err
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(SystemExit):
            train.main(["unet", "--work", "unused", "--object-weight", bad])
        assert "--object-weight is {}; give a number from 0 to 100".format(float(bad)) in capsys.readouterr().err


@pytest.mark.core
def test_phase_chain_follows_init_back_through_work_folders_and_an_exported_model(tmp_path):
    import json
    from attention_motion.shapes import train
    exported, first, second = tmp_path / "exported", tmp_path / "a", tmp_path / "b"
    for d in (exported, first, second):
        d.mkdir()
    (exported / "training.json").write_text(json.dumps({"decoder_phases": [{"step": 800, "args": {}}],
                                                        "unet_phases": [{"step": 1}]}))
    (first / "decoder_state.json").write_text(json.dumps(
        {"step": 100, "args": {"init": str(exported / "vae.safetensors")}}))
    (second / "decoder_state.json").write_text(json.dumps(
        {"step": 50, "args": {"init": str(first / "decoder.safetensors")}}))
    assert [p["step"] for p in train.phase_chain(str(second), "decoder")] == [800, 100, 50]
    assert [p["step"] for p in train.phase_chain(str(first), "decoder")] == [800, 100]
    assert train.phase_chain(str(exported), "decoder") == [{"step": 800, "args": {}}]


@pytest.mark.core
def test_clear_move_ends_farthest_from_the_other_object_inside_the_margin():
    from attention_motion.shapes.probes import clear_move
    assert clear_move((0.4, 0.5), (0.7, 0.5), 0.2) == (-0.2, 0.0)  # away from the other, inside the margin
    assert clear_move((0.2, 0.5), (0.7, 0.5), 0.2) == (0.0, 0.2)  # -x would pass the margin; +y ties -y
    assert clear_move((0.5, 0.4), (0.5, 0.7), 0.2) == (0.0, -0.2)
    assert clear_move((0.5, 0.5), (0.5, 0.5), 0.2) == (0.2, 0.0)  # a tie: the first
    assert clear_move((0.5, 0.5), (0.2, 0.2), 0.5) == (0.0, 0.0)  # no move of 0.5 fits: none
