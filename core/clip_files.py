"""Clip files: animated GIF, animated WebP and MP4 (H.264) from uint8 RGB frames.

No torch and no host: Save Motion Clip (nodes/clip_output.py) and the headless clip runner
(scripts/run_clip.py, which loads this file on its own) write clips with the same code.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def write_gif(path: str, frames: np.ndarray, fps: float, loop: int) -> None:
    """``frames`` ``[N, H, W, 3]`` uint8 as an animated GIF (``loop`` 0: forever)."""
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=max(1, round(1000.0 / fps)),
                 loop=loop, optimize=False, disposal=1)


def write_webp(path: str, frames: np.ndarray, fps: float, loop: int, quality: int) -> None:
    """``frames`` as an animated WebP (lossless at ``quality`` 100)."""
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=max(1, round(1000.0 / fps)),
                 loop=loop, quality=quality, lossless=quality >= 100, method=4)


def write_mp4(path: str, frames: np.ndarray, fps: float, quality: int, progress: Any = None) -> None:
    """``progress``: an object whose ``advance()`` is called after each frame (or None)."""
    import imageio.v2 as imageio

    h, w = frames.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sides: repeat the last row/column
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", quality=max(1, min(10, quality // 10)),
                                macro_block_size=1, ffmpeg_log_level="error")
    try:
        for f in frames:
            writer.append_data(f)
            if progress is not None:
                progress.advance()
    finally:
        writer.close()
