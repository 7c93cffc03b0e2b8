"""Semantic probes of the pack's nodes on the shapes model (used by tests/test_semantic.py).

Each probe samples with ComfyUI's KSampler (euler, normal), reads objects back from pixels
(``shapes.quality.read_objects``) and returns plain numbers:

* ``token_shift``: object centroid moved by TokenShift, as a fraction of the width, vs requested.
* ``p2p_colour``: P2P word swap of a colour: target colour found, IoU of source/target masks.
* ``frame_sequence``: per-frame object centroids and background PSNR against frame 0.
* ``local_blend``: background PSNR between the source and the blended edit (when the node exists).

    python -m shapes.probes     # prints every probe's figures (the tests' measured values)
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional

import torch

from . import quality as q

STEPS = 16
CFG = 5.0


def _node(pack, name):
    cls = pack.NODE_CLASS_MAPPINGS.get(name)
    return None if cls is None else cls()


def _call(node, **kw):
    return getattr(node, node.FUNCTION)(**kw)


def _main_object(img, colour: Optional[str] = None) -> Optional[Dict]:
    objs = q.read_objects(img)
    if colour is not None:
        objs = [o for o in objs if o["colour"] == colour]
    return objs[0] if objs else None


def psnr(a: torch.Tensor, b: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    d = (a - b) ** 2
    if mask is not None:
        d = d[:, mask]
    mse = float(d.mean())
    return 99.0 if mse <= 1e-10 else -10 * math.log10(mse)


def background_mask(objs_masks: List[torch.Tensor], dilate: int = 6) -> torch.Tensor:
    """Pixels farther than ``dilate`` px from every object mask."""
    m = torch.zeros_like(objs_masks[0], dtype=torch.float32)
    for o in objs_masks:
        m = torch.maximum(m, o.float())
    m = torch.nn.functional.max_pool2d(m[None, None], 2 * dilate + 1, 1, dilate)[0, 0]
    return m == 0


def clear_move(start: tuple, other: tuple, step: float, margin: Optional[float] = None) -> tuple:
    """A move of ``step`` along one axis, either way, for an object at ``start`` (fractions of the
    size) that ends farthest from ``other`` without passing the edge rule's ``margin``: a test
    move that keeps two objects apart, so the one left alone is not covered by the moved one.
    Of the moves that fit, the farthest from ``other`` (ties: the first of +x, -x, +y, -y)."""
    from attention_motion.core.shift import EDGE_MARGIN
    margin = EDGE_MARGIN if margin is None else margin
    best, best_d = (0.0, 0.0), -1.0
    for mx, my in ((step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)):
        x, y = start[0] + mx, start[1] + my
        if not (margin <= x <= 1 - margin and margin <= y <= 1 - margin):
            continue
        d = math.hypot(x - other[0], y - other[1])
        if d > best_d + 1e-9:
            best, best_d = (mx, my), d
    return best


def token_shift(pack, model, clip, vae, prompt="a red circle", word="red circle", seed=0, dx=0.25, dy=0.0,
                end=0.5, steps=STEPS, cfg=CFG, reference="source row", bind="noun phrase", away=False,
                other: Optional[str] = None) -> Dict:
    """Shift toward the image centre by |dx|, |dy| (away from it with ``away``); returns requested and
    measured shift (fractions). With ``other`` (a colour), also how the object of that colour, which
    is not moved, fared (:func:`other_object_kept`), and the move is ``dx`` along the axis and way
    that ends farthest from that object (:func:`clear_move`; ``dy`` and ``away`` are not used).

    The measured shift is the moved image's object centroid minus the plain generation's (the
    plain KSampler run of the prompt and seed); ``source_diff`` is how far TokenShift's source
    row is from that plain image (max abs pixel difference).
    """
    colour = prompt.split()[1]
    import nodes as host_nodes
    with torch.inference_mode():
        neg = q.encode(clip, "")
        pos = q.encode(clip, prompt)
        base = q.decode(vae, q.ksample(model, pos, neg, seed, steps, cfg))[0]
        o0 = _main_object(base, colour)
        if o0 is None:
            return {"seed": seed, "ok": False}
        sign = -1 if away else 1
        sdx = sign * (dx if o0["cx"] < base.shape[-1] / 2 else -dx)
        sdy = sign * (dy if o0["cy"] < base.shape[-2] / 2 else -dy)
        if other is not None:
            o2 = _main_object(base, other)
            if o2 is None:
                return {"seed": seed, "ok": False, "other_found": False}
            w, h = base.shape[-1], base.shape[-2]
            sdx, sdy = clear_move((o0["cx"] / w, o0["cy"] / h), (o2["cx"] / w, o2["cy"] / h), dx)
        m2, lat = _call(_node(pack, "TokenShift"), model=model, clip=clip, prompt=prompt, words=word, dx=sdx, dy=sdy,
                        start=0.0, end=end, resolutions="all", reference=reference, bind=bind, width=base.shape[-1],
                        height=base.shape[-2], batch_size=1)
        out = host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", pos, neg, lat)[0]["samples"]
        imgs = q.decode(vae, out)
    moved = imgs[-1]
    res = {"seed": seed, "requested": sdx, "requested_dy": sdy, "rows": int(imgs.shape[0]), "start": (
               o0["cx"] / base.shape[-1], o0["cy"] / base.shape[-2]),
           "source_diff": float((imgs[0] - base).abs().max()) if imgs.shape[0] > 1 else None,
           "plain_objects": len(q.read_objects(base))}
    o1 = _main_object(moved, colour)
    if o1 is None:
        return dict(res, ok=False)
    got = (o1["cx"] - o0["cx"]) / base.shape[-1]
    goty = (o1["cy"] - o0["cy"]) / base.shape[-2]
    bg = background_mask([o0["mask"], o1["mask"]])
    # where the edge rule lets it go, taking the object's pixel centroid for its map's centre
    from attention_motion.core.shift import clamp_offset
    ex, ey = clamp_offset(torch.tensor(res["start"]), torch.tensor([sdx, sdy])).tolist()
    return dict(res, ok=True, measured=got, measured_dy=goty, error=max(abs(got - sdx), abs(goty - sdy)),
                expected=ex, expected_dy=ey, edge_error=max(abs(got - ex), abs(goty - ey)),
                shape_kept=o1["shape"] == o0["shape"], bg_psnr=psnr(base, moved, bg), images=(base, moved),
                **(other_object_kept(base, moved, other) if other else {}))


def p2p_colour(pack, model, clip, vae, source="a red square", target="a blue square", seed=0,
               cross_replace=0.8, self_replace=0.4, steps=STEPS, cfg=CFG) -> Dict:
    node = _node(pack, "P2PReplace")
    with torch.inference_mode():
        m2, pos, lat = _call(node, model=model, clip=clip, source_prompt=source, target_prompts=target,
                             mode="replace", cross_replace=cross_replace, cross_replace_words="",
                             self_replace=self_replace, reweight="", width=128, height=128)
        import nodes as host_nodes
        out = host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", pos, q.encode(clip, ""), lat)[0]
        imgs = q.decode(vae, out["samples"])
    src_c, tgt_c = source.split()[1], target.split()[1]
    o0, o1 = _main_object(imgs[0], src_c), _main_object(imgs[1], tgt_c)
    res = {"seed": seed, "source_found": o0 is not None, "target_found": o1 is not None, "images": imgs}
    if o0 is not None and o1 is not None:
        inter = float((o0["mask"] & o1["mask"]).sum())
        union = float((o0["mask"] | o1["mask"]).sum())
        res.update(iou=inter / union, target_shape=o1["shape"], source_shape=o0["shape"],
                   target_has_source_colour=_main_object(imgs[1], src_c) is not None)
    return res


def p2p_shape(pack, model, clip, vae, source="a red circle", target="a red square", seed=0,
              cross_replace=0.8, self_replace=0.4, steps=STEPS, cfg=CFG) -> Dict:
    """P2P word swap of the shape word: the edited object's centroid shift (pixels) against the
    source row's, its colour kept, and the shape the reader sees in each row."""
    node = _node(pack, "P2PReplace")
    import nodes as host_nodes
    with torch.inference_mode():
        m2, pos, lat = _call(node, model=model, clip=clip, source_prompt=source, target_prompts=target,
                             mode="replace", cross_replace=cross_replace, cross_replace_words="",
                             self_replace=self_replace, reweight="", width=128, height=128)
        out = host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", pos, q.encode(clip, ""), lat)[0]
        imgs = q.decode(vae, out["samples"])
    colour = source.split()[1]
    o0, o1 = _main_object(imgs[0], colour), _main_object(imgs[1], colour)
    res = {"seed": seed, "source": source, "target": target, "source_found": o0 is not None,
           "target_found": o1 is not None, "images": imgs}
    if o0 is not None and o1 is not None:
        res.update(shift_px=math.hypot(o1["cx"] - o0["cx"], o1["cy"] - o0["cy"]),
                   source_shape=o0["shape"], target_shape=o1["shape"],
                   target_right=o1["shape"] == target.split()[2], source_right=o0["shape"] == source.split()[2])
    return res


def other_object_kept(before: torch.Tensor, after: torch.Tensor, colour: str) -> Dict:
    """How an object that an edit should not touch fared: its centroid shift (pixels), and the
    PSNR of the edited image against the unedited one inside its mask (read from ``before``)."""
    o0, o1 = _main_object(before, colour), _main_object(after, colour)
    if o0 is None or o1 is None:
        return {"other_found": o0 is not None and o1 is not None}
    return {"other_found": True, "other_shift_px": math.hypot(o1["cx"] - o0["cx"], o1["cy"] - o0["cy"]),
            "other_psnr": psnr(before, after, o0["mask"]), "other_shape_kept": o1["shape"] == o0["shape"]}


def frame_sequence(pack, model, clip, vae, prompt="a red circle", word="red circle", frames=4, dx=0.3,
                   seed=0, end=0.5, steps=STEPS, cfg=CFG, **extra) -> Dict:
    node = _node(pack, "FrameSequence")
    colour = prompt.split()[1]
    with torch.inference_mode():
        m2, lat = _call(node, model=model, clip=clip, prompt=prompt, words=word, frames=frames, width=128,
                        height=128, dx=dx, dy=0.0, end=end, **extra)
        import nodes as host_nodes
        out = host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", q.encode(clip, prompt),
                                         q.encode(clip, ""), lat)[0]
        imgs = q.decode(vae, out["samples"])
    objs = [_main_object(im, colour) for im in imgs]
    res = {"seed": seed, "images": imgs, "found": [o is not None for o in objs]}
    if all(o is not None for o in objs):
        res["cx"] = [o["cx"] / imgs.shape[-1] for o in objs]
        res["cy"] = [o["cy"] / imgs.shape[-2] for o in objs]
        bg = background_mask([o["mask"] for o in objs])
        res["bg_psnr"] = [psnr(imgs[0], im, bg) for im in imgs[1:]]
    return res


def local_blend(pack, model, clip, vae, source="a red circle and a blue square",
                target="a red circle and a yellow square", words="square", seed=0, threshold=0.3,
                dilation=1, start=0.2, resolution="0", cross_replace=0.8, self_replace=0.4,
                steps=STEPS, cfg=CFG, other: Optional[str] = None) -> Dict:
    """P2P colour swap of one object with and without LocalBlend: background PSNR source vs target.
    With ``other`` (a colour), also how the object of that colour, which the edit should not touch,
    fared in each (``p2p``, ``blend``: :func:`other_object_kept`).

    The background is every pixel more than 6 px from the objects of either row (read from pixels).
    """
    p2p = _node(pack, "P2PReplace")
    blend = _node(pack, "LocalBlend")
    import nodes as host_nodes
    out = {"seed": seed}
    with torch.inference_mode():
        neg = q.encode(clip, "")
        m2, pos, lat = _call(p2p, model=model, clip=clip, source_prompt=source, target_prompts=target,
                             mode="replace", cross_replace=cross_replace, cross_replace_words="",
                             self_replace=self_replace, reweight="", width=128, height=128)
        plain = q.decode(vae, host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", pos, neg, lat)[0]["samples"])
        m3, _mask = _call(blend, model=m2, clip=clip, words=words, subtract_words="", threshold=threshold,
                          dilation=dilation, start=start, resolution=resolution)
        blended = q.decode(vae, host_nodes.common_ksampler(m3, seed, steps, cfg, "euler", "normal", pos, neg, lat)[0]["samples"])
    masks = [o["mask"] for im in (plain[0], plain[1], blended[1]) for o in q.read_objects(im)]
    if not masks:
        out["ok"] = False
        return out
    bg = background_mask(masks)
    tgt_colour = target.split(" and ")[-1].split()[1]
    out.update(ok=True, bg_fraction=float(bg.float().mean()),
               psnr_plain=psnr(plain[0], plain[1], bg), psnr_blend=psnr(blended[0], blended[1], bg),
               source_same=psnr(plain[0], blended[0]),
               target_colour_plain=_main_object(plain[1], tgt_colour) is not None,
               target_colour_blend=_main_object(blended[1], tgt_colour) is not None,
               images=torch.cat([plain, blended]))
    if other:
        out["p2p"] = other_object_kept(plain[0], plain[1], other)
        out["blend"] = other_object_kept(blended[0], blended[1], other)
    return out


PHOTO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", "inputs",
                     "shapes_photo.png")


def background_features(img: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """A background as 9 numbers: per channel, the least-squares plane ``a + b x + c y`` over the
    background pixels ``bg`` (x, y in [-1, 1]): mean colour a, gradient b, c (``[3, H, W]`` image)."""
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    a = torch.stack([torch.ones_like(xs[bg]), xs[bg], ys[bg]], 1)  # [P, 3]
    coef = torch.linalg.lstsq(a, img[:, bg].T.float()).solution  # [3 (a, b, c), 3 channels]
    return coef.flatten()


def style_aligned(pack, model, clip, vae, prompts=("a red circle", "a blue square", "a yellow triangle"),
                  seed=0, strength=1.0, steps=STEPS, cfg=CFG, start=0.0, end=1.0, resolutions="all", blocks="all",
                  adain="queries and keys", **extra) -> Dict:
    """Style Aligned on a batch of prompts, against the same batch without it (strength 0 is the
    plain model): per row, the distance of its background (mean colour and gradient, RMS over
    :func:`background_features`) to the reference row's, and whether its own object is there."""
    node = _node(pack, "StyleAligned")
    import nodes as host_nodes
    res = {"seed": seed}
    for name, s in (("plain", 0.0), ("aligned", strength)):
        with torch.inference_mode():
            m2, pos, lat = _call(node, model=model, clip=clip, prompts="\n".join(prompts), strength=s, start=start,
                                 end=end, resolutions=resolutions, blocks=blocks, adain=adain, width=128,
                                 height=128, **extra)
            out = host_nodes.common_ksampler(m2, seed, steps, cfg, "euler", "normal", pos, q.encode(clip, ""), lat)[0]
            imgs = q.decode(vae, out["samples"])
        objs = [q.read_objects(im) for im in imgs]
        feats = []
        for im, found in zip(imgs, objs):
            bg = background_mask([o["mask"] for o in found]) if found else torch.ones(im.shape[-2:], dtype=torch.bool)
            feats.append(background_features(im, bg))
        res[name] = {
            "bg_distance": [float((f - feats[0]).pow(2).mean().sqrt()) for f in feats[1:]],
            "own_object": [any(o["colour"] == p.split()[1] for o in found) for p, found in zip(prompts, objs)],
        }
        res[name + "_images"] = imgs
    res["reference_diff"] = float((res["plain_images"][0] - res["aligned_images"][0]).abs().max())
    res["rows_diff"] = [float((a - b).abs().mean()) for a, b in zip(res["plain_images"][1:], res["aligned_images"][1:])]
    return res


def load_photo(path: str = PHOTO) -> torch.Tensor:
    """The bundled picture (a red circle at x 0.36, y 0.55 on a gradient) as [1, H, W, 3] in [0, 1]."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)[None]


def photo(pack, model, clip, vae, method="direct", cfg=CFG, steps=STEPS, prompt="a red circle",
          target="a blue circle", dx=0.2, frames=4, seed=0) -> Dict:
    """Every control on a loaded picture: reconstruction, a local colour swap, a short clip.

    Figures: PSNR (dB) against the picture's VAE round trip (the ceiling: what the VAE keeps) of
    the sampled-back picture, of P2P's source row, of the edit's background and of the clip's
    frame 0; the edited object's colour and centroid shift; the clip's last-frame move.
    """
    import nodes as host_nodes
    inv_node, p2p, blend, seq = (_node(pack, n) for n in ("DiffusionInversion", "P2PReplace", "LocalBlend",
                                                          "FrameSequence"))
    pixels = load_photo()
    colour, tcolour = prompt.split()[1], target.split()[1]
    with torch.inference_mode():
        latent = {"samples": vae.encode(pixels[..., :3])}
        trip = q.decode(vae, latent["samples"])[0]
        pos, neg = q.encode(clip, prompt), q.encode(clip, "")
        neg_used = pos if method == "negative prompt" else neg
        guided, inv = _call(inv_node, model=model, positive=pos, latent=latent, sampler_name="euler",
                            scheduler="normal", steps=steps, denoise=1.0, method=method)

        def sample(m, positive, lat):
            return q.decode(vae, host_nodes.common_ksampler(m, seed, steps, cfg, "euler", "normal", positive,
                                                            neg_used, lat)[0]["samples"])

        back = sample(guided, pos, inv)[0]
        m2, pos2, lat2 = _call(p2p, model=model, clip=clip, source_prompt=prompt, target_prompts=target,
                               mode="replace", cross_replace=0.8, cross_replace_words="", self_replace=0.4,
                               reweight="", width=128, height=128, latent=inv)
        m3, _ = _call(blend, model=m2, clip=clip, words=prompt.split()[-1], subtract_words="", threshold=0.3,
                      dilation=1, start=0.2, resolution="0")
        edit = sample(m3, pos2, lat2)
        m4, lat4 = _call(seq, model=model, clip=clip, prompt=prompt, words=prompt.split()[-1], frames=frames,
                         width=128, height=128, dx=dx, dy=0.0, background_lock=0.5, latent=inv)
        clip_imgs = sample(m4, pos, lat4)
    o_src = _main_object(trip, colour)
    o_edit = _main_object(edit[1], tcolour)
    o_last = _main_object(clip_imgs[-1], colour)
    res = {"method": method, "cfg": cfg, "psnr_back": psnr(back, trip), "psnr_source_row": psnr(edit[0], trip),
           "psnr_frame0": psnr(clip_imgs[0], trip), "edit_colour_found": o_edit is not None,
           "images": torch.cat([trip[None], back[None], edit, clip_imgs])}
    if o_src is not None and o_edit is not None:
        bg = background_mask([o_src["mask"], o_edit["mask"]])
        res.update(edit_bg_psnr=psnr(edit[1], trip, bg),
                   edit_moved=max(abs(o_edit["cx"] - o_src["cx"]), abs(o_edit["cy"] - o_src["cy"])) / trip.shape[-1])
    if o_src is not None and o_last is not None:
        res["clip_moved"] = (o_last["cx"] - o_src["cx"]) / trip.shape[-1]
    return res


def save_clip(imgs: torch.Tensor, stem: str, scale: int = 2, ms: int = 120) -> None:
    """Frames [N, 3, H, W] in [0, 1] -> ``stem``.gif (looping) and ``stem``.png (a strip)."""
    from PIL import Image
    frames = [Image.fromarray((im.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype("uint8"))
              for im in imgs]
    if scale != 1:
        frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    frames[0].save(stem + ".gif", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    strip = Image.new("RGB", (sum(f.width for f in frames), frames[0].height))
    x = 0
    for f in frames:
        strip.paste(f, (x, 0))
        x += f.width
    strip.save(stem + ".png", optimize=True)


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--clip-out", default=None, help="write a FrameSequence clip (GIF + PNG strip) to this stem")
    ap.add_argument("--prompt", default="a red circle")
    ap.add_argument("--word", default="red circle", help="the moving words (colour and shape)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--dx", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latent-adain", action="store_true", help="with --style: Style Aligned's latent_adain on")
    ap.add_argument("--style", action="store_true", help="the Style Aligned probe only")
    ap.add_argument("--edits", action="store_true",
                    help="the edits of a shape and of one of two objects only (P2P shape swap, LocalBlend and "
                         "TokenShift in two-object scenes), seeds 0..--seeds-1")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--photo", action="store_true", help="the loaded-picture probe only (every inversion method)")
    ap.add_argument("--photo-out", default=None, help="with --photo: write its images (GIF + PNG strip) to this stem")
    args = ap.parse_args(argv)
    from . import hostenv
    hostenv.setup()
    torch.set_num_threads(1)
    from . import model as M
    pack = q.import_pack()
    model, clip, vae = M.build(args.weights)
    if args.style:
        for seed in range(8):
            r = style_aligned(pack, model, clip, vae, seed=seed, **({"latent_adain": True} if args.latent_adain else {}))
            r.pop("plain_images"), r.pop("aligned_images")
            print("style", json.dumps(r), flush=True)
        return
    if args.edits:
        for seed in range(args.seeds):
            for src, tgt in (("a red circle", "a red square"), ("a red square", "a red circle")):
                r = p2p_shape(pack, model, clip, vae, source=src, target=tgt, seed=seed)
                r.pop("images")
                print("p2p_shape", json.dumps(r), flush=True)
            r = local_blend(pack, model, clip, vae, seed=seed, other="red")
            r.pop("images", None)
            print("two_objects_blend", json.dumps(r), flush=True)
            r = token_shift(pack, model, clip, vae, prompt="a red circle and a blue square", word="red circle",
                            seed=seed, dx=0.2, other="blue")
            r.pop("images", None)
            print("two_objects_shift", json.dumps(r), flush=True)
        return
    if args.photo:
        for method in ("direct", "negative prompt", "plain"):
            for cfg in (1.0, CFG, 7.5):
                for seed in range(2):
                    r = photo(pack, model, clip, vae, method=method, cfg=cfg, seed=seed)
                    images = r.pop("images")
                    if args.photo_out and method == "direct" and cfg == CFG and seed == 0:
                        save_clip(images, args.photo_out, ms=400)
                    print("photo", json.dumps(r, default=str), flush=True)
        return
    if args.clip_out:
        r = frame_sequence(pack, model, clip, vae, prompt=args.prompt, word=args.word, frames=args.frames,
                           dx=args.dx, seed=args.seed)
        save_clip(r.pop("images"), args.clip_out)
        print(json.dumps(r, indent=1))
        return
    out = {"token_shift": [], "p2p": [], "frames": [], "local_blend": []}
    for reference in ("source row", "none"):
        for s in range(6):
            r = token_shift(pack, model, clip, vae, seed=s, reference=reference)
            r.pop("images", None)
            out["token_shift"].append(dict(r, reference=reference))
            print("token_shift", reference, r, flush=True)
    for s in range(4):
        r = p2p_colour(pack, model, clip, vae, seed=s)
        r.pop("images", None)
        out["p2p"].append(r)
        print("p2p", r, flush=True)
    for s in range(3):
        r = frame_sequence(pack, model, clip, vae, seed=s)
        r.pop("images", None)
        out["frames"].append(r)
        print("frames", r, flush=True)
    if "LocalBlend" in pack.NODE_CLASS_MAPPINGS:
        for s in range(3):
            r = local_blend(pack, model, clip, vae, seed=s)
            r.pop("images", None)
            out["local_blend"].append(r)
            print("local_blend", r, flush=True)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
