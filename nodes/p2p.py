"""P2PReplace (Prompt-to-Prompt edits) and SharedNoiseSampler (same step noise in every row)."""
from __future__ import annotations

import torch

from ..controllers.p2p import MAX_REWEIGHT, NODE, CrossReplace, CrossReweight, P2PPrompts, SelfReplace
from ..core.align import refine_mapping, replace_mapping, source_of
from ..core.numbers import (MAX_LIST_CHARS, MAX_LIST_ENTRIES, check_text, quote,
                            parse_entry_number)
from ..host.conditioning import encode_rows
from ..host.noise import shared_noise_sampler
from ..host.passes import install_source_pass
from ..host.router import install
from ..host.tokens import PromptTokens, WordNotFoundError, locate_words, parse_word_list, tokenize_prompt
from ..core.inversion import RowPlan
from ..host.inversion import install_guide, trajectory_of
from .common import CATEGORY, check_inputs, empty_latent, picture_rows, prompt_chunks

MODES = ["replace", "refine", "reweight", "replace+reweight", "refine+reweight"]
SOURCE_PASSES = ["exact", "batched"]
MAX_PROMPT_CHARS = 2000  # characters of the source prompt and of each target line
MAX_TARGETS = 63  # target lines: at most 64 latent rows
MAX_CHUNKS = 4  # 77-token chunks of a prompt (refine aligns tokens in quadratic time)
MIN_SIZE, MAX_SIZE, LATENT_FACTOR = 64, 8192, 8  # image side in pixels; the latent is 1/8 of it

PATH_NOTE = (
    "Deterministic samplers (euler, heun, dpm_2, lms, dpmpp_2m, ddim, uni_pc, ...) work with the "
    "standard KSampler: the LATENT's rows share one initial noise. Ancestral and SDE samplers "
    "(euler_ancestral, dpm_2_ancestral, dpmpp_2s_ancestral, dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde, "
    "ddpm, lcm) add fresh noise per row every step: use SamplerCustom with the SharedNoiseSampler "
    "node, which gives every row the noise a single-row run would get (it also makes the step "
    "schedule exact for any sampler)."
)


def parse_word_values(spec: str, node: str, input_name: str, lo: float, hi: float) -> list[tuple[str, float]]:
    """Parse ``"word: value, other words: value"`` into ``[(words, value)]``.

    The text has at most :data:`MAX_LIST_CHARS` characters and :data:`MAX_LIST_ENTRIES` entries;
    every value must be a finite number in ``[lo, hi]``. Raises ValueError naming node and input.
    """
    entries = parse_word_list(check_text(node, input_name, spec, MAX_LIST_CHARS))
    if len(entries) > MAX_LIST_ENTRIES:
        raise ValueError(f"{node}: input '{input_name}' has {len(entries)} entries; use at most {MAX_LIST_ENTRIES}.")
    out = []
    for entry in entries:
        word, sep, value = entry.rpartition(":")
        if not sep or not word.strip():
            value = ""  # refused below as not 'word: number'
        out.append((word.strip(), parse_entry_number(node, input_name, entry, value, lo, hi)))
    return out


def split_targets(text: str) -> list[str]:
    """One target prompt per non-empty line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _word_tokens(pt: PromptTokens) -> list[tuple[int, int]]:
    return [(p, i) for pos, ids in zip(pt.word_positions, pt.word_ids) for p, i in zip(pos, ids)]


class P2PReplace:
    """Source and target prompts sampled together from one noise; targets edited by attention."""

    DESCRIPTION = (
        "Prompt-to-Prompt. Returns a MODEL, a positive CONDITIONING (row 0 the source prompt, then one "
        "row per target line) and a LATENT whose rows share one initial noise: sample them together "
        "(negative: any CONDITIONING). Row 0 comes out exactly as a plain generation of the source "
        "prompt with that seed. mode: replace (word swap, same number of words), refine (words added "
        "or removed; tokens aligned), reweight (target = source prompt unless given; scale words' "
        "attention), or reweight on top of replace/refine. cross_replace: fraction of the steps during "
        "which target words take the source's cross-attention maps ('cross_replace_words': per word, "
        "'cat: 0.3'); self_replace: fraction of steps with the source's self-attention maps; "
        "reweight: 'word: factor, ...' (from -10 to 10, negative allowed), applied during the word's cross_replace "
        "window. source_pass: 'exact' (default) evaluates the source row alone at every step so it is "
        "bit-identical to a plain run, at the cost of one extra row; 'batched' samples all rows in one "
        "batch like a plain batch (no extra cost; the source row then differs from a single-row run by the "
        "host's batch-size rounding, about 1e-3 of the latent on CPU). " + PATH_NOTE
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("model", "positive", "latent")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: used to find the words' tokens in the prompt."}),
                "source_prompt": ("STRING", {"multiline": True, "default": "a cat sitting on a car", "tooltip": "The original prompt; latent row 0 is its plain generation. At most 2000 characters, 4 chunks of 77 tokens."}),
                "target_prompts": ("STRING", {"multiline": True, "default": "a dog sitting on a car", "tooltip": "One edited prompt per line (at most 63 lines, 2000 characters each); each gets its own latent row."}),
                "mode": (MODES, {"tooltip": "replace: word swap (same word count); refine: words added/removed; reweight: scale words' effect; or reweight on top."}),
                "cross_replace": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Fraction of the steps (0-1) during which target tokens take the source's cross-attention maps. Higher = closer to the source."}),
                "cross_replace_words": ("STRING", {"default": "", "tooltip": "Optional per-word fractions 0-1, e.g. 'cat: 0.3, car: 0.5' (overrides cross_replace for those words)."}),
                "self_replace": ("FLOAT", {"default": 0.4, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Fraction of the steps (0-1) during which targets use the source's self-attention: keeps layout and shapes."}),
                "reweight": ("STRING", {"default": "", "tooltip": "'word: factor, ...' with factors -10..10 (1 = unchanged, 2 = twice the attention, negative = opposite)."}),
                "width": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image width in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
                "height": ("INT", {"default": 512, "min": MIN_SIZE, "max": MAX_SIZE, "step": LATENT_FACTOR, "tooltip": "Image height in pixels (64-8192, multiple of 8); the latent is 1/8 of it."}),
            },
            "optional": {
                "source_pass": (SOURCE_PASSES, {"default": "exact", "tooltip": "'exact': row 0 bit-identical to a plain run (one extra row per step); 'batched': cheaper, needed under other attention nodes."}),
                "latent": ("LATENT", {"tooltip": "Optional: one picture's latent. From Diffusion Inversion, row 0 is your picture and the targets edit it; width and height are then the picture's."}),
            },
        }

    def build(self, model, clip, source_prompt, target_prompts, mode, cross_replace, cross_replace_words,
              self_replace, reweight, width, height, source_pass="exact", latent=None):
        # types, choices, finite numbers in range, width/height multiples of the latent factor
        check_inputs(self, locals())
        source_pass = source_pass or "exact"  # an optional input left out
        source = check_text(NODE, "source_prompt", source_prompt, MAX_PROMPT_CHARS).strip()
        if not source:
            raise ValueError(f"{NODE}: input 'source_prompt' is empty; give the prompt of the source image.")
        targets = split_targets(check_text(NODE, "target_prompts", target_prompts, MAX_TARGETS * (MAX_PROMPT_CHARS + 1)))
        if len(targets) > MAX_TARGETS:
            raise ValueError(f"{NODE}: input 'target_prompts' has {len(targets)} lines; use at most {MAX_TARGETS} "
                             "(one target prompt per line).")
        for i, t in enumerate(targets):
            if len(t) > MAX_PROMPT_CHARS:
                raise ValueError(f"{NODE}: input 'target_prompts': line {i + 1} is {len(t)} characters long; "
                                 f"use at most {MAX_PROMPT_CHARS}.")
        if not targets:
            if mode != "reweight":
                raise ValueError(f"{NODE}: input 'target_prompts' is empty; give one target prompt per line "
                                 "(only mode 'reweight' may leave it empty, to reweight the source prompt).")
            targets = [source]
        weights = parse_word_values(reweight, NODE, "reweight", -MAX_REWEIGHT, MAX_REWEIGHT)
        if "reweight" in mode and not weights:
            raise ValueError(f"{NODE}: mode '{mode}' needs input 'reweight', e.g. 'cat: 2, hat: -1'.")
        if "reweight" not in mode and weights:
            raise ValueError(f"{NODE}: input 'reweight' is set but mode is '{mode}'; choose '{mode}+reweight' "
                             "(or 'reweight'), or clear 'reweight'.")
        word_windows = parse_word_values(cross_replace_words, NODE, "cross_replace_words", 0.0, 1.0)

        chunks = prompt_chunks(NODE, "source_prompt", clip, source)
        if chunks > MAX_CHUNKS:
            raise ValueError(f"{NODE}: input 'source_prompt' needs {chunks} 77-token chunks; use at most {MAX_CHUNKS}.")
        for i, t in enumerate(targets):
            n = prompt_chunks(NODE, "target_prompts", clip, t)
            if n > chunks:
                raise ValueError(
                    f"{NODE}: input 'target_prompts': line {i + 1} (\"{quote(t, 60)}\") needs more 77-token chunks "
                    f"({n}) than the source prompt ({chunks}); all rows share one token "
                    "length and the source row must stay a plain generation. Shorten that target or lengthen the source."
                )
        src_pt = tokenize_prompt(clip, source)
        length = src_pt.n_tokens
        prompts = P2PPrompts(source, targets, length)
        refine = mode.startswith("refine")
        mappers, mappeds, untils, factors = [], [], [], []
        for i, target in enumerate(targets):
            tgt_pt = tokenize_prompt(clip, target)
            if refine:
                mapper, mapped = refine_mapping(_word_tokens(src_pt), _word_tokens(tgt_pt), length,
                                                src_pt.word_positions, tgt_pt.word_positions)
            else:
                if len(src_pt.words) != len(tgt_pt.words):
                    raise ValueError(
                        f"{NODE}: mode '{mode}' swaps words one for one, but target line {i + 1} has "
                        f"{len(tgt_pt.words)} words ({' '.join(tgt_pt.words)}) and the source has "
                        f"{len(src_pt.words)} ({' '.join(src_pt.words)}). Use the same number of words, or mode 'refine'."
                    )
                mapper, mapped = replace_mapping(src_pt.word_positions, tgt_pt.word_positions, length)
            until = torch.full((length,), float(cross_replace))
            for word, value in word_windows:
                until[self._window_positions(clip, src_pt, tgt_pt, mapper, word, i)] = value
            factor = torch.ones(length)
            for word, value in weights:
                positions = locate_words(clip, tgt_pt, [word], NODE, "reweight")[0]
                factor[positions] = value
            mappers.append(mapper)
            mappeds.append(mapped)
            untils.append(until)
            factors.append(factor)
        until = torch.stack(untils)
        patched = install(model, CrossReplace(prompts, torch.stack(mappers), torch.stack(mappeds), until), NODE)
        if weights:
            patched = install(patched, CrossReweight(prompts, torch.stack(factors), until), NODE)
        if self_replace > 0:
            patched = install(patched, SelfReplace(prompts, self_replace), NODE)
        if source_pass == "exact":
            install_source_pass(patched)
        positive = encode_rows(clip, [source] + targets, chunks)
        rows = prompts.rows
        trajectory = trajectory_of(latent, NODE)
        install_guide(patched, trajectory, RowPlan.one_source(rows) if trajectory else None, NODE)
        if latent is not None:
            return (patched, positive, picture_rows(latent, rows, NODE))
        return (patched, positive, {**empty_latent(rows, width, height), "batch_index": [0] * rows})

    @staticmethod
    def _window_positions(clip, src_pt, tgt_pt, mapper, word, line) -> list[int]:
        try:
            return locate_words(clip, tgt_pt, [word], NODE, "cross_replace_words")[0]
        except WordNotFoundError:
            pass
        try:
            return source_of(mapper, locate_words(clip, src_pt, [word], NODE, "cross_replace_words")[0])
        except WordNotFoundError:
            raise ValueError(
                f"{NODE}: word '{word}' (input 'cross_replace_words') is in neither the source prompt "
                f"({', '.join(src_pt.words)}) nor target line {line + 1} ({', '.join(tgt_pt.words)})."
            ) from None


class SharedNoiseSampler:
    """A SAMPLER for SamplerCustom: any built-in sampler, every row with single-row noise."""

    DESCRIPTION = (
        "Wraps a built-in sampler for SamplerCustom so that every latent row gets exactly the per-step "
        "noise a plain single-row run with the same seed would get (ancestral samplers: Gaussian noise; "
        "dpmpp_*sde*: Brownian tree). Use it for ancestral and SDE samplers with P2PReplace or "
        "FrameSequence; deterministic samplers also work with the plain KSampler. It also publishes the "
        "run's sigmas so attention edits switch at exact step fractions."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    FUNCTION = "get"

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {"required": {"sampler_name": (list(comfy.samplers.KSAMPLER_NAMES), {
            "tooltip": "The built-in sampler to wrap (use it for ancestral and SDE samplers with P2P Replace or Frame Sequence)."})}}

    def get(self, sampler_name):
        return (shared_noise_sampler(sampler_name),)


NODE_CLASS_MAPPINGS = {"P2PReplace": P2PReplace, "SharedNoiseSampler": SharedNoiseSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"P2PReplace": "Prompt-to-Prompt Replace",
                              "SharedNoiseSampler": "Shared Noise Sampler"}
