"""The pack's one UNet function wrapper: its links run in a fixed order, whoever installed them first.

ComfyUI has a single ``model_function_wrapper`` slot. Three parts of the pack use it: the
inversion guide (:mod:`.inversion`), the exact source pass of Prompt-to-Prompt (:mod:`.passes`)
and the router's edits of the latent rows the model sees (:mod:`.router`). Both are *links* of one :class:`UnetWrapperChain`, ordered by rank
(the source pass outside, so its silent pass sees the rows before any edit; the router inside),
so installing P2P before or after LocalBlend gives the same model. A wrapper another pack put in
the slot before ours stays innermost and is called with the edited arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .compat import set_unet_wrapper, unet_wrapper

Next = Callable[[dict], object]

# Ranks: lower runs further out. The inversion guide moves rows onto the inverted picture's path
# before anything else sees them.
INVERSION_RANK = -10
SOURCE_PASS_RANK = 0
ROUTER_RANK = 10


@dataclass(frozen=True)
class Link:
    """One named step of the chain: ``run(next, args)`` must call ``next(args)`` (once or more)."""

    name: str
    rank: int
    run: Callable[[Next, dict], object]


class UnetWrapperChain:
    """``model_function_wrapper``: the links in rank order, then a foreign wrapper or the UNet."""

    def __init__(self, links: tuple[Link, ...] = (), foreign: Callable | None = None):
        self.links = tuple(sorted(links, key=lambda link: link.rank))
        self.foreign = foreign

    def with_link(self, link: Link | None, name: str) -> "UnetWrapperChain":
        """A new chain with the link called ``name`` replaced by ``link`` (removed if None)."""
        kept = tuple(x for x in self.links if x.name != name)
        return UnetWrapperChain(kept + ((link,) if link is not None else ()), self.foreign)

    def link(self, name: str) -> Link | None:
        return next((x for x in self.links if x.name == name), None)

    def __call__(self, apply_model, args: dict):
        return self._step(0, apply_model, args)

    def _step(self, i: int, apply_model, args: dict):
        if i == len(self.links):
            if self.foreign is not None:
                return self.foreign(apply_model, args)
            return apply_model(args["input"], args["timestep"], **args["c"])
        return self.links[i].run(lambda a: self._step(i + 1, apply_model, a), args)

    def __deepcopy__(self, memo):
        return self  # immutable; clones on some hosts deep-copy model_options

    def to(self, device):
        return self


def chain_of(model) -> UnetWrapperChain:
    """The pack's chain on ``model`` (an empty one around any foreign wrapper)."""
    current = unet_wrapper(model)
    return current if isinstance(current, UnetWrapperChain) else UnetWrapperChain((), current)


def set_link(model, name: str, link: Link | None) -> None:
    """Put ``link`` (or nothing) under ``name`` in the chain of ``model`` (a clone the caller owns)."""
    chain = chain_of(model).with_link(link, name)
    set_unet_wrapper(model, chain if chain.links else chain.foreign)


def has_link(model, name: str) -> bool:
    """True when ``model``'s UNet wrapper chain holds a link called ``name``."""
    return chain_of(model).link(name) is not None
