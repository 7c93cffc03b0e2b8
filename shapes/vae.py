"""A TAESD-format autoencoder for the shapes world (pure torch; keys match ComfyUI's TAESD).

Encoder: analytic, not trained.  It computes per-pixel features (R, G, B and chroma
max-min = (|R-G| + |G-B| + |B-R|) / 2), averages them over 8x8 cells with three exact 2x2
average-pooling strided convs, and maps the 4 pooled features linearly (a whitening fitted on
scenes) to 4 latent channels.  So a latent cell is the colour content of its 8x8 pixel cell.

Decoder: ComfyUI's TAESD decoder layout, trained (``train_decoder``) to turn those latents
back into sharp scenes.

Scaling: ``vae_scale`` = 0.18215, so the latent the UNet sees (ComfyUI multiplies by 0.18215)
equals the encoder output, which is whitened to about zero mean and unit variance.
"""
import math
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

SD15_SCALE = 0.18215
N_FEAT = 4


def conv(n_in, n_out, **kw):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder():
    return nn.Sequential(
        conv(3, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 4),
    )


def Decoder():
    return nn.Sequential(
        Clamp(), conv(4, 64), nn.ReLU(),
        Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), conv(64, 3),
    )


def pixel_features(img: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 4, H, W]: R, G, B, chroma (max - min)."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    chroma = 0.5 * ((r - g).abs() + (g - b).abs() + (b - r).abs())
    return torch.cat([r, g, b, chroma], 1)


def pooled_features(img: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(pixel_features(img), 8)


def fit_whitening(feats: torch.Tensor, floor: float = 1e-4):
    """ZCA whitening of pooled features [B, 4, h, w] -> (A [4, 4], b [4]) with A f + b ~ N(0, I)."""
    f = feats.permute(0, 2, 3, 1).reshape(-1, N_FEAT).double()
    mean = f.mean(0)
    cov = torch.cov((f - mean).T)
    evals, evecs = torch.linalg.eigh(cov)
    inv = evecs @ torch.diag(1.0 / torch.sqrt(evals.clamp_min(floor))) @ evecs.T
    return inv.float(), (-inv @ mean).float()


def encode(img: torch.Tensor, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The analytic encoder in plain torch: [B, 3, H, W] in [0, 1] -> latent [B, 4, H/8, W/8]."""
    f = pooled_features(img)
    return torch.einsum("ij,bjhw->bihw", A, f) + b.view(1, -1, 1, 1)


def analytic_encoder(A: torch.Tensor, b: torch.Tensor) -> nn.Sequential:
    """A TAESD ``Encoder()`` whose weights compute ``encode(img, A, b)`` exactly (up to float error)."""
    enc = Encoder()
    with torch.no_grad():
        for p in enc.parameters():
            p.zero_()
        w0 = enc[0].weight  # [64, 3, 3, 3], centre taps only
        for c in range(3):
            w0[c, c, 1, 1] = 1.0
        diffs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2)]
        for i, (p, q) in enumerate(diffs):
            w0[3 + i, p, 1, 1] = 1.0
            w0[3 + i, q, 1, 1] = -1.0
        # Blocks: every conv zero -> Block(x) = relu(x); the relus make the diffs |.| halves.
        for idx in (2, 6, 10):  # stride-2 convs: exact 2x2 average of taps (1,1),(1,2),(2,1),(2,2)
            w = enc[idx].weight
            for c in range(9):
                w[c, c, 1:3, 1:3] = 0.25
        wl = enc[14].weight  # [4, 64, 3, 3]
        feat_map = torch.zeros(N_FEAT, 9)
        for c in range(3):
            feat_map[c, c] = 1.0
        feat_map[3, 3:9] = 0.5
        wl[:, :9, 1, 1] = A @ feat_map
        enc[14].bias.copy_(b)
    return enc


def init_module(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Kaiming-normal convs, zero biases, drawn from ``gen`` in parameter order."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / fan_in))
        # last conv of each block starts small so blocks start near identity
        for m in module.modules():
            if isinstance(m, Block):
                m.conv[4].weight.mul_(0.1)
    return module


def taesd_state_dict(encoder: nn.Module, decoder: nn.Module) -> Dict[str, torch.Tensor]:
    """The state dict ``comfy.sd.VAE(sd=...)`` recognises as TAESD."""
    sd = {}
    for k, v in encoder.state_dict().items():
        sd["taesd_encoder." + k] = v.detach().clone()
    for k, v in decoder.state_dict().items():
        sd["taesd_decoder." + k] = v.detach().clone()
    sd["vae_scale"] = torch.tensor(SD15_SCALE)
    sd["vae_shift"] = torch.tensor(0.0)
    return sd


def whitening_from_state(sd: Dict[str, torch.Tensor]):
    """(A, b) back from a TAESD state dict written by ``taesd_state_dict(analytic_encoder(A, b), ...)``."""
    w = sd["taesd_encoder.14.weight"].float()[:, :, 1, 1]
    A = torch.cat([w[:, :3], 2.0 * w[:, 3:4]], 1)
    return A, sd["taesd_encoder.14.bias"].float()
