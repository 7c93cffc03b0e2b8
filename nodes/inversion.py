"""Diffusion Inversion: a loaded picture's latent turned into the noise (and path) that sample it back."""
from __future__ import annotations

import torch

from ..core.inversion import METHODS, SAMPLERS, RowPlan
from ..host.compat import require_patcher_api
from ..host.inversion import LATENT_KEY, install_guide, invert
from .common import CATEGORY, check_inputs

NODE = "DiffusionInversion"
MAX_STEPS = 1000


def _schedulers() -> list[str]:
    try:
        import comfy.samplers
    except ImportError:  # outside a host: the schedulers every supported host has
        return ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]
    return list(comfy.samplers.KSampler.SCHEDULERS)


class DiffusionInversion:
    """Invert a picture's latent: the noise it comes from and the path between them."""

    DESCRIPTION = (
        "Runs the sampler backwards (DDIM / Euler inversion) from a picture's latent (VAE Encode of a loaded "
        "image) to the noise that samples back into it, with the source prompt at cfg 1, one model pass a "
        "step. The LATENT goes where an empty latent went: into P2P Replace, Token Shift or Frame Sequence "
        "('latent' input), which make their rows from it (the source row is the picture), or straight into "
        "the KSampler with this node's MODEL to sample the picture back. Sample with the same sampler "
        "(euler or ddim), scheduler, steps and denoise. method 'direct' puts the source row back on the "
        "inversion's path at every step, so it reproduces the picture exactly at any cfg."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "LATENT")
    RETURN_NAMES = ("model", "latent")
    OUTPUT_TOOLTIPS = ("The model with the guide that samples the LATENT back into the picture.",
                       "The picture's noise, carrying the inversion's path for the nodes that take a latent.")
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to invert with (the one you will sample with)."}),
                "positive": ("CONDITIONING", {"tooltip": "The source prompt: what the picture shows (CLIP Text Encode). Also the edit nodes' source prompt."}),
                "latent": ("LATENT", {"tooltip": "The picture's latent: Load Image -> VAE Encode."}),
                "sampler_name": (list(SAMPLERS), {"default": "euler", "tooltip": "euler or ddim (the same step): the only samplers inverted exactly. Sample with the same one."}),
                "scheduler": (_schedulers(), {"default": "normal", "tooltip": "The schedule of sigmas; sample with the same scheduler."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": MAX_STEPS, "tooltip": "Steps (1-1000), one model pass each; sample with the same number."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "How far up the schedule to invert (1 = to pure noise); sample with the same denoise."}),
                "method": (list(METHODS), {"default": "direct", "tooltip": "direct: exact at any cfg (source row kept on the path); negative prompt: also give the source prompt as the sampler's negative; plain: noise only."}),
            },
        }

    def invert(self, model, positive, latent, sampler_name, scheduler, steps, denoise, method):
        check_inputs(self, locals())
        require_patcher_api(model, NODE)
        samples = latent["samples"]
        if samples.shape[1] != 4:
            raise ValueError(f"{NODE}: input 'latent' has {samples.shape[1]} channels; invert an SD1.x, SD2.x or "
                             "SDXL latent (4 channels, from VAE Encode).")
        if not torch.isfinite(samples).all():
            raise ValueError(f"{NODE}: input 'latent' holds NaN or infinite values; encode the picture again.")
        base = model.clone()
        install_guide(base, None, None, NODE)  # an inherited guide must not steer the inversion itself
        try:
            trajectory = invert(base, positive, latent, sampler_name, scheduler, steps, denoise, method)
        except ValueError as e:
            raise ValueError(f"{NODE}: {e}") from None
        noise = base.model.process_latent_out(trajectory.latents[0].clone())
        out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", LATENT_KEY)}
        out["samples"] = noise.to(samples.dtype)
        out[LATENT_KEY] = trajectory
        guided = model.clone()
        install_guide(guided, trajectory, RowPlan.identity(trajectory.rows), NODE)
        return (guided, out)


NODE_CLASS_MAPPINGS = {NODE: DiffusionInversion}
NODE_DISPLAY_NAME_MAPPINGS = {NODE: "Diffusion Inversion"}
