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

SHIFT_PROMPT = "a photo of a red apple on a wooden table"

token_shift = Workflow(
    "token_shift",
    "Moves one object of the prompt: one KSampler run gives the plain generation of the seed and "
    "the same image with the apple's attention shifted a quarter of the width to the right.",
    SD15,
    _base(SHIFT_PROMPT)[:3] + [
        Node(5, "TokenShift", 1, {"prompt": SHIFT_PROMPT, "words": "apple", "dx": 0.25, "dy": 0.0, "start": 0.0,
                                  "end": 0.4, "resolutions": "all", "fill": "zero", "self_attention": "free",
                                  "reference": "source row", "width": 512, "height": 512, "batch_size": 1},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(9, 2, (5, 0), (5, 1)),
        Node(11, "LatentFromBatch", 3, {"batch_index": 1, "length": 1}, {"samples": (9, 0)}, title="Moved row"),
        *_decode_save(7, 3, (9, 0), "attention_motion/shift_source_and_moved"),
        *_decode_save(12, 4, (11, 0), "attention_motion/shift_moved"),
        note(20, 0, """
Token Shift moves the objects named by 'words' by shifting their cross-attention maps.

- prompt: the same text as the Positive prompt.
- dx, dy: the move, as fractions of the image width and height (+x right, +y down).
- start / end: the part of the run during which maps are shifted; the early steps decide the
layout, so a short window (0 to 0.4) moves the object and leaves its details free.
- fill: what the vacated cells get (zero or the edge value).
- self_attention: 'free' leaves self-attention alone; 'shift' moves the object's self-attention too.
- reference 'source row': sample Token Shift's LATENT (width x height x batch_size, or the
'latent' input if connected). It holds every image twice with one initial noise: the plain
generation first, then the moved copy, which follows the source's maps shifted by (dx, dy), so
the object lands where asked and the rest stays. 'none': any latent, one row per image, but the
move is approximate.

The first image saved is the plain generation of the seed, the second the moved apple; 'Moved
row' (Latent From Batch, batch_index = batch_size) picks the moved images alone.
"""),
    ],
)


def _p2p(name: str, shows: str, source: str, targets: str, mode: str, text: str, reweight: str = "",
         cross_replace: float = 0.8, self_replace: float = 0.4, prefix: str = "") -> Workflow:
    return Workflow(name, shows, SD15, [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "P2PReplace", 1, {"source_prompt": source, "target_prompts": targets, "mode": mode,
                                  "cross_replace": cross_replace, "cross_replace_words": "",
                                  "self_replace": self_replace, "reweight": reweight, "width": 512, "height": 512},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (5, 2), positive=(5, 1)),
        *_decode_save(7, 3, (6, 0), f"attention_motion/{prefix or name}"),
        note(20, 0, text + """

Sample the three outputs of P2P Replace together: MODEL, positive CONDITIONING (row 0 the
source prompt, then one row per target line) and LATENT (rows sharing one initial noise); any
negative conditioning. The first saved image is the source, exactly as a plain generation of the
source prompt with this seed; the next ones are the edits. Deterministic samplers (euler, heun,
dpmpp_2m, ...) work with this KSampler; for ancestral or SDE samplers use SamplerCustom with the
Shared Noise Sampler node.
"""),
    ])


word_swap = _p2p(
    "word_swap", "Prompt-to-Prompt word swap: the same picture with the cat replaced by a dog.",
    "a photo of a cat sitting on a car", "a photo of a dog sitting on a car", "replace", """
P2P Replace, mode 'replace': swaps words one for one (source and target lines have the same number of words).

- cross_replace: fraction of the steps during which the target takes the source's cross-attention maps
(higher keeps more of the layout); per word with 'cross_replace_words', e.g. 'dog: 0.3'.
- self_replace: fraction of the steps with the source's self-attention (keeps shapes and background).
- target_prompts: one target per line; several lines give several edits in one run.""")

refine = _p2p(
    "refine", "Prompt-to-Prompt refinement: words added to the prompt (a red car, a fluffy cat) "
    "while the rest of the picture stays.",
    "a photo of a cat sitting on a car", "a photo of a fluffy cat sitting on a red car", "refine", """
P2P Replace, mode 'refine': the target adds (or drops) words; the tokens the prompts share are
aligned and keep the source's attention, the new words attend freely.

- cross_replace / self_replace: as in word swap; lower values let the new words change more.""")

reweight = _p2p(
    "reweight", "Prompt-to-Prompt reweighting: more (or less) of one word's effect on the same picture.",
    "a cozy wooden house in a snowy forest", "", "reweight", """
P2P Replace, mode 'reweight': scales the attention of chosen words in the target (here the source
prompt itself, since target_prompts is empty).

- reweight: 'word: factor, ...', e.g. 'snowy: 3' for more snow, 'snowy: -1' for less; applied
during each word's cross_replace window.
- Reweighting stacks on a word swap or refinement: modes 'replace+reweight', 'refine+reweight'.""",
    reweight="snowy: 3", cross_replace=1.0, self_replace=0.2)

CLIP_PROMPT = "a photo of a red ball on a green lawn"


def _clip(name: str, shows: str, schedule: str, text: str, dx: float, dy: float, interpolation: str = "linear",
          background_lock: float = 0.0) -> Workflow:
    return Workflow(name, shows, SD15, [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(2, "CLIPTextEncode", 1, {"text": CLIP_PROMPT}, {"clip": (1, 1)}, title="Positive prompt"),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "FrameSequence", 1, {"prompt": CLIP_PROMPT, "words": "ball", "frames": 16, "width": 512,
                                     "height": 512, "dx": dx, "dy": dy, "keyframes": "",
                                     "interpolation": interpolation, "schedule": schedule, "start": 0.0,
                                     "end": 0.5, "resolutions": "all", "fill": "zero", "self_attention": "free",
                                     "cross_frame": "anchor", "shared_noise": True,
                                     "background_lock": background_lock, "chunk_size": 0, "chunk_index": 0},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (5, 1)),
        Node(7, "VAEDecode", 3, {}, {"samples": (6, 0), "vae": (1, 2)}),
        Node(8, "SaveMotionClip", 4, {"filename_prefix": f"attention_motion/{name}", "fps": 8.0, "loop": 0,
                                      "gif": True, "webp": True, "mp4": True, "frame_pngs": False, "quality": 90},
             {"images": (7, 0)}),
        note(20, 0, """
Frame Sequence makes a clip in one KSampler run: its LATENT has one row per frame (all rows share
the initial noise) and its MODEL moves the words' attention a little further in each row.

- prompt: the same text as the Positive prompt; words: what moves.
- frames, width, height: the clip (frames are one batch: memory grows with frames; chunk_size /
chunk_index sample a long clip in parts).
- dx, dy: the total move over the clip (fractions of width/height); keyframes (JSON, e.g.
[[0, 0, 0], [15, 0.3, 0]]) pin positions at chosen frames instead.
- schedule: 'variation' shifts each frame's maps from the source frame; 'incremental' shifts
each frame from the previous one.
- cross_frame: self-attention to the anchor frame (and the previous one) keeps the frames alike;
background_lock > 0 holds the background still.

Save Motion Clip writes GIF, animated WebP and MP4 to the output folder.
""" + text),
    ])


motion_clip_variation = _clip(
    "motion_clip_variation", "A 16-frame clip of the ball rolling right, schedule 'variation' (each frame "
    "shifted from the source frame).", "variation", "\nThis workflow: schedule 'variation', linear path.", 0.3, 0.0)

motion_clip_incremental = _clip(
    "motion_clip_incremental", "A 16-frame clip of the ball moving right and up with an ease-in-out path, "
    "schedule 'incremental' (each frame shifted from the previous one), background lock on.", "incremental",
    "\nThis workflow: schedule 'incremental', ease-in-out path, background_lock 0.5.", 0.3, -0.15,
    interpolation="ease-in-out", background_lock=0.5)

STACK_SOURCE = "a photo of a cat sitting on a car"

p2p_shift_stack = Workflow(
    "p2p_shift_stack",
    "Stacking: a P2P word swap (cat to dog) with a Token Shift on top that moves the animal left in "
    "both rows.",
    SD15,
    [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "P2PReplace", 1, {"source_prompt": STACK_SOURCE, "target_prompts": "a photo of a dog sitting on a car",
                                  "mode": "replace", "cross_replace": 0.8, "cross_replace_words": "",
                                  "self_replace": 0.4, "reweight": "", "width": 512, "height": 512,
                                  "source_pass": "batched"},
             {"model": (1, 0), "clip": (1, 1)}),
        Node(6, "TokenShift", 2, {"prompt": STACK_SOURCE, "words": "cat", "dx": -0.2, "dy": 0.0, "start": 0.0,
                                  "end": 0.4, "resolutions": "all", "fill": "zero", "self_attention": "free",
                                  "reference": "none"},
             {"model": (5, 0), "clip": (1, 1)}),
        _sampler(7, 3, (6, 0), (5, 2), positive=(5, 1)),
        *_decode_save(8, 4, (7, 0), "attention_motion/p2p_shift_stack"),
        note(20, 0, """
Edits stack: every attention node takes a MODEL and returns a patched clone, so Token Shift on top
of P2P Replace moves the object in the source row and in the edited row alike.

- Token Shift's prompt is the P2P source prompt; its word 'cat' sits at the same token position
as 'dog' in the target row (a one-for-one swap), so both animals move.
- Sample with Token Shift's MODEL and P2P Replace's positive and LATENT; Token Shift's reference
is 'none' (each row shifts its own maps) because P2P Replace makes the LATENT here.
- P2P Replace's source_pass is 'batched' so the source row goes through Token Shift too; with
'exact' the source row is evaluated alone, as a plain (unshifted) generation.
"""),
    ],
)

local_blend = Workflow(
    "local_blend",
    "Prompt-to-Prompt word swap kept local: outside the cat/dog region the edited image keeps the "
    "source's picture; the blend masks are saved too.",
    SD15,
    [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "P2PReplace", 1, {"source_prompt": STACK_SOURCE, "target_prompts": "a photo of a dog sitting on a car",
                                  "mode": "replace", "cross_replace": 0.8, "cross_replace_words": "",
                                  "self_replace": 0.4, "reweight": "", "width": 512, "height": 512},
             {"model": (1, 0), "clip": (1, 1)}),
        Node(6, "LocalBlend", 2, {"words": "cat, dog", "subtract_words": "", "threshold": 0.3, "dilation": 1,
                                  "start": 0.2, "resolution": "1/4"}, {"model": (5, 0), "clip": (1, 1)}),
        _sampler(7, 3, (6, 0), (5, 2), positive=(5, 1)),
        *_decode_save(8, 4, (7, 0), "attention_motion/local_blend"),
        Node(10, "LocalBlendMask", 4, {}, {"blend": (6, 1), "latent": (7, 0)}),
        Node(11, "MaskToImage", 5, {}, {"mask": (10, 0)}),
        Node(12, "SaveImage", 5, {"filename_prefix": "attention_motion/local_blend_mask"}, {"images": (11, 0)}),
        note(20, 0, """
Local Blend, stacked on P2P Replace, keeps an edit local: outside the region of 'words' the
target rows are set back to the source row from 'start' on.

- words: the edited words, in the source and/or target prompt ('cat, dog').
- subtract_words: words whose region is taken out of the mask.
- threshold: mask = normalised attention >= threshold (lower: larger region); dilation grows it by cells.
- start: fraction of the steps from which the blend applies (earlier: more of the source kept).
- resolution: which attention layers make the mask, as a fraction of the latent side ('1/4' is
the 16x16 layers at 512x512).

Local Blend Mask returns the mask of the last step: one per row (row 0 the source's own, then each
target's union with the source).
"""),
    ],
)

REGION_PROMPT = "a photo of a red apple and a yellow banana on a wooden table"
REGION_BOXES = ('[{"prompt": "a red apple", "box": [0.05, 0.35, 0.4, 0.45]},\n'
                ' {"prompt": "a yellow banana", "box": [0.55, 0.35, 0.4, 0.45]}]')

region_attention = Workflow(
    "region_attention",
    "Places objects in boxes: the same seed sampled plainly and with the apple's description acting in "
    "the left box and the banana's in the right one, strongest in the early steps.",
    SD15,
    _base(REGION_PROMPT) + [
        Node(5, "RegionAttention", 1, {"regions": REGION_BOXES, "schedule": "linear", "weight": 1.0,
                                       "weight_end": 0.3, "weight_list": "", "resolutions": "all", "frames": 0,
                                       "prompt": REGION_PROMPT, "confine": 1.0},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (1, 0), (4, 0)),
        _sampler(9, 2, (5, 0), (4, 0)),
        *_decode_save(7, 3, (6, 0), "attention_motion/region_plain"),
        *_decode_save(10, 3, (9, 0), "attention_motion/region_boxes"),
        note(20, 0, """
Region Attention gives objects of the prompt their own box and description.

- regions: JSON list of {"prompt": local description, "box": [x, y, w, h]} (fractions of the image
from the top-left); 'path' (a list of boxes over the frames of a batch) or 'mask' (index into the
optional MASK input) instead of 'box'; 'weight' scales one region.
- schedule: how much the local description replaces the global prompt inside its box at each step:
constant, linear or cosine from 'weight' (first step) to 'weight_end' (last step), or 'list' (one
value per step in weight_list). Early steps decide the layout.
- Outside every box only the global prompt (the Positive prompt) acts; overlapping boxes are averaged.
- prompt: the same global prompt; its words named by a region are also placed in that region's box
(a disc at its centre, 'confine' times the step's weight). This is what moves objects on models that
draw them where their words' attention is; empty turns it off. Draw the boxes on the node.

The two samplers share the seed: the top image is the plain generation, the bottom one the regions.
"""),
    ],
)

PHOTO = "shapes_photo.png"  # workflows/inputs: the headless runner uploads it; in the UI, upload it to Load Image
PHOTO_PROMPT = "a red circle"


def _photo() -> list:
    """Checkpoint (1), source prompt (2), empty negative (3), then the picture: Load Image (4),
    VAE Encode (5) and Diffusion Inversion (6)."""
    return [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(2, "CLIPTextEncode", 1, {"text": PHOTO_PROMPT}, {"clip": (1, 1)}, title="Source prompt"),
        Node(3, "CLIPTextEncode", 1, {"text": ""}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(4, "LoadImage", 0, {"image": PHOTO}, title="Your picture"),
        Node(5, "VAEEncode", 1, {}, {"pixels": (4, 0), "vae": (1, 2)}),
        Node(6, "DiffusionInversion", 2, {"sampler_name": "euler", "scheduler": "normal", "steps": 20,
                                          "denoise": 1.0, "method": "direct"},
             {"model": (1, 0), "positive": (2, 0), "latent": (5, 0)}),
    ]


PHOTO_NOTE = """
Diffusion Inversion turns your picture into the noise it comes from (Load Image -> VAE Encode ->
Diffusion Inversion). Its LATENT goes where an empty latent went; the edit node's source row is
then your picture, exactly (method 'direct').

- Describe the picture in the Source prompt: the inversion and the edit node both use it.
- Sample with the inversion's sampler (euler or ddim), scheduler, steps and denoise; any cfg and seed.
- Load Image: the picture bundled in the pack's workflows/inputs (the headless runner uploads it);
upload your own in the node. Its size is the output's size (multiples of 8).
"""

edit_my_photo = Workflow(
    "edit_my_photo",
    "Edits a loaded picture: inverted, then a Prompt-to-Prompt word swap (red -> blue) kept to the circle "
    "by Local Blend; the rest of the picture stays as it was.",
    SD15,
    [
        *_photo(),
        Node(7, "P2PReplace", 3, {"source_prompt": PHOTO_PROMPT, "target_prompts": "a blue circle",
                                  "mode": "replace", "cross_replace": 0.8, "cross_replace_words": "",
                                  "self_replace": 0.4, "reweight": "", "width": 512, "height": 512},
             {"model": (1, 0), "clip": (1, 1), "latent": (6, 1)}),
        Node(8, "LocalBlend", 3, {"words": "circle", "subtract_words": "", "threshold": 0.3, "dilation": 1,
                                  "start": 0.2, "resolution": "1/4"}, {"model": (7, 0), "clip": (1, 1)}),
        _sampler(9, 4, (8, 0), (7, 2), positive=(7, 1)),
        *_decode_save(10, 5, (9, 0), "attention_motion/edit_my_photo"),
        note(20, 0, PHOTO_NOTE + """
P2P Replace (its 'latent' from the inversion): row 0 is your picture, each target line an edit of
it. Local Blend keeps each edit inside the region of 'words'. The saved images: your picture
sampled back, then the edit.
"""),
    ],
)

animate_my_photo = Workflow(
    "animate_my_photo",
    "Animates a loaded picture: inverted, then a 16-frame Frame Sequence moves its circle to the right; "
    "frame 0 is the picture.",
    SD15,
    [
        *_photo(),
        Node(7, "FrameSequence", 3, {"prompt": PHOTO_PROMPT, "words": "circle", "frames": 16, "width": 512,
                                     "height": 512, "dx": 0.3, "dy": 0.0, "keyframes": "",
                                     "interpolation": "linear", "schedule": "variation", "start": 0.0,
                                     "end": 0.5, "resolutions": "all", "fill": "zero", "self_attention": "free",
                                     "cross_frame": "anchor", "shared_noise": True, "background_lock": 0.5,
                                     "chunk_size": 0, "chunk_index": 0},
             {"model": (1, 0), "clip": (1, 1), "latent": (6, 1)}),
        _sampler(8, 4, (7, 0), (7, 1)),
        Node(9, "VAEDecode", 5, {}, {"samples": (8, 0), "vae": (1, 2)}),
        Node(10, "SaveMotionClip", 6, {"filename_prefix": "attention_motion/animate_my_photo", "fps": 8.0, "loop": 0,
                                       "gif": True, "webp": True, "mp4": True, "frame_pngs": False, "quality": 90},
             {"images": (9, 0)}),
        note(20, 0, PHOTO_NOTE + """
Frame Sequence (its 'latent' from the inversion): frame 0 is your picture, the other frames move
the words' object along the path (dx, dy or keyframes) and keep the rest (background_lock).
"""),
    ],
)

STYLE_PROMPTS = ("a house, in watercolor painting style\na cat, in watercolor painting style\n"
                 "a car, in watercolor painting style\na tree, in watercolor painting style")

style_aligned = Workflow(
    "style_aligned",
    "Style Aligned: four prompts sampled together share the style of the first (colours, strokes, "
    "background); each keeps its own subject.",
    SD15,
    [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "StyleAligned", 1, {"prompts": STYLE_PROMPTS, "strength": 1.0, "start": 0.0, "end": 1.0,
                                    "resolutions": "all", "blocks": "all", "adain": "queries and keys",
                                    "width": 512, "height": 512, "share_group_norm": False,
                                    "latent_adain": False},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (5, 2), positive=(5, 1)),
        *_decode_save(7, 3, (6, 0), "attention_motion/style_aligned"),
        note(20, 0, """
Style Aligned: one prompt per line, one image per line, all sampled in one batch. Every image
shares the self-attention of the first (the reference): its queries and keys are normalised to
the reference's and it attends to the reference's keys and values as well as its own.

- strength: 1 = Style Aligned; lower blends back to each image's own attention (0 = plain).
- start / end, resolutions, blocks: where sharing happens (fractions of the steps, grid levels,
  decoder or encoder blocks).
- adain: normalise queries and keys (the paper), keys only, or off.
- latent (optional): Diffusion Inversion's LATENT makes your picture the reference.
- share_group_norm (optional): each image's GroupNorm statistics are taken jointly with the
  reference's too (stronger colour and tone sharing).
- latent_adain (optional): each image's predicted latent takes the reference's background
  colour and spread at every step (not in the paper; the strongest colour and tone match).

Sample the three outputs together (MODEL, positive, LATENT); the first saved image is the
reference, as a plain generation of line 1 with this seed.
"""),
    ],
)

cross_image_attention = Workflow(
    "cross_image_attention",
    "Cross-Image Attention: the horse's layout in the zebra's look; one run gives the structure image, "
    "the appearance image and the result.",
    SD15,
    [
        Node(1, "CheckpointLoaderSimple", 0, {"ckpt_name": CKPT}),
        Node(3, "CLIPTextEncode", 1, {"text": "blurry, low quality"}, {"clip": (1, 1)}, title="Negative prompt"),
        Node(5, "CrossImageAttention", 1, {"structure_prompt": "a photo of a horse in a field",
                                           "appearance_prompt": "a photo of a zebra", "contrast": 1.67,
                                           "start": 0.1, "end": 0.9, "resolutions": "1/1, 1/2", "blocks": "decoder",
                                           "width": 512, "height": 512, "output_prompt": "", "adain": "object",
                                           "object_words": "horse, zebra", "adain_start": 0.2},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (5, 2), positive=(5, 1)),
        *_decode_save(7, 3, (6, 0), "attention_motion/cross_image_attention"),
        note(20, 0, """
Cross-Image Attention samples three images in one run: the structure image (row 0), the
appearance image (row 1) and the output (row 2), which keeps the structure image's layout and
takes its look from the appearance image: in the chosen self-attention layers and steps the
output attends with the structure image's queries to the appearance image's keys and values.

- contrast: sharpens that attention (1 = none; the paper's 1.67).
- start / end, resolutions, blocks: where it acts (the paper: the decoder's two finest levels).
- output_prompt: empty = the structure prompt.
- adain (from adain_start to the end): the output's object takes the appearance's colours per
  latent channel, in the region of object_words (the object's word in each prompt).
- latent (optional): Diffusion Inversion of one picture (the structure row) or of two
  (structure, then appearance); the picture rows are then your pictures.

The saved images: structure, appearance, output.
"""),
    ],
)

SEGMENT_PROMPT = "a photo of a red apple and a banana on a wooden table"

self_segmentation = Workflow(
    "self_segmentation",
    "Self-segmentation: the image's parts found from the model's self-attention and labelled with the "
    "prompt's words; one mask per word and a label image.",
    SD15,
    _base(SEGMENT_PROMPT) + [
        Node(5, "SelfSegmentation", 1, {"prompt": SEGMENT_PROMPT, "words": "apple, banana, table", "clusters": 10,
                                        "threshold": 0.15, "resolution": "auto", "start": 0.3, "end": 1.0},
             {"model": (1, 0), "clip": (1, 1)}),
        _sampler(6, 2, (5, 0), (4, 0)),
        *_decode_save(7, 3, (6, 0), "attention_motion/self_segmentation"),
        Node(9, "SelfSegmentationMasks", 3, {}, {"segments": (5, 1), "image": (7, 0)}),
        Node(10, "SaveImage", 4, {"filename_prefix": "attention_motion/self_segmentation_labels"}, {"images": (9, 1)}),
        Node(11, "MaskToImage", 4, {}, {"mask": (9, 0)}),
        Node(12, "PreviewImage", 5, {}, {"images": (11, 0)}),
        note(20, 0, """
Self Segmentation records the self-attention of one grid (and the words' cross-attention) while
sampling; Self Segmentation Masks then groups the image's cells by their self-attention features
(K-means, 'clusters' groups) and labels each group with the word whose cross-attention it holds
most, or background.

- prompt: the same text as the Positive prompt; words: one mask per word, in this order.
- clusters: groups before labelling (well over the number of objects + 1).
- threshold: a group takes a word only when that word's map (scaled 0 to 1) averages this much in it.
- resolution: 'auto' (the finest grid of at most 32x32 cells) or one fraction such as '1/4'.
- start / end: the steps whose attention is averaged.

Masks node: connect the decoded IMAGE (it runs after sampling, at the image's size). Its masks
feed Local Blend's or Region Attention's 'mask' input.
"""),
    ],
)

SPECS = [capture_heatmaps, token_shift, word_swap, refine, reweight, local_blend, motion_clip_variation,
         motion_clip_incremental, p2p_shift_stack, region_attention, edit_my_photo, animate_my_photo,
         style_aligned, cross_image_attention, self_segmentation]


def available(object_info: dict) -> list:
    """The specs whose node types the server knows (others are skipped while nodes land)."""
    return [s for s in SPECS if s.node_types() <= set(object_info)]
