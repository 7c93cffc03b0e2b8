"""Words of a prompt and their token positions, from the host's own tokenizer."""
from __future__ import annotations

import re
from dataclasses import dataclass


def _norm(word: str) -> str:
    return re.sub(r"[^\w]+", "", word.lower())


@dataclass
class PromptTokens:
    """A tokenized prompt: its words and the global token positions of each word.

    Positions index the conditioning's token axis: chunk ``c`` position ``p`` is ``77 * c + p``.
    """

    prompt: str
    words: list[str]  # as the tokenizer grouped them (punctuation attached)
    word_positions: list[list[int]]  # token positions of each word
    word_ids: list[list[int]]  # token ids of each word
    n_tokens: int  # length of the token axis (77 * chunks)
    chunk_length: int
    token_strings: list[str]  # decoded text of every position ("<start>", "<end>", "<pad>" for specials)

    @property
    def chunks(self) -> int:
        return self.n_tokens // self.chunk_length


def _inner_tokenizer(clip_tokenizer, key: str):
    inner = getattr(clip_tokenizer, f"clip_{key}", None)
    if inner is None and hasattr(clip_tokenizer, "clip"):
        inner = getattr(clip_tokenizer, clip_tokenizer.clip, None)
    return inner if inner is not None else clip_tokenizer


def tokenize_prompt(clip, prompt: str) -> PromptTokens:
    """Tokenize ``prompt`` with ``clip``'s tokenizer (SD1 'l' stream, which SDXL shares)."""
    tokens = clip.tokenize(prompt, return_word_ids=True)
    key = "l" if "l" in tokens else next(iter(tokens))
    chunks = tokens[key]
    inner = _inner_tokenizer(clip.tokenizer, key)
    hf = getattr(inner, "tokenizer", None)
    start = getattr(inner, "start_token", None)
    end = getattr(inner, "end_token", None)
    items: list[tuple[int, int, int]] = []  # (position, token id or -1 for embeddings, word id)
    strings = []
    chunk_length = len(chunks[0]) if chunks else 77
    for c, chunk in enumerate(chunks):
        seen_end = False
        for p, item in enumerate(chunk):
            tok, word_id = item[0], item[2] if len(item) > 2 else 0
            pos = c * chunk_length + p
            if not isinstance(tok, int):
                items.append((pos, -1, word_id))
                strings.append("<embedding>")
            elif tok == start and p == 0:
                strings.append("<start>")
            elif word_id == 0 and tok == end and not seen_end:
                strings.append("<end>")
                seen_end = True
            elif word_id == 0:
                strings.append("<pad>")
            else:
                items.append((pos, tok, word_id))
                strings.append(hf.decode([tok]) if hf is not None else str(tok))
    words, positions, ids = [], [], []
    for group in _group_words(items, hf):
        tok_ids = [t for _, t in group]
        text = hf.decode([t for t in tok_ids if t >= 0]).replace(" ", "") if hf is not None else " ".join(map(str, tok_ids))
        words.append(text or "<embedding>")
        positions.append([p for p, _ in group])
        ids.append(tok_ids)
    return PromptTokens(prompt, words, positions, ids, len(chunks) * chunk_length, chunk_length, strings)


def _group_words(items: list[tuple[int, int, int]], hf) -> list[list[tuple[int, int]]]:
    """Split content tokens into words at CLIP's end-of-word markers.

    Host word ids are not relied on (some hosts give every token of a prompt the same id); a
    word ends at a BPE token ending in ``</w>``, an embedding is a word of its own, and a piece
    with no letters or digits (punctuation) joins the word before it.
    """
    words: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    last_id = None
    for pos, tok, word_id in items:
        if current and (word_id != last_id or tok < 0):
            words.append(current)
            current = []
        current.append((pos, tok))
        last_id = word_id
        piece = hf.convert_ids_to_tokens(tok) if (hf is not None and tok >= 0) else "</w>"
        if tok < 0 or piece.endswith("</w>"):
            words.append(current)
            current = []
    if current:
        words.append(current)
    merged: list[list[tuple[int, int]]] = []
    for word in words:
        text = hf.decode([t for _, t in word if t >= 0]) if hf is not None else "x"
        if merged and word[0][1] >= 0 and merged[-1][-1][1] >= 0 and not re.search(r"\w", text):
            merged[-1].extend(word)
        else:
            merged.append(word)
    return merged


class WordNotFoundError(ValueError):
    """A requested word does not occur in the prompt."""


def parse_word_list(spec: str) -> list[str]:
    """Split a comma-separated word list; each entry may hold several words ("red circle")."""
    return [w.strip() for w in (spec or "").split(",") if w.strip()]


def locate_words(clip, pt: PromptTokens, entries: list[str], node: str, input_name: str = "words") -> list[list[int]]:
    """Token positions for each entry (all occurrences; all of the entry's tokens).

    Raises WordNotFoundError naming the node, the input, the word and the prompt's words.
    """
    if not entries:
        raise WordNotFoundError(
            f"{node}: input '{input_name}' is empty. Give one or more words of the prompt, separated by commas "
            f"(prompt words: {', '.join(pt.words) or '(none)'})."
        )
    norm_words = [_norm(w) for w in pt.words]
    inner = _inner_tokenizer(clip.tokenizer, "l")
    hf = getattr(inner, "tokenizer", None)
    result = []
    for entry in entries:
        parts = [p for p in entry.split() if _norm(p)]
        target = [_norm(p) for p in parts]
        found: list[int] = []
        for i in range(len(norm_words) - len(target) + 1):
            if target and norm_words[i:i + len(target)] == target:
                for j, part in enumerate(parts):
                    found.extend(_word_token_positions(hf, part, pt.word_ids[i + j], pt.word_positions[i + j]))
        if not found:
            raise WordNotFoundError(
                f"{node}: word '{entry}' (input '{input_name}') is not in the prompt \"{pt.prompt}\". "
                f"Prompt words: {', '.join(pt.words) or '(none)'}. Use words of the prompt, separated by commas."
            )
        result.append(sorted(set(found)))
    return result


def _word_token_positions(hf, word: str, group_ids: list[int], group_pos: list[int]) -> list[int]:
    """Positions of the word's own tokens inside a prompt word (drops attached punctuation)."""
    if hf is None:
        return list(group_pos)
    ids = hf(re.sub(r"[^\w]+$", "", word.lower()) or word)["input_ids"][1:-1]
    n = len(ids)
    for s in range(len(group_ids) - n + 1):
        if group_ids[s:s + n] == ids:
            return group_pos[s:s + n]
    return list(group_pos)
