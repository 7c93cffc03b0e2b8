"""Shared per-step noise for ancestral and SDE samplers, and a SAMPLER that uses it.

Contract: **every latent row gets exactly the per-step noise a plain single-row run with this
seed would get.** Rows that also share their initial noise (a LATENT whose ``batch_index`` is
the same for every row) then follow one noise path, so they differ only by what the model
sees (prompt, attention edits).

The host's ancestral samplers draw ``randn_like(x)`` for the whole batch every step and its
SDE samplers build one Brownian tree over the whole batch: each row gets different noise.
:func:`shared_noise_sampler` wraps a built-in k-diffusion sampler and passes a
``noise_sampler`` that draws one row and repeats it:

* Gaussian step noise (ancestral samplers, ddpm, lcm, ...): hosts whose
  ``default_noise_sampler`` takes a ``seed`` (2024-10 on) draw from a generator seeded with
  the run's seed; older hosts draw from the global generator right after the initial noise,
  which a private generator reproduces (seed, then one row of initial noise skipped on CPU).
* Brownian step noise (``dpmpp_*sde*``): the host's ``BrownianTreeNoiseSampler`` built on one
  row with the run's seed, exactly as a single-row run builds it.

The wrapper also publishes the run's sigmas as ``transformer_options['sample_sigmas']`` and
tells the pack's attention router that a run starts, so the router's step clock is exact.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch

BROWNIAN = "brownian"
GAUSSIAN = "gaussian"


def noise_kind(sampler_name: str) -> str:
    """Which step noise the host's sampler of this name draws by default."""
    return BROWNIAN if sampler_name.startswith("dpmpp") and "sde" in sampler_name else GAUSSIAN


def _sampling():
    import comfy.k_diffusion.sampling as sampling

    return sampling


def _host_seeds_gaussian_noise() -> bool:
    """True on hosts whose default noise sampler seeds its own generator with the run's seed."""
    return "seed" in inspect.signature(_sampling().default_noise_sampler).parameters


class RowSharedNoise:
    """``noise_sampler(sigma, sigma_next)`` returning one row's noise repeated over ``rows``."""

    def __init__(self, x: torch.Tensor, sigmas: torch.Tensor, seed: int | None, kind: str, cpu_tree: bool = True):
        self.rows = x.shape[0]
        one = x[:1]
        self.shape, self.dtype, self.device = one.shape, one.dtype, one.device
        if kind == BROWNIAN:
            s = sigmas[sigmas > 0]
            self._draw = _sampling().BrownianTreeNoiseSampler(one, s.min(), sigmas.max(), seed=seed, cpu=cpu_tree)
        elif seed is None:
            self._draw = lambda a, b: torch.randn(self.shape, dtype=self.dtype, device=self.device)
        else:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed))
            if not _host_seeds_gaussian_noise() and self.device.type == "cpu":
                # comfy.sample.prepare_noise drew one row of initial noise from this stream
                torch.randn(self.shape, dtype=torch.float32, generator=gen, device="cpu")
            self._gen = gen
            self._draw = lambda a, b: torch.randn(self.shape, dtype=self.dtype, device=self.device, generator=self._gen)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        row = self._draw(sigma, sigma_next)
        return row.to(self.dtype).expand(self.rows, *row.shape[1:]).contiguous()


def publish_sigmas(extra_args: dict, sigmas: torch.Tensor) -> dict:
    """A copy of ``extra_args`` whose model options carry ``transformer_options['sample_sigmas']``."""
    options = dict(extra_args.get("model_options") or {})
    transformer = dict(options.get("transformer_options") or {})
    transformer["sample_sigmas"] = sigmas
    options["transformer_options"] = transformer
    return dict(extra_args, model_options=options)


def _start_router_run(model_options: dict) -> None:
    from .router import find_router

    class _Holder:
        pass

    holder = _Holder()
    holder.model_options = model_options
    router = find_router(holder)
    if router is not None:
        router.start_run()


def shared_noise_function(sampler_name: str) -> Callable:
    """A k-diffusion style sampler function: the host's ``sampler_name`` with row-shared noise."""
    import comfy.samplers

    inner = comfy.samplers.ksampler(sampler_name).sampler_function
    accepts_noise = "noise_sampler" in inspect.signature(inner).parameters
    kind = noise_kind(sampler_name)
    cpu_tree = not sampler_name.endswith("_gpu")

    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        extra_args = publish_sigmas(extra_args or {}, sigmas)
        _start_router_run(extra_args["model_options"])
        if accepts_noise and "noise_sampler" not in options:
            options["noise_sampler"] = RowSharedNoise(x, sigmas, extra_args.get("seed"), kind, cpu_tree)
        return inner(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)

    return sample


def shared_noise_sampler(sampler_name: str):
    """A SAMPLER (for SamplerCustom) running ``sampler_name`` with the same noise in every row."""
    import comfy.samplers

    if sampler_name not in comfy.samplers.KSAMPLER_NAMES:
        raise ValueError(f"SharedNoiseSampler: input 'sampler_name' is {sampler_name!r}; "
                         f"use one of {', '.join(comfy.samplers.KSAMPLER_NAMES)}.")
    return comfy.samplers.KSAMPLER(shared_noise_function(sampler_name))
