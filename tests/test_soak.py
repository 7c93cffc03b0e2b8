"""Server tier: a bounded soak. Many prompts mixing every shipped workflow, bad inputs and
interrupts on one server; afterwards a plain run and a capture run give the same pixels as on a
fresh server, and the server's resident memory stays within a stated margin.
"""
from __future__ import annotations

import glob
import os
import threading

import numpy as np
import pytest
from PIL import Image

import server_harness
from harness import REPO_ROOT, setup_host
from test_server import API_FILES, _load, tiny  # the same tiny-model rewrite as the server tests

import run_workflow

pytestmark = pytest.mark.server

ROUNDS = 2  # every shipped workflow this many times after the warm-up, each with a new seed
# Growth allowed over the warmed-up server. Measured: within +-35 MB on both lanes over 30 prompts
# (with and without interrupts and refusals); the margin leaves room for allocator pools.
RSS_MARGIN_MB = 100


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _seeded(api: dict, seed: int) -> dict:
    """The sampling seeds set to ``seed`` (the tiny loader's model seed is left alone: a new model
    per prompt would be the test's own memory growth, not the server's)."""
    for node in api.values():
        if node["class_type"] == "TinyCheckpointLoader":
            continue
        for key in ("seed", "noise_seed"):
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = seed
    return api


def _bad(api: dict) -> dict | None:
    """The workflow with one hostile input, or None when it has no input this knows how to spoil."""
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] == "P2PReplace" and isinstance(inputs.get("reweight"), str):
            inputs["reweight"] = "snowy: nan"
            return api
        if node["class_type"] == "FrameSequence" and isinstance(inputs.get("keyframes"), str):
            inputs["keyframes"] = '{"x": [[0, 0, 0], [0, 0.1, 0]]}'
            return api
        if node["class_type"] == "AttentionCapture":
            inputs["resolutions"] = "1/64"
            return api
    return None


def _plain_and_capture(url: str, out: str, seed: int = 7) -> list[np.ndarray]:
    """Pixels of a plain and a capture run (capture_heatmaps.json) with ``seed`` on ``url``."""
    api = _seeded(tiny(_load(os.path.join(REPO_ROOT, "workflows", "api", "capture_heatmaps.json"))), seed)
    files = run_workflow.run(api, url, out_dir=out, timeout=300, log=lambda _m: None)["files"]
    pngs = sorted(p for p in files if p.endswith(".png"))
    assert len(pngs) == 3, files  # the image and two heatmaps
    return [np.asarray(Image.open(p).convert("RGB")) for p in pngs]


def test_soak_then_same_pixels_as_a_fresh_server(comfy_server, tmp_path):
    url, pid = comfy_server.url, comfy_server.proc.pid
    # Warm up: every workflow once (models, kernels and allocator pools for each of them).
    for i, path in enumerate(API_FILES):
        run_workflow.run(_seeded(tiny(_load(path)), 50 + i), url, out_dir=str(tmp_path / "warm"), timeout=300,
                         log=lambda _m: None)
    rss_before = _rss_mb(pid)
    ran = errors = interrupted = 0
    seed = 100
    for _ in range(ROUNDS):
        for path in API_FILES:
            seed += 1
            api = _seeded(tiny(_load(path)), seed)
            if seed % 3 == 0 and (bad := _bad(api)) is not None:
                with pytest.raises(run_workflow.RunError) as err:
                    run_workflow.run(bad, url, out_dir=str(tmp_path / "bad"), timeout=300, log=lambda _m: None)
                assert err.value.code in (run_workflow.EXIT_REJECTED, run_workflow.EXIT_FAILED)
                errors += 1
                continue
            timer = None
            if seed % 4 == 0:  # interrupt once the run is under way
                timer = threading.Timer(0.8, run_workflow._http, (url, "/interrupt", {}))
                timer.start()
            try:
                run_workflow.run(api, url, out_dir=str(tmp_path / "soak"), timeout=300, log=lambda _m: None)
                ran += 1
            except run_workflow.RunError as e:
                assert timer is not None and "interrupted" in str(e), str(e)
                interrupted += 1
            finally:
                if timer is not None:
                    timer.join()
    soaked = _plain_and_capture(url, str(tmp_path / "after"))
    rss_after = _rss_mb(pid)
    base = str(tmp_path / "fresh")
    fresh = server_harness.start(setup_host(), server_harness.pack_custom_node_dirs(), base + "/output", work_dir=base)
    try:
        reference = _plain_and_capture(fresh.url, str(tmp_path / "fresh_out"))
    finally:
        fresh.stop()
    for a, b in zip(soaked, reference, strict=True):
        assert np.array_equal(a, b)
    figures = (f"{ran} runs, {errors} refused, {interrupted} interrupted; RSS {rss_before:.0f} MB before, "
               f"{rss_after:.0f} MB after")
    print("soak:", figures)
    assert ran + errors + interrupted == ROUNDS * len(API_FILES), figures
    assert ran >= len(API_FILES) // 2 and errors >= 2, figures
    assert not glob.glob(os.path.join(str(tmp_path), "bad", "*"))  # refused prompts wrote nothing
    assert rss_after <= rss_before + RSS_MARGIN_MB, f"server memory grew more than {RSS_MARGIN_MB} MB: {figures}"
