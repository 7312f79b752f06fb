"""Which full-size runs a test run makes: ``RECAPTURE_FULLSIZE`` is a comma list of servers (svd_xt,
svd_xt_diffusers, wan, depth), ``all``, or ``none``; unset, ``depth`` (Depth Anything V2 Small: 100 MB, about a
minute). The backbones are opt-in: making their files takes about 15 minutes and 12 GB of disk the first time,
and one backbone's run takes 5-20 minutes on 2 CPU cores, more than the whole rest of the suite."""
from __future__ import annotations

import os

import pytest

#: The servers of tests/fullsize/test_fullsize_models.py, by test name.
SERVERS = {"svd_xt_single_file": "svd_xt", "svd_xt_diffusers": "svd_xt_diffusers", "wan21": "wan",
           "depth_anything": "depth"}


def selected() -> set[str]:
    wanted = {part.strip() for part in os.environ.get("RECAPTURE_FULLSIZE", "depth").split(",") if part.strip()}
    return set(SERVERS.values()) if wanted & {"1", "all"} else wanted


def pytest_collection_modifyitems(config, items):
    chosen = selected()
    for item in items:
        if "fullsize" not in item.keywords:
            continue
        server = next((name for fragment, name in SERVERS.items() if fragment in item.name), None)
        if server not in chosen:
            item.add_marker(pytest.mark.skip(reason=f"full size ({server}): set RECAPTURE_FULLSIZE={server} (or all) to run it"))
