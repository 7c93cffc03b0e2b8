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


def channel_stats(x: torch.Tensor, dim: int | tuple[int, ...], eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (population, ``+ eps`` under the root) of ``x`` over ``dim``, kept as a size-1 axis."""
    return x.mean(dim=dim, keepdim=True), (x.var(dim=dim, keepdim=True, unbiased=False) + eps).sqrt()


def adain(x: torch.Tensor, ref: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """``x`` ``[rows, N, C]`` with each channel's mean and std over the N positions set to ``ref``'s
    (``[1, N', C]``), computed in float32."""
    xf, rf = x.float(), ref.float()
    (mx, sx), (mr, sr) = channel_stats(xf, 1, eps), channel_stats(rf, 1, eps)
    return ((xf - mx) / sx * sr + mr).to(x.dtype)


BACKGROUND_SHARE = 0.8  # a latent's positions nearest its background plane: the rest are objects


def _plane_basis(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[h*w, 3]``: 1, x and y (each in [-1, 1]) at every position, row-major."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device, dtype=dtype),
                            torch.linspace(-1, 1, w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([torch.ones_like(xs), xs, ys], -1).reshape(h * w, 3)


def _fit_planes(flat: torch.Tensor, basis: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Least-squares planes ``[rows, 3, C]`` of ``flat`` ``[rows, N, C]`` over the positions ``idx`` ``[rows, K]``."""
    a = basis[idx]  # [rows, K, 3]
    b = flat.gather(1, idx[..., None].expand(-1, -1, flat.shape[-1]))
    ata = a.transpose(1, 2) @ a + 1e-6 * torch.eye(3, device=a.device, dtype=a.dtype)
    return torch.linalg.solve(ata, a.transpose(1, 2) @ b)


def background_planes(x: torch.Tensor, share: float = BACKGROUND_SHARE) -> torch.Tensor:
    """Per channel, the plane (mean and linear gradient) of each row's background, at every position:
    ``x`` ``[rows, C, H, W]`` -> float32 ``[rows, C, H, W]``. The background is the ``share`` of the
    positions nearest the row's per-channel median, then the ``share`` nearest that first fit's plane,
    so a gradient's far ends count as background and the row's objects do not."""
    rows, c, h, w = x.shape
    flat = x.float().flatten(2).transpose(1, 2)  # [rows, N, C]
    basis = _plane_basis(h, w, flat.device, flat.dtype)
    keep = max(3, int(round(share * h * w)))
    d = (flat - flat.median(dim=1, keepdim=True).values).norm(dim=-1)
    coef = _fit_planes(flat, basis, d.topk(keep, dim=1, largest=False).indices)
    d = (flat - basis @ coef).norm(dim=-1)
    coef = _fit_planes(flat, basis, d.topk(keep, dim=1, largest=False).indices)
    return (basis @ coef).transpose(1, 2).reshape(rows, c, h, w)


def background_adain(x: torch.Tensor, ref: torch.Tensor, share: float = BACKGROUND_SHARE,
                     eps: float = ADAIN_EPS) -> torch.Tensor:
    """AdaIN of latents ``x`` ``[rows, C, H, W]`` to ``ref`` ``[1, C, H, W]`` with a plane for the
    mean: per channel, each one's background plane (:func:`background_planes`: colour and linear
    gradient) is taken off, the rest is scaled by the reference's spread over its own, and the
    reference's plane is put on. So the rows take the reference's background colour, gradient and
    tone while their objects stay theirs. Shapes model, 8 seeds, distance of the rows' background
    (colour and gradient) to the reference's, plain batch 0.108: this 0.014 with every row closer
    than in the plain batch; a mean over the background instead of the plane 0.033 (two rows not
    closer: a per-channel mean cannot turn a gradient); whole-latent AdaIN 0.036. Float32."""
    planes_x, planes_r = background_planes(x, share), background_planes(ref, share)
    rest_x, rest_r = x.float() - planes_x, ref.float() - planes_r
    sx, sr = channel_stats(rest_x, (2, 3), eps)[1], channel_stats(rest_r, (2, 3), eps)[1]
    return (rest_x / sx * sr + planes_r).to(x.dtype)


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
        window, each other row's guided prediction of the clean latent takes the reference row's
        background plane and spread per channel (:func:`background_adain`, blended by ``strength``;
        not in the paper)."""
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
        """Rows 1.. of the guided x0 prediction take row 0's background plane and spread per channel
        (:func:`background_adain`, inside the window)."""
        if run is None or denoised.shape[0] < 2 or not run.within(self.window):
            return denoised
        moved = background_adain(denoised[1:], denoised[:1])
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
