"""FrameSequence: N frames from one batch run, parity of frame 0, schedules, consistency."""
import pytest
import torch

import harness
from attention_motion.controllers.shift import ShiftController
from attention_motion.host.router import find_router
from attention_motion.nodes.motion import FrameSequence

pytestmark = pytest.mark.host

PROMPT = "a red apple on a wooden table"
STEPS = 4


def build(model, clip, frames=8, **kw):
    args = dict(width=128, height=128, dx=0.3, dy=0.0)
    args.update(kw)
    return FrameSequence().build(model, clip, PROMPT, "apple", frames, **args)


def sample(model, clip, latent, seed=3, sampler="euler", steps=STEPS):
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    return harness.ksample(model, pos, neg, latent, seed=seed, steps=steps, sampler=sampler)


def plain(model, clip, seed=3, sampler="euler"):
    return sample(model, clip, harness.empty_latent(128, 128, 1), seed, sampler)


def decode(vae, latent):
    with torch.inference_mode():
        return vae.decode(latent)


def consecutive_mad(images):
    return float((images[1:] - images[:-1]).abs().mean())


def test_sixteen_frames_of_the_right_size_from_one_sampler_run(tiny_sd15):
    model, clip, vae = tiny_sd15
    m, latent = build(model, clip, frames=16, width=128, height=96)
    assert latent["samples"].shape == (16, 4, 12, 16)
    assert latent["batch_index"] == [0] * 16
    out = sample(m, clip, latent)
    shift = [c for c in find_router(m).controllers if isinstance(c, ShiftController)][0]
    assert shift.runs == 1  # one sampling run produced every frame
    images = decode(vae, out)
    assert images.shape == (16, 96, 128, 3)
    assert torch.isfinite(images).all()


@pytest.mark.parametrize("kw", [
    {},
    {"cross_frame": "anchor+previous", "background_lock": 0.5},
    {"schedule": "incremental", "self_attention": "shift"},
    {"cross_frame": "off"},
])
def test_frame_zero_without_shift_is_the_plain_generation(tiny_sd15, kw):
    model, clip, _ = tiny_sd15
    m, latent = build(model, clip, frames=4, **kw)
    out = sample(m, clip, latent)
    # the unpatched model on the same latent batch (every row the same noise): frame 0 is that row
    same_batch = sample(model, clip, {"samples": latent["samples"], "batch_index": latent["batch_index"]})
    ref = plain(model, clip)  # a plain batch-1 generation of the prompt and seed
    scale = float(ref.abs().max())
    if kw.get("cross_frame") == "off":
        assert torch.equal(out[0], same_batch[0])
    assert float((out[0] - same_batch[0]).abs().max()) <= 1e-5 * scale
    # the host itself differs by ~4e-6 of the latent's scale between batch sizes 1 and 4
    assert float((out[0] - ref[0]).abs().max()) <= 1e-5 * scale
    assert (out[1:] - ref).abs().mean() > 1e-3  # the other frames moved


def test_schedules_differ_and_are_deterministic(tiny_sd15):
    model, clip, _ = tiny_sd15
    runs = {}
    for schedule in ("variation", "incremental"):
        outs = []
        for _ in range(2):
            m, latent = build(model, clip, frames=6, schedule=schedule)
            outs.append(sample(m, clip, latent))
        assert torch.equal(outs[0], outs[1]), schedule
        runs[schedule] = outs[0]
    diff = (runs["variation"][2:] - runs["incremental"][2:]).abs().mean()
    assert diff > 1e-3
    assert (runs["variation"][0] - runs["incremental"][0]).abs().max() <= 1e-5  # same anchor


def test_cross_frame_attention_makes_frames_more_alike(tiny_sd15):
    model, clip, vae = tiny_sd15
    mads = {}
    for mode, self_attention in (("off", "free"), ("anchor", "free"), ("anchor", "anchor"),
                                 ("anchor+previous", "free")):
        # typed words: the random-weight model's maps are diffuse; moving "red" with "apple" adds
        # motion unrelated to what cross-frame attention keeps alike (measured 0.01364 off vs 0.01363)
        m, latent = build(model, clip, frames=8, cross_frame=mode, self_attention=self_attention, bind="typed words")
        mads[mode, self_attention] = consecutive_mad(decode(vae, sample(m, clip, latent)))
    print("\nmean abs difference of consecutive frames (decoded, 0..1):", mads)
    off = mads["off", "free"]
    assert all(v < off for k, v in mads.items() if k[0] != "off")


def test_background_lock_keeps_the_background_closer_to_the_anchor(tiny_sd15):
    from attention_motion.host.router import install
    from attention_motion.host.tokens import locate_words, tokenize_prompt
    from test_shift import BlobMaps  # a localised map: the tiny model's own maps cover everything

    model, clip, _ = tiny_sd15
    tokens = locate_words(clip, tokenize_prompt(clip, PROMPT), ["apple"], "test")[0]
    blob = install(model, BlobMaps(tokens, cx=0.3, cy=0.5, sigma=0.08), "test")
    outs = {}
    for lock in (0.0, 1.0):
        m, latent = build(blob, clip, frames=4, background_lock=lock, cross_frame="off")
        outs[lock] = sample(m, clip, latent)
    dist = {k: float((v[1:] - v[:1]).abs().mean()) for k, v in outs.items()}
    assert dist[1.0] < 0.9 * dist[0.0], dist
    assert torch.equal(outs[1.0][0], outs[0.0][0])  # the anchor itself is never blended


def test_without_shared_noise_frames_start_from_different_noise(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, latent = build(model, clip, frames=3, dx=0.0, shared_noise=False, cross_frame="off")
    assert latent["batch_index"] == [0, 1, 2]
    out = sample(m, clip, latent)
    m0, latent0 = build(model, clip, frames=3, dx=0.0, cross_frame="off")
    shared = sample(m0, clip, latent0)
    assert (out[1] - out[0]).abs().mean() > 10 * (shared[1] - shared[0]).abs().mean()


def test_chunks_repeat_the_anchor(tiny_sd15):
    model, clip, _ = tiny_sd15
    m0, lat0 = build(model, clip, frames=7, chunk_size=3, chunk_index=0)
    m1, lat1 = build(model, clip, frames=7, chunk_size=3, chunk_index=1)
    assert lat0["samples"].shape[0] == 3 and lat1["samples"].shape[0] == 4  # anchor + frames 3..5
    a, b = sample(m0, clip, lat0), sample(m1, clip, lat1)
    assert (a[0] - b[0]).abs().max() <= 1e-5
    shift = [c for c in find_router(m1).controllers if isinstance(c, ShiftController)][0]
    assert torch.allclose(shift.shifts[1:, 0, 0], torch.tensor([0.15, 0.2, 0.25]), atol=1e-6)


@pytest.mark.parametrize("kw,match", [
    ({"words": "zebra"}, r"FrameSequence: word 'zebra' \(input 'words'\) is not in the prompt"),
    ({"frames": 0}, r"FrameSequence: input 'frames' is 0; use 1 to 1024"),
    ({"keyframes": "[[0, 0, 0], [3, 0.2"}, r"FrameSequence: input 'keyframes'.*not valid JSON"),
    ({"keyframes": "[[0, 0, 0], [30, 0.2, 0]]"}, r"frame 30 is outside the clip \(frames 0..7\)"),
    ({"dx": 1.4}, r"FrameSequence: input 'dx' is 1.4, but it must lie between -1.0 and 1.0"),
    ({"keyframes": "[[0, 0, 0], [7, 0, -2]]"}, r"dy is -2.*out of range"),
    ({"chunk_size": 3, "chunk_index": 5}, r"FrameSequence: chunk_index is 5"),
    ({"cross_frame": "all"}, r"FrameSequence: input 'cross_frame' is 'all'"),
    ({"width": 100}, r"FrameSequence: input 'width' is 100; use a multiple of 8"),
])
def test_bad_inputs_give_clear_errors(tiny_sd15, kw, match):
    model, clip, _ = tiny_sd15
    args = dict(width=128, height=128, dx=0.3, dy=0.0)
    words = kw.pop("words", "apple")
    frames = kw.pop("frames", 8)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        FrameSequence().build(model, clip, PROMPT, words, frames, **args)


def _custom_sample(host, model, clip, latent, sampler, seed=3):
    """SamplerCustom + BasicScheduler (the graph a user wires for ancestral/SDE samplers)."""
    nodes = host.node_classes
    sigmas = nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    with torch.inference_mode():
        out = nodes["SamplerCustom"]().sample(model, True, seed, 5.0, pos, neg, sampler, sigmas, latent)
    return out[0]["samples"]


@pytest.mark.parametrize("sampler_name", ["euler_ancestral", "dpmpp_sde"])
def test_frames_share_step_noise_with_the_shared_noise_sampler(host, tiny_sd15, sampler_name):
    model, clip, _ = tiny_sd15
    shared = host.node_classes["SharedNoiseSampler"]().get(sampler_name)[0]
    m, latent = build(model, clip, frames=3, dx=0.0, cross_frame="off")
    out = _custom_sample(host, m, clip, latent, shared)
    ref = _custom_sample(host, model, clip, harness.empty_latent(128, 128, 1),
                         host.node_classes["KSamplerSelect"]().get_sampler(sampler_name)[0])
    scale = float(ref.abs().max())
    # frame 0 with zero shift is the plain single-row generation with this sampler and seed
    assert float((out[0] - ref[0]).abs().max()) <= 1e-5 * scale
    # motionless frames get the same step noise, so they stay the same frame
    assert float((out[1:] - out[:1]).abs().max()) <= 1e-5 * scale
    # the plain sampler draws different step noise per row: the same frames drift apart
    plain_rows = sample(m, clip, latent, sampler=sampler_name)
    assert float((plain_rows[1:] - plain_rows[:1]).abs().max()) > 1e-3 * scale
