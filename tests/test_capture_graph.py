"""Tier 3: AttentionCapture graphs through ComfyUI's own executor."""
import os

import pytest
import torch

import harness

pytestmark = pytest.mark.graph


def _graph(prompt="a red circle and a blue square", words="circle, square", seed=5):
    return {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": "sd15", "seed": 0}},
        "2": {"class_type": "AttentionCapture", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "prompt": prompt, "words": words,
            "start": 0.0, "end": 1.0, "resolutions": "all"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": prompt}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 192, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
            "seed": seed, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "AttentionHeatmaps", "inputs": {
            "store": ["2", 1], "latent": ["6", 0], "threshold": 0.5, "layout": "overlay", "image": ["7", 0]}},
        "9": {"class_type": "SaveAttentionStore", "inputs": {
            "store": ["2", 1], "latent": ["6", 0], "filename_prefix": "graphtest"}},
    }


def test_capture_graph_renders_and_saves_then_loads(host, output_dir):
    outputs, _ = harness.run_graph(_graph())
    previews = outputs["8"]["images"]
    assert len(previews) == 2  # one heatmap per word
    saved = outputs["9"]["stores"][0]
    path = os.path.join(output_dir, saved["subfolder"], saved["filename"])
    assert os.path.exists(path)

    loader = host.nodes.NODE_CLASS_MAPPINGS["LoadAttentionStore"]
    assert saved["filename"] in loader.INPUT_TYPES()["required"]["file"][0]
    store = loader().load(saved["filename"])[0]
    assert store.words == ["circle", "square"] and store.grid == (24, 32)
    assert store.prompt == "a red circle and a blue square"
    # the loaded store renders like a live one, in a later run
    heat, mask = host.nodes.NODE_CLASS_MAPPINGS["AttentionHeatmaps"]().render(
        store, {"samples": torch.zeros(1, 4, 24, 32)}, 0.5, "heatmap only")["result"]
    assert heat.shape == (2, 192, 256, 3) and mask.shape == (2, 192, 256)
    assert 0 < mask.mean() < 1


def _load(host, outputs):
    loader = host.nodes.NODE_CLASS_MAPPINGS["LoadAttentionStore"]()
    return loader.load(outputs["9"]["stores"][0]["filename"])[0].maps()


def test_capture_graph_rerun_with_new_seed_resets_the_store(host):
    a, ex = harness.run_graph(_graph(seed=1))
    b, _ = harness.run_graph(_graph(seed=2), executor=ex)  # capture node cached, sampler reruns
    fresh, _ = harness.run_graph(_graph(seed=2))  # a new executor: nothing cached
    maps_a, maps_b, maps_fresh = _load(host, a), _load(host, b), _load(host, fresh)
    assert not torch.allclose(maps_a, maps_b)
    assert torch.allclose(maps_b, maps_fresh, atol=1e-6)  # nothing of run 1 is left in run 2


def test_unknown_word_fails_the_graph_with_guidance(host):
    with pytest.raises(harness.GraphExecutionError) as e:
        harness.run_graph(_graph(words="circle, giraffe"))
    assert "'giraffe'" in str(e.value) and "Prompt words" in str(e.value)
