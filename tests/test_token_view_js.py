"""Tier 1: the token view's pure helpers (js/am_common.js tokenMarks, entryLabel) under Node.js.

tests/js/token_view_helpers.test.mjs runs them with Node's own test runner on answers of the
tokenize route: with bind 'noun phrase' the modifiers' tokens are marked as moving with their
word, and the entry's label names them.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.core

SCRIPT = Path(__file__).resolve().parent / "js" / "token_view_helpers.test.mjs"


def test_token_view_helpers_pass_under_node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed: `node` (20.19 or later) must be on PATH to run " + SCRIPT.name)
    run = subprocess.run([node, "--test", str(SCRIPT)], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert run.returncode == 0, f"{SCRIPT.name} failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert "# pass 4" in run.stdout and "# fail 0" in run.stdout, run.stdout[-2000:]
