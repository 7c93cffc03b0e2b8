"""`make demo`: a shape moving, made by a real ComfyUI server run headless.

Starts ComfyUI (the host chosen by scripts/bootstrap.py) with this pack as a custom node,
takes the shipped motion workflow (workflows/api/motion_clip_variation.json), swaps its
checkpoint loader for the bundled shapes model, queues it through the headless runner
(scripts/run_workflow.py) and writes a GIF and an MP4 of the clip into ``demo_output/``.
Then it reads the object back from every frame's pixels and prints where it is. Last, it edits
the bundled picture (workflows/api/edit_my_photo.json: inverted, red circle -> blue circle with
Local Blend) and prints what it reads in the picture and in the edit.

    .venv/bin/python -m scripts.demo [--out demo_output] [--prompt "a red circle"] [--dx 0.4]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def demo_prompt(prompt: str, word: str, frames: int, dx: float, dy: float, seed: int) -> dict:
    """The shipped motion workflow, on the shapes model at its native 128x128."""
    with open(os.path.join(REPO, "workflows", "api", "motion_clip_variation.json")) as f:
        api = json.load(f)
    loader = next(k for k, n in api.items() if n["class_type"] == "CheckpointLoaderSimple")
    api[loader] = {"class_type": "ShapesModelLoader", "inputs": {}}
    for node in api.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "CLIPTextEncode":
            inputs["text"] = prompt if "blurry" not in inputs["text"] else ""
        elif kind == "FrameSequence":
            inputs.update(prompt=prompt, words=word, frames=frames, width=128, height=128, dx=dx, dy=dy)
        elif kind == "KSampler":
            inputs.update(seed=seed, steps=20, cfg=5.0)
        elif kind == "SaveMotionClip":
            inputs.update(filename_prefix="demo/shapes_motion", gif=True, mp4=True, webp=False, fps=8.0)
    return api


def photo_prompt(target: str, seed: int) -> dict:
    """The shipped photo-edit workflow (the bundled picture, inverted, then P2P with Local Blend) on
    the shapes model: 16 steps, cfg 5, masks from the model's full-resolution layers."""
    with open(os.path.join(REPO, "workflows", "api", "edit_my_photo.json")) as f:
        api = json.load(f)
    for key, node in api.items():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "CheckpointLoaderSimple":
            api[key] = {"class_type": "ShapesModelLoader", "inputs": {}}
        elif kind == "P2PReplace":
            inputs.update(target_prompts=target)
        elif kind == "LocalBlend":
            inputs.update(resolution="0")
        elif kind in ("KSampler", "DiffusionInversion"):
            inputs.update(steps=16)
            if kind == "KSampler":
                inputs.update(seed=seed, cfg=5.0)
        elif kind == "SaveImage":
            inputs.update(filename_prefix="demo/shapes_photo_edit")
    return api


def _where(frame) -> str:
    import torch

    from shapes.quality import read_objects

    img = torch.from_numpy(frame[..., :3].copy()).float().permute(2, 0, 1) / 255.0
    return ", ".join(f"{o['colour']} {o['shape']} at ({o['cx']:.0f}, {o['cy']:.0f})"
                     for o in read_objects(img)) or "nothing found"


def describe(gif_path: str) -> list[str]:
    """One line per frame: the objects read back from the pixels and their centres."""
    import imageio.v3 as iio

    return [f"frame {i:2d}: {_where(frame)}" for i, frame in enumerate(iio.imread(gif_path, index=None))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "demo_output"))
    ap.add_argument("--prompt", default="a red circle")
    ap.add_argument("--word", default="red circle", help="the moving words (colour and shape)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--dx", type=float, default=0.4)
    ap.add_argument("--dy", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--photo-target", default="a blue circle", help="the photo edit's target prompt")
    args = ap.parse_args(argv)

    sys.path.insert(0, REPO)
    import server_harness
    from scripts.hostpath import host_path
    from scripts.run_workflow import RunError, run

    api = demo_prompt(args.prompt, args.word, args.frames, args.dx, args.dy, args.seed)
    print(f"starting ComfyUI ({host_path()}) with the pack ...")
    server = server_harness.start(host_path(), server_harness.pack_custom_node_dirs(),
                                  tempfile.mkdtemp(prefix="demo_server_out_"))
    try:
        print(f"server at {server.url}; queueing the motion workflow on the shapes model")
        result = run(api, server.url, out_dir=args.out)
        print(f"queueing the photo edit: workflows/inputs/shapes_photo.png, inverted, then '{args.photo_target}'")
        edit = run(photo_prompt(args.photo_target, args.seed), server.url, out_dir=args.out)
    except RunError as e:
        print(e, file=sys.stderr)
        return e.code
    finally:
        server.stop()
    clips = [p for p in result["files"] if p.endswith((".gif", ".mp4"))]
    print("\nclip files:")
    for p in clips:
        print("  " + os.path.relpath(p))
    gif = next((p for p in clips if p.endswith(".gif")), None)
    if gif:
        print(f"\nwhere the shapes are (pixels of the 128x128 frames; '{args.word}' moves by dx={args.dx}):")
        for line in describe(gif):
            print("  " + line)
    import imageio.v3 as iio

    rows = sorted(p for p in edit["files"] if p.endswith(".png"))
    print("\nphoto edit (row 0 is the picture sampled back, row 1 the edit):")
    for label, path in zip(("picture", "edit"), rows):
        print(f"  {label:8s} {os.path.relpath(path)}: {_where(iio.imread(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
