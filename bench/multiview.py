"""When the point cloud stops being enough, and what MultiviewAnchor costs next to PointCloudWarp.

    .venv/bin/python bench/multiview.py [--out bench/results/multiview_cpu.json]

1. Coverage: the bundled sample clip (exact depth) warped along "orbit left" of growing angles;
   mean and worst hole ratio, and how many frames "switch by hole ratio" (threshold 0.35) would
   hand to the multiview model. This is what the threshold default is chosen from.
2. Cost, side by side in one process on the CPU: PointCloudWarp alone, then MultiviewAnchor in
   "fuse with warp" mode on the same frames with the tests' tiny Stable Zero123 (ComfyUI's own
   model class through its checkpoint loader, random weights: seconds only, never images).
   Real Stable Zero123 is ~1 B parameters; the ratio here only shows the node's own overhead
   (conditioning, VAE, fusion) is small next to sampling.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.append(str(REPO))  # last: ComfyUI's own top-level modules (nodes, utils) must win over this repo's

from _common import machine, write_result  # noqa: E402

ANGLES = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0)
THRESHOLD = 0.35


def coverage(frames, depth) -> list[dict]:
    from recapture_core.camera.presets import preset_trajectory
    from recapture_core.depth import DepthMaps, central_median_depth
    from recapture_core.multiview import generator_frames
    from recapture_core.warp import warp_video

    subject = central_median_depth(DepthMaps(depth, "metric"))
    rows = []
    for angle in ANGLES:
        trajectory = preset_trajectory("orbit left", angle, frames.shape[0], "linear", subject_distance=subject)
        ratios = warp_video(frames, depth, trajectory).hole_ratio
        rows.append({"orbit_left_deg": angle, "mean_hole_ratio": float(ratios.mean()), "max_hole_ratio": float(ratios.max()),
                     "frames_switched_to_generator": int(generator_frames(ratios, "switch by hole ratio", THRESHOLD).sum())})
        print(f"orbit left {angle:5.1f} deg: holes {rows[-1]['mean_hole_ratio']:.1%} mean, "
              f"{rows[-1]['max_hole_ratio']:.1%} max, {rows[-1]['frames_switched_to_generator']} frames to the generator")
    return rows


def load_pack():
    """ComfyUI on the path (before this repo: its ``nodes`` module must win) and the pack imported
    the way ComfyUI imports a custom node folder."""
    import comfy_host

    sys.path.insert(0, comfy_host.host_paths()["COMFYUI_DIR"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    return comfy_host.import_pack("recapture_pack")


def timed(call, repeats: int = 2) -> float:
    call()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def cost(frames, depth, steps: int) -> dict:
    pack = load_pack()
    import comfy.sd
    from tiny_comfy_models import load_clip_vision, make_clip_vision, make_stable_zero123_checkpoint

    core = pack.recapture_core
    depth_maps = core.depth.DepthMaps(depth, "metric")
    trajectory = core.camera.presets.preset_trajectory("orbit left", 45.0, frames.shape[0], "linear", subject_distance=3.0)
    warp = pack.NODE_CLASS_MAPPINGS["ReCapturePointCloudWarp"]()
    multiview = pack.NODE_CLASS_MAPPINGS["ReCaptureMultiviewAnchor"]()
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        checkpoint = make_stable_zero123_checkpoint(Path(folder) / "tiny_stable_zero123.safetensors")
        model, _, vae, _ = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=True, output_clip=False,
                                                                 output_clipvision=True)
        make_clip_vision(Path(folder) / "clip_vision")
        clip_vision = load_clip_vision(Path(folder) / "clip_vision")
        warp_seconds = timed(lambda: warp.warp(frames, trajectory, True, 0.05, 0, "black", 0.35, depth=depth_maps))
        multiview_seconds = timed(lambda: multiview.anchor(
            frames, trajectory, model, clip_vision, vae, "fuse with warp", THRESHOLD, 256, 0, steps, 4.0, "euler",
            "sgm_uniform", 0.0, 21, depth=depth_maps))
    figures = {"model": "tiny Stable Zero123 (random weights, 320 channels, 1 level)", "orbit_left_deg": 45.0,
               "frames": frames.shape[0], "resolution": 256, "steps": steps,
               "point_cloud_warp_seconds": warp_seconds, "multiview_anchor_seconds": multiview_seconds,
               "multiview_over_warp": multiview_seconds / warp_seconds,
               "multiview_seconds_per_generated_frame": multiview_seconds / frames.shape[0]}
    print(f"PointCloudWarp {warp_seconds:.2f} s, MultiviewAnchor {multiview_seconds:.2f} s "
          f"({figures['multiview_over_warp']:.1f}x) for {frames.shape[0]} frames, {steps} steps each")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "multiview_cpu.json")
    args = parser.parse_args()

    from recapture_core.synthetic import sample_clip

    frames, depth = sample_clip()
    figures = {"bench": "multiview", "machine": machine(), "clip": list(frames.shape), "switch_threshold": THRESHOLD,
               "coverage": coverage(frames, depth), "cost": cost(frames, depth, args.steps)}
    write_result(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
