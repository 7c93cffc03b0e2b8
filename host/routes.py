"""HTTP routes the pack adds to ComfyUI's server (used by the frontend extension in js/).

``POST /attention_motion/tokenize`` with JSON ``{"prompt": str, "words": str, "bind": str}``
answers how the host's own SD1 tokenizer splits the prompt (the 'l' stream, whose positions SDXL
shares), so the graph editor can show words, token positions and 77-token chunks before a prompt
is queued. ``bind`` is optional: "typed words" (the default) or "noun phrase", the choice of the
nodes' ``bind`` input; with "noun phrase" each entry also lists the tokens that move with it (its
modifiers, :func:`host.tokens.bound_positions`). For "a red circle", words "circle, dog" and
bind "noun phrase"::

    {"words": [{"word": "red", "positions": [2]}, ...],      # prompt words, as the nodes see them
     "chunks": [[{"pos": 0, "token": "<start>"}, ...], ...],   # tokens of each chunk up to <end>
     "chunk_length": 77, "n_tokens": 77,
     "entries": [{"entry": "circle", "positions": [3], "found": true,
                  "bound": [2], "bound_words": ["red"]},       # only with bind "noun phrase"
                 {"entry": "dog", "positions": [], "found": false, "bound": [], "bound_words": []}],
     "positions": [[3]],                                       # positions of the found entries
     "missing": ["dog"]}                                       # chosen words not in the prompt

The tokenizer needs no loaded CLIP: :class:`TokenizerClip` adapts a bare
``comfy.sd1_clip.SD1Tokenizer`` to the ``clip`` interface that :mod:`host.tokens` uses.
Registration is guarded: outside a running server (tests, scripts) nothing happens.

Hostile input is refused before any tokenizing (HTTP 400, or 413 for a body over
``MAX_BODY_BYTES``, with ``{"error": message, "field": name}``); see the ``MAX_*`` limits. The
work of an accepted request is linear in the prompt and the words and bounded by the limits.
Requests run on a small pool of worker threads, each with its own tokenizer (the host's fast
tokenizer must not be shared between threads), so no lock is held while tokenizing and a
large request does not hold up a small one.
"""
from __future__ import annotations

import asyncio
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from ..core.phrase import BINDINGS
from .tokens import TooManyMatchesError, bound_positions, entry_positions, parse_word_list, tokenize_prompt

ROUTE = "/attention_motion/tokenize"
MAX_PROMPT_CHARS = 20000  # characters of 'prompt' (a 77-token chunk is roughly 300 characters)
MAX_WORDS_CHARS = 2000  # characters of 'words'
MAX_WORD_ENTRIES = 100  # comma-separated entries of 'words'
MAX_NESTING = 32  # depth of "(...)" weight groups in 'prompt' (the host parses them recursively)
MAX_EMBEDDINGS = 32  # "embedding:" references in 'prompt' (each one makes the host look for a file)
MAX_MATCHED_WORDS = 50000  # prompt words matched (and bound) by all entries together (bounds the answer)
MAX_ANSWER_POSITIONS = 100_000  # token positions listed for all entries together (about 700 KB of JSON)
MAX_BODY_BYTES = 512 * 1024  # the request body; the largest valid one is about 270 KB
WORKERS = 2  # threads (each with its own tokenizer) serving the route
DEFAULT_BIND = "typed words"  # 'bind' when the request has none: the answer of clients before it

_local = threading.local()
_executor: ThreadPoolExecutor | None = None
_registered = False


class RequestError(ValueError):
    """A request the route refuses: ``field`` names the offending JSON field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class TokenizerClip:
    """The part of a CLIP object :mod:`host.tokens` uses (``tokenize``, ``tokenizer``), no weights."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def tokenize(self, text: str, return_word_ids: bool = False):
        return self.tokenizer.tokenize_with_weights(text, return_word_ids)


def _embedding_dirs():
    try:
        import folder_paths

        return folder_paths.get_folder_paths("embeddings")
    except Exception:  # noqa: BLE001 - embeddings are optional for tokenization
        return None


def tokenizer_clip() -> TokenizerClip:
    """This thread's :class:`TokenizerClip` around the host's ``SD1Tokenizer`` (built on first use).

    One per thread: the host's fast tokenizer fails when two threads use it at once.
    """
    clip = getattr(_local, "clip", None)
    if clip is None:
        from comfy.sd1_clip import SD1Tokenizer

        clip = _local.clip = TokenizerClip(SD1Tokenizer(embedding_directory=_embedding_dirs()))
    return clip


def _check_text(field: str, value, max_chars: int, what: str) -> str:
    """``value`` if it is a string of at most ``max_chars`` valid Unicode characters, else RequestError."""
    if not isinstance(value, str):
        raise RequestError(field, f"'{field}' must be a string ({what}), not {type(value).__name__}")
    if len(value) > max_chars:
        raise RequestError(field, f"'{field}' has {len(value)} characters; at most {max_chars} are allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RequestError(
            field, f"'{field}' is not valid Unicode text: lone surrogate {value[e.start]!r} at character {e.start}"
        ) from None
    return value


def _nesting_depth(prompt: str) -> int:
    """Deepest "(" nesting of the prompt as the host's weight parser sees it (escaped brackets skipped)."""
    depth = deepest = 0
    for ch in prompt.replace("\\(", "").replace("\\)", ""):
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def check_request(prompt, words) -> tuple[str, list[str]]:
    """The prompt and the word-list entries of a request; RequestError naming the field if invalid."""
    prompt = _check_text("prompt", prompt, MAX_PROMPT_CHARS, "the prompt text")
    words = _check_text("words", "" if words is None else words, MAX_WORDS_CHARS,
                        "comma-separated words of the prompt")
    if _nesting_depth(prompt) > MAX_NESTING:
        raise RequestError("prompt", f"'prompt' nests \"(\" deeper than {MAX_NESTING} levels")
    if prompt.count("embedding:") > MAX_EMBEDDINGS:
        raise RequestError("prompt", f"'prompt' names more than {MAX_EMBEDDINGS} embeddings (\"embedding:\")")
    entries = parse_word_list(words)
    if len(entries) > MAX_WORD_ENTRIES:
        raise RequestError("words", f"'words' has {len(entries)} entries; at most {MAX_WORD_ENTRIES} are allowed")
    return prompt, entries


def check_bind(bind) -> str:
    """The request's ``bind`` choice (:data:`DEFAULT_BIND` when absent); RequestError if unknown."""
    if bind is None:
        return DEFAULT_BIND
    if not isinstance(bind, str) or bind not in BINDINGS:
        shown = repr(bind[:40]) if isinstance(bind, str) else type(bind).__name__
        raise RequestError("bind", f"'bind' must be one of {', '.join(repr(b) for b in BINDINGS)}, not {shown}")
    return bind


def _too_many_matches() -> RequestError:
    return RequestError("words", f"'words' match more than {MAX_MATCHED_WORDS} words of the prompt in all "
                                 "(with bind 'noun phrase': with the words bound to them); choose fewer or rarer words")


def _bound(pt, found: list[list[int]]) -> list[tuple[list[int], list[str]]]:
    """For each entry's positions, the positions and the distinct words (prompt order) bound to it.

    Linear in the prompt's tokens and the positions: identical groups (repeated entries) are
    worked out once, and the words each entry covers and binds count together against
    MAX_MATCHED_WORDS, so the answer stays within the limit whatever the entries repeat.
    """
    distinct = list(dict.fromkeys(tuple(g) for g in found))
    bound_of = dict(zip(distinct, bound_positions(pt, [list(g) for g in distinct])))
    word_of = {p: i for i, positions in enumerate(pt.word_positions) for p in positions}
    matched = sum(len({word_of[p] for p in g if p in word_of}) for g in found)
    out = []
    for g in found:
        bound = bound_of[tuple(g)]
        indices = list(dict.fromkeys(word_of[p] for p in bound))
        matched += len(indices)
        if matched > MAX_MATCHED_WORDS:
            raise _too_many_matches()
        out.append((bound, list(dict.fromkeys(pt.words[i] for i in indices))))
    return out


def tokenize_request(prompt: str, words: str = "", clip=None, bind: str | None = None) -> dict:
    """The JSON answer of the tokenize route for ``prompt``, the comma-separated ``words`` and
    ``bind`` (None: :data:`DEFAULT_BIND`).

    Raises RequestError (a ValueError) for input outside the limits.
    """
    prompt, entries = check_request(prompt, words)
    bind = check_bind(bind)
    clip = clip or tokenizer_clip()
    pt = tokenize_prompt(clip, prompt)
    try:
        found = entry_positions(clip, pt, entries, MAX_MATCHED_WORDS)
    except TooManyMatchesError:
        raise _too_many_matches() from None
    entries_out = [{"entry": e, "positions": p, "found": bool(p)} for e, p in zip(entries, found)]
    if bind == "noun phrase":
        for out, (bound, bound_words) in zip(entries_out, _bound(pt, found)):
            out["bound"], out["bound_words"] = bound, bound_words
    listed = sum(len(e["positions"]) + len(e.get("bound", ())) for e in entries_out)
    if listed > MAX_ANSWER_POSITIONS:  # long multi-token words matched many times (CJK prompts)
        raise RequestError("words", f"'words' match {listed} token positions of the prompt in all; at most "
                                    f"{MAX_ANSWER_POSITIONS} are listed: choose fewer or rarer words")
    chunks = []
    for c in range(pt.chunks):
        chunk = []
        for p in range(pt.chunk_length):
            pos = c * pt.chunk_length + p
            text = pt.token_strings[pos]
            if text == "<pad>":
                break
            chunk.append({"pos": pos, "token": text})
            if text == "<end>":
                break
        chunks.append(chunk)
    return {
        "words": [{"word": w, "positions": p} for w, p in zip(pt.words, pt.word_positions)],
        "chunks": chunks,
        "chunk_length": pt.chunk_length,
        "n_tokens": pt.n_tokens,
        "entries": entries_out,
        "positions": [e["positions"] for e in entries_out if e["found"]],
        "missing": [e["entry"] for e in entries_out if not e["found"]],
    }


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="attention_motion_tokenize")
    return _executor


async def _read_body(request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    data = bytearray()
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            return None


async def _tokenize_handler(request):
    from aiohttp import web

    def refuse(field: str, message: str, status: int = 400):
        return web.json_response({"error": message, "field": field}, status=status)

    usage = 'send JSON {"prompt": str, "words": str, "bind": "typed words" or "noun phrase"}'
    raw = await _read_body(request, MAX_BODY_BYTES)
    if raw is None:
        return refuse("body", f"the request body is larger than {MAX_BODY_BYTES} bytes; {usage}", 413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # also invalid UTF-8 (UnicodeDecodeError) and deep nesting
        return refuse("body", f"the request body is not JSON; {usage}")
    if not isinstance(body, dict):
        return refuse("body", f"the request body is not a JSON object; {usage}")
    try:
        prompt, words, bind = body.get("prompt", ""), body.get("words", ""), body.get("bind")
        check_request(prompt, words)  # refuse bad input before it waits for a worker
        check_bind(bind)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(_get_executor(), tokenize_request, prompt, words, None, bind)
    except RequestError as e:
        return refuse(e.field, str(e))
    return web.json_response(answer)


def register() -> bool:
    """Add the routes to the running ComfyUI server, if there is one. Never raises.

    Returns True when the routes were added (now or by an earlier call).
    """
    global _registered
    if _registered:
        return True
    server_module = sys.modules.get("server")  # main.py imports it before loading custom nodes
    instance = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    routes = getattr(instance, "routes", None)
    if routes is None:
        return False
    try:
        routes.post(ROUTE)(_tokenize_handler)
    except Exception as e:  # noqa: BLE001 - the nodes must load even if the route cannot be added
        print(f"[attention_motion] could not register {ROUTE}: {e}")
        return False
    _registered = True
    return True
