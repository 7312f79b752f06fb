"""The Ray farm on this machine: the same 2-clip x 2-path shot list on 1 worker and on 2 workers, side by side.

    .venv/bin/python bench/farm.py            # tiny models on the CPU (the tests' shot list): bench/results/farm_cpu.json

Each run starts a local Ray (2 CPUs), its workers (each a real ComfyUI server with the pack, one torch
thread) and renders every shot from nothing. Figures per worker count: wall time (Ray start excluded,
workers' start included), the workers' start, per-task time on the worker, the driver's overhead per task
(from submitting a task to holding its result, minus the worker's own time: uploads, the object store,
gathering outputs, scheduling), and the bytes sent through Ray's object store. The tiny models make the tasks
short, so the overhead is a large share here; on GPUs a task is minutes and the same overhead is noise.
GPU-cluster figures are projections from per-task times, not measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for sub in ("bench", "scripts", "tests"):
    sys.path.insert(0, str(REPO / sub))
sys.path.append(str(REPO))

from _common import machine, write_result  # noqa: E402


def render(workers: int, shot_list: Path, models: Path, scratch: Path) -> dict:
    import ray

    from recapture_farm import load_job, run
    from test_farm import SERVER_ENV, on_tiny_models, worker_spec

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'scripts'}"}})
    try:
        job = load_job(shot_list)
        spec = worker_spec(scratch, models)
        assert spec.env == SERVER_ENV
        started = time.perf_counter()
        manifest = run(job, workers=workers, worker_spec=spec, prepare_graph=on_tiny_models, progress=False)
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
    stats = manifest.data["runs"][-1]["stats"]
    task_s, round_trip = stats["task_s"], stats["round_trip_s"]
    overhead = [round_trip[label] - task_s[label] for label in round_trip]
    return {"wall_s": round(wall, 2), "workers_ready_s": stats["workers_ready_s"],
            "render_s": round(wall - stats["workers_ready_s"], 2), "tasks": len(task_s),
            "task_s_mean": round(statistics.mean(task_s.values()), 3),
            "task_s": task_s, "overhead_per_task_s_mean": round(statistics.mean(overhead), 3),
            "overhead_per_task_s_max": round(max(overhead), 3), "object_store_bytes": stats["object_store_bytes"],
            "workers_used": sorted({shot["worker"] for shot in manifest.data["shots"].values()})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "farm_cpu.json")
    args = parser.parse_args()
    from test_farm import SHOTS
    from workflow_defs import SAMPLE_DEPTH, SAMPLE_VIDEO

    import comfy_host

    sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])  # the tiny models are built with ComfyUI's classes
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    from tiny_models import populate_models

    with tempfile.TemporaryDirectory(prefix="farm-bench-") as folder:
        folder = Path(folder)
        populate_models(folder / "models")
        for name in (SAMPLE_VIDEO, SAMPLE_DEPTH):
            (folder / name).write_bytes((REPO / "assets" / name).read_bytes())
        results = {}
        for workers in (1, 2):
            shot_list = folder / f"shots-{workers}.toml"
            shot_list.write_text(SHOTS.replace('output = "out"', f'output = "out-{workers}"'))
            results[str(workers)] = render(workers, shot_list, folder / "models", folder / f"scratch-{workers}")
            print(f"{workers} worker(s): {json.dumps({k: v for k, v in results[str(workers)].items() if k != 'task_s'})}")
    one, two = results["1"]["wall_s"], results["2"]["wall_s"]
    write_result({"bench": "farm", "machine": machine(), "load_average": os.getloadavg()[0],
                  "shot_list": "2 clips x 2 camera paths (tests/test_farm.py), tiny SVD, 1 sampling step, "
                               "12 training steps, 32x32, one torch thread per server",
                  "workers": results, "speedup_2_over_1": round(one / two, 2),
                  "note": "CPU, tiny models: the tasks are seconds long, so start-up and overhead weigh heavily; "
                          "GPU-cluster figures are projections from per-task times (README)"}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
