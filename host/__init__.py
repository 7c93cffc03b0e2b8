"""Host adapter: the only package of the pack that knows ComfyUI internals."""
