"""LocalBlend on the tiny SD1.5 model.

What "the target latent equals the source latent outside the mask" means here:

1. the latent the UNet sees: at every model evaluation from the start step on, the input rows of
   the targets equal the source row wherever the mask in use at that evaluation is 0 (checked
   by a UNet function wrapper installed below the pack's, which receives the blended input);
2. the final latent (the sampler's output): target rows equal the source row wherever the
   final mask (the LocalBlendMask output) is 0.

Both to <= 1e-4 (in fact exactly: the blend copies the source values).
"""
import pytest
import torch

import harness
from test_p2p import SRC, build, custom, plain

pytestmark = pytest.mark.host

STEPS = 6
START = 0.3  # exact clock through SharedNoiseSampler: steps 2..5 (2/6 >= 0.3 > 1/6)


# The tiny random model's maps are flat: at the paper's 0.3 with dilation the mask covers everything.
def _blend(model, clip, words="cat, dog", subtract="", threshold=0.8, dilation=0, start=START, resolution="1/2"):
    from attention_motion.nodes.blend import LocalBlend
    with torch.inference_mode():
        return LocalBlend().build(model, clip, words, subtract, threshold, dilation, start, resolution)


class Spy:
    """UNet function wrapper that records the full-batch inputs it is given."""

    def __init__(self):
        self.calls = []
        self.blend = None

    def __call__(self, apply_model, args):
        x = args["input"]
        chunks = len(args["cond_or_uncond"])
        if x.shape[0] // chunks > 1:  # skip the source-only pass
            mask = None if self.blend is None or self.blend.input_mask is None else self.blend.input_mask.clone()
            self.calls.append((x.detach().clone(), chunks, mask))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def __deepcopy__(self, memo):
        return self


def _run(tiny, spy=None, **blend_kwargs):
    model, clip, _ = tiny
    base = model
    if spy is not None:
        base = model.clone()
        base.set_model_unet_function_wrapper(spy)
    m, pos, lat = build(base, clip, self_replace=0.2)
    m, blend = _blend(m, clip, **blend_kwargs)
    if spy is not None:
        spy.blend = blend
    out = custom(m, pos, harness.encode(clip, ""), lat, "euler", steps=STEPS)
    return out, blend, m, pos, lat


def test_background_follows_source(tiny_sd15):
    spy = Spy()
    out, blend, *_ = _run(tiny_sd15, spy)
    # 1. what the model sees: blended from step 2 on (masks of the earlier steps), never before
    blended = [c for c in spy.calls if c[2] is not None]
    assert len(spy.calls) == STEPS and len(blended) == STEPS - 2
    assert all(c[2] is None for c in spy.calls[:2])
    for x, chunks, mask in blended:
        rows = x.shape[0] // chunks
        for ch in range(chunks):
            src, tgt = x[ch * rows], x[ch * rows + 1]
            outside = (mask[1] == 0)
            assert (tgt - src)[:, outside].abs().max() <= 1e-4
    # 2. the final latent, outside the final mask
    mask = blend.final_mask
    outside, inside = mask[1] == 0, mask[1] == 1
    assert outside.any() and inside.any(), "the test needs a mask that is neither empty nor full"
    assert (out[1] - out[0])[:, outside].abs().max() <= 1e-4
    assert (out[1] - out[0])[:, inside].abs().max() > 1e-3  # the edit happens inside
    assert torch.equal(mask[0] > 0, (mask[0] > 0) & (mask[1] > 0))  # union: source region is in every row


def test_without_blend_background_differs_and_source_keeps_parity(tiny_sd15):
    model, clip, _ = tiny_sd15
    out, blend, *_ = _run(tiny_sd15)
    m, pos, lat = build(model, clip, self_replace=0.2)
    free = custom(m, pos, harness.encode(clip, ""), lat, "euler", steps=STEPS)
    outside = blend.final_mask[1] == 0
    assert (free[1] - free[0])[:, outside].abs().max() > 1e-3
    ref = plain(model, clip, SRC, steps=STEPS)
    assert (out[0] - ref[0]).abs().max() <= 1e-5


def test_mask_node_and_subtract(tiny_sd15):
    from attention_motion.nodes.blend import LocalBlendMask
    out, blend, *_ = _run(tiny_sd15)
    (mask,) = LocalBlendMask().get(blend, {"samples": out})
    assert mask.shape == (2, out.shape[-2] * 8, out.shape[-1] * 8)
    assert torch.equal(mask[:, ::8, ::8], blend.final_mask.float())
    _out2, sub, *_ = _run(tiny_sd15, subtract="car")
    assert sub.final_mask.sum() < blend.final_mask.sum()
    assert not (sub.final_mask > blend.final_mask).any()


def test_mask_math():
    from attention_motion.controllers.blend import blend_masks, blend_rows
    maps = torch.zeros(2, 8, 8)
    maps[0, 2, 2] = 1.0  # source word at (2, 2)
    maps[1, 5, 5] = 1.0  # target word at (5, 5)
    plain_mask = blend_masks(maps, (8, 8), 0.5, 0)
    assert plain_mask[0].sum() == 1 and plain_mask[1].sum() == 2  # union with the source
    dilated = blend_masks(maps, (8, 8), 0.5, 1)
    assert dilated[0].sum() == 9 and dilated[1].sum() == 18
    sub = torch.zeros(2, 8, 8)
    sub[1, 5, 5] = 1.0
    assert blend_masks(maps, (8, 8), 0.5, 0, sub)[1].sum() == 1
    assert blend_masks(maps, (16, 16), 0.5, 0).shape == (2, 16, 16)
    x = torch.randn(3, 4, 8, 8)
    m = torch.zeros(3, 8, 8)
    m[1:, :4] = 1
    y = blend_rows(x, m)
    assert torch.equal(y[0], x[0]) and torch.equal(y[1:, :, 4:], x[:1, :, 4:].expand(2, -1, -1, -1))
    assert torch.equal(y[1:, :, :4], x[1:, :, :4])


def test_errors(tiny_sd15):
    model, clip, _ = tiny_sd15
    with pytest.raises(ValueError, match="LocalBlend: input 'model' has no Prompt-to-Prompt"):
        _blend(model, clip)
    m, pos, lat = build(model, clip)
    with pytest.raises(ValueError, match="word 'horse'.*none of the P2P prompts"):
        _blend(m, clip, words="horse")
    with pytest.raises(ValueError, match="'words' is empty"):
        _blend(m, clip, words=" ")
    with pytest.raises(ValueError, match="'resolution'"):
        _blend(m, clip, resolution="1/3")
    # the tiny model has no attention at 1/4 of a 16x16 latent: refused with the levels it has
    m2, _ = _blend(m, clip, resolution="1/4", start=0.0)
    with pytest.raises(ValueError, match="no cross-attention at 1/4.*1/1, 1/2"):
        custom(m2, pos, harness.encode(clip, ""), lat, "euler", steps=2)
