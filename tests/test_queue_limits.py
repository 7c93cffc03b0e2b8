"""Server tier: a hostile prompt does not block the queue.

The fault (issue 15): FrameSequence validated a keyframes list of 80 000 entries (880 KB) in
31 s of quadratic work, during which every prompt queued behind it waited. Each hostile text
below is queued first, a plain prompt right behind it; the hostile one is refused with its node
and input named, and the plain one finishes within the runner's deadline.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from harness import REPO_ROOT
from test_server import _load, tiny
from test_soak import _seeded

import run_workflow

pytestmark = pytest.mark.server

BEHIND_DEADLINE = 120.0  # seconds for the plain prompt queued behind a hostile one (it takes ~2 s alone)


def _keyframes_80k() -> str:
    """The issue's prompt: 80 000 keyframes of one word (about 880 KB)."""
    return json.dumps({"ball": [[i % 16, 0.001 * (i % 7), 0] for i in range(80_000)]})


def _many_regions() -> str:
    return json.dumps([{"prompt": f"thing {i}", "box": [0.1, 0.1, 0.2, 0.2]} for i in range(20_000)])


def _many_weights() -> str:
    return ", ".join(f"snowy{i}: 2" for i in range(100_000))


# (workflow, node id, input, hostile text, what the error must say)
HOSTILE = [
    ("motion_clip_incremental.json", "5", "keyframes", _keyframes_80k, "FrameSequence"),
    ("region_attention.json", "5", "regions", _many_regions, "RegionAttention"),
    ("reweight.json", "5", "reweight", _many_weights, "P2PReplace"),
]


def _queue(url: str, api: dict) -> str:
    status, raw = run_workflow._http(url, "/prompt", {"prompt": api, "client_id": "hostile"})
    assert status == 200, raw[:500]
    return json.loads(raw)["prompt_id"]


@pytest.mark.parametrize("workflow,node,field,text,node_type", HOSTILE, ids=[h[2] for h in HOSTILE])
def test_hostile_text_is_refused_and_does_not_hold_the_queue(comfy_server, tmp_path, workflow, node, field, text,
                                                             node_type):
    path = os.path.join(REPO_ROOT, "workflows", "api", workflow)
    hostile = tiny(_load(path))
    hostile[node]["inputs"][field] = text()
    assert len(hostile[node]["inputs"][field]) > 200_000
    hostile_id = _queue(comfy_server.url, hostile)
    # a seed of its own: the shared server must not hold this run's outputs cached for other tests
    plain = _seeded(tiny(_load(os.path.join(REPO_ROOT, "workflows", "api", "capture_heatmaps.json"))),
                    900 + len(field))
    started = time.monotonic()
    result = run_workflow.run(plain, comfy_server.url, out_dir=str(tmp_path / "plain"), timeout=BEHIND_DEADLINE,
                              log=lambda _m: None)
    assert result["files"], "the prompt behind the hostile one wrote nothing"
    entry = run_workflow.wait_for_history(comfy_server.url, hostile_id, time.monotonic() + 30)
    status = entry.get("status") or {}
    assert status.get("status_str") == "error", status
    errors = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
    assert len(errors) == 1, status
    message = errors[0]["exception_message"]
    assert errors[0]["node_type"] == node_type and f"'{field}'" in message and "at most" in message, message
    assert len(message) < 1000, message  # the hostile text is not echoed back
    print(f"{field}: plain prompt behind the hostile one done in {time.monotonic() - started:.1f} s")
