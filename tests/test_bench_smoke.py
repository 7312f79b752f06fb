"""The device bench of the MODEL-path trainer runs (at tiny size, on the CPU), so a session lent a GPU can run
bench/gpu_check.sh without finding a broken script. Figures are the bench's business, not this test's."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_model_path_training_bench_runs_and_reports_finite_losses(tmp_path):
    out = tmp_path / "train_model_path.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "train_model_path.py"), "--size", "tiny", "--steps", "2",
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["losses_finite"] and len(result["losses"]) == 2 and result["seconds_per_step"] > 0
