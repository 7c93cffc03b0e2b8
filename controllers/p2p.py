"""Prompt-to-Prompt controllers (Hertz et al., ICLR 2023): one job each.

The latent batch is ``[source, target_1, ..., target_k]``; the conditional chunk's row ``r``
is latent row ``r``. Only the conditional chunk is edited; the source row is never changed, so
it comes out as a plain generation of the source prompt.

* :class:`CrossReplace` - target cross-attention maps taken from the source through a token
  mapping (replace: word to word; refine: aligned tokens), per-token schedule.
* :class:`CrossReweight` - scales the columns of chosen target tokens (no renormalisation, so no
  division: finite factors on finite probabilities stay finite).
* :class:`SelfReplace` - target self-attention uses the source's map:
  ``attention(q_src, k_src, v_tgt)`` through the host's attention (no N x N map is built).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.controller import AttnCall, Controller

NODE = "P2PReplace"
MAX_REWEIGHT = 10.0  # |factor| of a reweighted token


def _check_values(name: str, values: torch.Tensor, lo: float, hi: float) -> None:
    """Last line of defence: a controller never takes NaN, an infinity or a value out of range
    (they would sample into a black image); the node refuses them with a message first."""
    values = torch.as_tensor(values, dtype=torch.float32)
    if not bool(((values >= lo) & (values <= hi)).all()):  # NaN compares False
        raise ValueError(f"{NODE}: {name} must be finite numbers from {lo:g} to {hi:g}.")


def _window(until: torch.Tensor | float, progress: float):
    """True while ``progress`` is inside ``[0, until)``; a window of 1 covers the whole run.

    (Without the run's schedule the host clock reports the last step as progress 1.)
    """
    if isinstance(until, torch.Tensor):
        return (until > progress) | (until >= 1.0)
    return until >= 1.0 or progress < until


@dataclass
class P2PPrompts:
    """The prompts of one P2P batch (row 0 source, then the targets) and the token axis length."""

    source: str
    targets: list[str]
    length: int  # tokens per conditioning row (77 * chunks)

    @property
    def rows(self) -> int:
        return 1 + len(self.targets)


class P2PController(Controller):
    """Base: knows the batch layout and checks that a chunk has one row per prompt."""

    def __init__(self, prompts: P2PPrompts):
        self.prompts = prompts
        self._fitted: dict = {}

    def _check(self, call: AttnCall) -> None:
        if call.rows != self.prompts.rows:
            raise ValueError(
                f"{NODE}: the latent batch has {call.rows} rows but the edit has {self.prompts.rows} "
                f"(1 source + {len(self.prompts.targets)} targets). Sample the LATENT and CONDITIONING "
                f"outputs of {NODE} with its MODEL, without changing the batch size."
            )

    def _fit(self, name: str, value: torch.Tensor, t: int, device) -> torch.Tensor:
        """``value`` (token axis last, length ``prompts.length``) fitted to a context of ``t`` tokens.

        ComfyUI repeats a shorter context to the common multiple when cond and uncond differ in
        length; the token axis then holds whole copies of the prompt's tokens.
        """
        key = (name, t, str(device))
        if key not in self._fitted:
            base = self.prompts.length
            if t % base:
                raise ValueError(f"{NODE}: the conditioning has {t} tokens, not a multiple of the edit's {base}; "
                                 f"use the CONDITIONING output of {NODE}.")
            reps = t // base
            if name == "mapper":  # [k, T, T] -> block diagonal
                eye = torch.eye(reps, dtype=value.dtype)
                fitted = torch.stack([torch.kron(eye, m) for m in value])
            else:
                fitted = value.repeat(*([1] * (value.dim() - 1)), reps)
            self._fitted[key] = fitted.to(device)
        return self._fitted[key]


class CrossReplace(P2PController):
    """Target token ``t`` takes ``source_probs @ mapper[:, t]`` while progress < ``until[t]``."""

    def __init__(self, prompts: P2PPrompts, mapper: torch.Tensor, mapped: torch.Tensor, until: torch.Tensor):
        super().__init__(prompts)
        _check_values("the token mapping", mapper, 0.0, 1.0)
        _check_values("the cross_replace windows", until, 0.0, 1.0)
        self.mapper = mapper.float()  # [k, T, T]
        self.until = torch.where(mapped, until.float(), torch.zeros_like(until, dtype=torch.float32))  # [k, T]
        self.last = float(self.until.max()) if self.until.numel() else 0.0

    def wants_cross(self, call: AttnCall) -> bool:
        return call.is_cond and _window(self.last, call.run.progress)

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        self._check(call)
        t = probs.shape[-1]
        mapper = self._fit("mapper", self.mapper, t, probs.device)
        active = _window(self._fit("until", self.until, t, probs.device), call.run.progress)  # [k, T]
        src = probs[0]
        out = probs.clone()
        for r in range(1, probs.shape[0]):
            if not bool(active[r - 1].any()):
                continue
            mapped = src @ mapper[r - 1]
            out[r] = torch.where(active[r - 1], mapped, probs[r])
            call.edited.add(r)
        return out


class CrossReweight(P2PController):
    """Multiplies target token columns by ``factor[t]`` while progress < ``until[t]``."""

    def __init__(self, prompts: P2PPrompts, factor: torch.Tensor, until: torch.Tensor):
        super().__init__(prompts)
        _check_values("the reweight factors", factor, -MAX_REWEIGHT, MAX_REWEIGHT)
        _check_values("the cross_replace windows", until, 0.0, 1.0)
        self.factor = factor.float()  # [k, T], 1 where unchanged
        self.until = torch.where(self.factor != 1, until.float(), torch.zeros_like(until, dtype=torch.float32))
        self.last = float(self.until.max()) if self.until.numel() else 0.0

    def wants_cross(self, call: AttnCall) -> bool:
        return call.is_cond and _window(self.last, call.run.progress)

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        self._check(call)
        t = probs.shape[-1]
        factor = self._fit("factor", self.factor, t, probs.device)
        active = _window(self._fit("until", self.until, t, probs.device), call.run.progress)
        out = probs
        for r in range(1, probs.shape[0]):
            if not bool(active[r - 1].any()):
                continue
            if out is probs:
                out = probs.clone()
            out[r] = out[r] * torch.where(active[r - 1], factor[r - 1], torch.ones_like(factor[r - 1]))
            call.edited.add(r)
        return out


class SelfReplace(P2PController):
    """Target rows attend with the source's queries and keys while progress < ``until``."""

    def __init__(self, prompts: P2PPrompts, until: float):
        super().__init__(prompts)
        _check_values("self_replace", torch.tensor([float(until)]), 0.0, 1.0)
        self.until = float(until)

    def wants_self(self, call: AttnCall) -> bool:
        return call.is_cond and self.until > 0 and _window(self.until, call.run.progress)

    def self_qkv(self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        self._check(call)
        rows = q.shape[0]
        return q[:1].expand(rows, -1, -1), k[:1].expand(rows, -1, -1), v
