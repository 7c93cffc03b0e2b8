"""Shared pieces of node definitions: category, input specs, validation with clear messages."""
from __future__ import annotations

import os

CATEGORY = "attention_motion"
STORE_TYPE = "ATTENTION_STORE"


def check_range(node: str, name: str, value: float, lo: float, hi: float) -> None:
    """Raise ValueError naming the node and input when ``value`` is outside [lo, hi]."""
    if not (lo <= value <= hi):
        raise ValueError(f"{node}: input '{name}' is {value}, but it must lie between {lo} and {hi}.")


def check_window(node: str, start: float, end: float, start_name: str = "start", end_name: str = "end") -> tuple[float, float]:
    """Validate a step window given as fractions of the sampling run."""
    check_range(node, start_name, start, 0.0, 1.0)
    check_range(node, end_name, end, 0.0, 1.0)
    if start > end:
        raise ValueError(f"{node}: input '{start_name}' ({start}) is after '{end_name}' ({end}); use start <= end.")
    return float(start), float(end)


def save_preview_images(images, prefix: str) -> list[dict]:
    """Write ``[B, H, W, 3]`` images in [0, 1] as PNGs to ComfyUI's temp folder for the node's UI."""
    import folder_paths
    import numpy as np
    from PIL import Image

    out_dir = folder_paths.get_temp_directory()
    full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, out_dir, images.shape[2], images.shape[1])
    os.makedirs(full, exist_ok=True)
    results = []
    for i, img in enumerate(images):
        arr = (img.detach().cpu().float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        name = f"{filename}_{counter + i:05}_.png"
        Image.fromarray(arr).save(os.path.join(full, name), compress_level=1)
        results.append({"filename": name, "subfolder": subfolder, "type": "temp"})
    return results
