"""The tokenize route behind the frontend's token view (host/routes.py), in-process and over HTTP."""
import json
import urllib.error
import urllib.request

import pytest

from attention_motion.host import routes
from attention_motion.host.tokens import locate_words, parse_word_list, tokenize_prompt


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
    assert status == 400 and "prompt" in answer["error"]
