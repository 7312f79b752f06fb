"""Anchor-preview workflow end to end on the bundled clip, on the CPU, through a real ComfyUI.

    .venv/bin/python bench/anchor_workflow.py [--repeats 3] [--out bench/results/anchor_workflow_cpu.json]

Each repeat changes the orbit amount slightly so ComfyUI's cache cannot answer; the first run
includes first-use costs (imports, kernels), reported apart from the steady runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

import workflow_defs  # noqa: E402
from comfy_host import ComfyServer, copy_assets, host_paths, make_base_directory  # noqa: E402

from _common import machine, write_result  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "anchor_workflow_cpu.json")
    args = parser.parse_args()
    paths = host_paths()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base_directory(Path(tmp))
        copy_assets(base)
        with ComfyServer(comfy_dir=Path(paths["COMFYUI_DIR"]), base_dir=base, python=sys.executable) as server:
            for repeat in range(args.repeats + 1):
                graph = workflow_defs.anchor_preview().graph
                graph["camera"]["inputs"]["amount"] = 10.0 + 0.01 * repeat
                start = time.perf_counter()
                server.run(graph)
                times.append(time.perf_counter() - start)
    result = {"bench": "anchor_workflow", "machine": machine(),
              "clip": "assets/recapture_sample.mp4, 14 frames, 320x192",
              "first_run_s": times[0], "steady_runs_s": times[1:], "steady_median_s": statistics.median(times[1:])}
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
