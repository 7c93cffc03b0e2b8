"""Where a sampling run is, from the sigma of each model call."""
from __future__ import annotations

import torch

from ..core.controller import RunInfo


class RunClock:
    """Detects run starts and turns sigma into a step index and a progress fraction.

    Hosts from 2025 pass the run's schedule (``sample_sigmas``): then the step index is exact
    and progress is ``step / steps``. Older hosts do not: a run starts when sigma rises above the
    previous call's sigma, the step counts distinct sigmas, and progress is the fraction of the
    model's timesteps already denoised (the same convention ComfyUI's ControlNet start/end
    percent uses).
    """

    def __init__(self, model_sampling=None):
        self.model_sampling = model_sampling
        self._last_obj = None
        self._last_sigma: float | None = None
        self._schedule_obj = None
        self._schedule: list[float] | None = None
        self._step = 0
        self.info: RunInfo | None = None

    def force_new_run(self) -> None:
        """Make the next call start a new run (used by the pack's own samplers)."""
        self._last_obj = None
        self._last_sigma = None

    def update(self, sigmas: torch.Tensor | None, schedule: torch.Tensor | None) -> bool:
        """Advance to the call with ``sigmas``; returns True when a new run starts."""
        if sigmas is not None and sigmas is self._last_obj and self.info is not None:
            return False
        self._last_obj = sigmas
        sigma = float(sigmas.max()) if sigmas is not None else 0.0
        new_run = self._last_sigma is None or sigma > self._last_sigma * (1 + 1e-5) + 1e-8
        if schedule is not None and schedule is not self._schedule_obj:
            values = [float(s) for s in schedule.flatten()]
            if values != self._schedule:
                new_run = True
            self._schedule_obj, self._schedule = schedule, values
        elif schedule is None:
            self._schedule_obj = self._schedule = None
        if new_run:
            self._step = 0
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
