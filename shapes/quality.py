"""Measure the shapes model from pixels: objects (colour + shape) and attention centroids.

    python -m shapes.quality [--n 4] [--pairs 132] [--steps 20] [--cfg 5] [--json out.json]

For every single-object caption ("a red circle", 12 of them) and ``--n`` seeds, and for every
two-object caption (132, one seed each, in a seeded random order; ``--pairs N`` takes the first
N), it samples a 128x128 image with ComfyUI's KSampler (euler, normal schedule), reads the
objects back from the pixels (``read_objects``: the palette is known, so colour masks,
connected components and a fill-ratio shape test suffice) and reports how often the caption's
objects appear with the right colour and shape, with a 95% Wilson interval for each share of
captions (24 of the 132 pair captions leave about +-18 points, all of them about +-8).  For the
single-object captions it also records the shape word's cross-attention with the pack's
AttentionCapture and reports the distance, in cells of the 16x16 latent grid, between the
map's centroid and the object's pixel centroid.

``read_objects``, ``classify`` and ``generate`` are reused by the semantic tests.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from . import data

CHROMA_MIN = 0.30      # palette colours have chroma >= 0.56; the background ~0.03
COLOUR_DIST = 0.35     # max RGB distance of a pixel to its palette colour
MIN_AREA = 80          # pixels; the smallest drawn shape covers ~420
SQUARE_FILL = 0.88     # area / bounding-box area: square 1.0, circle 0.785, triangle 0.5
TRIANGLE_FILL = 0.66
PACK_NAME = "attention_motion"


# ----------------------------------------------------------------------------- pixels -> objects

def colour_labels(img: torch.Tensor) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> [H, W] long: palette index (0..3) or -1 for background."""
    chroma = img.amax(0) - img.amin(0)
    pal = torch.tensor([data.COLOURS[c] for c in data.COLOUR_NAMES])  # [K, 3]
    d = (img.permute(1, 2, 0).unsqueeze(2) - pal.view(1, 1, -1, 3)).norm(dim=-1)  # [H, W, K]
    dist, idx = d.min(-1)
    idx[(chroma < CHROMA_MIN) | (dist > COLOUR_DIST)] = -1
    return idx


def components(mask: torch.Tensor) -> torch.Tensor:
    """Connected components (8-neighbour) of a bool [H, W] mask: [H, W] long labels, 0 = none."""
    h, w = mask.shape
    lab = torch.where(mask, torch.arange(1, h * w + 1, dtype=torch.float32).view(h, w), torch.zeros(h, w))
    for _ in range(h * w):
        new = F.max_pool2d(lab[None, None], 3, 1, 1)[0, 0] * mask
        if torch.equal(new, lab):
            break
        lab = new
    uniq = torch.unique(lab[lab > 0])
    out = torch.zeros(h, w, dtype=torch.long)
    for i, u in enumerate(uniq.tolist()):
        out[lab == u] = i + 1
    return out


def classify(mask: torch.Tensor) -> str:
    """Shape of a bool [H, W] component mask from its fill ratio (area / bounding box)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    bw = float(xs.max() - xs.min() + 1)
    bh = float(ys.max() - ys.min() + 1)
    fill = float(mask.sum()) / (bw * bh)
    if fill >= SQUARE_FILL:
        return "square"
    if fill >= TRIANGLE_FILL:
        return "circle"
    return "triangle"


def read_objects(img: torch.Tensor, min_area: int = MIN_AREA) -> List[Dict]:
    """Objects in [3, H, W] pixels: dicts with colour, shape, cx, cy (pixels), area, mask."""
    labels = colour_labels(img)
    out = []
    for k, name in enumerate(data.COLOUR_NAMES):
        comp = components(labels == k)
        for c in range(1, int(comp.max()) + 1):
            m = comp == c
            area = int(m.sum())
            if area < min_area:
                continue
            ys, xs = torch.nonzero(m, as_tuple=True)
            out.append({"colour": name, "shape": classify(m), "cx": float(xs.float().mean()) + 0.5,
                        "cy": float(ys.float().mean()) + 0.5, "area": area, "mask": m})
    return sorted(out, key=lambda o: -o["area"])


def parse_caption(caption: str) -> List[tuple]:
    """"a red circle and a blue square" -> [("red", "circle"), ("blue", "square")]."""
    objs = []
    for part in caption.split(" and "):
        words = part.split()
        objs.append((words[-2], words[-1]))
    return objs


def score(caption: str, objects: List[Dict]) -> Dict:
    """Per-caption result: each expected object found (colour and shape), colour found, extras."""
    want = parse_caption(caption)
    found = [any(o["colour"] == c and o["shape"] == s for o in objects) for c, s in want]
    colour = [any(o["colour"] == c for o in objects) for c, _ in want]
    exact = all(found) and len(objects) == len(want)
    return {"found": found, "colour": colour, "all": all(found), "exact": exact, "n_objects": len(objects)}


# ----------------------------------------------------------------------------- sampling

def import_pack():
    """The repo imported as package ``attention_motion`` (for AttentionCapture)."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(PACK_NAME, os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = mod
    spec.loader.exec_module(mod)
    return mod


def encode(clip, text: str):
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def ksample(model, positive, negative, seed: int, steps: int = 20, cfg: float = 5.0,
            batch: int = 1, latent: Optional[torch.Tensor] = None, sampler: str = "euler",
            scheduler: str = "normal", denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's own KSampler path (nodes.common_ksampler) -> latent [B, 4, 16, 16]."""
    import nodes as host_nodes
    if latent is None:
        latent = torch.zeros(batch, 4, data.SIZE // 8, data.SIZE // 8)
    out = host_nodes.common_ksampler(model, seed, steps, cfg, sampler, scheduler, positive, negative,
                                     {"samples": latent}, denoise=denoise)
    return out[0]["samples"]


def decode(vae, latent: torch.Tensor) -> torch.Tensor:
    """[B, 4, h, w] -> [B, 3, H, W] pixels in [0, 1]."""
    return vae.decode(latent).movedim(-1, 1).clamp(0, 1)


def generate(model, clip, vae, prompt: str, seed: int, steps: int = 20, cfg: float = 5.0):
    with torch.inference_mode():
        lat = ksample(model, encode(clip, prompt), encode(clip, ""), seed, steps, cfg)
        return decode(vae, lat)[0]


def attention_centroid(model, clip, vae, prompt: str, word: str, seed: int, steps: int = 20, cfg: float = 5.0):
    """(pixels [3, H, W], centroid (x, y) in cells of the finest attention grid, grid size)."""
    pack = import_pack()
    from attention_motion.core.maps import centroid
    capture = pack.NODE_CLASS_MAPPINGS["AttentionCapture"]()
    with torch.inference_mode():
        m2, store = capture.capture(model, clip, prompt, word, 0.0, 1.0, "all")
        lat = ksample(m2, encode(clip, prompt), encode(clip, ""), seed, steps, cfg)
        img = decode(vae, lat)[0]
        maps = store.maps()[0, 0]  # row 0, the one word
    h, w = maps.shape
    c = centroid(maps)
    return img, (float(c[0]) * w, float(c[1]) * h), (h, w)


# ----------------------------------------------------------------------------- report

def wilson(k: int, n: int, z: float = 1.96) -> List[float]:
    """95% Wilson score interval [low, high] for ``k`` successes in ``n`` trials ([0, 1] if n is 0)."""
    if n <= 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return [max(0.0, centre - half), min(1.0, centre + half)]


def same_colour(caption: str) -> bool:
    """Whether a two-object caption's objects share their colour."""
    (a, _), (b, _) = parse_caption(caption)
    return a == b


PAIR_CAPTIONS = sum(" and " in c for c in data.all_captions())  # 132


def evaluate(model, clip, vae, n: int = 4, pairs: int = PAIR_CAPTIONS, steps: int = 20, cfg: float = 5.0,
             seed: int = 1000, save_dir: Optional[str] = None) -> Dict:
    """Sample and read back ``n`` seeds of each single-object caption and the first ``pairs``
    two-object captions of a seeded random order (each once); the report (see module doc)."""
    singles = [c for c in data.all_captions() if " and " not in c]
    gen = torch.Generator().manual_seed(seed)
    pair_caps = [c for c in data.all_captions() if " and " in c]
    pair_caps = [pair_caps[int(i)] for i in torch.randperm(len(pair_caps), generator=gen)[:pairs]]
    rows, dists, imgs = [], [], []
    for i, cap in enumerate(singles):
        for j in range(n):
            s = seed + 100 * i + j
            word = cap.split()[-1]
            img, (ax, ay), (gh, gw) = attention_centroid(model, clip, vae, cap, word, s, steps, cfg)
            objs = read_objects(img)
            r = score(cap, objs)
            r.update(caption=cap, seed=s)
            match = [o for o in objs if o["colour"] == cap.split()[1]]
            if match:
                o = match[0]
                d = ((ax - o["cx"] * gw / img.shape[-1]) ** 2 + (ay - o["cy"] * gh / img.shape[-2]) ** 2) ** 0.5
                r["attn_dist_cells"] = d
                dists.append(d)
            rows.append(r)
            imgs.append(img)
    for k, cap in enumerate(pair_caps):
        s = seed + 5000 + k
        img = generate(model, clip, vae, cap, s, steps, cfg)
        r = score(cap, read_objects(img))
        r.update(caption=cap, seed=s)
        rows.append(r)
        imgs.append(img)
    single = [r for r in rows if " and " not in r["caption"]]
    double = [r for r in rows if " and " in r["caption"]]
    same, different = [], []
    for r in double:
        (same if same_colour(r["caption"]) else different).append(r)

    def count(rs, key):
        return sum(bool(r[key]) for r in rs)

    def frac(rs, key):
        return count(rs, key) / max(1, len(rs))

    def interval(rs, key):
        return wilson(count(rs, key), len(rs))

    def obj_frac(rs, key):
        v = [x for r in rs for x in r[key]]
        return sum(v) / max(1, len(v))

    dists_t = torch.tensor(dists) if dists else torch.zeros(0)
    report = {
        "steps": steps, "cfg": cfg, "sampler": "euler/normal",
        "single": {"n": len(single), "correct": frac(single, "all"), "exact": frac(single, "exact"),
                   "exact_interval": interval(single, "exact"),
                   "colour": obj_frac(single, "colour"),
                   "correct_by_shape": {shape: frac([r for r in single if r["caption"].endswith(" " + shape)], "all")
                                        for shape in data.SHAPES}},
        "pair": {"n": len(double), "both_correct": frac(double, "all"), "both_interval": interval(double, "all"),
                 "objects_correct": obj_frac(double, "found"), "colour": obj_frac(double, "colour"),
                 "same_colour": {"n": len(same), "both_correct": frac(same, "all")},
                 "different_colour": {"n": len(different), "both_correct": frac(different, "all")}},
        "attention": {"n": len(dists), "grid": 16, "mean_dist_cells": float(dists_t.mean()) if len(dists) else None,
                      "median_dist_cells": float(dists_t.median()) if len(dists) else None,
                      "within_2_cells": float((dists_t <= 2).float().mean()) if len(dists) else None},
        "rows": rows,
    }
    if save_dir:
        import torchvision.utils as vu
        os.makedirs(save_dir, exist_ok=True)
        vu.save_image(torch.stack(imgs), os.path.join(save_dir, "quality_samples.png"), nrow=max(1, n * 2))
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="seeds per single-object caption")
    ap.add_argument("--pairs", type=int, default=PAIR_CAPTIONS,
                    help="two-object captions, the first N of a seeded random order (default: all)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--weights", default=None, help="weights directory (default models/shapes)")
    ap.add_argument("--comfyui", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the full report here")
    ap.add_argument("--images", default=None, help="write a sample grid PNG into this directory")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n is {}; give at least 1 seed per single-object caption".format(args.n))
    if not 0 <= args.pairs <= PAIR_CAPTIONS:
        ap.error("--pairs is {}; give 0 to {} two-object captions".format(args.pairs, PAIR_CAPTIONS))
    if args.steps < 1 or not (0.0 < args.cfg < float("inf")):
        ap.error("--steps is {} and --cfg {}; give steps >= 1 and a finite cfg > 0".format(args.steps, args.cfg))
    torch.set_num_threads(args.threads)
    from . import hostenv
    hostenv.setup(args.comfyui)
    from . import model as M
    t0 = time.time()
    model, clip, vae = M.build(args.weights)
    rep = evaluate(model, clip, vae, args.n, args.pairs, args.steps, args.cfg, args.seed, args.images)
    rep["seconds"] = time.time() - t0
    summary = {k: v for k, v in rep.items() if k != "rows"}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1)


if __name__ == "__main__":
    main()
