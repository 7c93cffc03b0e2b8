"""Cost of FrameSequence's schedules and temporal consistency, as ratios to a plain batch.

Every case samples N frames as one batch (same tiny model, size, steps, sampler and seed); the
time is the median of several repeats after a warm-up. The reference is the unpatched model
sampling a plain batch of the same N rows. Usage (from the repo root):

    python -m scripts.bench_motion --frames 8 --size 128 --steps 6 --repeats 3

It needs the host (COMFYUI_PATH or .host/host_path), like the tests.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

PROMPT = "a red apple on a wooden table"

CASES = [
    ("variation, consistency off", dict(schedule="variation", cross_frame="off")),
    ("incremental, consistency off", dict(schedule="incremental", cross_frame="off")),
    ("variation + cross-frame anchor (default)", dict(schedule="variation")),
    ("incremental + cross-frame anchor", dict(schedule="incremental")),
    ("variation + anchor+previous", dict(schedule="variation", cross_frame="anchor+previous")),
    ("variation + anchor + background lock 0.5", dict(schedule="variation", background_lock=0.5)),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import harness

    harness.setup_host()
    harness.init_host()
    import torch
    from tiny_host_nodes import get_models

    from attention_motion.nodes.motion import FrameSequence

    model, clip, _ = get_models("sd15", 0)
    pos, neg = harness.encode(clip, PROMPT), harness.encode(clip, "")

    n, s = args.frames, args.size
    cases = [("plain batch (unpatched)", model, {"samples": torch.zeros(n, 4, s // 8, s // 8), "batch_index": [0] * n})]
    for name, kw in CASES:
        m, latent = FrameSequence().build(model, clip, PROMPT, "apple", n, s, s, 0.3, 0.0, **kw)
        cases.append((name, m, latent))
    times = {name: [] for name, _, _ in cases}
    for name, m, latent in cases:  # warm-up
        harness.ksample(m, pos, neg, latent, seed=3, steps=args.steps)
    for _ in range(args.repeats):  # round-robin, so a change in machine load hits every case alike
        for name, m, latent in cases:
            t = time.perf_counter()
            harness.ksample(m, pos, neg, latent, seed=3, steps=args.steps)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times[cases[0][0]])
    print(f"{n} frames, {s}x{s}, {args.steps} steps, median of {args.repeats} (round-robin); "
          f"torch threads {torch.get_num_threads()}")
    for name, _, _ in cases:
        t = statistics.median(times[name])
        print(f"{name:45s} {t:8.3f} s   {t / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
