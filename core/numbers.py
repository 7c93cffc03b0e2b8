"""Numbers and texts of node inputs: finite, in range, bounded in size, with clear messages.

Pure Python, no ComfyUI. For what text inputs hold (a widget's own number, type and range are
checked by ``nodes/common.py`` ``check_inputs``). Every check raises ValueError naming the node and
the input and saying what would be valid, e.g.
``P2PReplace: input 'reweight': 'snowy: nan' is not a finite number; use numbers from -10 to 10.``
NaN and infinities are bad input, never passed on (they would sample into a black image).
Every parser here is linear in the length of its (size-limited) text.
"""
from __future__ import annotations

import math
import numbers

MAX_LIST_CHARS = 2000  # characters of a 'word: number, ...' list
MAX_LIST_ENTRIES = 64  # entries of such a list
MAX_PROMPT_DEPTH = 24  # bracket nesting of a prompt: "(...)" multiplies a weight by 1.1 (1.1**24 = 9.8)
MAX_PROMPT_WEIGHT = 10.0  # |weight| of a prompt's token, "(word:1.2)"


def num(value: float) -> str:
    """A number as a message shows it: ``10``, ``0.5``, ``-10``, ``nan``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


QUOTE_LENGTH = 200  # characters of a text (a prompt, an entry) quoted in an error


def quote(text: str, limit: int = QUOTE_LENGTH) -> str:
    """``text`` cut to at most ``limit`` characters, ending in '…' when cut."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def finite_float(value) -> float | None:
    """``value`` as a float if it is a real finite number (numpy scalars too; bools and ints beyond
    the float range refused), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        return None
    return number if math.isfinite(number) else None


def check_text(node: str, name: str, value, max_chars: int) -> str:
    """A STRING input (None reads as empty) of at most ``max_chars`` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{node}: input '{name}' is {quote(repr(value), 60)}, not text; give text of at most "
                         f"{max_chars} characters.")
    if len(value) > max_chars:
        raise ValueError(f"{node}: input '{name}' is {len(value)} characters long; use at most {max_chars}.")
    return value


def parse_entry_number(node: str, name: str, entry: str, value: str, lo: float, hi: float) -> float:
    """The number ``value`` of list entry ``entry`` (``'cat: 0.5'``): finite and in ``[lo, hi]``.

    Raises ValueError for text that is no number, NaN, an infinity (``inf``, or ``1e400``, which
    overflows to one) and numbers outside the range.
    """
    use = f"use numbers from {num(lo)} to {num(hi)}."
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None:
        raise ValueError(f"{node}: input '{name}': '{quote(entry, 60)}' is not 'word: number'. "
                         "Write comma-separated entries like 'cat: 0.5, red hat: 2'.")
    if not math.isfinite(number):
        raise ValueError(f"{node}: input '{name}': '{quote(entry, 60)}' is not a finite number; {use}")
    if not lo <= number <= hi:
        raise ValueError(f"{node}: input '{name}': '{quote(entry, 60)}' is out of range; {use}")
    return number


def check_prompt_depth(node: str, name: str, text: str) -> None:
    """Refuse a prompt nesting brackets deeper than :data:`MAX_PROMPT_DEPTH` (linear scan).

    The host's weight parser recurses per bracket and multiplies the weight by 1.1 per level:
    deep nesting overflows the weight or the recursion limit.
    """
    depth, escaped = 0, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
            if depth > MAX_PROMPT_DEPTH:
                raise ValueError(f"{node}: input '{name}' nests brackets more than {MAX_PROMPT_DEPTH} deep; "
                                 "each '(...)' multiplies the weight by 1.1: write '(word:1.5)' instead.")
        elif ch == ")":
            depth = max(0, depth - 1)


def check_token_weights(node: str, name: str, tokens: dict) -> None:
    """Refuse prompt weights (``(word:nan)``, ``(word:1e30)``) that are not finite numbers in
    ``[-MAX_PROMPT_WEIGHT, MAX_PROMPT_WEIGHT]``.

    ``tokens``: the host's ``clip.tokenize`` result, ``{stream: [[(token, weight, ...), ...], ...]}``.
    """
    for chunks in tokens.values():
        for chunk in chunks:
            for item in chunk:
                weight = item[1]
                number = finite_float(weight)
                if number is None or abs(number) > MAX_PROMPT_WEIGHT:
                    raise ValueError(
                        f"{node}: input '{name}' gives a token the weight {num(weight)} (from '(word:weight)' "
                        f"or nested brackets); use finite weights from {num(-MAX_PROMPT_WEIGHT)} to "
                        f"{num(MAX_PROMPT_WEIGHT)}.")
