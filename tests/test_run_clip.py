"""Server tier: a long clip in chunks over two real ComfyUI servers (scripts/run_clip.py).

The session server (``comfy_server``) and one more started here run the motion clip workflow on
the tiny model (128 px, 3 steps, 8 frames in chunks of 3). The reference is the same chunking run
by hand on one server through the plain runner, frame 0 dropped from the later chunks. The tests
run in file order: the last one kills the second server.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import server_harness
from harness import REPO_ROOT, setup_host
from test_server import _load, tiny  # the same tiny-model rewrite as the server tests

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import run_clip  # noqa: E402
import run_workflow  # noqa: E402

pytestmark = pytest.mark.server

FRAMES, CHUNK, STEPS, SEED = 8, 3, 3, 11
CHUNKS = [[0, 1, 2], [3, 4, 5], [6, 7]]  # frames each chunk adds; chunks 2 and 3 also carry frame 0


def _clip_api(seed: int = SEED, frames: int = FRAMES, steps: int = STEPS) -> dict:
    api = tiny(_load(os.path.join(REPO_ROOT, "workflows", "api", "motion_clip_variation.json")))
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] == "FrameSequence":
            inputs["frames"] = frames
        if node["class_type"] == "KSampler":
            inputs["steps"], inputs["seed"] = steps, seed
    return api


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _queue_empty(url: str) -> bool:
    status, raw = run_workflow._http(url, "/queue")
    q = json.loads(raw)
    return status == 200 and not q.get("queue_running") and not q.get("queue_pending")


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("second_server")
    server = server_harness.start(setup_host(), server_harness.pack_custom_node_dirs(), str(base / "output"),
                                  work_dir=str(base))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference(comfy_server, tmp_path_factory):
    """Every chunk of the clip run by hand on one server: the frames of each chunk, in batch order."""
    out = tmp_path_factory.mktemp("reference")
    chunks = []
    for index in range(len(CHUNKS)):
        api = _clip_api()
        for node in api.values():
            if node["class_type"] == "FrameSequence":
                node["inputs"].update(chunk_size=CHUNK, chunk_index=index)
            if node["class_type"] == "SaveMotionClip":
                node["inputs"].update(gif=False, webp=False, mp4=False, frame_pngs=True,
                                      filename_prefix=f"reference/c{index}")
        result = run_workflow.run(api, comfy_server.url, out_dir=str(out / str(index)), timeout=300,
                                  log=lambda _m: None)
        chunks.append([_pixels(p) for p in sorted(result["files"]) if p.endswith(".png")])
    return chunks


def _joined(reference) -> list[np.ndarray]:
    return reference[0] + [f for chunk in reference[1:] for f in chunk[1:]]


def test_chunking_reference_is_consistent(reference):
    assert [len(c) for c in reference] == [3, 4, 3]  # anchor row first in chunks 2 and 3
    for chunk in reference[1:]:
        assert np.array_equal(chunk[0], reference[0][0])  # frame 0 is the same in every chunk
    joined = _joined(reference)
    assert len(joined) == FRAMES
    assert all(np.abs(joined[i].astype(int) - joined[i + 1]).mean() > 0 for i in range(FRAMES - 1))


def test_two_servers_give_the_one_server_clip(comfy_server, second_server, reference, tmp_path):
    logs = []
    out = tmp_path / "clip"
    result = run_clip.run_clip(_clip_api(), [comfy_server.url, second_server.url], CHUNK, str(out), "gif",
                               timeout=300, log=logs.append)
    assert set(result["chunks"]) == {0, 1, 2}
    assert set(result["chunks"].values()) == {comfy_server.url, second_server.url}, logs  # both worked
    assert sorted(os.listdir(out / "frames")) == [f"frame_{i:05}.png" for i in range(FRAMES)]
    joined = _joined(reference)
    for i, path in enumerate(result["frames"]):
        assert np.array_equal(_pixels(path), joined[i]), f"frame {i} differs from the one-server run"
    # the clip is Save Motion Clip's writer over those frames, at the node's fps
    with Image.open(result["clip"]) as im:
        assert im.n_frames == FRAMES and im.info["duration"] == 120  # 8 fps, in the GIF's 10 ms units
    expected = tmp_path / "expected.gif"
    run_clip.clip_writers()["write_gif"](str(expected), np.stack(joined), 8.0, 0)
    assert expected.read_bytes() == open(result["clip"], "rb").read()
    # progress per chunk and per server
    assert any("-> s1" in line for line in logs) and any("-> s2" in line for line in logs)
    assert sum(" done on s" in line for line in logs) == len(CHUNKS)
    assert any("[s2]" in line and "step" in line for line in logs) or any("[s1]" in line and "step" in line
                                                                          for line in logs)


def _fake_runs(monkeypatch, behaviour):
    """Replace the runner's ``run`` by one that writes frame PNGs whose grey level is the clip frame
    of each batch row (anchor first after chunk 0); ``behaviour(server, chunk_index, calls)``
    returns a RunError to raise instead, or None."""
    calls = []

    def fake_run(api, server, out_dir="outputs", timeout=0, log=print, on_queued=None, **_kw):
        seq = next(n["inputs"] for n in api.values() if n["class_type"] == "FrameSequence")
        save_id = next(k for k, n in api.items() if n["class_type"] == "SaveMotionClip")
        index = seq["chunk_index"]
        calls.append((server, index))
        if on_queued is not None:
            on_queued(f"p{len(calls)}")
        error = behaviour(server, index, calls)
        if error is not None:
            raise error
        size = seq["chunk_size"]
        rows = list(range(index * size, min(seq["frames"], (index + 1) * size)))
        rows = rows if index == 0 else [0] + rows
        os.makedirs(out_dir, exist_ok=True)
        entries, files = [], []
        for j, row in enumerate(rows):
            name = f"c{index}_frame_{j:04}.png"
            Image.fromarray(np.full((8, 8, 3), 10 * row, np.uint8)).save(os.path.join(out_dir, name))
            entries.append({"filename": name, "subfolder": "", "type": "output"})
            files.append(os.path.join(out_dir, name))
        return {"prompt_id": f"p{len(calls)}", "outputs": {save_id: {"frames": entries}}, "files": files}

    monkeypatch.setattr(run_workflow, "run", fake_run)
    return calls


def test_timeouts_and_one_off_chunk_failures_are_run_again_elsewhere(monkeypatch, tmp_path):
    """No real server: server a times out on its first chunk (dropped); chunk 2 fails once on b
    with a node error and is run again on c. Every frame once, in order."""
    def behaviour(server, index, calls):
        if server == "http://a":
            return run_workflow.RunError(run_workflow.EXIT_TIMEOUT, "prompt p did not finish within 1 s")
        # the first run of chunk 2 on b (counted: other servers' threads append to calls meanwhile)
        if server == "http://b" and index == 2 and calls.count(("http://b", 2)) == 1:
            return run_workflow.RunError(run_workflow.EXIT_FAILED, "execution failed in node 5 (FrameSequence): x")
        return None

    calls = _fake_runs(monkeypatch, behaviour)
    logs = []
    result = run_clip.run_clip(_clip_api(frames=11), ["http://a", "http://b", "http://c"], 3, str(tmp_path / "o"),
                               "png", timeout=5, log=logs.append)
    assert len([c for c in calls if c[0] == "http://a"]) == 1  # dropped after its time-out
    assert any("server s1 dropped" in line for line in logs), logs
    assert result["chunks"][2] == "http://c" and set(result["chunks"]) == {0, 1, 2, 3}
    assert [int(_pixels(p)[0, 0, 0]) for p in result["frames"]] == [10 * i for i in range(11)]


def test_a_chunk_failing_everywhere_stops_the_run(monkeypatch, tmp_path):
    def behaviour(server, index, calls):
        if index == 1:
            return run_workflow.RunError(run_workflow.EXIT_FAILED, "execution failed in node 5 (FrameSequence): y")
        return None

    calls = _fake_runs(monkeypatch, behaviour)
    with pytest.raises(run_workflow.RunError) as err:
        run_clip.run_clip(_clip_api(frames=11), ["http://a", "http://b"], 3, str(tmp_path / "o"), "png",
                          timeout=5, log=lambda _m: None)
    assert err.value.code == run_workflow.EXIT_FAILED and "node 5 (FrameSequence): y" in str(err.value)
    assert {s for s, i in calls if i == 1} == {"http://a", "http://b"}  # tried on both, then stopped


def test_a_server_that_refuses_is_dropped_and_the_clip_is_whole(comfy_server, reference, tmp_path):
    refusing = f"http://127.0.0.1:{server_harness.free_port()}"  # nothing listens there
    logs = []
    result = run_clip.run_clip(_clip_api(), [refusing, comfy_server.url], CHUNK, str(tmp_path / "clip"), "png",
                               timeout=300, log=logs.append)
    assert any(line.startswith("server s1 dropped") and "cannot" in line for line in logs), logs
    assert set(result["chunks"].values()) == {comfy_server.url}
    joined = _joined(reference)
    assert len(result["frames"]) == FRAMES
    for i, path in enumerate(result["frames"]):
        assert np.array_equal(_pixels(path), joined[i]), f"frame {i} differs from the one-server run"


def test_no_server_reachable_exits_with_usage_status(tmp_path):
    wf = tmp_path / "clip.json"
    wf.write_text(json.dumps(_clip_api()))
    urls = [f"http://127.0.0.1:{server_harness.free_port()}" for _ in range(2)]
    proc = _cli([str(wf), "--server", urls[0], "--server", urls[1], "--chunk-size", str(CHUNK),
                 "--out", str(tmp_path / "o")], tmp_path)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == run_workflow.EXIT_USAGE, stdout + stderr
    assert "no server left" in stderr and "refused" in stderr


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action, as for a command run in a terminal: a test run started in the
    background of a script inherits SIGINT ignored, and so would the runner."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args, cwd, **kw):
    return subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "scripts", "run_clip.py"), *args],
                            cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_in_a_terminal, **kw)


def test_a_chunk_failing_on_every_server_stops_with_the_node_error(comfy_server, second_server, tmp_path):
    api = _clip_api()
    api["5"]["inputs"]["words"] = "banana"  # not in the prompt: FrameSequence fails when it runs
    wf = tmp_path / "bad.json"
    wf.write_text(json.dumps(api))
    proc = _cli([str(wf), "--server", comfy_server.url, "--server", second_server.url, "--chunk-size", str(CHUNK),
                 "--out", str(tmp_path / "o")], tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == run_workflow.EXIT_FAILED, stdout + stderr
    assert "node 5 (FrameSequence)" in stderr and "banana" in stderr
    failed_on = {line.split(" failed on ")[1].split(":")[0] for line in stdout.splitlines() if " failed on " in line}
    assert failed_on == {"s1", "s2"}, stdout  # tried on every server before giving up
    assert not os.listdir(tmp_path / "o" / "frames")
    assert not (tmp_path / "o" / "motion_clip_variation.gif").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_cancels_the_chunks_on_every_server(comfy_server, second_server, tmp_path, sig):
    wf = tmp_path / "clip.json"
    # a new seed (nothing cached) and more steps, so the run is still going when the signal comes
    # however slowly this test reads its output (CI once read it after the run had ended)
    wf.write_text(json.dumps(_clip_api(seed=SEED + 1 + int(sig), frames=12, steps=4 * STEPS)))
    proc = _cli([str(wf), "--server", comfy_server.url, "--server", second_server.url, "--chunk-size", str(CHUNK),
                 "--out", str(tmp_path / "o")], tmp_path)
    seen = set()
    deadline = time.monotonic() + 120
    while seen != {"s1", "s2"} and time.monotonic() < deadline:  # both servers are sampling a chunk
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        for label in ("s1", "s2"):
            if f"[{label}]" in line and "step" in line:
                seen.add(label)
    assert seen == {"s1", "s2"}
    assert proc.poll() is None, "the run ended before the test could interrupt it"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == run_clip.EXIT_CANCELLED, stdout + stderr
    assert "cancelled" in stderr
    assert " done on " not in stdout or stdout.count(" done on ") < 4  # the 4 chunks did not all finish
    assert not (tmp_path / "o" / "motion_clip_variation.gif").exists()
    deadline = time.monotonic() + 30
    while not (_queue_empty(comfy_server.url) and _queue_empty(second_server.url)):
        assert time.monotonic() < deadline, "a queue still holds the cancelled run's prompts"
        time.sleep(0.2)


def test_a_server_killed_mid_run_loses_no_frame(comfy_server, second_server, reference, tmp_path):
    """Runs last: it kills the second server while that one samples its chunk."""
    killed = []

    def log(line):
        logs.append(line)
        if not killed and "[s2]" in line and "step" in line:
            second_server.proc.kill()
            killed.append(line)

    logs: list[str] = []
    result = run_clip.run_clip(_clip_api(), [comfy_server.url, second_server.url], CHUNK, str(tmp_path / "clip"),
                               "png", timeout=300, log=log)
    assert killed, logs
    assert any("server s2 dropped" in line for line in logs), logs
    assert set(result["chunks"].values()) == {comfy_server.url}  # s1 made every chunk, s2's again
    assert result["clip"] is None
    assert sorted(os.listdir(tmp_path / "clip" / "frames")) == [f"frame_{i:05}.png" for i in range(FRAMES)]
    joined = _joined(reference)
    for i, path in enumerate(result["frames"]):
        assert np.array_equal(_pixels(path), joined[i]), f"frame {i} differs from the one-server run"


def test_log_lines_from_the_server_threads_never_interleave():
    """The runner's log is called from one thread per server; each line must stay whole."""
    import threading
    written: list[str] = []

    def slow_print(line: str) -> None:  # as print: the text, then the newline, in two writes
        written.append(line)
        time.sleep(0.001)
        written.append("\n")

    log = run_clip._one_line_at_a_time(slow_print)
    threads = [threading.Thread(target=lambda k=k: [log(f"s{k} line {i}") for i in range(20)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = "".join(written).splitlines()
    assert len(lines) == 80 and all(line.startswith("s") and line.count(" line ") == 1 for line in lines)
