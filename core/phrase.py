"""Which words of a prompt describe the same object as a chosen word: its noun phrase.

Pure Python. A diffusion model draws an object where the maps of *all* its describing tokens
are: moving the map of "circle" while "red" keeps attending to the old place leaves the red
object where it was. The rule here binds to a word the modifiers in front of it, the words
between it and the function word or punctuation that opens its phrase:

    "a photo of an old wooden chair, in a garden"   chair -> old, wooden
    "a red circle and a blue square"                square -> blue

Linear in the number of words; no parser, no word lists beyond the closed class of English
function words below, so what binds can be shown before a run (the token view) and predicted
by a user. Prompt weights such as "(red:1.2)" are already gone from the host's word split.
"""
from __future__ import annotations

BINDINGS = ("noun phrase", "typed words")
MAX_MODIFIERS = 4  # words bound to one chosen word: "a big old red wooden chair" binds 4

# Closed-class words (articles, determiners, prepositions, conjunctions, pronouns, auxiliaries):
# a phrase starts after the last of them. Content words (adjectives, nouns, numbers) bind.
FUNCTION_WORDS = frozenset("""
a an the this that these those some any each every no another such
and or but nor so yet plus versus vs
of in on at to from by with without into onto over under above below behind beside besides
between among around about across along through near inside outside upon within against
toward towards for as like than before after during beyond off out up down
i you he she it we they me him her us them my your his its our their mine yours ours theirs
is are was were be been being am has have had do does did will would can could should may might
who whom whose which what where when while there here very
""".split())


def is_function_word(norm_word: str) -> bool:
    """True for an article, preposition, conjunction, pronoun or auxiliary (lowercase, no punctuation)."""
    return norm_word in FUNCTION_WORDS


def modifiers(words: list[str], norm_words: list[str], index: int, stop: set[int] | frozenset[int] = frozenset()
              ) -> list[int]:
    """Indices of the words that modify ``words[index]``: the content words right before it.

    ``words`` are the prompt's words as split (punctuation attached to the word before it),
    ``norm_words`` the same lowercased without punctuation. The walk goes left from ``index`` and
    stops at a function word, at a word ending in punctuation (a phrase boundary: "circle, red
    square"), at a word in ``stop`` (another chosen word, which binds its own modifiers), at the
    prompt's start, or after :data:`MAX_MODIFIERS` words. Returned in prompt order.
    """
    out: list[int] = []
    i = index - 1
    while i >= 0 and len(out) < MAX_MODIFIERS:
        word, norm = words[i], norm_words[i]
        if i in stop or not norm or is_function_word(norm) or not word[-1:].isalnum():
            break
        out.append(i)
        i -= 1
    return out[::-1]
