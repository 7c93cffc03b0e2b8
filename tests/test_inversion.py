"""Diffusion Inversion and every control on an inverted picture (tiny models, the real host).

The "picture" is a latent the tiny model generated from another seed and prompt; the tests
sample the inverted LATENT with a plain KSampler (another seed: the guide makes the noise
irrelevant) and compare with the picture. Direct inversion must reproduce it to float
rounding at any cfg; the source row of every control must be the picture; the edited rows
must differ from it.
"""
from __future__ import annotations

import pytest
import torch

import harness

pytestmark = pytest.mark.host

SIZE, STEPS = 128, 6
PROMPT = "a red cat sitting on a car"
EXACT = 1e-5  # relative RMS: float rounding over the steps


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def _picture(model, clip, size=SIZE, seed=41) -> dict:
    pos, neg = harness.encode(clip, "a blue dog on a green lawn"), harness.encode(clip, "")
    return {"samples": harness.ksample(model, pos, neg, harness.empty_latent(size, size, 1), seed=seed, steps=8)}


def _invert(model, clip, latent, method="direct", sampler="euler", scheduler="normal", steps=STEPS, denoise=1.0,
            prompt=PROMPT):
    from attention_motion.nodes.inversion import DiffusionInversion
    with torch.inference_mode():
        return DiffusionInversion().invert(model, harness.encode(clip, prompt), latent, sampler, scheduler, steps,
                                           denoise, method)


def _sample(model, clip, latent, cfg=5.0, sampler="euler", scheduler="normal", steps=STEPS, denoise=1.0, seed=977,
            negative=None, positive=None):
    pos = positive if positive is not None else harness.encode(clip, PROMPT)
    neg = negative if negative is not None else harness.encode(clip, "")
    return harness.ksample(model, pos, neg, latent, seed=seed, steps=steps, cfg=cfg, sampler=sampler,
                           scheduler=scheduler, denoise=denoise)


@pytest.fixture(scope="module")
def picture(tiny_sd15):
    model, clip, _ = tiny_sd15
    return _picture(model, clip)


# -- reconstruction ------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler, scheduler, cfg, denoise", [
    ("euler", "normal", 5.0, 1.0), ("ddim", "karras", 7.5, 1.0), ("euler", "normal", 1.0, 1.0),
    ("euler", "simple", 5.0, 0.6)])
def test_direct_inversion_samples_the_picture_back(tiny_sd15, picture, sampler, scheduler, cfg, denoise):
    model, clip, _ = tiny_sd15
    guided, inv = _invert(model, clip, picture, sampler=sampler, scheduler=scheduler, denoise=denoise)
    assert inv["samples"].shape == picture["samples"].shape
    assert _rel(inv["samples"], picture["samples"]) > (0.5 if denoise == 1 else 0.05)  # noise, not the picture
    out = _sample(guided, clip, inv, cfg=cfg, sampler=sampler, scheduler=scheduler, denoise=denoise)
    assert _rel(out, picture["samples"]) <= EXACT
    again = _sample(guided, clip, inv, cfg=cfg, sampler=sampler, scheduler=scheduler, denoise=denoise, seed=5)
    assert _rel(again, picture["samples"]) <= EXACT  # the sampler's seed does not matter


def test_negative_prompt_inversion_is_cfg_free_and_plain_drifts_with_cfg(tiny_sd15, picture):
    model, clip, _ = tiny_sd15
    source = harness.encode(clip, PROMPT)
    m, inv = _invert(model, clip, picture, method="negative prompt")
    npi = [_sample(m, clip, inv, cfg=cfg, negative=source) for cfg in (1.0, 5.0, 9.0)]
    assert _rel(npi[1], npi[0]) <= 1e-5 and _rel(npi[2], npi[0]) <= 1e-5  # guidance cancels: cond == uncond
    m, inv = _invert(model, clip, picture, method="plain")
    plain1, plain5 = _sample(m, clip, inv, cfg=1.0), _sample(m, clip, inv, cfg=5.0)
    assert _rel(plain1, npi[0]) <= 1e-5  # at cfg 1 all three start alike and run alike
    assert _rel(plain5, picture["samples"]) > _rel(plain1, picture["samples"])  # plain inversion drifts under cfg
    assert _rel(plain1, picture["samples"]) > EXACT * 100  # the tiny model's inversion error is not zero


def test_sdxl_reconstruction(tiny_sdxl):
    model, clip = tiny_sdxl
    pic = _picture(model, clip)
    guided, inv = _invert(model, clip, pic)
    assert _rel(_sample(guided, clip, inv, cfg=6.0), pic["samples"]) <= EXACT


# -- samplers that cannot follow, and clean state after them ---------------------------------------
@pytest.mark.parametrize("sampler, steps, match", [
    ("dpmpp_2m", STEPS, r"DiffusionInversion: at step \d+ the source row is .* off the inversion's path"),
    ("heun", STEPS, "evaluated step 2 of 6 twice"),
    ("euler", STEPS + 2, r"sigma .* is not a step of the inversion \(6 steps of euler / normal"),
])
def test_a_sampler_off_the_path_is_refused_and_the_next_run_is_clean(tiny_sd15, picture, sampler, steps, match):
    model, clip, _ = tiny_sd15
    guided, inv = _invert(model, clip, picture)
    with pytest.raises(ValueError, match=match):
        _sample(guided, clip, inv, sampler=sampler, steps=steps)
    assert _rel(_sample(guided, clip, inv), picture["samples"]) <= EXACT


def test_bad_inputs_name_the_node_and_input(tiny_sd15, picture):
    model, clip, _ = tiny_sd15
    bad = {"samples": picture["samples"].clone()}
    bad["samples"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="DiffusionInversion: input 'latent' holds NaN"):
        _invert(model, clip, bad)
    with pytest.raises(ValueError, match="DiffusionInversion: input 'sampler_name' is 'dpmpp_2m'; use one of euler, ddim"):
        _invert(model, clip, picture, sampler="dpmpp_2m")
    with pytest.raises(ValueError, match="DiffusionInversion: input 'steps' is 0"):
        _invert(model, clip, picture, steps=0)
    guided, inv = _invert(model, clip, picture)
    two = {"samples": torch.cat([inv["samples"]] * 2)}
    with pytest.raises(ValueError, match="latent has 2 rows, but the inverted picture was set up for 1"):
        _sample(guided, clip, two)


# -- every control on the inverted picture ---------------------------------------------------------
def test_p2p_source_row_is_the_picture_and_targets_edit_it(tiny_sd15, picture):
    from attention_motion.nodes.p2p import P2PReplace
    model, clip, _ = tiny_sd15
    _, inv = _invert(model, clip, picture)
    with torch.inference_mode():
        m, pos, lat = P2PReplace().build(model, clip, PROMPT, "a red dog sitting on a car\na red cat sitting on a boat",
                                         "replace", 0.8, "", 0.4, "", 512, 512, latent=inv)
    assert lat["samples"].shape[0] == 3 and lat["batch_index"] == [0, 0, 0]
    out = _sample(m, clip, lat, positive=pos)
    assert _rel(out[:1], picture["samples"]) <= EXACT
    for row in (1, 2):
        assert _rel(out[row:row + 1], picture["samples"]) > 1e-3
    # without the inversion the same edit does not keep the picture
    with torch.inference_mode():
        m2, pos2, lat2 = P2PReplace().build(model, clip, PROMPT, "a red dog sitting on a car", "replace", 0.8, "",
                                            0.4, "", SIZE, SIZE)
    assert _rel(_sample(m2, clip, lat2, positive=pos2)[:1], picture["samples"]) > 0.1


def test_local_blend_keeps_the_picture_outside_the_edit(tiny_sd15, picture):
    from attention_motion.nodes.blend import LocalBlend
    from attention_motion.nodes.p2p import P2PReplace
    model, clip, _ = tiny_sd15
    _, inv = _invert(model, clip, picture)
    with torch.inference_mode():
        m, pos, lat = P2PReplace().build(model, clip, PROMPT, "a red dog sitting on a car", "replace", 0.8, "", 0.2,
                                         "", 512, 512, latent=inv)
        m, blend = LocalBlend().build(m, clip, "cat, dog", "", 0.8, 0, 0.3, "1/2")
    out = _sample(m, clip, lat, positive=pos)
    assert _rel(out[:1], picture["samples"]) <= EXACT
    mask = blend.final_mask
    outside, inside = mask[1] == 0, mask[1] == 1
    assert outside.any() and inside.any()
    assert (out[1] - picture["samples"][0])[:, outside].abs().max() <= 1e-4  # the background is the picture
    assert (out[1] - picture["samples"][0])[:, inside].abs().max() > 1e-3


def test_token_shift_source_rows_are_the_pictures(tiny_sd15):
    from attention_motion.nodes.motion import TokenShift
    model, clip, _ = tiny_sd15
    pics = {"samples": torch.cat([_picture(model, clip, seed=41)["samples"], _picture(model, clip, seed=42)["samples"]])}
    _, inv = _invert(model, clip, pics)
    with torch.inference_mode():
        m, lat = TokenShift().patch(model, clip, PROMPT, "cat", 0.25, 0.0, 0.0, 0.5, "all", latent=inv)
    assert lat["samples"].shape[0] == 4 and "attention_inversion" not in lat
    out = _sample(m, clip, lat)
    assert _rel(out[:2], pics["samples"]) <= EXACT
    assert _rel(out[2:], pics["samples"]) > 1e-3
    with pytest.raises(ValueError, match="TokenShift: input 'latent' is an inverted picture; use reference 'source row'"):
        TokenShift().patch(model, clip, PROMPT, "cat", 0.25, 0.0, 0.0, 0.5, "all", reference="none", latent=inv)


@pytest.mark.parametrize("chunk_size, chunk_index", [(0, 0), (2, 1)])
def test_frame_sequence_frame_zero_is_the_picture(tiny_sd15, picture, chunk_size, chunk_index):
    from attention_motion.nodes.motion import FrameSequence
    model, clip, _ = tiny_sd15
    _, inv = _invert(model, clip, picture)
    with torch.inference_mode():
        m, lat = FrameSequence().build(model, clip, PROMPT, "cat", 5, dx=0.3, chunk_size=chunk_size,
                                       chunk_index=chunk_index, latent=inv)
    assert lat["samples"].shape[0] == (5 if chunk_size == 0 else 3)
    out = _sample(m, clip, lat)
    assert _rel(out[:1], picture["samples"]) <= EXACT
    assert all(_rel(out[k:k + 1], picture["samples"]) > 1e-4 for k in range(1, out.shape[0]))


def test_region_attention_on_the_picture_through_p2p_rows(host, tiny_sd15, picture):
    from attention_motion.nodes.p2p import P2PReplace
    from attention_motion.nodes.region import RegionAttention
    model, clip, _ = tiny_sd15
    _, inv = _invert(model, clip, picture)
    with torch.inference_mode():
        m, pos, lat = P2PReplace().build(model, clip, PROMPT, PROMPT, "replace", 0.8, "", 0.4, "", 512, 512,
                                         latent=inv)
        regions = '[{"box": [0, 0, 0.5, 1], "prompt": "a yellow cat"}]'
        m = RegionAttention().patch(m, clip, regions, weight=1.0)[0]
    out = _sample(m, clip, lat, positive=pos)
    assert _rel(out[:1], picture["samples"]) <= EXACT
    assert _rel(out[1:], picture["samples"]) > 1e-3


def test_a_new_empty_latent_drops_the_inherited_guide(tiny_sd15, picture):
    from attention_motion.nodes.p2p import P2PReplace
    model, clip, _ = tiny_sd15
    guided, _ = _invert(model, clip, picture)
    with torch.inference_mode():
        m, pos, lat = P2PReplace().build(guided, clip, PROMPT, "a red dog sitting on a car", "replace", 0.8, "", 0.4,
                                         "", SIZE, SIZE)
        plain_m, plain_pos, plain_lat = P2PReplace().build(model, clip, PROMPT, "a red dog sitting on a car",
                                                           "replace", 0.8, "", 0.4, "", SIZE, SIZE)
    assert torch.equal(_sample(m, clip, lat, positive=pos), _sample(plain_m, clip, plain_lat, positive=plain_pos))
