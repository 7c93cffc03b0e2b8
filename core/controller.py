"""The one interface between the attention router and the controllers that act on attention.

The router (host adapter) builds an :class:`AttnCall` for every chunk of every attention call and
hands it to each controller of its stack, in order. Controllers never see ComfyUI objects.
Tensor layouts:

* cross-attention probabilities: ``[rows, heads, N, T]`` (N queries on the grid, T text tokens);
* self-attention q, k, v: ``[rows, N, heads * dim_head]`` as projected by the block.
* cross- and self-attention output: ``[rows, N, heads * dim_head]`` (before the block's output
  projection).

A controller may bring its own text tokens (:meth:`Controller.context_tokens`): the router appends
them to the cross-attention context before the block's key/value projections, strips them again
so that :meth:`Controller.cross` and the host's attention see only the prompt's tokens, and hands
their projected keys and values to :meth:`Controller.cross_output` of that controller.

``rows`` are the latent rows of one conditioning chunk (row r is latent batch row r).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

COND = 0
UNCOND = 1


@dataclass
class RunInfo:
    """Where the sampling run is: step index (int), progress in [0, 1] and sigma."""

    step: int
    progress: float
    sigma: float
    total_steps: int | None = None

    def within(self, window: tuple[float, float]) -> bool:
        """True when the progress lies in the closed ``window`` (start, end), with float slack."""
        return window[0] - 1e-9 <= self.progress <= window[1] + 1e-9


@dataclass
class AttnCall:
    """Everything a controller may know about one chunk of one attention call."""

    kind: str  # "self" or "cross"
    key: tuple  # (block_name, block_id, depth_index)
    chunk: int  # COND or UNCOND
    chunk_index: int  # position of this chunk among the chunks of the call
    rows: int  # latent rows in this chunk
    heads: int
    grid: tuple[int, int]  # attention grid (h, w) of the queries
    level: int  # grid side = latent side / 2**level
    latent_hw: tuple[int, int]
    run: RunInfo
    edited: set[int] = field(default_factory=set)  # rows whose attention a controller changed

    @property
    def is_cond(self) -> bool:
        return self.chunk == COND


class Controller:
    """Base class: every hook is optional and does nothing by default.

    A controller holds its own run state; :meth:`reset` is called at the start of every sampling
    run, so nothing survives from one run to the next.
    """

    def reset(self) -> None:
        """Forget the state of the previous run."""

    def wants_cross(self, call: AttnCall) -> bool:
        """True if :meth:`cross` should receive this chunk's explicit attention probabilities."""
        return False

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        """Observe or edit cross-attention probabilities ``[rows, heads, N, T]``.

        Return the (possibly edited) probabilities. A controller that edits rows must add their
        indices to ``call.edited`` so the router recomputes those rows' outputs.
        """
        return probs

    def context_tokens(self) -> torch.Tensor | None:
        """Extra text tokens ``[E, context_dim]`` appended to every cross-attention context, or None.

        Called once when the router is built; the same tokens serve every row and every call.
        """
        return None

    def wants_cross_output(self, call: AttnCall) -> bool:
        """True if :meth:`cross_output` should edit this chunk's cross-attention output."""
        return False

    def cross_output(
        self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
        k_extra: torch.Tensor | None, v_extra: torch.Tensor | None,
    ) -> torch.Tensor:
        """Edit a chunk's cross-attention output ``out`` ``[rows, N, heads*d]``; return it.

        ``q``: projected queries; ``k``, ``v``: the prompt's projected keys/values ``[rows, T, heads*d]``;
        ``k_extra``, ``v_extra``: this controller's :meth:`context_tokens` as projected by the block
        (``[rows, E, heads*d]``; None without tokens). Runs after every :meth:`cross` edit.
        """
        return out

    def wants_self(self, call: AttnCall) -> bool:
        """True if :meth:`self_qkv` should be called for this chunk."""
        return False

    def self_qkv(
        self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edit self-attention inputs of a chunk; k and v may change length (same for all rows)."""
        return q, k, v

    def wants_self_output(self, call: AttnCall) -> bool:
        """True if :meth:`self_output` should edit this chunk's self-attention output."""
        return False

    def self_output(
        self, call: AttnCall, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
        attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Edit a chunk's self-attention output ``out`` ``[rows, N, heads*d]``; return it.

        ``q``, ``k``, ``v``: the chunk's inputs after every :meth:`self_qkv` edit; ``attend(q, k, v)``
        runs the host's (optimised) attention on any rows and any key length, e.g. to blend a
        second attention into ``out``. Runs after the qkv edits, in stack order.
        """
        return out

    def wants_denoised(self) -> bool:
        """True if :meth:`denoised` should run after classifier-free guidance of every step."""
        return False

    def denoised(self, run: RunInfo, denoised: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Edit the guided prediction of x0 ``[rows, C, H, W]`` (post-CFG), e.g. to blend rows."""
        return denoised

    def wants_model_input(self) -> bool:
        """True if :meth:`model_input` should see the latent before every model evaluation."""
        return False

    def model_input(self, run: RunInfo, x: torch.Tensor) -> torch.Tensor:
        """Edit the latent rows the model sees ``[rows, C, H, W]`` before a step's evaluation."""
        return x
