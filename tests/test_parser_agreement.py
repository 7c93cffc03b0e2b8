"""Tier 1: the keyframes and regions parsers of the nodes and of the frontend agree.

One table (tests/parser_cases.json) of valid and invalid inputs runs through the Python parsers
(core/motion.parse_keyframes, core/boxes.parse_regions) and, under Node.js, through the
frontend's (js/motion_math.js parseKeyframes, js/region_math.js parseRegions, via
tests/js/parser_cases.mjs): both must match the table and each other, so the widgets never draw
what the node refuses.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from attention_motion.core.boxes import parse_regions
from attention_motion.core.motion import MAX_TEXT, parse_keyframes

pytestmark = pytest.mark.core

HERE = Path(__file__).resolve().parent
TABLE_PATH = HERE / "parser_cases.json"
SCRIPT = HERE / "js" / "parser_cases.mjs"
TABLE = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
CASES = [(kind, i) for kind in ("keyframes", "regions") for i in range(len(TABLE[kind]))]
IDS = [f"{kind}-{i}-{TABLE[kind][i]['name']}" for kind, i in CASES]


def case_text(text) -> str:
    """The text of a case: a string, or [piece, count] pairs joined ("{i}" in a piece: the repetition's index)."""
    if isinstance(text, str):
        return text
    return "".join("".join(piece.replace("{i}", str(i)) for i in range(count)) if "{i}" in piece else piece * count
                   for piece, count in text)


def python_outcome(kind: str, case: dict) -> dict:
    """The Python parser's outcome for a case, in the table's form."""
    text = case_text(case["text"])
    try:
        if kind == "keyframes":
            frames = case.get("frames", TABLE["keyframe_defaults"]["frames"])
            words = case.get("words", TABLE["keyframe_defaults"]["words"])
            keyed = parse_keyframes(text, frames, words)
            result = None if keyed is None else {w: [list(k) for k in keys] for w, keys in keyed.items()}
        else:
            result = [{"prompt": s.prompt, "path": None if s.path is None else s.path.tolist(), "mask": s.mask,
                       "weight": s.weight} for s in parse_regions(text)]
    except ValueError as e:
        return {"valid": False, "error": str(e)}
    return {"valid": True, "result": result}


def close(a, b) -> bool:
    """Same structure and strings, numbers equal to float32 precision (region boxes are float32 tensors)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
    return a == b


def check(outcome: dict, case: dict, side: str) -> None:
    name = case["name"]
    if not case["valid"]:
        assert not outcome["valid"], f"{side} accepts '{name}' (the table says it is invalid): {outcome.get('result')!r:.300}"
        assert case["error"] in outcome["error"], f"{side} error for '{name}' lacks {case['error']!r}: {outcome['error']!r:.300}"
        return
    assert outcome["valid"], f"{side} refuses '{name}': {outcome['error']:.300}"
    if "result" in case:
        assert close(outcome["result"], case["result"]), f"{side} parses '{name}' as {outcome['result']!r:.300}"


@pytest.fixture(scope="module")
def js_outcomes() -> dict:
    """Every case through the frontend's parsers, run by Node.js (required: CI machines have it)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: `node` (20.19 or later) must be on PATH to run the frontend's parsers "
                    "(tests/js/parser_cases.mjs) against tests/parser_cases.json")
    run = subprocess.run([node, str(SCRIPT), str(TABLE_PATH)], capture_output=True, text=True, encoding="utf-8",
                         timeout=120)
    if run.returncode != 0:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        pytest.fail(f"node {version} failed on {SCRIPT.name} (js/*.js are ES modules without a package.json: "
                    f"Node 20.19+ or 22 reads them as such):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout)


def test_table_is_well_formed():
    for kind, i in CASES:
        case = TABLE[kind][i]
        assert isinstance(case["name"], str) and isinstance(case["valid"], bool), case
        assert ("error" in case) != case["valid"], f"{kind} case '{case['name']}': give 'error' exactly when invalid"
    names = [TABLE[kind][i]["name"] for kind, i in CASES]
    assert len(CASES) >= 150 and len(set(zip([k for k, _ in CASES], names))) == len(CASES)


@pytest.mark.parametrize("kind,i", CASES, ids=IDS)
def test_python_parser_follows_the_table(kind, i):
    case = TABLE[kind][i]
    check(python_outcome(kind, case), case, "Python")


@pytest.mark.parametrize("kind,i", CASES, ids=IDS)
def test_js_parser_follows_the_table(js_outcomes, kind, i):
    case = TABLE[kind][i]
    check(js_outcomes[kind][i], case, "JS")


@pytest.mark.parametrize("kind,i", CASES, ids=IDS)
def test_parsers_agree(js_outcomes, kind, i):
    py, js = python_outcome(kind, TABLE[kind][i]), js_outcomes[kind][i]
    assert py["valid"] == js["valid"], f"Python: {py!r:.300}\nJS: {js!r:.300}"
    if py["valid"]:
        assert close(py["result"], js["result"]), f"Python: {py['result']!r:.300}\nJS: {js['result']!r:.300}"


def test_keyframes_parse_in_linear_time():
    """Thousands of keyframes (up to the size limit) parse at once: the duplicate check is a set, not a scan."""
    n = 16_000
    text = "[" + ",".join(f"[{f},1,0]" for f in range(n)) + "]"
    assert len(text) <= MAX_TEXT
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        keys = parse_keyframes(text, n, ["cat"])["cat"]
        best = min(best, time.perf_counter() - t0)
    assert len(keys) == n and keys[-1] == (n - 1, 1.0, 0.0)
    assert best < 2.5, f"{n} keyframes took {best:.2f} s"
    with pytest.raises(ValueError, match=f"entry {n}: frame 0 has more than one keyframe"):
        parse_keyframes(text[:-1] + ",[0,0,0]]", n, ["cat"])
