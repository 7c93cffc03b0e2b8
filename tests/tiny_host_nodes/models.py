"""Tiny, deterministic models built from the host's own classes (tests only).

Nothing here is loaded from disk except the tokenizer files that ship with ComfyUI.
Checkpoint detection only recognises full-size configs, so these models are
assembled in code:

* ``build_sd15(seed)``  -> (ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE)
* ``build_sdxl(seed)``  -> (ModelPatcher, comfy.sd.CLIP)
* ``build_sd2(seed, v_prediction=False)`` -> (ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE)
* ``build_vae(seed)``   -> comfy.sd.VAE (TAESD layout; shared by every arch)

Every parameter is drawn from a generator seeded by ``seed`` so two builds with
the same seed are bit-identical.  No output projection is zero-initialised, so
the sampled latent depends on the prompt through cross-attention.
"""
import json
import math
import os
import tempfile

import torch

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.sdxl_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.taesd.taesd

try:  # newer hosts (v0.3.75): comfy/text_encoders/
    import comfy.text_encoders.sd2_clip as _sd2_clip
except ImportError:  # the pinned 2024-03 host
    import comfy.sd2_clip as _sd2_clip

SD15_CONTEXT_DIM = 64
SDXL_CLIP_L_DIM = 64
SDXL_CLIP_G_DIM = 64
SDXL_CONTEXT_DIM = SDXL_CLIP_L_DIM + SDXL_CLIP_G_DIM  # clip_l and clip_g outputs are concatenated
SDXL_POOLED_DIM = SDXL_CLIP_G_DIM                     # pooled output comes from clip_g
SDXL_ADM_DIM = SDXL_POOLED_DIM + 6 * 256              # encode_adm: pooled + 6 size embeddings of 256
SD2_CONTEXT_DIM = 128  # the tiny OpenCLIP-H-like text model's width (2 heads of 64, like ViT-H's)
SD2_MODEL_CHANNELS = 64  # SD20's heads are 64 channels wide: 1 head at level 0, 2 at level 1

_CONFIG_DIR = None


def _text_config_path(hidden, layers=2, heads=2, act="quick_gelu"):
    """Write a small CLIP text-model config to a temp json file (the pinned host wants a path)."""
    global _CONFIG_DIR
    if _CONFIG_DIR is None:
        _CONFIG_DIR = tempfile.mkdtemp(prefix="tiny_clip_cfg_")
    cfg = {
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 2,
        "hidden_act": act,
        "hidden_size": hidden,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": hidden * 4,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 1,
        "projection_dim": hidden,
        "torch_dtype": "float32",
        "vocab_size": 49408,
    }
    path = os.path.join(_CONFIG_DIR, "clip_h{}_l{}_a{}_{}.json".format(hidden, layers, heads, act))
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump(cfg, f)
    return path


# ---------------------------------------------------------------- initialisation

def _init_module(module, seed, std=0.05):
    """Deterministically (re)initialise every parameter and floating buffer of ``module``.

    Weights: normal with std ~ 1/sqrt(fan_in) (kept in a sane range so activations neither
    vanish nor explode); biases: small normal; norm weights around 1.  Parameters are visited
    in sorted-name order so the result depends only on ``seed`` and the architecture.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    named = dict(module.named_parameters())
    with torch.no_grad():
        for name in sorted(named):
            p = named[name]
            if not p.dtype.is_floating_point:
                continue
            shape = p.shape
            leaf = name.rsplit(".", 1)[-1]
            if p.dim() == 1 and leaf == "weight":  # only norm layers have 1-D weights
                val = 1.0 + 0.1 * torch.randn(shape, generator=gen)
            elif leaf == "bias" or p.dim() <= 1:
                val = 0.02 * torch.randn(shape, generator=gen)
            else:
                fan_in = max(1, p[0].numel())
                s = min(1.0 / math.sqrt(fan_in), 4 * std)
                val = s * torch.randn(shape, generator=gen)
            p.copy_(val.to(p.dtype))
    return module


# ---------------------------------------------------------------- UNet

_SD15_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "transformer_depth": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1],
    "use_linear_in_transformer": False,
    "context_dim": SD15_CONTEXT_DIM,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "dtype": torch.float32,
}

_SDXL_UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "model_channels": 32,
    "num_classes": "sequential",
    "adm_in_channels": SDXL_ADM_DIM,
    "num_res_blocks": [1, 1],
    # level 0: no attention (like SDXL), level 1: two transformer blocks -> depth indices 0 and 1
    "transformer_depth": [0, 2],
    "channel_mult": [1, 2],
    "transformer_depth_middle": 2,
    "transformer_depth_output": [0, 0, 2, 2],
    "use_linear_in_transformer": True,
    "context_dim": SDXL_CONTEXT_DIM,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "dtype": torch.float32,
}


class TinySD15(comfy.supported_models.SD15):
    # BASE.__init__ copies unet_extra_config over unet_config; head_dim 8 makes the head
    # count differ between levels (4 heads at 32 channels, 8 at 64).
    unet_extra_config = {"num_heads": -1, "num_head_channels": 8}


class TinySDXL(comfy.supported_models.SDXL):
    unet_extra_config = {"num_heads": -1, "num_head_channels": 8}


# SD2: SD1.5's block layout with SD20's differences: linear proj_in/proj_out in the transformers,
# heads of SD20's unet_extra_config (num_head_channels 64, hence 64 model channels here), the
# context of the OpenCLIP-H-like text model.
_SD2_UNET = dict(_SD15_UNET, model_channels=SD2_MODEL_CHANNELS, use_linear_in_transformer=True,
                 context_dim=SD2_CONTEXT_DIM)


class TinySD2(comfy.supported_models.SD20):
    """The host's SD20 config as is (its unet_extra_config, latent format, CLIP target).

    SD20.model_type tells v-prediction from eps by a norm bias of the full-size checkpoint's
    state dict; the tiny model has no checkpoint, so the prediction type is a class attribute.
    """
    prediction = comfy.model_base.ModelType.EPS

    def model_type(self, state_dict, prefix=""):
        return self.prediction


class TinySD2V(TinySD2):
    """SD2.1 768-v: v-prediction on the discrete schedule."""
    prediction = comfy.model_base.ModelType.V_PREDICTION


def _calibrate_output(unet, seed):
    """Scale the final conv so the predicted noise has unit std on a noise input.

    With random weights the raw prediction can be ~10x too large, which makes sampled
    latents explode; a fixed rescale keeps them in the range real models produce.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 104729)
    x = torch.randn((2, unet.in_channels, 32, 32), generator=gen)
    t = torch.tensor([999.0, 500.0])
    ctx = torch.randn((2, 77, unet_context_dim(unet)), generator=gen)
    y = None
    if getattr(unet, "num_classes", None) is not None:
        y = torch.randn((2, unet.label_emb[0][0].in_features), generator=gen)
    out = unet(x, t, context=ctx, y=y)
    scale = float(out.std())
    if scale > 0 and math.isfinite(scale):
        final = unet.out[-1]
        final.weight.div_(scale)
        if final.bias is not None:
            final.bias.div_(scale)


def unet_context_dim(unet):
    for m in unet.modules():
        if hasattr(m, "to_k") and hasattr(m, "to_q") and m.to_k.in_features != m.to_q.in_features:
            return m.to_k.in_features
    raise RuntimeError("no cross-attention found")


def _finish_unet(model_config, seed):
    if hasattr(model_config, "set_inference_dtype"):
        model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    _init_module(model.diffusion_model, seed)
    model = model.to(torch.float32).eval()
    _calibrate_output(model.diffusion_model, seed)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def _unet_config(base, **overrides):
    cfg = dict(base)
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------- CLIP

def _init_clip(clip_model, seed):
    _init_module(clip_model, seed)
    # CLIP token embeddings: larger scale so different tokens give clearly different contexts
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 7919)
    with torch.no_grad():
        for name, p in clip_model.named_parameters():
            if name.endswith("token_embedding.weight") or name.endswith("position_embedding.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen).to(p.dtype))
            if name.endswith("logit_scale"):
                p.fill_(4.6055)
    return clip_model


def _sd_clip_kwargs(kwargs):
    """Keep only keyword arguments SDClipModel understands on this host (2025 adds model_options)."""
    out = {}
    if "model_options" in kwargs:
        out["model_options"] = kwargs["model_options"]
    return out


class TinySD1ClipModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        self.clip_name = "l"
        self.clip = "clip_l"
        self.clip_l = comfy.sd1_clip.SDClipModel(
            device=device, dtype=dtype, textmodel_json_config=_text_config_path(SD15_CONTEXT_DIM),
            **_sd_clip_kwargs(kwargs))
        if not hasattr(self, "dtypes"):
            self.dtypes = set()
        if dtype is not None:
            self.dtypes.add(dtype)


class TinySDXLClipModel(comfy.sdxl_clip.SDXLClipModel):
    def __init__(self, device="cpu", dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        extra = _sd_clip_kwargs(kwargs)
        self.clip_l = comfy.sd1_clip.SDClipModel(
            layer="hidden", layer_idx=-2, device=device, dtype=dtype, layer_norm_hidden_state=False,
            textmodel_json_config=_text_config_path(SDXL_CLIP_L_DIM, layers=3), **extra)
        self.clip_g = comfy.sd1_clip.SDClipModel(
            layer="hidden", layer_idx=-2, device=device, dtype=dtype, layer_norm_hidden_state=False,
            textmodel_json_config=_text_config_path(SDXL_CLIP_G_DIM, layers=3, act="gelu"),
            special_tokens={"start": 49406, "end": 49407, "pad": 0}, **extra)
        if not hasattr(self, "dtypes"):
            self.dtypes = set()
        if dtype is not None:
            self.dtypes.add(dtype)


class TinySD2ClipHModel(_sd2_clip.SD2ClipHModel):
    """The host's SD2ClipHModel (penultimate layer with the final layer norm, pad token 0) with a
    small random text model instead of ViT-H-14's."""

    def __init__(self, device="cpu", dtype=None, **kwargs):
        comfy.sd1_clip.SDClipModel.__init__(
            self, device=device, layer="hidden", layer_idx=-2, dtype=dtype,
            textmodel_json_config=_text_config_path(SD2_CONTEXT_DIM, layers=3, act="gelu"),
            special_tokens={"start": 49406, "end": 49407, "pad": 0}, **_sd_clip_kwargs(kwargs))


class TinySD2ClipModel(_sd2_clip.SD2ClipModel):
    """The host's SD2ClipModel layout (one stream ``clip_h``) around :class:`TinySD2ClipHModel`."""

    def __init__(self, device="cpu", dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        self.clip_name = "h"
        self.clip = "clip_h"
        self.clip_h = TinySD2ClipHModel(device=device, dtype=dtype, **kwargs)
        if not hasattr(self, "dtypes"):
            self.dtypes = set()
        if dtype is not None:
            self.dtypes.add(dtype)


def _make_clip(tokenizer_cls, model_cls, seed):
    target = comfy.supported_models_base.ClipTarget(tokenizer_cls, model_cls)
    clip = comfy.sd.CLIP(target)
    _init_clip(clip.cond_stage_model, seed)
    clip.cond_stage_model.to(torch.float32)
    return clip


# ---------------------------------------------------------------- VAE

def build_vae(seed=0):
    """A TAESD-layout VAE (4 latent channels, 8x down/up) through comfy.sd.VAE(sd=...)."""
    taesd = comfy.taesd.taesd.TAESD()
    _init_module(taesd, seed)
    sd = {k: v.detach().clone().float() for k, v in taesd.state_dict().items()}
    sd["vae_scale"] = torch.tensor(1.0)
    sd.setdefault("vae_shift", torch.tensor(0.0))  # newer hosts read it; older ones ignore it
    return comfy.sd.VAE(sd=sd)


# ---------------------------------------------------------------- public builders

def build_sd15(seed=0):
    """Tiny SD1.5-architecture model: (ModelPatcher, CLIP, VAE), deterministic from ``seed``."""
    with torch.inference_mode():
        cfg = TinySD15(_unet_config(_SD15_UNET))
        model = _finish_unet(cfg, seed)
        clip = _make_clip(comfy.sd1_clip.SD1Tokenizer, TinySD1ClipModel, seed + 1)
        vae = build_vae(seed + 2)
    return model, clip, vae


def build_sd2(seed=0, v_prediction=False):
    """Tiny SD2.x-architecture model: (ModelPatcher, CLIP, VAE), deterministic from ``seed``.

    The host's SD20 config with a tiny UNet (SD1.5's tiny layout, linear transformer projections,
    64-channel heads), the host's SD2 tokenizer and CLIP layout (``clip_h``, penultimate layer)
    with a small random text model ``SD2_CONTEXT_DIM`` wide, and the TAESD-layout VAE.
    ``v_prediction``: SD2.1 768-v (the host samples it as v-prediction); else eps (SD2.0 base,
    2.1-base). The UNet weights depend on ``seed`` only, not on the prediction type.
    """
    with torch.inference_mode():
        cfg = (TinySD2V if v_prediction else TinySD2)(_unet_config(_SD2_UNET))
        model = _finish_unet(cfg, seed)
        clip = _make_clip(_sd2_clip.SD2Tokenizer, TinySD2ClipModel, seed + 1)
        vae = build_vae(seed + 2)
    return model, clip, vae


_SD15_FULL_UNET = _unet_config(
    _SD15_UNET, model_channels=320, channel_mult=[1, 2, 4, 4], num_res_blocks=[2, 2, 2, 2],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    context_dim=768)
FULL_CONTEXT_DIM = 768


class FullSD15(comfy.supported_models.SD15):
    unet_extra_config = {"num_heads": 8, "num_head_channels": -1}


class FullSD1ClipModel(comfy.sd1_clip.SD1ClipModel):
    """SD1 CLIP layout with a 768-wide, one-layer random text model (cheap, right context width)."""

    def __init__(self, device="cpu", dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        self.clip_name = "l"
        self.clip = "clip_l"
        self.clip_l = comfy.sd1_clip.SDClipModel(
            device=device, dtype=dtype, textmodel_json_config=_text_config_path(FULL_CONTEXT_DIM, layers=1, heads=12),
            **_sd_clip_kwargs(kwargs))
        if not hasattr(self, "dtypes"):
            self.dtypes = set()
        if dtype is not None:
            self.dtypes.add(dtype)


def build_sd15_full(seed=0):
    """SD1.5 UNet at full width (320 channels, 768 context, 16 transformer blocks), random weights.

    For benchmarks: the share of attention in the cost is that of the real model.
    Returns (ModelPatcher, CLIP).
    """
    with torch.inference_mode():
        model = _finish_unet(FullSD15(dict(_SD15_FULL_UNET)), seed)
        clip = _make_clip(comfy.sd1_clip.SD1Tokenizer, FullSD1ClipModel, seed + 1)
    return model, clip


def build_sdxl(seed=0):
    """Tiny SDXL-architecture model: (ModelPatcher, CLIP), deterministic from ``seed``.

    The UNet has no attention at level 0 and two transformer blocks per attention site
    elsewhere, so depth indices 0 and 1 both exist.  The CLIP is the host's SDXLClipModel
    layout (clip_l + clip_g, real SDXL tokenizers) with small text models; its context is
    ``SDXL_CONTEXT_DIM`` wide and its pooled output feeds ``adm_in_channels``.
    """
    with torch.inference_mode():
        cfg = TinySDXL(_unet_config(_SDXL_UNET))
        model = _finish_unet(cfg, seed)
        clip = _make_clip(comfy.sdxl_clip.SDXLTokenizer, TinySDXLClipModel, seed + 1)
    return model, clip
