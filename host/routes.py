"""HTTP routes the pack adds to ComfyUI's server (used by the frontend extension in js/).

``POST /attention_motion/tokenize`` with JSON ``{"prompt": str, "words": str}`` answers how the
host's own SD1 tokenizer splits the prompt (the 'l' stream, whose positions SDXL shares), so the
graph editor can show words, token positions and 77-token chunks before a prompt is queued::

    {"words": [{"word": "red", "positions": [2]}, ...],      # prompt words, as the nodes see them
     "chunks": [[{"pos": 0, "token": "<start>"}, ...], ...],   # tokens of each chunk up to <end>
     "chunk_length": 77, "n_tokens": 77,
     "entries": [{"entry": "circle", "positions": [3], "found": true}, ...],
     "positions": [[3]],                                       # positions of the found entries
     "missing": ["dog"]}                                       # chosen words not in the prompt

The tokenizer needs no loaded CLIP: :class:`TokenizerClip` adapts a bare
``comfy.sd1_clip.SD1Tokenizer`` to the ``clip`` interface that :mod:`host.tokens` uses.
Registration is guarded: outside a running server (tests, scripts) nothing happens.
"""
from __future__ import annotations

import asyncio
import sys
import threading

from .tokens import WordNotFoundError, locate_words, parse_word_list, tokenize_prompt

ROUTE = "/attention_motion/tokenize"
MAX_PROMPT_CHARS = 20000

_lock = threading.Lock()
_tokenizer_clip = None
_registered = False


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
    """A cached :class:`TokenizerClip` around the host's ``SD1Tokenizer`` (built on first use)."""
    global _tokenizer_clip
    if _tokenizer_clip is None:
        from comfy.sd1_clip import SD1Tokenizer

        _tokenizer_clip = TokenizerClip(SD1Tokenizer(embedding_directory=_embedding_dirs()))
    return _tokenizer_clip


def tokenize_request(prompt: str, words: str = "", clip=None) -> dict:
    """The JSON answer of the tokenize route for ``prompt`` and the comma-separated ``words``."""
    if not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string")
    if not isinstance(words, str):
        raise ValueError("'words' must be a string (comma-separated words of the prompt)")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"'prompt' is longer than {MAX_PROMPT_CHARS} characters")
    with _lock:  # the host's fast tokenizer must not be used by two threads at once
        clip = clip or tokenizer_clip()
        pt = tokenize_prompt(clip, prompt)
        entries = []
        for entry in parse_word_list(words):
            try:
                positions = locate_words(clip, pt, [entry], "tokenize")[0]
                entries.append({"entry": entry, "positions": positions, "found": True})
            except WordNotFoundError:
                entries.append({"entry": entry, "positions": [], "found": False})
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
        "entries": entries,
        "positions": [e["positions"] for e in entries if e["found"]],
        "missing": [e["entry"] for e in entries if not e["found"]],
    }


async def _tokenize_handler(request):
    from aiohttp import web

    try:
        body = await request.json()
    except Exception:  # noqa: BLE001 - any unparsable body is the client's error
        return web.json_response({"error": "send JSON {\"prompt\": str, \"words\": str}"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "send JSON {\"prompt\": str, \"words\": str}"}, status=400)
    try:
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, tokenize_request, body.get("prompt", ""), body.get("words", "") or "")
    except ValueError as e:
        return web.json_response({"error": str(e)}, status=400)
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
