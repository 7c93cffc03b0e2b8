"""Style Aligned: shared self-attention across a batch (tiny models on the real host, and pure math).

The reference for every comparison is the same batch (same prompts, same seed) sampled with the
unpatched model: the reference row must be bit-identical to it, strength 0 must be the plain
model, and the other rows must change.
"""
from __future__ import annotations

import pytest
import torch

import harness

pytestmark = pytest.mark.host

SIZE, STEPS = 128, 5
LINES = "a red cat sitting on a car\na blue dog on a green lawn\na yellow bird in a tree"


def _build(model, clip, prompts=LINES, strength=1.0, start=0.0, end=1.0, resolutions="all", blocks="all",
           adain="queries and keys", latent=None, **more):
    from attention_motion.nodes.style import StyleAligned
    return StyleAligned().build(model, clip, prompts, strength, start, end, resolutions, blocks, adain, SIZE, SIZE,
                                latent=latent, **more)


def _sample(model, clip, positive, latent, seed=7, steps=STEPS, **kw):
    return harness.ksample(model, positive, harness.encode(clip, ""), latent, seed=seed, steps=steps, **kw)


@pytest.fixture(scope="module")
def plain_batch(tiny_sd15):
    model, clip, _ = tiny_sd15
    _, positive, latent = _build(model, clip)
    return _sample(model, clip, positive, latent)


# -- pure math -----------------------------------------------------------------------------------
@pytest.mark.core
def test_adain_gives_the_reference_statistics_per_channel():
    from attention_motion.controllers.style import adain
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 50, 8, generator=g) * 4 + 2
    ref = torch.randn(1, 70, 8, generator=g) * torch.linspace(0.5, 3, 8) - 1
    y = adain(x, ref)
    assert torch.allclose(y.mean(1), ref.mean(1).expand(3, -1), atol=1e-5)
    assert torch.allclose(y.std(1, unbiased=False), ref.std(1, unbiased=False).expand(3, -1), rtol=1e-3)
    assert torch.allclose(adain(ref, ref), ref, atol=1e-5)  # the reference normalised to itself


@pytest.mark.core
def test_shared_attention_of_a_row_identical_to_the_reference_is_its_own():
    """Keys and values doubled by the reference's copy leave attention unchanged: a row equal to the
    reference gets exactly the reference's output, with or without AdaIN."""
    from attention_motion.controllers.style import SharedStyle
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 16, 8, generator=g) for _ in range(3))
    attend = lambda q_, k_, v_: torch.softmax(q_ @ k_.transpose(1, 2) / 8 ** 0.5, -1) @ v_  # noqa: E731 one head
    ctrl = SharedStyle()
    qs, ks, vs = ctrl.shared_inputs(q.repeat(2, 1, 1), k.repeat(2, 1, 1), v.repeat(2, 1, 1))
    assert ks.shape == (1, 32, 8) and vs.shape == (1, 32, 8)
    assert torch.allclose(attend(qs, ks, vs), attend(q, k, v), atol=1e-5)


# -- tiny SD1.5 on the host ----------------------------------------------------------------------
def test_reference_row_is_the_plain_row_and_the_others_change(tiny_sd15, plain_batch):
    model, clip, _ = tiny_sd15
    m, positive, latent = _build(model, clip)
    assert latent["samples"].shape == (3, 4, SIZE // 8, SIZE // 8) and positive[0][0].shape[0] == 3
    out = _sample(m, clip, positive, latent)
    assert torch.equal(out[0], plain_batch[0])
    for r in (1, 2):
        assert (out[r] - plain_batch[r]).abs().max() > 1e-2
    # the input MODEL is not patched: sampling it again gives the plain batch
    assert torch.equal(_sample(model, clip, positive, latent), plain_batch)


def test_strength_zero_is_the_plain_model_and_a_late_window_changes_less(tiny_sd15, plain_batch):
    model, clip, _ = tiny_sd15
    m, positive, latent = _build(model, clip, strength=0.0)
    assert torch.equal(_sample(m, clip, positive, latent), plain_batch)
    full = _sample(*_build(model, clip)[:1], clip, positive, latent)
    m, positive, latent = _build(model, clip, start=0.5, end=1.0)
    late = _sample(m, clip, positive, latent)
    assert torch.equal(late[0], plain_batch[0])
    # sharing from half-way on leaves the layout of the first steps: closer to the plain rows
    assert 0 < (late[1:] - plain_batch[1:]).norm() < (full[1:] - plain_batch[1:]).norm()


def test_strength_blends_between_the_plain_and_the_shared_rows(tiny_sd15, plain_batch):
    model, clip, _ = tiny_sd15
    rows = {}
    for s in (0.5, 1.0):
        m, positive, latent = _build(model, clip, strength=s)
        rows[s] = _sample(m, clip, positive, latent)
    half, full = rows[0.5][1:], rows[1.0][1:]
    d_half, d_full = (half - plain_batch[1:]).norm(), (full - plain_batch[1:]).norm()
    assert 0.1 * d_full < d_half < d_full  # part of the way from the plain rows to the shared ones
    assert torch.equal(rows[0.5][0], plain_batch[0])


def test_layers_and_adain_choices_change_what_is_shared(tiny_sd15):
    model, clip, _ = tiny_sd15
    outs = {}
    for key, kw in {"all": {}, "decoder": {"blocks": "decoder"}, "keys": {"adain": "keys"},
                    "off": {"adain": "off"}}.items():
        m, positive, latent = _build(model, clip, **kw)
        outs[key] = _sample(m, clip, positive, latent, steps=3)
    for a in outs:
        for b in outs:
            if a < b:
                assert (outs[a][1:] - outs[b][1:]).abs().max() > 1e-4, (a, b)
            assert torch.equal(outs[a][0], outs[b][0])


@pytest.mark.core
def test_joint_group_norm_takes_the_statistics_of_the_row_and_the_reference():
    from attention_motion.host.groupnorm import NormShare, joint_group_norm
    g = torch.Generator().manual_seed(4)
    x, ref = torch.randn(2, 4, 3, 5, generator=g) * 2 + 1, torch.randn(2, 4, 3, 5, generator=g) - 3
    norm = torch.nn.GroupNorm(2, 4, affine=False)
    y = joint_group_norm(norm, x, ref)
    both = torch.cat([x, ref], -1).reshape(2, 2, -1)
    expect = (x.reshape(2, 2, -1) - both.mean(-1, keepdim=True)) / (both.var(-1, unbiased=False, keepdim=True)
                                                                      + norm.eps).sqrt()
    assert torch.allclose(y, expect.reshape(x.shape), atol=1e-5)
    assert torch.allclose(joint_group_norm(norm, ref, ref), norm(ref), atol=1e-5)  # the reference with itself
    share = NormShare(1.0, None, lambda site: True)
    assert share.plan("output", torch.zeros(6, 4, 2, 2)) is None  # not armed: outside a model call
    share.arm(True)
    share.begin(3, (2, 2))
    assert share.plan("output", torch.zeros(6, 4, 2, 2)) == ([1, 2, 4, 5], [0, 0, 3, 3])
    share.end()
    assert share.plan("output", torch.zeros(6, 4, 2, 2)) is None


def test_shared_group_norm_keeps_the_reference_row_and_strength_zero_plain(tiny_sd15, plain_batch):
    from attention_motion.host.groupnorm import NORM_LINK
    from attention_motion.host.unet_chain import has_link
    model, clip, _ = tiny_sd15
    m, positive, latent = _build(model, clip, share_group_norm=True)
    assert has_link(m, NORM_LINK) and not has_link(model, NORM_LINK)
    assert m.object_patches and not model.object_patches  # patched on the clone only
    out = _sample(m, clip, positive, latent)
    assert torch.equal(out[0], plain_batch[0])
    attention_only = _sample(_build(model, clip)[0], clip, positive, latent)
    for r in (1, 2):
        assert (out[r] - attention_only[r]).abs().max() > 1e-3  # the shared statistics change the others
    assert torch.equal(_sample(m, clip, positive, latent), out)  # nothing survives a run
    m0, positive, latent = _build(model, clip, strength=0.0, share_group_norm=True)
    assert torch.equal(_sample(m0, clip, positive, latent), plain_batch)
    # the input MODEL is not patched: sampling it again gives the plain batch
    assert torch.equal(_sample(model, clip, positive, latent), plain_batch)


@pytest.mark.core
def test_background_adain_gives_the_rows_the_references_background_colour_and_gradient():
    from attention_motion.controllers.style import background_adain, background_planes
    g = torch.Generator().manual_seed(3)
    h = w = 20
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ref_plane = torch.stack([0.2 + 0.5 * xs, -0.3 * ys, 0.1 + 0.2 * xs - 0.2 * ys, torch.full_like(xs, 0.4)])
    ref = (ref_plane + 0.05 * torch.randn(4, h, w, generator=g))[None]
    ref[..., 2:6, 2:6] = 3.0  # the reference's object
    x = (-1.0 - 0.6 * ys + 0.3 * xs + 0.3 * torch.randn(2, 4, h, w, generator=g))
    x[..., 12:16, 12:16] = -6.0  # each row's own object, of another colour
    out = background_adain(x, ref)
    bg = torch.ones(h, w, dtype=torch.bool)
    bg[10:18, 10:18] = False  # positions away from the rows' object
    fitted = background_planes(out)
    assert (fitted - ref_plane).abs()[..., bg].max() < 0.1  # the reference's colour and gradient
    # the rows' objects stay theirs: far from the background, of their own sign
    assert (out[..., 12:16, 12:16] < ref_plane[..., 12:16, 12:16] - 1.0).all()
    planes_x = background_planes(x)
    rest_out, rest_ref = out - background_planes(out), ref - background_planes(ref)
    assert torch.allclose(rest_out.flatten(2).std(-1), rest_ref.flatten(2).std(-1).expand(2, 4), rtol=0.05)
    assert (planes_x - ref_plane).abs().max() > 0.5  # the rows started elsewhere


def test_latent_adain_keeps_the_reference_row_and_strength_zero_plain(tiny_sd15, plain_batch):
    model, clip, _ = tiny_sd15
    m, positive, latent = _build(model, clip, latent_adain=True)
    out = _sample(m, clip, positive, latent)
    assert torch.equal(out[0], plain_batch[0])
    attention_only = _sample(_build(model, clip)[0], clip, positive, latent)
    for r in (1, 2):
        assert (out[r] - attention_only[r]).abs().max() > 1e-3
    assert torch.equal(_sample(m, clip, positive, latent), out)  # nothing survives a run
    m0, positive, latent = _build(model, clip, strength=0.0, latent_adain=True)
    assert torch.equal(_sample(m0, clip, positive, latent), plain_batch)
    late, positive, latent = _build(model, clip, start=1.0, end=1.0, strength=1.0, latent_adain=True)
    assert torch.isfinite(_sample(late, clip, positive, latent)).all()


def test_sdxl_shared_group_norm_reference_row_is_plain(tiny_sdxl):
    model, clip = tiny_sdxl
    prompts = "a red cat\na blue dog"
    m, positive, latent = _build(model, clip, prompts=prompts, share_group_norm=True)
    out = _sample(m, clip, positive, latent, steps=3)
    _, pos0, lat0 = _build(model, clip, prompts=prompts, strength=0.0)
    ref = _sample(model, clip, pos0, lat0, steps=3)
    attention_only = _sample(_build(model, clip, prompts=prompts)[0], clip, positive, latent, steps=3)
    assert torch.equal(out[0], ref[0]) and (out[1] - attention_only[1]).abs().max() > 1e-4


@pytest.mark.parametrize("more", [{}, {"latent_adain": True}], ids=["attention", "latent_adain"])
def test_sdxl_reference_row_is_plain(tiny_sdxl, more):
    model, clip = tiny_sdxl
    m, positive, latent = _build(model, clip, prompts="a red cat\na blue dog", **more)
    assert positive[0][1]["pooled_output"].shape[0] == 2
    out = _sample(m, clip, positive, latent, steps=3)
    _, pos0, lat0 = _build(model, clip, prompts="a red cat\na blue dog", strength=0.0)
    ref = _sample(model, clip, pos0, lat0, steps=3)
    assert torch.equal(out[0], ref[0]) and (out[1] - ref[1]).abs().max() > 1e-3


def test_a_loaded_picture_is_the_reference_row(tiny_sd15):
    """Through Diffusion Inversion the reference row is the picture (to float rounding); the other
    rows are new pictures, neither the picture nor a plain generation."""
    from attention_motion.nodes.inversion import DiffusionInversion
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, "a blue dog on a green lawn"), harness.encode(clip, "")
    picture = harness.ksample(model, pos, neg, harness.empty_latent(SIZE, SIZE, 1), seed=41, steps=8)
    with torch.inference_mode():
        guided, inv = DiffusionInversion().invert(model, pos, {"samples": picture}, "euler", "normal", STEPS, 1.0,
                                                  "direct")
    m, positive, latent = _build(guided, clip, prompts="a blue dog on a green lawn\na red cat sitting on a car",
                                 latent=inv)
    assert latent["samples"].shape[0] == 2
    out = _sample(m, clip, positive, latent)
    rel = lambda a, b: float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())  # noqa: E731
    assert rel(out[:1], picture) <= 1e-5
    assert rel(out[1:], picture) > 0.1
    _, pos0, lat0 = _build(model, clip, prompts="a blue dog on a green lawn\na red cat sitting on a car", strength=0.0)
    assert (out[1] - _sample(model, clip, pos0, lat0)[1]).abs().max() > 1e-2


@pytest.mark.parametrize("kw, message", [
    ({"prompts": "only one line"}, "at least one more prompt"),
    ({"prompts": "   \n  "}, "input 'prompts' is empty"),
    ({"prompts": "\n".join(["a cat"] * 65)}, "use at most 64"),
    ({"start": 0.8, "end": 0.2}, "input 'start' (0.8) is after 'end'"),
    ({"resolutions": "1/8"}, "no cross-attention at 1/8"),
    ({"strength": float("nan")}, "input 'strength' is nan"),
    ({"blocks": "middle"}, "input 'blocks'"),
    ({"latent": {"samples": torch.zeros(1, 4, 16, 16)}}, "not an inverted picture"),
])
def test_bad_input_names_the_node_and_input(tiny_sd15, kw, message):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError) as e:
        _build(model, clip, **kw)
    assert "StyleAligned" in str(e.value) and message in str(e.value)
