"""Find the transformer blocks of a UNet, as the keys ComfyUI's attention patches use."""
from __future__ import annotations

import re
from dataclasses import dataclass

# input/output blocks: "<section>.<block>.<layer>.transformer_blocks.<depth>"; the middle block has
# one index less: "middle_block.<layer>.transformer_blocks.<depth>".
_NAME = re.compile(r"^(input_blocks|middle_block|output_blocks)\.(\d+)\.(?:\d+\.)?transformer_blocks\.(\d+)$")
_BLOCK = {"input_blocks": "input", "middle_block": "middle", "output_blocks": "output"}


@dataclass(frozen=True)
class BlockSite:
    """One BasicTransformerBlock: its patch key and which attentions it has."""

    block_name: str  # "input", "middle" or "output"
    block_id: int
    depth: int  # index inside its SpatialTransformer (extra_options["block_index"])
    has_cross: bool

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.block_name, self.block_id, self.depth)


def transformer_sites(diffusion_model) -> list[BlockSite]:
    """Every transformer block of an SD1.x / SD2.x / SDXL UNet, found by walking the modules."""
    sites = []
    for name, module in diffusion_model.named_modules():
        m = _NAME.match(name)
        if m is None or not hasattr(module, "attn1"):
            continue
        section, idx, depth = m.group(1), int(m.group(2)), int(m.group(3))
        block_id = 0 if section == "middle_block" else idx
        sites.append(BlockSite(_BLOCK[section], block_id, depth, getattr(module, "attn2", None) is not None))
    return sites
