"""TokenShift: shifted maps land where asked, zero shift is the identity, errors are clear.

Two references: 'none' (each row shifts its own maps; tested against a separate plain run) and
'source row' (the node's LATENT holds source rows then moved rows; tested within one run).
"""
import pytest
import torch

import harness
from attention_motion.controllers.shift import ShiftController
from attention_motion.core.controller import AttnCall, Controller, RunInfo
from attention_motion.core.maps import centroid
from attention_motion.core.shift import shift_tokens
from attention_motion.host.router import install
from attention_motion.nodes.capture import AttentionCapture
from attention_motion.nodes.motion import TokenShift

pytestmark = pytest.mark.host

PROMPT = "a red apple on a wooden table"


class BlobMaps(Controller):
    """Test-only: makes a word's cross-attention a sharp blob at a fixed place on every grid.

    The tiny models have random weights, so their own maps are diffuse; a strongly localised map
    lets the test read the shift off the centroid while everything runs through the real router
    and sampler.
    """

    def __init__(self, tokens, cx=0.3, cy=0.4, sigma=0.07):
        self.tokens, self.cx, self.cy, self.sigma = tokens, cx, cy, sigma

    def wants_cross(self, call):
        return call.is_cond

    def cross(self, call, probs):
        h, w = call.grid
        ys = (torch.arange(h) + 0.5) / h
        xs = (torch.arange(w) + 0.5) / w
        blob = torch.exp(-((xs[None] - self.cx) ** 2 + (ys[:, None] - self.cy) ** 2) / (2 * self.sigma ** 2))
        blob = (0.5 * blob / blob.max()).reshape(-1).to(probs)
        probs = probs.clone()
        for t in self.tokens:
            probs[..., t] = blob
        call.edited.update(range(call.rows))
        return probs


def _tokens(clip, word):
    from attention_motion.host.tokens import locate_words, tokenize_prompt
    return locate_words(clip, tokenize_prompt(clip, PROMPT), [word], "test")[0]


def _capture_levels(model, clip, neg_clip_text=""):
    m, store = AttentionCapture().capture(model, clip, PROMPT, "apple", 0.0, 0.4, "all")
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, neg_clip_text)
    harness.ksample(m, pos, neg, harness.empty_latent(192, 128, 1), seed=2, steps=4)
    return store.level_maps()


@pytest.mark.parametrize("arch,dx,dy", [("sd15", 0.25, 0.0), ("sd15", -0.15, -0.2), ("sdxl", 0.2, 0.3)])
def test_centroid_moves_by_the_requested_shift_at_every_level(arch, dx, dy, tiny_sd15, tiny_sdxl):
    model, clip = (tiny_sd15[:2] if arch == "sd15" else tiny_sdxl)
    blob = install(model, BlobMaps(_tokens(clip, "apple"), cx=0.45, cy=0.45), "test")
    before = _capture_levels(blob, clip)
    shifted = TokenShift().patch(blob, clip, PROMPT, "apple", dx, dy, 0.0, 0.4, "all", "zero", "free", "none")[0]
    after = _capture_levels(shifted, clip)
    assert before.keys() == after.keys() and len(before) >= (2 if arch == "sd15" else 1)
    for level, maps in before.items():
        h, w = maps.shape[-2:]
        moved = centroid(after[level][0, 0]) - centroid(maps[0, 0])
        assert abs(float(moved[0]) - dx) <= 1.0 / w, (level, moved, dx)
        assert abs(float(moved[1]) - dy) <= 1.0 / h, (level, moved, dy)


def test_shift_applies_only_inside_the_window_and_levels(tiny_sd15):
    model, clip, _ = tiny_sd15
    blob = install(model, BlobMaps(_tokens(clip, "apple")), "test")
    shifted = TokenShift().patch(blob, clip, PROMPT, "apple", 0.3, 0.0, 0.0, 0.4, "1/2", "zero", "free", "none")[0]
    before, after = _capture_levels(blob, clip), _capture_levels(shifted, clip)
    assert torch.allclose(before[0], after[0])  # level 0 (full latent grid) is not in "1/2"
    assert not torch.allclose(before[1], after[1])


@pytest.mark.parametrize("self_attention", ["free", "shift"])
def test_zero_shift_is_the_identity(tiny_sd15, self_attention):
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    lat = harness.empty_latent(128, 128, 1)
    plain = harness.ksample(model, pos, neg, lat, seed=4, steps=4)
    m = TokenShift().patch(model, clip, PROMPT, "apple", 0.0, 0.0, 0.0, 1.0, "all", "zero", self_attention, "none")[0]
    assert torch.equal(harness.ksample(m, pos, neg, lat, seed=4, steps=4), plain)
    moved = TokenShift().patch(model, clip, PROMPT, "apple", 0.3, 0.0, 0.0, 1.0, "all", "zero", self_attention,
                               "none")[0]
    assert not torch.equal(harness.ksample(moved, pos, neg, lat, seed=4, steps=4), plain)


def test_self_attention_modes_differ(tiny_sd15):
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    lat = harness.empty_latent(128, 128, 1)
    outs = [harness.ksample(TokenShift().patch(model, clip, PROMPT, "apple", 0.3, 0.1, 0.0, 0.6, "all", "edge", s,
                                               "none")[0],
                            pos, neg, lat, seed=4, steps=4) for s in ("free", "shift")]
    assert (outs[0] - outs[1]).abs().max() > 1e-4


def _call(rows=2, grid=(4, 6)):
    return AttnCall(kind="cross", key=("input", 1, 0), chunk=0, chunk_index=0, rows=rows, heads=2, grid=grid,
                    level=0, latent_hw=grid, run=RunInfo(step=0, progress=0.1, sigma=10.0))


@pytest.mark.core
def test_controller_moves_only_the_word_columns_of_the_right_rows():
    probs = torch.softmax(torch.randn(3, 2, 24, 10), dim=-1)
    shifts = torch.tensor([[[0.0, 0.0]], [[0.5, 0.0]], [[0.0, -0.25]]])
    # random maps sit near the middle: a 0.5 move would be clamped by the edge rule (tested below)
    ctrl = ShiftController([[3, 4]], shifts, (0.0, 0.5), None, "zero", reference="own", edge_margin=None)
    call = _call(rows=3)
    out = ctrl.cross(call, probs)
    assert call.edited == {1, 2}
    assert torch.equal(out[0], probs[0])
    others = [j for j in range(10) if j not in (3, 4)]
    assert torch.equal(out[..., others], probs[..., others])
    assert torch.allclose(out[1][..., [3, 4]], shift_tokens(probs[1][..., [3, 4]], (4, 6), 0.5, 0.0))
    assert torch.allclose(out[2][..., [3, 4]], shift_tokens(probs[2][..., [3, 4]], (4, 6), 0.0, -0.25))
    # outside the window nothing is asked for
    late = _call()
    late.run = RunInfo(step=5, progress=0.8, sigma=1.0)
    assert not ctrl.wants_cross(late)


def _peak_probs(col: int, grid=(4, 6), tokens=6, word=2):
    """Probabilities whose word column peaks on one grid column (a sharp, known map)."""
    h, w = grid
    probs = torch.full((1, 1, h * w, tokens), 0.1)
    cells = torch.arange(h * w)
    probs[0, 0, cells % w == col, word] = 5.0
    return probs / probs.sum(-1, keepdim=True)


@pytest.mark.core
def test_own_reference_holds_the_target_instead_of_compounding():
    """A row's own map is recomputed each step from features that already moved: the shift is
    taken from the map's first-step (home) centroid, so once the map sits at home + dx nothing
    more is shifted, and a map that went halfway is shifted the other half."""
    ctrl = ShiftController([[2]], torch.tensor([[[1 / 3, 0.0]]]), reference="own", edge_margin=None)
    first = _peak_probs(1)
    out = ctrl.cross(_call(1), first)
    assert torch.allclose(out[..., [2]], shift_tokens(first[..., [2]], (4, 6), 1 / 3, 0.0))
    arrived = _peak_probs(3)  # next step: the object (and so its map) is already 2 columns right
    out = ctrl.cross(_call(1), arrived)
    assert torch.allclose(out, arrived, atol=1e-6)
    halfway = _peak_probs(2)
    out = ctrl.cross(_call(1), halfway)
    assert torch.allclose(out[..., [2]], shift_tokens(halfway[..., [2]], (4, 6), 1 / 6, 0.0), atol=1e-6)
    ctrl.reset()  # a new run forgets the home
    out = ctrl.cross(_call(1), arrived)
    assert torch.allclose(out[..., [2]], shift_tokens(arrived[..., [2]], (4, 6), 1 / 3, 0.0))


@pytest.mark.core
def test_map_centroids():
    from attention_motion.core.maps import map_centroids
    maps = torch.zeros(2, 4, 8)
    maps[0, 1, 6] = 1.0
    c = map_centroids(maps)
    assert torch.allclose(c[0], torch.tensor([6.5 / 8, 1.5 / 4]))
    assert torch.allclose(c[1], torch.tensor([0.5, 0.5]))  # flat map: the centre


@pytest.mark.core
def test_anchor_and_previous_references():
    probs = torch.softmax(torch.randn(3, 1, 24, 6), dim=-1)
    shifts = torch.tensor([[[0.0, 0.0]], [[1 / 6, 0.0]], [[1 / 6, 0.0]]])
    anchor = ShiftController([[2]], shifts, reference="anchor", edge_margin=None).cross(_call(3), probs)
    prev = ShiftController([[2]], shifts, reference="previous", edge_margin=None).cross(_call(3), probs)
    assert torch.allclose(anchor[2][..., [2]], shift_tokens(probs[0][..., [2]], (4, 6), 1 / 6, 0.0))
    assert torch.allclose(prev[2][..., [2]], shift_tokens(probs[1][..., [2]], (4, 6), 1 / 6, 0.0))


def test_bad_inputs_give_clear_errors(tiny_sd15):
    model, clip, _ = tiny_sd15
    node = TokenShift()
    with pytest.raises(ValueError, match=r"TokenShift: word 'zebra' \(input 'words'\) is not in the prompt"):
        node.patch(model, clip, PROMPT, "zebra", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free")
    with pytest.raises(ValueError, match=r"TokenShift: input 'dx' is 1.5, but it must lie between -1.0 and 1.0"):
        node.patch(model, clip, PROMPT, "apple", 1.5, 0.0, 0.0, 0.4, "all", "zero", "free")
    with pytest.raises(ValueError, match=r"TokenShift: input 'start'"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.6, 0.4, "all", "zero", "free")
    with pytest.raises(ValueError, match=r"TokenShift: input 'resolutions'"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "1/3", "zero", "free")
    with pytest.raises(ValueError, match=r"TokenShift: input 'fill' is 'wrap'"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "wrap", "free")
    with pytest.raises(ValueError, match=r"TokenShift: input 'reference' is 'previous'; use one of source row, none"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free", "previous")
    with pytest.raises(ValueError, match=r"TokenShift: input 'width' is 100; use a multiple of 8"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free", "source row", 100)
    with pytest.raises(ValueError, match=r"TokenShift: input 'batch_size' is 0; use 1 to 64"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free", "source row", 64, 64, 0)
    with pytest.raises(ValueError, match=r"TokenShift: input 'latent' is not a LATENT"):
        node.patch(model, clip, PROMPT, "apple", 0.1, 0.0, 0.0, 0.4, "all", "zero", "free", latent={"x": 1})


# --------------------------------------------------------------------------- reference 'source row'
def _source_row(model, clip, dx, dy, batch_size=1, latent=None, **kw):
    args = dict(prompt=PROMPT, words="apple", dx=dx, dy=dy, start=0.0, end=kw.pop("end", 0.4), resolutions="all",
                fill="zero", self_attention=kw.pop("self_attention", "free"), reference="source row",
                width=192, height=128, batch_size=batch_size, latent=latent)
    return TokenShift().patch(model, clip, **args)


@pytest.mark.parametrize("arch,dx,dy", [("sd15", 0.25, 0.0), ("sd15", -0.15, -0.2), ("sdxl", 0.2, 0.3)])
def test_source_row_moved_rows_take_the_source_maps_shifted(arch, dx, dy, tiny_sd15, tiny_sdxl):
    """One run: the LATENT holds source rows then moved rows; each moved row's word map is its
    source row's map shifted by (dx, dy) at every level (batch of 2 images: rows s0 s1 m0 m1)."""
    model, clip = (tiny_sd15[:2] if arch == "sd15" else tiny_sdxl)
    blob = install(model, BlobMaps(_tokens(clip, "apple"), cx=0.45, cy=0.45), "test")
    m, lat = _source_row(blob, clip, dx, dy, batch_size=2)
    assert lat["samples"].shape == (4, 4, 16, 24) and lat["batch_index"] == [0, 1, 0, 1]
    cap, store = AttentionCapture().capture(m, clip, PROMPT, "apple", 0.0, 0.4, "all")
    harness.ksample(cap, harness.encode(clip, PROMPT), harness.encode(clip, ""), lat, seed=2, steps=4)
    levels = store.level_maps()
    assert len(levels) >= (2 if arch == "sd15" else 1)
    for level, maps in levels.items():
        h, w = maps.shape[-2:]
        assert maps.shape[0] == 4
        for src, moved in ((0, 2), (1, 3)):
            d = centroid(maps[moved, 0]) - centroid(maps[src, 0])
            assert abs(float(d[0]) - dx) <= 1.0 / w, (level, src, d, dx)
            assert abs(float(d[1]) - dy) <= 1.0 / h, (level, src, d, dy)
        assert torch.allclose(maps[0], maps[1])  # source rows are left alone


def test_source_row_zero_shift_and_the_source_row_is_the_plain_generation(tiny_sd15):
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    plain = harness.ksample(model, pos, neg, harness.empty_latent(192, 128, 1), seed=4, steps=4)
    m, lat = _source_row(model, clip, 0.0, 0.0, end=1.0)
    out = harness.ksample(m, pos, neg, lat, seed=4, steps=4)
    scale = float(plain.abs().max())
    assert float((out[0] - plain[0]).abs().max()) <= 1e-5 * scale
    assert float((out[1] - plain[0]).abs().max()) <= 1e-5 * scale
    m, lat = _source_row(model, clip, 0.3, 0.0, end=1.0)
    out = harness.ksample(m, pos, neg, lat, seed=4, steps=4)
    assert float((out[0] - plain[0]).abs().max()) <= 1e-5 * scale  # the move never reaches the source
    assert float((out[1] - plain[0]).abs().max()) > 1e-3 * scale


def test_source_row_pairs_an_img2img_latent(tiny_sd15):
    """A connected LATENT (batch_index, noise mask) is doubled; each copy shares its source's noise."""
    model, clip, _ = tiny_sd15
    samples = torch.randn(2, 4, 16, 24)
    mask = torch.rand(2, 1, 128, 192)
    m, lat = _source_row(model, clip, 0.2, 0.0, latent={"samples": samples, "batch_index": [5, 7], "noise_mask": mask},
                         end=1.0)  # progress counts the model's timesteps: denoise 0.6 starts at about 0.4
    assert torch.equal(lat["samples"], torch.cat([samples, samples]))
    assert lat["batch_index"] == [5, 7, 5, 7] and torch.equal(lat["noise_mask"], torch.cat([mask, mask]))
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    out = harness.ksample(m, pos, neg, lat, seed=3, steps=4, denoise=0.6)
    assert out.shape == (4, 4, 16, 24)
    assert not torch.allclose(out[2], out[0])


def test_source_row_with_a_foreign_latent_is_a_clear_error_and_leaves_nothing_behind(tiny_sd15):
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    m, lat = _source_row(model, clip, 0.25, 0.0)
    with pytest.raises(Exception, match=r"TokenShift: the sampled latent has 1 row\(s\), but 'reference' is "
                                        r"'source row'.*Connect TokenShift's 'latent' output"):
        harness.ksample(m, pos, neg, harness.empty_latent(192, 128, 1), seed=4, steps=2)
    plain = harness.ksample(model, pos, neg, harness.empty_latent(192, 128, 1), seed=4, steps=2)
    again = harness.ksample(model, pos, neg, harness.empty_latent(192, 128, 1), seed=4, steps=2)
    assert torch.equal(plain, again)
    with pytest.raises(Exception, match=r"TokenShift: rows 1-1 of the sampled latent are not copies of rows 0-0 "
                                        r"\(their word maps differ by .* before any shift\)"):
        harness.ksample(m, pos, neg, harness.empty_latent(192, 128, 2), seed=4, steps=2)  # two different noises
    out = harness.ksample(m, pos, neg, lat, seed=4, steps=2)  # the same patch still works with its LATENT
    assert float((out[0] - plain[0]).abs().max()) <= 1e-5 * float(plain.abs().max())


def test_chained_token_shifts_move_two_words_differently(tiny_sd15):
    """Two Token Shift nodes in a row (one word each) act on the last one's pairs; one
    cross-frame controller serves both."""
    from attention_motion.controllers.frames import CrossFrameController
    from attention_motion.host.router import find_router
    model, clip, _ = tiny_sd15
    blobs = install(install(model, BlobMaps(_tokens(clip, "apple"), cx=0.3, cy=0.5), "test"),
                    BlobMaps(_tokens(clip, "table"), cx=0.7, cy=0.5), "test")
    a, _ = TokenShift().patch(blobs, clip, PROMPT, "apple", 0.25, 0.0, 0.0, 0.4, "all", "zero", "free",
                              width=192, height=128)
    b, lat = TokenShift().patch(a, clip, PROMPT, "table", 0.0, 0.25, 0.0, 0.4, "all", "zero", "free",
                                width=192, height=128)
    assert sum(isinstance(c, CrossFrameController) for c in find_router(b).controllers) == 1
    cap, store = AttentionCapture().capture(b, clip, PROMPT, "apple, table", 0.0, 0.4, "all")
    harness.ksample(cap, harness.encode(clip, PROMPT), harness.encode(clip, ""), lat, seed=2, steps=4)
    for level, maps in store.level_maps().items():
        h, w = maps.shape[-2:]
        for word, want in ((0, (0.25, 0.0)), (1, (0.0, 0.25))):
            d = centroid(maps[1, word]) - centroid(maps[0, word])
            assert abs(float(d[0]) - want[0]) <= 1.0 / w and abs(float(d[1]) - want[1]) <= 1.0 / h, (level, word, d)


@pytest.mark.core
def test_pairs_reference_and_cross_frame_pairs():
    from attention_motion.controllers.frames import CrossFrameController
    probs = torch.softmax(torch.randn(4, 1, 24, 6), dim=-1)
    # random maps may peak at an edge: the edge rule (tests/test_edge_rule.py) is off here
    ctrl = ShiftController([[2]], torch.tensor([[[0.0, 0.0]], [[1 / 6, 0.0]]]), reference="pairs", node="TokenShift",
                           edge_margin=None)
    with pytest.raises(ValueError, match=r"TokenShift: rows 2-3 of the sampled latent are not copies of rows 0-1"):
        ctrl.cross(_call(4), probs)  # the first call of a run: rows 2, 3 must be copies of rows 0, 1
    ctrl.reset()
    probs[2:, ..., 2] = probs[:2, ..., 2]  # only the word's column is compared
    call = _call(4)
    out = ctrl.cross(call, probs)
    assert call.edited == {2, 3}
    assert torch.equal(out[:2], probs[:2])
    for src, moved in ((0, 2), (1, 3)):
        assert torch.allclose(out[moved][..., [2]], shift_tokens(probs[src][..., [2]], (4, 6), 1 / 6, 0.0))
        assert torch.equal(out[moved][..., [0, 1, 3, 4, 5]], probs[moved][..., [0, 1, 3, 4, 5]])
    with pytest.raises(ValueError, match=r"TokenShift: the sampled latent has 3 row\(s\)"):
        ctrl.cross(_call(3), probs[:3])
    cf = CrossFrameController("anchor", own_window=(0.0, 0.5), layout="pairs")
    assert cf.sources(_call(4)) == [[0, 0], [1, 1], [2, 0], [3, 1]]  # call progress 0.1: inside the window
    late = _call(4)
    late.run = RunInfo(step=5, progress=0.8, sigma=1.0)
    assert cf.sources(late) == [[0], [1], [0], [1]]
    with pytest.raises(ValueError, match="pairs layout has no previous frame"):
        CrossFrameController("anchor+previous", layout="pairs")


@pytest.mark.core
def test_kept_tokens_take_the_reference_rows_maps_unshifted():
    probs = torch.softmax(torch.randn(4, 1, 24, 6), dim=-1)
    probs[2:, ..., 2] = probs[:2, ..., 2]
    shifts = torch.tensor([[[0.0, 0.0]], [[1 / 6, 0.0]]])
    out = ShiftController([[2]], shifts, reference="pairs", edge_margin=None, kept_tokens=[2, 3, 4]).cross(_call(4), probs)
    assert torch.equal(out[:2], probs[:2])  # source rows untouched
    for src, moved in ((0, 2), (1, 3)):
        assert torch.allclose(out[moved][..., [2]], shift_tokens(probs[src][..., [2]], (4, 6), 1 / 6, 0.0))
        assert torch.equal(out[moved][..., [3, 4]], probs[src][..., [3, 4]])  # held on the source's maps
        assert torch.equal(out[moved][..., [0, 1, 5]], probs[moved][..., [0, 1, 5]])
    frames = torch.tensor([[[0.0, 0.0]], [[1 / 6, 0.0]], [[1 / 6, 0.0]]])
    anchor = ShiftController([[2]], frames, reference="anchor", edge_margin=None, kept_tokens=[4]).cross(_call(3), probs[:3])
    prev = ShiftController([[2]], frames, reference="previous", edge_margin=None, kept_tokens=[4]).cross(_call(3), probs[:3])
    assert torch.equal(anchor[0], probs[0])  # frame 0 is its own reference
    assert torch.equal(anchor[2][..., 4], probs[0][..., 4]) and torch.equal(prev[2][..., 4], probs[1][..., 4])
    with pytest.raises(ValueError, match="kept_tokens need a reference row"):
        ShiftController([[2]], shifts[:1], reference="own", kept_tokens=[3])
    later = ShiftController([[3]], shifts, reference="pairs", kept_tokens=[2, 4])
    assert later.kept == [2, 4]
    later.release((ShiftController([[2]], shifts, reference="pairs"),))
    assert later.kept == [4]  # an earlier controller moves token 2: holding it would undo that move


def test_source_row_holds_the_other_words_on_the_source_maps(tiny_sd15):
    """TokenShift 'source row': inside the window the moved row's other words ('wooden table')
    have the source row's maps; the moved word's maps differ."""
    from attention_motion.host.router import find_router
    model, clip, _ = tiny_sd15
    m, lat = _source_row(model, clip, 0.25, 0.0)
    shift = find_router(m).controllers[0]
    held = sorted(j for w in ("a", "on", "wooden", "table") for g in [_tokens(clip, w)] for j in g)
    assert shift.kept == held  # every prompt word but 'red apple' ('a' twice)
    cap, store = AttentionCapture().capture(m, clip, PROMPT, "apple, table", 0.0, 0.4, "all")
    harness.ksample(cap, harness.encode(clip, PROMPT), harness.encode(clip, ""), lat, seed=2, steps=4)
    for level, maps in store.level_maps().items():
        assert torch.allclose(maps[1, 1], maps[0, 1], atol=1e-6), level  # table: held
        assert not torch.allclose(maps[1, 0], maps[0, 0], atol=1e-3), level  # apple: moved


def test_source_row_self_attention_shift_moves_from_the_source_row(tiny_sd15):
    """self_attention 'shift' with pairs: the moved row changes, the source row does not."""
    model, clip, _ = tiny_sd15
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")
    outs = {}
    for mode in ("free", "shift"):
        m, lat = _source_row(model, clip, 0.3, 0.1, end=0.6, self_attention=mode)
        outs[mode] = harness.ksample(m, pos, neg, lat, seed=4, steps=4)
    scale = float(outs["free"].abs().max())
    assert float((outs["free"][0] - outs["shift"][0]).abs().max()) <= 1e-5 * scale
    assert float((outs["free"][1] - outs["shift"][1]).abs().max()) > 1e-4 * scale
