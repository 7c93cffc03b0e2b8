"""Put a ComfyUI host on ``sys.path`` for the command-line scripts (train, quality).

Inside a running ComfyUI (the loader node) nothing here is needed.  The scripts find the host
from ``--comfyui``, env ``COMFYUI_PATH``, or the repo's ``.host/host_path`` (written by
``make bootstrap``), and configure it for CPU with PyTorch attention.
"""
import os
import sys
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_root(explicit: Optional[str] = None) -> str:
    path = explicit or os.environ.get("COMFYUI_PATH")
    if not path:
        f = os.path.join(REPO_ROOT, ".host", "host_path")
        if os.path.isfile(f):
            with open(f) as fh:
                path = fh.readline().strip()
    if not path or not os.path.isfile(os.path.join(path, "main.py")):
        raise RuntimeError("no ComfyUI host: pass --comfyui DIR, set COMFYUI_PATH, or run `make bootstrap`")
    return os.path.abspath(path)


def setup(explicit: Optional[str] = None) -> str:
    """Import the host configured for CPU; returns its root.  Idempotent."""
    root = host_root(explicit)
    if root not in sys.path:
        sys.path.insert(0, root)
    if "comfy.model_management" not in sys.modules:
        import comfy.options
        if hasattr(comfy.options, "enable_args_parsing"):
            comfy.options.enable_args_parsing(False)
        import comfy.cli_args
        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.use_pytorch_cross_attention = True
        import comfy.model_management  # noqa: F401
        import comfy.utils
        comfy.utils.PROGRESS_BAR_ENABLED = False
    return root
