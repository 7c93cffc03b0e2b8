"""Checks that the running ComfyUI offers the APIs the pack patches through."""
from __future__ import annotations


class HostTooOldError(RuntimeError):
    """The ComfyUI host lacks an API the pack needs."""


_REQUIRED = ("clone", "set_model_attn1_replace", "set_model_attn2_replace", "set_model_sampler_post_cfg_function")


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
