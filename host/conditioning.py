"""Conditioning with one row per prompt (for batches where each latent row has its own prompt)."""
from __future__ import annotations

import torch


def chunk_count(clip, prompt: str) -> int:
    """How many 77-token chunks the host's tokenizer makes of ``prompt``."""
    tokens = clip.tokenize(prompt)
    return max(len(v) for v in tokens.values())


def encode_rows(clip, prompts: list[str], chunks: int | None = None) -> list:
    """CONDITIONING whose row i encodes ``prompts[i]``, all rows ``chunks`` chunks long.

    Each prompt is encoded alone, exactly as CLIP Text Encode does; a prompt with fewer chunks
    is padded with chunks of the empty prompt (what ComfyUI does when concatenating
    conditionings). Raises ValueError if a prompt needs more than ``chunks`` chunks.
    """
    empty = clip.tokenize("")
    conds, pooled = [], []
    for prompt in prompts:
        tokens = clip.tokenize(prompt)
        n = max(len(v) for v in tokens.values())
        target = chunks if chunks is not None else n
        if n > target:
            raise ValueError(f"prompt needs {n} chunks of 77 tokens, more than the {target} allowed")
        for key in tokens:
            tokens[key] = list(tokens[key]) + [empty[key][0]] * (target - len(tokens[key]))
        cond, pool = clip.encode_from_tokens(tokens, return_pooled=True)
        conds.append(cond)
        pooled.append(pool)
    extra = {}
    if all(p is not None for p in pooled):
        extra["pooled_output"] = torch.cat(pooled)
    return [[torch.cat(conds), extra]]
