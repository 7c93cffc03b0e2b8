"""Attention Motion: ComfyUI nodes that capture and control the attention of Stable Diffusion UNets."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./js"

try:  # the frontend's tokenize route; only inside a running ComfyUI server, never fails the import
    from .host import routes as _routes

    _routes.register()
except Exception as _e:  # noqa: BLE001
    print(f"[attention_motion] frontend routes not available: {_e}")

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
