"""Where a sampling run is, from the sigma of each model call."""
from __future__ import annotations

import torch

from ..core.controller import RunInfo


class RunClock:
    """Knows when a sampling run starts and ends and turns sigma into a step and a progress.

    Two ways to know the run:

    * **bounded** (hosts with named wrappers, 2025 on): an ``OUTER_SAMPLE`` wrapper calls
      :meth:`begin` with the run's sigmas before the first model call and :meth:`end` after the
      last one, also when the run fails or is interrupted. The step is the index of the call's
      sigma in that schedule (intermediate sigmas of multi-evaluation samplers count for the step
      they fall in); nothing is inferred.
    * **inferred** (older hosts, or model calls outside a wrapped run): a run starts when sigma
      rises above the previous call's sigma, when the published schedule (``sample_sigmas``)
      changes, or when a call comes at the run's first sigma after the step at that sigma was
      completed (:meth:`step_done`, from the post-CFG hook): the rerun of a run that stopped
      after its first step. No sampler evaluates its first sigma again after finishing that step
      (Heun and DPM2 repeat later sigmas only). The step counts distinct sigmas, and without a
      schedule, progress is the fraction of the model's timesteps already denoised (ComfyUI's
      ControlNet start/end percent).
    """

    def __init__(self, model_sampling=None):
        self.model_sampling = model_sampling
        self.bounded = False
        self._last_obj = None
        self._last_sigma: float | None = None
        self._schedule_obj = None
        self._schedule: list[float] | None = None
        self._step = 0
        self._first_sigma: float | None = None  # inferred runs: the sigma the run started at
        self._first_step_done = False
        self.info: RunInfo | None = None

    def begin(self, schedule: torch.Tensor) -> None:
        """A sampling run over ``schedule`` (its sigmas, last one 0 or the end) starts now."""
        self.bounded = True
        self._schedule_obj = None
        self._schedule = [float(s) for s in schedule.flatten()]
        self._last_obj = self._last_sigma = None
        self._step = 0
        self.info = None

    def end(self) -> None:
        """The bounded run is over: later calls outside a run fall back to inference."""
        self.bounded = False
        self._last_obj = self._last_sigma = None
        self._schedule_obj = self._schedule = None
        self.info = None

    def step_done(self, sigma: float) -> None:
        """The guided prediction of the step at ``sigma`` is complete (post-CFG)."""
        if self._first_sigma is not None and _same(sigma, self._first_sigma):
            self._first_step_done = True

    def force_new_run(self) -> None:
        """Make the next call start a new run (the pack's own samplers; no-op in a bounded run)."""
        if not self.bounded:
            self._last_obj = None
            self._last_sigma = None

    def update(self, sigmas: torch.Tensor | None, schedule: torch.Tensor | None) -> bool:
        """Advance to the call with ``sigmas``; returns True when a new run starts (inferred only)."""
        if sigmas is not None and sigmas is self._last_obj and self.info is not None:
            return False
        self._last_obj = sigmas
        sigma = float(sigmas.max()) if sigmas is not None else 0.0
        if self.bounded:
            self._last_sigma = sigma
            self.info = self._info(sigma)
            return False
        new_run = self._last_sigma is None or sigma > self._last_sigma * (1 + 1e-5) + 1e-8 \
            or (self._first_step_done and _same(sigma, self._first_sigma))
        if schedule is not None and schedule is not self._schedule_obj:
            values = [float(s) for s in schedule.flatten()]
            if values != self._schedule:
                new_run = True
            self._schedule_obj, self._schedule = schedule, values
        elif schedule is None:
            self._schedule_obj = self._schedule = None
        if new_run:
            self._step = 0
            self._first_sigma, self._first_step_done = sigma, False
        elif sigma < self._last_sigma * (1 - 1e-5):
            self._step += 1
        self._last_sigma = sigma
        self.info = self._info(sigma)
        return new_run

    def _info(self, sigma: float) -> RunInfo:
        if self._schedule and len(self._schedule) > 1:
            total = len(self._schedule) - 1
            step = 0
            for i, s in enumerate(self._schedule[:-1]):
                if s >= sigma * (1 - 1e-4):
                    step = i
            return RunInfo(step=step, progress=step / total, sigma=sigma, total_steps=total)
        progress = 0.0
        ms = self.model_sampling
        if ms is not None and hasattr(ms, "timestep") and hasattr(ms, "sigmas"):
            t = float(ms.timestep(torch.tensor(sigma)))
            t_max = max(len(ms.sigmas) - 1, 1)
            progress = min(max(1.0 - t / t_max, 0.0), 1.0)
        return RunInfo(step=self._step, progress=progress, sigma=sigma, total_steps=None)


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b)) + 1e-8
