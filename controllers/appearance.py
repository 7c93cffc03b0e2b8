"""Cross-image attention (Alaluf et al., SIGGRAPH 2024): one image's layout in another's appearance.

Every conditioning chunk holds three latent rows: the structure row (0), the appearance row (1)
and the output row (2). In the chosen self-attention layers and steps the output row attends
with the structure row's queries to the appearance row's keys and values, so each place of the
structure image fetches the look of the matching place of the appearance image. Rows 0 and 1 are
never touched: they come out exactly as a plain batched run of the same rows.

The paper sharpens the swapped attention map (contrast ``beta``). The host's optimised attention
never forms the N x N map, so the contrast is a temperature on the logits instead: the output
row's queries are multiplied by ``beta``, i.e. ``softmax(beta * q k^T / sqrt(d))``. Like the
paper's ``(A - mean) * beta + mean`` it keeps the order of every row's weights, raises the large
ones and lowers the small ones (more for larger ``beta``); unlike it, the weights stay a
distribution (no clipping) and the sharpening is exponential rather than linear in the weights.
``beta = 1`` is no contrast.
"""
from __future__ import annotations

import torch

from ..core.controller import AttnCall, Controller
from .style import block_matches

STRUCTURE, APPEARANCE, OUTPUT = 0, 1, 2
ROWS = 3
BLOCKS = ("decoder", "all")
NODE = "CrossImageAttention"


def in_window(window: tuple[float, float], progress: float) -> bool:
    """True while ``start <= progress < end``; an end of 1 covers the last step too."""
    start, end = window
    return start <= progress and (progress < end or end >= 1.0)


class CrossImageController(Controller):
    """Output row: structure row's queries (times ``contrast``), appearance row's keys and values."""

    def __init__(self, window: tuple[float, float] = (0.0, 1.0), levels: frozenset[int] | None = None,
                 blocks: str = "decoder", contrast: float = 1.0, node: str = NODE):
        """``window``: progress ``[start, end)`` of the run (fractions of the steps); ``levels``:
        attention levels acted on (latent side / 2**level; None = every level); ``blocks``:
        'decoder' (the UNet's output blocks, as the paper) or 'all'; ``contrast``: the
        temperature on the swapped attention's logits (1 = none)."""
        start, end = float(window[0]), float(window[1])
        if not (0.0 <= start <= end <= 1.0):
            raise ValueError(f"{node}: the step window must satisfy 0 <= start <= end <= 1, got ({start}, {end})")
        if blocks not in BLOCKS:
            raise ValueError(f"{node}: blocks must be one of {BLOCKS}, got {blocks!r}")
        if not (contrast > 0 and torch.isfinite(torch.tensor(float(contrast)))):
            raise ValueError(f"{node}: contrast must be a positive finite number, got {contrast!r}")
        self.window = (start, end)
        self.levels = None if levels is None else frozenset(levels)
        self.blocks = blocks
        self.contrast = float(contrast)
        self.node = node
        self.calls = 0  # self-attention chunks edited in the current run

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        self.calls = 0

    def acts_on(self, call: AttnCall) -> bool:
        """True if ``call`` is a self-attention of a chosen block and level inside the window."""
        if not block_matches(self.blocks, call.key):
            return False
        if self.levels is not None and call.level not in self.levels:
            return False
        return in_window(self.window, call.run.progress)

    def wants_self(self, call: AttnCall) -> bool:
        return self.acts_on(call)

    def self_qkv(self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        if call.rows != ROWS:
            raise ValueError(
                f"{self.node}: the sampler's latent has {call.rows} rows per prompt, but cross-image attention "
                f"needs exactly {ROWS} (structure, appearance, output). Sample the LATENT and the positive "
                "CONDITIONING this node returns.")
        q = torch.cat([q[:OUTPUT], q[STRUCTURE:STRUCTURE + 1] * self.contrast])
        k = torch.cat([k[:OUTPUT], k[APPEARANCE:APPEARANCE + 1]])
        v = torch.cat([v[:OUTPUT], v[APPEARANCE:APPEARANCE + 1]])
        call.edited.add(OUTPUT)
        self.calls += 1
        return q, k, v
