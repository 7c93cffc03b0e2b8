"""Every difference between ComfyUI versions that the pack patches through, in one place.

The pack patches only through ``ModelPatcher`` setters. Hosts from 2024-12 on also offer named
wrappers (``comfy.patcher_extension``); where they exist, the router's run boundaries come from
an ``OUTER_SAMPLE`` wrapper, and older hosts fall back to inferring runs from sigma
(:mod:`.clock`).
"""
from __future__ import annotations

from typing import Callable

PACK_KEY = "attention_motion"  # key of the pack's wrappers (other packs' keys are left alone)


class HostTooOldError(RuntimeError):
    """The ComfyUI host lacks an API the pack needs."""


_REQUIRED = ("clone", "set_model_attn1_replace", "set_model_attn2_replace", "set_model_sampler_post_cfg_function",
             "set_model_unet_function_wrapper", "model_options")


def require_patcher_api(model, node: str) -> None:
    """Raise a clear 'update ComfyUI' error when ``model`` lacks a patching method we rely on."""
    missing = [name for name in _REQUIRED if not hasattr(model, name)]
    if missing:
        raise HostTooOldError(
            f"{node}: this ComfyUI is too old or the MODEL input is not a ModelPatcher "
            f"(missing {', '.join(missing)}). Update ComfyUI (any release from 2024-03 on works)."
        )
    if not hasattr(getattr(model, "model", None), "diffusion_model"):
        raise HostTooOldError(f"{node}: the MODEL input has no diffusion_model; only UNet models (SD1.x, SD2.x, SDXL) are supported.")


def optimized_attention():
    """The host's current optimized attention function (looked up at call time, never cached)."""
    import comfy.ldm.modules.attention as attention

    return attention.optimized_attention


ATTENTION_OVERRIDE = "optimized_attention_override"  # transformer option of 2025 hosts (another pack's attention)


def host_attention(q, k, v, extra: dict):
    """The host's optimised attention for one block, with the block's own precision (SD2.x models
    ask the host for float32 attention through ``attn_precision``; hosts before 2024-06 pass none)
    and, where another pack set one, the host's attention override (``extra`` holds the
    transformer options; passed only then, as hosts before 2025 take no such argument)."""
    kwargs = {"attn_precision": extra["attn_precision"]} if extra.get("attn_precision") is not None else {}
    if ATTENTION_OVERRIDE in extra:
        kwargs["transformer_options"] = extra
    return optimized_attention()(q, k, v, int(extra["n_heads"]), **kwargs)


def _wrappers_mp():
    try:
        from comfy.patcher_extension import WrappersMP
    except ImportError:  # hosts before 2024-12
        return None
    return WrappersMP


def has_run_wrappers(model) -> bool:
    """True when the host runs ``OUTER_SAMPLE`` wrappers of a ModelPatcher (2024-12 and later)."""
    mp = _wrappers_mp()
    return mp is not None and hasattr(mp, "OUTER_SAMPLE") and hasattr(model, "add_wrapper_with_key") \
        and hasattr(model, "remove_wrappers_with_key")


def set_run_wrapper(model, wrapper: Callable) -> bool:
    """Make ``wrapper`` the pack's one ``OUTER_SAMPLE`` wrapper on ``model`` (a clone we own).

    ``wrapper(executor, noise, latent_image, sampler, sigmas, ...)`` wraps one whole sampling run.
    The pack's previous wrapper (an inherited router's) is replaced; other packs' wrappers stay.
    Returns False on hosts without named wrappers.
    """
    if not has_run_wrappers(model):
        return False
    slot = _wrappers_mp().OUTER_SAMPLE
    model.remove_wrappers_with_key(slot, PACK_KEY)
    model.add_wrapper_with_key(slot, PACK_KEY, wrapper)
    return True


def set_post_cfg(model, fn: Callable, replaces: type) -> None:
    """Install post-CFG function ``fn``, dropping earlier ones of type ``replaces`` (ours).

    Functions marked ``post_cfg_last`` (the inversion guide, which turns the final x0 prediction
    into the sampler's step) stay after every other one, whoever is installed later.
    """
    kept = [f for f in model.model_options.get("sampler_post_cfg_function", []) if not isinstance(f, replaces)]
    model.model_options["sampler_post_cfg_function"] = kept  # a new list: the parent's stays as it was
    model.set_model_sampler_post_cfg_function(fn)
    functions = model.model_options["sampler_post_cfg_function"]
    model.model_options["sampler_post_cfg_function"] = (
        [f for f in functions if not getattr(f, "post_cfg_last", False)]
        + [f for f in functions if getattr(f, "post_cfg_last", False)])


def unet_wrapper(model) -> Callable | None:
    """The UNet function wrapper installed on ``model``, if any."""
    return model.model_options.get("model_function_wrapper")


def set_unet_wrapper(model, wrapper: Callable | None) -> None:
    """Install ``wrapper`` as the UNet function wrapper, or empty the slot (None).

    One slot on every host; the caller chains what was there (see :mod:`.unet_chain`).
    """
    if wrapper is None:
        model.model_options.pop("model_function_wrapper", None)  # hosts call the slot if the key exists
    else:
        model.set_model_unet_function_wrapper(wrapper)
