"""AttentionStore: per-word cross-attention maps of one sampling run, and their file format."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from .maps import MapAccumulator, resample

FORMAT = "attention-motion/attention-store"
FORMAT_VERSION = 1


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
        """Rebuild a read-only store from :meth:`to_tensors` output."""
        if meta.get("format") != FORMAT:
            raise ValueError(f"not an attention store file (format {meta.get('format')!r}, expected {FORMAT!r})")
        levels = json.loads(meta["levels"])
        latent = json.loads(meta.get("latent_hw", "null"))
        store = cls(
            prompt=meta["prompt"],
            words=json.loads(meta["words"]),
            token_indices=json.loads(meta["token_indices"]),
            step_range=tuple(json.loads(meta["step_range"])),
            levels=None if levels is None else frozenset(levels),
            latent_hw=None if latent is None else tuple(latent),
        )
        store.loaded_maps = tensors["maps"].float()
        store.loaded_levels = {
            int(k.split("_", 1)[1]): v.float() for k, v in tensors.items() if k.startswith("level_")
        }
        return store
