"""Source-first model calls: the source rows are evaluated alone, exactly as a plain run.

A UNet evaluated on a batch does not give bit-identical rows to the same UNet evaluated on one
row: the host's matrix kernels pick different blockings by batch size (on CPU fp32 the
difference is about 1e-7 relative per call and grows over the steps). Prompt-to-Prompt
promises that the source row *is* the plain generation of the source prompt, so
:func:`source_pass` (a link of the pack's UNet wrapper chain, :mod:`.unet_chain`) splits every
model call in two:

1. the source row of every conditioning chunk, with the ``SILENT`` flag: the router runs no
   controllers, so this is the plain model on exactly the batch a single-row run evaluates;
2. the whole batch with the controllers (they see every latent row, so captures, masks and
   edits work as in a single pass); its source rows are discarded.

The output takes the source rows from pass 1 and the other rows from pass 2. Cost: one extra
row per chunk per model call.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.controller import COND
from .router import SILENT
from .unet_chain import SOURCE_PASS_RANK, Link, has_link, set_link


def _take(value, index: torch.Tensor, total: int, rows: int, row_index: torch.Tensor):
    """Select batch rows of every tensor in ``value`` whose first dim is the call's batch."""
    if isinstance(value, torch.Tensor):
        if value.dim() and value.shape[0] == total:
            return value.index_select(0, index.to(value.device))
        if value.dim() and value.shape[0] == rows and rows != total:
            return value.index_select(0, row_index.to(value.device))
        return value
    if isinstance(value, dict):
        return {k: _take(v, index, total, rows, row_index) for k, v in value.items()}
    if isinstance(value, list):
        return [_take(v, index, total, rows, row_index) for v in value]
    if isinstance(value, tuple):
        return tuple(_take(v, index, total, rows, row_index) for v in value)
    return value


def source_pass(next_call: Callable[[dict], torch.Tensor], args: dict) -> torch.Tensor:
    """Chain link: row 0 of each conditioning chunk from a silent pass, the other rows from a full pass."""
    x = args["input"]
    chunks = list(args.get("cond_or_uncond") or [COND])
    c = args.get("c") if isinstance(args.get("c"), dict) else {}
    options = c.get("transformer_options", {})
    rows = x.shape[0] // max(len(chunks), 1)
    if options.get(SILENT) or rows < 2:
        return next_call(args)
    total = x.shape[0]
    index = torch.arange(len(chunks)) * rows
    first = torch.zeros(1, dtype=torch.long)
    source_c = _take({k: v for k, v in c.items() if k != "transformer_options"}, index, total, rows, first)
    source_options = dict(options, **{SILENT: True})
    if isinstance(options.get("sigmas"), torch.Tensor) and options["sigmas"].shape[:1] == (rows,):
        source_options["sigmas"] = options["sigmas"][:1]
    source_c["transformer_options"] = source_options
    source_args = dict(args, input=x.index_select(0, index.to(x.device)),
                       timestep=_take(args["timestep"], index, total, rows, first), c=source_c)
    source_out = next_call(source_args)
    out = next_call(args).clone()
    out[index.to(out.device)] = source_out.to(out.dtype)
    return out


SOURCE_PASS = Link("source_pass", SOURCE_PASS_RANK, source_pass)


def install_source_pass(model):
    """Add the exact source pass to the UNet wrapper chain of ``model`` (a clone this node owns)."""
    set_link(model, SOURCE_PASS.name, SOURCE_PASS)
    return model


def has_source_pass(model) -> bool:
    """True when ``model`` evaluates its source rows in a separate silent pass."""
    return has_link(model, SOURCE_PASS.name)
