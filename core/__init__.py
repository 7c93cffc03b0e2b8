"""Pure tensor logic of the pack: no ComfyUI import may appear in this package."""
