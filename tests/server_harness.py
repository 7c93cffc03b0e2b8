"""Start and stop a real ComfyUI server for tests (server and browser tiers).

Public API
----------
start(host_root, custom_node_dirs, output_dir, ...) -> ComfyServer   (server is up; .url)
ComfyServer.stop()            always safe to call twice; also registered with atexit
ComfyServer.log_tail(n)       last lines of the server's log (shown when start fails)
free_port() -> int
pack_custom_node_dirs() -> {name: path}  the pack (repo root) and tests/tiny_host_nodes

Each entry of ``custom_node_dirs`` is one custom node package (a folder with ``__init__.py``);
``start`` links them under ``<work>/custom_nodes/<name>`` and passes that folder to the host
with ``--extra-model-paths-config`` (absolute paths). The repo root is linked as
``comfyui-attention-motion`` whatever the clone's folder is called.

The pytest fixture ``comfy_server`` (session scope) is defined at the bottom and exported by
``tests/conftest.py``; it starts one server with the pack and the tiny test loader, and shuts
it down at the end of the session, also when tests fail.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
PACK_LINK_NAME = "comfyui-attention-motion"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pack_custom_node_dirs() -> dict:
    """The custom node packages a test server needs: the pack and the tiny-model loader."""
    return {PACK_LINK_NAME: REPO_ROOT, "tiny_host_nodes": os.path.join(TESTS_DIR, "tiny_host_nodes")}


class ComfyServer:
    """A ComfyUI server process started by :func:`start`."""

    def __init__(self, proc, url, work_dir, output_dir, log_path):
        self.proc, self.url, self.work_dir = proc, url, work_dir
        self.output_dir, self.log_path = output_dir, log_path
        self._object_info = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def get_json(self, path: str, timeout: float = 30.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def object_info(self) -> dict:
        if self._object_info is None:
            self._object_info = self.get_json("/object_info")
        return self._object_info

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server (its own process group), then kill it if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self.proc.kill()
                self.proc.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _host_relative_custom_node_dirs(host_root: str, cwd: str) -> None:
    """Create the relative custom_nodes folders the host's own extra_model_paths.yaml names.

    Some host packagings ship an ``extra_model_paths.yaml`` with a relative ``custom_nodes``
    path that does not exist (the pinned host's package does); the host resolves it against the
    working directory (2024 hosts) or against the yaml file's folder (2025 hosts) and fails to
    start when it is missing, so an empty one is made under our own work folder, and next to
    the host when the 2025 reading of the path is missing too.
    """
    path = os.path.join(host_root, "extra_model_paths.yaml")
    if not os.path.isfile(path):
        return
    try:
        import yaml  # a host requirement
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except Exception:  # noqa: BLE001 - an unreadable file is the host's business
        return
    for conf in config.values() if isinstance(config, dict) else []:
        if not isinstance(conf, dict):
            continue
        base = conf.get("base_path")
        for entry in str(conf.get("custom_nodes") or "").split("\n"):
            entry = entry.strip()
            if not entry:
                continue
            full = os.path.join(base, entry) if base else entry
            if not os.path.isabs(full):
                os.makedirs(os.path.join(cwd, full), exist_ok=True)
                beside_host = os.path.normpath(os.path.join(host_root, full))
                if not os.path.isdir(beside_host):
                    os.makedirs(beside_host, exist_ok=True)


def start(host_root: str, custom_node_dirs, output_dir: str, *, python: str | None = None,
          port: int | None = None, extra_args=(), timeout: float = 180.0,
          work_dir: str | None = None) -> ComfyServer:
    """Start ``host_root/main.py --cpu`` on 127.0.0.1 and wait until /object_info answers.

    ``custom_node_dirs``: a dict {link name: package folder} or a list of package folders
    (linked under their base name). Raises RuntimeError with the server log's tail when the
    server exits or does not answer within ``timeout`` seconds (the process is stopped first).
    """
    host_root = os.path.abspath(host_root)
    if not os.path.isfile(os.path.join(host_root, "main.py")):
        raise RuntimeError(f"{host_root} is not a ComfyUI root (no main.py)")
    work_dir = work_dir or tempfile.mkdtemp(prefix="comfy_server_")
    nodes_dir = os.path.join(work_dir, "custom_nodes")
    os.makedirs(nodes_dir, exist_ok=True)
    if not isinstance(custom_node_dirs, dict):
        custom_node_dirs = {os.path.basename(os.path.normpath(p)): p for p in custom_node_dirs}
    for name, target in custom_node_dirs.items():
        link = os.path.join(nodes_dir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(target), link, target_is_directory=True)
    yaml_path = os.path.join(work_dir, "extra_model_paths.yaml")
    with open(yaml_path, "w") as f:
        f.write("attention_motion_tests:\n    custom_nodes: {}\n".format(json.dumps(os.path.abspath(nodes_dir))))
    cwd = os.path.join(work_dir, "cwd")
    os.makedirs(cwd, exist_ok=True)
    _host_relative_custom_node_dirs(host_root, cwd)
    output_dir = os.path.abspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    dirs = {k: os.path.join(work_dir, k) for k in ("input", "temp_root")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    port = port or free_port()
    cmd = [python or sys.executable, os.path.join(host_root, "main.py"), "--cpu", "--listen", "127.0.0.1",
           "--port", str(port), "--output-directory", output_dir, "--input-directory", dirs["input"],
           "--temp-directory", dirs["temp_root"], "--extra-model-paths-config", yaml_path,
           "--use-pytorch-cross-attention", "--disable-auto-launch", *extra_args]
    log_path = os.path.join(work_dir, "server.log")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    server = ComfyServer(proc, f"http://127.0.0.1:{port}", work_dir, output_dir, log_path)
    atexit.register(server.stop)
    deadline = time.monotonic() + timeout
    while True:
        if not server.alive():
            raise RuntimeError(f"the ComfyUI server exited with {proc.returncode} while starting:\n{server.log_tail()}")
        try:
            server.object_info()
            return server
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the ComfyUI server did not answer within {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.5)


# ----------------------------------------------------------------------------- pytest fixture
try:
    import pytest
except ImportError:  # pragma: no cover - usable without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def comfy_server(tmp_path_factory):
        """A running ComfyUI server with the pack and the tiny loader; stopped after the session.

        Skips when the pack's nodes did not load in the server (an import error elsewhere);
        ``.url``, ``.output_dir``, ``.object_info()``, ``.log_tail()``.
        """
        import harness
        root = harness.setup_host()
        base = tmp_path_factory.mktemp("server")
        server = start(root, pack_custom_node_dirs(), str(base / "output"), work_dir=str(base))
        try:
            info = server.object_info()
            if "TinyCheckpointLoader" not in info:
                raise RuntimeError("the server did not load tests/tiny_host_nodes:\n" + server.log_tail())
            if "AttentionCapture" not in info:
                pytest.skip("the pack did not load in the server:\n" + server.log_tail())
            yield server
        finally:
            server.stop()
