#!/usr/bin/env python3
"""Run a long motion clip as chunks spread over one or more ComfyUI servers, and join them.

    python scripts/run_clip.py workflows/api/motion_clip_variation.json \\
        --server http://127.0.0.1:8188 --server http://127.0.0.1:8189 \\
        --chunk-size 8 --out clips/ --format mp4

The workflow (UI or API format, as ``run_workflow.py`` takes it) must hold exactly one Frame
Sequence and one Save Motion Clip. Each chunk becomes one prompt (``chunk_size`` and
``chunk_index`` set on the Frame Sequence; Save Motion Clip writes only the frame PNGs); the
chunks are queued over the servers, one in flight per server, and their frames fetched. Frame 0,
which every chunk after the first carries as its anchor, is dropped from those chunks. The
frames are written in order to ``OUT/frames/frame_NNNNN.png`` and the joined clip to
``OUT/<name>.<format>`` with Save Motion Clip's own writer functions.

Faults: a server that refuses the connection, dies or times out is dropped and its chunk queued
again on another; a chunk whose node fails is tried on every other server before the run stops
with the node's error. Ctrl-C or SIGTERM deletes the run's queued prompts and interrupts its
running ones on every server.

Exit status as run_workflow.py (0 done, 1 bad arguments or no server reachable, 2 rejected,
3 a node failed, 4 timed out) and 130 cancelled. Standard library only for the run and the
frame PNGs; the joined GIF / WebP needs Pillow and numpy, the MP4 imageio-ffmpeg (the pack's
own requirements).
"""
from __future__ import annotations

import argparse
import importlib.util
import copy
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_workflow  # noqa: E402
import workflow_format  # noqa: E402
from run_workflow import (EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, EXIT_USAGE,  # noqa: E402
                          RunError)
FORMATS = ("gif", "webp", "mp4", "png")
CLIP_FILES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core", "clip_files.py")


# ----------------------------------------------------------------------------- chunk plan
def chunk_count(frames: int, chunk_size: int) -> int:
    return 1 if chunk_size <= 0 or chunk_size >= frames else -(-frames // chunk_size)


def chunk_frames(frames: int, chunk_size: int, index: int) -> list[int]:
    """Clip frames chunk ``index`` adds to the joined clip (its anchor row not counted)."""
    if chunk_count(frames, chunk_size) == 1:
        return list(range(frames))
    return list(range(index * chunk_size, min(frames, (index + 1) * chunk_size)))


def find_clip_nodes(api: dict) -> tuple[str, str]:
    """Ids of the one FrameSequence and the one SaveMotionClip of an API prompt."""
    found = {}
    for kind in ("FrameSequence", "SaveMotionClip"):
        ids = [nid for nid, node in api.items() if node.get("class_type") == kind]
        if len(ids) != 1:
            raise RunError(EXIT_USAGE, f"the workflow has {len(ids)} {kind} nodes; run_clip needs exactly one")
        found[kind] = ids[0]
    frames = api[found["FrameSequence"]]["inputs"].get("frames")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise RunError(EXIT_USAGE, f"FrameSequence node {found['FrameSequence']}: 'frames' must be a number "
                                   f"written in the node (got {frames!r})")
    return found["FrameSequence"], found["SaveMotionClip"]


def chunk_prompt(api: dict, seq_id: str, save_id: str, chunk_size: int, index: int, tag: str) -> dict:
    """The prompt of one chunk: the chunk set, Save Motion Clip writing frame PNGs only."""
    api = copy.deepcopy(api)
    seq = api[seq_id]["inputs"]
    frames = seq["frames"]
    seq["chunk_size"], seq["chunk_index"] = (0, 0) if chunk_count(frames, chunk_size) == 1 else (chunk_size, index)
    save = api[save_id]["inputs"]
    prefix = save.get("filename_prefix") if isinstance(save.get("filename_prefix"), str) else "motion"
    # a new prefix per run and chunk: the host re-runs the save node (never a cached, empty answer)
    save.update(gif=False, webp=False, mp4=False, frame_pngs=True,
                filename_prefix=f"{prefix or 'motion'}_{tag}_chunk{index:03}")
    return api


# ----------------------------------------------------------------------------- clip writer
def clip_writers() -> dict:
    """``write_gif``, ``write_webp``, ``write_mp4`` of Save Motion Clip (core/clip_files.py), loaded
    from that file alone (the pack's package needs the host and torch): the joined clip is written
    by exactly the code the node runs."""
    spec = importlib.util.spec_from_file_location("attention_motion_clip_files", CLIP_FILES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in ("write_gif", "write_webp", "write_mp4")}


def write_clip(frame_paths: list[str], path: str, fmt: str, fps: float, loop: int, quality: int) -> None:
    import numpy as np
    from PIL import Image

    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in frame_paths])
    writers = clip_writers()
    if fmt == "gif":
        writers["write_gif"](path, frames, fps, loop)
    elif fmt == "webp":
        writers["write_webp"](path, frames, fps, loop, quality)
    elif fmt == "mp4":
        writers["write_mp4"](path, frames, fps, quality)
    else:
        raise ValueError(f"no clip writer for format {fmt!r}")


# ----------------------------------------------------------------------------- scheduling
def _chunk_fault(error: RunError) -> bool:
    """True when the chunk itself failed (a node error or a rejection), not the server."""
    return error.code == EXIT_REJECTED or (error.code == EXIT_FAILED and str(error).startswith("execution failed"))


class _Chunk:
    def __init__(self, index: int, api: dict, frames: list[int]):
        self.index, self.api, self.frames = index, api, frames
        self.tried: set[str] = set()  # servers where the chunk failed
        self.error: RunError | None = None


class _Pool:
    """Chunks waiting, running and done; servers alive; the prompts queued on each server."""

    def __init__(self, chunks: list[_Chunk], servers: list[str]):
        self.cond = threading.Condition()
        self.pending = list(chunks)
        self.running: dict[int, str] = {}
        self.done: dict[int, str] = {}  # chunk index -> server that made it
        self.total = len(chunks)
        self.alive = list(servers)
        self.prompts: dict[str, set[str]] = {s: set() for s in servers}
        self.fatal: RunError | None = None
        self.stopping = False

    def finished(self) -> bool:
        return self.stopping or self.fatal is not None or len(self.done) == self.total

    def take(self, server: str) -> _Chunk | None:
        """The lowest pending chunk this server has not failed, waiting while others run."""
        with self.cond:
            while True:
                if self.finished() or server not in self.alive:
                    return None
                for chunk in sorted(self.pending, key=lambda c: c.index):
                    if server not in chunk.tried:
                        self.pending.remove(chunk)
                        self.running[chunk.index] = server
                        return chunk
                if not self.pending and not self.running:
                    return None
                self.cond.wait(0.5)

    def queued(self, server: str, prompt_id: str) -> None:
        with self.cond:
            self.prompts[server].add(prompt_id)

    def ended(self, server: str, prompt_id: str | None) -> None:
        with self.cond:
            self.prompts[server].discard(prompt_id)

    def succeeded(self, chunk: _Chunk, server: str) -> None:
        with self.cond:
            self.running.pop(chunk.index, None)
            self.done.setdefault(chunk.index, server)
            self.cond.notify_all()

    def _check_stranded(self) -> None:
        if not self.alive and self.fatal is None:
            self.fatal = RunError(self._last_server_error.code if self._last_server_error else EXIT_USAGE,
                                  "no server left to run the chunks on"
                                  + (f"; last fault: {self._last_server_error}" if self._last_server_error else ""))
        for chunk in self.pending:
            if chunk.error is not None and not set(self.alive) - chunk.tried and self.fatal is None:
                self.fatal = chunk.error

    _last_server_error: RunError | None = None

    def chunk_failed(self, chunk: _Chunk, server: str, error: RunError) -> None:
        with self.cond:
            self.running.pop(chunk.index, None)
            chunk.tried.add(server)
            chunk.error = error
            self.pending.append(chunk)
            self._check_stranded()
            self.cond.notify_all()

    def server_failed(self, chunk: _Chunk, server: str, error: RunError) -> None:
        with self.cond:
            self.running.pop(chunk.index, None)
            if server in self.alive:
                self.alive.remove(server)
            self._last_server_error = error
            self.pending.append(chunk)
            self._check_stranded()
            self.cond.notify_all()


# ----------------------------------------------------------------------------- run
def _one_line_at_a_time(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` behind a lock: the server threads' lines never interleave."""
    lock = threading.Lock()

    def locked(line: str) -> None:
        with lock:
            log(line)
    return locked


def run_clip(workflow: dict, servers: list[str], chunk_size: int, out_dir: str, fmt: str = "gif",
             sets: list[str] | None = None, timeout: float = 1800.0,
             log: Callable[[str], None] = print) -> dict:
    """Run the clip workflow in chunks over ``servers``; write frames and the joined clip.

    Returns ``{"frames": [paths in clip order], "clip": path or None, "chunks": {index: server},
    "seconds": {index: seconds}}``. Raises :class:`RunError` (exit code and message), and
    KeyboardInterrupt after cancelling the run's prompts on every server.
    """
    log = _one_line_at_a_time(log)
    if chunk_size < 1:
        raise RunError(EXIT_USAGE, f"--chunk-size is {chunk_size}; use a number of frames >= 1")
    if fmt not in FORMATS:
        raise RunError(EXIT_USAGE, f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    servers = [s.rstrip("/") for s in servers]
    if not servers or len(set(servers)) != len(servers):
        raise RunError(EXIT_USAGE, "give one or more distinct --server URLs")
    api, last = None, RunError(EXIT_USAGE, "no server")
    for server in servers:  # a UI workflow needs one server's /object_info
        try:
            api = run_workflow.prepare(workflow, server, list(sets or []))
            break
        except RunError as e:
            if e.code != EXIT_USAGE or "cannot reach" not in str(e):
                raise
            last = e
    if api is None:
        raise last
    seq_id, save_id = find_clip_nodes(api)
    frames = api[seq_id]["inputs"]["frames"]
    save_inputs = api[save_id]["inputs"]
    n = chunk_count(frames, chunk_size)
    tag = uuid.uuid4().hex[:8]
    chunks = [_Chunk(i, chunk_prompt(api, seq_id, save_id, chunk_size, i, tag), chunk_frames(frames, chunk_size, i))
              for i in range(n)]
    labels = {s: f"s{k + 1}" for k, s in enumerate(servers)}
    for s in servers:
        log(f"server {labels[s]}: {s}")
    log(f"{frames} frames in {n} chunk(s) of {min(chunk_size, frames)} on {len(servers)} server(s)")

    frame_dir = os.path.join(out_dir, "frames")
    os.makedirs(frame_dir, exist_ok=True)
    for old in os.listdir(frame_dir):
        if old.startswith("frame_") and old.endswith(".png"):
            os.remove(os.path.join(frame_dir, old))
    work = tempfile.mkdtemp(prefix="run_clip_")
    pool = _Pool(chunks, servers)
    seconds: dict[int, float] = {}

    def worker(server: str) -> None:
        label = labels[server]
        while True:
            chunk = pool.take(server)
            if chunk is None:
                return
            what = f"chunk {chunk.index + 1}/{n} (frames {chunk.frames[0]}-{chunk.frames[-1]})"
            log(f"{what} -> {label}")
            queued: list[str] = []
            t0 = time.monotonic()

            def on_queued(pid, _server=server, _queued=queued):
                _queued.append(pid)
                pool.queued(_server, pid)
                if pool.stopping:  # queued while the run was being cancelled: cancel it too
                    run_workflow.cancel_prompts(_server, {pid})

            def chunk_log(line, _what=what, _label=label):
                if line.startswith(("queued prompt", "  step", "started")):
                    log(f"  [{_label}] {_what}: {line.strip()}")

            try:
                result = run_workflow.run(chunk.api, server, out_dir=os.path.join(work, f"{chunk.index}_{label}"),
                                          timeout=timeout, log=chunk_log, on_queued=on_queued)
                paths = _chunk_frames(result, save_id, chunk, frames, chunk_size)
            except RunError as e:
                for pid in queued:
                    pool.ended(server, pid)
                if pool.stopping:
                    return
                if _chunk_fault(e):
                    log(f"{what} failed on {label}: {str(e).splitlines()[0]}")
                    pool.chunk_failed(chunk, server, e)
                    continue
                log(f"server {label} dropped ({str(e).splitlines()[0]}); {what} queued again")
                run_workflow.cancel_prompts(server, set(queued), timeout=5.0)
                pool.server_failed(chunk, server, e)
                return
            except Exception as e:  # noqa: BLE001 - a bad answer from one server is that server's fault
                log(f"server {label} dropped ({type(e).__name__}: {e}); {what} queued again")
                pool.server_failed(chunk, server, RunError(EXIT_FAILED, f"{label}: {type(e).__name__}: {e}"))
                return
            for pid in queued:
                pool.ended(server, pid)
            with pool.cond:
                if chunk.index in pool.done:
                    continue  # already joined from another server
                keep = paths[1:] if chunk.index > 0 and n > 1 else paths  # the anchor row goes
                try:
                    for frame, src in zip(chunk.frames, keep, strict=True):
                        shutil.copyfile(src, os.path.join(frame_dir, f"frame_{frame:05}.png"))
                except OSError as e:
                    pool.fatal = RunError(EXIT_USAGE, f"cannot write the frames of chunk {chunk.index + 1}: {e}")
                    pool.cond.notify_all()
                    return
            seconds[chunk.index] = time.monotonic() - t0
            pool.succeeded(chunk, server)
            log(f"{what} done on {label} in {seconds[chunk.index]:.1f} s ({len(pool.done)}/{n} chunks)")

    threads = [threading.Thread(target=worker, args=(s,), name=f"run_clip {labels[s]}", daemon=True) for s in servers]
    start = time.monotonic()
    try:
        for t in threads:
            t.start()
        with pool.cond:
            while not pool.finished():
                pool.cond.wait(0.2)
                if not any(t.is_alive() for t in threads) and not pool.finished():
                    pool.fatal = RunError(EXIT_FAILED, "every server worker stopped before the clip was complete")
        if pool.fatal is not None:
            raise pool.fatal
    except BaseException:
        with pool.cond:
            pool.stopping = True
            pending = {s: set(ids) for s, ids in pool.prompts.items()}
            pool.cond.notify_all()
        for server, ids in pending.items():
            run_workflow.cancel_prompts(server, ids)
        for t in threads:
            t.join(5.0)
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    frame_paths = [os.path.join(frame_dir, f"frame_{i:05}.png") for i in range(frames)]
    missing = [p for p in frame_paths if not os.path.isfile(p)]
    if missing:
        raise RunError(EXIT_FAILED, f"{len(missing)} frame(s) missing after the run: {missing[:3]}")
    log(f"{frames} frames from {n} chunk(s) in {time.monotonic() - start:.1f} s -> {frame_dir}")
    clip = None
    if fmt != "png":
        name = os.path.basename(str(save_inputs.get("filename_prefix") or "motion")) or "motion"
        clip = os.path.join(out_dir, f"{name}.{fmt}")
        fps = float(save_inputs["fps"]) if isinstance(save_inputs.get("fps"), (int, float)) else 8.0
        loop = int(save_inputs["loop"]) if isinstance(save_inputs.get("loop"), int) else 0
        quality = int(save_inputs["quality"]) if isinstance(save_inputs.get("quality"), int) else 90
        write_clip(frame_paths, clip, fmt, fps, loop, quality)
        log(f"saved {clip}")
    return {"frames": frame_paths, "clip": clip, "chunks": dict(pool.done), "seconds": seconds}


def _chunk_frames(result: dict, save_id: str, chunk: _Chunk, frames: int, chunk_size: int) -> list[str]:
    """Local paths of the chunk's frame PNGs, in batch order (anchor first after chunk 0)."""
    entries = (result["outputs"].get(save_id) or {}).get("frames") or []
    by_name = {os.path.basename(p): p for p in result["files"]}
    paths = [by_name.get(e.get("filename")) for e in entries if isinstance(e, dict)]
    expected = len(chunk.frames) + (1 if chunk.index > 0 and chunk_count(frames, chunk_size) > 1 else 0)
    if len(paths) != expected or None in paths:
        raise RunError(EXIT_FAILED, f"execution failed: chunk {chunk.index + 1} gave {len(paths)} frame(s), "
                                    f"expected {expected} (does the workflow change the Frame Sequence's rows "
                                    f"before Save Motion Clip?)")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", help="workflow JSON file (UI or API format) with one FrameSequence")
    parser.add_argument("--server", dest="servers", action="append", default=[], metavar="URL",
                        help="ComfyUI URL; repeat for several servers (default http://127.0.0.1:8188)")
    parser.add_argument("--chunk-size", type=int, required=True, help="frames per chunk (one prompt each)")
    parser.add_argument("--out", default="outputs", help="folder for frames/ and the clip (default %(default)s)")
    parser.add_argument("--format", default="gif", choices=FORMATS, help="joined clip format; png = frames only")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="[NODE.]INPUT=VALUE",
                        help="override an input, as run_workflow.py; repeatable")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per chunk (default %(default)s)")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        sys.stdout.write(line + "\n")  # one write per line (print writes the newline separately)
        sys.stdout.flush()

    try:
        workflow = workflow_format.load(args.workflow)
        with run_workflow.sigterm_as_ctrl_c():
            result = run_clip(workflow, args.servers or ["http://127.0.0.1:8188"], args.chunk_size, args.out,
                              args.format, args.sets, args.timeout, log=log)
    except KeyboardInterrupt:
        print("cancelled: the run's queued prompts were deleted and its running ones interrupted on every server",
              file=sys.stderr)
        return EXIT_CANCELLED
    except RunError as e:
        print(str(e), file=sys.stderr)
        return e.code
    except (workflow_format.WorkflowError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{len(result['frames'])} frames in {os.path.join(args.out, 'frames')}"
          + (f", clip {result['clip']}" if result["clip"] else ""))
    return EXIT_OK


__all__ = ["run_clip", "main", "EXIT_CANCELLED", "EXIT_TIMEOUT"]

if __name__ == "__main__":
    sys.exit(main())
