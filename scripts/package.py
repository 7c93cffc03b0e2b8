#!/usr/bin/env python3
"""The files of the Comfy registry package, as comfy-cli packs them (``comfy node pack`` /
``publish``): the git-tracked files, minus those matching ``.comfyignore`` (gitignore patterns),
plus every file under the ``[tool.comfy] includes`` paths (kept even when a pattern matches).

    python scripts/package.py            # list the files, then their total and archive size
    python scripts/package.py --sizes    # only the sizes

Used by ``tests/test_package.py``; needs git and ``pathspec`` (requirements-dev.txt).
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tomllib
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyproject(root: str = REPO_ROOT) -> dict:
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _ignore_spec(root: str):
    import pathspec

    path = os.path.join(root, ".comfyignore")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        patterns = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns) if patterns else None


def package_files(root: str = REPO_ROOT) -> list[str]:
    """Sorted repo-relative paths (``/``-separated) of the files the package holds."""
    tracked = subprocess.run(["git", "-C", root, "ls-files"], check=True, capture_output=True, text=True).stdout.split("\n")
    includes = [os.path.normpath(i.lstrip("/")).replace(os.sep, "/") for i in pyproject(root)["tool"]["comfy"].get("includes", [])]
    spec = _ignore_spec(root)

    def forced(rel: str) -> bool:
        return any(rel == p or rel.startswith(p + "/") for p in includes)

    def ignored(rel: str) -> bool:
        return spec is not None and not forced(rel) and spec.match_file(rel)

    files = {rel for rel in tracked if rel and not ignored(rel) and os.path.isfile(os.path.join(root, rel))}
    for inc in includes:
        full = os.path.join(root, inc)
        if os.path.isfile(full):
            files.add(inc)
        for base, _dirs, names in os.walk(full):
            for name in names:
                files.add(os.path.relpath(os.path.join(base, name), root).replace(os.sep, "/"))
    return sorted(files)


def sizes(files: list[str], root: str = REPO_ROOT) -> tuple[int, int]:
    """(bytes on disk once installed, bytes of the deflated zip the registry stores)."""
    total = sum(os.path.getsize(os.path.join(root, f)) for f in files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(os.path.join(root, f), f)
    return total, buf.tell()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", action="store_true", help="print only the sizes")
    args = ap.parse_args(argv)
    files = package_files()
    if not args.sizes:
        print("\n".join(files))
    total, packed = sizes(files)
    print(f"{len(files)} files, {total} bytes installed, {packed} bytes packed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
