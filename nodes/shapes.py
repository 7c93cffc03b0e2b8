"""ShapesModelLoader: the small model of the world of shapes that ships with the pack."""
from __future__ import annotations

from .common import CATEGORY, check_inputs


class ShapesModelLoader:
    """Load the pack's bundled shapes model (SD1.5 architecture, 128x128 images): MODEL, CLIP, VAE."""

    DESCRIPTION = (
        "Loads the small SD1.5-architecture model trained on a synthetic world of shapes (circle, square, "
        "triangle in red, green, blue, yellow on a grey background), bundled with the pack: no download. "
        "Use 128x128 latents and prompts like 'a red circle' or 'a blue square and a yellow triangle'."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("model", "clip", "vae")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        check_inputs(self, locals())
        from ..shapes.model import build
        return build()


NODE_CLASS_MAPPINGS = {"ShapesModelLoader": ShapesModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"ShapesModelLoader": "Load Shapes Model"}
