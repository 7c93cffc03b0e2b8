"""Specs of the shipped workflows (``scripts/build_workflows.py`` turns them into JSON files).

A spec names nodes by id with their widget values by input name and their links as
``{input: (source id, output slot)}``; ``col`` is the layout column. Widgets left out take the
node's default. Note nodes (``note(...)``) explain the inputs that matter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CKPT = "v1-5-pruned-emaonly.safetensors"
SD15 = f"SD1.5 (`{CKPT}`)"


@dataclass
class Node:
    id: int
    type: str
    col: int
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    title: str = ""
    text: str = ""  # Note nodes only
    width: int = 0


def reflow(text: str) -> str:
    """Join wrapped source lines into paragraphs (the note's text box wraps by itself);
    blank lines and lines starting with '- ' start a new line."""
    out: list[str] = []
    for line in text.strip().split("\n"):
        line = line.strip()
        if out and line and out[-1] and not line.startswith("- "):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out)


def note(nid: int, col: int, text: str, width: int = 380) -> Node:
    return Node(nid, "Note", col, text=reflow(text), width=width)


@dataclass
class Workflow:
    name: str
    shows: str
    model: str
    nodes: list

    def node_types(self) -> set:
        return {n.type for n in self.nodes if n.type != "Note"}

    def __hash__(self):
        return hash(self.name)


def _base(prompt: str, negative: str = "blurry, low quality", width: int = 512, height: int = 512,
          batch: int = 1) -> list:
    """Checkpoint (1), positive (2), negative (3), empty latent (4)."""
    return [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(2, "CLIPTextEncode", 1, {"text": prompt}, {"clip": (1, 1)}, title="Positive prompt"),
        Node(3, "CLIPTextEncode", 1, {"text": negative}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(4, "EmptyLatentImage", 0, {"width": width, "height": height, "batch_size": batch}),
    ]


def _sampler(nid: int, col: int, model: tuple, latent: tuple, seed: int = 42, steps: int = 20,
             cfg: float = 7.5, positive: tuple = (2, 0), negative: tuple = (3, 0)) -> Node:
    return Node(nid, "KSampler", col, {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": "euler",
                                       "scheduler": "normal", "denoise": 1.0},
                {"model": model, "positive": positive, "negative": negative, "latent_image": latent})


def _decode_save(first: int, col: int, latent: tuple, prefix: str) -> list:
    return [Node(first, "VAEDecode", col, {}, {"samples": latent, "vae": (1, 2)}),
            Node(first + 1, "SaveImage", col + 1, {"filename_prefix": prefix}, {"images": (first, 0)})]


CAPTURE_PROMPT = "a photo of a red apple on a wooden table"

capture_heatmaps = Workflow(
    "capture_heatmaps",
    "Records where each word is attended while sampling; saves the image, one heatmap per word "
    "over it, and the attention store for later runs.",
    SD15,
    _base(CAPTURE_PROMPT) + [
        Node(5, "AttentionCapture", 1, {"prompt": CAPTURE_PROMPT, "words": "apple, table", "start": 0.0, "end": 1.0,
                                        "resolutions": "all"}, {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (4, 0)),
        *_decode_save(7, 3, (6, 0), "attention_motion/capture"),
        Node(9, "AttentionHeatmaps", 3, {"threshold": 0.5, "layout": "overlay"},
             {"store": (5, 1), "latent": (6, 0), "image": (7, 0)}),
        Node(10, "SaveImage", 4, {"filename_prefix": "attention_motion/capture_heatmap"}, {"images": (9, 0)}),
        Node(11, "MaskToImage", 4, {}, {"mask": (9, 1)}),
        Node(12, "PreviewImage", 4, {}, {"images": (11, 0)}),
        Node(13, "SaveAttentionStore", 3, {"filename_prefix": "capture"}, {"store": (5, 1), "latent": (6, 0)}),
        note(20, 0, """
Attention Capture records, for each word, where the UNet looked while sampling.

- prompt: must be the same text as the Positive prompt (the node finds the words' tokens in it).
- words: comma-separated words of the prompt; one heatmap and one mask per word.
- start / end: the part of the run recorded, as fractions of the steps.
- resolutions: 'all', or fractions of the latent side such as '1/4, 1/8'.

Sample with the MODEL coming out of Attention Capture. The heatmaps and the store are read
after sampling (their LATENT input orders them after the KSampler).
"""),
    ],
)

SPECS = [capture_heatmaps]


def available(object_info: dict) -> list:
    """The specs whose node types the server knows (others are skipped while nodes land)."""
    return [s for s in SPECS if s.node_types() <= set(object_info)]
