"""Inversion on the host: run the sampler backwards, and put the source rows back on its path.

:func:`invert` runs the host's own sampling entry point (``comfy.sample.sample_custom``: model
loading, conditioning, CFG) with a sampler function that walks the schedule from the picture
(sigma 0) up to noise, recording every latent (:class:`..core.inversion.Trajectory`).

:class:`InversionGuide` makes a plain KSampler follow that trajectory. It is two hooks on a
model clone: a link of the pack's UNet wrapper chain (outermost, so the exact source pass and the
router see the corrected rows) that moves each row by its group's offset to the trajectory, and a
post-CFG function (always the last one) that turns the guided x0 prediction into the one that
makes the sampler's Euler step land where direct inversion puts it. The guide keeps no state but
the last step seen (to refuse samplers that evaluate a step twice); a run starting at step 0
starts clean.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.controller import COND
from ..core.inversion import (DRIFT_TOLERANCE, RowPlan, Trajectory, drift, guided_denoised, invert_step,
                              source_offsets)
from .compat import set_post_cfg
from .progress import Progress
from .unet_chain import INVERSION_RANK, Link, set_link

GUIDE_LINK = "inversion"
LATENT_KEY = "attention_inversion"  # the LATENT dict entry that carries the trajectory


def schedule(model, sampler: str, scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """The sigmas a KSampler with these settings runs on ``model`` (the host's own computation)."""
    import comfy.samplers

    target = model if hasattr(model, "get_model_object") else model.model  # hosts before 2024-06: the BaseModel
    device = getattr(model, "load_device", torch.device("cpu"))
    ks = comfy.samplers.KSampler(target, steps=steps, device=device, sampler=sampler, scheduler=scheduler,
                                 denoise=denoise, model_options=model.model_options)
    return ks.sigmas.detach().cpu().float()


def invert(model, positive, latent: dict, sampler: str, scheduler: str, steps: int, denoise: float,
           method: str) -> Trajectory:
    """Invert ``latent['samples']`` with the source prompt ``positive`` at cfg 1 (one model pass a step)."""
    import comfy.sample
    import comfy.samplers

    sigmas = schedule(model, sampler, scheduler, steps, denoise)
    if len(sigmas) < 2:
        raise ValueError("nothing to invert: the schedule has no step (denoise 0?)")
    samples = latent["samples"]
    path: list[torch.Tensor] = []
    progress = Progress(len(sigmas) - 1)

    def backwards(model_k, x, sigmas_run, extra_args=None, callback=None, disable=None):
        extra_args = {} if extra_args is None else extra_args
        s_in = x.new_ones([x.shape[0]])
        path.append(x.detach().float().cpu())
        for i in range(len(sigmas_run) - 1, 0, -1):  # sigma 0 -> sigmas_run[0]
            low, high = float(sigmas_run[i]), float(sigmas_run[i - 1])
            denoised = model_k(x, sigmas_run[i - 1] * s_in, **extra_args)
            x = invert_step(x, denoised, low, high)
            path.append(x.detach().float().cpu())
            progress.advance()
        return x

    noise = torch.zeros_like(samples)  # the host adds noise * sigma: none, so x starts at the picture
    with torch.inference_mode():  # as the host runs its samplers (also when a script calls the node)
        comfy.sample.sample_custom(model, noise, 1.0, comfy.samplers.KSAMPLER(backwards), sigmas, positive,
                                   positive, samples, noise_mask=None, disable_pbar=True)
    latents = torch.stack(path[::-1])  # latents[i] at sigmas[i]
    if not torch.isfinite(latents).all():
        raise ValueError("the inversion produced NaN or infinite latents (check the model and the input latent)")
    return Trajectory(sigmas, latents, method, sampler, scheduler, steps, float(denoise))


class InversionGuide:
    """The UNet-chain link and the post-CFG function that keep sampling on a trajectory."""

    post_cfg_last = True  # compat.set_post_cfg keeps it after every other post-CFG function

    def __init__(self, trajectory: Trajectory, plan: RowPlan, node: str):
        self.trajectory = trajectory
        self.plan = plan
        self.node = node
        self.last_step = -1

    def __deepcopy__(self, memo):
        return self

    def to(self, device):
        return self

    # -- where the run is ------------------------------------------------------------------
    def _step(self, sigma) -> int:
        value = float(sigma.flatten()[0]) if isinstance(sigma, torch.Tensor) else float(sigma)
        step = self.trajectory.step_of(value)
        if step is None:
            raise ValueError(
                f"{self.node}: the sampler evaluated the model at sigma {value:.4g}, which is not a step of the "
                f"inversion ({self.trajectory.describe()}). Sample with the inversion's sampler (euler or ddim), "
                "scheduler, steps and denoise.")
        return step

    def _check_rows(self, rows: int) -> None:
        if rows != self.plan.rows:
            raise ValueError(
                f"{self.node}: the sampler's latent has {rows} rows, but the inverted picture was set up for "
                f"{self.plan.rows}. Sample the LATENT this node returns (an inverted LATENT goes where the empty "
                "latent went).")

    def _offsets(self, step: int, x: torch.Tensor) -> torch.Tensor:
        if self.trajectory.method == "direct" or step == 0:
            return source_offsets(self.trajectory, self.plan, step, x)
        return torch.zeros_like(x)

    # -- UNet wrapper chain link -----------------------------------------------------------
    def link(self, next_call: Callable[[dict], torch.Tensor], args: dict) -> torch.Tensor:
        x = args["input"]
        chunks = len(args.get("cond_or_uncond") or [COND])
        rows = x.shape[0] // chunks
        self._check_rows(rows)
        step = self._step(args["timestep"])
        off = self._offsets(step, x[:rows])
        return next_call(dict(args, input=x + off.repeat(chunks, 1, 1, 1).to(x.dtype)))

    # -- post-CFG --------------------------------------------------------------------------
    def __call__(self, args: dict) -> torch.Tensor:
        denoised, x = args["denoised"], args["input"]
        self._check_rows(x.shape[0])
        step = self._step(args["sigma"])
        if step == 0:
            self.last_step = 0
        elif step == self.last_step:
            raise ValueError(
                f"{self.node}: the sampler evaluated step {step + 1} of {self.trajectory.steps} twice (a second-order "
                "sampler such as heun or dpm_2). An inverted picture is sampled with euler or ddim, the "
                "inversion's own step.")
        off = self._offsets(step, x)
        if self.trajectory.method == "direct" and step > 0:
            away = drift(self.trajectory, self.plan, step, off)
            if away > DRIFT_TOLERANCE:
                raise ValueError(
                    f"{self.node}: at step {step + 1} the source row is {away:.2g} (relative) off the inversion's path: "
                    "the sampler is not euler or ddim (or the latent was changed between steps). Direct inversion "
                    "needs the inversion's sampler, euler or ddim.")
        self.last_step = step
        return guided_denoised(self.trajectory, self.plan, step, x, denoised, off,
                               correct=self.trajectory.method == "direct")


def install_guide(model, trajectory: Trajectory | None, plan: RowPlan | None, node: str) -> None:
    """Put a guide for ``trajectory`` and ``plan`` on ``model`` (a clone the caller owns); None removes
    the guide an input model carried (the node makes a new latent)."""
    kept = [f for f in model.model_options.get("sampler_post_cfg_function", []) if not isinstance(f, InversionGuide)]
    model.model_options["sampler_post_cfg_function"] = kept
    if trajectory is None or plan is None:
        set_link(model, GUIDE_LINK, None)
        return
    guide = InversionGuide(trajectory, plan, node)
    set_link(model, GUIDE_LINK, Link(GUIDE_LINK, INVERSION_RANK, guide.link))
    set_post_cfg(model, guide, replaces=InversionGuide)


def trajectory_of(latent, node: str, input_name: str = "latent") -> Trajectory | None:
    """The trajectory an inverted LATENT carries (None for any other latent), checked against its samples."""
    if not isinstance(latent, dict):
        return None
    traj = latent.get(LATENT_KEY)
    if traj is None:
        return None
    if not isinstance(traj, Trajectory):
        raise ValueError(f"{node}: input '{input_name}' carries a '{LATENT_KEY}' entry that is not an inversion.")
    samples = latent.get("samples")
    if not isinstance(samples, torch.Tensor) or tuple(samples.shape) != tuple(traj.latents.shape[1:]):
        raise ValueError(
            f"{node}: input '{input_name}' was changed after the inversion (its samples are "
            f"{tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__}, the inversion "
            f"holds {tuple(traj.latents.shape[1:])}). Connect the Diffusion Inversion node's LATENT directly.")
    return traj
