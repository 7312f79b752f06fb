"""Peak memory of the anchor stage against clip length (PointCloudWarp's core, anchor_from_depth).

Each clip length runs in a fresh process, so one run's peak (``ru_maxrss``) is its own. Inputs
(frames and depth) are made before the baseline is taken, so the figure is what the warp adds:
its outputs (anchor 12 B/px, valid and hole masks 4 + 4, target depth 4 = 24 bytes per video pixel,
held by ComfyUI afterwards anyway) plus its working set. The goal: growth per extra frame no larger
than the outputs themselves, i.e. the working set does not grow with the clip.

    .venv/bin/python bench/warp_memory.py [--frames 8 32 97] [--height 512] [--width 768]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from _common import machine, write_result  # noqa: E402

OUTPUT_BYTES_PER_PIXEL = 12 + 4 + 4 + 4

CHILD = """
import json, resource, sys, time, torch
sys.path.insert(0, {repo!r})
from recapture_core.camera.presets import preset_trajectory
from recapture_core.depth import DepthMaps
from recapture_core.warp import anchor_from_depth
frames_count, height, width = {frames}, {height}, {width}
generator = torch.Generator().manual_seed(0)
frames = torch.rand(frames_count, height, width, 3, generator=generator)
depth = DepthMaps(3.0 + 5.0 * torch.linspace(1, 0, height)[:, None].expand(frames_count, height, width)
                  + 0.05 * torch.rand(frames_count, height, width, generator=generator), "metric")
trajectory = preset_trajectory("orbit left", 5.0, frames_count, subject_distance=4.0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = anchor_from_depth(frames, depth, trajectory)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"added_bytes": (peak - base) * 1024, "seconds": seconds}}))
"""


def run(frames: int, height: int, width: int) -> dict:
    code = CHILD.format(repo=str(REPO), frames=frames, height=height, width=width)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    pixels = frames * height * width
    return {"frames": frames, "added_bytes_per_video_pixel": measured["added_bytes"] / pixels,
            "seconds": measured["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32, 97])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "warp_memory_cpu.json")
    args = parser.parse_args()
    runs = [run(f, args.height, args.width) for f in args.frames]
    first, last = runs[0], runs[-1]
    frame_pixels = args.height * args.width
    added = [r["added_bytes_per_video_pixel"] * r["frames"] * frame_pixels for r in (first, last)]
    growth = (added[1] - added[0]) / ((last["frames"] - first["frames"]) * frame_pixels)
    write_result({
        "bench": "warp_memory", "machine": machine(), "height": args.height, "width": args.width, "runs": runs,
        "growth_bytes_per_extra_video_pixel": growth, "outputs_bytes_per_video_pixel": OUTPUT_BYTES_PER_PIXEL,
        "goal": "growth per extra video pixel <= the outputs' own bytes (the working set is one frame's)",
        "goal_met": growth <= OUTPUT_BYTES_PER_PIXEL * 1.1,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
