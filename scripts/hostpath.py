"""Where is the ComfyUI host the tests and demo run against?

``COMFYUI_PATH`` (environment) wins; otherwise the host that ``scripts/bootstrap.py`` recorded
in the running virtual environment (``<venv>/attention_motion_host``: each lane's venv knows
its host), else the default lane's ``.host/host_path``.  Standard library only, importable
from anywhere.
"""
from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_PATH_FILE = os.path.join(REPO_ROOT, ".host", "host_path")
VENV_HOST_FILE = os.path.join(sys.prefix, "attention_motion_host")


def _first_line(path: str) -> str | None:
    if os.path.isfile(path):
        with open(path) as f:
            return f.readline().strip() or None
    return None


def host_path(required: bool = True) -> str | None:
    """Absolute path of the host's ComfyUI root (the folder holding main.py and comfy/)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    path = _first_line(VENV_HOST_FILE) or _first_line(HOST_PATH_FILE)
    if path:
        return path
    if required:
        raise RuntimeError(
            "No ComfyUI host chosen: run `make test` / `python3 scripts/bootstrap.py` "
            "or set COMFYUI_PATH=/path/to/ComfyUI")
    return None


if __name__ == "__main__":
    print(host_path())
