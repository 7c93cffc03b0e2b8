"""P2PReplace and SharedNoiseSampler on the tiny models.

Parity: the source row (latent row 0) of a P2P run must equal a plain single-row generation of
the source prompt with the same seed. Tolerance 1e-5 (the implementation is in fact bit-exact:
the source rows are evaluated alone, see host/passes.py).
"""
import pytest
import torch

import harness

pytestmark = pytest.mark.host

SIZE = 128  # pixels -> 16x16 latent: cheap, and both attention levels of the tiny model
STEPS = 5
SRC = "a red cat sitting on a car"


def _nodes():
    from attention_motion.nodes.p2p import P2PReplace, SharedNoiseSampler
    return P2PReplace(), SharedNoiseSampler()


def build(model, clip, source=SRC, targets="a red dog sitting on a car", mode="replace", cross=0.8, words="",
          self_replace=0.4, reweight="", size=SIZE, height=None, source_pass="exact"):
    node, _ = _nodes()
    with torch.inference_mode():
        return node.build(model, clip, source, targets, mode, cross, words, self_replace, reweight, size,
                          height or size, source_pass=source_pass)


def plain(model, clip, prompt, seed=3, sampler="euler", cfg=5.0, size=SIZE, height=None, steps=STEPS):
    neg = harness.encode(clip, "")
    return harness.ksample(model, harness.encode(clip, prompt), neg, harness.empty_latent(size, height or size, 1),
                           seed=seed, steps=steps, cfg=cfg, sampler=sampler)


def custom(model, pos, neg, latent, sampler_name, seed=3, cfg=5.0, steps=STEPS):
    import comfy_extras.nodes_custom_sampler as ncs
    _, shared = _nodes()
    with torch.inference_mode():
        sampler = shared.get(sampler_name)[0]
        sigmas = ncs.BasicScheduler().get_sigmas(model, "normal", steps, 1.0)[0]
        return ncs.SamplerCustom().sample(model, True, seed, cfg, pos, neg, sampler, sigmas, latent)[0]["samples"]


MODES = [
    ("replace", "a red dog sitting on a car", ""),
    ("replace", "a red hamster sitting on a car", ""),  # hamster: two tokens for one
    ("refine", "a red fluffy cat sitting on a blue car", ""),
    ("reweight", "", "red: 3, car: -0.5"),
    ("replace+reweight", "a red dog sitting on a car", "dog: 2"),
    ("refine+reweight", "a red cat sitting on a blue car", "blue: 0"),
]


@pytest.mark.parametrize("mode,target,weights", MODES)
def test_source_row_equals_plain_generation(tiny_sd15, mode, target, weights):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, targets=target, mode=mode, reweight=weights)
    assert lat["batch_index"] == [0, 0] and pos[0][0].shape[0] == 2
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=STEPS)
    ref = plain(model, clip, SRC)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - ref[0]).abs().max() > 1e-3  # the target is an edit, not a copy


def test_cfg_one_and_non_square(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, size=128, height=96)
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=5, steps=STEPS, cfg=1.0)
    ref = plain(model, clip, SRC, seed=5, cfg=1.0, size=128, height=96)
    assert out.shape == (2, 4, 12, 16)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - ref[0]).abs().max() > 1e-3


def test_several_targets_in_one_batch(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, targets="a red dog sitting on a car\na blue cat sitting on a boat")
    assert len(lat["batch_index"]) == 3
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=STEPS)
    ref = plain(model, clip, SRC)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - out[2]).abs().max() > 1e-3


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m"])
def test_shared_noise_sampler_parity(tiny_sd15, sampler):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip)
    out = custom(m, pos, harness.encode(clip, ""), lat, sampler)
    ref = plain(model, clip, SRC, sampler=sampler)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - ref[0]).abs().max() > 1e-3


def test_ancestral_through_plain_ksampler_breaks_parity(tiny_sd15):
    """Why SharedNoiseSampler exists: the host draws different step noise for each row."""
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip)
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=STEPS, sampler="euler_ancestral")
    ref = plain(model, clip, SRC, sampler="euler_ancestral")
    assert (out[0] - ref[0]).abs().max() > 1e-3


def test_sdxl_parity(tiny_sdxl):
    model, clip = tiny_sdxl
    m, pos, lat = build(model, clip)
    assert pos[0][1]["pooled_output"].shape[0] == 2
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=2, steps=4)
    ref = plain(model, clip, SRC, seed=2, steps=4)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - ref[0]).abs().max() > 1e-3


def test_long_prompts_over_77_tokens(tiny_sd15):
    model, clip, _ = tiny_sd15
    filler = " ".join(["with a small green tree"] * 16)  # > 77 tokens: two chunks
    src, tgt = f"a red cat {filler}", f"a red dog {filler}"
    m, pos, lat = build(model, clip, source=src, targets=tgt)
    assert pos[0][0].shape[1] == 154
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=3)
    ref = plain(model, clip, src, steps=3)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    # a shorter target is padded with an empty chunk; a longer one than the source is refused
    _m, pos2, _ = build(model, clip, source=src, targets="a red dog", mode="refine")
    assert pos2[0][0].shape[1] == 154
    with pytest.raises(ValueError, match="more 77-token chunks"):
        build(model, clip, source="a red dog", targets=tgt, mode="refine")


@pytest.mark.parametrize("mode,target", [("replace", "a red dog sitting on a car"),
                                         ("refine", "a red fluffy cat sitting on a blue car")])
def test_batched_source_pass(tiny_sd15, mode, target):
    """'batched': one model call per step. Its source row is the unpatched model's row 0 of the same
    batch (edits never touch it); it differs from a single-row run only by the host's batch-size
    rounding, and the targets (which read the source's maps) follow it within the same margin."""
    from attention_motion.host.passes import has_source_pass
    model, clip, _ = tiny_sd15
    neg = harness.encode(clip, "")
    m_b, pos, lat = build(model, clip, targets=target, mode=mode, source_pass="batched")
    m_e, _, _ = build(model, clip, targets=target, mode=mode)
    assert not has_source_pass(m_b)
    assert has_source_pass(m_e)
    out_b = harness.ksample(m_b, pos, neg, lat, seed=3, steps=STEPS)
    out_e = harness.ksample(m_e, pos, neg, lat, seed=3, steps=STEPS)
    unpatched = harness.ksample(model, pos, neg, lat, seed=3, steps=STEPS)
    assert torch.equal(out_b[0], unpatched[0])
    drift = float((out_b[0] - plain(model, clip, SRC)[0]).abs().max())
    scale = float(out_e[1].abs().max())
    # measured: source 1.3e-3, targets 3.8e-4 / 2.3e-4, latent scale 460-490 (about 3e-6 relative)
    assert drift <= 1e-5 * scale
    assert float((out_b[1] - out_e[1]).abs().max()) <= 1e-5 * scale


def test_unknown_source_pass_is_refused(tiny_sd15):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match="P2PReplace: input 'source_pass' is 'fast'; use one of exact, batched"):
        build(model, clip, source_pass="fast")


def _capture(model, clip, prompt, words):
    from attention_motion.nodes.capture import AttentionCapture
    with torch.inference_mode():
        return AttentionCapture().capture(model, clip, prompt, words, 0.0, 1.0, "all")


def test_replace_full_schedule_target_maps_equal_source(tiny_sd15):
    model, clip, _ = tiny_sd15
    maps = {}
    for cross in (1.0, 0.0):
        m, pos, lat = build(model, clip, cross=cross, self_replace=0.0)
        m, store = _capture(m, clip, SRC, "cat, car")
        harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=STEPS)
        maps[cross] = store.maps()
    assert maps[1.0].shape[0] == 2  # store rows are latent rows
    assert torch.allclose(maps[1.0][1], maps[1.0][0], atol=1e-7, rtol=0)
    assert (maps[0.0][1] - maps[0.0][0]).abs().max() > 1e-4


def test_reweight_zero_removes_word_influence(tiny_sd15):
    """With 'cat: 0' the target row does not depend on what the cat tokens encode."""
    from attention_motion.host.tokens import locate_words, tokenize_prompt
    model, clip, _ = tiny_sd15
    cat = locate_words(clip, tokenize_prompt(clip, SRC), ["cat"], "test")[0]
    neg = harness.encode(clip, "")
    results = {}
    for factor in ("0", "1"):
        m, pos, lat = build(model, clip, targets="", mode="reweight", cross=1.0, self_replace=0.0,
                            reweight=f"cat: {factor}")
        cond = pos[0][0].clone()
        other = cond.clone()
        other[1, cat] = torch.randn(len(cat), cond.shape[-1], generator=torch.Generator().manual_seed(0)) * 3
        a = harness.ksample(m, [[cond, pos[0][1]]], neg, lat, seed=3, steps=STEPS)
        b = harness.ksample(m, [[other, pos[0][1]]], neg, lat, seed=3, steps=STEPS)
        results[factor] = (a[1] - b[1]).abs().max()
    assert results["0"] <= 1e-6
    assert results["1"] > 1e-3


def test_per_word_cross_replace_schedule(tiny_sd15):
    from attention_motion.controllers.p2p import CrossReplace
    from attention_motion.host.router import find_router
    from attention_motion.host.tokens import locate_words, tokenize_prompt
    model, clip, _ = tiny_sd15
    m, _pos, _lat = build(model, clip, cross=0.8, words="dog: 0.3, car: 0.5")
    ctrl = next(c for c in find_router(m).controllers if isinstance(c, CrossReplace))
    tgt = tokenize_prompt(clip, "a red dog sitting on a car")
    dog = locate_words(clip, tgt, ["dog"], "t")[0]
    car = locate_words(clip, tgt, ["car"], "t")[0]
    assert torch.allclose(ctrl.until[0, dog], torch.tensor(0.3))
    assert torch.allclose(ctrl.until[0, car], torch.tensor(0.5))
    assert torch.allclose(ctrl.until[0, 1], torch.tensor(0.8))
    # a source-only word sets the window of the target tokens it maps to
    m, _pos, _lat = build(model, clip, cross=0.8, words="cat: 0.1")
    ctrl = next(c for c in find_router(m).controllers if isinstance(c, CrossReplace))
    assert torch.allclose(ctrl.until[0, dog], torch.tensor(0.1))


@pytest.mark.parametrize("kwargs,match", [
    (dict(targets="a dog on a car"), "same number of words"),
    (dict(mode="replace+reweight", reweight="horse: 2"), "horse"),
    (dict(words="horse: 0.2"), "horse"),
    (dict(source="  "), "source_prompt' is empty"),
    (dict(targets=""), "target_prompts' is empty"),
    (dict(mode="reweight", targets=""), "needs input 'reweight'"),
    (dict(reweight="dog: 2"), "choose 'replace\\+reweight'"),
    (dict(mode="replace+reweight", reweight="dog 2"), "not 'word: number'"),
])
def test_errors_name_node_and_input(tiny_sd15, kwargs, match):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match=match) as e:
        build(model, clip, **kwargs)
    assert "P2PReplace" in str(e.value)


def test_wrong_batch_is_refused_at_sampling(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, _lat = build(model, clip)
    lat = harness.empty_latent(SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="batch has 3 rows"):
        harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=2)


@pytest.mark.graph
def test_whole_graph(host):
    graph = {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": "sd15", "seed": 0}},
        "2": {"class_type": "P2PReplace", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "source_prompt": SRC, "target_prompts": "a red dog sitting on a car",
            "mode": "replace", "cross_replace": 0.8, "cross_replace_words": "", "self_replace": 0.4, "reweight": "",
            "width": SIZE, "height": SIZE}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["2", 1], "negative": ["3", 0], "latent_image": ["2", 2], "seed": 3,
            "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    outputs, _ = harness.run_graph(graph)
    assert len(outputs["6"]["images"]) == 2
