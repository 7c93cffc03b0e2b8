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


def channel_stats(x: torch.Tensor, dim: int, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (population, ``+ eps`` under the root) of ``x`` over ``dim``, kept as a size-1 axis."""
    return x.mean(dim=dim, keepdim=True), (x.var(dim=dim, keepdim=True, unbiased=False) + eps).sqrt()


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """``x`` ``[rows, N, C]`` with each channel's mean and std over the N positions set to ``ref``'s
    (``[1, N', C]``), computed in float32."""
    xf, rf = x.float(), ref.float()
    (mx, sx), (mr, sr) = channel_stats(xf, 1, eps), channel_stats(rf, 1, eps)
    return ((xf - mx) / sx * sr + mr).to(x.dtype)


BACKGROUND_SHARE = 0.8  # positions nearest each row's median latent: its background, for the mean


def _background_mean(x: torch.Tensor, share: float) -> torch.Tensor:
    """Per-channel mean ``[rows, 1, C]`` of ``x`` ``[rows, N, C]`` over the ``share`` of its positions
    nearest its per-channel median (its background: objects are the far positions)."""
    d = (x - x.median(dim=1, keepdim=True).values).norm(dim=-1)  # [rows, N]
    keep = max(1, int(round(share * x.shape[1])))
    idx = d.topk(keep, dim=1, largest=False).indices
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1])).mean(dim=1, keepdim=True)


def background_adain(x: torch.Tensor, ref: torch.Tensor, share: float = BACKGROUND_SHARE,
                     eps: float = ADAIN_EPS) -> torch.Tensor:
    """AdaIN of ``x`` ``[rows, N, C]`` to ``ref`` ``[1, N', C]``: per channel, the mean of each one's
    background (:func:`_background_mean`), so a row's own objects do not pull its background's
    colour, and the spread over all positions. Measured on the shapes model (8 seeds, distance of the
    rows' background to the reference's, plain 0.108): whole-latent statistics 0.036, background
    mean and spread 0.020 but 3 of 24 objects lost (a flat background's small spread blows the
    objects up), background mean and whole spread 0.033 with every object kept. Float32."""
    xf, rf = x.float(), ref.float()
    mx = _background_mean(xf, share)
    mr = _background_mean(rf, share)
    sx, sr = channel_stats(xf, 1, eps)[1], channel_stats(rf, 1, eps)[1]
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
                 adain_keys: bool = True, norm_share=None, latent_adain: bool = False):
        """``window``: the fraction of the steps (progress from 0 to 1) in which attention is
        shared; ``levels``: the grid levels (None: all); ``blocks``: one of :data:`BLOCKS`;
        ``norm_share``: a ``host.groupnorm.NormShare`` (shared GroupNorm statistics) that this
        controller arms at every model call inside the window, or None; ``latent_adain``: inside the
        window, each other row's guided prediction of the clean latent takes the reference row's mean
        and spread per channel (blended by ``strength``; not in the paper)."""
        if blocks not in BLOCKS:
            raise ValueError(f"blocks must be one of {BLOCKS}, got {blocks!r}")
        self.strength = float(strength)
        self.window = (float(window[0]), float(window[1]))
        self.levels = levels
        self.blocks = blocks
        self.adain_queries = adain_queries
        self.adain_keys = adain_keys
        self.norm_share = norm_share
        self.latent_adain = bool(latent_adain)

    def __deepcopy__(self, memo):
        return self

    def wants_model_input(self) -> bool:
        return self.norm_share is not None

    def model_input(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor:
        """Arms the shared GroupNorm statistics for this model call when it is in the window."""
        self.norm_share.arm(self.strength > 0 and run.within(self.window))
        return x

    def wants_denoised(self) -> bool:
        return self.latent_adain and self.strength > 0

    def denoised(self, run: RunInfo, denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Rows 1.. of the guided x0 prediction take row 0's per-channel statistics (inside the window)."""
        if run is None or denoised.shape[0] < 2 or not run.within(self.window):
            return denoised
        flat = denoised.flatten(2).transpose(1, 2)  # [rows, H*W, C]
        moved = background_adain(flat[1:], flat[:1]).transpose(1, 2).reshape(denoised[1:].shape)
        out = denoised.clone()
        out[1:] = moved if self.strength >= 1 else denoised[1:] + self.strength * (moved - denoised[1:])
        return out

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
