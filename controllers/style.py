"""Shared style across a batch (Style Aligned, Hertz et al., CVPR 2024).

:class:`SharedStyle`: in every chosen self-attention layer, each row but the reference (row 0 of
each conditioning chunk) attends to the reference's keys and values as well as its own, with its
queries and keys first normalised to the reference's statistics (AdaIN over the positions, per
channel). ``strength`` blends that shared attention with the row's plain attention; 0 is the
plain model and the reference row is never changed, so it comes out exactly as in a plain batch.
The host's optimised attention does the work; no N x N map is formed.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.controller import AttnCall, Controller, RunInfo

ADAIN_EPS = 1e-5
BLOCKS = ("all", "decoder", "encoder")  # decoder: the UNet's output blocks; encoder: input + middle


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """``x`` ``[rows, N, C]`` with each channel's mean and std over the N positions set to ``ref``'s
    (``[1, N', C]``), computed in float32."""
    xf, rf = x.float(), ref.float()
    mx, sx = xf.mean(dim=1, keepdim=True), (xf.var(dim=1, keepdim=True, unbiased=False) + eps).sqrt()
    mr, sr = rf.mean(dim=1, keepdim=True), (rf.var(dim=1, keepdim=True, unbiased=False) + eps).sqrt()
    return ((xf - mx) / sx * sr + mr).to(x.dtype)


def block_matches(blocks: str, key: tuple) -> bool:
    """Whether a transformer block (``AttnCall.key``: block name, id, depth) is in ``blocks``."""
    if blocks == "decoder":
        return key[0] == "output"
    if blocks == "encoder":
        return key[0] in ("input", "middle")
    return True


class SharedStyle(Controller):
    """Every row's self-attention shares the reference row's keys and values (Style Aligned)."""

    def __init__(self, strength: float = 1.0, window: tuple[float, float] = (0.0, 1.0),
                 levels: frozenset[int] | None = None, blocks: str = "all", adain_queries: bool = True,
                 adain_keys: bool = True, norm_share=None):
        """``window``: the fraction of the steps (progress from 0 to 1) in which attention is
        shared; ``levels``: the grid levels (None: all); ``blocks``: one of :data:`BLOCKS`;
        ``norm_share``: a ``host.groupnorm.NormShare`` (shared GroupNorm statistics) that this
        controller arms at every model call inside the window, or None."""
        if blocks not in BLOCKS:
            raise ValueError(f"blocks must be one of {BLOCKS}, got {blocks!r}")
        self.strength = float(strength)
        self.window = (float(window[0]), float(window[1]))
        self.levels = levels
        self.blocks = blocks
        self.adain_queries = adain_queries
        self.adain_keys = adain_keys
        self.norm_share = norm_share

    def __deepcopy__(self, memo):
        return self

    def wants_model_input(self) -> bool:
        return self.norm_share is not None

    def model_input(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor:
        """Arms the shared GroupNorm statistics for this model call when it is in the window."""
        self.norm_share.arm(self.strength > 0 and run.within(self.window))
        return x

    def wants_self_output(self, call: AttnCall) -> bool:
        return (self.strength > 0 and call.rows > 1 and call.run.within(self.window)
                and (self.levels is None or call.level in self.levels) and block_matches(self.blocks, call.key))

    def shared_inputs(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Queries, keys and values of rows 1.. attending to the reference row's keys and values
        and their own: ``q'`` ``[rows-1, N, C]``, ``k'``, ``v'`` ``[rows-1, M + M', C]``."""
        others = q.shape[0] - 1
        qo = adain(q[1:], q[:1]) if self.adain_queries else q[1:]
        ko = adain(k[1:], k[:1]) if self.adain_keys else k[1:]
        ks = torch.cat([k[:1].expand(others, -1, -1), ko], dim=1)
        vs = torch.cat([v[:1].expand(others, -1, -1), v[1:]], dim=1)
        return qo, ks, vs

    def self_output(self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                    attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        shared = attend(*self.shared_inputs(q, k, v)).to(out.dtype)
        if self.strength >= 1:
            out[1:] = shared
        else:
            out[1:] = out[1:] + self.strength * (shared - out[1:])
        return out
