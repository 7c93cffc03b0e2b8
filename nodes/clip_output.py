"""Save an IMAGE batch as an animated clip (GIF, animated WebP, MP4) and show it in the UI."""
from __future__ import annotations

import os

import numpy as np

from ..core.clip_files import write_gif, write_mp4, write_webp
from ..host.progress import Progress, is_interrupt
from .common import CATEGORY, check_inputs


def to_uint8(images) -> np.ndarray:
    """``[N, H, W, C]`` floats in [0, 1] -> uint8 RGB array."""
    arr = images.detach().cpu().float().clamp(0, 1).numpy()
    arr = (arr * 255.0).round().astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr[..., :3]


class SaveMotionClip:
    """Write frames as GIF / animated WebP / MP4 (and PNGs on request) to the output folder."""

    DESCRIPTION = (
        "Saves an IMAGE batch (the decoded frames of a clip) as an animated GIF, an animated WebP and/or "
        "an MP4 (H.264) in ComfyUI's output folder, optionally with one PNG per frame, and shows the "
        "animation on the node. loop 0 repeats forever."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The decoded frames (an IMAGE batch, one image per frame)."}),
                "filename_prefix": ("STRING", {"default": "motion", "tooltip": "File name start in the output folder (may hold a subfolder, e.g. clips/ball)."}),
                "fps": ("FLOAT", {"default": 8.0, "min": 0.1, "max": 120.0, "step": 0.5, "tooltip": "Frames per second of the GIF, WebP and MP4 (0.1-120)."}),
                "loop": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "How many times the GIF/WebP repeat; 0 = forever."}),
                "gif": ("BOOLEAN", {"default": True, "tooltip": "Write an animated GIF."}),
                "webp": ("BOOLEAN", {"default": True, "tooltip": "Write an animated WebP (shown on the node)."}),
                "mp4": ("BOOLEAN", {"default": True, "tooltip": "Write an MP4 (H.264; needs imageio-ffmpeg). Odd sides are padded by one pixel."}),
                "frame_pngs": ("BOOLEAN", {"default": False, "tooltip": "Also write one PNG per frame (<prefix>_NNNNN_frame_NNNN.png)."}),
                "quality": ("INT", {"default": 90, "min": 1, "max": 100, "tooltip": "WebP and MP4 quality, 1-100 (100 = lossless WebP); GIF is unaffected."}),
            }
        }

    def save(self, images, filename_prefix="motion", fps=8.0, loop=0, gif=True, webp=True, mp4=True,
             frame_pngs=False, quality=90):
        import folder_paths
        from PIL import Image

        check_inputs(self, locals())
        node = "SaveMotionClip"
        if not (gif or webp or mp4 or frame_pngs):
            raise ValueError(f"{node}: every format is off; turn on at least one of gif, webp, mp4, frame_pngs.")
        frames = to_uint8(images)
        out_dir = folder_paths.get_output_directory()
        full, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix or "motion", out_dir, frames.shape[2], frames.shape[1])
        os.makedirs(full, exist_ok=True)
        stem = f"{name}_{counter:05}_"

        def entry(filename):
            return {"filename": filename, "subfolder": subfolder, "type": "output"}

        # progress in frames written: each animated file counts its frames when written, the MP4
        # and the PNGs frame by frame
        progress = Progress(len(frames) * sum(map(bool, (gif, webp, mp4, frame_pngs))))
        files, shown = [], []
        if webp:
            write_webp(os.path.join(full, stem + ".webp"), frames, fps, loop, quality)
            files.append(entry(stem + ".webp"))
            progress.advance(len(frames))
        if gif:
            write_gif(os.path.join(full, stem + ".gif"), frames, fps, loop)
            files.append(entry(stem + ".gif"))
            progress.advance(len(frames))
        if mp4:
            try:
                write_mp4(os.path.join(full, stem + ".mp4"), frames, fps, quality, progress)
            except Exception as e:  # noqa: BLE001 - a missing ffmpeg must not lose the other files
                if is_interrupt(e):  # the user stopped the run during the encoding
                    raise
                raise RuntimeError(f"{node}: writing MP4 failed ({e}); install imageio-ffmpeg or turn mp4 off.") from e
            files.append(entry(stem + ".mp4"))
        pngs = []
        if frame_pngs:
            for i, f in enumerate(frames):
                fname = f"{stem}frame_{i:04}.png"
                Image.fromarray(f).save(os.path.join(full, fname), compress_level=4)
                pngs.append(entry(fname))
                progress.advance()
        # the frontend shows "images" entries with <img>: animated WebP/GIF play there
        animated = [f for f in files if f["filename"].endswith((".webp", ".gif"))][:1]
        shown = animated or pngs[:1]
        ui = {"images": shown, "animated": (bool(animated),), "clips": files, "frames": pngs}
        return {"ui": ui}


NODE_CLASS_MAPPINGS = {"SaveMotionClip": SaveMotionClip}
NODE_DISPLAY_NAME_MAPPINGS = {"SaveMotionClip": "Save Motion Clip"}
