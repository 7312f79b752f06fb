"""The device benches run (at tiny size, on the CPU), so a session lent a GPU can run bench/gpu_check.sh without
finding a broken script. Figures are the bench's business, not this test's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_bench(tmp_path: Path, script: str, *args: str) -> dict:
    """Run ``bench/<script>`` with ``args`` and an ``--out`` in ``tmp_path``; its JSON result."""
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_model_path_training_bench_runs_and_reports_finite_losses(tmp_path):
    result = run_bench(tmp_path, "train_model_path.py", "--size", "tiny", "--steps", "2", "--device", "cpu")
    assert result["losses_finite"] and len(result["losses"]) == 2 and result["seconds_per_step"] > 0


def test_the_warp_bench_runs_side_by_side_with_both_references(tmp_path):
    result = run_bench(tmp_path, "warp.py", "--frames", "2", "--height", "40", "--width", "56")
    assert len(result["cases"]) == 20  # five moves of the ground in float, 16 and 8 bits, and of the wall
    assert all(c["ratio_warp_over_reference"] > 0 and c["ratio_warp_over_banded_reference"] > 0 for c in result["cases"])
    assert set(result["goals"]) == {"ratio_at_most_2", "no_cracks_with_8bit_depth", "gpu_1G_points_per_second"}


def test_the_route_latency_bench_times_object_info_idle_and_while_heavy_requests_run(tmp_path):
    result = run_bench(tmp_path, "route_latency.py", "--frames", "8", "--heavy", "3", "--samples", "2")
    assert [heavy["status"] for heavy in result["heavy"]] == [200, 200, 200]
    assert result["object_info_idle"]["samples"] == 2 and result["object_info_during_heavy"]["samples"] >= 1
    assert result["during_over_idle_median"] > 0 and isinstance(result["goal_met"], bool)


def test_the_long_clip_bench_runs_both_families_and_the_gpu_case_at_tiny_size(tmp_path):
    result = run_bench(tmp_path, "long_clip.py", "--quick")
    assert {(p["family"], p["mode"]) for p in result["points"]} == {("svd", "train"), ("wan", "sample")}
    assert result["finite"] and all(p["seconds"] > 0 and p["peak_growth_mb"] >= 0 for p in result["points"])
    large = result["large_case_tiny"]  # the code of the --device cuda case, on the tiny Wan
    assert large["latent_frames"] > large["window_frames"] // 4 + 1 and len(large["train_losses"]) == 2
