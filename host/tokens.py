"""Words of a prompt and their token positions, from the host's own tokenizer."""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import cached_property

from ..core.phrase import modifiers


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

    @cached_property
    def norm_words(self) -> list[str]:
        """The words lowercased without punctuation, as word-list entries are compared."""
        return [_norm(w) for w in self.words]


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


class TooManyMatchesError(ValueError):
    """Word-list entries match more prompt words than a caller's limit allows."""


def find_sequences(words: list[str], targets: list[tuple[str, ...]],
                   max_matched_words: int | None = None) -> dict[tuple[str, ...], list[int]]:
    """Start indices of every (also overlapping) occurrence of each target word sequence in ``words``.

    Aho-Corasick over words: time linear in ``len(words)``, the targets' total length and the
    matches. Empty targets never match. With ``max_matched_words``, raises TooManyMatchesError once
    the matches cover more words than that in all (each match counts its length).
    """
    goto: list[dict[str, int]] = [{}]  # trie of the targets; state 0 is the root
    ends: list[tuple[str, ...] | None] = [None]  # the target spelled by a state, if it is one
    for target in set(targets):
        if not target:
            continue
        state = 0
        for w in target:
            if w not in goto[state]:
                goto[state][w] = len(goto)
                goto.append({})
                ends.append(None)
            state = goto[state][w]
        ends[state] = target
    fail = [0] * len(goto)  # longest proper suffix of a state that is also a state
    out = [0] * len(goto)  # longest proper suffix of a state that is a target (0: none)
    queue = deque(goto[0].values())
    while queue:
        state = queue.popleft()
        for w, nxt in goto[state].items():
            f = fail[state]
            while f and w not in goto[f]:
                f = fail[f]
            fail[nxt] = goto[f].get(w, 0)
            out[nxt] = fail[nxt] if ends[fail[nxt]] is not None else out[fail[nxt]]
            queue.append(nxt)
    found: dict[tuple[str, ...], list[int]] = {t: [] for t in targets}
    matched = 0
    state = 0
    for i, w in enumerate(words):
        while state and w not in goto[state]:
            state = fail[state]
        state = goto[state].get(w, 0)
        hit = state if ends[state] is not None else out[state]
        while hit:
            target = ends[hit]
            found[target].append(i - len(target) + 1)
            matched += len(target)
            if max_matched_words is not None and matched > max_matched_words:
                raise TooManyMatchesError(f"the entries match more than {max_matched_words} prompt words in all")
            hit = out[hit]
    return found


def entry_positions(clip, pt: PromptTokens, entries: list[str], max_matched_words: int | None = None) -> list[list[int]]:
    """Sorted token positions of each entry (all occurrences; all of its tokens), [] when absent.

    Linear in the prompt's words, the entries' length and the matches; each distinct entry word
    is tokenized once. ``max_matched_words``: see :func:`find_sequences`.
    """
    inner = _inner_tokenizer(clip.tokenizer, "l")
    hf = getattr(inner, "tokenizer", None)
    parts_of = [[p for p in entry.split() if _norm(p)] for entry in entries]
    targets = [tuple(_norm(p) for p in parts) for parts in parts_of]
    starts = find_sequences(pt.norm_words, targets, max_matched_words)
    part_ids: dict[str, list[int] | None] = {}
    result = []
    for parts, target in zip(parts_of, targets):
        found: set[int] = set()
        for i in starts[target]:
            for j, part in enumerate(parts):
                if part not in part_ids:
                    part_ids[part] = _part_token_ids(hf, part)
                found.update(_word_token_positions(part_ids[part], pt.word_ids[i + j], pt.word_positions[i + j]))
        result.append(sorted(found))
    return result


def locate_words(clip, pt: PromptTokens, entries: list[str], node: str, input_name: str = "words") -> list[list[int]]:
    """Token positions for each entry (all occurrences; all of the entry's tokens).

    Raises WordNotFoundError naming the node, the input, the word and the prompt's words.
    """
    if not entries:
        raise WordNotFoundError(
            f"{node}: input '{input_name}' is empty. Give one or more words of the prompt, separated by commas "
            f"(prompt words: {', '.join(pt.words) or '(none)'})."
        )
    result = entry_positions(clip, pt, entries)
    for entry, found in zip(entries, result):
        if not found:
            raise WordNotFoundError(
                f"{node}: word '{entry}' (input '{input_name}') is not in the prompt \"{pt.prompt}\". "
                f"Prompt words: {', '.join(pt.words) or '(none)'}. Use words of the prompt, separated by commas."
            )
    return result


def _part_token_ids(hf, word: str) -> list[int] | None:
    """Token ids of one word of an entry without trailing punctuation (None without a tokenizer)."""
    if hf is None:
        return None
    return hf(re.sub(r"[^\w]+$", "", word.lower()) or word)["input_ids"][1:-1]


def _word_token_positions(ids: list[int] | None, group_ids: list[int], group_pos: list[int]) -> list[int]:
    """Positions of the word's own tokens ``ids`` inside a prompt word (drops attached punctuation)."""
    if ids is None:
        return list(group_pos)
    n = len(ids)
    for s in range(len(group_ids) - n + 1):
        if group_ids[s:s + n] == ids:
            return group_pos[s:s + n]
    return list(group_pos)


def with_bound(pt: PromptTokens, groups: list[list[int]]) -> list[list[int]]:
    """Each group's positions together with those it binds (:func:`bound_positions`), sorted."""
    return [sorted(set(g) | set(b)) for g, b in zip(groups, bound_positions(pt, groups))]


def bound_positions(pt: PromptTokens, groups: list[list[int]]) -> list[list[int]]:
    """For each group of token positions (a chosen entry's), the positions of the words that
    modify it in the prompt (:func:`core.phrase.modifiers`: "red" for "circle" in "a red circle").

    A chosen word never binds another chosen word; every occurrence binds its own modifiers.
    Linear in the prompt's words and the groups' positions.
    """
    word_of = {p: i for i, positions in enumerate(pt.word_positions) for p in positions}
    chosen = [{word_of[p] for p in g if p in word_of} for g in groups]
    stop = set().union(*chosen) if chosen else set()
    out = []
    for words in chosen:
        bound: list[int] = []
        for w in sorted(words):
            if w - 1 in words:  # inside a multi-word entry ("red circle"): only its first word binds
                continue
            for m in modifiers(pt.words, pt.norm_words, w, stop):
                bound.extend(pt.word_positions[m])
        out.append(sorted(set(bound)))
    return out
