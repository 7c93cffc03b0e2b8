"""Inversion of a picture's latent and the direct-inversion correction, as pure tensor math.

Latents here are in the sampler's space (the host's ``process_latent_in`` applied, noise
scaled as k-diffusion's ``x = x0 + sigma * eps``). ``sigmas`` is a sampling schedule, high to
low, ending in 0; step ``i`` of a run evaluates the model at ``sigmas[i]`` and moves to
``sigmas[i + 1]``.

* :func:`invert_step` runs the Euler / DDIM step backwards: from the latent at the lower sigma to
  the higher one, with the model's prediction at the higher sigma (DDIM inversion).
* :class:`Trajectory` keeps every latent the inversion passed through: ``latents[i]`` is the
  latent at ``sigmas[i]``; ``latents[-1]`` is the picture, ``latents[0]`` its noise.
* :func:`guided_denoised` is the direct inversion of Ju et al. (ICLR 2024) written for a
  sampler that only takes x0 predictions: it returns the prediction that makes an Euler step
  land the source row exactly on the trajectory, and moves every edited row of the source's
  group by the same correction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

METHODS = ("direct", "negative prompt", "plain")
SAMPLERS = ("euler", "ddim")  # first-order deterministic steps: the only ones inverted exactly
SIGMA_TOLERANCE = 1e-4  # relative: a model call's sigma matches a schedule entry
DRIFT_TOLERANCE = 1e-3  # relative RMS: an Euler run keeps the source row on the trajectory


def invert_step(x_low: torch.Tensor, denoised_high: torch.Tensor, sigma_low: float, sigma_high: float) -> torch.Tensor:
    """The latent at ``sigma_high`` whose Euler step (at ``sigma_high``) leads back to ``x_low``.

    ``denoised_high`` is the model's x0 prediction for ``x_low`` evaluated at ``sigma_high``
    (the DDIM-inversion approximation: the step's direction is taken at the point it starts from).
    """
    eps = (x_low - denoised_high) / sigma_high
    return x_low + eps * (sigma_high - sigma_low)


@dataclass
class Trajectory:
    """The latents an inversion passed through, and how it ran.

    ``sigmas`` ``[N + 1]`` high to low (the last is 0), ``latents`` ``[N + 1, B, C, H, W]`` in
    the sampler's space, ``latents[i]`` at ``sigmas[i]``.
    """

    sigmas: torch.Tensor
    latents: torch.Tensor
    method: str = "direct"
    sampler: str = "euler"
    scheduler: str = "normal"
    steps: int = 0
    denoise: float = 1.0

    @property
    def rows(self) -> int:
        return int(self.latents.shape[1])

    def describe(self) -> str:
        """How the inversion ran, as an error message quotes it."""
        return (f"{self.steps} steps of {self.sampler} / {self.scheduler}, denoise {self.denoise:g} "
                f"(sigmas {float(self.sigmas[0]):.4g} to {float(self.sigmas[-2]):.4g})")

    def step_of(self, sigma: float) -> int | None:
        """Index ``i`` (0 to N - 1) of the step evaluated at ``sigma``, or None if no step is."""
        s = self.sigmas[:-1].double()
        close = (s - float(sigma)).abs() <= SIGMA_TOLERANCE * s.abs().clamp_min(1e-6)
        hits = torch.nonzero(close).flatten()
        return int(hits[0]) if len(hits) else None

    def __deepcopy__(self, memo):
        return self  # read-only after the inversion; LATENT dicts are copied by hosts and nodes


@dataclass(frozen=True)
class RowPlan:
    """Which trajectory each latent row follows: ``source[r]`` is the batch row that leads row
    r's group (a source row leads itself), ``picture[r]`` the trajectory row of that group."""

    source: tuple[int, ...]
    picture: tuple[int, ...]
    free: frozenset[int] = frozenset()  # rows no trajectory guides: new generations beside the picture

    @property
    def rows(self) -> int:
        return len(self.source)

    @staticmethod
    def identity(rows: int) -> "RowPlan":
        """Every row is a source row following its own picture (plain reconstruction)."""
        return RowPlan(tuple(range(rows)), tuple(range(rows)))

    @staticmethod
    def one_source(rows: int) -> "RowPlan":
        """Row 0 is the picture; every other row is an edit of it (P2P targets, clip frames)."""
        return RowPlan((0,) * rows, (0,) * rows)

    @staticmethod
    def reference(rows: int) -> "RowPlan":
        """Row 0 is the picture; every other row is a new generation, not guided (Style Aligned)."""
        return RowPlan((0,) * rows, (0,) * rows, frozenset(range(1, rows)))

    def guided(self, like: torch.Tensor) -> torch.Tensor:
        """``[rows, 1, 1, 1]`` of 1 for the rows a trajectory guides, 0 for the free rows."""
        keep = torch.ones(self.rows, 1, 1, 1, device=like.device, dtype=like.dtype)
        if self.free:
            keep[sorted(self.free)] = 0
        return keep

    @staticmethod
    def pairs(images: int) -> "RowPlan":
        """Rows 0..B-1 are the pictures, rows B..2B-1 their edits (Token Shift's source rows)."""
        own = tuple(range(images))
        return RowPlan(own + own, own + own)


def source_offsets(trajectory: Trajectory, plan: RowPlan, step: int, x: torch.Tensor) -> torch.Tensor:
    """Per row, the offset that puts its group's source row on the trajectory at ``step``:
    ``latents[step][picture] - x[source]``, ``[rows, C, H, W]``."""
    target = trajectory.latents[step].to(x.device, x.dtype)
    picture = torch.tensor(plan.picture, device=x.device)
    source = torch.tensor(plan.source, device=x.device)
    return (target.index_select(0, picture) - x.index_select(0, source)) * plan.guided(x)


def drift(trajectory: Trajectory, plan: RowPlan, step: int, offsets: torch.Tensor) -> float:
    """How far the source rows are from the trajectory at ``step``, relative (RMS of their
    :func:`source_offsets` over the RMS of the trajectory's latents)."""
    sources = sorted(set(plan.source))
    off = offsets.float().index_select(0, torch.tensor(sources, device=offsets.device))
    target = trajectory.latents[step].float().index_select(0, torch.tensor([plan.picture[s] for s in sources]))
    return float(off.pow(2).mean().sqrt()) / max(float(target.pow(2).mean().sqrt()), 1e-8)


def guided_denoised(trajectory: Trajectory, plan: RowPlan, step: int, x: torch.Tensor, denoised: torch.Tensor,
                    offsets: torch.Tensor, correct: bool) -> torch.Tensor:
    """The x0 prediction to hand an Euler sampler so that each row steps from ``x + offsets``.

    ``x``: the sampler's latent ``[rows, C, H, W]``; ``denoised``: the guided prediction for
    ``x + offsets`` (the rows the model saw); ``offsets``: :func:`source_offsets`, or zeros for
    rows not moved at this step. With ``correct`` (direct inversion), the source row's step is
    corrected to land on ``latents[step + 1]`` and every row of its group gets that correction.
    Euler: ``x_next = x + (x - d) * h / sigma`` with ``h = sigma_next - sigma``; solving for the
    ``d`` that gives ``x_next = x' + (x' - denoised) * h / sigma + c`` (``x' = x + offsets``)
    gives ``d = denoised - offsets - (offsets + c) * sigma / h``.
    """
    sigma = float(trajectory.sigmas[step])
    sigma_next = float(trajectory.sigmas[step + 1])
    h = sigma_next - sigma
    out = denoised.float()
    off = offsets.to(out.device, torch.float32)
    corr = torch.zeros_like(out)
    if correct:
        source = torch.tensor(plan.source, device=out.device)
        picture = torch.tensor(plan.picture, device=out.device)
        z = trajectory.latents[step].to(out.device, torch.float32).index_select(0, picture)
        z_next = trajectory.latents[step + 1].to(out.device, torch.float32).index_select(0, picture)
        d_src = out.index_select(0, source)
        natural = z + (z - d_src) * (h / sigma)
        corr = (z_next - natural) * plan.guided(out)
    return (out - off - (off + corr) * (sigma / h)).to(denoised.dtype)
