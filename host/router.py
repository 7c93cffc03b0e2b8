"""The attention router: one patch at every transformer block, dispatching to a controller stack.

Installed on a clone of a ModelPatcher by :func:`install`. Stacking a second controller on an
already-routed model builds a new router holding both controllers and replaces the patches of the
clone; the parent model keeps its own router. Patch objects deep-copy to themselves because
``ModelPatcher.clone`` deep-copies ``model_options`` on some hosts. On hosts with named wrappers
a :class:`RunBoundary` marks the start and end of every sampling run; elsewhere the run clock
infers them from sigma (:mod:`.clock`).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.controller import COND, AttnCall, Controller, RunInfo
from ..core.grid import attention_grid
from .blocks import transformer_sites
from .clock import RunClock
from .compat import host_attention, require_patcher_api, set_post_cfg, set_run_wrapper
from .unet_chain import ROUTER_RANK, Link, set_link

_SLOTS = (("self", "attn1"), ("cross", "attn2"))
ROUTER_LINK = "router"  # name of the router's link in the UNet wrapper chain
# transformer_options flag: a model call made with it set runs without controllers (plain model),
# e.g. the source-only pass of host.passes.source_pass.
SILENT = "attention_motion_silent"
# Set in extra_options by RouterContextPatch: where the controllers' extra tokens start in the context.
EXTRA_CONTEXT_KEY = "attention_motion_extra_context_start"


def attention_probs(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) as ``[rows, heads, N, T]`` in float32, from ``[rows, N, heads*d]``."""
    r, n, c = q.shape
    d = c // heads
    qh = q.reshape(r, n, heads, d).transpose(1, 2).float()
    kh = k.reshape(k.shape[0], k.shape[1], heads, d).transpose(1, 2).float()
    return torch.softmax(qh @ kh.transpose(-1, -2) * d**-0.5, dim=-1)


def apply_probs(probs: torch.Tensor, v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """probs ``[rows, heads, N, T]`` times v ``[rows, T, heads*d]`` -> ``[rows, N, heads*d]``."""
    r, heads, n, t = probs.shape
    d = v.shape[-1] // heads
    vh = v.reshape(v.shape[0], t, heads, d).transpose(1, 2).float()
    return (probs @ vh).transpose(1, 2).reshape(r, n, heads * d).to(dtype)


class AttentionRouter:
    """Calls a stack of controllers from every attention of the model it is installed on."""

    def __init__(self, controllers: tuple[Controller, ...], model_sampling=None):
        self.controllers = tuple(controllers)
        self.clock = RunClock(model_sampling)
        # controllers' own context tokens: (controller index, [E, C]) in stack order
        self.extra_tokens = [(i, t) for i, t in ((i, c.context_tokens()) for i, c in enumerate(self.controllers))
                             if t is not None]
        self.extra_length = sum(int(t.shape[0]) for _, t in self.extra_tokens)

    def __deepcopy__(self, memo):
        return self

    # -- run bookkeeping -------------------------------------------------------------------
    def advance(self, sigmas: torch.Tensor | None, schedule: torch.Tensor | None) -> RunInfo:
        """Update the clock for a model call; reset every controller when a new run starts."""
        if self.clock.update(sigmas, schedule):
            for c in self.controllers:
                c.reset()
        return self.clock.info

    def start_run(self) -> None:
        """Force the next model call to start a new run (for samplers that know run bounds)."""
        self.clock.force_new_run()

    def begin_run(self, sigmas: torch.Tensor) -> None:
        """A sampling run over ``sigmas`` starts (called by :class:`RunBoundary`)."""
        self.clock.begin(sigmas)
        for c in self.controllers:
            c.reset()

    def end_run(self) -> None:
        """The run started by :meth:`begin_run` is over (finished, failed or interrupted)."""
        self.clock.end()

    # -- attention -------------------------------------------------------------------------
    def _calls(self, kind: str, key: tuple, q: torch.Tensor, extra: dict, run: RunInfo) -> list[tuple[AttnCall, slice]]:
        chunks = list(extra.get("cond_or_uncond") or [COND])
        rows = q.shape[0] // len(chunks)
        shape = extra.get("original_shape")
        latent_hw = (int(shape[-2]), int(shape[-1])) if shape is not None else None
        act = extra.get("activations_shape")
        if act is not None and int(act[-2]) * int(act[-1]) == q.shape[1] and latent_hw is not None:
            grid, level = (int(act[-2]), int(act[-1])), None
        else:
            grid, level = None, None
        if latent_hw is None:
            raise RuntimeError("attention router: the host did not pass original_shape; update ComfyUI")
        h, w, lv = attention_grid(q.shape[1], latent_hw)
        grid = grid or (h, w)
        level = lv if level is None else level
        heads = int(extra["n_heads"])
        return [
            (
                AttnCall(kind=kind, key=key, chunk=int(c), chunk_index=i, rows=rows, heads=heads,
                         grid=grid, level=level, latent_hw=latent_hw, run=run),
                slice(i * rows, (i + 1) * rows),
            )
            for i, c in enumerate(chunks)
        ]

    def attend(self, kind: str, key: tuple, previous: Callable | None, q, k, v, extra: dict) -> torch.Tensor:
        """The replace-patch body for one block: edit via controllers, then attend."""
        run = self.advance(extra.get("sigmas"), extra.get("sample_sigmas"))

        def base(q_, k_, v_):
            if previous is not None:
                return previous(q_, k_, v_, extra)
            return host_attention(q_, k_, v_, extra)

        if kind == "self":
            return self._attend_self(key, q, k, v, extra, run, base)
        return self._attend_cross(key, q, k, v, extra, run, base)

    def _attend_self(self, key, q, k, v, extra, run, base):
        calls = self._calls("self", key, q, extra, run)
        edited = [(c, call, sl) for c in self.controllers for call, sl in calls if c.wants_self(call)]
        outputs = [(c, call, sl) for c in self.controllers for call, sl in calls if c.wants_self_output(call)]
        if not edited and not outputs:
            return base(q, k, v)
        parts = {sl.start: [call, sl, q[sl], k[sl], v[sl]] for call, sl in calls}
        for c, call, sl in edited:
            part = parts[sl.start]
            part[2], part[3], part[4] = c.self_qkv(call, part[2], part[3], part[4])
        ordered = [parts[s] for s in sorted(parts)]
        if not edited:
            out = base(q, k, v)
        elif len({p[3].shape[1] for p in ordered}) == 1:
            out = base(torch.cat([p[2] for p in ordered]), torch.cat([p[3] for p in ordered]),
                       torch.cat([p[4] for p in ordered]))
        else:
            out = torch.cat([base(p[2], p[3], p[4]) for p in ordered])
        for c, call, sl in outputs:
            part = parts[sl.start]
            out[sl] = c.self_output(call, part[2], part[3], part[4], out[sl], base)
        return out

    def split_context(self, k, v, extra: dict):
        """Split projected k, v into the prompt's part and each controller's own tokens.

        Returns ``(k, v, {controller index: (k_extra, v_extra)})``.
        """
        if not self.extra_length:
            return k, v, {}
        start = extra.get(EXTRA_CONTEXT_KEY)
        start = k.shape[1] - self.extra_length if start is None else int(start)
        stop = start + self.extra_length
        own, pos = {}, start
        for i, t in self.extra_tokens:
            n = int(t.shape[0])
            own[i] = (k[:, pos:pos + n], v[:, pos:pos + n])
            pos += n
        if stop == k.shape[1]:
            return k[:, :start], v[:, :start], own
        return torch.cat([k[:, :start], k[:, stop:]], 1), torch.cat([v[:, :start], v[:, stop:]], 1), own

    def _attend_cross(self, key, q, k, v, extra, run, base):
        k, v, own = self.split_context(k, v, extra)
        calls = self._calls("cross", key, q, extra, run)
        wanted = [(call, sl, [c for c in self.controllers if c.wants_cross(call)]) for call, sl in calls]
        wanted = [w for w in wanted if w[2]]
        out = base(q, k, v)
        outputs = [(call, sl, [(i, c) for i, c in enumerate(self.controllers) if c.wants_cross_output(call)])
                   for call, sl in calls]
        outputs = [o for o in outputs if o[2]]
        if not wanted and not outputs:
            return out
        for call, sl, ctrls in wanted:
            probs = attention_probs(q[sl], k[sl], call.heads)
            for c in ctrls:
                probs = c.cross(call, probs)
            if call.edited:
                rows = sorted(call.edited)
                idx = torch.tensor(rows, device=q.device) + sl.start
                out[idx] = apply_probs(probs[rows], v[idx], out.dtype)
        for call, sl, ctrls in outputs:
            part = out[sl]
            for i, c in ctrls:
                ke, ve = own.get(i, (None, None))
                part = c.cross_output(call, q[sl], k[sl], v[sl], part,
                                      None if ke is None else ke[sl], None if ve is None else ve[sl])
            out[sl] = part
        return out


class RouterPatch:
    """The callable installed as attn1/attn2 replace patch at one block key."""

    def __init__(self, router: AttentionRouter, kind: str, key: tuple, previous: Callable | None):
        self.router, self.kind, self.key, self.previous = router, kind, key, previous

    def __call__(self, q, k, v, extra_options):
        if extra_options.get(SILENT):
            if self.previous is not None:
                return self.previous(q, k, v, extra_options)
            return host_attention(q, k, v, extra_options)
        return self.router.attend(self.kind, self.key, self.previous, q, k, v, extra_options)

    def __deepcopy__(self, memo):
        return self

    def to(self, device):
        return self


class RouterContextPatch:
    """attn2_patch: appends the controllers' own text tokens to the cross-attention context.

    Runs before the block's key/value projections, so the tokens are projected by each layer's
    own ``to_k``/``to_v``; the router's replace patch strips them again (``split_context``).
    Only blocks whose key is in ``keys`` (those the router patched) get the tokens.
    """

    def __init__(self, router: AttentionRouter, keys: frozenset):
        self.router, self.keys = router, keys
        self._cache: dict = {}

    def _tokens(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = torch.cat([t.reshape(-1, t.shape[-1]) for _, t in self.router.extra_tokens]).to(like)
        return self._cache[key]

    def __call__(self, n, context, value, extra_options):
        block = extra_options.get("block")
        key = None if block is None else (block[0], block[1], extra_options.get("block_index", 0))
        if context is None or not self.router.extra_length or key not in self.keys or extra_options.get(SILENT):
            return n, context, value
        tokens = self._tokens(context)
        if tokens.shape[-1] != context.shape[-1]:
            names = ", ".join(type(self.router.controllers[i]).__name__ for i, _ in self.router.extra_tokens)
            raise ValueError(
                f"attention router: the text tokens of {names} are {tokens.shape[-1]} wide but this model's "
                f"text context is {context.shape[-1]} wide; encode them with the CLIP of the same checkpoint.")
        extra_options[EXTRA_CONTEXT_KEY] = context.shape[1]
        add = tokens.unsqueeze(0).expand(context.shape[0], -1, -1)
        longer = torch.cat([context, add], 1)
        if value is None or value is context:
            return n, longer, longer
        return n, longer, torch.cat([value, add.to(value)], 1)

    def __deepcopy__(self, memo):
        return self

    def to(self, device):
        return self


class RouterPostCfg:
    """Post-CFG function: lets controllers edit the guided x0 prediction of every step.

    Also marks the step complete for the run clock (rerun detection on hosts without wrappers).
    """

    def __init__(self, router: AttentionRouter):
        self.router = router

    def __call__(self, args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        run = self.router.clock.info
        if run is None:
            return denoised
        for c in self.router.controllers:
            if c.wants_denoised():
                denoised = c.denoised(run, denoised, args.get("input"))
        self.router.clock.step_done(run.sigma)
        return denoised

    def __deepcopy__(self, memo):
        return self


class RouterModelInput:
    """UNet wrapper chain link: lets controllers edit the latent rows the model sees."""

    def __init__(self, router: AttentionRouter):
        self.router = router

    def __call__(self, next_call: Callable[[dict], torch.Tensor], args: dict) -> torch.Tensor:
        c = args["c"] if isinstance(args.get("c"), dict) else {}
        options = c.get("transformer_options", {})
        if options.get(SILENT):
            return next_call(args)
        x = args["input"]
        chunks = list(args.get("cond_or_uncond") or [COND])
        run = self.router.advance(args.get("timestep"), options.get("sample_sigmas"))
        rows = x.shape[0] // len(chunks)
        parts = []
        for i in range(len(chunks)):
            part = x[i * rows:(i + 1) * rows]
            for ctrl in self.router.controllers:
                if ctrl.wants_model_input():
                    part = ctrl.model_input(run, part)
            parts.append(part)
        return next_call(dict(args, input=torch.cat(parts)))

    def __deepcopy__(self, memo):
        return self


class RunBoundary:
    """``OUTER_SAMPLE`` wrapper (2024-12+ hosts): one sampling run of the router, start to end.

    Resets the controllers and gives the clock the run's schedule before the first model call;
    ends the run in a ``finally``, so a failed or interrupted run leaves nothing for the next.
    """

    def __init__(self, router: AttentionRouter):
        self.router = router

    def __call__(self, executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        self.router.begin_run(sigmas)
        try:
            return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
        finally:
            self.router.end_run()

    def __deepcopy__(self, memo):
        return self


def find_router(model) -> AttentionRouter | None:
    """The router installed on ``model`` by this pack, if any."""
    replace = model.model_options.get("transformer_options", {}).get("patches_replace", {})
    for _, name in _SLOTS:
        for patch in replace.get(name, {}).values():
            if isinstance(patch, RouterPatch):
                return patch.router
    return None


def _set_context_patch(m, router: AttentionRouter, keys: frozenset) -> None:
    """Keep exactly one RouterContextPatch (this router's, if it has extra tokens) in attn2_patch."""
    to = m.model_options.get("transformer_options", {})
    patches = to.get("patches", {})
    old = list(patches.get("attn2_patch", []))
    kept = [p for p in old if not isinstance(p, RouterContextPatch)]
    new = kept + ([RouterContextPatch(router, keys)] if router.extra_length else [])
    if len(new) == len(old) and all(a is b for a, b in zip(new, old)):
        return
    patches = dict(patches)  # copy the path: clones share leaves on some hosts
    if new:
        patches["attn2_patch"] = new
    else:
        patches.pop("attn2_patch", None)
    m.model_options["transformer_options"] = dict(to, patches=patches)


def install(model, controller: Controller, node: str):
    """Return a clone of ``model`` whose router stack ends with ``controller``.

    Other packs' replace patches at the same keys are kept and called by the router.
    """
    require_patcher_api(model, node)
    m = model.clone()
    replace = m.model_options.get("transformer_options", {}).get("patches_replace", {})
    old = find_router(m)
    router = AttentionRouter((old.controllers if old else ()) + (controller,),
                             getattr(m.model, "model_sampling", None))
    sites = transformer_sites(m.model.diffusion_model)
    for site in sites:
        for kind, name in _SLOTS:
            if kind == "cross" and not site.has_cross:
                continue
            slot = replace.get(name, {})
            current = slot.get(site.key, slot.get(site.key[:2]))
            previous = current.previous if isinstance(current, RouterPatch) else current
            setter = m.set_model_attn1_replace if name == "attn1" else m.set_model_attn2_replace
            setter(RouterPatch(router, kind, site.key, previous), site.block_name, site.block_id, site.depth)
    _set_context_patch(m, router, frozenset(s.key for s in sites if s.has_cross))
    wants_input = any(c.wants_model_input() for c in router.controllers)
    set_link(m, ROUTER_LINK, Link(ROUTER_LINK, ROUTER_RANK, RouterModelInput(router)) if wants_input else None)
    bounded = set_run_wrapper(m, RunBoundary(router))
    # Without run wrappers the post-CFG hook also tells the clock when a step is complete.
    if not bounded or any(c.wants_denoised() for c in router.controllers):
        set_post_cfg(m, RouterPostCfg(router), replaces=RouterPostCfg)
    return m
