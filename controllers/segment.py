"""Self-attention segmentation: cluster what the model's self-attention groups, label it with words.

During the run's step window, :class:`SegmentRecorder` only observes (it never changes an output):

* at ONE grid (by default the finest self-attention level whose grid has at most ``AUTO_CELLS``
  cells, e.g. 32x32 at 512 px on SD1.5, 16x16 on the 128 px shapes model) it accumulates the
  self-attention layers' queries, mean over steps (``[rows, N, C]`` per layer). Features, not the
  self-attention map's rows: on the shapes model the rows segmented far worse (mean object IoU
  0.14 against 0.49 at K=8, before any edge refinement) and cost an N x N map per row;
* at every cross-attention level it accumulates the words' cross-attention maps, resampled to
  that grid (:func:`core.maps.word_maps`).

After the run, :meth:`SegmentRecorder.segment` clusters the grid cells into K segments with
K-means (farthest-point initialisation from the cell nearest the mean, a fixed number of
iterations: deterministic) on each cell's feature vector, and labels
every segment with the word whose normalised cross-attention (each word's map scaled to [0, 1])
has the highest mean inside it, or background (class 0) when no word's mean reaches
``threshold``. :func:`affinity_scores` softens the labels at object edges (each cell's class is the
feature-affinity-weighted vote of all cells: an N x N at the chosen grid only, hence MAX_CELLS) and
:func:`class_masks` turns the scores into masks at image size that cover every pixel exactly once
(scores upsampled bilinearly, guided by the image when one is given, then the arg-max class per
pixel). Other self-attention calls are not touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..core.controller import AttnCall, Controller
from ..core.grid import level_grid
from ..core.guided import guided_filter
from ..core.maps import MapAccumulator, normalize, word_maps

NODE = "SelfSegmentation"
AUTO_CELLS = 32 * 32  # auto grid: the finest self-attention level with at most this many cells
MAX_CELLS = 64 * 64  # largest grid: the affinity step forms an N x N matrix (64 MB at 64x64)
KMEANS_ITERATIONS = 30
AFFINITY_TEMPERATURE = 0.1  # cosine-similarity temperature of the edge refinement
# Image edges (guided filter): window radius in grid cells, regulariser (colours 0..1) and passes.
# Chosen on the shapes model (seeds 0-5, then checked on 6-11): one pass of radius 1 cell and eps
# 1e-3 left small objects at 0.61 IoU; 1.5 cells, 1e-2 and two passes lifted every object above 0.8.
GUIDE_RADIUS_CELLS = 1.5
GUIDE_EPS = 1e-2
GUIDE_PASSES = 2
GUIDE_SUBSAMPLE_CELLS = 8  # the fit runs on every (radius / 8)-th pixel: exact on small images, fast on large

# Label colours: background dark grey, then one colour per word (cycled).
PALETTE = torch.tensor([
    [0.15, 0.15, 0.15], [0.90, 0.25, 0.20], [0.20, 0.55, 0.95], [0.98, 0.80, 0.15], [0.25, 0.75, 0.35],
    [0.70, 0.35, 0.85], [0.95, 0.55, 0.15], [0.20, 0.80, 0.80], [0.95, 0.45, 0.70], [0.60, 0.60, 0.25],
])


class SegmentationError(RuntimeError):
    """The recorder has nothing complete to segment (no run, an interrupted run, a wrong grid)."""


@dataclass
class Segmentation:
    """Result of one run: per row the cells' segment ids and classes (0 background, i + 1 word i)."""

    segments: torch.Tensor  # [rows, h, w] long, 0..K-1
    classes: torch.Tensor  # [rows, h, w] long, 0..words
    segment_words: torch.Tensor  # [rows, K] long: the class of each segment
    scores: torch.Tensor  # [rows, K, words]: mean normalised cross-attention of each word per segment
    cross: torch.Tensor  # [rows, words, h, w]: the words' mean cross-attention maps at the grid
    soft: torch.Tensor  # [rows, 1 + words, h, w]: class scores after the affinity step (sum 1 per cell)
    level: int


def kmeans(points: torch.Tensor, k: int, iterations: int = KMEANS_ITERATIONS,
           step: Callable[[], None] | None = None) -> torch.Tensor:
    """Cluster ids ``[N]`` (0..k-1) of ``[N, D]`` points: K-means with squared Euclidean distance.

    Deterministic: the first centre is the point nearest the mean, each next one the point
    farthest from the centres so far; then ``iterations`` Lloyd steps. A cluster that empties is
    re-seeded with the point farthest from its centre. Cluster ids are renumbered in order of
    first appearance in the points (row-major cells), so equal inputs give equal ids.
    ``step`` is called once per iteration (progress, interruption)."""
    x = points.float()
    n = x.shape[0]
    k = max(1, min(int(k), n))
    first = int(((x - x.mean(0)) ** 2).sum(1).argmin())
    chosen = [first]
    dist = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, ((x - x[nxt]) ** 2).sum(1))
    centres = x[chosen].clone()
    sq = (x ** 2).sum(1, keepdim=True)
    labels = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(iterations):
        d2 = sq - 2 * x @ centres.T + (centres ** 2).sum(1)[None]
        labels = d2.argmin(1)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        for j in range(k):
            if counts[j] == 0:  # re-seed an empty cluster with the worst-fitting point
                far = int(d2.gather(1, labels[:, None])[:, 0].argmax())
                centres[j] = x[far]
            else:
                centres[j] = sums[j] / counts[j]
        if step is not None:
            step()
    d2 = sq - 2 * x @ centres.T + (centres ** 2).sum(1)[None]
    labels = d2.argmin(1)
    order = {}
    for v in labels.tolist():
        order.setdefault(v, len(order))
    return torch.tensor([order[v] for v in labels.tolist()], dtype=torch.long, device=x.device)


def label_segments(segments: torch.Tensor, k: int, cross: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Class of each segment (0 background, i + 1 word i) and the scores ``[k, words]``.

    ``segments`` ``[N]`` ids; ``cross`` ``[words, N]`` maps. A word's score in a segment is the mean
    of its map, scaled to [0, 1] over the grid, over the segment's cells; the segment takes the
    best-scoring word if that score reaches ``threshold``, else background."""
    words = cross.shape[0]
    norm = normalize(cross.float()[:, None])[:, 0] if words else cross.float()
    onehot = F.one_hot(segments, k).float()  # [N, k]
    counts = onehot.sum(0).clamp_min(1)
    scores = (onehot.T @ norm.T) / counts[:, None]  # [k, words]
    if words == 0:
        return torch.zeros(k, dtype=torch.long), scores
    best, which = scores.max(dim=1)
    return torch.where(best >= threshold, which + 1, torch.zeros_like(which)), scores


def affinity_scores(classes: torch.Tensor, points: torch.Tensor, n_classes: int,
                    temperature: float = AFFINITY_TEMPERATURE) -> torch.Tensor:
    """Soft class scores ``[n_classes, N]`` of cells: each cell's class votes weighted by feature affinity.

    ``classes`` ``[N]``; ``points`` ``[N, D]``. Weights: softmax over cells of the cosine similarity
    / ``temperature`` (an N x N map at the segmentation grid only). A cell on an object's edge, half
    like the object, gets a score between the classes, which places the edge inside the cell when
    the scores are upsampled."""
    f = F.normalize(points.float(), dim=-1)
    weights = torch.softmax(f @ f.T / temperature, dim=-1)
    return (weights @ F.one_hot(classes.long(), n_classes).float()).T


def class_masks(scores: torch.Tensor, size: tuple[int, int], image: torch.Tensor | None = None,
                eps: float = GUIDE_EPS, passes: int = GUIDE_PASSES) -> torch.Tensor:
    """One-hot masks ``[rows, classes, H, W]`` at ``size`` from grid scores ``[rows, classes, h, w]``.

    The scores (soft, or one-hot classes) are upsampled bilinearly; with ``image`` (``[rows, H, W, 3]``,
    0..1) they are then guided-filtered by it (:func:`core.guided.guided_filter`, ``passes`` times, radius
    ``GUIDE_RADIUS_CELLS`` grid cells), so the edges follow the picture's colour edges inside a cell. Every pixel takes the class with the
    largest value (ties: the lowest class), so the masks cover every pixel exactly once."""
    up = F.interpolate(scores.float(), size=tuple(size), mode="bilinear", align_corners=False)
    if image is not None:
        cell = max(size[0] / scores.shape[-2], size[1] / scores.shape[-1])
        radius = max(1, round(cell * GUIDE_RADIUS_CELLS))
        guide = image.to(up.device).float().movedim(-1, 1)
        rows = []
        for r in range(up.shape[0]):
            row = up[r]
            for _ in range(passes):
                row = guided_filter(guide[r], row, radius, eps, max(1, radius // GUIDE_SUBSAMPLE_CELLS))
            rows.append(row)
        up = torch.stack(rows)
    return F.one_hot(up.argmax(dim=1), scores.shape[1]).permute(0, 3, 1, 2).float()


def label_image(masks: torch.Tensor) -> torch.Tensor:
    """Colour image ``[rows, H, W, 3]`` of one-hot class masks ``[rows, classes, H, W]``."""
    n = masks.shape[1]
    colours = PALETTE[[0] + [1 + (i % (len(PALETTE) - 1)) for i in range(n - 1)]].to(masks.device)
    return torch.einsum("rchw,cd->rhwd", masks.float(), colours)


class SegmentRecorder(Controller):
    """Observes one grid's self-attention and the words' cross-attention during a step window."""

    def __init__(self, words: list[str], token_indices: list[list[int]], clusters: int,
                 window: tuple[float, float] = (0.0, 1.0), level: int | None = None,
                 candidate_levels: frozenset[int] | None = None, threshold: float = 0.15,
                 iterations: int = KMEANS_ITERATIONS):
        """``level``: the grid level to record (None: auto, the finest of ``candidate_levels``, or of
        every level when None, whose grid has at most AUTO_CELLS cells)."""
        self.words = list(words)
        self.token_indices = [list(g) for g in token_indices]
        self.clusters = int(clusters)
        self.window = (float(window[0]), float(window[1]))
        self.level = level
        self.candidate_levels = candidate_levels
        self.threshold = float(threshold)
        self.iterations = int(iterations)
        self.runs = -1  # reset() counts the runs: 0 until the first one starts
        self.reset()

    def __deepcopy__(self, memo):  # run state shared by the model clones of one graph node
        return self

    def reset(self) -> None:
        """Forget everything of the previous run (called when a run starts)."""
        self.runs += 1
        self.features: dict[tuple, list] = {}  # layer key -> [sum [rows, N, C], count]
        self.cross_acc: MapAccumulator | None = None
        self.latent_hw: tuple[int, int] | None = None
        self.grid: tuple[int, int] | None = None
        self.target_level: int | None = None
        self.last_step = -1
        self.total_steps: int | None = None
        self.result: Segmentation | None = None

    # -- recording -------------------------------------------------------------------------------
    def _target(self, latent_hw: tuple[int, int]) -> int:
        if self.level is not None:
            return self.level
        levels = sorted(self.candidate_levels) if self.candidate_levels else range(8)
        for lv in levels:
            h, w = level_grid(latent_hw, lv)
            if h * w <= AUTO_CELLS:
                return lv
        return max(levels)

    def _track(self, call: AttnCall) -> None:
        if self.latent_hw != tuple(call.latent_hw):
            if self.latent_hw is not None:
                raise SegmentationError(f"{NODE}: the latent size changed within one run "
                                        f"({self.latent_hw} -> {tuple(call.latent_hw)}).")
            self.latent_hw = tuple(call.latent_hw)
            self.target_level = self._target(self.latent_hw)
            self.grid = level_grid(self.latent_hw, self.target_level)
            if self.grid[0] * self.grid[1] > MAX_CELLS:
                raise SegmentationError(
                    f"{NODE}: input 'resolution' gives a {self.grid[0]}x{self.grid[1]} grid at this image size; "
                    f"segmentation works on grids of at most {MAX_CELLS} cells (64x64). Choose a coarser resolution "
                    "(e.g. '1/4') or 'auto'.")
        self.last_step = max(self.last_step, int(call.run.step))
        if call.run.total_steps is not None:
            self.total_steps = int(call.run.total_steps)

    def wants_self_output(self, call: AttnCall) -> bool:
        if not call.is_cond:
            return False
        self._track(call)
        return call.level == self.target_level and call.run.within(self.window)

    def self_output(self, call, q, k, v, out, attend):
        """Accumulate this chunk's queries (the layer's features); return ``out`` unchanged."""
        f = q.detach().float()
        slot = self.features.get(call.key)
        if slot is None or slot[0].shape != f.shape:
            self.features[call.key] = [f.clone(), 1]
        else:
            slot[0] += f
            slot[1] += 1
        return out

    def wants_cross(self, call: AttnCall) -> bool:
        if not call.is_cond:
            return False
        self._track(call)
        return call.run.within(self.window)

    def cross(self, call: AttnCall, probs: torch.Tensor) -> torch.Tensor:
        """Accumulate the words' maps at the recorded grid; return ``probs`` unchanged."""
        if self.cross_acc is None:
            self.cross_acc = MapAccumulator(self.grid)
        self.cross_acc.add(word_maps(probs, self.token_indices, call.grid))
        return probs

    # -- reading ---------------------------------------------------------------------------------
    @property
    def recorded(self) -> bool:
        return bool(self.features) and self.cross_acc is not None and self.cross_acc.count > 0

    def complete(self) -> bool:
        """True when the run reached its last step (unknown step count: assumed complete)."""
        return self.total_steps is None or self.last_step >= self.total_steps - 1

    def _cells(self, row: int) -> torch.Tensor:
        """Points ``[N, D]`` to cluster for one latent row."""
        parts = []
        for key in sorted(self.features, key=repr):
            total, count = self.features[key]
            parts.append(F.normalize(total[row] / count, dim=-1))
        return torch.cat(parts, dim=-1)

    def segment(self, step: Callable[[], None] | None = None) -> Segmentation:
        """Cluster and label the recorded run (once; later calls return the same result).

        Raises SegmentationError when nothing was recorded or the run did not finish."""
        if self.result is not None:
            return self.result
        if not self.recorded:
            lo, hi = self.window
            raise SegmentationError(
                f"{NODE}: nothing recorded: no sampling step in the window [{lo}, {hi}] has run with the MODEL of "
                "SelfSegmentation at its grid (or the model has no self- and cross-attention there). Connect the "
                "MODEL output of SelfSegmentation to the sampler, and that sampler's output to SelfSegmentationMasks "
                "so it runs after sampling; check 'resolution'.")
        if not self.complete():
            raise SegmentationError(
                f"{NODE}: the last run stopped at step {self.last_step + 1} of {self.total_steps} (interrupted or "
                "failed); its partial attention is not segmented. Sample again.")
        rows = self.cross_acc.total.shape[0]
        h, w = self.grid
        cross = self.cross_acc.mean()  # [rows, words, h, w]
        n_classes = 1 + len(self.words)
        segs, classes, seg_words, scores, soft = [], [], [], [], []
        for r in range(rows):
            points = self._cells(r)
            ids = kmeans(points, self.clusters, self.iterations, step)
            sw, sc = label_segments(ids, self.clusters, cross[r].reshape(cross.shape[1], -1), self.threshold)
            segs.append(ids.reshape(h, w))
            classes.append(sw[ids].reshape(h, w))
            seg_words.append(sw)
            scores.append(sc)
            soft.append(affinity_scores(sw[ids], points, n_classes).reshape(n_classes, h, w))
        self.result = Segmentation(torch.stack(segs), torch.stack(classes), torch.stack(seg_words),
                                   torch.stack(scores), cross, torch.stack(soft), int(self.target_level))
        self.features = {}  # keep only the result
        return self.result

    def masks(self, size: tuple[int, int], step: Callable[[], None] | None = None,
              image: torch.Tensor | None = None) -> torch.Tensor:
        """One-hot class masks ``[rows, 1 + words, H, W]`` at ``size`` (class 0: background).

        ``image`` ``[rows, H, W, 3]``: the sampled picture, whose colour edges the mask edges follow."""
        return class_masks(self.segment(step).soft, size, image)
