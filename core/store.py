"""AttentionStore: per-word cross-attention maps of one sampling run, and their file format."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .maps import MapAccumulator, resample
from .numbers import quote

FORMAT = "attention-motion/attention-store"
FORMAT_VERSION = 1
STORE_TENSORS = ("maps",)  # and one "level_<k>" tensor per recorded level
MAX_LEVEL = 7  # attention_grid looks at levels 0..7
MAX_LATENT_SIDE = 1024  # latent cells: 8192-pixel images
MAX_TOKEN_POSITION = 77 * 1024  # token positions of a prompt of up to 1024 CLIP chunks


class StoreEmptyError(RuntimeError):
    """Raised when maps are read from a store that has not recorded anything."""


@dataclass
class AttentionStore:
    """Running means of word maps, per attention level, for every latent row.

    Memory is O(rows x words x grid cells x levels): independent of steps and layers.
    """

    prompt: str
    words: list[str]
    token_indices: list[list[int]]
    step_range: tuple[float, float] = (0.0, 1.0)
    levels: frozenset[int] | None = None  # None: every level
    accumulators: dict[int, MapAccumulator] = field(default_factory=dict)
    latent_hw: tuple[int, int] | None = None
    steps_seen: int = 0
    runs: int = 0
    loaded_maps: torch.Tensor | None = None  # maps of a store read from a file
    loaded_levels: dict[int, torch.Tensor] = field(default_factory=dict)

    def __deepcopy__(self, memo):  # one store object per graph node, shared by model clones
        return self

    # -- recording -------------------------------------------------------------------------
    def start_run(self) -> None:
        """Forget maps of a previous run."""
        self.accumulators.clear()
        self.steps_seen = 0
        self.runs += 1
        self.loaded_maps = None
        self.loaded_levels = {}

    def accepts(self, level: int, progress: float) -> bool:
        lo, hi = self.step_range
        return (self.levels is None or level in self.levels) and lo - 1e-9 <= progress <= hi + 1e-9

    def add(self, level: int, grid: tuple[int, int], maps: torch.Tensor, latent_hw: tuple[int, int]) -> None:
        """Add maps ``[rows, words, h, w]`` of one layer call at ``level``."""
        acc = self.accumulators.get(level)
        if acc is None:
            acc = self.accumulators[level] = MapAccumulator(grid)
        acc.add(maps)
        self.latent_hw = tuple(latent_hw)

    # -- reading ---------------------------------------------------------------------------
    @property
    def recorded(self) -> bool:
        return self.loaded_maps is not None or any(a.count for a in self.accumulators.values())

    def _require(self) -> None:
        if not self.recorded:
            raise StoreEmptyError(
                "AttentionCapture: the attention store is empty: no sampling step in its step range "
                f"{self.step_range} has run with the captured MODEL (words {self.words}). Connect the "
                "MODEL output of AttentionCapture to the sampler, and the sampler's LATENT to this node "
                "so it runs after sampling."
            )

    def level_maps(self) -> dict[int, torch.Tensor]:
        """Mean maps per level ``{level: [rows, words, h, w]}``."""
        self._require()
        if self.loaded_maps is not None:
            return dict(self.loaded_levels)
        return {lv: acc.mean() for lv, acc in sorted(self.accumulators.items()) if acc.count}

    @property
    def grid(self) -> tuple[int, int]:
        """The one grid all maps are resampled to: the finest recorded level."""
        self._require()
        if self.loaded_maps is not None:
            return tuple(self.loaded_maps.shape[-2:])
        finest = min(lv for lv, acc in self.accumulators.items() if acc.count)
        return self.accumulators[finest].grid

    def maps(self) -> torch.Tensor:
        """Mean over heads, layers and steps of every word's map: ``[rows, words, h, w]``."""
        self._require()
        if self.loaded_maps is not None:
            return self.loaded_maps
        grid = self.grid
        total, count = None, 0
        for acc in self.accumulators.values():
            if not acc.count:
                continue
            part = resample(acc.total, grid)
            total = part if total is None else total + part
            count += acc.count
        return total / count

    # -- file format -----------------------------------------------------------------------
    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and string metadata for a safetensors file."""
        tensors = {"maps": self.maps().cpu().contiguous()}
        for lv, m in self.level_maps().items():
            tensors[f"level_{lv}"] = m.cpu().contiguous()
        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "prompt": self.prompt,
            "words": json.dumps(self.words),
            "token_indices": json.dumps(self.token_indices),
            "grid": json.dumps(list(self.grid)),
            "step_range": json.dumps(list(self.step_range)),
            "levels": json.dumps(None if self.levels is None else sorted(self.levels)),
            "latent_hw": json.dumps(None if self.latent_hw is None else list(self.latent_hw)),
        }
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> "AttentionStore":
        """Rebuild a read-only store from :meth:`to_tensors` output.

        Everything is checked: a file edited or damaged elsewhere raises ValueError saying what
        is wrong, never an indexing or shape error later."""
        if meta.get("format") != FORMAT:
            raise ValueError(f"not an attention store file (format {_cut(meta.get('format'))}, expected {FORMAT!r})")
        version = meta.get("format_version")
        if version not in [str(v) for v in range(1, FORMAT_VERSION + 1)]:
            raise ValueError(f"format_version {_cut(version)} is not one this pack reads (1 to {FORMAT_VERSION})")
        prompt = meta.get("prompt")
        if not isinstance(prompt, str):
            raise ValueError("metadata has no 'prompt'")
        words = _json(meta, "words")
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"metadata 'words' is {_cut(words)}; expected a non-empty list of words")
        indices = _json(meta, "token_indices")
        if not (isinstance(indices, list) and len(indices) == len(words)
                and all(isinstance(g, list) and g and all(_is_int(i, 0, MAX_TOKEN_POSITION - 1) for i in g)
                        for g in indices)):
            raise ValueError(f"metadata 'token_indices' is {_cut(indices)}; expected one list of token positions "
                             f"(0 to {MAX_TOKEN_POSITION - 1}) per word ({len(words)})")
        window = _json(meta, "step_range")
        if not (isinstance(window, list) and len(window) == 2 and all(_is_number(x) for x in window)
                and 0 <= window[0] <= window[1] <= 1):
            raise ValueError(f"metadata 'step_range' is {_cut(window)}; expected [start, end] with 0 <= start <= end <= 1")
        levels = _json(meta, "levels")
        if levels is not None and not (isinstance(levels, list) and levels
                                       and all(_is_int(lv, 0, MAX_LEVEL) for lv in levels)):
            raise ValueError(f"metadata 'levels' is {_cut(levels)}; expected null or a list of levels 0 to {MAX_LEVEL}")
        latent = _json(meta, "latent_hw", "null")
        if latent is not None and not (isinstance(latent, list) and len(latent) == 2
                                       and all(_is_int(x, 1, MAX_LATENT_SIDE) for x in latent)):
            raise ValueError(f"metadata 'latent_hw' is {_cut(latent)}; expected null or [height, width] of "
                             f"1 to {MAX_LATENT_SIDE} latent cells")
        maps = _maps(tensors.get("maps"), "maps", (None, len(words)), latent)
        grid = _json(meta, "grid")
        if grid != list(maps.shape[-2:]):
            raise ValueError(f"metadata 'grid' is {_cut(grid)} but the maps are {list(maps.shape[-2:])}")
        loaded_levels = {}
        for key, value in tensors.items():
            if not key.startswith("level_"):
                continue
            level = key.split("_", 1)[1]
            if not (level.isdigit() and int(level) <= MAX_LEVEL):
                raise ValueError(f"tensor {_cut(key)} does not name a level 0 to {MAX_LEVEL}")
            loaded_levels[int(level)] = _maps(value, key, tuple(maps.shape[:2]), latent)
        store = cls(prompt=prompt, words=words, token_indices=indices, step_range=(float(window[0]), float(window[1])),
                    levels=None if levels is None else frozenset(levels),
                    latent_hw=None if latent is None else tuple(latent))
        store.loaded_maps = maps
        store.loaded_levels = loaded_levels
        return store


def _cut(value: Any, limit: int = 80) -> str:
    return quote(repr(value), limit)


def _json(meta: dict[str, str], key: str, default: str | None = None) -> Any:
    text = meta.get(key, default)
    if text is None:
        raise ValueError(f"metadata has no {key!r}")
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(f"metadata {key!r} is not valid JSON ({_cut(text)})") from None


def _is_int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _maps(value: Any, key: str, lead: tuple, latent: list | None) -> torch.Tensor:
    """A stored map tensor ``[rows, words, h, w]``: floating, finite, non-negative, within the latent."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"it has no {key!r} tensor")
    if not value.is_floating_point() or value.dim() != 4 or 0 in value.shape:
        raise ValueError(f"tensor {key!r} is {value.dtype} {list(value.shape)}; expected floating [rows, words, h, w]")
    want = [value.shape[0] if n is None else n for n in lead]
    if list(value.shape[:2]) != want:
        raise ValueError(f"tensor {key!r} has shape {list(value.shape)}; expected [rows, words] = {want} first")
    if latent is not None and (value.shape[2] > latent[0] or value.shape[3] > latent[1]):
        raise ValueError(f"tensor {key!r} has a {list(value.shape[2:])} grid, larger than the latent {latent}")
    value = value.float()
    if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
        raise ValueError(f"tensor {key!r} holds values that are not attention (NaN, infinite or negative)")
    return value
