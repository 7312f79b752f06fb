"""The anchor preview route's work: one frame at 256 px from a 576x1024 clip, next to warping that frame at full size.

    .venv/bin/python bench/anchor_preview.py [--frames 14] [--out bench/results/anchor_preview_cpu.json]

Realistic depth (the tilted ground with boxes of bench/warp.py), orbit 10 degrees; both measured in
this run; the ratio is what the preview saves over the full frame.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from _common import machine, write_result  # noqa: E402
from warp import ground_scene  # noqa: E402

from recapture_core.camera.presets import preset_trajectory  # noqa: E402
from recapture_core.warp import preview_frame  # noqa: E402


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "anchor_preview_cpu.json")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(args.frames, 576, 1024, 3, generator=generator)
    depth = ground_scene(args.frames, 576, 1024, generator)
    path = preset_trajectory("orbit left", 10.0, args.frames)
    frame = args.frames // 2
    preview = best_of(lambda: preview_frame(frames, depth, path, frame, 256))
    full = best_of(lambda: preview_frame(frames, depth, path, frame, 1024))
    print(f"preview at 256 px: {preview * 1000:.0f} ms; the same frame at 576x1024: {full * 1000:.0f} ms ({full / preview:.1f}x)")
    write_result({"bench": "anchor_preview", "machine": machine(), "clip": f"{args.frames}x576x1024",
                  "seconds_preview_256px": preview, "seconds_full_frame": full, "full_over_preview": full / preview,
                  "goal": "well under a second on the CPU at 256 px", "goal_met": preview < 0.5}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
