"""Semantic probe of CrossImageAttention on the shapes model (used by tests/test_appearance.py).

Samples the node's three rows (structure, appearance, output) with ComfyUI's KSampler (euler,
normal), reads the objects back from pixels (``shapes.quality.read_objects``) and returns plain
numbers: where the structure row's object is, which colour the appearance row's object has, and
the output row's largest object (colour, shape, centroid offset from the structure's object).

    python -m shapes.probes_appearance     # prints the figures the tests' tolerances came from
"""
from __future__ import annotations

import json
from typing import Dict, Optional

import torch

from . import quality as q

STEPS = 16
CFG = 5.0
SIZE = 128


def _largest(img: torch.Tensor, colour: Optional[str] = None) -> Optional[Dict]:
    objs = q.read_objects(img)
    if colour is not None:
        objs = [o for o in objs if o["colour"] == colour]
    return objs[0] if objs else None


def _background(img: torch.Tensor) -> torch.Tensor:
    """Mean RGB of the pixels more than 6 px from every object of ``img`` ([3, H, W])."""
    from .probes import background_mask
    masks = [o["mask"] for o in q.read_objects(img)]
    keep = background_mask(masks) if masks else torch.ones(img.shape[-2:], dtype=torch.bool)
    return img[:, keep].mean(1)


def _placement(mask: torch.Tensor, target: torch.Tensor) -> Dict[str, float]:
    """``offset`` (worst axis, fraction of the side) of ``mask``'s centroid from ``target``'s, and their ``iou``."""
    def centre(m):
        ys, xs = torch.nonzero(m, as_tuple=True)
        return float(xs.float().mean()), float(ys.float().mean())
    (x0, y0), (x1, y1) = centre(mask), centre(target)
    return {"offset": max(abs(x0 - x1), abs(y0 - y1)) / mask.shape[-1],
            "iou": float((mask & target).sum()) / float((mask | target).sum())}


def cross_image(model, clip, vae, structure: str = "a red circle", appearance: str = "a blue square",
                output: str = "", seed: int = 0, contrast: float = 1.67, start: float = 0.1, end: float = 0.9,
                resolutions: str = "1/1, 1/2", blocks: str = "decoder", steps: int = STEPS, cfg: float = CFG,
                adain: str = "off", object_words: str = "", adain_start: float = 0.2) -> Dict:
    """One run of the node; figures of its three rows (centroids as fractions of the image side).

    ``offset``: the output object's centroid minus the structure object's, worst axis;
    ``background``: mean RGB of each row's background; ``background_transfer``: how far the output's
    background colour went from the structure's towards the appearance's (0 = not at all, 1 = all the way);
    ``output_colour``: colour of the output row's largest object; ``structure_colour_px``,
    ``appearance_colour_px``: pixels of the structure / appearance prompt's colour in the output;
    ``placed``: the output object that overlaps the structure's object most (its ``colour``,
    ``shape``, ``offset`` of its centroid from the structure object's, worst axis, and ``iou``;
    ``union_offset`` and ``union_iou``: the same for the union of every output object, of any
    colour, that overlaps the structure's object, the place measured blind to colour, since AdaIN
    can recolour part of an object and so split it into two components), None when no output
    object overlaps it. ``object_words`` default: the two prompts' last words.
    """
    import importlib

    import nodes as host_nodes

    # the node from its module (run as `python -m shapes...` the pack is imported by quality.import_pack)
    CrossImageAttention = importlib.import_module(q.PACK_NAME + ".nodes.appearance").CrossImageAttention
    s_colour, a_colour = structure.split()[1], appearance.split()[1]
    with torch.inference_mode():
        words = object_words or f"{structure.split()[-1]}, {appearance.split()[-1]}"
        m, pos, lat = CrossImageAttention().build(model, clip, structure, appearance, contrast, start, end,
                                                  resolutions, blocks, SIZE, SIZE, output_prompt=output, adain=adain,
                                                  object_words=words, adain_start=adain_start)
        out = host_nodes.common_ksampler(m, seed, steps, cfg, "euler", "normal", pos, q.encode(clip, ""), lat)[0]
        imgs = q.decode(vae, out["samples"])
    out_objects = q.read_objects(imgs[2])  # largest first
    o_s, o_a = _largest(imgs[0], s_colour), _largest(imgs[1], a_colour)
    o_out = out_objects[0] if out_objects else None
    res: Dict = {"seed": seed, "structure_found": o_s is not None, "appearance_found": o_a is not None,
                 "output_found": o_out is not None, "images": imgs}
    labels = q.colour_labels(imgs[2])
    names = list(q.data.COLOUR_NAMES)
    s_px, a_px = int((labels == names.index(s_colour)).sum()), int((labels == names.index(a_colour)).sum())
    res.update(structure_colour_px=s_px, appearance_colour_px=a_px)
    if o_out is not None:
        res.update(output_colour=o_out["colour"], output_shape=o_out["shape"])
    if o_s is not None and o_out is not None:
        res.update(**_placement(o_out["mask"], o_s["mask"]), structure_shape=o_s["shape"])
    placed = None
    if o_s is not None:
        touching = [o for o in out_objects if bool((o["mask"] & o_s["mask"]).any())]
        if touching:
            best = max(touching, key=lambda o: int((o["mask"] & o_s["mask"]).sum()))
            covered = torch.stack([o["mask"] for o in touching]).any(0)
            placed = {"colour": best["colour"], "shape": best["shape"],
                      **_placement(best["mask"], o_s["mask"]),
                      **{"union_" + k: v for k, v in _placement(covered, o_s["mask"]).items()}}
    res["placed"] = placed
    bg = [_background(im) for im in imgs]
    res.update(background=[[round(float(c), 4) for c in b] for b in bg])
    gap = float((bg[0] - bg[1]).norm())
    if gap > 0:  # fraction of the way from the structure's background colour to the appearance's
        res["background_transfer"] = 1.0 - float((bg[2] - bg[1]).norm()) / gap
    if o_a is not None and o_out is not None:
        res["appearance_offset"] = max(abs(o_out["cx"] - o_a["cx"]), abs(o_out["cy"] - o_a["cy"])) / imgs.shape[-1]
    return res


def main(argv=None) -> None:
    """Print the probe's figures over a few seeds and settings."""
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--structure", default="a red circle")
    ap.add_argument("--appearance", default="a blue square")
    ap.add_argument("--output", default="")
    ap.add_argument("--contrast", type=float, nargs="*", default=[1.0, 1.67])
    ap.add_argument("--start", type=float, default=0.1)
    ap.add_argument("--end", type=float, nargs="*", default=[0.9])
    ap.add_argument("--blocks", default="decoder")
    ap.add_argument("--adain", nargs="*", default=["off"], help="AdaIN modes to run (e.g. off object)")
    ap.add_argument("--object-words", default="")
    ap.add_argument("--adain-start", type=float, default=0.2)
    args = ap.parse_args(argv)
    from . import hostenv
    hostenv.setup()
    torch.set_num_threads(1)
    from . import model as M
    q.import_pack()
    model, clip, vae = M.build()
    for adain in args.adain:
        for end in args.end:
            for contrast in args.contrast:
                for seed in range(args.seeds):
                    r = cross_image(model, clip, vae, args.structure, args.appearance, args.output, seed, contrast,
                                    args.start, end, blocks=args.blocks, adain=adain, object_words=args.object_words,
                                    adain_start=args.adain_start)
                    r.pop("images")
                    print(json.dumps(dict(r, contrast=contrast, end=end, adain=adain), default=str), flush=True)


if __name__ == "__main__":
    main()
