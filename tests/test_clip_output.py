"""Save Motion Clip: files written, readable, right frame count; whole motion graph."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import harness

pytestmark = pytest.mark.host


def _frames(n=5, h=40, w=48):
    g = torch.linspace(0, 1, w)
    imgs = torch.zeros(n, h, w, 3)
    for i in range(n):
        imgs[i, :, :, 0] = g
        imgs[i, :, (i * 7) % w, 1] = 1.0  # a moving bar, so frames differ
    return imgs


def test_saves_gif_webp_mp4_and_pngs(host):
    from attention_motion.nodes.clip_output import SaveMotionClip

    imgs = _frames()
    res = SaveMotionClip().save(imgs, "cliptest/anim", 10.0, 0, True, True, True, True, 90)
    ui = res["ui"]
    files = {os.path.splitext(e["filename"])[1]: e for e in ui["clips"]}
    assert set(files) == {".gif", ".webp", ".mp4"}
    assert len(ui["frames"]) == 5
    assert ui["animated"] == (True,) and ui["images"][0]["filename"].endswith(".webp")
    path = lambda e: os.path.join(host.output_dir, e["subfolder"], e["filename"])  # noqa: E731
    for ext in (".gif", ".webp"):
        im = Image.open(path(files[ext]))
        assert im.n_frames == 5 and im.size == (48, 40)
        assert im.info.get("loop", 0) == 0
    import imageio.v2 as imageio
    reader = imageio.get_reader(path(files[".mp4"]), format="FFMPEG")
    got = [f for f in reader]
    reader.close()
    assert len(got) == 5 and got[0].shape == (40, 48, 3)
    png = np.asarray(Image.open(path(ui["frames"][2])))
    assert np.abs(png.astype(int) - (imgs[2].numpy() * 255).round().astype(int)).max() <= 1
    # a second save does not overwrite the first
    again = SaveMotionClip().save(imgs, "cliptest/anim", 10.0, 0, True, False, False, False, 90)["ui"]
    assert again["clips"][0]["filename"] != files[".gif"]["filename"]
    assert again["images"][0]["filename"].endswith(".gif")


def test_odd_sizes_and_bad_inputs(host):
    from attention_motion.nodes.clip_output import SaveMotionClip

    res = SaveMotionClip().save(_frames(3, 33, 35), "cliptest/odd", 4.0, 2, False, False, True, False, 80)
    assert res["ui"]["clips"][0]["filename"].endswith(".mp4")
    with pytest.raises(ValueError, match="SaveMotionClip: every format is off"):
        SaveMotionClip().save(_frames(), "x", 8.0, 0, False, False, False, False, 90)
    with pytest.raises(ValueError, match="SaveMotionClip: input 'fps'"):
        SaveMotionClip().save(_frames(), "x", 0.0, 0, True, False, False, False, 90)


@pytest.mark.graph
def test_motion_graph_writes_the_clip(host):
    prompt_text = "a red apple on a wooden table"
    graph = {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"arch": "sd15", "seed": 0}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt_text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "FrameSequence", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "prompt": prompt_text, "words": "apple", "frames": 6,
            "width": 128, "height": 128, "dx": 0.3, "dy": 0.0, "keyframes": "", "interpolation": "ease-in-out",
            "schedule": "variation", "start": 0.0, "end": 0.5, "resolutions": "all", "fill": "zero",
            "self_attention": "free", "cross_frame": "anchor", "shared_noise": True, "background_lock": 0.3,
            "chunk_size": 0, "chunk_index": 0}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 1],
            "seed": 3, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveMotionClip", "inputs": {
            "images": ["6", 0], "filename_prefix": "graphclip", "fps": 8.0, "loop": 0, "gif": True,
            "webp": True, "mp4": True, "frame_pngs": True, "quality": 90}},
    }
    outputs, _ = harness.run_graph(graph)
    ui = outputs["7"]
    assert len(ui["clips"]) == 3 and len(ui["frames"]) == 6
    for e in ui["clips"] + ui["frames"]:
        assert os.path.getsize(os.path.join(host.output_dir, e["subfolder"], e["filename"])) > 0
    webp = [e for e in ui["clips"] if e["filename"].endswith(".webp")][0]
    im = Image.open(os.path.join(host.output_dir, webp["subfolder"], webp["filename"]))
    assert im.n_frames == 6 and im.size == (128, 128)


def test_an_interrupt_during_mp4_encoding_stops_the_run_as_an_interrupt(host):
    """The progress hook raises the host's interrupt inside the MP4 writer (the user pressed
    Cancel); it must reach the executor as an interrupt, not as "writing MP4 failed"."""
    import comfy.model_management as mm
    import comfy.utils

    from attention_motion.nodes.clip_output import SaveMotionClip

    calls = []

    def hook(value, total, *_rest, **_kw):
        calls.append(value)
        if len(calls) == 3:  # a few frames in
            mm.interrupt_current_processing(True)
        mm.throw_exception_if_processing_interrupted()

    old = getattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            SaveMotionClip().save(_frames(8), "cliptest/interrupted", 8.0, 0, False, False, True, False, 80)
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
        mm.interrupt_current_processing(False)
    assert len(calls) == 3
