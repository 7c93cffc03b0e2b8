"""The harness itself: tiny models sample, prompts matter, graphs run through the executor."""
import os

import pytest
import torch

import harness

pytestmark = pytest.mark.host


def test_tiny_sd15_samples_finite_latent(tiny_sd15):
    model, clip, _vae = tiny_sd15
    pos, neg = harness.encode(clip, "a red apple on a table"), harness.encode(clip, "")
    assert pos[0][0].shape == (1, 77, 64)
    out = harness.ksample(model, pos, neg, harness.empty_latent(256, 256, 1), seed=1, steps=8, cfg=7.0)
    assert out.shape == (1, 4, 32, 32)
    assert torch.isfinite(out).all()
    assert out.std() > 0


def test_prompt_changes_the_result(tiny_sd15):
    model, clip, _vae = tiny_sd15
    neg = harness.encode(clip, "")
    lat = harness.empty_latent(256, 256, 1)
    a = harness.ksample(model, harness.encode(clip, "a red apple"), neg, lat, seed=3, steps=6)
    b = harness.ksample(model, harness.encode(clip, "a blue car on a road"), neg, lat, seed=3, steps=6)
    assert (a - b).abs().mean() > 1e-3 * a.abs().mean()


def test_same_seed_is_deterministic(tiny_sd15):
    model, clip, _vae = tiny_sd15
    pos, neg = harness.encode(clip, "a cat"), harness.encode(clip, "")
    lat = harness.empty_latent(256, 256, 1)
    a = harness.ksample(model, pos, neg, lat, seed=5, steps=6)
    b = harness.ksample(model, pos, neg, lat, seed=5, steps=6)
    c = harness.ksample(model, pos, neg, lat, seed=6, steps=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_builds_are_deterministic():
    from tiny_host_nodes import models
    m1, _c1, _v1 = models.build_sd15(seed=11)
    m2, _c2, _v2 = models.build_sd15(seed=11)
    sd1, sd2 = m1.model.state_dict(), m2.model.state_dict()
    assert sd1.keys() == sd2.keys()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_tiny_sdxl_samples(tiny_sdxl):
    model, clip = tiny_sdxl
    pos, neg = harness.encode(clip, "a red apple"), harness.encode(clip, "")
    assert pos[0][0].shape[-1] == 128
    assert "pooled_output" in pos[0][1]
    out = harness.ksample(model, pos, neg, harness.empty_latent(256, 256, 1), seed=0, steps=6, cfg=7.0)
    assert out.shape == (1, 4, 32, 32)
    assert torch.isfinite(out).all()
    other = harness.ksample(model, harness.encode(clip, "a blue car"), neg,
                            harness.empty_latent(256, 256, 1), seed=0, steps=6, cfg=7.0)
    assert not torch.equal(out, other)


def test_tiny_sdxl_has_several_depth_indices(tiny_sdxl):
    model, _clip = tiny_sdxl
    depths = [len(m.transformer_blocks) for m in model.model.diffusion_model.modules()
              if hasattr(m, "transformer_blocks")]
    assert max(depths) >= 2


def test_host_registers_tiny_nodes(host):
    assert "TinyCheckpointLoader" in host.node_classes
    assert "KSampler" in host.node_classes


def _txt2img_graph(arch="sd15", text="a red apple", seed=0, steps=4, prefix="harness"):
    return {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": arch, "seed": 0}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


@pytest.mark.graph
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_whole_graph_writes_png(host, arch):
    outputs, executor = harness.run_graph(_txt2img_graph(arch, prefix="graph_" + arch))
    images = outputs["7"]["images"]
    assert len(images) == 1
    path = os.path.join(host.output_dir, images[0]["subfolder"], images[0]["filename"])
    assert path.endswith(".png") and os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    kinds = [e for e, _ in executor.server.events]
    assert "execution_start" in kinds and "executed" in kinds
    assert "execution_error" not in kinds


@pytest.mark.graph
def test_invalid_graph_is_reported(host):
    graph = _txt2img_graph()
    graph["5"]["inputs"]["sampler_name"] = "no_such_sampler"
    with pytest.raises(harness.GraphValidationError) as err:
        harness.run_graph(graph)
    assert "5" in err.value.node_errors


@pytest.mark.graph
def test_execution_error_is_recorded(host):
    graph = _txt2img_graph()
    graph["8"] = {"class_type": "TinyFail", "inputs": {"latent": ["5", 0], "message": "boom from test"}}
    outputs, executor = harness.run_graph(graph, raise_on_error=False)
    errors = executor.server.events_of("execution_error")
    assert errors and "boom from test" in errors[0]["exception_message"]
    with pytest.raises(harness.GraphExecutionError, match="boom from test"):
        harness.run_graph(graph)
