"""CrossImageAttention (Cross-Image Attention, Alaluf et al. 2024) on the tiny models and the shapes model.

Host tests: the structure and appearance rows are bit-identical to a plain batched run of the
same three rows (same conditioning, same latent); an empty step window is the plain model; the
output row changes when on; contrast is a temperature on the swapped logits; the input MODEL
is untouched; two inverted pictures come back as rows 0 and 1; bad inputs name node and input.

Semantic test (shapes model, needs models/shapes): see the figures next to the tolerances.

    python -m shapes.probes_appearance   # prints the semantic figures (from the repo root)
"""
import math
import os

import pytest
import torch

import harness
from attention_motion.controllers.appearance import CrossImageController, in_window
from attention_motion.core.controller import COND, UNCOND, AttnCall, RunInfo
from attention_motion.host.router import find_router
from attention_motion.nodes.appearance import CrossImageAttention

SIZE, STEPS = 64, 4  # 8x8 latent: cheap, and both attention levels of the tiny model
STRUCTURE, APPEARANCE = "a red cat sitting on a car", "a blue dog on a green lawn"


def build(model, clip, contrast=1.67, start=0.0, end=1.0, resolutions="1/1, 1/2", blocks="decoder",
          width=SIZE, height=SIZE, output_prompt="", latent=None, structure=STRUCTURE, appearance=APPEARANCE,
          **adain):
    with torch.inference_mode():
        return CrossImageAttention().build(model, clip, structure, appearance, contrast, start, end, resolutions,
                                           blocks, width, height, output_prompt=output_prompt, latent=latent, **adain)


def sample(model, clip, pos, lat, seed=3, steps=STEPS, cfg=5.0):
    return harness.ksample(model, pos, harness.encode(clip, ""), lat, seed=seed, steps=steps, cfg=cfg)


# -- the controller, pure tensors -------------------------------------------------------------------
def _call(key=("output", 3, 0), level=0, progress=0.5, rows=3, chunk=COND):
    return AttnCall(kind="self", key=key, chunk=chunk, chunk_index=0, rows=rows, heads=2, grid=(4, 4), level=level,
                    latent_hw=(4, 4), run=RunInfo(step=1, progress=progress, sigma=1.0))


@pytest.mark.core
def test_controller_swaps_the_output_rows_queries_keys_and_values():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 16, 8) for _ in range(3))
    ctrl = CrossImageController((0.0, 1.0), None, "decoder", contrast=2.0)
    for chunk in (COND, UNCOND):  # both conditioning chunks
        call = _call(chunk=chunk)
        assert ctrl.wants_self(call)
        q2, k2, v2 = ctrl.self_qkv(call, q, k, v)
        assert torch.equal(q2[:2], q[:2]) and torch.equal(k2[:2], k[:2]) and torch.equal(v2[:2], v[:2])
        assert torch.equal(q2[2], q[0] * 2.0)  # structure queries, times the contrast
        assert torch.equal(k2[2], k[1]) and torch.equal(v2[2], v[1])  # appearance keys and values
    assert ctrl.calls == 2
    ctrl.reset()
    assert ctrl.calls == 0


@pytest.mark.core
def test_controller_acts_only_in_its_window_levels_and_blocks():
    ctrl = CrossImageController((0.2, 0.6), frozenset({0}), "decoder")
    assert ctrl.wants_self(_call(progress=0.2)) and ctrl.wants_self(_call(progress=0.59))
    assert not ctrl.wants_self(_call(progress=0.6))  # [start, end)
    assert not ctrl.wants_self(_call(progress=0.1))
    assert not ctrl.wants_self(_call(level=1))
    assert not ctrl.wants_self(_call(key=("input", 1, 0)))
    assert not ctrl.wants_self(_call(key=("middle", 0, 0)))
    every = CrossImageController((0.0, 1.0), None, "all")
    assert every.wants_self(_call(key=("input", 1, 0), level=3, progress=1.0))  # end 1 covers the last step
    assert not in_window((0.5, 0.5), 0.5)  # start == end: an empty window
    with pytest.raises(ValueError, match="needs exactly 3"):
        every.self_qkv(_call(rows=2), *(torch.zeros(2, 16, 8) for _ in range(3)))


@pytest.mark.core
def test_contrast_is_a_temperature_that_sharpens_the_swapped_attention():
    torch.manual_seed(1)
    heads, d = 2, 4
    q, k, v = (torch.randn(3, 16, heads * d) for _ in range(3))
    entropies = []
    for beta in (1.0, 1.67, 3.0):
        q2, k2, _ = CrossImageController(contrast=beta).self_qkv(_call(), q, k, v)
        qh = q2[2].reshape(16, heads, d).transpose(0, 1)
        kh = k2[2].reshape(16, heads, d).transpose(0, 1)
        probs = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), -1)
        qs, ka = q[0].reshape(16, heads, d).transpose(0, 1), k[1].reshape(16, heads, d).transpose(0, 1)
        logits = qs @ ka.transpose(-1, -2) / math.sqrt(d)
        assert torch.allclose(probs, torch.softmax(beta * logits, -1), atol=1e-6)
        # the order of every query's weights is kept; the map gets sharper
        assert torch.equal(probs.argsort(-1), torch.softmax(logits, -1).argsort(-1))
        entropies.append(float(-(probs * probs.log()).sum(-1).mean()))
    assert entropies[0] > entropies[1] > entropies[2], entropies


# -- the node on the tiny model -----------------------------------------------------------------------


@pytest.mark.core
def test_region_adain_sets_the_region_statistics_and_leaves_the_rest():
    from attention_motion.controllers.appearance import region_adain, word_masks
    g = torch.Generator().manual_seed(2)
    x, ref = torch.randn(4, 8, 8, generator=g) * 3 + 1, torch.randn(4, 8, 8, generator=g) * 0.5 - 2
    whole = region_adain(x, ref)
    assert torch.allclose(whole.mean((1, 2)), ref.mean((1, 2)), atol=1e-5)
    assert torch.allclose(whole.std((1, 2), unbiased=False), ref.std((1, 2), unbiased=False), rtol=1e-3)
    xm, rm = torch.zeros(8, 8, dtype=torch.bool), torch.zeros(8, 8, dtype=torch.bool)
    xm[:4], rm[:, 5:] = True, True
    y = region_adain(x, ref, xm, rm)
    assert torch.equal(y[:, ~xm], x[:, ~xm])  # outside the region: untouched
    assert torch.allclose(y[:, xm].mean(1), ref[:, rm].mean(1), atol=1e-5)
    assert torch.allclose(y[:, xm].std(1, unbiased=False), ref[:, rm].std(1, unbiased=False), rtol=1e-3)
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 1], maps[1, 3, 3] = 1.0, 0.2
    m = word_masks(maps, (8, 8))
    assert m.shape == (2, 8, 8) and m[0, 2:4, 2:4].all() and not m[0, 6:, 6:].any() and m[1, 7, 7]


@pytest.mark.core
def test_adain_acts_on_the_output_rows_x0_from_its_start_only():
    from attention_motion.controllers.appearance import ADAIN_MODES
    g = torch.Generator().manual_seed(3)
    den = torch.randn(3, 4, 4, 4, generator=g)
    whole = CrossImageController(adain="whole latent", adain_start=0.5)
    assert whole.wants_denoised() and not whole.wants_cross(_call())
    assert torch.equal(whole.denoised(RunInfo(step=1, progress=0.4, sigma=1.0), den, den), den)
    out = whole.denoised(RunInfo(step=2, progress=0.5, sigma=1.0), den, den)
    assert torch.equal(out[:2], den[:2]) and not torch.equal(out[2], den[2]) and whole.adain_steps == 1
    assert torch.allclose(out[2].mean((1, 2)), den[1].mean((1, 2)), atol=1e-5)
    masked = CrossImageController(adain="object", word_tokens=([2], [3]))
    call = AttnCall(kind="cross", key=("output", 3, 0), chunk=COND, chunk_index=0, rows=3, heads=2, grid=(4, 4),
                    level=0, latent_hw=(4, 4), run=RunInfo(step=1, progress=0.5, sigma=1.0))
    assert masked.wants_cross(call)
    probs = torch.zeros(3, 2, 16, 5)
    probs[0, :, :8, 2] = 1.0  # structure: its object word on the top half
    probs[1, :, 8:, 3] = 1.0  # appearance: on the bottom half
    assert torch.equal(masked.cross(call, probs), probs)
    m = masked.masks((4, 4))
    assert m[0, :2].all() and not m[0, 2:].any() and m[1, 2:].all() and not m[1, :2].any()
    out = masked.denoised(RunInfo(step=2, progress=0.5, sigma=1.0), den, den)
    assert torch.equal(out[:2], den[:2]) and torch.equal(out[2, :, 2:], den[2, :, 2:])
    assert torch.allclose(out[2, :, :2].mean((1, 2)), den[1, :, 2:].mean((1, 2)), atol=1e-5)
    assert not CrossImageController().wants_denoised() and ADAIN_MODES[-1] == "off"
    with pytest.raises(ValueError, match="needs the object words"):
        CrossImageController(adain="object")


@pytest.mark.host
@pytest.mark.parametrize("adain", ["object", "object and background", "whole latent"])
def test_adain_keeps_the_structure_and_appearance_rows_plain_and_changes_the_output(tiny_sd15, adain):
    model, clip, _ = tiny_sd15
    m0, pos, lat = build(model, clip)
    swap = sample(m0, clip, pos, lat)
    m, pos, lat = build(model, clip, adain=adain, object_words="cat, dog", adain_start=0.2)
    out = sample(m, clip, pos, lat)
    ref = sample(model, clip, pos, lat)
    assert torch.equal(out[:2], ref[:2])
    assert float((out[2] - swap[2]).abs().mean()) > 1e-3
    ctrl = find_router(m).controllers[-1]
    assert ctrl.adain_steps > 0
    if adain != "whole latent":
        assert ctrl.final_masks is not None and ctrl.final_masks.shape == (2, SIZE // 8, SIZE // 8)
    again = sample(m, clip, pos, lat)  # nothing survives a run
    assert torch.equal(again, out)
    # adain off is today's node; an empty step window with adain off is the plain model
    m, pos, lat = build(model, clip, adain="off", object_words="")
    assert torch.equal(sample(m, clip, pos, lat), swap)


@pytest.mark.host
def test_node_outputs_rows_prompts_and_noise(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, width=128, height=96)
    assert lat["samples"].shape == (3, 4, 12, 16) and lat["batch_index"] == [0, 1, 0]
    cond = pos[0][0]
    assert cond.shape[0] == 3
    one = [harness.encode(clip, p)[0][0] for p in (STRUCTURE, APPEARANCE)]
    assert torch.equal(cond[0], one[0][0]) and torch.equal(cond[1], one[1][0])
    assert torch.equal(cond[2], cond[0])  # output prompt left empty: the structure prompt
    _, pos2, _ = build(model, clip, output_prompt="a green dog")
    assert torch.equal(pos2[0][0][2], harness.encode(clip, "a green dog")[0][0][0])
    assert find_router(model) is None and isinstance(find_router(m).controllers[-1], CrossImageController)


@pytest.mark.host
def test_structure_and_appearance_rows_are_a_plain_batch_and_the_output_changes(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip)
    out = sample(m, clip, pos, lat)
    ref = sample(model, clip, pos, lat)  # the unpatched model, same three rows
    assert torch.equal(out[:2], ref[:2])
    # sanity: same prompt, same noise (not bit-equal: another batch position rounds differently)
    assert float((ref[2] - ref[0]).abs().max()) <= 1e-5 * float(ref[0].abs().max())
    assert float((out[2] - ref[2]).abs().mean()) > 1e-3
    ctrl = find_router(m).controllers[-1]
    first = ctrl.calls
    assert first > 0
    again = sample(m, clip, pos, lat)  # nothing survives a run
    assert torch.equal(again, out) and ctrl.calls == first


@pytest.mark.host
def test_an_empty_window_is_the_plain_model_and_contrast_changes_the_output(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, lat = build(model, clip, start=0.5, end=0.5)
    ref = sample(model, clip, pos, lat)
    assert torch.equal(sample(m, clip, pos, lat), ref)
    outs = {}
    for contrast, blocks in ((1.0, "decoder"), (3.0, "all")):
        m, pos, lat = build(model, clip, contrast=contrast, blocks=blocks)
        outs[contrast] = sample(m, clip, pos, lat)
        assert torch.equal(outs[contrast][:2], ref[:2])
        assert float((outs[contrast][2] - ref[2]).abs().mean()) > 1e-3  # contrast 1: the swap alone changes it
    assert float((outs[1.0][2] - outs[3.0][2]).abs().mean()) > 1e-4
    # a window starting half way: the first half of the run is the plain one
    m, pos, lat = build(model, clip, start=0.5, end=1.0)
    assert float((sample(m, clip, pos, lat)[2] - ref[2]).abs().mean()) > 1e-4


@pytest.mark.host
def test_the_input_model_is_left_untouched(tiny_sd15):
    model, clip, _ = tiny_sd15
    pos = harness.encode(clip, STRUCTURE)
    before = sample(model, clip, pos, harness.empty_latent(SIZE, SIZE, 1))
    options = repr(model.model_options)
    m, _, _ = build(model, clip)
    assert m is not model and repr(model.model_options) == options and find_router(model) is None
    assert torch.equal(sample(model, clip, pos, harness.empty_latent(SIZE, SIZE, 1)), before)


@pytest.mark.host
def test_a_latent_of_the_wrong_row_count_is_refused_while_sampling(tiny_sd15):
    model, clip, _ = tiny_sd15
    m, pos, _ = build(model, clip)
    with pytest.raises(ValueError, match=r"CrossImageAttention: the sampler's latent has 2 rows per prompt"):
        sample(m, clip, harness.encode(clip, STRUCTURE), harness.empty_latent(SIZE, SIZE, 2))


@pytest.mark.host
def test_two_inverted_pictures_are_the_structure_and_appearance_rows(tiny_sd15):
    from attention_motion.nodes.inversion import DiffusionInversion
    model, clip, _ = tiny_sd15
    neg = harness.encode(clip, "")
    pics = torch.cat([harness.ksample(model, harness.encode(clip, p), neg, harness.empty_latent(SIZE, SIZE, 1),
                                      seed=s, steps=STEPS) for p, s in ((STRUCTURE, 41), (APPEARANCE, 42))])
    with torch.inference_mode():
        _, inv = DiffusionInversion().invert(model, harness.encode(clip, "a photo"), {"samples": pics}, "euler",
                                             "normal", STEPS, 1.0, "direct")
    m, pos, lat = build(model, clip, latent=inv)
    assert lat["samples"].shape[0] == 3 and "attention_inversion" not in lat
    out = sample(m, clip, pos, lat, seed=977)
    rel = [float((out[i] - pics[i]).pow(2).mean().sqrt() / pics[i].pow(2).mean().sqrt()) for i in (0, 1)]
    assert max(rel) <= 1e-5, rel  # direct inversion: the pictures come back to float rounding
    assert float((out[2] - pics[0]).pow(2).mean().sqrt() / pics[0].pow(2).mean().sqrt()) > 1e-3

    # one picture: the structure row; the appearance row is a new generation of its prompt (free row)
    with torch.inference_mode():
        _, one = DiffusionInversion().invert(model, harness.encode(clip, "a photo"), {"samples": pics[:1]}, "euler",
                                             "normal", STEPS, 1.0, "direct")
    m, pos, lat = build(model, clip, latent=one)
    out = sample(m, clip, pos, lat, seed=977)
    assert float((out[0] - pics[0]).pow(2).mean().sqrt() / pics[0].pow(2).mean().sqrt()) <= 1e-5
    assert float((out[1] - pics[0]).pow(2).mean().sqrt() / pics[0].pow(2).mean().sqrt()) > 0.1  # not guided
    again = sample(m, clip, pos, lat, seed=5)  # the appearance row follows the sampler's noise, row 0 does not
    assert torch.allclose(again[0], out[0], atol=1e-5) and (again[1] - out[1]).abs().max() > 1e-2


@pytest.mark.host
@pytest.mark.parametrize("kw,match", [
    ({"contrast": 0.5}, r"CrossImageAttention: input 'contrast' is 0.5, but it must lie between 1.0 and 3.0"),
    ({"contrast": float("nan")}, r"CrossImageAttention: input 'contrast' is nan; use a finite number"),
    ({"start": 0.8, "end": 0.2}, r"CrossImageAttention: input 'start' \(0.8\) is after 'end' \(0.2\)"),
    ({"end": 1.5}, r"CrossImageAttention: input 'end' is 1.5, but it must lie between 0.0 and 1.0"),
    ({"resolutions": "1/3"}, r"CrossImageAttention: input 'resolutions': resolution '1/3' must be 1/1, 1/2"),
    ({"resolutions": "1/8"}, r"CrossImageAttention: input 'resolutions' is '1/8', but the model has no cross-attention"),
    ({"blocks": "middle"}, r"CrossImageAttention: input 'blocks' is 'middle'; use one of decoder, all"),
    ({"width": 100}, r"CrossImageAttention: input 'width' is 100; use a multiple of 8"),
    ({"structure": "  "}, r"CrossImageAttention: input 'structure_prompt' is empty"),
    ({"appearance": 5}, r"CrossImageAttention: input 'appearance_prompt' is 5 \(int\); use text"),
    ({"output_prompt": "(" * 30 + "cat"}, r"CrossImageAttention: input 'output_prompt' nests brackets"),
    ({"latent": {"samples": torch.zeros(3, 4, 16, 16)}}, r"CrossImageAttention: input 'latent' holds 3 pictures; connect one"),
    ({"adain": "masked"}, r"CrossImageAttention: input 'adain' is 'masked'; use one of object"),
    ({"adain": "object", "object_words": " "}, r"CrossImageAttention: input 'object_words' is empty"),
    ({"adain": "object", "object_words": "cat, horse"}, r"CrossImageAttention: word 'horse' \(input 'object_words'\) is in neither"),
    ({"adain": "object", "object_words": "cat, car"}, r"CrossImageAttention: input 'object_words' has no word of the appearance prompt"),
    ({"adain_start": 1.5}, r"CrossImageAttention: input 'adain_start' is 1.5, but it must lie between 0.0 and 1.0"),
])
def test_bad_inputs_name_the_node_and_the_input(tiny_sd15, kw, match):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match=match):
        build(model, clip, **kw)


# -- semantic: the shapes model ------------------------------------------------------------------------
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")


@pytest.fixture(scope="module")
def shapes(host, pack):
    if not os.path.isfile(os.path.join(WEIGHTS, "unet.safetensors")):
        pytest.skip("shapes model weights are not in models/shapes")
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    model, clip, vae = getattr(node, node.FUNCTION)()
    return model, clip, vae


# Figures from `python -m shapes.probes_appearance` (structure "a red circle", appearance "a blue
# square", output prompt = the structure prompt, contrast 1.67, window [0.1, 0.9), "1/1, 1/2",
# decoder; euler / normal, 16 steps, cfg 5), seeds 0, 1, 2 (seed 3 in brackets), second shapes
# model after phase 8 (the first model's figures after the slash):
#   output object's centroid - structure object's, worst axis: 0.002, 0.001, 0.008 (0.003) / 0.016,
#     0.020, 0.018 (0.014)
#   output object's centroid - appearance object's, worst axis: 0.462, 0.553, 0.446 (0.215) / 0.223,
#     0.355, 0.377 (0.260)
#   IoU of the output and structure objects: 0.98, 0.97, 0.93 (0.97) / 0.79, 0.55, 0.78 (0.65)
#   output pixels of the appearance colour (blue): 0 every seed; object colour: red every seed
#   background colour moved from the structure's towards the appearance's: -0.10, -1.20, 0.05
#     (-0.11) / 0.002, 0.055, 0.063 (0.036) (seed 1's two backgrounds differ by 0.01: its ratio is noise)
# On this model an object's colour is bound to its colour word through cross-attention: the
# swapped self-attention does not carry the appearance object's colour (nor does it with an empty
# output prompt: the output then loses its object). What it carries is the layout: the output
# object stays where the structure's is. The first model's output also took the appearance's
# background tone, weakly (0.04 of the way on average); the second model's does not (its
# backgrounds are drawn with less help from self-attention), so that is no longer asserted.
SEMANTIC_SEEDS = (0, 1, 2)
LAYOUT_TOL = 0.04         # measured at most 0.008 (first model 0.020)
AWAY_MIN = 0.15           # measured at least 0.446 (first model 0.223)


@pytest.mark.semantic
def test_the_output_keeps_the_structure_layout(shapes):
    from attention_motion.shapes import probes_appearance as probe
    model, clip, vae = shapes
    rows = [probe.cross_image(model, clip, vae, seed=s) for s in SEMANTIC_SEEDS]
    for r in rows:
        r.pop("images")
        assert r["structure_found"] and r["appearance_found"] and r["output_found"], r
        assert r["offset"] <= LAYOUT_TOL, r
        assert r["appearance_offset"] >= AWAY_MIN, r
        assert r["output_shape"] == r["structure_shape"] and r["output_colour"] == "red", r


@pytest.mark.host
def test_sdxl_structure_and_appearance_rows_are_plain(tiny_sdxl):
    model, clip = tiny_sdxl
    m, pos, lat = build(model, clip, resolutions="all", blocks="all")
    assert pos[0][1]["pooled_output"].shape[0] == 3
    out = sample(m, clip, pos, lat, steps=3)
    ref = sample(model, clip, pos, lat, steps=3)
    assert torch.equal(out[:2], ref[:2])
    assert (out[2] - ref[2]).abs().max() > 1e-3


# Figures from `python -m shapes.probes_appearance --seeds 6 --contrast 1.67 --adain object "object and background"`
# (as above, plus the paper's AdaIN of the output's x0 prediction from 0.2 of the steps, masks from the
# cross-attention of "circle" and "square"), seeds 0-5, second shapes model after phase 8: AdaIN brings
# 201-428 pixels of the appearance's blue into the object (0 without), the rest stays red, so the
# object is read as two components. Its place is therefore measured blind to colour, on the union of
# the output objects that overlap the structure's ("placed" union): offset 0.007, 0.015, 0.010, 0.004
# with "object", 0.011, 0.024, 0.018, 0.005 with "object and background" (seeds 0-3; 0.018-0.022 on
# 4-5), IoU 0.60-0.79 (seeds 0-5). The red component alone is off by up to 0.085 (seed 2, "object and
# background", 393 px turned blue) with IoU down to 0.23, which phase 7 (196-317 blue px) kept within
# 0.042 and 0.43: the test measured that component until this model. "object and background" moves the
# background 0.69, -0.31 (seed 1, noise as above), 0.83, 0.76, 0.60, 0.59 of the way to the appearance's.
# The first model turned the object blue on every seed (offset 0.004-0.017, IoU 0.70-0.86, background
# moved 0.86-0.96 with "object and background"). On the second model, whose colour words bind the
# object's colour more strongly, the AdaIN statistics shift only part of the object: the asserted
# figures below are this model's, loosened from "the object turns blue" with that reason.
ADAIN_SEEDS = (0, 1, 2, 3)
ADAIN_APPEARANCE_PX = 150       # appearance-colour pixels in the output (measured 201-415; 0 without AdaIN)
ADAIN_LAYOUT_TOL = 0.05         # the placed union's offset from the structure's object (measured at most 0.024)
ADAIN_IOU_MIN = 0.5             # the placed union's IoU with it, measured 0.60-0.79 on seeds 0-3
ADAIN_BACKGROUND_MIN = 0.5      # "object and background", every seed but one: measured 0.69, 0.83, 0.76
#                                 (seed 1: -0.31, its backgrounds nearly equal; first model >= 0.858)


@pytest.mark.semantic
@pytest.mark.parametrize("adain", ["object", "object and background"])
def test_adain_brings_the_appearance_colours_onto_the_structure_layout(shapes, adain):
    from attention_motion.shapes import probes_appearance as probe
    model, clip, vae = shapes
    moved = []
    for s in ADAIN_SEEDS:
        r = probe.cross_image(model, clip, vae, seed=s, adain=adain)
        r.pop("images")
        placed = r["placed"]
        assert placed is not None, r
        assert placed["union_offset"] <= ADAIN_LAYOUT_TOL and placed["union_iou"] >= ADAIN_IOU_MIN, r
        assert r["appearance_colour_px"] >= ADAIN_APPEARANCE_PX, r
        moved.append(r["background_transfer"])
    if adain == "object and background":
        assert sorted(moved)[1] >= ADAIN_BACKGROUND_MIN, moved
