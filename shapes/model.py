"""The shapes model in the host's own classes: UNet config, CLIP config, builders, loading.

``build(weights_dir)`` -> (ModelPatcher, comfy.sd.CLIP, comfy.sd.VAE) from the committed
safetensors; ``new_unet()`` / ``new_clip(seed)`` give fresh modules for training.
Requires ComfyUI importable (inside ComfyUI, or after ``shapes.hostenv.setup()``).
"""
import json
import os
import tempfile
from typing import Dict, Optional

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.utils

CONTEXT_DIM = 64
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")
FILES = {"unet": "unet.safetensors", "clip": "clip.safetensors", "vae": "vae.safetensors"}

UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 16,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "transformer_depth": [1, 1],       # cross-attention at the 16x16 and 8x8 grids
    "channel_mult": [1, 2],
    "transformer_depth_middle": 1,     # middle block at 8x8
    "transformer_depth_output": [1, 1, 1, 1],
    "use_linear_in_transformer": False,
    "context_dim": CONTEXT_DIM,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "dtype": torch.float32,
}

CLIP_CONFIG = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0,
    "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": CONTEXT_DIM,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": CONTEXT_DIM * 4,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
    "num_attention_heads": 2, "num_hidden_layers": 2, "pad_token_id": 1,
    "projection_dim": CONTEXT_DIM, "torch_dtype": "float32", "vocab_size": 49408,
}


class ShapesSD15(comfy.supported_models.SD15):
    """SD1.5 model type (eps prediction, SD1.5 schedule and latent format) at a small size."""
    unet_extra_config = {"num_heads": -1, "num_head_channels": 32}


_CFG_PATH: Optional[str] = None


def _clip_config_path() -> str:
    """The pinned host wants the text-model config as a json file path."""
    global _CFG_PATH
    if _CFG_PATH is None or not os.path.exists(_CFG_PATH):
        fd, path = tempfile.mkstemp(prefix="shapes_clip_", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(CLIP_CONFIG, f)
        _CFG_PATH = path
    return _CFG_PATH


class ShapesClipModel(comfy.sd1_clip.SD1ClipModel):
    """SD1 clip_l layout with a 2-layer, 64-wide text transformer."""

    def __init__(self, device="cpu", dtype=None, **kwargs):
        torch.nn.Module.__init__(self)
        self.clip_name = "l"
        self.clip = "clip_l"
        extra = {"model_options": kwargs["model_options"]} if "model_options" in kwargs else {}
        self.clip_l = comfy.sd1_clip.SDClipModel(device=device, dtype=dtype,
                                                 textmodel_json_config=_clip_config_path(), **extra)
        if not hasattr(self, "dtypes"):
            self.dtypes = set()
        if dtype is not None:
            self.dtypes.add(dtype)


def new_unet(channels: int = UNET_CONFIG["model_channels"]):
    """A fresh (uninitialised) BaseModel of the shapes UNet with ``channels`` model channels (a
    multiple of 32: GroupNorm's groups); ``.diffusion_model`` is the UNet."""
    if channels <= 0 or channels % 32:
        raise ValueError("UNet channels must be a positive multiple of 32, got {}".format(channels))
    cfg = ShapesSD15(dict(UNET_CONFIG, model_channels=int(channels)))
    if hasattr(cfg, "set_inference_dtype"):
        cfg.set_inference_dtype(torch.float32, None)
    return cfg.get_model({}).to(torch.float32)


def new_clip() -> "comfy.sd.CLIP":
    """A fresh CLIP (real SD1 tokenizer, small text model); built under inference mode."""
    with torch.inference_mode():
        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, ShapesClipModel)
        clip = comfy.sd.CLIP(target)
        clip.cond_stage_model.to(torch.float32)
    return clip


def init_clip(clip, seed: int) -> None:
    """Random frozen text encoder: the UNet learns to read it."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode():
        for name, p in sorted(clip.cond_stage_model.named_parameters()):
            leaf = name.rsplit(".", 1)[-1]
            if name.endswith("token_embedding.weight") or name.endswith("position_embedding.weight"):
                val = 0.5 * torch.randn(p.shape, generator=gen)
            elif name.endswith("logit_scale"):
                val = torch.full(p.shape, 4.6055)
            elif p.dim() == 1 and leaf == "weight":
                val = torch.ones(p.shape)
            elif p.dim() <= 1:
                val = torch.zeros(p.shape)
            else:
                val = torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5
            p.copy_(val.half().float())  # stored as float16: use exactly those values


def unet_channels(state_dict: Dict[str, torch.Tensor]) -> int:
    """The model channels of saved UNet weights (the first conv's output channels)."""
    return int(state_dict["input_blocks.0.0.weight"].shape[0])


def _load(path: str) -> Dict[str, torch.Tensor]:
    return {k: v.float() for k, v in comfy.utils.load_torch_file(path, safe_load=True).items()}


def build(weights_dir: Optional[str] = None):
    """(ModelPatcher, CLIP, VAE) of the trained shapes model; no download, CPU float32."""
    d = weights_dir or WEIGHTS_DIR
    paths = {k: os.path.join(d, f) for k, f in FILES.items()}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError("shapes model weights missing: {}".format(", ".join(missing)))
    with torch.inference_mode():
        unet_sd = _load(paths["unet"])
        base = new_unet(unet_channels(unet_sd))
        base.diffusion_model.load_state_dict(unet_sd, strict=True)
        base = base.eval()
        cpu = torch.device("cpu")
        model = comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)
        clip = new_clip()
        clip.cond_stage_model.load_state_dict(_load(paths["clip"]), strict=False)
        vae = comfy.sd.VAE(sd=_load(paths["vae"]))
    return model, clip, vae
