"""Motion paths for moving words over the frames of a clip (pure logic, no ComfyUI).

A motion gives every frame an *offset*: where the word's object should be, relative to where it
is in the source (unshifted) generation, in fractions of the image width and height. A straight
path spreads a total (dx, dy) over the clip; keyframes pin offsets at chosen frames and
interpolate between them. A *schedule* turns offsets into the per-frame shift the attention
edit applies:

* ``variation``: frame k's map is the source frame's map shifted by offset k (k path steps);
* ``incremental``: frame k's map is frame k-1's map shifted by one path step
  (offset k - offset k-1).
"""
from __future__ import annotations

import json
import math

import torch

INTERPOLATIONS = ("linear", "ease-in-out")
SCHEDULES = ("variation", "incremental")
MAX_SHIFT = 1.0


def ease(t: float, mode: str) -> float:
    """Map local time ``t`` in [0, 1] through the interpolation ``mode``."""
    t = min(max(float(t), 0.0), 1.0)
    if mode == "linear":
        return t
    if mode == "ease-in-out":
        return 0.5 - 0.5 * math.cos(math.pi * t)
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {mode!r}")


MAX_TEXT = 200_000  # characters of a keyframes / regions text (the frontend has the same limit)
MAX_DEPTH = 32  # bracket nesting of such a text (valid ones nest at most 4 deep)


def _js_int(digits: str) -> int | float:
    # JSON integers as JavaScript reads them: beyond 15 digits a double (1e400 digits -> inf)
    return int(digits) if len(digits) <= 15 else float(digits)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(text: str) -> bool:
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def read_json(text: str, subject: str, example: str):
    """Parse a user's JSON text (stripped, not empty) as the frontend's ``JSON.parse`` does.

    Refused, after ``subject`` ("keyframes are", or "" when the caller names the input) and with
    ``example`` shown: a text over :data:`MAX_TEXT` characters, nesting over :data:`MAX_DEPTH`
    brackets (Python's parser would recurse), invalid JSON (``NaN`` and ``Infinity`` included).
    Integers over 15 digits are read as floats, like JavaScript. Linear in the text's length.
    """
    say = f"{subject} " if subject else ""
    if len(text) > MAX_TEXT:
        raise ValueError(f"{say}too long ({len(text)} characters; at most {MAX_TEXT})")
    if _too_deep(text):
        raise ValueError(f"{say}nested too deeply (more than {MAX_DEPTH} brackets); write e.g. {example}")
    try:
        return json.loads(text, parse_int=_js_int, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        detail = f"{e.msg} at character {e.pos}"
    except ValueError as e:
        detail = str(e)
    raise ValueError(f"{say}not valid JSON ({detail}); write e.g. {example}")


def show(value) -> str:
    """A JSON value for an error message, cut to 60 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {show(value)}")
    return float(value)


def _check_shift(value: float, what: str) -> float:
    if abs(value) > MAX_SHIFT:
        raise ValueError(
            f"{what} is {value}, out of range: shifts are fractions of the image size between "
            f"-{MAX_SHIFT} and {MAX_SHIFT}"
        )
    return value


def _parse_list(items, frames: int, where: str) -> list[tuple[int, float, float]]:
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where} must be a non-empty list of [frame, dx, dy] entries, e.g. [[0, 0, 0], [15, 0.3, 0]]")
    keys: list[tuple[int, float, float]] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError(f"{where} entry {i} is {show(item)}: each entry must be [frame, dx, dy]")
        frame = _number(item[0], f"{where} entry {i}: frame")
        if frame != int(frame):
            raise ValueError(f"{where} entry {i}: frame {show(item[0])} must be a whole number")
        frame = int(frame)
        if not 0 <= frame < frames:
            raise ValueError(f"{where} entry {i}: frame {frame} is outside the clip (frames 0..{frames - 1})")
        if frame in seen:
            raise ValueError(f"{where} entry {i}: frame {frame} has more than one keyframe")
        seen.add(frame)
        dx = _check_shift(_number(item[1], f"{where} entry {i}: dx"), f"{where} entry {i}: dx")
        dy = _check_shift(_number(item[2], f"{where} entry {i}: dy"), f"{where} entry {i}: dy")
        keys.append((frame, dx, dy))
    return sorted(keys)


KEYFRAMES_EXAMPLE = '[[0, 0, 0], [15, 0.3, 0]] or {"cat": [[0, 0, 0], [15, 0.3, 0]]}'


def parse_keyframes(text: str, frames: int, words: list[str]) -> dict[str, list[tuple[int, float, float]]] | None:
    """Parse keyframes JSON into ``{word: [(frame, dx, dy), ...]}`` (None for an empty text).

    Accepted: a list ``[[frame, dx, dy], ...]`` applying to every word, or an object
    ``{"word": [[frame, dx, dy], ...], ...}`` with a path per word (words without an entry stay;
    names match the words case-insensitively, each word at most once). Frames are whole numbers
    in 0..frames-1, each at most once per path; dx, dy lie in [-1, 1]. Raises ValueError with
    what is wrong and what is valid. js/motion_math.js parseKeyframes applies the same rules.
    """
    text = (text or "").strip()
    if not text:
        return None
    data = read_json(text, "keyframes are", KEYFRAMES_EXAMPLE)
    if not isinstance(data, dict):
        keys = _parse_list(data, frames, "keyframes")
        return {w: keys for w in words}
    known = {w.lower() for w in words}
    names: dict[str, str] = {}  # lower-case name -> the name as written
    for name in data:
        low = name.lower()
        if low not in known:
            raise ValueError(f"keyframes name the word {show(name)}, which is not among the moving words {show(words)}")
        if low in names:
            raise ValueError(f"keyframes name the word {show(name)} twice (also as {show(names[low])}); "
                             "give one path per word")
        names[low] = name
    parsed: dict[str, list[tuple[int, float, float]]] = {}
    out = {}
    for w in words:  # in the words' order, so both parsers report the same first error
        name = names.get(w.lower())
        if name is not None:
            if name not in parsed:
                parsed[name] = _parse_list(data[name], frames, f"keyframes of {show(name)}")
            out[w] = parsed[name]
    return out


def interpolate(keys: list[tuple[int, float, float]], frames: int, mode: str) -> torch.Tensor:
    """Offsets ``[frames, 2]`` (dx, dy) through sorted keyframes; held flat before/after the ends."""
    out = torch.zeros(frames, 2, dtype=torch.float64)
    for f in range(frames):
        if f <= keys[0][0]:
            out[f] = torch.tensor(keys[0][1:])
        elif f >= keys[-1][0]:
            out[f] = torch.tensor(keys[-1][1:])
        else:
            for (f0, x0, y0), (f1, x1, y1) in zip(keys, keys[1:]):
                if f0 <= f <= f1:
                    t = ease((f - f0) / (f1 - f0), mode)
                    out[f] = torch.tensor([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t])
                    break
    return out.float()


def straight_path(dx: float, dy: float, frames: int, mode: str = "linear") -> torch.Tensor:
    """Offsets ``[frames, 2]`` from (0, 0) at frame 0 to (dx, dy) at the last frame."""
    _check_shift(_number(dx, "dx"), "dx")
    _check_shift(_number(dy, "dy"), "dy")
    if frames == 1:
        return torch.zeros(1, 2)
    return interpolate([(0, 0.0, 0.0), (frames - 1, float(dx), float(dy))], frames, mode)


def frame_offsets(frames: int, words: list[str], dx: float, dy: float, keyframes: str = "",
                  mode: str = "linear") -> torch.Tensor:
    """Offsets ``[frames, words, 2]`` of every moving word at every frame.

    Words named by the keyframes follow them; the others follow the straight path (dx, dy).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames is {frames!r}; a clip needs at least 1 frame")
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {mode!r}")
    keyed = parse_keyframes(keyframes, frames, words) or {}
    straight = straight_path(dx, dy, frames, mode)
    cols = [interpolate(keyed[w], frames, mode) if w in keyed else straight for w in words]
    return torch.stack(cols, dim=1)


def schedule_shifts(offsets: torch.Tensor, schedule: str) -> torch.Tensor:
    """Per-frame shifts ``[frames, words, 2]`` for a schedule (see the module docstring).

    ``variation``: the shift of frame k from the source is offset k. ``incremental``: the shift
    of frame k from frame k-1 is offset k - offset k-1 (frame 0 keeps its own offset).
    """
    if schedule == "variation":
        return offsets.clone()
    if schedule == "incremental":
        out = offsets.clone()
        out[1:] = offsets[1:] - offsets[:-1]
        return out
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def chunk_rows(frames: int, chunk_size: int, chunk_index: int) -> list[int]:
    """Frame indices sampled as one batch for a chunk of a long clip; the anchor (frame 0) leads.

    ``chunk_size`` 0 means the whole clip. Chunk i holds frames [i*c, (i+1)*c); chunks after the
    first are preceded by frame 0 so every chunk attends to the same anchor.
    """
    if chunk_size < 0:
        raise ValueError(f"chunk_size is {chunk_size}; use 0 (whole clip) or a positive number of frames")
    if chunk_size == 0 or chunk_size >= frames:
        if chunk_index != 0:
            raise ValueError(f"chunk_index is {chunk_index} but the clip is one chunk; use 0")
        return list(range(frames))
    n_chunks = math.ceil(frames / chunk_size)
    if not 0 <= chunk_index < n_chunks:
        raise ValueError(f"chunk_index is {chunk_index}; with {frames} frames in chunks of {chunk_size} use 0..{n_chunks - 1}")
    rows = list(range(chunk_index * chunk_size, min(frames, (chunk_index + 1) * chunk_size)))
    return rows if chunk_index == 0 else [0] + rows
