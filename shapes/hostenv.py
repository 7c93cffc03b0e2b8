"""Put a ComfyUI host on ``sys.path`` for the command-line scripts (train, quality).

Inside a running ComfyUI (the loader node) nothing here is needed.  The scripts find the host
from ``--comfyui``, env ``COMFYUI_PATH``, or the repo's host that ``make bootstrap``
recorded (``scripts/hostpath.py``), and configure it for CPU with PyTorch attention.
"""
import os
import sys
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_root(explicit: Optional[str] = None) -> str:
    """The host root: ``explicit``, else ``scripts/hostpath.py``'s choice (env, venv, .host)."""
    path = explicit
    if not path:
        sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
        try:
            from hostpath import host_path
        finally:
            sys.path.pop(0)
        path = host_path(required=False)
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
