"""Shared pytest fixtures.

Importing ``harness`` first configures the host (sys.path, --cpu, PyTorch attention)
before anything imports ``comfy.model_management``.

Fixtures
--------
host        (session) harness.Host: host nodes initialised, tiny test nodes and the pack
            registered; ComfyUI output/temp/input folders point at a session temp dir.
pack        (session) the repo imported as package ``attention_motion`` (skips the test,
            with the import error, if the pack's __init__ does not import).
tiny_sd15   (session) (MODEL, CLIP, VAE) tiny SD1.5-architecture model, seed 0.
tiny_sdxl   (session) (MODEL, CLIP) tiny SDXL-architecture model, seed 0.
tiny_sd2    (session) (MODEL, CLIP, VAE) tiny SD2.x-architecture model (eps: 2.0 base, 2.1-base), seed 0.
tiny_sd2v   (session) (MODEL, CLIP, VAE) the same SD2.x UNet sampled as v-prediction (2.1 768-v), seed 0.
output_dir  (session) path of ComfyUI's output folder for this session.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

harness.setup_host()
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers (pytest-xdist, a test file per worker): one thread each on
    # the two cores, instead of two processes of two threads fighting over them.
    import torch

    torch.set_num_threads(1)
# `import attention_motion...` works in test modules from here on (a stub package with the
# repo as its path if the pack's __init__ does not import; see harness.install_pack_package).
harness.install_pack_package()

# Session fixture `comfy_server`: a real ComfyUI server with the pack (tests/server_harness.py).
from server_harness import comfy_server  # noqa: E402,F401


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    return harness.init_host(output_dir=str(tmp_path_factory.mktemp("comfy")))


@pytest.fixture(scope="session")
def output_dir(host):
    return host.output_dir


@pytest.fixture(scope="session")
def pack():
    try:
        return harness.import_pack()
    except Exception as e:  # a broken pack import must not hide the pure-tensor tests
        pytest.skip("the pack does not import: {}: {}".format(type(e).__name__, e))


@pytest.fixture(scope="session")
def tiny_sd15():
    from tiny_host_nodes import get_models
    return get_models("sd15", 0)


@pytest.fixture(scope="session")
def tiny_sdxl():
    from tiny_host_nodes import get_models
    model, clip, _vae = get_models("sdxl", 0)
    return model, clip


@pytest.fixture(scope="session")
def tiny_sd2():
    from tiny_host_nodes import get_models
    return get_models("sd2", 0)


@pytest.fixture(scope="session")
def tiny_sd2v():
    from tiny_host_nodes import get_models
    return get_models("sd2v", 0)


def pytest_report_header(config):
    if harness.PACK_IMPORT_ERROR:
        return ["attention_motion: the pack FAILED to import (tests needing its nodes will fail): "
                + harness.PACK_IMPORT_ERROR]
    return ["attention_motion: pack imported; host: " + harness.setup_host()]


def pytest_terminal_summary(terminalreporter):
    if harness.PACK_IMPORT_ERROR:
        terminalreporter.write_sep("=", "the pack did not import")
        terminalreporter.write_line(harness.PACK_IMPORT_ERROR)
