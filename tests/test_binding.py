"""Binding: a chosen word moves with the words that describe it ("red" with "circle").

Pure rule (core.phrase), the rule on the host's own tokenizer (host.tokens.bound_positions),
and on the tiny models: TokenShift / FrameSequence / RegionAttention with bind 'noun phrase'
move the modifiers' maps with the word's, 'typed words' moves exactly the typed tokens.
"""
import pytest

import harness
from attention_motion.core.maps import centroid
from attention_motion.core.phrase import MAX_MODIFIERS, modifiers
from attention_motion.host.router import install
from attention_motion.host.tokens import bound_positions, locate_words, tokenize_prompt
from attention_motion.nodes.capture import AttentionCapture
from attention_motion.nodes.motion import FrameSequence, TokenShift
from test_shift import BlobMaps


def _split(prompt: str) -> tuple[list[str], list[str]]:
    words = prompt.split()
    return words, [w.lower().strip(".,;:!?") for w in words]


@pytest.mark.core
@pytest.mark.parametrize("prompt,index,expected", [
    ("a red circle", 2, ["red"]),
    ("a photo of an old wooden chair, in a garden", 6, ["old", "wooden"]),
    ("a red circle and a blue square", 6, ["blue"]),
    ("circle, red square", 2, ["red"]),          # the comma closes the phrase before
    ("red circle", 1, ["red"]),                  # the prompt's start
    ("a circle", 1, []),
    ("the dog with a hat", 1, []),
    ("photo of the big old red wooden toy chair", 8, ["old", "red", "wooden", "toy"]),  # the nearest MAX_MODIFIERS
])
def test_modifiers_rule(prompt, index, expected):
    words, norm = _split(prompt)
    assert len(expected) <= MAX_MODIFIERS == 4
    assert [words[i] for i in modifiers(words, norm, index)] == expected


@pytest.mark.core
def test_a_chosen_word_stops_the_walk():
    words, norm = _split("a red circle blue square")
    assert modifiers(words, norm, 4) == [1, 2, 3]  # no function word between them
    assert modifiers(words, norm, 4, stop={2}) == [3]  # "circle" is chosen too: it is not square's


@pytest.mark.host
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_bound_positions_on_the_hosts_tokenizer(host, tiny_sd15, tiny_sdxl, arch):
    clip = tiny_sd15[1] if arch == "sd15" else tiny_sdxl[1]
    pt = tokenize_prompt(clip, "a red circle, and an old (wooden:1.2) chair near a red circle")
    words = {w: pt.word_positions[i] for i, w in enumerate(pt.words)}
    bound = bound_positions(pt, locate_words(clip, pt, ["circle", "chair"], "Test"))
    # every occurrence of "circle" binds its own "red"; "chair" binds "old wooden" (weights parsed away)
    reds = sorted(p for i, w in enumerate(pt.words) if w == "red" for p in pt.word_positions[i])
    assert bound[0] == reds and len(reds) == 2
    assert bound[1] == sorted(words["old"] + words["wooden"])
    # an entry holding its modifier binds nothing more ("near", "a" are function words), and a
    # chosen word is never bound to another: "red" chosen on its own stays its own
    assert bound_positions(pt, locate_words(clip, pt, ["red circle"], "Test")) == [[]]
    assert bound_positions(pt, locate_words(clip, pt, ["circle", "red"], "Test")) == [[], []]


@pytest.mark.host
def test_token_shift_moves_the_modifier_with_its_word(tiny_sd15):
    """Tiny SD1.5 with sharp maps for "red" and "apple": with 'noun phrase' both moved rows' maps
    are the source's shifted; with 'typed words' only "apple" moves and "red" stays."""
    model, clip = tiny_sd15[:2]
    prompt = "a red apple on a wooden table"
    pt = tokenize_prompt(clip, prompt)
    red, apple = locate_words(clip, pt, ["red", "apple"], "test")
    blob = install(model, BlobMaps(red + apple, cx=0.4, cy=0.45), "test")
    dx = 0.25
    for bind, red_moves in (("noun phrase", True), ("typed words", False)):
        m, lat = TokenShift().patch(blob, clip, prompt, "apple", dx, 0.0, 0.0, 0.4, "all", "zero", "free",
                                    "source row", 192, 128, 1, bind=bind)
        cap, store = AttentionCapture().capture(m, clip, prompt, "red, apple", 0.0, 0.4, "all")
        harness.ksample(cap, harness.encode(clip, prompt), harness.encode(clip, ""), lat, seed=2, steps=4)
        for level, maps in store.level_maps().items():
            w = maps.shape[-1]
            moved_red = float(centroid(maps[1, 0])[0] - centroid(maps[0, 0])[0])
            moved_apple = float(centroid(maps[1, 1])[0] - centroid(maps[0, 1])[0])
            assert abs(moved_apple - dx) <= 1.0 / w, (bind, level, moved_apple)
            assert abs(moved_red - (dx if red_moves else 0.0)) <= 1.0 / w, (bind, level, moved_red)


@pytest.mark.host
def test_frame_sequence_binds_by_default_and_keeps_typed_words_on_request(tiny_sd15):
    model, clip = tiny_sd15[:2]
    prompt = "a red apple on a wooden table"
    pt = tokenize_prompt(clip, prompt)
    red, apple = locate_words(clip, pt, ["red", "apple"], "test")
    for bind, expected in ((None, sorted(red + apple)), ("noun phrase", sorted(red + apple)), ("typed words", apple)):
        kw = {} if bind is None else {"bind": bind}
        m, _lat = FrameSequence().build(model, clip, prompt, "apple", 3, 128, 128, **kw)
        from attention_motion.host.router import find_router
        from attention_motion.controllers.shift import ShiftController
        shift = [c for c in find_router(m).controllers if isinstance(c, ShiftController)][0]
        assert shift.groups == [expected], bind


@pytest.mark.host
def test_bind_refuses_an_unknown_choice(tiny_sd15):
    model, clip = tiny_sd15[:2]
    with pytest.raises(ValueError, match=r"TokenShift: input 'bind' is 'object'.*noun phrase.*typed words"):
        TokenShift().patch(model, clip, "a red apple", "apple", 0.1, 0.0, 0.0, 0.4, "all", bind="object")


@pytest.mark.host
def test_region_attention_pulls_each_regions_modifiers_into_its_box(tiny_sd15):
    from attention_motion.controllers.region import RegionController
    from attention_motion.host.router import find_router
    from attention_motion.nodes.region import RegionAttention

    model, clip = tiny_sd15[:2]
    prompt = "a red apple and a yellow banana on a table"
    pt = tokenize_prompt(clip, prompt)
    red, apple, yellow, banana = locate_words(clip, pt, ["red", "apple", "yellow", "banana"], "test")
    regions = '[{"prompt": "apple", "box": [0, 0, 0.5, 1]}, {"prompt": "banana", "box": [0.5, 0, 0.5, 1]}]'
    for bind, expected in (("noun phrase", [sorted(red + apple), sorted(yellow + banana)]),
                           ("typed words", [apple, banana])):
        (m,) = RegionAttention().patch(model, clip, regions, prompt=prompt, bind=bind)
        ctrl = [c for c in find_router(m).controllers if isinstance(c, RegionController)][0]
        assert [r.prompt_tokens for r in ctrl.regions] == expected, bind
