"""Hostile input: every node checks its own inputs (optional ones included), whatever the host
checks; wrong latents, missing levels, long prompts and damaged store files give clear errors."""
import json
import math
import os

import pytest
import torch

import harness
from attention_motion.core.store import AttentionStore
from attention_motion.nodes import NODE_CLASS_MAPPINGS
from attention_motion.nodes.capture import STORE_FOLDER, AttentionCapture, LoadAttentionStore
from attention_motion.nodes.motion import FrameSequence, TokenShift

pytestmark = pytest.mark.host

PROMPT = "a red apple on a wooden table"


def _numeric_cases():
    for name, cls in sorted(NODE_CLASS_MAPPINGS.items()):
        declared = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for key, spec in (declared.get(section) or {}).items():
                if spec[0] not in ("INT", "FLOAT"):
                    continue
                opts = spec[1]
                above = opts["max"] + (opts.get("step", 1) if spec[0] == "INT" else 1.0)
                for bad in (above, math.nan):
                    yield pytest.param(name, key, bad, id=f"{name}-{key}-{bad}")


def _store():
    s = AttentionStore(prompt=PROMPT, words=["apple"], token_indices=[[3]])
    s.start_run()
    s.add(0, (16, 16), torch.rand(1, 1, 16, 16), (16, 16))
    return s


def _valid_args(cls, models) -> dict:
    """Every declared input with a valid value: widgets' defaults, first choices, tiny objects."""
    model, clip, _ = models
    objects = {"MODEL": model, "CLIP": clip, "LATENT": {"samples": torch.zeros(1, 4, 16, 16)},
               "IMAGE": torch.zeros(1, 128, 128, 3), "MASK": torch.zeros(1, 128, 128), "ATTENTION_STORE": _store(),
               "CONDITIONING": [[torch.zeros(1, 77, 768), {}]]}
    args = {}
    declared = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for key, spec in (declared.get(section) or {}).items():
            kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(kind, (list, tuple)):
                args[key] = opts.get("default", kind[0])
            elif "default" in opts:
                args[key] = opts["default"]
            elif kind in objects:
                args[key] = objects[kind]
            elif section == "required":
                args[key] = None
    return args


@pytest.mark.parametrize("name,key,bad", list(_numeric_cases()))
def test_every_number_above_its_max_or_nan_is_refused_by_the_node(tiny_sd15, name, key, bad):
    """What hosts before 2025 do with optional inputs (and any caller with required ones): call
    the node function with the value; the node itself must refuse it, naming the input."""
    cls = NODE_CLASS_MAPPINGS[name]
    args = _valid_args(cls, tiny_sd15)
    args[key] = bad
    with pytest.raises(ValueError, match=rf"{name}: input '{key}' is "):
        getattr(cls(), cls.FUNCTION)(**args)


# ------------------------------------------------------------------------------- declared limits
def test_token_shift_width_above_the_declared_max_builds_nothing(tiny_sd15):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match=r"^TokenShift: input 'width' is 32768; use 64 to 8192\.$"):
        TokenShift().patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free", width=32768)


@pytest.mark.parametrize("kw,match", [
    ({"width": "512"}, r"TokenShift: input 'width' is '512'; use a whole number, 64 to 8192\."),
    ({"batch_size": 2.5}, r"TokenShift: input 'batch_size' is 2\.5 \(float\); use a whole number, 1 to 64\."),
    ({"latent": {"samples": "x"}}, r"TokenShift: input 'latent' is not a LATENT with 'samples' \[batch, channels"),
    ({"latent": torch.zeros(1, 4, 8, 8)}, r"TokenShift: input 'latent' is not a LATENT .*\(got tensor"),
    ({"reference": 3}, r"TokenShift: input 'reference' is 3 \(int\); use one of source row, none\."),
    ({"dx": float("inf")}, r"TokenShift: input 'dx' is inf; use a finite number between -1\.0 and 1\.0\."),
    ({"prompt": "a " * 40000}, r"TokenShift: input 'prompt' is 80000 characters long; use at most 65536\."),
])
def test_wrong_types_of_inputs_are_named_not_raw_type_errors(tiny_sd15, kw, match):
    model, clip, _ = tiny_sd15
    args = dict(prompt=PROMPT, words="apple", dx=0.1, dy=0.0, start=0.0, end=0.4, resolutions="all")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        TokenShift().patch(model, clip, **args)


def test_optional_inputs_of_other_nodes_are_checked_too(host, tiny_sd15):
    model, clip, _ = tiny_sd15
    region = NODE_CLASS_MAPPINGS["RegionAttention"]()
    with pytest.raises(ValueError, match=r"RegionAttention: input 'mask' is not a MASK \[masks, height, width\]"):
        region.patch(model, clip, '[{"prompt": "sky", "mask": 0}]', mask=[[1.0]])
    heat = NODE_CLASS_MAPPINGS["AttentionHeatmaps"]()
    with pytest.raises(ValueError, match=r"AttentionHeatmaps: input 'image' is not an IMAGE batch"):
        heat.render(_store(), {"samples": torch.zeros(1, 4, 16, 16)}, 0.5, "overlay", image=torch.zeros(8, 8))
    clip_out = NODE_CLASS_MAPPINGS["SaveMotionClip"]()
    with pytest.raises(ValueError, match=r"SaveMotionClip: input 'gif' is 'yes'; use true or false\."):
        clip_out.save(torch.zeros(2, 8, 8, 3), gif="yes")


# ---------------------------------------------------------------------------- latent of the wrong size
def test_frame_sequence_with_a_foreign_latent_stops_at_the_first_model_call(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, latent = FrameSequence().build(model, clip, PROMPT, "apple", 3, width=128, height=128)
    assert latent["samples"].shape[0] == 3
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    with pytest.raises(Exception, match=r"FrameSequence: the sampled latent has 5 row\(s\), but the node built 3 "
                                        r"\(one per frame\).*Connect FrameSequence's 'latent' output"):
        harness.ksample(m, pos, neg, harness.empty_latent(128, 128, 5), seed=1, steps=2)
    # nothing is left behind: the plain model samples as before, the patched one with its own latent
    plain = harness.ksample(model, pos, neg, harness.empty_latent(128, 128, 1), seed=1, steps=2)
    assert torch.equal(plain, harness.ksample(model, pos, neg, harness.empty_latent(128, 128, 1), seed=1, steps=2))
    out = harness.ksample(m, pos, neg, latent, seed=1, steps=2)
    assert out.shape[0] == 3 and float((out[0] - plain[0]).abs().max()) <= 1e-5 * float(plain.abs().max())


# ------------------------------------------------------------------------------------- resolutions
@pytest.mark.parametrize("node", ["TokenShift", "FrameSequence", "AttentionCapture"])
def test_a_level_the_model_does_not_have_names_the_input_and_the_levels_it_has(tiny_sd15, node):
    model, clip, _ = tiny_sd15  # cross-attention at 1/1 and 1/2 of the latent
    match = rf"{node}: input 'resolutions' is '1/2, 1/64', but the model has no cross-attention at 1/64 of the " \
            r"latent; it has 1/1, 1/2\. Use those or 'all'\."
    with pytest.raises(ValueError, match=match):
        if node == "TokenShift":
            TokenShift().patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "1/2, 1/64", "zero", "free")
        elif node == "FrameSequence":
            FrameSequence().build(model, clip, PROMPT, "apple", 3, width=128, height=128, resolutions="1/2, 1/64")
        else:
            AttentionCapture().capture(model, clip, PROMPT, "apple", 0.0, 1.0, "1/2, 1/64")


def test_levels_of_the_sdxl_layout(tiny_sdxl):
    from attention_motion.nodes.common import model_levels
    assert model_levels(tiny_sdxl[0]) == {1}


# -------------------------------------------------------------------------------------- long prompts
def test_a_missing_word_quotes_a_short_part_of_a_long_prompt(tiny_sd15):
    model, clip, _ = tiny_sd15
    vocabulary = ("red green blue apple table chair house tree river stone cloud horse bird fish book lamp door "
                  "window garden road car boat train city field flower grass leaf moon star sun sky snow rain wind "
                  "hill lake sea shell glass cup plate bread cheese milk cake fruit pear plum rose wall").split()
    prompt = " ".join(vocabulary[i % len(vocabulary)] for i in range(5000))  # 5000 words, 51 different
    with pytest.raises(ValueError) as e:
        TokenShift().patch(model, clip, prompt, "zebra", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free")
    msg = str(e.value)
    assert len(prompt) > 25000 and len(vocabulary) == 51
    assert msg.startswith("TokenShift: word 'zebra' (input 'words') is not in the prompt \"red green blue apple")
    assert "…\". Prompt words: red, green, blue, apple," in msg and ", … (21 more). Use words of the prompt" in msg
    assert len(msg) < 600, len(msg)


# -------------------------------------------------------------------------------------- store files
def _store_file(output_dir, name, tensors=None, meta=None, raw: bytes | None = None) -> str:
    from safetensors.torch import save_file
    folder = os.path.join(output_dir, STORE_FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if raw is not None:
        with open(path, "wb") as f:
            f.write(raw)
    else:
        save_file(tensors, path, metadata=meta)
    return name


def _good():
    tensors, meta = _store().to_tensors()
    return dict(tensors), dict(meta)


def _edited(**changes):
    tensors, meta = _good()
    for key, value in changes.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    return tensors, meta


@pytest.mark.parametrize("case,match", [
    ("truncated", r"readable safetensors file \("),
    ("garbage", r"readable safetensors file \(Error while deserializing header"),
    ("negative index", r"metadata 'token_indices' is \[\[-9223372036854775808\]\]; expected one list of token "
                       r"positions \(0 to 78847\) per word \(1\)"),
    ("huge index", r"metadata 'token_indices' is \[\[10000000000\]\]"),
    ("nan maps", r"tensor 'maps' holds values that are not attention \(NaN, infinite or negative\)"),
    ("maps of other words", r"tensor 'maps' has shape \[1, 3, 16, 16\]; expected \[rows, words\] = \[1, 1\] first"),
    ("flat maps", r"tensor 'maps' is torch.float32 \[16, 16\]; expected floating \[rows, words, h, w\]"),
    ("level of another shape", r"tensor 'level_0' has shape \[2, 1, 16, 16\]; expected \[rows, words\] = \[1, 1\]"),
    ("bad level key", r"tensor 'level_-3' does not name a level 0 to 7"),
    ("grid", r"metadata 'grid' is \[99, 16\] but the maps are \[16, 16\]"),
    ("latent", r"metadata 'latent_hw' is \[0, 16\]; expected null or \[height, width\]"),
    ("words json", r"metadata 'words' is not valid JSON \('\[apple'\)"),
    ("step range", r"metadata 'step_range' is \[0.5, 0.2\]; expected \[start, end\]"),
    ("version", r"format_version '7' is not one this pack reads \(1 to 1\)"),
    ("format", r"not an attention store file \(format 'x'"),
])
def test_damaged_store_files_are_refused_naming_the_file_and_the_fault(host, output_dir, case, match):
    name = f"damaged_{case.replace(' ', '_')}.safetensors"
    good_path = os.path.join(output_dir, STORE_FOLDER, _store_file(output_dir, "good.safetensors", *_good()))
    data = open(good_path, "rb").read()
    if case == "truncated":
        _store_file(output_dir, name, raw=data[:len(data) - 100])
    elif case == "garbage":
        _store_file(output_dir, name, raw=bytes(range(256)) * 8)
    else:
        nan = torch.rand(1, 1, 16, 16)
        nan[0, 0, 3, 3] = math.nan
        tensors, meta = {
            "negative index": lambda: _edited(token_indices=[[-2 ** 63]]),
            "huge index": lambda: _edited(token_indices=[[10 ** 10]]),
            "nan maps": lambda: _edited(maps=nan),
            "maps of other words": lambda: _edited(maps=torch.rand(1, 3, 16, 16)),
            "flat maps": lambda: _edited(maps=torch.rand(16, 16)),
            "level of another shape": lambda: _edited(level_0=torch.rand(2, 1, 16, 16)),
            "bad level key": lambda: _edited(**{"level_-3": torch.rand(1, 1, 8, 8)}),
            "grid": lambda: _edited(grid=[99, 16]),
            "latent": lambda: _edited(latent_hw=[0, 16]),
            "words json": lambda: _edited(words="[apple"),
            "step range": lambda: _edited(step_range=[0.5, 0.2]),
            "version": lambda: _edited(format_version="7"),
            "format": lambda: _edited(format="x"),
        }[case]()
        _store_file(output_dir, name, tensors, meta)
    assert LoadAttentionStore().load("good.safetensors")[0].words == ["apple"]
    with pytest.raises(ValueError, match=rf"^LoadAttentionStore: input 'file': {name} is not a .*{match}"):
        LoadAttentionStore().load(name)


def test_a_store_file_that_is_not_there(host):
    with pytest.raises(FileNotFoundError, match=r"LoadAttentionStore: input 'file' is 'nope.safetensors', which is "
                                                r"not in output/attention_stores/"):
        LoadAttentionStore().load("nope.safetensors")
