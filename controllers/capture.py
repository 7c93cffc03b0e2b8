"""Record per-word cross-attention maps of the conditional branch into an AttentionStore."""
from __future__ import annotations

import torch

from ..core.controller import AttnCall, Controller
from ..core.maps import word_maps
from ..core.store import AttentionStore


class CaptureController(Controller):
    """Adds each word's map (mean over heads and the word's tokens) to a store, per level."""

    def __init__(self, store: AttentionStore):
        self.store = store

    def reset(self) -> None:
        self.store.start_run()

    def wants_cross(self, call: AttnCall) -> bool:
        return call.is_cond and self.store.accepts(call.level, call.run.progress)

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        self.store.add(call.level, call.grid, word_maps(probs, self.store.token_indices, call.grid), call.latent_hw)
        return probs
