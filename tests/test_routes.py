"""The tokenize route behind the frontend's token view (host/routes.py), in-process and over HTTP.

Its limits against hostile input over HTTP are in tests/test_route_limits.py.
"""
import json
import random
import re
import time
import urllib.error
import urllib.request

import pytest

from attention_motion.host import routes
from attention_motion.host.tokens import find_sequences, locate_words, parse_word_list, tokenize_prompt


@pytest.mark.host
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_tokenizer_without_clip_matches_the_loaded_clip(host, tiny_sd15, tiny_sdxl, arch):
    clip = tiny_sd15[1] if arch == "sd15" else tiny_sdxl[1]
    prompt = "a red circle, and a blue square. " + " ".join(["cat"] * 80)
    words = "circle, blue square, cat"
    answer = routes.tokenize_request(prompt, words + ", giraffe")
    pt = tokenize_prompt(clip, prompt)
    expected = locate_words(clip, pt, parse_word_list(words), "test")
    assert answer["positions"] == expected  # the route finds what the nodes will find
    assert answer["missing"] == ["giraffe"]
    assert [w["word"] for w in answer["words"]] == pt.words
    assert answer["n_tokens"] == pt.n_tokens == 154 and len(answer["chunks"]) == 2
    first = answer["chunks"][0]
    assert first[0]["token"] == "<start>" and first[3]["token"] == "circle" and first[3]["pos"] == 3
    assert answer["chunks"][1][0] == {"pos": 77, "token": "<start>"}


@pytest.mark.host
def test_tokenize_request_rejects_bad_input(host):
    with pytest.raises(ValueError, match="'prompt' must be a string"):
        routes.tokenize_request(None, "x")
    with pytest.raises(ValueError, match="'words' must be a string"):
        routes.tokenize_request("a cat", ["cat"])
    assert routes.register() is False  # no running server in-process: nothing registered, no error


@pytest.mark.parametrize("prompt, words, field, message", [
    ("x" * (routes.MAX_PROMPT_CHARS + 1), "", "prompt", f"at most {routes.MAX_PROMPT_CHARS}"),
    ("a \ud800 b", "", "prompt", "lone surrogate '\\ud800' at character 2"),
    ("a cat", "cat, \udfff", "words", "lone surrogate"),
    ("a cat", "cat, " * 400 + "cat", "words", f"at most {routes.MAX_WORDS_CHARS} are allowed"),
    ("a cat", ",".join(["cat"] * (routes.MAX_WORD_ENTRIES + 1)), "words", f"at most {routes.MAX_WORD_ENTRIES} are allowed"),
    ("(" * 33 + "cat" + ")" * 33, "cat", "prompt", "deeper than 32 levels"),
    ("embedding:x " * 33, "", "prompt", "more than 32 embeddings"),
    (5, "", "prompt", "must be a string"),
    ("a cat", {"cat": 1}, "words", "must be a string"),
])
def test_check_request_refuses_input_outside_the_limits(prompt, words, field, message):
    with pytest.raises(routes.RequestError, match=re.escape(message)) as e:
        routes.check_request(prompt, words)
    assert e.value.field == field and str(e.value).startswith(f"'{field}'")


def test_check_request_accepts_what_users_write():
    prompt = "embedding:style, " + "a (red:1.2) \\(circle\\) and ((a blue square)), " * 100
    assert routes.check_request(prompt, None) == (prompt, [])
    assert routes.check_request("a cat", " cat,, red circle ,")[1] == ["cat", "red circle"]
    assert routes.check_request("(" * 32 + "x", "")[0]  # unbalanced brackets are the host's business


def test_find_sequences_matches_brute_force():
    rng = random.Random(0)
    for _ in range(500):
        words = [rng.choice("abc") for _ in range(rng.randint(0, 25))]
        targets = [tuple(rng.choice("abc") for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 6))]
        found = find_sequences(words, targets)
        for t in targets:
            n = len(t)
            assert found[t] == [i for i in range(len(words) - n + 1) if n and tuple(words[i:i + n]) == t]


def test_find_sequences_is_linear_and_bounded():
    words = ["a"] * 20000
    t = time.perf_counter()
    found = find_sequences(words, [("a", "b%d" % i) for i in range(1000)] + [("a",) * 50])
    assert time.perf_counter() - t < 2.0  # quadratic matching takes minutes here
    assert len(found[("a",) * 50]) == 20000 - 49
    with pytest.raises(ValueError, match="more than 1000 prompt words"):
        find_sequences(words, [("a",)], max_matched_words=1000)


@pytest.mark.host
def test_tokenize_request_bounds_the_matches(host):
    with pytest.raises(routes.RequestError, match="'words' match more than") as e:
        routes.tokenize_request("a " * 10000, ", ".join(" ".join(["a"] * k) for k in range(1, 12)))
    assert e.value.field == "words"


BIND_PROMPT = "a photo of a red ball on a green lawn"


def _word_positions(answer, word):
    return [p for w in answer["words"] if w["word"] == word for p in w["positions"]]


@pytest.mark.host
def test_noun_phrase_lists_the_tokens_that_move_with_each_entry(host):
    one = routes.tokenize_request(BIND_PROMPT, "ball", bind="noun phrase")
    # <start> a photo of a red ball ...: "red" (5) moves with "ball" (6)
    assert one["entries"] == [{"entry": "ball", "positions": [6], "found": True, "bound": [5], "bound_words": ["red"]}]
    assert one["entries"][0]["bound"] == _word_positions(one, "red")
    two = routes.tokenize_request(BIND_PROMPT, "ball, lawn, dog", bind="noun phrase")
    assert [(e["entry"], e["bound"], e["bound_words"]) for e in two["entries"]] == [
        ("ball", [5], ["red"]), ("lawn", [9], ["green"]), ("dog", [], [])]
    assert two["entries"][1]["bound"] == _word_positions(two, "green")
    assert two["positions"] == [[6], [10]] and two["missing"] == ["dog"]  # the typed tokens, as before
    # an entry holding its modifier binds nothing more; a chosen modifier is its own entry
    assert routes.tokenize_request(BIND_PROMPT, "red ball", bind="noun phrase")["entries"][0]["bound"] == []
    assert [e["bound"] for e in routes.tokenize_request(BIND_PROMPT, "ball, red", bind="noun phrase")["entries"]] == [[], []]


@pytest.mark.host
def test_typed_words_is_the_default_and_the_old_answer(host):
    bound = routes.tokenize_request(BIND_PROMPT, "ball, dog", bind="noun phrase")
    assert all(len(e.pop("bound_words")) == len(e.pop("bound")) == e["found"] for e in bound["entries"])
    for answer in (routes.tokenize_request(BIND_PROMPT, "ball, dog"),
                   routes.tokenize_request(BIND_PROMPT, "ball, dog", bind="typed words")):
        assert all("bound" not in e and "bound_words" not in e for e in answer["entries"])
        assert answer == bound  # the rest of the answer does not depend on bind


@pytest.mark.parametrize("bind, message", [
    ("object", "not 'object'"), ("Noun Phrase", "not 'Noun Phrase'"), (5, "not int"), (["noun phrase"], "not list"),
])
def test_check_bind_refuses_unknown_choices(bind, message):
    with pytest.raises(routes.RequestError, match=re.escape(message)) as e:
        routes.check_bind(bind)
    assert e.value.field == "bind" and "'noun phrase', 'typed words'" in str(e.value)
    assert routes.check_bind(None) == "typed words" and routes.check_bind("noun phrase") == "noun phrase"


@pytest.mark.host
def test_bound_words_count_against_the_match_limit(host):
    """Repeated entries repeat their bound tokens in the answer: the words bound count with the
    matched ones, so 'noun phrase' answers stay within MAX_MATCHED_WORDS words."""
    prompt = "big old red wooden ball " * 833  # 833 balls, each with 4 modifiers: 5 words per entry and ball
    assert len(prompt) <= routes.MAX_PROMPT_CHARS and 12 * 5 * 833 <= routes.MAX_MATCHED_WORDS < 13 * 5 * 833
    answer = routes.tokenize_request(prompt, ", ".join(["ball"] * 12), bind="noun phrase")
    assert len(answer["entries"][11]["bound"]) == 4 * 833 and answer["entries"][11]["bound_words"] == ["big", "old", "red", "wooden"]
    routes.tokenize_request(prompt, ", ".join(["ball"] * 13))  # typed words: 13 * 833 matches are fine
    with pytest.raises(routes.RequestError, match="with the words bound to them") as e:
        routes.tokenize_request(prompt, ", ".join(["ball"] * 13), bind="noun phrase")
    assert e.value.field == "words"


def _post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.server
def test_route_answers_on_the_real_server(comfy_server):
    status, answer = _post(comfy_server.url + routes.ROUTE, json.dumps({"prompt": "a red circle", "words": "circle, dog"}).encode())
    assert status == 200 and answer["positions"] == [[3]] and answer["missing"] == ["dog"]
    status, answer = _post(comfy_server.url + routes.ROUTE, b"not json")
    assert status == 400 and "prompt" in answer["error"] and "bind" in answer["error"]
    body = {"prompt": BIND_PROMPT, "words": "ball, lawn, dog", "bind": "noun phrase"}
    status, answer = _post(comfy_server.url + routes.ROUTE, json.dumps(body).encode())
    assert status == 200 and [(e["bound"], e["bound_words"]) for e in answer["entries"]] == [([5], ["red"]), ([9], ["green"]), ([], [])]
    for bad in ("nouns", 1, ""):
        status, answer = _post(comfy_server.url + routes.ROUTE, json.dumps(dict(body, bind=bad)).encode())
        assert status == 400 and answer["field"] == "bind" and "'noun phrase', 'typed words'" in answer["error"], answer
