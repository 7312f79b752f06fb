"""ReCapture farm: re-shoot a shot list (clips x camera paths) across many ComfyUI servers on Ray.

Optional (``pip install ".[farm]"`` brings Ray); the node pack never imports it. Each Ray actor owns a
headless ComfyUI server with this pack and talks to it over ComfyUI's HTTP API. Per clip the spatial LoRA is
trained once; per camera path the anchor, temporal LoRA, sampling and SDEdit run as one task.

    python -m recapture_farm run shots.toml [--address ray://head:10001] [--workers N]

    import recapture_farm
    manifest = recapture_farm.run("shots.toml")   # the manifest of the output folder
"""
from __future__ import annotations

from .shotlist import Job, ShotListError, load_job

__all__ = ["FarmError", "Job", "ShotListError", "WorkerSpec", "load_job", "run"]


def __getattr__(name):
    # The driver's names load on first use, so reading a shot list needs neither Ray nor the workflow definitions.
    if name in ("run", "FarmError", "WorkerSpec", "default_worker_spec"):
        from . import driver

        return getattr(driver, name)
    raise AttributeError(name)
