"""Test-session fixtures: the real ComfyUI host, a real server, and the pack loaded in-process.

Path order matters: ComfyUI's own top-level modules (``nodes``, ``utils``, ``comfy``) must win
over this repo's ``nodes/`` package, so the ComfyUI tree goes first and the repo root last.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import comfy_host  # noqa: E402  (needs the path above)

try:
    HOST = comfy_host.host_paths()
except comfy_host.HostNotSetUp as err:  # a clear stop, not a cascade of import errors
    raise pytest.UsageError(str(err)) from err

COMFYUI_DIR = Path(HOST["COMFYUI_DIR"])
sys.path.insert(1, str(COMFYUI_DIR))
sys.path.append(str(REPO))

# In-process node tests import comfy.model_management, which probes for a GPU at import time;
# behave like `main.py --cpu`, as the test server does.
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True

PACK_MODULE_NAME = "recapture_pack_under_test"


@pytest.fixture(scope="session")
def comfyui_dir() -> Path:
    return COMFYUI_DIR


@pytest.fixture(scope="session")
def pack():
    """The pack imported in-process the way ComfyUI imports a custom node folder."""
    return comfy_host.import_pack(PACK_MODULE_NAME)


@pytest.fixture(scope="session")
def backbone_module(pack):
    """The pack's ComfyUI-MODEL training backbone module (nodes/_comfy_backbone.py), as ComfyUI imports it."""
    import importlib

    return importlib.import_module(f"{pack.__name__}.nodes._comfy_backbone")


@pytest.fixture(scope="session")
def clip_vision(tmp_path_factory):
    """ComfyUI's own CLIP_VISION built from a tiny config (tests/tiny_comfy_models.py), for in-process SVD conditioning."""
    from tiny_comfy_models import load_clip_vision, make_clip_vision

    folder = tmp_path_factory.mktemp("clip_vision")
    make_clip_vision(folder)
    return load_clip_vision(folder)


@pytest.fixture(scope="session")
def server_base_dir(tmp_path_factory) -> Path:
    """A fresh ComfyUI base directory for the test session: custom_nodes/recapture -> this repo,
    with tiny random-weight models in its model folders (tests/tiny_models.py) and the test-only
    nodes of tests/comfy_support (a loader for the tiny CLIP vision ComfyUI's own loader cannot build)."""
    from tiny_models import populate_models

    base = comfy_host.make_base_directory(tmp_path_factory.mktemp("comfy_base"))
    populate_models(base / "models")
    (base / "custom_nodes" / "recapture_test_nodes").symlink_to(REPO / "tests" / "comfy_support" / "recapture_test_nodes",
                                                                target_is_directory=True)
    comfy_host.copy_assets(base)
    return base


@pytest.fixture(scope="session")
def comfy_server(server_base_dir):
    """One real ComfyUI server for the whole session (CPU, 127.0.0.1, a free port)."""
    server = comfy_host.ComfyServer(comfy_dir=COMFYUI_DIR, base_dir=server_base_dir, python=sys.executable)
    server.start(timeout_s=float(os.environ.get("RECAPTURE_SERVER_TIMEOUT", "180")))
    try:
        yield server
    finally:
        server.stop()
        # Keep the log where a failing CI run shows it.
        log_copy = REPO / ".host" / "last-test-server.log"
        log_copy.parent.mkdir(exist_ok=True)
        log_copy.write_text(server.log_text())


# --- tests/fullsize: which full-size runs a test run makes ---------------------------------------------------
# ``RECAPTURE_FULLSIZE`` is a comma list of servers (svd_xt,
# svd_xt_diffusers, wan, depth), ``all``, or ``none``; unset, ``depth`` (Depth Anything V2 Small: 100 MB, about a
# minute). CI (.ci/run) sets ``all``; locally the backbones are opt-in: their files take 12 GB of disk (a few
# minutes to make, the first time) and together they run about 20 minutes on 2 CPU cores, more than the rest.
#: The servers of tests/fullsize/test_fullsize_models.py, by test name.
FULLSIZE_SERVERS = {"svd_xt_single_file": "svd_xt", "svd_xt_diffusers": "svd_xt_diffusers", "wan21": "wan",
           "depth_anything": "depth"}


def selected_fullsize_servers() -> set[str]:
    wanted = {part.strip() for part in os.environ.get("RECAPTURE_FULLSIZE", "depth").split(",") if part.strip()}
    return set(FULLSIZE_SERVERS.values()) if wanted & {"1", "all"} else wanted


def pytest_collection_modifyitems(config, items):
    chosen = selected_fullsize_servers()
    for item in items:
        if "fullsize" not in item.keywords:
            continue
        server = next((name for fragment, name in FULLSIZE_SERVERS.items() if fragment in item.name), None)
        if server not in chosen:
            item.add_marker(pytest.mark.skip(reason=f"full size ({server}): set RECAPTURE_FULLSIZE={server} (or all) to run it"))
