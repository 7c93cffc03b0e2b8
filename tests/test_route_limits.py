"""Server tier: the tokenize route (host/routes.py) against hostile input on a real ComfyUI server.

Oversized or invalid requests get HTTP 400 (413 for a too large body) with a JSON body naming
the field; large accepted requests are answered within a bound and do not hold up small ones.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from attention_motion.host import routes

pytestmark = pytest.mark.server

BASE = "a red circle and a blue square on a green field, "
BIG_PROMPT = (BASE * (routes.MAX_PROMPT_CHARS // len(BASE) + 1))[:routes.MAX_PROMPT_CHARS]
VOCAB = "a red circle and blue square on green field cat dog".split()
MAX_ANSWER_BYTES = 4_000_000  # the largest answer within the limits (20 000 CJK characters) is about 2.7 MB
SMALL_LATENCY = 2.0  # seconds a small request may take while a big one runs


def word_list(n: int) -> str:
    """``n`` comma-separated entries, every other one a word of BASE."""
    return ", ".join(VOCAB[i % len(VOCAB)] if i % 2 else f"word{i}" for i in range(n))


def post(url: str, body, timeout: float = 120.0) -> tuple[int, dict, int, float]:
    """POST ``body`` (a JSON value, or bytes as they are): (status, answer, answer bytes, seconds)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + routes.ROUTE, data=data, headers={"Content-Type": "application/json"},
                                 method="POST")
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw), len(raw), time.monotonic() - t


def assert_refused(answer: tuple, field: str, *words: str, status: int = 400) -> None:
    code, body, _size, _secs = answer
    assert code == status, body
    assert body["field"] == field and all(w in body["error"] for w in words), body


def test_the_issue_request_is_refused_at_once(comfy_server):
    """20 000 characters and 1000 entries took 40 s and answered 18 MB under a global lock."""
    answer = post(comfy_server.url, {"prompt": BIG_PROMPT, "words": word_list(1000)})
    assert_refused(answer, "words", "'words'", f"at most {routes.MAX_WORDS_CHARS}")
    assert answer[3] < SMALL_LATENCY
    entries = ",".join(["cat"] * (routes.MAX_WORD_ENTRIES + 1))  # short entries: the count is the limit
    assert_refused(post(comfy_server.url, {"prompt": "a cat", "words": entries}), "words",
                   f"{routes.MAX_WORD_ENTRIES + 1} entries", f"at most {routes.MAX_WORD_ENTRIES}")
    assert_refused(post(comfy_server.url, {"prompt": BIG_PROMPT + "x", "words": "cat"}), "prompt",
                   f"at most {routes.MAX_PROMPT_CHARS}")


def test_large_requests_are_bounded_and_do_not_hold_up_small_ones(comfy_server):
    url = comfy_server.url
    small = {"prompt": "a red circle", "words": "circle, dog"}
    for status, answer, _, _ in [post(url, small), post(url, small)]:  # tokenizers built
        assert status == 200 and answer["positions"] == [[3]] and answer["missing"] == ["dog"]
    status, answer, size, secs = post(url, {"prompt": BIG_PROMPT, "words": word_list(routes.MAX_WORD_ENTRIES)})
    assert status == 200 and size < MAX_ANSWER_BYTES and secs < 30
    assert len(answer["entries"]) == routes.MAX_WORD_ENTRIES and answer["entries"][1]["found"]

    # the most matching work the limits allow: 10 000 prompt words, 99 entries matching them all,
    # sent back to back (a fast machine answers one in well under a second) while small ones go
    big = {"prompt": "a " * 10000, "words": ", ".join(f"a b{i}" for i in range(99))}
    bigs, stop = [], threading.Event()

    def send_bigs() -> None:
        while not stop.is_set() and len(bigs) < 50:
            bigs.append(post(url, big))

    runner = threading.Thread(target=send_bigs)
    runner.start()
    latencies = []
    try:
        time.sleep(0.05)
        while runner.is_alive() and len(latencies) < 20:
            status, answer, _, secs = post(url, small, timeout=30)
            assert status == 200 and answer["positions"] == [[3]]
            latencies.append(secs)
    finally:
        stop.set()
        runner.join(120)
    assert latencies and bigs
    assert max(latencies) < SMALL_LATENCY, latencies
    for status, answer, size, secs in bigs:
        assert status == 200 and size < MAX_ANSWER_BYTES and secs < 60
        assert answer["missing"] == [f"a b{i}" for i in range(99)]


def test_an_answer_listing_too_many_positions_is_refused(comfy_server):
    """Multi-token words matched many times: 800 CJK words of 19 characters, 60 entries naming
    them (48 000 matched words, within MAX_MATCHED_WORDS) listed about 39 MB of positions."""
    word = "\u7d05" * 19
    body = {"prompt": " ".join([word + " ball"] * 800), "words": ", ".join([word] * 60)}
    answer = post(comfy_server.url, body)
    assert_refused(answer, "words", "token positions", f"at most {routes.MAX_ANSWER_POSITIONS}")
    assert answer[2] < 1000
    ok = post(comfy_server.url, dict(body, words=word))  # one entry: 800 matches, listed
    assert ok[0] == 200 and len(ok[1]["entries"][0]["positions"]) >= 800


@pytest.mark.parametrize("body, field, words", [
    ({"prompt": "a \ud800 b", "words": ""}, "prompt", ["lone surrogate", "character 2"]),
    (b'{"prompt": "a \xed\xa0\x80 b"}', "prompt", ["lone surrogate"]),  # the surrogate UTF-8-encoded
    ({"prompt": "a cat", "words": "cat, \udc00"}, "words", ["lone surrogate"]),
    (b'{"prompt": "a \xff b"}', "body", ["not JSON"]),  # invalid UTF-8
    (b"[" * 100000, "body", ["not JSON"]),  # deeper than the JSON parser's recursion
    (b'["a cat"]', "body", ["not a JSON object"]),
    ({"prompt": 5}, "prompt", ["must be a string"]),
    ({"prompt": "a cat", "words": ["cat"]}, "words", ["must be a string"]),
    ({"prompt": "(" * 5000 + "cat" + ")" * 5000}, "prompt", [f"deeper than {routes.MAX_NESTING}"]),
    ({"prompt": "embedding:x " * 1000}, "prompt", [f"more than {routes.MAX_EMBEDDINGS} embeddings"]),
    ({"prompt": "a " * 10000, "words": ", ".join(" ".join(["a"] * k) for k in range(1, 12))}, "words",
     [f"more than {routes.MAX_MATCHED_WORDS}"]),
])
def test_bad_input_gets_400_naming_the_field(comfy_server, body, field, words):
    assert_refused(post(comfy_server.url, body), field, *words)


def test_oversized_body_is_refused_before_parsing(comfy_server):
    body = json.dumps({"prompt": "a", "words": "", "pad": "x" * routes.MAX_BODY_BYTES}).encode()
    answer = post(comfy_server.url, body)
    assert_refused(answer, "body", f"larger than {routes.MAX_BODY_BYTES} bytes", status=413)
    assert answer[3] < SMALL_LATENCY
    status, answer, _, _ = post(comfy_server.url, {"prompt": "a red circle", "words": "circle"})
    assert status == 200 and answer["positions"] == [[3]]  # still serving
