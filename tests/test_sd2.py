"""The pack's nodes on the SD2.x architecture: tiny SD2 models built in code (tests/tiny_host_nodes).

Two models with the same UNet weights, as the host's ``comfy.supported_models.SD20`` sees them:
``tiny_sd2`` (eps: SD2.0 base, 2.1-base) and ``tiny_sd2v`` (v-prediction: SD2.1 768-v). What
makes them SD2 and not SD1.5: linear proj_in/proj_out in the transformers, heads of 64 channels
(SD20's unet_extra_config: 1 head at level 0, 2 at level 1), the OpenCLIP-H layout of the text
encoder (one ``h`` stream, penultimate layer, pad token 0). Every test runs on both models and
mirrors an assertion the SD1.5/SDXL tests make (test_router, test_style, test_appearance,
test_segment, test_p2p, test_shift, test_region, test_inversion).

One test is an expected failure on hosts that give SD2 float32 attention (v0.3.75; the pinned 2024-03
host has no per-model attention precision): the router calls the host's attention without that precision (see its reason).
"""
from __future__ import annotations

import pytest
import torch

import harness
from attention_motion.core.controller import Controller
from attention_motion.host.blocks import transformer_sites
from attention_motion.host.router import find_router, install

pytestmark = pytest.mark.host

SIZE, STEPS = 64, 4  # 8x8 latent: both attention levels of the tiny UNet (8x8 and 4x4)
PROMPT = "a red cat sitting on a car"
EXACT = 1e-5  # relative RMS: float rounding over the steps (test_inversion)
ARCHS = ["sd2", "sd2v"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One torch thread while this file runs, as `make test`'s workers have: on these tiny tensors more
    threads only add overhead (and, on a busy 2-core machine, made the file several times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=ARCHS)
def sd2(request):
    """(arch, MODEL, CLIP, VAE) of each tiny SD2 model."""
    return (request.param,) + tuple(request.getfixturevalue("tiny_" + request.param))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def _sample(model, clip, positive, latent, seed=3, steps=STEPS, **kw):
    return harness.ksample(model, positive, harness.encode(clip, ""), latent, seed=seed, steps=steps, **kw)


def _plain(model, clip, prompt=PROMPT, size=SIZE, height=None, seed=3, steps=STEPS, **kw):
    return _sample(model, clip, harness.encode(clip, prompt), harness.empty_latent(size, height or size, 1), seed=seed,
                   steps=steps, **kw)


# -- the models are SD2 as the host sees it ---------------------------------------------------------
def test_the_tiny_models_are_the_hosts_sd2(sd2):
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models
    from comfy.ldm.modules.attention import SpatialTransformer
    from tiny_host_nodes.models import SD2_CONTEXT_DIM
    arch, model, clip, _ = sd2
    base = model.model
    assert isinstance(base.model_config, comfy.supported_models.SD20)
    cfg = base.model_config.unet_config
    assert cfg["use_linear_in_transformer"] and cfg["num_head_channels"] == 64 and cfg["num_heads"] == -1
    transformers = [m for m in base.diffusion_model.modules() if isinstance(m, SpatialTransformer)]
    assert len(transformers) == 7
    heads = set()
    for t in transformers:
        assert isinstance(t.proj_in, torch.nn.Linear) and isinstance(t.proj_out, torch.nn.Linear)
        for attn in (t.transformer_blocks[0].attn1, t.transformer_blocks[0].attn2):
            assert attn.to_q.out_features == 64 * attn.heads  # heads of 64 channels
            heads.add(attn.heads)
        assert t.transformer_blocks[0].attn2.to_k.in_features == SD2_CONTEXT_DIM
    assert heads == {1, 2}
    # the prediction type: v-prediction samples x0 = x / (s^2 + 1) - v * s / sqrt(s^2 + 1)
    sampling = base.model_sampling
    v_pred = arch == "sd2v"
    assert isinstance(sampling, comfy.model_sampling.ModelSamplingDiscrete)
    assert isinstance(sampling, comfy.model_sampling.V_PREDICTION) == v_pred
    assert base.model_type == (comfy.model_base.ModelType.V_PREDICTION if v_pred else comfy.model_base.ModelType.EPS)
    g = torch.Generator().manual_seed(0)
    x, out, sigma = torch.randn(1, 4, 2, 2, generator=g), torch.randn(1, 4, 2, 2, generator=g), torch.tensor([3.0])
    want = x / 10 - out * 3 / 10 ** 0.5 if v_pred else x - out * 3
    assert torch.allclose(sampling.calculate_denoised(sigma, out, x), want, atol=1e-6)
    # the text encoder: OpenCLIP-H layout, penultimate layer, pad token 0
    tokens = clip.tokenize("a red cat")
    assert list(tokens) == ["h"]
    ids = [t[0] for t in tokens["h"][0]]
    assert ids[0] == 49406 and ids[4] == 49407 and set(ids[5:]) == {0}
    clip_h = clip.cond_stage_model.clip_h
    assert clip_h.layer == "hidden" and clip_h.layer_idx == -2
    cond = harness.encode(clip, PROMPT)
    assert cond[0][0].shape == (1, 77, SD2_CONTEXT_DIM) and torch.isfinite(cond[0][0]).all()


def test_the_tiny_loader_offers_both_sd2_models(tiny_sd2, tiny_sd2v):
    from tiny_host_nodes import TinyCheckpointLoader, get_models
    archs = TinyCheckpointLoader.INPUT_TYPES()["required"]["arch"][0]
    assert {"sd15", "sdxl", "sd2", "sd2v"} <= set(archs)
    assert get_models("sd2", 0) is tiny_sd2 and TinyCheckpointLoader().load("sd2v", 0) is tiny_sd2v


def test_eps_and_v_prediction_sample_differently(tiny_sd2, tiny_sd2v):
    """Same UNet weights: only the host's prediction type differs, and so does the picture."""
    eps = _plain(tiny_sd2[0], tiny_sd2[1])
    v = _plain(tiny_sd2v[0], tiny_sd2v[1])
    assert torch.isfinite(eps).all() and torch.isfinite(v).all()
    assert _rel(v, eps) > 0.1


# -- the router: idle, observing, and its explicit attention ----------------------------------------
class Recorder(Controller):
    """Observes every attention call; with ``reapply`` it sends every cond cross-attention chunk
    through the router's explicit softmax (probabilities unchanged, rows marked as edited)."""

    def __init__(self, reapply=False):
        self.calls, self.reapply = [], reapply

    def wants_self(self, call):
        self.calls.append(call)
        return False

    def wants_cross(self, call):
        self.calls.append(call)
        return self.reapply and call.is_cond

    def cross(self, call, probs):
        call.edited.update(range(call.rows))
        return probs


def test_router_sees_every_sd2_block_and_its_explicit_attention_is_the_hosts(sd2):
    _, model, clip, _ = sd2
    plain = _plain(model, clip, size=128, height=64)
    rec = Recorder()
    assert torch.equal(_plain(install(model, rec, "test"), clip, size=128, height=64), plain)
    sites = transformer_sites(model.model.diffusion_model)
    assert {(c.kind, c.key) for c in rec.calls} == {(k, s.key) for s in sites for k in ("self", "cross")}
    for c in rec.calls:
        assert c.latent_hw == (8, 16) and c.grid == (8 >> c.level, 16 >> c.level)
        assert c.heads == (1 if c.level == 0 else 2)  # 64-channel heads at 64 and 128 channels
    # softmax(q k^T / sqrt(64)) with the host's head count, recomputed by the router, is the host's
    # attention: measured 3e-6 / 5e-6 relative after 4 steps (explicit softmax and the host's SDPA round
    # differently); 8 heads of 8 channels instead would give 0.4 / 0.5
    again = _plain(install(model, Recorder(reapply=True), "test"), clip, size=128, height=64)
    assert _rel(again, plain) <= 1e-4


def test_routed_attention_keeps_the_hosts_attention_precision(sd2, monkeypatch):
    """SD20 asks for float32 attention (unet_extra_config attn_precision on newer hosts: SD2.1 in
    fp16 overflows without it); the host hands it to replace patches as extra_options['attn_precision'].
    The router's own calls of the host's attention must pass it on, as the plain model does."""
    import comfy.ldm.modules.attention as attention
    real, seen = attention.optimized_attention, []

    def spy(q, k, v, heads, *args, **kwargs):
        seen.append(kwargs.get("attn_precision"))
        return real(q, k, v, heads, *args, **kwargs)

    monkeypatch.setattr(attention, "optimized_attention", spy)
    _, model, clip, _ = sd2
    _plain(model, clip, steps=1)
    plain, seen[:] = set(seen), []
    _plain(install(model, Controller(), "test"), clip, steps=1)
    routed = set(seen)
    assert plain and routed
    assert routed == plain  # {float32} on 2025 hosts, {None} on the pinned one


# -- AttentionCapture -----------------------------------------------------------------------------
def test_capture_records_maps_at_the_sd2_grids(sd2):
    from attention_motion.controllers.capture import CaptureController
    from attention_motion.nodes.capture import AttentionCapture
    _, model, clip, _ = sd2
    mc, store = AttentionCapture().capture(model, clip, PROMPT, "red cat, car", 0.0, 1.0, "all")
    assert [len(g) for g in store.token_indices] == [2, 1]
    _plain(mc, clip, size=128, height=64)
    levels = store.level_maps()
    assert set(levels) == {0, 1}
    assert levels[0].shape == (1, 2, 8, 16) and levels[1].shape == (1, 2, 4, 8)
    maps = store.maps()
    assert maps.shape == (1, 2, 8, 16) and store.grid == (8, 16)
    assert torch.isfinite(maps).all() and (maps >= 0).all() and (maps <= 1).all() and float(maps.sum()) > 0
    # every token's maps together sum to one per cell, at every level
    _, every = AttentionCapture().capture(model, clip, PROMPT, "a", 0.0, 1.0, "all")
    every.token_indices = [[i] for i in range(77)]
    every.words = [str(i) for i in range(77)]
    _plain(install(model, CaptureController(every), "test"), clip, size=128, height=64, steps=2)
    for level, m in every.level_maps().items():
        total = m.sum(1)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-4), level


# -- StyleAligned ----------------------------------------------------------------------------------
STYLE_LINES = "a red cat sitting on a car\na blue dog on a green lawn\na yellow bird in a tree"


def _style(model, clip, strength=1.0, start=0.0, end=1.0, **more):
    from attention_motion.nodes.style import StyleAligned
    return StyleAligned().build(model, clip, STYLE_LINES, strength, start, end, "all", "all", "queries and keys",
                                SIZE, SIZE, **more)


@pytest.mark.parametrize("more", [{}, {"latent_adain": True, "share_group_norm": True}],
                         ids=["attention", "group_norm_and_latent_adain"])
def test_style_aligned_reference_row_is_plain_and_the_others_change(sd2, more):
    _, model, clip, _ = sd2
    _, positive, latent = _style(model, clip)
    plain = _sample(model, clip, positive, latent, seed=7)
    m, positive, latent = _style(model, clip, **more)
    assert latent["samples"].shape == (3, 4, SIZE // 8, SIZE // 8) and positive[0][0].shape[0] == 3
    out = _sample(m, clip, positive, latent, seed=7)
    assert torch.equal(out[0], plain[0])
    for r in (1, 2):
        assert (out[r] - plain[r]).abs().max() > 1e-2
    m0, positive, latent = _style(model, clip, strength=0.0)
    assert torch.equal(_sample(m0, clip, positive, latent, seed=7), plain)
    assert torch.equal(_sample(model, clip, positive, latent, seed=7), plain)  # the input MODEL is not patched


# -- CrossImageAttention ---------------------------------------------------------------------------
def _cross_image(model, clip, start=0.0, end=1.0):
    from attention_motion.nodes.appearance import CrossImageAttention
    with torch.inference_mode():
        return CrossImageAttention().build(model, clip, PROMPT, "a blue dog on a green lawn", 1.67, start, end,
                                           "1/1, 1/2", "decoder", SIZE, SIZE)


def test_cross_image_structure_and_appearance_rows_are_a_plain_batch(sd2):
    _, model, clip, _ = sd2
    m, pos, lat = _cross_image(model, clip)
    out = _sample(m, clip, pos, lat)
    ref = _sample(model, clip, pos, lat)
    assert torch.equal(out[:2], ref[:2])
    assert float((out[2] - ref[2]).abs().mean()) > 1e-3
    assert find_router(m).controllers[-1].calls > 0
    m, pos, lat = _cross_image(model, clip, start=0.5, end=0.5)  # an empty window: the plain model
    assert torch.equal(_sample(m, clip, pos, lat), ref)


# -- SelfSegmentation ------------------------------------------------------------------------------
def test_self_segmentation_only_observes_and_its_masks_cover_every_pixel_once(sd2):
    from attention_motion.nodes.segment import SelfSegmentation, SelfSegmentationMasks
    _, model, clip, vae = sd2
    m, rec = SelfSegmentation().record(model, clip, PROMPT, "cat, car", 4, 0.15, "auto", 0.0, 1.0)
    plain = _plain(model, clip)
    recorded = _plain(m, clip)
    assert rec.recorded and torch.equal(recorded, plain)
    with torch.inference_mode():
        img = vae.decode(recorded)
    masks, labels, background = SelfSegmentationMasks().masks(rec, img)
    h, w = img.shape[1:3]
    assert masks.shape == (2, h, w) and background.shape == (1, h, w) and labels.shape == (1, h, w, 3)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks.sum(0) + background[0], torch.ones(h, w))  # exactly once
    seg = rec.result
    assert int(seg.segments.max()) < 4 and seg.segment_words.shape == (1, 4) and int(seg.classes.max()) <= 2


# -- P2PReplace ------------------------------------------------------------------------------------
def _p2p(model, clip, targets="a red dog sitting on a car", latent=None, size=SIZE):
    from attention_motion.nodes.p2p import P2PReplace
    with torch.inference_mode():
        return P2PReplace().build(model, clip, PROMPT, targets, "replace", 0.8, "", 0.4, "", size, size, latent=latent)


def test_p2p_source_row_equals_plain_generation(sd2):
    _, model, clip, _ = sd2
    m, pos, lat = _p2p(model, clip, "a red hamster sitting on a car")  # hamster: two tokens for one
    assert lat["batch_index"] == [0, 0] and pos[0][0].shape[0] == 2
    out = _sample(m, clip, pos, lat)
    ref = _plain(model, clip)
    assert (out[0] - ref[0]).abs().max() <= 1e-5
    assert (out[1] - ref[0]).abs().max() > 1e-3  # the target is an edit, not a copy


# -- TokenShift ------------------------------------------------------------------------------------
def test_token_shift_zero_is_the_identity(sd2):
    from attention_motion.nodes.motion import TokenShift
    _, model, clip, _ = sd2
    pos = harness.encode(clip, PROMPT)
    lat = harness.empty_latent(SIZE, SIZE, 1)
    plain = _sample(model, clip, pos, lat, seed=4)
    for self_attention in ("free", "shift"):
        m = TokenShift().patch(model, clip, PROMPT, "cat", 0.0, 0.0, 0.0, 1.0, "all", "zero", self_attention, "none")[0]
        assert torch.equal(_sample(m, clip, pos, lat, seed=4), plain)
    moved = TokenShift().patch(model, clip, PROMPT, "cat", 0.3, 0.0, 0.0, 1.0, "all", "zero", "free", "none")[0]
    assert not torch.equal(_sample(moved, clip, pos, lat, seed=4), plain)
    # reference 'source row': the source row is the plain generation, a zero shift leaves the moved row
    scale = float(plain.abs().max())
    for dx in (0.0, 0.3):
        m, lat2 = TokenShift().patch(model, clip, PROMPT, "cat", dx, 0.0, 0.0, 1.0, "all", "zero", "free",
                                     "source row", SIZE, SIZE, 1)
        out = _sample(m, clip, pos, lat2, seed=4)
        assert float((out[0] - plain[0]).abs().max()) <= 1e-5 * scale
        moved_off = float((out[1] - plain[0]).abs().max())
        assert (moved_off <= 1e-5 * scale) if dx == 0 else (moved_off > 1e-3 * scale)


# -- RegionAttention (its regions' own text tokens go through the SD2 text encoder) ---------------------
def test_region_attention_weight_zero_is_plain_and_weight_one_acts(sd2):
    import json
    from attention_motion.nodes.region import RegionAttention
    _, model, clip, _ = sd2
    regions = json.dumps([{"prompt": "a yellow cat", "box": [0.0, 0.25, 0.5, 0.5]},
                          {"prompt": "a blue boat", "box": [0.5, 0.0, 0.5, 0.5]}])
    plain = _plain(model, clip)
    zero = _plain(RegionAttention().patch(model, clip, regions, weight=0.0)[0], clip)
    assert (zero - plain).abs().max() <= 1e-5
    one = _plain(RegionAttention().patch(model, clip, regions, weight=1.0)[0], clip)
    assert (one - plain).abs().max() > 1e-3


# -- DiffusionInversion ----------------------------------------------------------------------------
def _invert(model, clip, latent, sampler="euler", scheduler="normal", steps=STEPS, denoise=1.0):
    from attention_motion.nodes.inversion import DiffusionInversion
    with torch.inference_mode():
        return DiffusionInversion().invert(model, harness.encode(clip, PROMPT), latent, sampler, scheduler, steps,
                                           denoise, "direct")


_PICTURES = {}


@pytest.fixture
def picture(sd2):
    """A latent the model generated from another prompt and seed (one per model, built once)."""
    arch, model, clip, _ = sd2
    if arch not in _PICTURES:
        _PICTURES[arch] = _plain(model, clip, "a blue dog on a green lawn", seed=41, steps=8)
    return {"samples": _PICTURES[arch]}


@pytest.mark.parametrize("sampler, scheduler, cfg, denoise", [
    ("euler", "normal", 5.0, 1.0), ("ddim", "karras", 7.5, 1.0), ("euler", "simple", 5.0, 0.6)])
def test_direct_inversion_samples_the_picture_back(sd2, picture, sampler, scheduler, cfg, denoise):
    _, model, clip, _ = sd2
    guided, inv = _invert(model, clip, picture, sampler, scheduler, denoise=denoise)
    assert inv["samples"].shape == picture["samples"].shape
    assert _rel(inv["samples"], picture["samples"]) > (0.5 if denoise == 1 else 0.05)  # noise, not the picture
    kw = dict(cfg=cfg, sampler=sampler, scheduler=scheduler, denoise=denoise)
    out = _sample(guided, clip, harness.encode(clip, PROMPT), inv, seed=977, **kw)
    assert _rel(out, picture["samples"]) <= EXACT
    again = _sample(guided, clip, harness.encode(clip, PROMPT), inv, seed=5, **kw)
    assert _rel(again, picture["samples"]) <= EXACT  # the sampler's seed does not matter


def test_p2p_on_an_inverted_picture_keeps_the_picture_in_the_source_row(sd2, picture):
    _, model, clip, _ = sd2
    _, inv = _invert(model, clip, picture)
    m, pos, lat = _p2p(model, clip, latent=inv, size=512)  # the inverted LATENT sets the size
    assert lat["samples"].shape[0] == 2
    out = _sample(m, clip, pos, lat, seed=977)
    assert _rel(out[:1], picture["samples"]) <= EXACT
    assert _rel(out[1:], picture["samples"]) > 1e-3
