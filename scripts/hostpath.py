"""Where is the ComfyUI host the tests and demo run against?

``COMFYUI_PATH`` (environment) wins; otherwise the path that ``scripts/bootstrap.py``
recorded in ``.host/host_path``.  Standard library only, importable from anywhere.
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_PATH_FILE = os.path.join(REPO_ROOT, ".host", "host_path")


def host_path(required=True):
    """Absolute path of the host's ComfyUI root (the folder holding main.py and comfy/)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if os.path.isfile(HOST_PATH_FILE):
        with open(HOST_PATH_FILE) as f:
            path = f.readline().strip()
        if path:
            return path
    if required:
        raise RuntimeError(
            "No ComfyUI host chosen: run `make test` / `python3 scripts/bootstrap.py` "
            "or set COMFYUI_PATH=/path/to/ComfyUI")
    return None


if __name__ == "__main__":
    print(host_path())
