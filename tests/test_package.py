"""The Comfy registry package: ``pyproject.toml`` against the registry's documented rules
(the pyproject specification of the Comfy registry, and what comfy-cli's ``comfy node validate``
checks: a version, a license table, ruff's S102/S307/E702 on the code), the package's file list
as comfy-cli packs it (``scripts/package.py``), and the install size the README states."""
from __future__ import annotations

import ast
import os
import re
import struct
import subprocess
import sys

import pytest

from harness import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import package  # noqa: E402

SHIPPED_MODEL = {"models/shapes/clip.safetensors", "models/shapes/unet.safetensors", "models/shapes/vae.safetensors"}
NOT_SHIPPED_DIRS = ("tests/", ".ci/", "docs/", "hosts/")
NOT_SHIPPED = {"Makefile", "requirements-dev.txt", "shapes/train.py", "shapes/data.py", "shapes/vae.py", "shapes/probes.py",
               "shapes/quality.py", "shapes/hostenv.py", "scripts/bootstrap.py", "scripts/bench.py", "scripts/demo.py",
               "scripts/build_workflows.py", "scripts/help_pages.py", "scripts/package.py", "scripts/workflow_specs.py"}
SIZE_TOLERANCE = 0.03  # the README's figure may lag small edits (the README itself is shipped)


@pytest.fixture(scope="module")
def files():
    try:
        return package.package_files()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"cannot list the git-tracked files (the package is built from them): {e}")


def _image_size(path: str) -> tuple[str, int, int]:
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("png", *struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ("gif", *struct.unpack("<HH", head[6:10]))
    raise AssertionError(f"{path}: not a PNG or GIF")


def test_pyproject_follows_the_registry_rules():
    conf = package.pyproject()
    project, comfy = conf["project"], conf["tool"]["comfy"]
    name = project["name"]
    # name: < 100 characters; letters, digits, - _ . only; no two special characters in a row;
    # starts with a letter (not a digit or special character)
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name), name
    assert not re.search(r"[-_.]{2}", name) and not re.search(r"[-_.]$", name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), "version: semantic X.Y.Z"
    lic = project["license"]
    assert isinstance(lic, dict) and (lic.get("text") or os.path.isfile(os.path.join(REPO_ROOT, lic.get("file", "")))), lic
    assert project["description"].strip()
    repo = project["urls"]["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo), repo
    assert set(project["urls"]) <= {"Homepage", "Documentation", "Repository", "Issues"}, project["urls"]
    # the dependencies the registry installs are the pack's requirements.txt
    with open(os.path.join(REPO_ROOT, "requirements.txt")) as f:
        reqs = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
    assert project["dependencies"] == reqs
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,98}", comfy["PublisherId"]), comfy["PublisherId"]
    assert comfy["DisplayName"].strip()
    # Icon: a URL of a square image of at most 400 x 400 pixels (SVG, PNG, JPG or GIF); ours is a
    # file of this repository, so check the file
    icon = comfy["Icon"]
    raw = repo.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert icon.startswith(raw), f"Icon {icon} is not a file of {repo}"
    kind, w, h = _image_size(os.path.join(REPO_ROOT, icon[len(raw):]))
    assert w == h and w <= 400, (kind, w, h)
    assert isinstance(comfy["includes"], list) and all(os.path.exists(os.path.join(REPO_ROOT, p)) for p in comfy["includes"])


def test_package_holds_the_nodes_help_and_shapes_model_but_no_tests_ci_docs_or_training(files):
    shipped = set(files)
    assert SHIPPED_MODEL <= shipped, "the bundled shapes model must ship"
    assert {"__init__.py", "README.md", "LICENSE", "pyproject.toml", "requirements.txt", "shapes/model.py",
            "scripts/run_workflow.py", "js/docs/TokenShift.md", "js/attention_motion.js"} <= shipped
    for folder in ("nodes", "core", "controllers", "host", "js"):
        tracked = {f for f in subprocess.run(["git", "-C", REPO_ROOT, "ls-files", folder], capture_output=True,
                                              text=True, check=True).stdout.split("\n") if f}
        assert tracked and tracked <= shipped, f"{folder}/ files left out: {sorted(tracked - shipped)}"
    assert not [f for f in files if f.startswith(NOT_SHIPPED_DIRS)], "tests, CI, docs screenshots or host lists shipped"
    assert not (shipped & NOT_SHIPPED), sorted(shipped & NOT_SHIPPED)
    assert len(files) < 150, len(files)


def test_every_relative_import_of_the_package_is_in_the_package(files):
    """What ships imports only what ships (a .comfyignore pattern cannot cut a module in use)."""
    shipped = set(files)
    missing = []
    for rel in files:
        if not rel.endswith(".py"):
            continue
        with open(os.path.join(REPO_ROOT, rel), encoding="utf-8") as f:
            tree = ast.parse(f.read(), rel)
        here = rel.split("/")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if node.module else [parts + [a.name] for a in node.names]
                for p in names:
                    path = "/".join(p)
                    if path + ".py" not in shipped and path + "/__init__.py" not in shipped and \
                            os.path.exists(os.path.join(REPO_ROOT, path + ".py")):
                        missing.append(f"{rel}: {path}")
            elif isinstance(node, ast.Import) and rel.startswith("scripts/"):
                for a in node.names:  # the runner imports its sibling modules from scripts/
                    sibling = f"scripts/{a.name}.py"
                    if os.path.exists(os.path.join(REPO_ROOT, sibling)) and sibling not in shipped:
                        missing.append(f"{rel}: {sibling}")
    assert missing == [], missing


def test_shipped_code_passes_the_registry_validators_security_rules(files):
    """comfy-cli's validate runs ruff with S102 (exec), S307 (eval) and E702 (several statements
    on one line), which the registry will turn into errors."""
    code = [os.path.join(REPO_ROOT, f) for f in files if f.endswith(".py")]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "S102,S307,E702",
                           *code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_states_the_install_size(files):
    total, packed = package.sizes(files)
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    m = re.search(r"Install size: ([\d.]+) MB on disk, ([\d.]+) MB packed \((\d+) files\)", readme)
    assert m, "README: no 'Install size: X MB on disk, Y MB packed (N files)'"
    assert abs(float(m.group(1)) * 1e6 - total) <= SIZE_TOLERANCE * total, (m.group(0), total)
    assert abs(float(m.group(2)) * 1e6 - packed) <= SIZE_TOLERANCE * packed, (m.group(0), packed)
    assert abs(int(m.group(3)) - len(files)) <= 5, (m.group(0), len(files))
