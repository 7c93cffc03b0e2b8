"""Benchmark: what each attention control costs against plain sampling, in one process.

Every case samples the same model, size, sampler, steps and seed; each is timed as the median
of several repeats after a warm-up, with its peak memory (CUDA: max allocated; CPU: peak
resident set size above the case's starting point, sampled every 5 ms). Ratios are taken
against the plain batch of the same size. Usage (from the repo root, after `make bootstrap`):

    make bench    # full-width SD1.5 architecture, the README's table
    .venv/bin/python -m scripts.bench --model full --size 256 --steps 10
    .venv/bin/python -m scripts.bench --model tiny --json bench.json
    .venv/bin/python -m scripts.bench --model tiny --cases "frames variation cross-frame anchor" --frames 16
    .venv/bin/python -m scripts.bench --model ckpt --ckpt /path/to/sd15.safetensors --device cuda
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc), so RSS growth measures this case's working set
    instead of staying at the high-water mark of an earlier case."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a block in MB: CUDA allocator peak, or sampled RSS growth on CPU."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0.0

    def __enter__(self):
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        import psutil

        _release_free_memory()
        proc = psutil.Process()
        self.base = proc.memory_info().rss
        self._max = self.base
        self._stop = threading.Event()

        def watch():
            while not self._stop.is_set():
                self._max = max(self._max, proc.memory_info().rss)
                time.sleep(0.005)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak = (self._max - self.base) / 2**20


def build_model(kind: str, ckpt: str | None):
    """(MODEL, CLIP) for the benchmark."""
    from tiny_host_nodes import models

    if kind == "tiny":
        model, clip, _ = models.build_sd15(0)
        return model, clip
    if kind == "full":
        return models.build_sd15_full(0)
    if kind == "shapes":
        import nodes

        loader = nodes.NODE_CLASS_MAPPINGS.get("ShapesModelLoader")
        if loader is None:
            raise SystemExit("the shapes model loader is not available in this checkout")
        out = getattr(loader(), loader.FUNCTION)()
        return out[0], out[1]
    if kind == "ckpt":
        import comfy.sd

        if not ckpt:
            raise SystemExit("--model ckpt needs --ckpt PATH")
        out = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clip=True)
        return out[0], out[1]
    raise SystemExit(f"unknown model {kind}")


def call_node(node_id: str, **inputs):
    """Call a node by id, filling required inputs it has defaults for."""
    import nodes

    cls = nodes.NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    args = {}
    for name, entry in spec.get("required", {}).items():
        if name in inputs:
            args[name] = inputs[name]
        elif isinstance(entry[0], list):
            args[name] = entry[0][0]
        elif len(entry) > 1 and isinstance(entry[1], dict) and "default" in entry[1]:
            args[name] = entry[1]["default"]
    for name in spec.get("optional", {}):
        if name in inputs:
            args[name] = inputs[name]
    return getattr(cls(), cls.FUNCTION)(**args)


class Bench:
    """Holds the model, the shared settings and the results table."""

    def __init__(self, model, clip, size: int, steps: int, repeats: int, device: str, sampler: str):
        import harness

        self.h = harness
        self.model, self.clip = model, clip
        self.size, self.steps, self.repeats, self.device, self.sampler = size, steps, repeats, device, sampler
        self.prompt = "a red circle and a blue square"
        self.pos = harness.encode(clip, self.prompt)
        self.neg = harness.encode(clip, "")
        self.rows: list[dict] = []

    def latent(self, batch: int) -> dict:
        lat = self.h.empty_latent(self.size, self.size, batch)
        lat["batch_index"] = [0] * batch
        return lat

    def sample(self, model, pos, latent, steps=None):
        return self.h.ksample(model, pos, self.neg, latent, seed=1, steps=steps or self.steps, cfg=5.0,
                              sampler=self.sampler)

    def _timed(self, model, pos, latent) -> tuple[float, float]:
        with PeakMemory(self.device) as mem:
            t0 = time.perf_counter()
            self.sample(model, pos, latent)
            seconds = time.perf_counter() - t0
        return seconds, mem.peak

    def measure_group(self, batch: int, cases: list[tuple[str, object]]) -> None:
        """Time the plain batch of ``batch`` rows and every ``(name, make)`` case of that size.

        ``make() -> (model, positive, latent)`` builds a patched model once (as ComfyUI caches it
        between queue runs); each gets a one-step warm-up. Each repeat then samples the plain
        batch followed by every case (odd repeats in reverse order), so they all see the same
        machine load; a case's ratio is the median of its per-repeat ratios to that repeat's plain run.
        """
        built = [("plain b%d" % batch, self.model, self.pos, self.latent(batch))]
        for name, make in cases:
            try:
                built.append((name, *make()))
            except (KeyError, ImportError) as e:
                print(f"  skip {name}: {e}")
        for _, model, pos, latent in built:
            self.sample(model, pos, latent, steps=1)  # warm-up: loads, patches, caches
        times: dict[str, list[float]] = {name: [] for name, *_ in built}
        peaks: dict[str, list[float]] = {name: [] for name, *_ in built}
        for rep in range(self.repeats):
            # odd repeats run in reverse order, so no case always follows (or leads) the plain run
            for name, model, pos, latent in (built if rep % 2 == 0 else built[::-1]):
                seconds, peak = self._timed(model, pos, latent)
                times[name].append(seconds)
                peaks[name].append(peak)
        base_t, base_m = times[built[0][0]], peaks[built[0][0]]
        for name, *_ in built:
            ratios = [t / b for t, b in zip(times[name], base_t)]
            mem = [m / b for m, b in zip(peaks[name], base_m) if b > 0]
            row = {"case": name, "batch": batch, "seconds": statistics.median(times[name]),
                   "peak_mb": max(peaks[name]), "time_ratio": statistics.median(ratios),
                   "mem_ratio": statistics.median(mem) if mem else None}
            self.rows.append(row)
            print(f"  {name:44s} batch {batch:2d}  {row['seconds']:8.3f} s  x{row['time_ratio']:.3f}  "
                  f"peak {row['peak_mb']:8.1f} MB", flush=True)


def capture_case(b: Bench):
    return lambda: (call_node("AttentionCapture", model=b.model, clip=b.clip, prompt=b.prompt, words="circle, square")[0],
                    b.pos, b.latent(1))


def store_growth(b: Bench) -> dict:
    """Store size (elements) after runs of 10 and 50 steps: must be equal."""
    out = {}
    for steps in (10, 50):
        model, store = call_node("AttentionCapture", model=b.model, clip=b.clip, prompt=b.prompt, words="circle, square")
        b.h.ksample(model, b.pos, b.neg, b.latent(1), seed=1, steps=steps, cfg=5.0)
        out[steps] = sum(a.total.numel() for a in store.accumulators.values())
    return out


def leak_check(b: Bench, runs: int = 10) -> dict:
    """Memory after each of ``runs`` capture runs in a row (RSS MB, or CUDA allocated MB)."""
    import psutil
    import torch

    from attention_motion.core.store import AttentionStore

    series = []
    for _ in range(runs):
        model, store = call_node("AttentionCapture", model=b.model, clip=b.clip, prompt=b.prompt, words="circle")
        b.h.ksample(model, b.pos, b.neg, b.latent(1), seed=1, steps=b.steps, cfg=5.0)
        del model, store
        gc.collect()
        if b.device == "cuda":
            series.append(torch.cuda.memory_allocated() / 2**20)
        else:
            series.append(psutil.Process().memory_info().rss / 2**20)
    alive = sum(isinstance(o, AttentionStore) for o in gc.get_objects())
    return {"memory_mb": series, "stores_alive": alive}


CASES = {}  # name -> (batch, factory(bench) -> make); extended by feature modules below


def register(name: str, batch):
    def deco(fn):
        CASES[name] = (batch, fn)
        return fn
    return deco


register("plain again (noise floor)", 1)(lambda b: lambda: (b.model, b.pos, b.latent(1)))
register("plain again b2 (noise floor)", 2)(lambda b: lambda: (b.model, b.pos, b.latent(2)))
register("capture", 1)(capture_case)


@register("token shift source row", 2)
def shift_case(b: Bench):
    """The default: the node's LATENT (source row + moved row), against plain sampling of 2 rows."""
    def make():
        model, latent = call_node("TokenShift", model=b.model, clip=b.clip, prompt=b.prompt, words="circle", dx=0.25,
                                  width=b.size, height=b.size)
        return model, b.pos, latent
    return make


@register("token shift none", 1)
def shift_own_case(b: Bench):
    return lambda: (call_node("TokenShift", model=b.model, clip=b.clip, prompt=b.prompt, words="circle", dx=0.25,
                              reference="none")[0], b.pos, b.latent(1))


REGIONS = ('[{"prompt": "a red circle", "box": [0.0, 0.2, 0.5, 0.6]},'
           ' {"prompt": "a blue square", "box": [0.5, 0.2, 0.5, 0.6]}]')


@register("region attention 2 boxes + prompt", 1)
def region_case(b: Bench):
    return lambda: (call_node("RegionAttention", model=b.model, clip=b.clip, regions=REGIONS, schedule="linear",
                              weight=1.0, weight_end=0.3, prompt=b.prompt)[0], b.pos, b.latent(1))


def _p2p(b: Bench, mode: str, target: str, blend: bool = False, source_pass: str = "exact"):
    def make():
        model, cond, latent = call_node("P2PReplace", model=b.model, clip=b.clip, source_prompt=b.prompt,
                                        target_prompts=target, mode=mode, width=b.size, height=b.size,
                                        source_pass=source_pass)
        if blend:
            model = call_node("LocalBlend", model=model, clip=b.clip, words="circle, triangle")[0]
        return model, cond, latent
    return make


register("p2p replace", 2)(lambda b: _p2p(b, "replace", "a red triangle and a blue square"))
register("p2p refine", 2)(lambda b: _p2p(b, "refine", "a big red circle and a small blue square"))
register("p2p replace + local blend", 2)(lambda b: _p2p(b, "replace", "a red triangle and a blue square", blend=True))
register("p2p replace batched", 2)(
    lambda b: _p2p(b, "replace", "a red triangle and a blue square", source_pass="batched"))
register("p2p refine batched", 2)(
    lambda b: _p2p(b, "refine", "a big red circle and a small blue square", source_pass="batched"))
register("p2p replace + local blend batched", 2)(
    lambda b: _p2p(b, "replace", "a red triangle and a blue square", blend=True, source_pass="batched"))


@register("style aligned", 3)
def style_case(b: Bench):
    """Rows 1.. attend to twice the keys (theirs and the reference's); against a plain batch of 3."""
    return lambda: call_node("StyleAligned", model=b.model, clip=b.clip, width=b.size, height=b.size,
                             prompts=f"{b.prompt}\na red triangle and a blue square\na green circle")


@register("style aligned + group norm", 3)
def style_norm_case(b: Bench):
    """Style Aligned with share_group_norm: each other row's GroupNorms run once more, jointly with the reference."""
    return lambda: call_node("StyleAligned", model=b.model, clip=b.clip, width=b.size, height=b.size,
                             prompts=f"{b.prompt}\na red triangle and a blue square\na green circle",
                             share_group_norm=True)


@register("style aligned + latent adain", 3)
def style_latent_case(b: Bench):
    """Style Aligned with latent_adain: one AdaIN of the other rows' x0 prediction per step."""
    return lambda: call_node("StyleAligned", model=b.model, clip=b.clip, width=b.size, height=b.size,
                             prompts=f"{b.prompt}\na red triangle and a blue square\na green circle",
                             latent_adain=True)


@register("cross-image attention", 3)
def cross_image_case(b: Bench):
    """The output row's decoder self-attention swapped (no extra attention); against a plain batch of 3."""
    return lambda: call_node("CrossImageAttention", model=b.model, clip=b.clip, structure_prompt=b.prompt,
                             appearance_prompt="a green triangle", width=b.size, height=b.size)


@register("cross-image attention + adain object", 3)
def cross_image_adain_case(b: Bench):
    """With the masked AdaIN: the object words' maps recorded, the output's x0 renormalised each step."""
    return lambda: call_node("CrossImageAttention", model=b.model, clip=b.clip, structure_prompt=b.prompt,
                             appearance_prompt="a green triangle", width=b.size, height=b.size, adain="object",
                             object_words="circle, triangle")


@register("self segmentation", 1)
def self_segmentation_case(b: Bench):
    """The recorder observes one grid's self-attention queries and the words' maps; against plain batch 1."""
    return lambda: (call_node("SelfSegmentation", model=b.model, clip=b.clip, prompt=b.prompt,
                              words="circle, square")[0], b.pos, b.latent(1))


def segmentation_masks_cost(b: Bench, sides=(512, 1024)) -> dict:
    """Seconds of Self Segmentation Masks (K-means, labels, upsampling; with edges 'image' and 'grid')
    after one recorded run of batch 1, at image sides ``sides`` (a random IMAGE: the cost does not
    depend on its pixels), against a plain run of batch 1 at the bench's size and steps."""
    import torch

    t0 = time.perf_counter()
    b.sample(b.model, b.pos, b.latent(1))
    out = {"plain_s": time.perf_counter() - t0}
    model, rec = call_node("SelfSegmentation", model=b.model, clip=b.clip, prompt=b.prompt, words="circle, square")
    b.sample(model, b.pos, b.latent(1))
    t0 = time.perf_counter()
    rec.segment()  # K-means and labels, once; the masks node reuses them
    out["kmeans_s"] = time.perf_counter() - t0
    for side in sides:
        image = torch.rand(1, side, side, 3, generator=torch.Generator().manual_seed(0))
        for edges in ("image", "grid"):
            t0 = time.perf_counter()
            call_node("SelfSegmentationMasks", segments=rec, image=image, edges=edges)
            out[f"{edges} {side}px s"] = time.perf_counter() - t0
    return out


def _frames(schedule: str, cross_frame: str, **extra):
    def factory(b: Bench, n: int):
        def make():
            model, latent = call_node("FrameSequence", model=b.model, clip=b.clip, prompt=b.prompt, words="circle",
                                      frames=n, width=b.size, height=b.size, dx=0.3, schedule=schedule,
                                      cross_frame=cross_frame, **extra)
            return model, b.pos, latent
        return make
    return factory


for _schedule in ("variation", "incremental"):
    for _cross in ("anchor", "off"):
        register(f"frames {_schedule} cross-frame {_cross}", None)(_frames(_schedule, _cross))
# variants measured at the smallest frame count only (their cost scales like the cases above)
register("frames variation cross-frame anchor+previous", "min")(_frames("variation", "anchor+previous"))
register("frames variation anchor + background lock", "min")(_frames("variation", "anchor", background_lock=0.5))

CHUNK_SIZES = (8, 16)  # a long clip in chunks (chunk_size): one chunk's run is the anchor + this many frames


def _chunk(b: Bench, n: int, size: int):
    """The second chunk of an ``n``-frame clip in chunks of ``size`` (rows: the anchor, then ``size``
    frames): the peak of a chunked clip, which runs its chunks one after another or on several servers."""
    def make():
        model, latent = call_node("FrameSequence", model=b.model, clip=b.clip, prompt=b.prompt, words="circle",
                                  frames=n, width=b.size, height=b.size, dx=0.3, schedule="variation",
                                  cross_frame="anchor", chunk_size=size, chunk_index=1)
        return model, b.pos, latent
    return make


register("frames variation cross-frame anchor chunk", "chunks")(_chunk)


def _inverted(b: Bench) -> dict:
    """The bench's own plain generation, inverted (built once per case, as ComfyUI caches it)."""
    picture = {"samples": b.sample(b.model, b.pos, b.latent(1))}
    return call_node("DiffusionInversion", model=b.model, positive=b.pos, latent=picture, sampler_name=b.sampler,
                     steps=b.steps)


@register("inverted picture sampled back", 1)
def inverted_back_case(b: Bench):
    """Diffusion Inversion's MODEL and LATENT: the guide's cost on a plain run of one row."""
    def make():
        model, latent = _inverted(b)
        return model, b.pos, latent
    return make


@register("p2p replace on an inverted picture", 2)
def inverted_p2p_case(b: Bench):
    def make():
        _, latent = _inverted(b)
        model, cond, rows = call_node("P2PReplace", model=b.model, clip=b.clip, source_prompt=b.prompt,
                                      target_prompts="a red triangle and a blue square", mode="replace",
                                      width=b.size, height=b.size, latent=latent)
        return model, cond, rows
    return make


def inversion_cost(b: Bench) -> dict:
    """Seconds of the Diffusion Inversion node against a plain run of the same steps at batch 1
    (median of the repeats, alternating order)."""
    picture = {"samples": b.sample(b.model, b.pos, b.latent(1))}
    ratios, inv_s, plain_s = [], [], []
    for rep in range(max(b.repeats, 1)):
        order = ("plain", "inversion") if rep % 2 == 0 else ("inversion", "plain")
        took = {}
        for what in order:
            t0 = time.perf_counter()
            if what == "plain":
                b.sample(b.model, b.pos, b.latent(1))
            else:
                call_node("DiffusionInversion", model=b.model, positive=b.pos, latent=picture,
                          sampler_name=b.sampler, steps=b.steps)
            took[what] = time.perf_counter() - t0
        inv_s.append(took["inversion"])
        plain_s.append(took["plain"])
        ratios.append(took["inversion"] / took["plain"])
    return {"inversion_s": statistics.median(inv_s), "plain_s": statistics.median(plain_s),
            "ratio": statistics.median(ratios)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="full", choices=["tiny", "shapes", "full", "ckpt"])
    ap.add_argument("--ckpt", default=None, help="checkpoint path for --model ckpt")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size / 8)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cases", default="all", help="comma-separated case names, or 'all'")
    ap.add_argument("--frames", default="8,16", help="frame counts for the clip cases")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--no-checks", action="store_true", help="skip the store-growth and leak checks")
    args = ap.parse_args(argv)

    import harness

    harness.setup_host()
    if args.device == "cuda":
        import comfy.cli_args

        comfy.cli_args.args.cpu = False
    harness.init_host(output_dir=tempfile.mkdtemp(prefix="bench_"))
    import torch

    torch.manual_seed(0)
    with torch.inference_mode():
        model, clip = build_model(args.model, args.ckpt)
    b = Bench(model, clip, args.size, args.steps, args.repeats, args.device, args.sampler)
    frames = sorted(int(f) for f in args.frames.split(",") if f.strip())
    wanted = None if args.cases == "all" else {c.strip() for c in args.cases.split(",")}
    print(f"model {args.model}, {args.size}x{args.size}, {args.steps} steps, {args.sampler}, "
          f"{args.repeats} repeats, {args.device}, torch threads {torch.get_num_threads()}")
    groups: dict[int, list] = {}
    for name, (batch, factory) in CASES.items():
        for n, make, bsz in _expand(name, batch, factory, b, frames):
            if wanted is None or name in wanted or n in wanted:
                groups.setdefault(bsz, []).append((n, make))
    for batch in sorted(groups):
        b.measure_group(batch, groups[batch])
    result = {"settings": vars(args), "rows": b.rows}
    if wanted is None or "inversion" in wanted:
        result["inversion"] = inversion_cost(b)
        print("inversion vs plain sampling, same steps, batch 1:", result["inversion"])
    if wanted is None or "self segmentation" in wanted:
        result["segmentation_masks"] = segmentation_masks_cost(b)
        print("self segmentation masks after sampling (s):",
              {k: round(v, 3) for k, v in result["segmentation_masks"].items()})
    if not args.no_checks:
        result["store_elements_by_steps"] = store_growth(b)
        result["leak_check"] = leak_check(b)
        print("store elements at 10 and 50 steps:", result["store_elements_by_steps"])
        print("memory after each of 10 capture runs (MB):",
              [round(x, 1) for x in result["leak_check"]["memory_mb"]],
              "stores alive:", result["leak_check"]["stores_alive"])
    print()
    print(markdown_table(b.rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _expand(name, batch, factory, b, frames):
    """A case may depend on the frame count (batch None: one row per count; "min": the smallest;
    "chunks": one row per count and chunk size smaller than it, batch = the chunk with its anchor)."""
    if batch == "chunks":
        for n in frames:
            for size in (s for s in CHUNK_SIZES if s < n):
                yield f"{name} of {size}, clip {n}", factory(b, n, size), size + 1
    elif batch in (None, "min"):
        for n in (frames if batch is None else frames[:1]):
            yield f"{name} {n}", factory(b, n), n
    else:
        yield name, factory(b), batch


def markdown_table(rows: list[dict]) -> str:
    lines = ["| case | batch | median s | x plain batch | peak MB | x plain peak |", "|---|---|---|---|---|---|"]
    for r in rows:
        mr = r.get("mem_ratio")
        lines.append(f"| {r['case']} | {r['batch']} | {r['seconds']:.3f} | {r.get('time_ratio', 1.0):.3f} | "
                     f"{r['peak_mb']:.1f} | {'' if mr is None else f'{mr:.2f}'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
