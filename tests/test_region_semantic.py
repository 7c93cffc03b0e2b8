"""Semantic tier: RegionAttention on the trained shapes model, judged from pixels.

Skips until the shapes model's weights are in models/shapes. The criteria are relative to the
same prompts and seeds without regions:

* two objects, each described in its own box: the share of seeds where both objects' pixel
  centroids fall inside their boxes is higher with the regions than without, and at least half.
  Measured on the phase-1 weights (seeds 0-7): 0.125 without regions, 0.5 with. On the committed
  weights (trained to draw objects where their words' maps are): 0.25 without and 0.25 with
  (linear 1 -> 0.3; constant 1: 0.25, constant 2: 0.125, linear 2 -> 0.5: 0.0). The region's
  description adds its values inside the box but does not move the global prompt's word maps,
  which now decide the layout: a strict xfail until regions act on the maps too.
* a box path over three frames sharing one noise: the object's centroid moves in the path's
  direction by at least half the box's move. Measured: it does not (seed 0: x 0.689, 0.666,
  0.684; seed 1: 0.251, 0.238, 0.241 for a box moving from x 0 to 0.6): strict xfail.

    python tests/test_region_semantic.py   # prints the measured shares (needs the weights)
"""
import json
import os
import sys

if __name__ == "__main__":  # standalone measurement: configure the host and the pack first
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    harness.setup_host()
    harness.install_pack_package()

import pytest  # noqa: E402
import torch  # noqa: E402

from attention_motion.shapes import quality as q  # noqa: E402

pytestmark = pytest.mark.semantic

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "shapes")
PROMPT = "a red circle and a blue square"
LEFT, RIGHT = [0.0, 0.2, 0.5, 0.6], [0.5, 0.2, 0.5, 0.6]
REGIONS = json.dumps([{"prompt": "a red circle", "box": LEFT}, {"prompt": "a blue square", "box": RIGHT}])
SEEDS = tuple(range(8))
STEPS, CFG = 16, 5.0


def _inside(obj, box, size):
    x, y, w, h = box
    return x <= obj["cx"] / size <= x + w and y <= obj["cy"] / size <= y + h


def placed(img, size=128) -> bool:
    """Both objects found by colour, each centroid inside its box."""
    objs = q.read_objects(img)
    red = next((o for o in objs if o["colour"] == "red"), None)
    blue = next((o for o in objs if o["colour"] == "blue"), None)
    return red is not None and blue is not None and _inside(red, LEFT, size) and _inside(blue, RIGHT, size)


def region_shares(pack, model, clip, vae, seeds=SEEDS):
    node = pack.NODE_CLASS_MAPPINGS["RegionAttention"]()
    regional = node.patch(model, clip, REGIONS, schedule="linear", weight=1.0, weight_end=0.3)[0]
    plain_hits = region_hits = 0
    with torch.inference_mode():
        pos, neg = q.encode(clip, PROMPT), q.encode(clip, "")
        for seed in seeds:
            plain_hits += placed(q.decode(vae, q.ksample(model, pos, neg, seed, STEPS, CFG))[0])
            region_hits += placed(q.decode(vae, q.ksample(regional, pos, neg, seed, STEPS, CFG))[0])
    return plain_hits / len(seeds), region_hits / len(seeds)


def moving_centroids(pack, model, clip, vae, seed=0, frames=3):
    """Red object's centroid x (fraction of the width) in each frame; all frames share the noise."""
    import nodes as host_nodes
    path = json.dumps([{"prompt": "a red circle", "path": [[0.0, 0.25, 0.4, 0.5], [0.6, 0.25, 0.4, 0.5]]}])
    m = pack.NODE_CLASS_MAPPINGS["RegionAttention"]().patch(model, clip, path, frames=frames)[0]
    latent = {"samples": torch.zeros(frames, 4, 16, 16), "batch_index": [0] * frames}
    with torch.inference_mode():
        pos, neg = q.encode(clip, PROMPT), q.encode(clip, "")
        lat = host_nodes.common_ksampler(m, seed, STEPS, CFG, "euler", "normal", pos, neg, latent)[0]["samples"]
        imgs = q.decode(vae, lat)
    out = []
    for img in imgs:
        red = next((o for o in q.read_objects(img) if o["colour"] == "red"), None)
        out.append(None if red is None else red["cx"] / img.shape[-1])
    return out


@pytest.fixture(scope="module")
def shapes(host, pack):
    if not os.path.isfile(os.path.join(WEIGHTS, "unet.safetensors")):
        pytest.skip("shapes model weights are not in models/shapes")
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    model, clip, vae = getattr(node, node.FUNCTION)()
    return pack, model, clip, vae


@pytest.mark.xfail(strict=True, reason="committed shapes model: the word maps decide the layout, regions "
                                      "do not move them (measured 0.25 with and without regions)")
def test_objects_land_in_their_boxes_more_often_than_without_regions(shapes):
    plain, regional = region_shares(*shapes)
    assert regional > plain and regional >= 0.5, (plain, regional)


@pytest.mark.xfail(strict=True, reason="shapes model: a moving box does not move the object (measured)")
def test_a_moving_box_moves_the_object(shapes):
    xs = moving_centroids(*shapes)
    # the box moves 0.6 of the width from the first frame to the last: the object must follow at
    # least half of that, in order (a drift of a hundredth is not a move)
    assert None not in xs and xs[0] < xs[1] < xs[2] and xs[2] - xs[0] >= 0.3, xs


if __name__ == "__main__":
    pack = harness.import_pack()
    harness.init_host()
    node = pack.NODE_CLASS_MAPPINGS["ShapesModelLoader"]()
    args = getattr(node, node.FUNCTION)()
    if "--moving" not in sys.argv:
        print("share of seeds with both objects in their boxes (plain, regions):", region_shares(pack, *args))
    for seed in (0, 1):
        print(f"seed {seed}: red centroid x over 3 frames of a moving box:", moving_centroids(pack, *args, seed=seed))
