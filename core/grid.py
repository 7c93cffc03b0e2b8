"""Attention grid geometry: which (h, w) grid a flattened attention query belongs to."""
from __future__ import annotations

import math


def attention_grid(n_query: int, latent_hw: tuple[int, int], max_levels: int = 8) -> tuple[int, int, int]:
    """Return (h, w, level) of the grid whose h * w equals ``n_query``.

    UNet downsampling convolutions (stride 2, padding 1) map a side ``s`` to ``ceil(s / 2)``, so
    level ``k`` has sides ``ceil(H / 2**k)``, ``ceil(W / 2**k)``. Works for any latent size and
    aspect ratio; raises ValueError when no level matches.
    """
    h, w = int(latent_hw[0]), int(latent_hw[1])
    for level in range(max_levels):
        if h * w == n_query:
            return h, w, level
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    raise ValueError(
        f"cannot place {n_query} attention queries on a grid derived from latent {tuple(latent_hw)}"
    )


def level_grid(latent_hw: tuple[int, int], level: int) -> tuple[int, int]:
    """Grid (h, w) of a given downsampling level of a latent."""
    h, w = int(latent_hw[0]), int(latent_hw[1])
    for _ in range(level):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w


def parse_levels(spec: str) -> frozenset[int] | None:
    """Parse a resolution choice into a set of levels, ``None`` meaning every level.

    Accepted: ``"all"``; comma-separated fractions of the latent side such as ``"1/4, 1/8"``;
    or level numbers ``"2,3"`` (level k = latent side / 2**k).
    """
    text = (spec or "").strip().lower()
    if text in ("", "all", "*"):
        return None
    levels = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "/" in part:
            num, _, den = part.partition("/")
            try:
                n, d = int(num), int(den)
            except ValueError:
                raise ValueError(f"resolution '{part}' is not a fraction like 1/4") from None
            if n != 1 or d < 1 or d & (d - 1):
                raise ValueError(f"resolution '{part}' must be 1/1, 1/2, 1/4, 1/8 or 1/16")
            levels.add(d.bit_length() - 1)
        else:
            try:
                level = int(part)
            except ValueError:
                raise ValueError(
                    f"resolution '{part}' is not understood: use 'all', fractions like '1/4, 1/8' or levels like '2,3'"
                ) from None
            if not 0 <= level <= 6:
                raise ValueError(f"resolution level {level} is out of range 0..6")
            levels.add(level)
    if not levels:
        raise ValueError("no resolution given: use 'all' or fractions like '1/4, 1/8'")
    return frozenset(levels)
