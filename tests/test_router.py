"""Tier 2: the attention router on a real ComfyUI host with tiny models."""
import pytest
import torch

import harness
from attention_motion.controllers.capture import CaptureController
from attention_motion.core.controller import COND, Controller
from attention_motion.core.store import AttentionStore
from attention_motion.host.blocks import transformer_sites
from attention_motion.host.router import AttentionRouter, RouterPatch, find_router, install

pytestmark = pytest.mark.host


class Recorder(Controller):
    """Observes every attention call without changing anything."""

    def __init__(self):
        self.calls = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def wants_cross(self, call):
        self.calls.append(call)
        return True

    def wants_self(self, call):
        self.calls.append(call)
        return False


def _sample(model, clip, prompt="a red circle", cfg=5.0, size=(256, 256), steps=6, sampler="euler", seed=3):
    pos, neg = harness.encode(clip, prompt), harness.encode(clip, "")
    return harness.ksample(model, pos, neg, harness.empty_latent(*size), seed=seed, steps=steps, cfg=cfg, sampler=sampler)


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_idle_router_is_bit_identical(host, tiny_sd15, tiny_sdxl, arch):
    model, clip = (tiny_sd15[0], tiny_sd15[1]) if arch == "sd15" else tiny_sdxl
    plain = _sample(model, clip)
    routed = install(model, Controller(), "test")
    assert find_router(routed) is not None and find_router(model) is None
    out = _sample(routed, clip)
    assert (out - plain).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_observer_router_keeps_output_and_sees_every_block(host, tiny_sd15, tiny_sdxl, arch):
    model, clip = (tiny_sd15[0], tiny_sd15[1]) if arch == "sd15" else tiny_sdxl
    plain = _sample(model, clip, steps=3)
    rec = Recorder()
    out = _sample(install(model, rec, "test"), clip, steps=3)
    assert (out - plain).abs().max().item() <= 1e-5
    sites = transformer_sites(model.model.diffusion_model)
    from comfy.ldm.modules.attention import BasicTransformerBlock
    blocks = [m for m in model.model.diffusion_model.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(sites) == len(blocks)  # counted independently of the site finder: none missed
    assert any(s.block_name == "middle" for s in sites)
    seen = {(c.kind, c.key) for c in rec.calls}
    expected = {("self", s.key) for s in sites} | {("cross", s.key) for s in sites if s.has_cross}
    assert seen == expected
    if arch == "sdxl":
        assert any(s.depth > 0 for s in sites)  # depth indices inside a block are covered
    # uncond and cond chunks are both seen at cfg > 1
    assert {c.chunk for c in rec.calls} == {0, 1}
    assert rec.resets == 1


def test_cfg1_without_uncond_and_new_run_resets(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    rec = Recorder()
    routed = install(model, rec, "test")
    _sample(routed, clip, cfg=1.0, steps=3)
    assert {c.chunk for c in rec.calls} == {COND}
    _sample(routed, clip, cfg=1.0, steps=3)
    assert rec.resets == 2
    steps = sorted({c.run.step for c in rec.calls})
    assert steps == [0, 1, 2]
    progress = sorted({round(c.run.progress, 4) for c in rec.calls})
    assert progress[0] == 0.0 and all(0 <= p <= 1 for p in progress) and len(progress) == 3
    assert progress == sorted(progress)


@pytest.mark.parametrize("size", [(256, 256), (320, 192), (200, 328)])
def test_grid_follows_any_size(host, tiny_sd15, size):
    model, clip, _ = tiny_sd15
    rec = Recorder()
    _sample(install(model, rec, "test"), clip, size=size, steps=2)
    lat = (size[1] // 8, size[0] // 8)
    for c in rec.calls:
        assert c.latent_hw == lat
        assert c.grid[0] == -(-lat[0] // 2 ** c.level) and c.grid[1] == -(-lat[1] // 2 ** c.level)


def test_stacking_keeps_parent_and_chains_foreign_patch(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    calls = []

    def foreign(q, k, v, extra):
        calls.append(extra["block"])
        import comfy.ldm.modules.attention as attention
        return attention.optimized_attention(q, k, v, extra["n_heads"]) * 0.5

    patched = model.clone()
    patched.set_model_attn2_replace(foreign, "output", 3)  # older-style key without depth
    reference = _sample(patched, clip, steps=2)
    n_ref = len(calls)
    a = install(patched, Controller(), "first")
    b = install(a, Recorder(), "second")
    assert len(find_router(a).controllers) == 1 and len(find_router(b).controllers) == 2
    calls.clear()
    out = _sample(b, clip, steps=2)
    assert len(calls) == n_ref > 0  # the foreign patch still runs, once per call
    assert (out - reference).abs().max().item() <= 1e-5


def test_router_patch_survives_deepcopy(host, tiny_sd15):
    import copy
    model, _, _ = tiny_sd15
    routed = install(model, Controller(), "test")
    patch = next(iter(routed.model_options["transformer_options"]["patches_replace"]["attn2"].values()))
    assert isinstance(patch, RouterPatch) and copy.deepcopy(patch) is patch


def test_capture_map_follows_attention_by_construction(host):
    """Synthetic q/k favouring token 5 in a known region: the captured map finds that region."""
    heads, d, h, w, t = 2, 8, 8, 12, 77
    store = AttentionStore(prompt="p", words=["w"], token_indices=[[5]])
    router = AttentionRouter((CaptureController(store),))
    k = torch.zeros(2, t, heads * d)
    k[:, 5] = 4.0  # token 5's key along every channel
    q = torch.zeros(2, h * w, heads * d)
    region = torch.zeros(h, w, dtype=torch.bool)
    region[2:5, 7:11] = True
    q[:, region.flatten()] = 1.0  # these queries align with token 5's key
    v = torch.randn(2, t, heads * d)
    extra = {"n_heads": heads, "original_shape": [1, 4, h * 2, w * 2], "cond_or_uncond": [1, 0],
             "sigmas": torch.tensor([5.0, 5.0]), "block": ("input", 1), "block_index": 0}
    out = router.attend("cross", ("input", 1, 0), None, q, k, v, extra)
    assert out.shape == q.shape
    m = store.maps()[0, 0]
    assert m.shape == (h, w) and store.grid == (h, w)
    inside, outside = m[region], m[~region]
    assert inside.min() > 10 * outside.max()
    top = torch.topk(m.flatten(), int(region.sum())).indices
    assert set(top.tolist()) == set(region.flatten().nonzero().flatten().tolist())


def _capture(host, model, clip, prompt, words, **kw):
    node = host.nodes.NODE_CLASS_MAPPINGS["AttentionCapture"]()
    args = dict(start=0.0, end=1.0, resolutions="all")
    args.update(kw)
    return node.capture(model, clip, prompt, words, **args)


def test_capture_shapes_sums_and_levels(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    prompt = "a red circle and a blue square"
    mc, store = _capture(host, model, clip, prompt, "red circle, square")
    words = [i for g in store.token_indices for i in g]
    assert len(store.token_indices) == 2 and len(store.token_indices[0]) == 2
    out = _sample(mc, clip, prompt=prompt, steps=4)
    maps = store.maps()
    assert maps.shape == (1, 2, 32, 32)  # finest grid of a 32x32 latent
    assert (maps >= 0).all() and (maps <= 1).all()
    levels = store.level_maps()
    assert set(levels) == {0, 1}  # the tiny UNet attends at 32x32 and 16x16
    # every token's maps together sum to one per cell: capture all 77 tokens and check
    every = _capture(host, model, clip, prompt, "a")[1]
    every.token_indices = [[i] for i in range(77)]
    every.words = [str(i) for i in range(77)]
    _sample(_capture_with(model, every), clip, prompt=prompt, steps=2)
    total = every.maps().sum(1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-4)
    assert words and out.shape == (1, 4, 32, 32)


def _capture_with(model, store):
    return install(model, CaptureController(store), "test")


def test_capture_memory_is_independent_of_steps(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    sizes = []
    for steps in (3, 9):
        mc, store = _capture(host, model, clip, "a red circle", "circle")
        _sample(mc, clip, steps=steps)
        sizes.append(sum(a.total.numel() for a in store.accumulators.values()))
    assert sizes[0] == sizes[1]


def test_capture_window_and_resolution_selection(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    mc, store = _capture(host, model, clip, "a red circle", "circle", start=0.5, end=1.0, resolutions="1/2")
    _sample(mc, clip, steps=8)
    assert set(store.level_maps()) == {1} and store.grid == (16, 16)
    counts = {lv: a.count for lv, a in store.accumulators.items()}
    mc_all, store_all = _capture(host, model, clip, "a red circle", "circle", resolutions="1/2")
    _sample(mc_all, clip, steps=8)
    assert 0 < counts[1] < store_all.accumulators[1].count


def test_capture_errors_name_word_and_prompt_words(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError) as e:
        _capture(host, model, clip, "a red circle", "dog")
    msg = str(e.value)
    assert "AttentionCapture" in msg and "'dog'" in msg and "a, red, circle" in msg
    with pytest.raises(ValueError, match="resolutions"):
        _capture(host, model, clip, "a red circle", "circle", resolutions="1/3")
    with pytest.raises(ValueError, match="'start'"):
        _capture(host, model, clip, "a red circle", "circle", start=0.8, end=0.2)


def test_store_read_before_sampling_says_what_to_do(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    _, store = _capture(host, model, clip, "a red circle", "circle")
    view = host.nodes.NODE_CLASS_MAPPINGS["AttentionHeatmaps"]()
    with pytest.raises(RuntimeError, match="store is empty.*Connect the MODEL output"):
        view.render(store, {"samples": torch.zeros(1, 4, 32, 32)}, 0.5, "overlay")


def test_long_prompt_tokens_beyond_77(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    prompt = " ".join(["a small red circle on grey ground"] * 12) + " and a giraffe"
    mc, store = _capture(host, model, clip, prompt, "giraffe")
    assert store.token_indices[0][0] >= 77
    _sample(mc, clip, prompt=prompt, steps=2)
    assert store.maps().shape[:2] == (1, 1) and store.maps().sum() > 0


def test_another_packs_attention_override_still_runs_under_the_router(host, tiny_sd15):
    """2025 hosts let a pack replace the attention function through the transformer option
    ``optimized_attention_override``; a routed model must still call it, as the plain one does."""
    import inspect

    import comfy.ldm.modules.attention as attention
    if "transformer_options" not in inspect.getsource(attention.CrossAttention.forward):
        pytest.skip("this host has no attention override (hosts before 2025)")
    model, clip = tiny_sd15[0], tiny_sd15[1]
    calls = []

    def override(func, *args, **kwargs):
        calls.append(args[0].shape)
        return func(*args, **kwargs)

    overridden = model.clone()
    options = overridden.model_options.setdefault("transformer_options", {})
    overridden.model_options["transformer_options"] = {**options, "optimized_attention_override": override}
    plain = _sample(overridden, clip, steps=2)
    plain_calls, calls[:] = list(calls), []
    routed = _sample(install(overridden, Recorder(), "test"), clip, steps=2)
    assert plain_calls and calls == plain_calls  # every self- and cross-attention call, in order
    assert (routed - plain).abs().max().item() <= 1e-5
