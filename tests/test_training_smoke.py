"""The README's training recipe, in miniature: every ``python -m shapes.train`` command of the
README's training block runs as written, in a temporary work folder, with tiny settings appended
(argparse keeps the last value: 2 steps, batch 2, a few scenes, a checkpoint every step), then the
export, which writes to a temporary folder; the exported model must load and sample.

The commands are read from README.md, so a recipe that stops working, or a README that drifts
from ``shapes/train.py``'s options, fails here. The bundled ``models/shapes`` is never written
(``--out`` is always given, and the bundled files are compared before and after).
"""
import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import pytest
import torch

import harness

pytestmark = pytest.mark.training

README = os.path.join(harness.REPO_ROOT, "README.md")
BUNDLED = os.path.join(harness.REPO_ROOT, "models", "shapes")
TRAIN = "shapes.train"
# Appended to every training command; the README's own values come first and are overridden.
# One thread each: the decoder runs beside the UNet phases, and the batches are tiny.
TINY = ["--steps", "2", "--batch", "2", "--scenes", "8", "--whiten-scenes", "32", "--save-every", "1",
        "--threads", "1"]
TIMEOUT = 600


def readme_commands():
    """The README's ``python -m shapes.train`` lines as argument lists (after the module name),
    ``$W`` left in place, comments dropped."""
    cmds = []
    with open(README, encoding="utf-8") as f:
        for line in f:
            if line.strip().startswith("python -m " + TRAIN + " "):
                cmds.append(shlex.split(line, comments=True)[3:])
    return cmds


def _digest(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _arg(args, flag):
    """The value argparse takes for ``flag`` (its last occurrence)."""
    return args[len(args) - args[::-1].index(flag)]


def _start(args, env, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", TRAIN] + args, cwd=harness.REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log, proc.args, proc.t0 = log, args, time.time()
    return proc


def _finish(proc):
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "timeout"
    proc.log.close()
    if rc != 0:
        with open(proc.log.name) as f:
            tail = f.read()[-4000:]
        pytest.fail("python -m {} {} -> {}\n{}".format(TRAIN, " ".join(proc.args), rc, tail))
    print("{:5.1f} s  {}".format(time.time() - proc.t0, " ".join(proc.args[:3])))  # to when it was waited for


def test_readme_training_commands_run_and_export(host, tmp_path):
    cmds = readme_commands()
    phases = [c[0] for c in cmds]
    assert "decoder" in phases and "unet" in phases and phases[-1] == "export", phases
    work, out = str(tmp_path / "w"), str(tmp_path / "out")
    env = dict(os.environ, COMFYUI_PATH=harness.setup_host())  # this test's host, for the children
    before = _digest(BUNDLED)
    t0 = time.time()

    def resolve(c):
        return [a.replace("$W", work) for a in c] + ["--out", out]

    # the decoder is independent of the UNet phases (README: they can run at the same time); its
    # phases run one after another (a later one may start from an earlier one's weights)
    decoder_cmds = [(i, c) for i, c in enumerate(cmds) if c[0] == "decoder"]
    errors = []

    def decoders():
        try:
            for i, c in decoder_cmds:
                _finish(_start(resolve(c) + TINY, env, str(tmp_path / "decoder{}.log".format(i))))
        except BaseException as e:  # pytest.fail raises an exception outside Exception
            errors.append(e)

    thread = threading.Thread(target=decoders)
    thread.start()
    try:
        for i, c in enumerate(cmds):
            if c[0] == "unet":
                _finish(_start(resolve(c) + TINY, env, str(tmp_path / "unet{}.log".format(i))))
    finally:
        thread.join(timeout=TIMEOUT * len(decoder_cmds))
    if errors:
        raise errors[0]
    export = resolve(cmds[-1])
    export_work = _arg(export, "--work")
    _finish(_start(export, env, str(tmp_path / "export.log")))
    seconds = time.time() - t0

    assert _digest(BUNDLED) == before, "the bundled model was changed"
    for c in cmds[:-1]:  # every phase checkpointed its last step
        state = "unet_state.json" if c[0] == "unet" else "decoder_state.json"
        with open(os.path.join(_arg(resolve(c), "--work"), state)) as f:
            assert json.load(f)["step"] == 2, (c, state)
    assert sorted(os.listdir(out)) == ["clip.safetensors", "training.json", "unet.safetensors", "vae.safetensors"]
    with open(os.path.join(out, "training.json")) as f:
        meta = json.load(f)
    assert meta["unet_state"]["step"] == 2 and meta["unet_state"]["args"]["work"] == export_work, meta
    # every phase is recorded, first to last, following --init back
    unet_works = [_arg(resolve(c), "--work") for c in cmds if c[0] == "unet"]
    assert [p["args"]["work"] for p in meta["unet_phases"]] == unet_works, meta["unet_phases"]
    decoder_works = [_arg(resolve(c), "--work") for c in cmds if c[0] == "decoder"]
    assert [p["args"]["work"] for p in meta["decoder_phases"]] == decoder_works, meta["decoder_phases"]

    from attention_motion.shapes import model as shapes_model
    model, clip, vae = shapes_model.build(out)  # strict UNet load: the exported layout is the loader's
    size = 64
    lat = harness.ksample(model, harness.encode(clip, "a red circle"), harness.encode(clip, ""),
                          harness.empty_latent(size, size, 1), seed=0, steps=2)
    assert lat.shape == (1, 4, size // 8, size // 8)
    with torch.inference_mode():
        img = vae.decode(lat)
    assert img.shape[-3:] == (size, size, 3) and bool(torch.isfinite(img).all())
    print("training smoke: {} commands in {:.1f} s".format(len(cmds), seconds))


def _run(args, env, log_path):
    proc = _start(args, env, log_path)
    _finish(proc)
    with open(log_path) as f:
        return f.read()


@pytest.mark.parametrize("what", ["unet", "decoder"])
def test_a_stopped_phase_resumes_to_the_same_weights(host, tmp_path, what):
    env = dict(os.environ, COMFYUI_PATH=harness.setup_host())
    tiny = ["--batch", "2", "--scenes", "8", "--whiten-scenes", "32", "--threads", "1", "--warmup", "2"]
    if what == "unet":
        tiny += ["--channels", "32", "--force", "0.5"]
    weights = "unet_ema.safetensors" if what == "unet" else "decoder.safetensors"
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    _run([what, "--work", whole, "--steps", "4", "--save-every", "2"] + tiny, env, str(tmp_path / "whole.log"))
    first = _run([what, "--work", split, "--steps", "4", "--save-every", "1", "--stop-at", "3"] + tiny, env,
                 str(tmp_path / "split1.log"))
    assert "stopped at step 3 of 4" in first
    with open(os.path.join(split, what + "_state.json")) as f:
        assert json.load(f)["step"] == 3
    second = _run([what, "--work", split, "--steps", "4", "--save-every", "2"] + tiny, env,
                  str(tmp_path / "split2.log"))
    # it went on from step 4: a fresh run would have saved step 2 again
    assert "resumed after step 3" in second and "saved step 4" in second and "saved step 2" not in second
    with open(os.path.join(whole, weights), "rb") as a, open(os.path.join(split, weights), "rb") as b:
        assert a.read() == b.read(), "the resumed phase's weights differ from the uninterrupted one's"
    if what == "decoder":
        return
    # another phase's settings in the same folder are refused, naming the setting
    proc = subprocess.run([sys.executable, "-m", TRAIN, what, "--work", split, "--steps", "4", "--lr", "0.5"] + tiny,
                          cwd=harness.REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode != 0 and "checkpoint of other settings (lr)" in proc.stderr, proc.stderr[-2000:]


def test_a_checkpoint_from_before_an_option_existed_resumes(tmp_path):
    import argparse
    from attention_motion.shapes import train
    old = argparse.Namespace(what="unet", work=str(tmp_path), steps=4, lr=1e-3, threads=1)
    train.save_checkpoint(old, {"step": 2})
    new = argparse.Namespace(**vars(old), decoder=None, stop_at=3)  # an option added since, at its default
    assert train.load_checkpoint(new)["step"] == 2
    other = argparse.Namespace(**vars(old), decoder="d.safetensors")
    with pytest.raises(SystemExit, match=r"other settings \(decoder\)"):
        train.load_checkpoint(other)
