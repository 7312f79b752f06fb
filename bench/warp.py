"""Point-cloud warp throughput: points per second, next to a per-point loop reference, in one run.

    .venv/bin/python bench/warp.py [--frames 25 --height 576 --width 1024] [--device cpu|cuda]
                                   [--out bench/results/warp_cpu.json]

The reference is the textbook splat: one Python iteration per point, each doing the
projection and a z-buffer compare, run on a subset of points and timed per point. Both sides
run on the same frames in the same process, so their ratio is meaningful on a noisy machine.
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

from recapture_core.camera.presets import preset_trajectory  # noqa: E402
from recapture_core.warp import warp_video  # noqa: E402

from _common import machine, write_result  # noqa: E402


def per_point_loop(colors: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, world_to_target: torch.Tensor,
                   count: int) -> float:
    """Seconds per point of a plain per-point splat over the first ``count`` pixels."""
    height, width = depth.shape
    zbuffer = torch.full((height, width), float("inf")).tolist()
    image = [[None] * width for _ in range(height)]
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    R = world_to_target[:3, :3].tolist()
    t = world_to_target[:3, 3].tolist()
    d = depth.reshape(-1).tolist()
    c = colors.reshape(-1, 3).tolist()
    start = time.perf_counter()
    for index in range(count):
        y, x = divmod(index, width)
        z = d[index]
        px, py = (x - cx) / fx * z, (y - cy) / fy * z
        X = R[0][0] * px + R[0][1] * py + R[0][2] * z + t[0]
        Y = R[1][0] * px + R[1][1] * py + R[1][2] * z + t[1]
        Z = R[2][0] * px + R[2][1] * py + R[2][2] * z + t[2]
        if Z <= 1e-6:
            continue
        u, v = int(round(fx * X / Z + cx)), int(round(fy * Y / Z + cy))
        if 0 <= u < width and 0 <= v < height and Z < zbuffer[v][u]:
            zbuffer[v][u] = Z
            image[v][u] = c[index]
    return (time.perf_counter() - start) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-points", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or REPO / "bench" / "results" / f"warp_{args.device}.json"

    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(args.frames, args.height, args.width, 3, generator=generator)
    # A wall with a box and some noise: realistic depth with edges, not a flat plane.
    depth = torch.full((args.frames, args.height, args.width), 4.0)
    depth[:, args.height // 4: 3 * args.height // 4, args.width // 3: 2 * args.width // 3] = 2.0
    depth += 0.01 * torch.rand(depth.shape, generator=generator)
    trajectory = preset_trajectory("orbit left", 10.0, args.frames, subject_distance=3.0)

    warp_video(frames[:1], depth[:1], trajectory.resample(1), device=args.device)  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = warp_video(frames, depth, trajectory, device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    points = args.frames * args.height * args.width
    vectorised = points / seconds

    K = trajectory.source_K(args.width, args.height)
    from recapture_core.camera.poses import invert_pose
    loop_seconds_per_point = per_point_loop(frames[-1], depth[-1], K, invert_pose(trajectory.target_to_source[-1]).float(),
                                            min(args.loop_points, args.height * args.width))
    loop = 1.0 / loop_seconds_per_point
    figures = {
        "bench": "warp",
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "machine": machine(),
        "frames": args.frames, "height": args.height, "width": args.width,
        "seconds": seconds,
        "points_per_second": vectorised,
        "per_point_loop_points_per_second": loop,
        "speedup_over_loop": vectorised / loop,
        "mean_hole_ratio": float(result.hole_ratio.mean()),
        "goal_points_per_second": 25e6,
        "note": "points = source pixels; each runs unprojection, footprint coverage tests, z-buffer and colour sampling",
    }
    write_result(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
