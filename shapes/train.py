"""Train the shapes model (reproducible from a seed).

    python -m shapes.train unet    --work DIR [--seed 0] [--steps 3000] [--threads 2]
    python -m shapes.train decoder --work DIR [--seed 0] [--steps 800]  [--threads 1]
    python -m shapes.train export  --work DIR [--out models/shapes]

``--init FILE`` starts the UNet (or the decoder) from saved weights (a next phase with a fresh
schedule); ``--channels`` sets the UNet's width (model channels, a multiple of 32).

A phase is resumable: every ``--save-every`` steps it writes a full checkpoint
(``<what>_ckpt.pt``: weights, EMA, optimiser, data-generator state, step) into ``--work``, and the
same command run again resumes from it, giving the same weights as an uninterrupted run.  A
checkpoint of other settings is refused.  ``--stop-at N`` stops after step N's checkpoint (to split
a phase across time slots).

``unet`` and ``decoder`` are independent (the encoder is analytic, see ``shapes.vae``) and can
run at the same time; both write checkpoints to ``--work`` every ``--save-every`` steps, so a
usable model exists before the end.  ``export`` writes unet/clip/vae safetensors (float16)
for ``shapes.model.build``.

The UNet is the host's own class (``comfy.supported_models.SD15`` with a small config).  The
pinned host adds in place inside its transformer blocks (``x += n``), which autograd rejects,
so for training each BasicTransformerBlock instance of the training copy gets an out-of-place
forward with the same modules (same state-dict layout; the host's classes are not touched).
Training: SD1.5 linear-beta schedule (1000 steps), epsilon prediction, uniform timesteps,
10% empty-caption dropout for classifier-free guidance, AdamW, EMA of the weights.

Attention supervision (``--attn-weight``): the scenes' object masks are known, so every
cross-attention layer is also taught where each object's colour and shape words belong.
Per object word, the share of its (pixel-normalised) map inside the object's mask is pushed to
1, and per pixel, the attention to an object's two words is pushed toward the object's coverage
of that pixel (binary cross-entropy).  Teacher forcing (``--force``, see ``AttentionTap``)
makes the model draw objects where their words' maps are.  Without both the model reads its caption through the
end-of-text tokens and its word maps carry no position, so moving a word's map moves nothing.
"""
import argparse
import json
import math
import os
import time
import types
from typing import Optional

import torch

from . import data, hostenv, vae

N_TRAIN_STEPS = 1000
WHITEN_SEED_OFFSET = 1
WHITEN_SCENES = 512


def sd15_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, N_TRAIN_STEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def whitening(seed: int, scenes: int = WHITEN_SCENES):
    """Latent whitening (A, b) fitted on ``scenes`` scenes drawn from ``seed`` + 1 (deterministic)."""
    gen = torch.Generator().manual_seed(seed + WHITEN_SEED_OFFSET)
    x, _ = data.batch(gen, scenes)
    return vae.fit_whitening(vae.pooled_features(x))


def save_st(tensors, path):
    from safetensors.torch import save_file
    tmp = path + ".tmp"
    save_file({k: v.detach().contiguous().to(torch.float16) if v.is_floating_point() else v.contiguous()
               for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)


# Settings that do not change what a phase computes: they may differ when it is resumed.
NOT_PHASE_ARGS = ("threads", "save_every", "stop_at", "comfyui", "out", "work")


def phase_settings(args) -> dict:
    """The settings that define a phase (a resumed phase must have the same)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_PHASE_ARGS}


def checkpoint_path(args) -> str:
    return os.path.join(args.work, "{}_ckpt.pt".format(args.what))


def save_checkpoint(args, state: dict) -> None:
    """Write a phase's full state atomically (a stop while writing leaves the last one)."""
    path = checkpoint_path(args)
    torch.save(dict(state, settings=phase_settings(args)), path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(args):
    """The phase's last checkpoint in ``--work``, or None; refuses one of other settings."""
    path = checkpoint_path(args)
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    now = phase_settings(args)
    # a setting absent on one side (an option added since) counts as its default, None
    diff = sorted(k for k in set(state["settings"]) | set(now) if state["settings"].get(k) != now.get(k))
    if diff:
        raise SystemExit("{} holds a checkpoint of other settings ({}); give another --work or delete it"
                         .format(path, ", ".join(diff)))
    return state


def checkpoint_step(args, step: int, full_state, weights_file: str, weights, say) -> bool:
    """At a checkpoint step, write the phase's weights (``weights()`` to ``weights_file`` in
    ``--work``), its full checkpoint (``full_state()``) and ``<what>_state.json`` (that state's
    figures and the settings); True when the phase stops here (``--stop-at``). The callables run
    only at checkpoint steps."""
    if step % args.save_every == 0 or step in (args.steps, args.stop_at):
        state = full_state()
        save_st(weights(), os.path.join(args.work, weights_file))
        save_checkpoint(args, dict(state, step=step))
        summary = {k: v for k, v in state.items() if k in ("loss", "attention_loss", "seconds", "params")}
        with open(os.path.join(args.work, "{}_state.json".format(args.what)), "w") as f:
            json.dump(dict(step=step, **summary, args=vars(args)), f)
        say("saved step {}".format(step))
    if step == args.stop_at and step < args.steps:
        say("stopped at step {} of {}; the same command resumes".format(step, args.steps))
        return True
    return False


class AttentionTap:
    """Shared by the training copy's transformer blocks for one forward pass.

    ``probs`` collects each layer's cross-attention probabilities (averaged over heads) for the
    supervision loss.  When ``force`` is set, ``(masks, present, rows)``, the rows in ``rows`` get
    their object words' attention replaced by the objects' masks (teacher forcing): a pixel
    covering object j sends ``FORCE_SHARE`` of its attention to j's colour and shape words
    and the rest, renormalised, to the other tokens.  The model so learns to draw each object
    where its words' maps point, which is what makes a moved map move the object.
    """

    def __init__(self):
        self.probs: list = []
        self.force = None

    def clear(self) -> None:
        self.probs.clear()
        self.force = None


FORCE_SHARE = 0.9


def forced_probs(p: torch.Tensor, masks: torch.Tensor, present: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Replace object words' attention in ``p`` [b, heads, cells, tokens] by the object masks."""
    b, _, n, _ = p.shape
    g = int(round(n ** 0.5))
    m = torch.nn.functional.adaptive_avg_pool2d(masks, g).flatten(2) * present[..., None].float()  # [b, objs, n]
    target = torch.zeros_like(p[:, 0])                                                                 # [b, n, T]
    keep = torch.ones(p.shape[-1], dtype=p.dtype).expand(b, -1).clone()                               # [b, T]
    for slot in range(MAX_OBJECTS):
        for t in object_token_positions(slot):
            target[:, :, t] = FORCE_SHARE * m[:, slot] / 2
            keep[:, t] = torch.where(present[:, slot], torch.zeros(()), keep[:, t])
    covered = target.sum(-1, keepdim=True)                                                            # [b, n, 1]
    others = p * keep[:, None, None, :]
    others = others / others.sum(-1, keepdim=True).clamp_min(1e-9)
    new = others * (1 - covered[:, None]) + target[:, None]
    return torch.where(rows.view(-1, 1, 1, 1), new, p)


def _cross_attention(attn, x, context, tap: AttentionTap):
    """The host's CrossAttention computed explicitly, recording (and optionally forcing) its maps."""
    b, n, _ = x.shape
    h, d = attn.heads, attn.dim_head
    q = attn.to_q(x).view(b, n, h, d).transpose(1, 2)
    k = attn.to_k(context).view(b, -1, h, d).transpose(1, 2)
    v = attn.to_v(context).view(b, -1, h, d).transpose(1, 2)
    p = (q @ k.transpose(-1, -2) * d ** -0.5).softmax(-1)
    tap.probs.append(p.mean(1))
    if tap.force is not None:
        p = forced_probs(p, *tap.force)
    out = (p @ v).transpose(1, 2).reshape(b, n, h * d)
    return attn.to_out(out)


def _train_forward(self, x, context=None, transformer_options=None):
    """Out-of-place BasicTransformerBlock forward (SD layout: self-attn, cross-attn, ff)."""
    x = self.attn1(self.norm1(x)) + x
    x = _cross_attention(self.attn2, self.norm2(x), context, self._attn_tap) + x
    n = self.ff(self.norm3(x))
    return n + x if self.is_res else n


def make_trainable(unet) -> AttentionTap:
    """Give the training copy out-of-place block forwards; returns the tap they share."""
    import comfy.ldm.modules.attention as attention
    tap = AttentionTap()
    for m in unet.modules():
        if isinstance(m, attention.BasicTransformerBlock):
            assert not m.ff_in and not m.disable_self_attn and m.attn2 is not None
            m.forward = types.MethodType(_train_forward, m)
            m._attn_tap = tap
    return tap


MAX_OBJECTS = 2
LATENT = data.SIZE // 8


def object_token_positions(slot: int):
    """Token positions of object ``slot``'s colour and shape words in "a C S and a C S"
    (BOS first; every palette word is one CLIP token, checked in ``check_token_positions``)."""
    return 2 + 4 * slot, 3 + 4 * slot


def check_token_positions(clip) -> None:
    for c in data.COLOUR_NAMES:
        for s in data.SHAPES:
            ids = [t[0] for t in clip.tokenize("a {} {} and a {} {}".format(c, s, c, s))["l"][0]]
            for slot in range(MAX_OBJECTS):
                ci, si = object_token_positions(slot)
                single = [t[0] for t in clip.tokenize(c)["l"][0]], [t[0] for t in clip.tokenize(s)["l"][0]]
                assert ids[ci] == single[0][1] and ids[si] == single[1][1], (c, s, ids[:10])


def object_masks(scenes) -> torch.Tensor:
    """Coverage of each object slot on the latent grid: [n, MAX_OBJECTS, 16, 16] in [0, 1]."""
    n = data.SIZE
    c = torch.arange(n, dtype=torch.float32) + 0.5
    xs, ys = torch.meshgrid(c, c, indexing="xy")
    out = torch.zeros(len(scenes), MAX_OBJECTS, n, n)
    for i, sc in enumerate(scenes):
        for j, o in enumerate(sc.objects):
            out[i, j] = data.shape_mask(o.shape, o.cx, o.cy, o.r, xs, ys).float()
    return torch.nn.functional.avg_pool2d(out, 8)


MAX_OBJECT_WEIGHT = 100.0


def diffusion_loss(pred: torch.Tensor, eps: torch.Tensor, masks: torch.Tensor,
                   object_weight: Optional[float], signal: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The noise-prediction MSE, with the cells of every object and one cell around it weighted
    ``1 + object_weight`` (masks: [b, MAX_OBJECTS, 16, 16] coverage), or, with ``signal`` ([b],
    each sample's signal share of its noisy latent, alpha-bar of its timestep),
    ``1 + object_weight * signal``.  The weights are normalised to mean 1 per batch, so the loss
    keeps the plain MSE's scale; None or 0 is the plain MSE.

    Objects cover a small share of the grid, so the plain loss is mostly background; the weight
    moves the model's capacity to the cells that decide an object's outline (a square's corners).
    But a weight that depends on where the objects are moves the loss's optimum wherever their
    place is not yet decided, toward drawing an object there (measured: extra copies of objects);
    ``signal`` keeps the weight to the nearly clean latents, where the place is decided.
    """
    err = (pred - eps) ** 2
    if not object_weight:
        return err.mean()
    near = torch.nn.functional.max_pool2d((masks.amax(1, keepdim=True) > 0).float(), 3, 1, 1)
    extra = object_weight * near
    if signal is not None:
        extra = extra * signal.view(-1, 1, 1, 1)
    w = 1 + extra
    return (err * w).mean() / w.mean()


def attention_loss(probs_list, masks: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Supervision of every cross-attention layer's word maps by the object masks.

    probs_list: [b, cells, tokens] per layer; masks: [b, MAX_OBJECTS, 16, 16]; present:
    [b, MAX_OBJECTS] bool (object exists and the caption was not dropped).
    """
    if not bool(present.any()):
        return masks.new_zeros(())
    total = 0.0
    eps = 1e-6
    w = present.float()
    for p in probs_list:
        g = int(round(p.shape[1] ** 0.5))
        m = torch.nn.functional.adaptive_avg_pool2d(masks, g).flatten(2)  # [b, objs, cells]
        tok_loss, pix_loss = 0.0, 0.0
        for slot in range(MAX_OBJECTS):
            idx = list(object_token_positions(slot))
            a = p[:, :, idx].transpose(1, 2)                      # [b, 2 words, cells]
            ms = m[:, slot].unsqueeze(1)                           # [b, 1, cells]
            inside = (a * ms).sum(-1) / a.sum(-1).clamp_min(eps)  # [b, 2]
            tok_loss = tok_loss + (((1 - inside) ** 2).mean(-1) * w[:, slot]).sum()
            both = a.sum(1).clamp(eps, 1 - eps)                    # [b, cells]
            bce = torch.nn.functional.binary_cross_entropy(both, FORCE_SHARE * ms[:, 0], reduction="none").mean(-1)
            pix_loss = pix_loss + (bce * w[:, slot]).sum()
        total = total + (tok_loss + pix_loss) / w.sum()
    return total / len(probs_list)


def init_unet(unet, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if p.dim() == 1 and leaf == "weight":
                p.fill_(1.0)
            elif leaf == "bias":
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
        unet.out[-1].weight.mul_(0.1)  # the last conv starts small


def text_embeddings(clip, captions):
    with torch.inference_mode():
        return torch.cat([clip.encode_from_tokens(clip.tokenize(c)) for c in captions]).clone()


def build_dataset(seed: int, n: int, A, b, pair_share: Optional[float] = None, same_colour: Optional[float] = None):
    """(latents [n, 4, 16, 16], caption index [n], object masks [n, 2, 16, 16], objects [n])
    from scenes drawn from ``seed`` + 2, a share ``pair_share`` of them (None: ``data.PAIR_SHARE``)
    with two objects, of which a share ``same_colour`` (None: as drawn) share their colour."""
    pair_share = data.PAIR_SHARE if pair_share is None else pair_share
    gen = torch.Generator().manual_seed(seed + 2)
    index = {c: i for i, c in enumerate(data.all_captions())}
    lats, caps, masks, counts = [], [], [], []
    for start in range(0, n, 256):
        x, scenes = data.batch(gen, min(256, n - start), pair_share=pair_share, same_colour=same_colour)
        lats.append(vae.encode(x, A, b))
        caps.extend(index[s.caption] for s in scenes)
        masks.append(object_masks(scenes))
        counts.extend(len(s.objects) for s in scenes)
    return torch.cat(lats), torch.tensor(caps), torch.cat(masks), torch.tensor(counts)


def train_unet(args) -> None:
    hostenv.setup(args.comfyui)
    from . import model as M
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "unet.log"), "a")

    def say(msg):
        line = "{:.0f}s {}".format(time.time() - t0, msg)
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    t0 = time.time()
    A, b = whitening(args.seed, args.whiten_scenes)
    torch.save({"A": A, "b": b}, os.path.join(args.work, "whitening.pt"))
    clip = M.new_clip()
    M.init_clip(clip, args.seed + 3)
    save_st(clip.cond_stage_model.state_dict(), os.path.join(args.work, "clip.safetensors"))
    captions = data.all_captions()
    emb = text_embeddings(clip, captions + [""])
    empty = len(captions)
    say("text embeddings {}".format(tuple(emb.shape)))
    check_token_positions(clip)
    lat, cap, obj_mask, obj_count = build_dataset(args.seed, args.scenes, A, b, args.pair_share, args.same_colour_share)
    say("dataset {} latents, std {:.3f}".format(lat.shape[0], float(lat.std())))

    base = M.new_unet(args.channels)
    unet = base.diffusion_model.train()
    init_unet(unet, args.seed + 4)
    resume = load_checkpoint(args)
    if args.init and resume is None:  # continue from an earlier run's EMA weights (a second phase with its own schedule)
        from safetensors.torch import load_file
        unet.load_state_dict({k: v.float() for k, v in load_file(args.init).items()})
        say("initialised from {}".format(args.init))
    tap = make_trainable(unet)
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    n_params = sum(p.numel() for p in unet.parameters())
    say("unet {} parameters".format(n_params))
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    ac = sd15_alphas_cumprod()
    gen = torch.Generator().manual_seed(args.seed + 5)
    avg = avg_attn = None
    first, spent = 1, 0.0
    if resume is not None:
        unet.load_state_dict(resume["weights"])
        ema = resume["ema"]
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        avg, avg_attn, spent = resume["loss"], resume["attention_loss"], resume["seconds"]
        first = resume["step"] + 1
        say("resumed after step {}".format(resume["step"]))
    for step in range(first, args.steps + 1):
        lr = args.lr * min(1.0, step / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(lat.shape[0], (args.batch,), generator=gen)
        x0 = lat[idx]
        flip = torch.rand(args.batch, generator=gen) < 0.5
        x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
        om = obj_mask[idx]
        om = torch.where(flip.view(-1, 1, 1, 1), om.flip(-1), om)
        c = cap[idx].clone()
        dropped = torch.rand(args.batch, generator=gen) < args.uncond
        c[dropped] = empty
        present = (torch.arange(MAX_OBJECTS).view(1, -1) < obj_count[idx].view(-1, 1)) & ~dropped.view(-1, 1)
        t = torch.randint(N_TRAIN_STEPS, (args.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = ac[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        tap.clear()
        if args.force > 0:
            tap.force = (om, present, torch.rand(args.batch, generator=gen) < args.force)
        pred = unet(xt, t.float(), context=emb[c])
        diffusion = diffusion_loss(pred, eps, om, args.object_weight,
                                   ac[t] if args.object_weight_schedule == "signal" else None)
        attn = attention_loss(tap.probs, om, present)
        tap.clear()
        loss = diffusion + args.attn_weight * attn
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for k, v in unet.state_dict().items():
                if v.is_floating_point():
                    ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
        d_loss, a_loss = float(diffusion.detach()), float(attn.detach())
        avg = d_loss if avg is None else 0.98 * avg + 0.02 * d_loss
        avg_attn = a_loss if avg_attn is None else 0.98 * avg_attn + 0.02 * a_loss
        if step % 20 == 0:
            say("step {} loss {:.4f} attention {:.4f} lr {:.2e}".format(step, avg, avg_attn, lr))
        def full_state(avg=avg, avg_attn=avg_attn):
            return {"weights": unet.state_dict(), "ema": ema, "optimizer": opt.state_dict(),
                    "generator": gen.get_state(), "loss": avg, "attention_loss": avg_attn,
                    "seconds": spent + time.time() - t0, "params": n_params}
        if checkpoint_step(args, step, full_state, "unet_ema.safetensors", lambda: ema, say):
            return
    say("done")


def decoder_weights(path: str) -> dict:
    """Decoder weights from a decoder checkpoint or from an exported VAE (``taesd_decoder.*`` keys)."""
    from safetensors.torch import load_file
    sd = {k: v.float() for k, v in load_file(path).items()}
    prefix = "taesd_decoder."
    if any(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def train_decoder(args) -> None:
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "decoder.log"), "a")
    t0 = time.time()

    def say(msg):
        line = "{:.0f}s {}".format(time.time() - t0, msg)
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    A, b = whitening(args.seed, args.whiten_scenes)
    gen = torch.Generator().manual_seed(args.seed + 6)
    dec = vae.init_module(vae.Decoder(), gen)
    resume = load_checkpoint(args)
    if args.init and resume is None:  # continue from an earlier decoder (a fresh schedule)
        dec.load_state_dict(decoder_weights(args.init))
        say("initialised from {}".format(args.init))
    opt = torch.optim.Adam(dec.parameters(), lr=args.lr)
    crop = args.crop // 8
    avg, first, spent = None, 1, 0.0
    if resume is not None:
        dec.load_state_dict(resume["weights"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        avg, spent, first = resume["loss"], resume["seconds"], resume["step"] + 1
        say("resumed after step {}".format(resume["step"]))
    for step in range(first, args.steps + 1):
        lr = args.lr * min(1.0, step / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, _ = data.batch(gen, args.batch)
        lat = vae.encode(x, A, b)
        xs, ls = [], []
        n = data.SIZE // 8
        for i in range(args.batch):
            oy, ox = (int(v) for v in torch.randint(n - crop + 1, (2,), generator=gen))
            ls.append(lat[i, :, oy:oy + crop, ox:ox + crop])
            xs.append(x[i, :, oy * 8:(oy + crop) * 8, ox * 8:(ox + crop) * 8])
        x, lat = torch.stack(xs), torch.stack(ls)
        out = dec(lat)
        loss = (out - x).abs().mean() + ((out - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        avg = float(loss) if avg is None else 0.95 * avg + 0.05 * float(loss)
        if step % 10 == 0:
            say("step {} loss {:.4f}".format(step, avg))
        def full_state(avg=avg):
            return {"weights": dec.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                    "loss": avg, "seconds": spent + time.time() - t0}
        if checkpoint_step(args, step, full_state, "decoder.safetensors", dec.state_dict, say):
            return
    say("done")


def phase_chain(work: str, what: str) -> list:
    """The phases that led to the weights in ``work``, first to last: each phase's saved state
    (step, loss, seconds, settings), following ``--init`` back through the earlier work folders and,
    when ``--init`` named an exported model, that model's recorded phases (its ``training.json``)."""
    chain, seen = [], set()
    while work and work not in seen:
        seen.add(work)
        path = os.path.join(work, "{}_state.json".format(what))
        if not os.path.exists(path):
            exported = os.path.join(work, "training.json")  # --init pointed at an exported model
            if os.path.exists(exported):
                with open(exported) as fh:
                    chain.extend(json.load(fh).get("{}_phases".format(what), [])[::-1])
            break
        with open(path) as fh:
            state = json.load(fh)
        chain.append(state)
        init = state["args"].get("init")
        work = os.path.dirname(os.path.abspath(init)) if init else None
    return chain[::-1]


def export(args) -> None:
    """Write unet/clip/vae safetensors and training.json (every phase of the UNet and the decoder)."""
    from safetensors.torch import load_file
    w = torch.load(os.path.join(args.work, "whitening.pt"))
    enc = vae.analytic_encoder(w["A"], w["b"])
    dec = vae.Decoder()
    decoder = args.decoder or os.path.join(args.work, "decoder.safetensors")
    dec.load_state_dict(decoder_weights(decoder))
    os.makedirs(args.out, exist_ok=True)
    save_st(vae.taesd_state_dict(enc, dec), os.path.join(args.out, "vae.safetensors"))
    for name in ("unet", "clip"):
        src = os.path.join(args.work, "unet_ema.safetensors" if name == "unet" else "clip.safetensors")
        save_st(load_file(src), os.path.join(args.out, name + ".safetensors"))
    meta = {"unet_phases": phase_chain(args.work, "unet"),
            "decoder_phases": phase_chain(os.path.dirname(os.path.abspath(decoder)), "decoder")}
    for what in ("unet", "decoder"):
        if meta[what + "_phases"]:
            meta[what + "_state"] = meta[what + "_phases"][-1]
    with open(os.path.join(args.out, "training.json"), "w") as fh:
        json.dump(meta, fh, indent=1, default=str)
    print("exported to", args.out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("unet", "decoder", "export"))
    ap.add_argument("--work", required=True, help="checkpoint/log directory (outside the repo)")
    ap.add_argument("--out", default=os.path.join(hostenv.REPO_ROOT, "models", "shapes"))
    ap.add_argument("--comfyui", default=None, help="ComfyUI root (else COMFYUI_PATH or .host/host_path)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--scenes", type=int, default=24000, help="unet: scenes in the training set")
    ap.add_argument("--uncond", type=float, default=0.1, help="unet: caption dropout rate")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--attn-weight", type=float, default=0.1,
                    help="unet: weight of the attention supervision loss (0 turns it off)")
    ap.add_argument("--force", type=float, default=0.5,
                    help="unet: share of samples whose object-word maps are replaced by the object masks")
    ap.add_argument("--pair-share", type=float, default=None,
                    help="unet: share of two-object scenes in the training set (default {})".format(data.PAIR_SHARE))
    ap.add_argument("--same-colour-share", type=float, default=None,
                    help="unet: share of the two-object scenes whose objects share a colour (default: "
                         "colours drawn independently, 2 in 11)")
    ap.add_argument("--object-weight", type=float, default=None,
                    help="unet: extra loss weight on the cells of each object and one cell around it "
                         "(e.g. 4: those cells count 5x; default off)")
    ap.add_argument("--object-weight-schedule", choices=("flat", "signal"), default=None,
                    help="unet: 'flat' (default): the object weight at every timestep; 'signal': times "
                         "the signal share of the noisy latent (alpha-bar), none on pure noise")
    ap.add_argument("--init", default=None, help="unet, decoder: start from these weights (safetensors)")
    ap.add_argument("--channels", type=int, default=32, help="unet: model channels (a multiple of 32)")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="unet, decoder: stop after this step's checkpoint; the same command resumes")
    ap.add_argument("--decoder", default=None,
                    help="export: the decoder's weights (default: decoder.safetensors in --work)")
    ap.add_argument("--crop", type=int, default=48, help="decoder: training crop in pixels (multiple of 8)")
    ap.add_argument("--whiten-scenes", type=int, default=WHITEN_SCENES,
                    help="unet, decoder: scenes the latent whitening is fitted on (give both the same)")
    args = ap.parse_args(argv)
    for name in ("pair_share", "same_colour_share", "force"):
        if getattr(args, name) is not None and not 0.0 <= getattr(args, name) <= 1.0:
            ap.error("--{} is {}; give a share from 0 to 1".format(name.replace("_", "-"), getattr(args, name)))
    if args.object_weight is not None and not 0.0 <= args.object_weight <= MAX_OBJECT_WEIGHT:
        ap.error("--object-weight is {}; give a number from 0 to {}".format(args.object_weight, MAX_OBJECT_WEIGHT))
    defaults = {"unet": dict(steps=3000, batch=32, lr=1e-3, threads=2),
                "decoder": dict(steps=800, batch=12, lr=1e-3, threads=1), "export": dict(threads=1)}[args.what]
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    torch.set_num_threads(args.threads)
    {"unet": train_unet, "decoder": train_decoder, "export": export}[args.what](args)


if __name__ == "__main__":
    main()
