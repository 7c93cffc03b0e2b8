"""Cost of a P2P run against a plain batch of the same size, on the tiny SD1.5 test model (CPU).

    COMFYUI_PATH=/path/to/ComfyUI python scripts/p2p_cost.py [--steps 20] [--size 256] [--repeats 5]

Prints the median wall time of each configuration and the ratio to the plain batch of 2.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import harness

    harness.setup_host()
    harness.install_pack_package()
    import torch
    from tiny_host_nodes import get_models

    from attention_motion.nodes.p2p import P2PReplace

    model, clip, _vae = get_models("sd15", 0)
    src, tgt = "a red cat sitting on a car", "a red dog sitting on a car"
    neg = harness.encode(clip, "")
    plain_lat = harness.empty_latent(args.size, args.size, 2)
    plain_lat["batch_index"] = [0, 0]
    configs = {"plain batch of 2": (model, harness.encode(clip, src), plain_lat)}
    with torch.inference_mode():
        for name, cross, self_r in (("P2P replace (0.8, 0.4)", 0.8, 0.4), ("P2P replace (1.0, 1.0)", 1.0, 1.0)):
            m, pos, lat = P2PReplace().build(model, clip, src, tgt, "replace", cross, "", self_r, "",
                                             args.size, args.size)
            configs[name] = (m, pos, lat)
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(args.repeats):  # interleaved, so load changes hit every configuration alike
        for name, (m, pos, lat) in configs.items():
            start = time.perf_counter()
            harness.ksample(m, pos, neg, lat, seed=0, steps=args.steps, cfg=5.0)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain batch of 2"])
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:28s} median {med:7.3f} s   ratio {med / base:5.2f}")


if __name__ == "__main__":
    main()
