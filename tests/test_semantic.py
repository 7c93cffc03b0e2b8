"""Semantic tier: the pack's nodes on the trained shapes model, judged from pixels.

The model is the bundled one (ShapesModelLoader); objects are read back from the decoded
pixels with the known palette (attention_motion.shapes.quality.read_objects).  Every tolerance
below was measured with ``python -m shapes.probes`` (same seeds, steps and cfg) and is written
next to the value it came from; none is loosened to pass.

    python tests/test_semantic.py   # prints every figure these tests check (needs the weights)
"""
import json
import statistics
import os
import sys

if __name__ == "__main__":  # standalone measurement: configure the host and the pack first
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    harness.setup_host()
    harness.install_pack_package()

import pytest  # noqa: E402

from attention_motion.shapes import probes  # noqa: E402

pytestmark = pytest.mark.semantic

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")


@pytest.fixture(scope="module")
def shapes(host, pack):
    if not os.path.isfile(os.path.join(WEIGHTS, "unet.safetensors")):
        pytest.skip("shapes model weights are not in models/shapes")
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    model, clip, vae = getattr(node, node.FUNCTION)()
    return pack, model, clip, vae


def _needs(pack, name):
    if name not in pack.NODE_CLASS_MAPPINGS:
        pytest.skip("node {} is not in the pack yet".format(name))


# Figures from `python tests/test_semantic.py [names]` (the measure_* functions below) on the
# committed weights, the second shapes model after its phase 8 (euler/normal, 16 steps, cfg 5);
# the first model's figures, where a tolerance moved, in brackets. The model's word maps are
# localised (shape word's attention centroid 0.30 cells of 16 from the object on average) and it
# draws objects where their words' maps are, so attention edits move, recolour and confine objects.

# --------------------------------------------------------------------------- TokenShift
# reference 'source row' (the default): the node's LATENT holds the source row, then the moved
# row; the moved object is measured against the plain KSampler run of the same prompt and seed.
SHIFT_SEEDS = range(6)
SHIFT_MOVES = ((0.25, 0.0), (0.2, 0.2))   # |dx|, |dy| toward the image centre, fractions of the size
SHIFT_TOL = 0.06    # per axis, about one latent cell of 16 (0.0625), every seed
# measured |moved - requested|, worst axis, seeds 0..5:
#   (0.25, 0): 0.007, 0.010, 0.008, 0.002, 0.003, 0.002 (0.052, 0.017, 0.007, 0.025, 0.011, 0.023)
#   (0.2, 0.2): 0.003, 0.016, 0.010, 0.006, 0.006, 0.008 (0.013, 0.012, 0.007, 0.017, 0.007, 0.017)
# Before phase 8 seed 4 redrew its circle smaller and missed by 0.109 and 0.075, so one seed of six
# was let past SHIFT_TOL (to 0.12); phase 8 moves it right, and every seed is held to SHIFT_TOL.
# (reference 'none', each row shifting its own map, for comparison, first model: dx moved for
#  0.25: object lost, 0.490, 0.409, 0.045, -0.144, -0.013)
SHIFT_BG_MIN = 22.0      # dB, background of the moved image vs the plain one, every seed whose plain
#                          image holds one object (seed 4 draws a second red circle for "a red circle";
#                          the shift moves both, the words' object twice, so its "background",
#                          measured around one of them, is 15.7 / 15.7 dB); measured min 35.7 / 36.5
SHIFT_BG_MEDIAN = 36.0   # dB; measured (0.25, 0): 44.1, 46.7, 35.7, 44.2, (15.7), 38.5, median 41.3;
#                          (0.2, 0.2): 39.5, 49.5, 36.5, 44.2, (15.7), 41.3, median 40.4 (first
#                          model: medians 35.9, 36.3)
SOURCE_DIFF_MAX = 1e-3   # the source row vs the plain run, max abs pixel in [0, 1]; measured 4.4e-6 to 4.0e-5
#                          (batch-of-2 rounding)


def _plain(r: dict) -> dict:
    """A probe's figures without its images."""
    return {k: v for k, v in r.items() if not k.endswith("images")}


def measure_shifts(pack, model, clip, vae) -> dict:
    return {(dx, dy): [_plain(probes.token_shift(pack, model, clip, vae, seed=seed, dx=dx, dy=dy))
                       for seed in SHIFT_SEEDS] for dx, dy in SHIFT_MOVES}


@pytest.fixture(scope="module")
def shifts(shapes):
    _needs(shapes[0], "TokenShift")
    return measure_shifts(*shapes)


def test_token_shift_moves_object_by_requested_fraction(shifts):
    for move, rows in shifts.items():
        assert all(r["ok"] for r in rows), (move, rows)
        errors = sorted(r["error"] for r in rows)
        assert errors[-1] <= SHIFT_TOL, (move, errors)


def test_token_shift_keeps_object_and_background(shifts):
    """The moved image still draws the prompt's object (same shape class), keeps the background
    and its source row is the plain generation."""
    for move, rows in shifts.items():
        assert all(r["ok"] and r["shape_kept"] for r in rows), (move, rows)  # measured: all 12
        assert all(r["source_diff"] <= SOURCE_DIFF_MAX for r in rows), (move, rows)
        single = [r["bg_psnr"] for r in rows if r["plain_objects"] == 1]
        assert len(single) >= len(rows) - 1 and min(single) >= SHIFT_BG_MIN, (move, rows)
        bg = sorted(r["bg_psnr"] for r in rows)
        assert (bg[2] + bg[3]) / 2 >= SHIFT_BG_MEDIAN, (move, bg)


# --------------------------------------------------------------------------- P2P colour swap
P2P_SEEDS = (0, 1, 2, 3)
P2P_IOU_MIN = 0.85    # measured IoU of source and target masks, seeds 0..3: 0.953, 0.948, 0.968, 0.972
#                       (first model 0.866, 0.837, 0.907, 0.885)


def measure_p2p_colour(pack, model, clip, vae) -> list:
    return [_plain(probes.p2p_colour(pack, model, clip, vae, seed=seed)) for seed in P2P_SEEDS]  # red -> blue square


def test_p2p_colour_swap_changes_colour_keeps_mask(shapes):
    _needs(shapes[0], "P2PReplace")
    for r in measure_p2p_colour(*shapes):
        assert r["source_found"] and r["target_found"], r
        assert not r["target_has_source_colour"], r
        assert r["iou"] >= P2P_IOU_MIN, r


# --------------------------------------------------------------------------- LocalBlend
LB_SEEDS = (0, 1, 2)
LB_PSNR_MIN = 43.0    # dB, background source vs blended target; measured seeds 0, 1, 2: 52.46, 45.91, 45.95
#                       (first model 45.18, 45.09, 44.33)
LB_GAIN_MIN = 1.5     # dB over the same P2P run without the blend; measured 19.57, 6.22, 13.25
#                       (without LocalBlend: 32.89, 39.69, 32.70; first model gains 1.52, 7.46, 7.89)


def measure_local_blend(pack, model, clip, vae) -> list:
    return [_plain(probes.local_blend(pack, model, clip, vae, seed=seed)) for seed in LB_SEEDS]


def test_local_blend_keeps_background(shapes):
    _needs(shapes[0], "LocalBlend")
    _needs(shapes[0], "P2PReplace")
    for r in measure_local_blend(*shapes):
        assert r["ok"], r
        assert r["source_same"] >= 99.0, r      # the source row is untouched (measured: identical)
        assert r["target_colour_blend"], r      # the edit happened (measured: all seeds)
        assert r["psnr_blend"] >= LB_PSNR_MIN, r
        assert r["psnr_blend"] - r["psnr_plain"] >= LB_GAIN_MIN, r


# --------------------------------------------------------------------------- FrameSequence
FRAME_SEEDS = (2, 3)       # objects starting at x 0.39 and 0.31; seeds 0 and 1 start at 0.64 and 0.77,
#                            where a move of 0.3 passes the edge rule's 0.85
FRAMES = 4
FRAME_DX = 0.3
FRAME_STEP_TOL = 0.04      # per-frame advance within 0.04 of dx / (frames - 1) = 0.1
# measured per-frame advance: seed 2: 0.109, 0.102, 0.097; seed 3: 0.099, 0.111, 0.097
# (first model, seeds 1, 2: 0.105, 0.079, 0.092; 0.085, 0.099, 0.108)
FRAME_BG_PSNR_MIN = 30.0   # dB vs frame 0; measured minimum over frames, seeds 2, 3: 36.90, 43.21
#                            (first model, seeds 1, 2: 34.18, 33.34)


def measure_clips(pack, model, clip, vae) -> dict:
    return {seed: _plain(probes.frame_sequence(pack, model, clip, vae, frames=FRAMES, dx=FRAME_DX, seed=seed))
            for seed in FRAME_SEEDS}


@pytest.fixture(scope="module")
def clips(shapes):
    _needs(shapes[0], "FrameSequence")
    return measure_clips(*shapes)


def test_frame_sequence_advances_object(clips):
    for seed, r in clips.items():
        assert all(r["found"]), r["found"]
        want = FRAME_DX / (FRAMES - 1)
        for a, b in zip(r["cx"], r["cx"][1:]):
            assert abs((b - a) - want) <= FRAME_STEP_TOL, (seed, r["cx"])


def test_frame_sequence_background_steady(clips):
    for seed, r in clips.items():
        assert all(r["found"]), r["found"]
        assert min(r["bg_psnr"]) >= FRAME_BG_PSNR_MIN, (seed, r["bg_psnr"])


# --------------------------------------------------------------------------- binding and the edge rule
# The nodes' defaults: the noun alone ("circle" in "a red circle"), bind 'noun phrase'. Prompts and
# seeds no other test uses; moves of 0.22 / 0.3 on one axis or (0.18, 0.18), toward the image centre
# and away from it (toward the nearest edges), cycling over the cases.
NOUN_CASES = (("a red circle", 30), ("a green triangle", 31), ("a blue square", 32), ("a yellow circle", 33),
              ("a red square", 34), ("a green circle", 35), ("a blue triangle", 36), ("a yellow square", 37))
NOUN_MOVES = ((0.22, 0.0), (0.0, 0.22), (0.18, 0.18), (0.3, 0.0))
NOUN_MEDIAN_TOL = 0.03   # worst-axis error, median of 8; measured toward the centre: 0.001, 0.006, 0.009,
#                          0.003, 0.012, 0.009, 0.012, 0.010 (median 0.009; first model 0.024). With
#                          'typed words' (the old behaviour, first model, seeds 10-17) the median was
#                          0.217: the colour's map held the object.
NOUN_MAX_TOL = 0.06      # every move toward the centre (measured max 0.012; first model 0.057)
EDGE_MEDIAN_TOL = 0.03   # away from the centre: |moved - where the edge rule stops it|, worst axis, taking
EDGE_MAX_TOL = 0.08      # the object's pixel centroid for its map's centre; measured 0.025, 0.004, 0.010,
#                          0.020, 0.001, 0.007, 0.023, 0.010 (median 0.010; first model 0.029); before
#                          the rule one of them lost its object (moved -0.435 for +0.18 asked)


def measure_noun_moves(pack, model, clip, vae) -> dict:
    out = {}
    for away in (False, True):
        rows = []
        for i, (prompt, seed) in enumerate(NOUN_CASES):
            dx, dy = NOUN_MOVES[i % len(NOUN_MOVES)]
            rows.append(_plain(probes.token_shift(pack, model, clip, vae, prompt=prompt, word=prompt.split()[2],
                                                  seed=seed, dx=dx, dy=dy, away=away)))
        out["away" if away else "toward"] = rows
    return out


@pytest.fixture(scope="module")
def noun_moves(shapes):
    _needs(shapes[0], "TokenShift")
    return measure_noun_moves(*shapes)


def test_the_noun_alone_moves_its_object(noun_moves):
    rows = noun_moves["toward"]
    assert all(r["ok"] for r in rows), rows
    errors = sorted(r["error"] for r in rows)
    assert (errors[3] + errors[4]) / 2 <= NOUN_MEDIAN_TOL, errors
    assert errors[-1] <= NOUN_MAX_TOL, errors


def test_a_move_past_the_edge_stops_at_the_edge(noun_moves):
    rows = noun_moves["away"]
    assert all(r["ok"] for r in rows), rows  # the object is still drawn, in the frame
    assert any(abs(r["expected"]) < abs(r["requested"]) - 0.05 for r in rows)  # the cases do reach the edge
    errors = sorted(r["edge_error"] for r in rows)
    assert (errors[3] + errors[4]) / 2 <= EDGE_MEDIAN_TOL, errors
    assert errors[-1] <= EDGE_MAX_TOL, errors


NOUN_CLIP_FRAMES = 6
NOUN_CLIP_DX = 0.3       # 0.06 a frame
NOUN_CLIP_STEP = (0.03, 0.09)  # every frame's advance; measured (red circle, seed 20): 0.061, 0.060, 0.062,
#                                0.063, 0.057 (first model 0.076, 0.055, 0.079, 0.051, 0.057; with 'typed
#                                words': -0.02, 0.02, 0.008, 0.0, -0.005)
EDGE_CLIP_SEED = 25            # green triangle from x 0.746 (seed 21 of the first model started at 0.761;
#                                on this model it starts at 0.833, at the edge rule already)
EDGE_CLIP_MAX_X = 0.85 + 0.06  # stops at the edge rule's 0.85 (one cell of slack); measured 0.746,
#                                0.814, 0.841, 0.841, 0.841, 0.841


def measure_noun_clips(pack, model, clip, vae) -> tuple:
    run = probes.frame_sequence(pack, model, clip, vae, prompt="a red circle", word="circle", frames=NOUN_CLIP_FRAMES,
                                dx=NOUN_CLIP_DX, seed=20)
    edge = probes.frame_sequence(pack, model, clip, vae, prompt="a green triangle", word="triangle",
                                 frames=NOUN_CLIP_FRAMES, dx=NOUN_CLIP_DX, seed=EDGE_CLIP_SEED)
    return _plain(run), _plain(edge)


def test_a_clip_of_the_noun_alone_advances_and_stops_at_the_edge(shapes):
    _needs(shapes[0], "FrameSequence")
    run, edge = measure_noun_clips(*shapes)
    assert all(run["found"]), run["found"]
    steps = [b - a for a, b in zip(run["cx"], run["cx"][1:])]
    assert all(NOUN_CLIP_STEP[0] <= s <= NOUN_CLIP_STEP[1] for s in steps), steps
    assert all(edge["found"]), edge["found"]
    steps = [b - a for a, b in zip(edge["cx"], edge["cx"][1:])]
    assert max(edge["cx"]) <= EDGE_CLIP_MAX_X and min(steps) >= -0.02 and steps[0] > 0.02, edge["cx"]


# --------------------------------------------------------------------------- a shape, and one of two objects
# Edits the first shapes model could not carry: it drew the asked shape about half the time and
# both objects of a two-object caption almost never (README, quality). They need the second model
# (UNet width 64); on a model of another width they are skipped. Figures: `python -m shapes.probes
# --edits --seeds 8` (euler, 16 steps, cfg 5).
EDIT_SEEDS = range(8)
SWAPS = (("a red circle", "a red square"), ("a red square", "a red circle"))
SWAP_MOVE_PX = 8.0         # one latent cell of the 128 px image: the object stays in place
SWAP_NEW_SHAPE_MIN = 0.85  # share of the 16 swaps whose target row the reader sees as the new shape;
#                            measured 16 of 16, each object moved 0.19-0.77 px (phase 7: 16 of 16,
#                            0.04-0.86 px)
TWO = "a red circle and a blue square"
TWO_MIN_VALID = 5          # seeds whose plain image holds both objects (the others measure nothing)
# The red circle's pixels (PSNR inside its mask), blue -> yellow square vs the source row, seeds 0-7:
#   LocalBlend: 34.6, 77.0, 48.5, 43.0, 50.2, 99.0, 57.9, 52.2 (median 51.2; phase 7: 49.3)
#   P2P alone:  28.9, 34.2, 35.3, 34.9, 35.1, 33.3, 33.0, 33.7 (median 34.0; phase 7: 34.0)
# Seed 0's square sits near the circle: the blend region (the square's map, dilated) reaches the
# circle's rim, whose outline moves a fraction of a pixel (in place, same shape; phase 7 drew the two
# touching, 22.3 dB, and the bound was 20).
TWO_BLEND_OTHER_DB = 45.0  # median
TWO_P2P_OTHER_DB = 30.0    # median
TWO_OTHER_MIN_DB = 25.0    # every seed, either way (measured 28.9)
TWO_BLEND_GAIN_DB = 8.0    # the blend's median over P2P's (measured +17.3; phase 7 +15.3)
# TokenShift moving the red circle 0.2 away from the blue square, seeds 0-7: the square moved 0.23,
# 0.40, 0.23, 0.63, 0.81, 0.13, 0.32, 0.09 px; PSNR inside it 25.5, 34.2, 32.6, 26.0, 25.6, 34.1, 35.5,
# 36.4 (median 33.3; phase 7: at most 1.13 px, median 31.3). The moved circle's error (worst axis):
# 0.011, 0.005, 0.006, 0.005, 0.010, (0.076), 0.001, 0.007. Seed 5's plain image draws the red circle
# twice (with a blue circle), the words' object is two objects, and the measure, which follows the
# largest red one, reads 0.076; so the moved one's error is held where the plain image holds exactly
# the caption's two objects (6 of 8 seeds; seed 1 draws the blue square twice).
TWO_SHIFT_OTHER_PX = 2.0   # every seed (a latent cell is 8 px)
TWO_SHIFT_OTHER_DB = 28.0  # median
TWO_EXACT_MIN = 4          # seeds whose plain image holds exactly two objects (measured 6)


def _second_model() -> bool:
    with open(os.path.join(WEIGHTS, "training.json"), encoding="utf-8") as f:
        return json.load(f)["unet_phases"][-1]["args"].get("channels", 32) >= 64


@pytest.fixture(scope="module")
def edits(shapes):
    if not _second_model():
        pytest.skip("needs the second shapes model (UNet width 64)")
    return measure_edits(*shapes)


def measure_edits(pack, model, clip, vae) -> dict:
    out = {"swap": [], "blend": [], "shift": []}
    for seed in EDIT_SEEDS:
        for src, tgt in SWAPS:
            out["swap"].append(_plain(probes.p2p_shape(pack, model, clip, vae, source=src, target=tgt, seed=seed)))
        out["blend"].append(_plain(probes.local_blend(pack, model, clip, vae, source=TWO,
                                                      target="a red circle and a yellow square", seed=seed,
                                                      other="red")))
        out["shift"].append(_plain(probes.token_shift(pack, model, clip, vae, prompt=TWO, word="red circle",
                                                      seed=seed, dx=0.2, other="blue")))
    return out


def test_p2p_shape_swap_keeps_place_and_colour_and_draws_the_new_shape(edits):
    rows = edits["swap"]
    assert all(r["source_found"] and r["target_found"] for r in rows), rows  # colour kept: read by colour
    assert max(r["shift_px"] for r in rows) <= SWAP_MOVE_PX, [r["shift_px"] for r in rows]
    right = sum(r["target_right"] for r in rows) / len(rows)
    assert right >= SWAP_NEW_SHAPE_MIN, rows


def test_editing_one_of_two_objects_leaves_the_other_s_pixels(edits):
    valid = [r for r in edits["blend"] if r["ok"] and r["p2p"]["other_found"] and r["blend"]["other_found"]]
    assert len(valid) >= TWO_MIN_VALID, edits["blend"]
    blend = [r["blend"]["other_psnr"] for r in valid]
    p2p = [r["p2p"]["other_psnr"] for r in valid]
    assert min(blend + p2p) >= TWO_OTHER_MIN_DB, (blend, p2p)
    assert statistics.median(blend) >= TWO_BLEND_OTHER_DB, blend
    assert statistics.median(p2p) >= TWO_P2P_OTHER_DB, p2p
    assert statistics.median(blend) - statistics.median(p2p) >= TWO_BLEND_GAIN_DB, (blend, p2p)


def test_token_shift_moving_one_of_two_objects_leaves_the_other_in_place(edits):
    valid = [r for r in edits["shift"] if r["ok"] and r.get("other_found")]
    assert len(valid) >= TWO_MIN_VALID, edits["shift"]
    assert max(r["other_shift_px"] for r in valid) <= TWO_SHIFT_OTHER_PX, valid
    assert statistics.median(r["other_psnr"] for r in valid) >= TWO_SHIFT_OTHER_DB, valid
    exact = [r for r in valid if r["plain_objects"] == 2]
    assert len(exact) >= TWO_EXACT_MIN, valid
    assert all(r["error"] <= SHIFT_TOL for r in exact), exact  # and the moved one moved


# --------------------------------------------------------------------------- a loaded picture
# Diffusion Inversion of the bundled picture (workflows/inputs/shapes_photo.png, a red circle),
# then P2P red -> blue circle with Local Blend and a 4-frame clip; `python -m shapes.probes
# --photo` (euler, 16 steps, seed 0). PSNR against the picture's VAE round trip.
PHOTO_EXACT_DB = 60.0      # direct: measured 99 (identical pixels) at cfg 5 (first model: cfg 1, 5, 7.5)
PHOTO_PLAIN_MAX_DB = 30.0  # plain inversion, cfg 5: measured 24.6, the model's own inversion error (first
#                            model 18.5; the bound was 25, raised as this model inverts better: the
#                            test's point is that plain inversion is far from direct's 99)
PHOTO_EDIT_BG_DB = 40.0    # the edit's background: measured 45.7 (first model 46.0 at cfg 5, 47.1 at cfg 1)
PHOTO_EDIT_MOVED = 0.03    # the recoloured circle stays in place: measured 0.014 (first model 0.004)
PHOTO_CLIP_MOVE = (0.2, 0.1)  # asked 0.2 by frame 3, within one and a half latent cells: measured 0.199
#                               (first model 0.265)


def measure_photo(pack, model, clip, vae) -> tuple:
    return (_plain(probes.photo(pack, model, clip, vae, method="direct")),
            _plain(probes.photo(pack, model, clip, vae, method="plain")))


def test_a_loaded_picture_is_kept_exactly_and_edited_in_place(shapes):
    direct, plain = measure_photo(*shapes)
    assert direct["psnr_back"] >= PHOTO_EXACT_DB
    assert direct["psnr_source_row"] >= PHOTO_EXACT_DB and direct["psnr_frame0"] >= PHOTO_EXACT_DB
    assert direct["edit_colour_found"], "the circle did not turn blue"
    assert direct["edit_bg_psnr"] >= PHOTO_EDIT_BG_DB
    assert direct["edit_moved"] <= PHOTO_EDIT_MOVED
    asked, tol = PHOTO_CLIP_MOVE
    assert abs(direct["clip_moved"] - asked) <= tol
    assert plain["psnr_back"] <= PHOTO_PLAIN_MAX_DB  # what direct inversion corrects


# --------------------------------------------------------------------------- StyleAligned
# First model, `python -m shapes.probes --style` (prompts red circle / blue square / yellow triangle, seeds 0-7):
# every row keeps its own object (24 of 24 rows), the reference row is the plain batch's
# (max pixel difference 0), the other rows change (mean |pixel| 0.02 on seed 0). The background
# (mean colour and gradient) of the other rows moves toward the reference's only 2% (distance
# 0.108 -> 0.106): this model's backgrounds are not carried by its self-attention (with every
# row attending to the reference's keys and values alone the distance is the same).
STYLE_SEEDS = (0,)
STYLE_ROWS_CHANGE = 0.005  # mean |pixel| of the other rows vs the plain batch; measured 0.025, 0.025 (seed 0;
#                            first model 0.022, 0.026)


def measure_style(pack, model, clip, vae, latent_adain: bool = False) -> list:
    seeds = LATENT_ADAIN_SEEDS if latent_adain else STYLE_SEEDS
    return [_plain(probes.style_aligned(pack, model, clip, vae, seed=seed, latent_adain=latent_adain)) for seed in seeds]


def test_style_aligned_keeps_the_reference_and_every_row_s_object(shapes):
    _needs(shapes[0], "StyleAligned")
    for seed, r in zip(STYLE_SEEDS, measure_style(*shapes)):
        assert r["reference_diff"] == 0.0, seed
        assert all(r["aligned"]["own_object"]), (seed, r["aligned"])
        assert min(r["rows_diff"]) > STYLE_ROWS_CHANGE, (seed, r["rows_diff"])


# With `latent_adain` every row's background takes the reference's colour and gradient (seeds 0-7,
# `python -m shapes.probes --style --latent-adain`): distance 0.108 -> 0.014, every row closer than
# in the plain batch (16 of 16), every object kept (24 of 24), reference unchanged. Seeds 0-3,
# plain / latent_adain: (0.074, 0.151) / (0.006, 0.001), (0.108, 0.123) / (0.006, 0.010),
# (0.121, 0.024) / (0.008, 0.005), (0.070, 0.064) / (0.022, 0.020).
LATENT_ADAIN_SEEDS = (0, 1, 2, 3)
# Second model, seeds 0-3: plain 0.041, 0.065, 0.035, 0.042, 0.036, 0.063, 0.043, 0.051; latent_adain
# 0.002, 0.003, 0.006, 0.007, 0.004, 0.014, 0.005, 0.006.
LATENT_ADAIN_MEAN_SHARE = 0.25  # mean distance at most this share of the plain batch's (measured 0.130;
#                                 phase 7 0.088, first model 0.106)
LATENT_ADAIN_ROW_SHARE = 0.5    # every row at most this share of its plain distance (measured 0.23 at most;
#                                 phase 7 0.14, first model 0.32)
LATENT_ADAIN_ROW_MAX = 0.04     # and at most this distance (measured 0.014 at most; first model 0.022)


def test_style_aligned_latent_adain_matches_the_backgrounds(shapes):
    _needs(shapes[0], "StyleAligned")
    plain, aligned = [], []
    for seed, r in zip(LATENT_ADAIN_SEEDS, measure_style(*shapes, latent_adain=True)):
        assert r["reference_diff"] == 0.0, seed
        assert all(r["aligned"]["own_object"]), (seed, r["aligned"])
        plain += r["plain"]["bg_distance"]
        aligned += r["aligned"]["bg_distance"]
    assert sum(aligned) <= LATENT_ADAIN_MEAN_SHARE * sum(plain), (plain, aligned)
    assert all(a <= LATENT_ADAIN_ROW_SHARE * p for p, a in zip(plain, aligned)), (plain, aligned)
    assert max(aligned) <= LATENT_ADAIN_ROW_MAX, aligned


if __name__ == "__main__":
    pack = harness.import_pack()
    harness.init_host()
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    shapes = (pack, *getattr(node, node.FUNCTION)())
    only = sys.argv[1:]  # measure names, e.g. "shifts shape_swaps" (default: all)
    for name, fn in [(k[len("measure_"):], v) for k, v in list(globals().items()) if k.startswith("measure_")]:
        if not only or name in only:
            out = fn(*shapes)
            out = {str(k): v for k, v in out.items()} if isinstance(out, dict) else out
            print(name, json.dumps(out, default=str), flush=True)
    if not only or "style_latent_adain" in only:
        print("style_latent_adain", json.dumps(measure_style(*shapes, latent_adain=True)), flush=True)
