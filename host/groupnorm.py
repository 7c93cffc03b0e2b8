"""Shared GroupNorm statistics across a batch (Style Aligned's ``share_group_norm``), by object patches.

Style Aligned (Hertz et al. 2024, ``sa_handler.register_shared_norm``) computes every row's
GroupNorm statistics jointly over the row and its batch's reference row: the row is concatenated
with the reference along a spatial axis, normalised, and cropped back. Here each GroupNorm of the
UNet is replaced, on a clone of the ModelPatcher only (``ModelPatcher.add_object_patch``), by a
shallow copy of itself (same class, same parameter dict, so weight patches, casting and offloading
work as on the original) whose ``forward`` runs the host's own GroupNorm on the whole batch and
then, while a :class:`NormShare` is armed, recomputes the rows other than each chunk's reference
from the joint batch ``[row | reference]`` and blends them in by ``strength``. The reference rows
keep the plain result, bit for bit.

A :class:`NormShare` is armed only for one model call at a time: a UNet wrapper link
(:func:`install_norm_share`) gives it the chunk layout before the call and disarms it in a
``finally``; the controller that owns it says whether the call's step is in its window
(:meth:`NormShare.arm`, from its ``model_input`` hook). Nothing survives a call.
"""
from __future__ import annotations

import copy
import math
import types
from typing import Callable

import torch

from ..core.controller import COND
from .router import SILENT
from .unet_chain import ROUTER_RANK, Link, set_link

NORM_LINK = "style_group_norm"  # name of the link in the UNet wrapper chain
NORM_RANK = ROUTER_RANK + 5  # inside the router's link: the controllers' model_input hooks ran already
_MARK = "_attention_motion_norm_share"  # attribute naming the NormShare of a patched GroupNorm


def site_blocks(name: str) -> str:
    """'input', 'middle' or 'output' (the UNet's output blocks and final norm) for a module path."""
    if name.startswith("input_blocks"):
        return "input"
    if name.startswith("middle_block"):
        return "middle"
    return "output"


def joint_group_norm(norm_forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     ref: torch.Tensor) -> torch.Tensor:
    """``x`` ``[n, C, ...]`` normalised with statistics taken jointly over each row and ``ref``
    (``[n, C, ...]``): ``norm_forward`` of the two concatenated along the last axis, cropped."""
    width = x.shape[-1]
    return norm_forward(torch.cat([x, ref], dim=-1))[..., :width]


class NormShare:
    """Which rows share statistics with which reference during the current model call."""

    def __init__(self, strength: float, levels: frozenset[int] | None, blocks_match: Callable[[str], bool]):
        self.strength = float(strength)
        self.levels = levels
        self.blocks_match = blocks_match
        self.active = False  # the controller's window says share at this step
        self.rows: int | None = None  # latent rows per conditioning chunk of the current call
        self.latent_hw: tuple[int, int] | None = None

    def __deepcopy__(self, memo):
        return self

    def arm(self, active: bool) -> None:
        """Called by the controller for every chunk of a model call (its ``model_input`` hook)."""
        self.active = bool(active)

    def begin(self, rows: int, latent_hw: tuple[int, int]) -> None:
        self.rows, self.latent_hw = int(rows), (int(latent_hw[0]), int(latent_hw[1]))

    def end(self) -> None:
        self.active, self.rows, self.latent_hw = False, None, None

    def level_of(self, h: int) -> int | None:
        lh = self.latent_hw[0]
        for level in range(8):
            if lh == h:
                return level
            lh = math.ceil(lh / 2)
        return None

    def plan(self, site: str, x: torch.Tensor):
        """``(others, refs)``: row indices of ``x`` to recompute and their references, or None."""
        if not self.active or self.rows is None or self.rows < 2 or x.dim() < 3 or self.strength <= 0:
            return None
        if x.shape[0] % self.rows or not self.blocks_match(site):
            return None
        if self.levels is not None and (x.dim() != 4 or self.level_of(int(x.shape[-2])) not in self.levels):
            return None
        others, refs = [], []
        for start in range(0, x.shape[0], self.rows):
            others.extend(range(start + 1, start + self.rows))
            refs.extend([start] * (self.rows - 1))
        return others, refs


def _shared_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``forward`` of a patched GroupNorm copy (bound to the copy)."""
    host_forward = type(self).forward.__get__(self)
    out = host_forward(x)
    share: NormShare = getattr(self, _MARK)
    plan = share.plan(self._attention_motion_site, x)
    if plan is None:
        return out
    others, refs = plan
    idx = torch.tensor(others, device=x.device)
    shared = joint_group_norm(host_forward, x[idx], x[torch.tensor(refs, device=x.device)])
    plain = out[idx]
    out = out.clone()
    out[idx] = shared if share.strength >= 1 else plain + share.strength * (shared - plain)
    return out


def _unshared(module):
    """The GroupNorm a patched copy was made from (``module`` itself if it is not one)."""
    return getattr(module, "_attention_motion_base", module)


def shared_copy(norm: torch.nn.GroupNorm, share: NormShare, site: str) -> torch.nn.GroupNorm:
    """A shallow copy of ``norm`` (same class and parameters) whose forward shares statistics."""
    base = _unshared(norm)
    patched = copy.copy(base)
    object.__setattr__(patched, "forward", types.MethodType(_shared_forward, patched))
    object.__setattr__(patched, _MARK, share)
    object.__setattr__(patched, "_attention_motion_site", site)
    object.__setattr__(patched, "_attention_motion_base", base)
    return patched


def _current(model, key: str):
    """The module at ``key`` as this patcher would install it: its own object patch, else the
    original (the shared backup while a patched clone is loaded), else the model's attribute."""
    if key in model.object_patches:
        return model.object_patches[key]
    backup = getattr(model, "object_patches_backup", {}) or {}
    if key in backup:
        return backup[key]
    obj = model.model
    for name in key.split("."):
        obj = getattr(obj, name)
    return obj


class NormShareLink:
    """UNet wrapper link: tells the :class:`NormShare` the chunk layout of one model call."""

    def __init__(self, share: NormShare):
        self.share = share

    def __call__(self, next_call, args: dict):
        c = args["c"] if isinstance(args.get("c"), dict) else {}
        if c.get("transformer_options", {}).get(SILENT):
            self.share.end()
            return next_call(args)
        x = args["input"]
        chunks = len(list(args.get("cond_or_uncond") or [COND]))
        try:
            self.share.begin(x.shape[0] // chunks, tuple(x.shape[-2:]))
            return next_call(args)
        finally:
            self.share.end()

    def __deepcopy__(self, memo):
        return self


def install_norm_share(model, share: NormShare | None) -> int:
    """Patch every GroupNorm of ``model``'s UNet (a clone the caller owns) to share statistics
    through ``share``; None removes the pack's patches. Returns the number of GroupNorms patched."""
    unet = model.model.diffusion_model
    names = [n for n, m in unet.named_modules() if isinstance(_unshared(m), torch.nn.GroupNorm) and n]
    count = 0
    for name in names:
        key = "diffusion_model." + name
        current = _current(model, key)
        if share is None:
            if hasattr(current, _MARK):
                if key in model.object_patches:
                    del model.object_patches[key]
            continue
        if not isinstance(_unshared(current), torch.nn.GroupNorm):
            continue
        model.add_object_patch(key, shared_copy(current, share, site_blocks(name)))
        count += 1
    set_link(model, NORM_LINK, Link(NORM_LINK, NORM_RANK, NormShareLink(share)) if share is not None else None)
    return count
