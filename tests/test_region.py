"""Tier 2: RegionAttention through the router and through sampling on the tiny models."""
import json

import pytest
import torch

import harness
from attention_motion.controllers.capture import CaptureController
from attention_motion.controllers.region import Region, RegionController, attend
from attention_motion.core.boxes import WeightSchedule, box_coverage
from attention_motion.core.controller import Controller
from attention_motion.core.store import AttentionStore
from attention_motion.host.router import EXTRA_CONTEXT_KEY, AttentionRouter, RouterContextPatch, install

pytestmark = pytest.mark.host

PROMPT = "a red circle and a blue square"
REGIONS = json.dumps([{"prompt": "a red circle", "box": [0.0, 0.25, 0.5, 0.5]},
                      {"prompt": "a blue square", "box": [0.5, 0.0, 0.5, 0.5]}])


def _node(host, name):
    return host.nodes.NODE_CLASS_MAPPINGS[name]()


def _regions(host, model, clip, regions=REGIONS, **kw):
    args = dict(schedule="constant", weight=1.0, weight_end=0.0, weight_list="", resolutions="all", frames=0)
    args.update(kw)
    return _node(host, "RegionAttention").patch(model, clip, regions, **args)[0]


def _sample(model, clip, prompt=PROMPT, size=(128, 128), steps=4, cfg=5.0, batch=1, seed=7):
    pos, neg = harness.encode(clip, prompt), harness.encode(clip, "")
    return harness.ksample(model, pos, neg, harness.empty_latent(*size, batch=batch), seed=seed, steps=steps, cfg=cfg)


def _region_controller(model):
    from attention_motion.host.router import find_router
    return next(c for c in find_router(model).controllers if isinstance(c, RegionController))


class Probe(Controller):
    """Stacked after the region controller: compares its mixed output with global-only attention."""

    def __init__(self, region: RegionController):
        self.region = region
        self.outside, self.inside, self.calls, self.prompt_tokens = 0.0, [], 0, set()
        self.probs_tokens = set()

    def wants_cross(self, call):
        return call.is_cond

    def cross(self, call, probs):
        self.probs_tokens.add(probs.shape[-1])
        return probs

    def wants_cross_output(self, call):
        return call.is_cond

    def cross_output(self, call, q, k, v, out, k_extra, v_extra):
        assert k_extra is None and v_extra is None  # the probe has no tokens of its own
        self.calls += 1
        self.prompt_tokens.add(k.shape[1])
        g = attend(q, k, v, call.heads)
        cover = self.region.coverage(call).sum(1)  # [rows, N]
        diff = (out - g).abs().amax(-1)  # [rows, N]
        if (cover == 0).any():
            self.outside = max(self.outside, float(diff[cover == 0].max()))
        if (cover >= 1).any():
            self.inside.append(float(diff[cover >= 1].mean()))
        return out


# -- router level, synthetic tensors ----------------------------------------------------------------
def _synthetic(weight_schedule, rows=2, h=4, w=6, heads=2, d=4, t=77, e=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    box = [0.5, 0.0, 0.5, 0.5]  # right half, top half
    region = Region("r", torch.randn(e, 16, generator=g), path=torch.tensor([box]))
    ctrl = RegionController([region], weight_schedule)
    router = AttentionRouter((ctrl,))
    c = heads * d
    q = torch.randn(2 * rows, h * w, c, generator=g)
    kg, vg = torch.randn(2 * rows, t, c, generator=g), torch.randn(2 * rows, t, c, generator=g)
    ke, ve = torch.randn(1, e, c, generator=g).expand(2 * rows, e, c), torch.randn(1, e, c, generator=g).expand(2 * rows, e, c)
    extra = {"n_heads": heads, "original_shape": [rows, 4, h, w], "cond_or_uncond": [1, 0],
             "block": ("input", 1), "block_index": 0, EXTRA_CONTEXT_KEY: t}
    inside = box_coverage(torch.tensor(box), (h, w)).flatten() >= 1
    return router, ctrl, q, kg, vg, ke, ve, extra, inside


def test_router_mixes_only_inside_the_box_of_the_cond_rows(host):
    router, ctrl, q, kg, vg, ke, ve, extra, inside = _synthetic(WeightSchedule("constant", 0.75))
    seen = []

    class Observer(Controller):
        def wants_cross(self, call):
            return True

        def cross(self, call, probs):
            seen.append(probs.shape[-1])
            return probs

    router = AttentionRouter(router.controllers + (Observer(),))
    k, v = torch.cat([kg, ke], 1), torch.cat([vg, ve], 1)
    out = router.attend("cross", ("input", 1, 0), None, q, k, v, dict(extra, sigmas=torch.tensor([3.0] * 4)))
    g = attend(q, kg, vg, 2)
    loc = attend(q, ke, ve, 2)
    assert seen and set(seen) == {77}  # probabilities controllers see the prompt's tokens only
    assert torch.allclose(out[:2], g[:2], atol=1e-6)  # uncond rows: global only
    cond = out[2:]
    assert torch.allclose(cond[:, ~inside], g[2:, ~inside], atol=1e-6)  # outside: exactly global attention
    mixed = g[2:, inside] + 0.75 * (loc[2:, inside] - g[2:, inside])
    assert torch.allclose(cond[:, inside], mixed, atol=1e-5)
    assert (cond[:, inside] - g[2:, inside]).abs().mean() > 0.05
    # without the handshake key the router takes the last tokens as the controllers' own
    del extra[EXTRA_CONTEXT_KEY]
    again = router.attend("cross", ("input", 1, 0), None, q, k, v, dict(extra, sigmas=torch.tensor([3.0] * 4)))
    assert torch.allclose(again, out)


def test_context_patch_appends_tokens_and_marks_where(host):
    router, ctrl, *_ = _synthetic(WeightSchedule("constant", 1.0))
    patch = RouterContextPatch(router, frozenset({("input", 1, 0)}))
    ctx = torch.randn(3, 77, 16)
    extra = {"block": ("input", 1), "block_index": 0}
    n, c2, v2 = patch(None, ctx, ctx, extra)
    assert c2.shape == (3, 82, 16) and v2 is c2 and extra[EXTRA_CONTEXT_KEY] == 77
    assert torch.equal(c2[:, :77], ctx) and torch.equal(c2[1, 77:], ctrl.context_tokens())
    with pytest.raises(ValueError, match="CLIP of the same checkpoint"):
        patch(None, torch.randn(1, 77, 32), None, {"block": ("input", 1), "block_index": 0})
    # a block the router did not patch keeps its context untouched
    other = {"block": ("middle", 0), "block_index": 0}
    assert patch(None, ctx, ctx, other)[1] is ctx and EXTRA_CONTEXT_KEY not in other


def test_router_follows_the_schedule_step_by_step(host):
    sched = WeightSchedule("list", values=(1.0, 0.5, 0.0, 0.25))
    router, ctrl, q, kg, vg, ke, ve, extra, inside = _synthetic(sched)
    k, v = torch.cat([kg, ke], 1), torch.cat([vg, ve], 1)
    g, loc = attend(q, kg, vg, 2)[2:, inside], attend(q, ke, ve, 2)[2:, inside]
    measured = []
    for sigma in (8.0, 4.0, 2.0, 1.0, 0.5):  # five steps of one run
        out = router.attend("cross", ("input", 1, 0), None, q, k, v, dict(extra, sigmas=torch.tensor([sigma] * 4)))
        d = out[2:, inside] - g
        measured.append(round(float((d * (loc - g)).sum() / ((loc - g) ** 2).sum()), 4))
    assert measured == [1.0, 0.5, 0.0, 0.25, 0.25]
    assert ctrl.applied == {0: 1.0, 1: 0.5, 2: 0.0, 3: 0.25, 4: 0.25}


# -- through sampling -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_weight_zero_is_the_plain_model_and_weight_one_acts(host, tiny_sd15, tiny_sdxl, arch):
    model, clip = (tiny_sd15[0], tiny_sd15[1]) if arch == "sd15" else tiny_sdxl
    plain = _sample(model, clip)
    zero = _sample(_regions(host, model, clip, weight=0.0), clip)
    assert (zero - plain).abs().max().item() <= 1e-5
    one = _sample(_regions(host, model, clip, weight=1.0), clip)
    assert (one - plain).abs().max().item() > 1e-3


@pytest.mark.parametrize("arch, size", [("sd15", (160, 96)), ("sdxl", (128, 128))])
def test_sampling_mixes_only_inside_the_boxes(host, tiny_sd15, tiny_sdxl, arch, size):
    model, clip = (tiny_sd15[0], tiny_sd15[1]) if arch == "sd15" else tiny_sdxl
    regional = _regions(host, model, clip, schedule="linear", weight=1.0, weight_end=0.5)
    probe = Probe(_region_controller(regional))
    _sample(install(regional, probe, "probe"), clip, size=size, steps=3)
    assert probe.calls > 0
    assert probe.prompt_tokens == {77} and probe.probs_tokens == {77}  # controllers see the prompt only
    assert probe.outside <= 1e-5  # outside every box: exactly the global-only attention
    assert min(probe.inside) > 1e-3  # inside the boxes: the local descriptions act at every layer


def test_sampling_follows_the_schedule_step_by_step(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    regional = _regions(host, model, clip, schedule="cosine", weight=1.0, weight_end=0.2)
    ctrl = _region_controller(regional)

    class Clock(Controller):
        progress = {}

        def wants_cross(self, call):
            self.progress[call.run.step] = call.run.progress
            return False

    clock = Clock()
    _sample(install(regional, clock, "clock"), clip, steps=5)
    assert sorted(ctrl.applied) == [0, 1, 2, 3, 4]
    expected = {s: WeightSchedule("cosine", 1.0, 0.2).weight(s, p) for s, p in clock.progress.items()}
    assert ctrl.applied == pytest.approx(expected)
    assert ctrl.applied[0] == pytest.approx(1.0) and ctrl.applied[4] < ctrl.applied[1]
    listed = _regions(host, model, clip, schedule="list", weight_list="1, 0, 0.5")
    _sample(listed, clip, steps=5)
    assert _region_controller(listed).applied == {0: 1.0, 1: 0.0, 2: 0.5, 3: 0.5, 4: 0.5}


def test_stacks_with_capture_and_box_path_moves_over_the_batch(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    path = json.dumps([{"prompt": "a red circle", "path": [[0.0, 0.25, 0.25, 0.5], [0.75, 0.25, 0.25, 0.5]]}])
    regional = _regions(host, model, clip, regions=path)
    store = AttentionStore(prompt=PROMPT, words=["circle"], token_indices=[[3]])
    captured = install(regional, CaptureController(store), "capture")
    probe = Probe(_region_controller(regional))
    out = _sample(install(captured, probe, "probe"), clip, batch=3, steps=2)
    assert out.shape[0] == 3 and store.maps().shape == (3, 1, 16, 16)
    assert probe.outside <= 1e-5
    cover = _region_controller(regional).coverage(
        type("C", (), {"grid": (16, 16), "latent_hw": (16, 16), "level": 0, "rows": 3})())[:, 0].reshape(3, 16, 16)
    cols = [float((c.sum(0) * torch.arange(16)).sum() / c.sum()) for c in cover]
    assert cols[0] < cols[1] < cols[2]  # the box moves right from row to row


def test_frame_sequence_then_region_path(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    frames = 3
    fs = _node(host, "FrameSequence")
    m, latent = fs.build(model, clip, "a red circle", "circle", frames, width=128, height=128, dx=0.0, dy=0.0)
    path = json.dumps([{"prompt": "a blue square", "path": [[0.0, 0.3, 0.3, 0.4], [0.7, 0.3, 0.3, 0.4]]}])
    regional = _regions(host, m, clip, regions=path, frames=frames)
    pos, neg = harness.encode(clip, "a red circle"), harness.encode(clip, "")
    still = harness.ksample(m, pos, neg, latent, seed=1, steps=3)
    moving = harness.ksample(regional, pos, neg, latent, seed=1, steps=3)
    assert moving.shape == still.shape == (3, 4, 16, 16)
    diff = (moving - still).abs().sum(1)  # [frames, h, w]
    assert diff.amax(dim=(1, 2)).min() > 1e-3
    cols = [float((d.sum(0) * torch.arange(16)).sum() / d.sum()) for d in diff]
    assert cols[0] < cols[1] < cols[2]  # the change follows the box from left to right


def test_node_errors_name_the_input(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match="RegionAttention: input 'regions': not valid JSON"):
        _regions(host, model, clip, regions="[{")
    with pytest.raises(ValueError, match="RegionAttention: input 'regions' is empty"):
        _regions(host, model, clip, regions="")
    with pytest.raises(ValueError, match="'mask' input is not connected"):
        _regions(host, model, clip, regions='[{"prompt": "sky", "mask": 0}]')
    with pytest.raises(ValueError, match="holds 1 mask"):
        _node(host, "RegionAttention").patch(model, clip, '[{"prompt": "sky", "mask": 1}]', mask=torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match="input 'weight_list' is empty"):
        _regions(host, model, clip, schedule="list")
    with pytest.raises(ValueError, match="input 'weight_list': 'a' is not a number"):
        _regions(host, model, clip, schedule="list", weight_list="1, a")
    with pytest.raises(ValueError, match="input 'weight'"):
        _regions(host, model, clip, weight=3.0)
    with pytest.raises(ValueError, match="input 'resolutions'"):
        _regions(host, model, clip, resolutions="1/3")


def test_mask_region_acts_inside_the_mask_only(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    mask = torch.zeros(1, 128, 128)
    mask[0, 64:, :64] = 1.0  # bottom-left quarter
    regional = _node(host, "RegionAttention").patch(model, clip, '[{"prompt": "a red circle", "mask": 0}]', mask=mask)[0]
    probe = Probe(_region_controller(regional))
    _sample(install(regional, probe, "probe"), clip, steps=2)
    assert probe.outside <= 1e-5 and min(probe.inside) > 1e-3


def test_regions_from_attention_store(host):
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 1:3, 2:6] = 1.0
    maps[0, 1, 5:8, 0:2] = 0.5
    store = AttentionStore(prompt=PROMPT, words=["circle", "square"], token_indices=[[3], [7]], latent_hw=(8, 8))
    store.loaded_maps = maps
    node = _node(host, "RegionsFromAttention")
    text, masks = node.boxes(store, 0.5, 0.0, "", 0)
    regs = json.loads(text)
    assert [r["prompt"] for r in regs] == ["circle", "square"]
    assert regs[0]["box"] == [0.25, 0.125, 0.5, 0.25] and regs[1]["box"] == [0.0, 0.625, 0.25, 0.375]
    assert masks.shape == (2, 64, 64) and masks[0].sum() == 0.5 * 0.25 * 64 * 64
    text2, _ = node.boxes(store, 0.5, 0.0, "a red circle, a blue square", 0)
    assert [r["prompt"] for r in json.loads(text2)] == ["a red circle", "a blue square"]
    with pytest.raises(ValueError, match="one per word"):
        node.boxes(store, 0.5, 0.0, "just one", 0)
    with pytest.raises(ValueError, match="input 'row'"):
        node.boxes(store, 0.5, 0.0, "", 2)
    # the JSON feeds RegionAttention directly
    from attention_motion.core.boxes import parse_regions
    assert len(parse_regions(text)) == 2


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_prompt_words_are_placed_in_their_boxes(host, tiny_sd15, tiny_sdxl, arch):
    """With 'prompt', the global prompt's tokens of each region's words get the region's footprint:
    captured maps of those words concentrate in their boxes; weight 0 is still the plain model."""
    from attention_motion.core.maps import map_centroids
    from attention_motion.host.tokens import tokenize_prompt
    model, clip = (tiny_sd15[0], tiny_sd15[1]) if arch == "sd15" else tiny_sdxl
    placed = _regions(host, model, clip, prompt=PROMPT, confine=1.0)
    ctrl = _region_controller(placed)
    pt = tokenize_prompt(clip, PROMPT)
    pos = {w: p for w, p in zip(pt.words, pt.word_positions)}
    assert ctrl.regions[0].prompt_tokens == sorted(pos["red"] + pos["circle"])
    assert ctrl.regions[1].prompt_tokens == sorted(pos["blue"] + pos["square"])
    capture = _node(host, "AttentionCapture")
    captured, store = capture.capture(placed, clip, PROMPT, "circle, square", 0.0, 1.0, "all")
    _sample(captured, clip, steps=3)
    c = map_centroids(store.maps()[0])  # [words, 2]: circle's box centre (0.25, 0.5), square's (0.75, 0.25)
    assert abs(float(c[0, 0]) - 0.25) < 0.08 and abs(float(c[0, 1]) - 0.5) < 0.08, c
    assert abs(float(c[1, 0]) - 0.75) < 0.08 and abs(float(c[1, 1]) - 0.25) < 0.08, c
    plain = _sample(model, clip)
    zero = _sample(_regions(host, model, clip, weight=0.0, prompt=PROMPT), clip)
    assert (zero - plain).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="RegionAttention: input 'confine'"):
        _regions(host, model, clip, prompt=PROMPT, confine=1.5)
