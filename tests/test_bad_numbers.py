"""Hostile numbers in node inputs: NaN, infinities, overflow, out-of-range values, oversized texts.

Each was a silent black image or a raw error before: ``reweight 'cat: nan'`` sampled an all-zero
target row, ``cross_replace_words 'cat: nan'`` was accepted, ``reweight 'cat: 1e308'`` failed with
torch's overflow message, width 100 made a 96-pixel latent, a region weight of 1e30 sampled a
black image. Now every one is refused at once, naming the node, the input and what is valid.
"""
import json

import numpy as np
import pytest
import torch

import harness
from test_p2p import build

pytestmark = pytest.mark.host

TGT = "a red dog sitting on a car"
FINITE = "is not a finite number; use numbers from -10 to 10."


# ------------------------------------------------------------------ P2PReplace: numbers in text
@pytest.mark.parametrize("entry,message", [
    ("cat: nan", f"P2PReplace: input 'reweight': 'cat: nan' {FINITE}"),
    ("cat: inf", f"P2PReplace: input 'reweight': 'cat: inf' {FINITE}"),
    ("cat: -Infinity", f"P2PReplace: input 'reweight': 'cat: -Infinity' {FINITE}"),
    ("cat: 1e400", f"P2PReplace: input 'reweight': 'cat: 1e400' {FINITE}"),  # overflows to inf
    ("cat: 1e308", "P2PReplace: input 'reweight': 'cat: 1e308' is out of range; use numbers from -10 to 10."),
    ("cat: -10.5", "P2PReplace: input 'reweight': 'cat: -10.5' is out of range; use numbers from -10 to 10."),
])
def test_reweight_refuses_non_finite_and_out_of_range(tiny_sd15, entry, message):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError) as e:
        build(model, clip, targets="", mode="reweight", reweight=f"red: 2, {entry}")
    assert str(e.value) == message


@pytest.mark.parametrize("entry,message", [
    ("cat: nan", "P2PReplace: input 'cross_replace_words': 'cat: nan' is not a finite number; use numbers from 0 to 1."),
    ("dog: inf", "P2PReplace: input 'cross_replace_words': 'dog: inf' is not a finite number; use numbers from 0 to 1."),
    ("cat: 1e308", "P2PReplace: input 'cross_replace_words': 'cat: 1e308' is out of range; use numbers from 0 to 1."),
    ("cat: -0.1", "P2PReplace: input 'cross_replace_words': 'cat: -0.1' is out of range; use numbers from 0 to 1."),
    ("cat 0.5", "P2PReplace: input 'cross_replace_words': 'cat 0.5' is not 'word: number'. Write comma-separated "
                "entries like 'cat: 0.5, red hat: 2'."),
])
def test_cross_replace_words_refuses_nan_as_it_refuses_inf(tiny_sd15, entry, message):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError) as e:
        build(model, clip, targets=TGT, words=entry)
    assert str(e.value) == message


# ------------------------------------------------------------------ P2PReplace: number inputs
# (checked against INPUT_TYPES by nodes/common.py check_inputs, optional inputs included)
@pytest.mark.parametrize("kwargs,message", [
    (dict(size=100), "P2PReplace: input 'width' is 100; use a multiple of 8, 64 to 8192."),  # was a 96-pixel latent
    (dict(height=100), "P2PReplace: input 'height' is 100; use a multiple of 8, 64 to 8192."),
    (dict(size=128.0), "P2PReplace: input 'width' is 128.0 (float); use a whole number, 64 to 8192."),
    (dict(size=8200), "P2PReplace: input 'width' is 8200; use 64 to 8192."),
    (dict(cross=float("nan")), "P2PReplace: input 'cross_replace' is nan; use a finite number between 0.0 and 1.0."),
    (dict(self_replace=float("inf")), "P2PReplace: input 'self_replace' is inf; use a finite number between 0.0 and 1.0."),
    (dict(self_replace="0.4"), "P2PReplace: input 'self_replace' is '0.4'; use a number between 0.0 and 1.0."),
    (dict(source_pass="fast"), "P2PReplace: input 'source_pass' is 'fast'; use one of exact, batched."),
    (dict(reweight=5), "P2PReplace: input 'reweight' is 5 (int); use text."),
])
def test_number_inputs_are_checked_by_the_node(tiny_sd15, kwargs, message):
    """Hosts before 2025 validate only required inputs, and none validates types for API callers."""
    model, clip, _ = tiny_sd15
    kwargs.setdefault("targets", TGT)
    with pytest.raises(ValueError) as e:
        build(model, clip, **kwargs)
    assert str(e.value) == message


def test_source_pass_left_out_is_exact(tiny_sd15):
    from attention_motion.host.passes import has_source_pass
    model, clip, _ = tiny_sd15
    assert has_source_pass(build(model, clip, source_pass=None)[0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(reweight="cat: 1, " * 300), "P2PReplace: input 'reweight' is 2400 characters long; use at most 2000."),
    (dict(words=", ".join(f"w{i}: 0.5" for i in range(65))),
     "P2PReplace: input 'cross_replace_words' has 65 entries; use at most 64."),
    (dict(source="a cat " * 400), "P2PReplace: input 'source_prompt' is 2400 characters long; use at most 2000."),
    (dict(targets="a dog\n" * 64), "P2PReplace: input 'target_prompts' has 64 lines; use at most 63 "
                                   "(one target prompt per line)."),
    (dict(targets="a dog " * 400), "P2PReplace: input 'target_prompts': line 1 is 2399 characters long; "
                                   "use at most 2000."),
    (dict(source="cat " * 320, mode="refine"),
     "P2PReplace: input 'source_prompt' needs 5 77-token chunks; use at most 4."),
    (dict(source="a red (cat:nan) sitting on a car"),
     "P2PReplace: input 'source_prompt' gives a token the weight nan (from '(word:weight)' or nested brackets); "
     "use finite weights from -10 to 10."),
    (dict(targets="a red (dog:1e30) sitting on a car"),
     "P2PReplace: input 'target_prompts' gives a token the weight 1e+30 (from '(word:weight)' or nested brackets); "
     "use finite weights from -10 to 10."),
    (dict(source="(" * 25 + "cat" + ")" * 25, mode="refine"),
     "P2PReplace: input 'source_prompt' nests brackets more than 24 deep; each '(...)' multiplies the weight by "
     "1.1: write '(word:1.5)' instead."),
])
def test_texts_have_size_limits_and_finite_prompt_weights(tiny_sd15, kwargs, message):
    model, clip, _ = tiny_sd15
    kwargs.setdefault("targets", TGT)
    if "reweight" in kwargs:
        kwargs["mode"] = "replace+reweight"
    with pytest.raises(ValueError) as e:
        build(model, clip, **kwargs)
    assert str(e.value) == message


def test_escaped_and_moderate_brackets_are_fine(tiny_sd15):
    model, clip, _ = tiny_sd15
    build(model, clip, source=r"a red \(cat\) sitting on a car" + "\\(" * 30, targets="", mode="reweight",
          reweight="red: 2")
    build(model, clip, source="a ((((red)))) cat sitting on a (car:1.5)", targets="", mode="reweight", reweight="red: 2")


# ------------------------------------------------------------------ sampling
def _p2p_graph(reweight: str, width: int = 128) -> dict:
    return {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": "sd15", "seed": 0}},
        "2": {"class_type": "P2PReplace", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "source_prompt": "a snowy cat sitting on a car",
            "target_prompts": "", "mode": "reweight", "cross_replace": 1.0, "cross_replace_words": "",
            "self_replace": 0.0, "reweight": reweight, "width": width, "height": 128}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["2", 1], "negative": ["3", 0], "latent_image": ["2", 2], "seed": 3,
            "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


@pytest.mark.graph
@pytest.mark.parametrize("reweight,width,message", [
    ("snowy: nan", 128, "P2PReplace: input 'reweight': 'snowy: nan' " + FINITE),  # was an all-zero target image
    ("snowy: inf", 128, "P2PReplace: input 'reweight': 'snowy: inf' " + FINITE),  # likewise
    ("snowy: 2", 100, "P2PReplace: input 'width' is 100; use a multiple of 8"),  # was a 96-pixel image
])
def test_graph_with_bad_number_fails_instead_of_a_black_image(host, reweight, width, message):
    with pytest.raises(harness.GraphExecutionError) as e:
        harness.run_graph(_p2p_graph(reweight, width))
    assert e.value.errors[0]["node_type"] == "P2PReplace"
    assert message in e.value.errors[0]["exception_message"]


@pytest.mark.parametrize("factor", ["10", "-10"])
def test_largest_allowed_reweight_gives_a_finite_visible_image(tiny_sd15, factor):
    model, clip, vae = tiny_sd15
    m, pos, lat = build(model, clip, source="a snowy cat sitting on a car", targets="", mode="reweight", cross=1.0,
                        self_replace=0.0, reweight=f"snowy: {factor}, cat: {factor}")
    out = harness.ksample(m, pos, harness.encode(clip, ""), lat, seed=3, steps=3)
    assert torch.isfinite(out).all()
    assert (out[1] - out[0]).abs().max() > 1e-3  # the reweight acted
    with torch.inference_mode():
        images = vae.decode(out)
    assert torch.isfinite(images).all()
    assert float(images[1].std()) > 1e-3 and float(images[1].max()) > 0.05  # not black, not flat


# ------------------------------------------------------------------ controllers: pure math
def _call(rows=2, t=77):
    from attention_motion.core.controller import AttnCall, RunInfo
    return AttnCall(kind="cross", key=("input", 1, 0), chunk=0, chunk_index=0, rows=rows, heads=2, grid=(4, 4),
                    level=0, latent_hw=(4, 4), run=RunInfo(step=0, progress=0.0, sigma=1.0))


def _softmax_probs():
    """Attention probabilities (float32, as the router computes them) with extreme rows: flat and
    one-hot (logits 1e4 apart)."""
    logits = torch.randn(2, 2, 16, 77, generator=torch.Generator().manual_seed(0)) * 50
    logits[:, :, 0] = 0.0
    logits[:, :, 1, 5] = 1e4
    return torch.softmax(logits, dim=-1)


def test_controllers_keep_finite_inputs_finite():
    """No controller divides: reweighting scales columns without renormalising (a row may sum to
    0 or to 10, never to NaN); replacing takes the source row through a mapping of weights <= 1."""
    from attention_motion.controllers.p2p import MAX_REWEIGHT, CrossReplace, CrossReweight, P2PPrompts
    from attention_motion.core.align import replace_mapping
    prompts = P2PPrompts("a cat", ["a dog"], 77)
    probs = _softmax_probs()
    for value in (MAX_REWEIGHT, -MAX_REWEIGHT, 0.0):
        factor = torch.full((1, 77), value)  # every token, also the one-hot ones
        out = CrossReweight(prompts, factor, torch.ones(1, 77)).cross(_call(), probs)
        assert torch.isfinite(out).all()
        assert torch.equal(out[0], probs[0])
        assert torch.allclose(out[1].sum(-1), torch.full((2, 16), value), atol=1e-4)
    mapper, mapped = replace_mapping([[1], [2]], [[1], [2, 3]], 77)  # one token -> two
    out = CrossReplace(prompts, mapper[None], mapped[None], torch.ones(1, 77)).cross(_call(), probs)
    assert torch.isfinite(out).all()
    assert float(out[1].sum(-1).max()) <= 1 + 1e-5  # a share of the source row's mass, no more


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308, 11.0])
def test_controllers_refuse_non_finite_values(bad):
    """The last line of defence behind the node's messages."""
    from attention_motion.controllers.p2p import CrossReplace, CrossReweight, P2PPrompts, SelfReplace
    prompts = P2PPrompts("a cat", ["a dog"], 77)
    factor = torch.ones(1, 77, dtype=torch.float64)
    factor[0, 2] = bad
    with pytest.raises(ValueError, match="P2PReplace: the reweight factors must be finite numbers from -10 to 10"):
        CrossReweight(prompts, factor, torch.ones(1, 77))
    with pytest.raises(ValueError, match="P2PReplace: the cross_replace windows must be finite numbers from 0 to 1"):
        CrossReplace(prompts, torch.eye(77)[None], torch.ones(1, 77, dtype=torch.bool), factor)
    with pytest.raises(ValueError, match="P2PReplace: self_replace must be finite numbers from 0 to 1"):
        SelfReplace(prompts, bad)


def test_number_helpers():
    from attention_motion.core.numbers import check_prompt_depth, finite_float, parse_entry_number
    assert finite_float(10 ** 400) is None and finite_float(True) is None and finite_float(2) == 2.0
    assert finite_float(np.float32(0.5)) == 0.5 and finite_float(np.float32("nan")) is None  # widgets fed by numpy
    assert parse_entry_number("N", "x", "a: 1e-3", " 1e-3", 0, 1) == 1e-3
    check_prompt_depth("N", "p", "\\(" * 100 + "(" * 24 + ")" * 30)  # escaped and unmatched brackets
    with pytest.raises(ValueError, match="N: input 'x': 'cat: 1e400' is not a finite number"):
        parse_entry_number("N", "x", "cat: 1e400", " 1e400", 0, 1)
    long_entry = "cat: " + "9" * 300
    with pytest.raises(ValueError, match=r"N: input 'x': 'cat: 9{54}…' is out of range"):
        parse_entry_number("N", "x", long_entry, long_entry[4:], 0, 1)


# ------------------------------------------------------------------ RegionAttention and LocalBlend
def _region(host, model, clip, regions=None, **kw):
    regions = regions or json.dumps([{"prompt": "a red circle", "box": [0.0, 0.0, 0.5, 0.5]}])
    args = dict(schedule="constant", weight=1.0, weight_end=0.0, weight_list="", resolutions="all", frames=0)
    args.update(kw)
    return host.nodes.NODE_CLASS_MAPPINGS["RegionAttention"]().patch(model, clip, regions, **args)[0]


@pytest.mark.parametrize("regions,message", [
    ('[{"prompt": "a red circle", "box": [0, 0, 0.5, 0.5], "weight": 1e30}]',
     "RegionAttention: input 'regions': region 0 ('a red circle'): 'weight' is 1e+30; use a number in [0, 2]"),
    ('[{"prompt": "a red circle", "box": [0, 0, 0.5, 0.5], "weight": 1e400}]',
     "RegionAttention: input 'regions': region 0 ('a red circle'): 'weight' is Infinity; use a number"),
    ('[{"prompt": "a red circle", "box": [0, 0, 0.5, 0.5], "weight": NaN}]',
     "RegionAttention: input 'regions': not valid JSON (NaN is not a JSON number)"),
    ('[{"prompt": "a red circle", "box": [0, 0, 0.5, Infinity]}]',
     "RegionAttention: input 'regions': not valid JSON (Infinity is not a JSON number)"),
])
def test_region_weight_in_json_is_finite_and_in_range(host, tiny_sd15, regions, message):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError) as e:
        _region(host, model, clip, regions)
    assert str(e.value).startswith(message)


# The widgets' own numbers are also checked against INPUT_TYPES (nodes/common.py check_inputs,
# "is nan; use a finite number between ..."); either way the message names node, input and value.
@pytest.mark.parametrize("kwargs,message", [
    (dict(weight=float("nan")), r"RegionAttention: input 'weight' is nan[,;] .*between 0\.0 and 2\.0\.$"),
    (dict(weight=1e30), r"RegionAttention: input 'weight' is 1e\+30, but it must lie between 0\.0 and 2\.0\.$"),
    (dict(schedule="linear", weight_end=float("inf")),
     r"RegionAttention: input 'weight_end' is inf[,;] .*between 0\.0 and 2\.0\.$"),
    (dict(schedule="list", weight_list="1, nan"),
     r"RegionAttention: input 'weight_list': 'nan' is not a finite number; give finite numbers, e\.g\. '1, 1, 0\.8, 0\.5'$"),
    (dict(schedule="list", weight_list="1, 1e400"),
     r"RegionAttention: input 'weight_list': '1e400' is not a finite number; give finite numbers"),
    (dict(schedule="list", weight_list="1, 1e30"),
     r"RegionAttention: input 'weight_list value 1' is 1e\+30, but it must lie between 0\.0 and 2\.0\.$"),
    (dict(schedule="list", weight_list="1 " * 10001),
     r"RegionAttention: input 'weight_list': too long \(20002 characters; at most 20000\)$"),
    (dict(confine=float("nan")), r"RegionAttention: input 'confine' is nan[,;] .*between 0\.0 and 1\.0\.$"),
])
def test_region_number_inputs_refuse_nan_and_inf(host, tiny_sd15, kwargs, message):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match=f"^{message}"):
        _region(host, model, clip, **kwargs)


@pytest.mark.graph
def test_region_graph_with_weight_1e30_fails_instead_of_a_black_image(host):
    regions = json.dumps([{"prompt": "a red circle", "box": [0.0, 0.0, 0.5, 0.5], "weight": 1e30}])
    graph = {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": "sd15", "seed": 0}},
        "2": {"class_type": "RegionAttention", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "regions": regions, "schedule": "constant", "weight": 1.0,
            "weight_end": 0.0, "weight_list": "", "resolutions": "all", "frames": 0}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 3,
            "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }
    with pytest.raises(harness.GraphExecutionError) as e:
        harness.run_graph(graph)
    assert "RegionAttention: input 'regions': region 0 ('a red circle'): 'weight' is 1e+30; use a number in [0, 2]" \
        in e.value.errors[0]["exception_message"]


def test_region_largest_allowed_weight_gives_a_finite_image(host, tiny_sd15):
    model, clip, vae = tiny_sd15
    regions = json.dumps([{"prompt": "a red circle", "box": [0.0, 0.0, 0.5, 0.5], "weight": 2}])
    m = _region(host, model, clip, regions, weight=2.0)
    out = harness.ksample(m, harness.encode(clip, "a red circle"), harness.encode(clip, ""),
                          harness.empty_latent(128, 128), seed=3, steps=3)
    with torch.inference_mode():
        images = vae.decode(out)
    assert torch.isfinite(images).all() and float(images.std()) > 1e-3


@pytest.mark.parametrize("kwargs,message", [
    (dict(threshold=float("nan")), r"LocalBlend: input 'threshold' is nan[,;] .*between 0\.0 and 1\.0\.$"),
    (dict(start=float("inf")), r"LocalBlend: input 'start' is inf[,;] .*between 0\.0 and 1\.0\.$"),
])
def test_local_blend_number_inputs(tiny_sd15, kwargs, message):
    from attention_motion.nodes.blend import LocalBlend
    model, clip, _ = tiny_sd15
    args = dict(words="cat", subtract_words="", threshold=0.3, dilation=1, start=0.2, resolution="1/2")
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"^{message}"):
        LocalBlend().build(model, clip, **args)
