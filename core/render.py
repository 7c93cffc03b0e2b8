"""Turn maps into pictures: colour maps, overlays and thresholded masks."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .maps import normalize

# Anchor colours of a perceptual "inferno"-like map, from 0 (cold) to 1 (hot).
_ANCHORS = torch.tensor(
    [[0.0, 0.0, 0.02], [0.26, 0.04, 0.41], [0.58, 0.15, 0.40], [0.87, 0.32, 0.23], [0.99, 0.64, 0.04], [0.99, 1.0, 0.64]]
)


def colorize(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] of shape ``[..., h, w]`` to RGB ``[..., h, w, 3]``."""
    v = values.clamp(0, 1) * (len(_ANCHORS) - 1)
    lo = v.floor().long().clamp(max=len(_ANCHORS) - 2)
    frac = (v - lo).unsqueeze(-1)
    anchors = _ANCHORS.to(values.device)
    return anchors[lo] * (1 - frac) + anchors[lo + 1] * frac


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[..., h, w]`` maps to ``size``."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


def heatmaps(maps: torch.Tensor, size: tuple[int, int], image: torch.Tensor | None = None, alpha: float = 0.6) -> torch.Tensor:
    """Heatmap images ``[rows * words, H, W, 3]`` of ``[rows, words, h, w]`` maps.

    With ``image`` (``[rows or 1, H, W, 3]`` in [0, 1]) each heatmap is blended over its row's image.
    """
    rows, words = maps.shape[:2]
    colours = colorize(normalize(upsample(maps, size)))  # [rows, words, H, W, 3]
    if image is not None:
        img = image[:, None].float()
        if img.shape[0] not in (1, rows):
            img = img[:1]
        colours = img * (1 - alpha) + colours * alpha
    return colours.reshape(rows * words, *size, 3).clamp(0, 1)


def masks(maps: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """Binary masks ``[rows * words, H, W]``: normalised map upsampled, then ``>= threshold``."""
    rows, words = maps.shape[:2]
    norm = normalize(upsample(maps, size))
    return (norm >= threshold).float().reshape(rows * words, *size)
