"""Token alignment for Prompt-to-Prompt: which source token each target token takes its map from.

Pure Python/torch. A *mapping* between a source and a target token axis of length ``T`` is a pair

* ``mapper``: float ``[T, T]`` with ``mapper[s, t]`` the weight of source token ``s`` in the map
  of target token ``t`` (edited target map ``= source_probs @ mapper``);
* ``mapped``: bool ``[T]``, True where target token ``t`` has a source counterpart (tokens
  without one keep their own map).

Replace (word swap) maps word i of the source to word i of the target (mass-preserving when
the two words tokenize to different counts); refine aligns the token sequences globally
(Needleman-Wunsch: match 1, mismatch -1, gap 0). Positions outside words (start, end, padding)
map in order of appearance in both modes.
"""
from __future__ import annotations

from typing import Sequence

import torch

GAP = -1


def needleman_wunsch(a: Sequence, b: Sequence, match: float = 1.0, mismatch: float = -1.0,
                     gap: float = 0.0) -> list[tuple[int, int]]:
    """Global alignment of ``a`` and ``b``: a list of ``(i, j)`` pairs, ``-1`` marking a gap.

    Ties prefer a diagonal step, then a gap in ``b``; the result covers every index of both
    sequences once, in order.
    """
    n, m = len(a), len(b)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = i * gap
    for j in range(1, m + 1):
        score[0][j] = j * gap
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = score[i - 1][j - 1] + (match if a[i - 1] == b[j - 1] else mismatch)
            score[i][j] = max(diag, score[i - 1][j] + gap, score[i][j - 1] + gap)
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and score[i][j] == score[i - 1][j - 1] + (match if a[i - 1] == b[j - 1] else mismatch):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and score[i][j] == score[i - 1][j] + gap:
            pairs.append((i - 1, GAP))
            i -= 1
        else:
            pairs.append((GAP, j - 1))
            j -= 1
    return pairs[::-1]


def _empty(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(length, length), torch.zeros(length, dtype=torch.bool)


def _map_in_order(mapper: torch.Tensor, mapped: torch.Tensor, src: Sequence[int], tgt: Sequence[int]) -> None:
    for s, t in zip(src, tgt):
        mapper[s, t] = 1.0
        mapped[t] = True


def _non_word(words: Sequence[Sequence[int]], length: int) -> list[int]:
    used = {p for w in words for p in w}
    return [p for p in range(length) if p not in used]


def replace_mapping(src_words: Sequence[Sequence[int]], tgt_words: Sequence[Sequence[int]],
                    length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-to-word mapping for a word swap; both prompts must have the same number of words.

    ``src_words[i]`` / ``tgt_words[i]``: token positions of word i. Equal token counts map token
    to token; otherwise every target token of the word gets the sum of the source word's maps
    divided by the target's token count (the word's total attention is kept).
    """
    if len(src_words) != len(tgt_words):
        raise ValueError(f"replace needs the same number of words (source {len(src_words)}, target {len(tgt_words)})")
    mapper, mapped = _empty(length)
    for sw, tw in zip(src_words, tgt_words):
        if len(sw) == len(tw):
            _map_in_order(mapper, mapped, sw, tw)
        else:
            for t in tw:
                mapper[list(sw), t] = 1.0 / len(tw)
                mapped[t] = True
    _map_in_order(mapper, mapped, _non_word(src_words, length), _non_word(tgt_words, length))
    return mapper, mapped


def refine_mapping(src_tokens: Sequence[tuple[int, int]], tgt_tokens: Sequence[tuple[int, int]], length: int,
                   src_words: Sequence[Sequence[int]], tgt_words: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mapping for added/removed words: align the word tokens by id (Needleman-Wunsch).

    ``src_tokens`` / ``tgt_tokens``: ``(position, token_id)`` of every word token, in order.
    Target tokens aligned to an equal source token take its map; new tokens keep their own.
    """
    mapper, mapped = _empty(length)
    pairs = needleman_wunsch([i for _, i in src_tokens], [i for _, i in tgt_tokens])
    for a, b in pairs:
        if a != GAP and b != GAP and src_tokens[a][1] == tgt_tokens[b][1]:
            mapper[src_tokens[a][0], tgt_tokens[b][0]] = 1.0
            mapped[tgt_tokens[b][0]] = True
    _map_in_order(mapper, mapped, _non_word(src_words, length), _non_word(tgt_words, length))
    return mapper, mapped


def source_of(mapper: torch.Tensor, positions: Sequence[int]) -> list[int]:
    """Target positions whose map draws on any of the source ``positions``."""
    if not positions:
        return []
    cols = mapper[list(positions)].abs().sum(dim=0)
    return [int(t) for t in torch.nonzero(cols > 0).flatten()]
