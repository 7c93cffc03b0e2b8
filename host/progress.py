"""The host's progress bar for long steps that are not sampling (clip encoding, preview writing).

ComfyUI's ``comfy.utils.ProgressBar`` sends ``progress`` messages (value, max, node) to the UI
and to websocket clients such as the headless runner, and its hook stops the step when the user
interrupts the run. Outside a host (pure-tensor use) the bar does nothing.
"""
from __future__ import annotations


class Progress:
    """Progress of one node's long step: ``total`` units, advanced as they are done."""

    def __init__(self, total: int) -> None:
        self.total = max(1, int(total))
        try:
            import comfy.utils
        except ImportError:  # not inside ComfyUI
            self._bar = None
        else:
            self._bar = comfy.utils.ProgressBar(self.total)

    def advance(self, units: int = 1) -> None:
        """Mark ``units`` more as done (raises the host's interrupt when the user stopped the run)."""
        if self._bar is not None:
            self._bar.update(units)


def is_interrupt(error: BaseException) -> bool:
    """True for the host's "the user interrupted the run" exception, which the progress hook raises
    inside a long step: a node that turns its step's errors into messages must let it through."""
    try:
        import comfy.model_management as mm
    except ImportError:  # not inside ComfyUI
        return False
    kind = getattr(mm, "InterruptProcessingException", None)
    return kind is not None and isinstance(error, kind)
