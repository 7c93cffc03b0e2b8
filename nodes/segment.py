"""SelfSegmentation (record while sampling) and SelfSegmentationMasks (masks after sampling)."""
from __future__ import annotations

from ..controllers.segment import KMEANS_ITERATIONS, SegmentationError, SegmentRecorder, label_image
from ..core.grid import parse_levels
from ..host.progress import Progress
from ..host.router import install
from .common import CATEGORY, check_inputs, check_window, locate, model_levels, quote

SEGMENTS_TYPE = "SELF_SEGMENTS"
MAX_CLUSTERS = 16
EDGES = ["image", "grid"]


class SelfSegmentation:
    """Record the self-attention of one grid and the words' cross-attention while the MODEL samples."""

    DESCRIPTION = (
        "Segments the image the returned MODEL samples: during the step window [start, end] it records, at one "
        "small attention grid, the self-attention layers' features (their queries, mean over steps) and each "
        "word's cross-attention map; it changes nothing in the image. After sampling, 'Self Segmentation Masks' "
        "clusters the cells into 'clusters' segments (K-means on those features) and labels each segment with the "
        "word whose cross-attention it holds most, or background: one MASK per word with sharper edges than the "
        "cross-attention map, for Local Blend's or Region Attention's 'mask' input."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL", SEGMENTS_TYPE)
    RETURN_NAMES = ("model", "segments")
    FUNCTION = "record"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (from Load Checkpoint or another attention node); the node returns a patched clone that only observes attention."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the same checkpoint: used to find the words' tokens in the prompt."}),
                "prompt": ("STRING", {"multiline": True, "default": "a red circle and a blue square", "tooltip": "The prompt given to the positive CLIP Text Encode (needed to find the words' tokens)."}),
                "words": ("STRING", {"default": "circle, square", "tooltip": "Comma-separated words of the prompt to label segments with (an entry may hold several words). Each word gets one output mask, in this order."}),
                "clusters": ("INT", {"default": 10, "min": 2, "max": MAX_CLUSTERS, "tooltip": "K-means groups (2-16) before labelling; use well over the number of objects + 1 (default 10)."}),
                "threshold": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "0-1: a segment takes a word only if that word's cross-attention map (scaled to 0..1) averages at least this inside the segment; else it is background."}),
                "resolution": ("STRING", {"default": "auto", "tooltip": "Grid to segment at: 'auto' (the finest of at most 32x32 cells) or one fraction of the latent side such as '1/4' (at most 64x64 cells)."}),
                "start": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Start of the step window, as a fraction of the sampling steps (0 = first step): attention is averaged from here."}),
                "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "End of the step window, as a fraction of the sampling steps (1 = last step)."}),
            }
        }

    def record(self, model, clip, prompt, words, clusters, threshold, resolution, start, end):
        check_inputs(self, locals())
        node = "SelfSegmentation"
        window = check_window(node, start, end)
        have = model_levels(model)
        level = None
        if resolution.strip().lower() != "auto":
            try:
                levels = parse_levels(resolution)
            except ValueError as e:
                raise ValueError(f"{node}: input 'resolution': {e}; or use 'auto'.") from None
            if levels is None or len(levels) != 1:
                raise ValueError(f"{node}: input 'resolution' is {quote(repr(resolution), 60)}; give 'auto' or "
                                 "one fraction of the latent side such as '1/4'.")
            level = next(iter(levels))
            if have is not None and level not in have:
                known = ", ".join(f"1/{2 ** lv}" for lv in sorted(have))
                raise ValueError(f"{node}: input 'resolution' is {quote(repr(resolution), 60)}, but the model has no "
                                 f"attention at 1/{2 ** level} of the latent; it has {known}. Use one of those or 'auto'.")
        entries, indices = locate(node, clip, prompt, words)
        recorder = SegmentRecorder(entries, indices, clusters, window, level, have, threshold)
        return (install(model, recorder, node), recorder)


class SelfSegmentationMasks:
    """Cluster and label the recorded run: one MASK per word and a label image."""

    DESCRIPTION = (
        "After sampling with the MODEL of 'Self Segmentation': clusters the recorded self-attention into segments, "
        "labels each with a word or background, and returns the words' masks (MASK [rows x words, H, W], in the "
        "order of the words, row by row; with the background, every pixel is in exactly one mask) and a colour "
        "label image (background dark grey, then one colour per word). Connect the decoded IMAGE (or any IMAGE "
        "of the output size made after the sampler) so this node runs after sampling."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK", "IMAGE", "MASK")
    RETURN_NAMES = ("masks", "labels", "background")
    FUNCTION = "masks"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "segments": (SEGMENTS_TYPE, {"tooltip": "The SELF_SEGMENTS output of Self Segmentation."}),
            "image": ("IMAGE", {"tooltip": "The decoded IMAGE of the sampler that used Self Segmentation's MODEL: runs this node after sampling, gives the mask size and, with edges 'image', the edges."}),
        }, "optional": {
            "edges": (EDGES, {"default": "image", "tooltip": "image: mask edges follow the image's colour edges within a grid cell (guided filter); grid: the attention grid's cells, smoothed."}),
        }}

    def masks(self, segments, image, edges="image"):
        check_inputs(self, locals())
        node = "SelfSegmentationMasks"
        if not isinstance(segments, SegmentRecorder):
            raise ValueError(f"{node}: input 'segments' is not a SELF_SEGMENTS (got {quote(repr(segments), 60)}); "
                             "connect the 'segments' output of Self Segmentation.")
        rows_done = 0 if segments.cross_acc is None or segments.cross_acc.total is None else segments.cross_acc.total.shape[0]
        progress = Progress(max(1, rows_done) * KMEANS_ITERATIONS)
        try:
            if edges == "image" and rows_done and image.shape[0] != rows_done:
                raise ValueError(f"{node}: input 'image' holds {image.shape[0]} images but the sampled latent had {rows_done} "
                                 "rows; connect the decoded IMAGE of that sampler, or set 'edges' to 'grid'.")
            guide = image[..., :3] if edges == "image" else None
            onehot = segments.masks((int(image.shape[1]), int(image.shape[2])), progress.advance, guide)
        except SegmentationError as e:
            raise ValueError(str(e)) from None
        rows = onehot.shape[0]
        words = onehot[:, 1:].reshape(-1, *onehot.shape[-2:]).float().cpu()
        return (words, label_image(onehot).float().cpu().clamp(0, 1), onehot[:, 0].float().cpu().reshape(rows, *onehot.shape[-2:]))


NODE_CLASS_MAPPINGS = {"SelfSegmentation": SelfSegmentation, "SelfSegmentationMasks": SelfSegmentationMasks}
NODE_DISPLAY_NAME_MAPPINGS = {"SelfSegmentation": "Self Segmentation", "SelfSegmentationMasks": "Self Segmentation Masks"}
