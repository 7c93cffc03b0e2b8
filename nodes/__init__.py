"""Node definitions (thin): inputs, validation, building controllers, wiring."""
from . import appearance, blend, capture, clip_output, inversion, motion, p2p, region, segment, shapes, style

_MODULES = (capture, motion, clip_output, p2p, region, shapes, blend, inversion, style, appearance, segment)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _m in _MODULES:
    NODE_CLASS_MAPPINGS.update(_m.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_m.NODE_DISPLAY_NAME_MAPPINGS)
