"""Edge-aware upsampling: the guided filter (He, Sun and Tang, ECCV 2010) with a colour guide.

Coarse per-class scores (an attention grid upsampled to the image) have edges only as sharp as
the grid's cells. The guided filter fits, in every window of the image, each class score as a
linear function of the pixel colour, so the score follows the picture's own colour edges inside
a cell. Box means are computed from cumulative sums: the cost is linear in the pixels whatever
the radius.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of ``[..., H, W]`` over the ``(2 radius + 1)``-square window of each pixel, clipped at the borders.

    Cumulative sums in float64 (exact enough for megapixel images), so the cost does not grow
    with ``radius``."""
    h, w = x.shape[-2:]
    r = int(radius)
    c = torch.nn.functional.pad(x.double(), (1, 0, 1, 0)).cumsum(-2).cumsum(-1)  # c[i, j] = sum x[:i, :j]
    top = torch.arange(h, device=x.device).sub(r).clamp(0, h)
    bottom = torch.arange(h, device=x.device).add(r + 1).clamp(0, h)
    left = torch.arange(w, device=x.device).sub(r).clamp(0, w)
    right = torch.arange(w, device=x.device).add(r + 1).clamp(0, w)
    rows_b, rows_t = c[..., bottom, :], c[..., top, :]
    total = rows_b[..., right] - rows_b[..., left] - rows_t[..., right] + rows_t[..., left]
    count = (bottom - top).double()[:, None] * (right - left).double()[None, :]
    return (total / count).to(x.dtype)


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float, subsample: int = 1) -> torch.Tensor:
    """Filter ``source`` ``[C, H, W]`` (e.g. class scores) guided by the colour image ``guide`` ``[3, H, W]``.

    In each window the output is ``a . I + b``, the least-squares fit of the source on the
    guide's colour ``I`` regularised by ``eps`` (in the guide's units squared: with colours in
    0..1, 1e-2 keeps edges of a contrast above about 0.1). With ``subsample`` s > 1 the fit is
    computed on every s-th pixel and its coefficients upsampled (the fast guided filter, He and
    Sun 2015): about s^2 times less work, for a radius well above s. Returns ``[C, H, W]`` float32."""
    full = guide.float()
    size = tuple(full.shape[-2:])
    s = max(1, int(subsample))
    g = full if s == 1 else F.interpolate(full[None], scale_factor=1 / s, mode="bilinear", align_corners=False)[0]
    p = source.float() if s == 1 else F.interpolate(source.float()[None], size=g.shape[-2:], mode="bilinear",
                                                     align_corners=False)[0]
    radius = max(1, round(radius / s))
    n = g.shape[0]
    mean_i = box_mean(g, radius)  # [3, H, W]
    mean_p = box_mean(p, radius)  # [C, H, W]
    corr_ii = box_mean(g[:, None] * g[None, :], radius)  # [3, 3, H, W]
    cov_ii = corr_ii - mean_i[:, None] * mean_i[None, :]
    corr_ip = box_mean(g[None] * p[:, None], radius)  # [C, 3, H, W]
    cov_ip = corr_ip - mean_i[None] * mean_p[:, None]
    sigma = cov_ii.permute(2, 3, 0, 1) + eps * torch.eye(n, dtype=g.dtype, device=g.device)  # [H, W, 3, 3]
    a = torch.linalg.solve(sigma[None], cov_ip.permute(0, 2, 3, 1)[..., None])[..., 0]  # [C, H, W, 3]
    a = a.permute(0, 3, 1, 2)  # [C, 3, H, W]
    b = mean_p - (a * mean_i[None]).sum(1)
    mean_a, mean_b = box_mean(a, radius), box_mean(b, radius)
    if s > 1:
        mean_a = F.interpolate(mean_a, size=size, mode="bilinear", align_corners=False)
        mean_b = F.interpolate(mean_b[None], size=size, mode="bilinear", align_corners=False)[0]
    return (mean_a * full[None]).sum(1) + mean_b
