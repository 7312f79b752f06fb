"""Long clips on ComfyUI's own MODEL: time and peak memory against clip length, for windowed training and sampling.

    .venv/bin/python bench/long_clip.py                   # tiny SVD and Wan on the CPU: 25, 49, 97, 193 frames
    .venv/bin/python bench/long_clip.py --quick           # a smoke run of the same code (tests/test_bench_smoke.py)
    .venv/bin/python bench/long_clip.py --device cuda     # Wan 2.1 1.3B, 241 frames 480x832 fp16: s/step, peak VRAM

Every point runs in its own child process, so no point inherits another's high-water mark. A point's memory
is the peak RSS (CPU) or peak allocated VRAM (CUDA) while the operation runs, above what the process held when
it started (models loaded, the clip made). Training: ``train_temporal`` (the clip encoded once, then steps on
random windows of the model's length, each on its own first frame); sampling: ``nodes/windows.py`` patched into
the MODEL and ComfyUI's own ``comfy.sample.sample`` (what KSampler runs). Flat memory and linear sampling time
are the goals; a training run's time is the clip's encoding (linear) plus a fixed number of steps.

The CUDA case builds the DiT as bench/train_model_path.py does (the released 1.3B configuration, random
weights) and gives latents of the real shapes (no VAE, no text encoder): 241 frames are 61 latent frames,
windows of 81 frames (21 latent frames).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))

from _common import LatentOnlyWanVAE, machine, write_result  # noqa: E402

LENGTHS = (25, 49, 97, 193)
WINDOW = 25  # frames per window on the tiny models: SVD-XT's length; 7 latent frames for Wan
SIZE = 64
STEPS = 2


def _host(device: str):
    """ComfyUI on the path (``--cpu`` unless CUDA), the pack imported as ComfyUI imports it; its node modules."""
    import comfy_host

    sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])
    sys.path.insert(2, str(REPO / "tests"))
    sys.path.append(str(REPO))
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    pack = comfy_host.import_pack("recapture_bench_pack")
    from importlib import import_module

    return (import_module(f"{pack.__name__}.nodes._comfy_backbone"), import_module(f"{pack.__name__}.nodes.windows"))


class _Memory:
    """Peak memory of one operation: VmHWM reset to the current RSS at the start (CPU), or CUDA's peak statistics."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.start = self._status("VmRSS")
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = self._status("VmHWM")
        self.seconds = time.perf_counter() - self.began


def _tiny_models(family: str, folder: Path):
    """``(model, vae, positive, negative)`` of a tiny model (tests/tiny_comfy_models.py), conditioning for 1 frame."""
    import comfy.sd
    import comfy.utils
    import torch
    from tiny_comfy_models import (load_clip_vision, make_clip_vision, make_svd_model, make_wan21_t2v, make_wan21_vae,
                                   wan_text_conditioning)

    if family == "wan":
        with torch.inference_mode():
            model = comfy.sd.load_diffusion_model(str(make_wan21_t2v(folder / "wan.safetensors")))
            vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(make_wan21_vae(folder / "vae.safetensors"))))
        return model, vae, wan_text_conditioning("a box"), wan_text_conditioning("blurry"), None
    model, vae = make_svd_model(seed=0)
    make_clip_vision(folder)
    return model, vae, None, None, load_clip_vision(folder)


def point(family: str, mode: str, frames: int, size: int, steps: int) -> dict:
    """One (family, mode, clip length) on the CPU, in this process."""
    import torch

    torch.set_num_threads(1)  # one thread: figures that compare across lengths, whatever the machine's load
    backbone, windows = _host("cpu")
    from comfy_model_support import moving_clip

    folder = Path(tempfile.mkdtemp(prefix="long_clip_"))
    model, vae, positive, negative, clip_vision = _tiny_models(family, folder)
    clip = moving_clip(frames, size, size)
    if family == "svd":
        from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

        with torch.inference_mode():
            positive, negative, latent = SVD_img2vid_Conditioning().encode(
                clip_vision, clip[:1], vae, size, size, frames if mode == "sample" else WINDOW, 127, 6, 0.0)
        latent = latent["samples"]
    else:
        latent = torch.zeros(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8)  # EmptyHunyuanLatentVideo's
    if mode == "train":
        from recapture_core.finetune import TrainSettings, train_temporal

        training = backbone.ComfyModelTraining(model, vae, positive, "temporal", WINDOW, clip_vision)
        with _Memory("cpu") as memory, torch.inference_mode(False):
            train_temporal(training, clip, torch.ones(frames, size, size),
                           TrainSettings(steps=steps, rank=4, alpha=4.0, seed=0))
        finite = all(math.isfinite(v) for v in training.losses)
    else:
        import comfy.sample

        with _Memory("cpu") as memory, torch.inference_mode():
            patched, pos, neg = windows.windowed(model, positive, negative, vae, clip, WINDOW, 0, clip_vision)
            noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
            out = comfy.sample.sample(patched, noise, steps, 2.0, "euler", "simple", pos, neg, torch.zeros_like(noise),
                                      seed=0, disable_pbar=True)
        finite = bool(torch.isfinite(out).all())
    return {"family": family, "mode": mode, "frames": frames, "size": f"{size}x{size}", "steps": steps,
            "window_frames": WINDOW, "seconds": memory.seconds, "seconds_per_frame": memory.seconds / frames,
            "peak_growth_mb": (memory.peak - memory.start) / 2**20,
            "peak_growth_kb_per_frame": (memory.peak - memory.start) / 1024 / frames,
            "process_peak_mb": memory.peak / 2**20, "finite": finite}


def large_case(device: str, size: str, steps: int) -> dict:
    """Wan 2.1 T2V with latents of a long clip: windowed training steps and windowed sampling steps."""
    import torch
    from train_model_path import SIZES, wan_model

    backbone, windows = _host(device)
    from recapture_core.finetune import TrainSettings, optimise

    frames, height, width, window = (241, 480, 832, 81) if size == "full" else (33, 32, 48, 9)
    config = SIZES[size][3]
    dtype = torch.float16 if device != "cpu" else torch.float32
    patcher = wan_model(config, device, dtype)
    positive = [[torch.randn(1, 512, 4096) * 0.1, {}]]
    negative = [[torch.randn(1, 512, 4096) * 0.1, {}]]
    vae = LatentOnlyWanVAE()
    training = backbone.ComfyModelTraining(patcher, vae, positive, "temporal", window)
    latent_frames, latent_window = (frames - 1) // 4 + 1, training.window
    latents = torch.randn(latent_frames, 16, height // 8, width // 8)
    mask = torch.ones(latent_frames, height // 8, width // 8)
    generator = torch.Generator().manual_seed(0)
    starts = torch.randint(latent_frames - latent_window + 1, (steps,), generator=generator).tolist()
    settings = TrainSettings(steps=steps, rank=16, alpha=16.0, learning_rate=5e-4)
    marks = []

    def fit(session):
        examples = iter(starts)

        def next_example():
            start = next(examples)
            return latents[start:start + latent_window], 0, mask[start:start + latent_window]

        def timed(step, total, loss):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

        marks.append(time.perf_counter())
        return optimise(session, settings, next_example, generator, timed)

    with _Memory(device) as train_memory, torch.inference_mode(False):
        training.train("temporal", settings, False, (latent_window, *latents.shape[1:]), fit)
    step_times = [b - a for a, b in zip(marks, marks[1:])]
    steady = step_times[1:] or step_times  # the first step includes loading and compilation of kernels

    import comfy.sample

    sample_steps = max(2, steps // 2)
    noise = torch.randn(1, 16, latent_frames, height // 8, width // 8, generator=torch.Generator().manual_seed(1))
    with _Memory(device) as sample_memory, torch.inference_mode():
        patched, pos, neg = windows.windowed(patcher, positive, negative, vae, torch.zeros(frames, 1, 1, 3), window, 0)
        out = comfy.sample.sample(patched, noise, sample_steps, 5.0, "uni_pc", "simple", pos, neg,
                                  torch.zeros_like(noise), seed=0, disable_pbar=True)
    return {"model": "Wan 2.1 T2V 1.3B architecture (random weights)" if size == "full" else "tiny Wan",
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
            "frames": frames, "latent_frames": latent_frames, "size": f"{width}x{height}", "dtype": str(dtype)[6:],
            "window_frames": window, "train_seconds_per_step": sum(steady) / len(steady),
            "train_peak_memory_gb": train_memory.peak / 2**30, "train_losses": training.losses,
            "sample_steps": sample_steps, "sample_seconds_per_step": sample_memory.seconds / sample_steps,
            "sample_peak_memory_gb": sample_memory.peak / 2**30,
            "peak_memory_kind": "CUDA max allocated" if device.startswith("cuda") else "CPU RSS high-water mark",
            "finite": all(math.isfinite(v) for v in training.losses) and bool(torch.isfinite(out).all())}


def _child(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"point {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short point per mode, tiny sizes")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--point", nargs=5, metavar=("FAMILY", "MODE", "FRAMES", "SIZE", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--large", nargs=3, metavar=("DEVICE", "SIZE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:  # a child: one point, its JSON on the last line
        family, mode, frames, size, steps = args.point
        print(json.dumps(point(family, mode, int(frames), int(size), int(steps))))
        return 0
    if args.large:
        device, size, steps = args.large
        print(json.dumps(large_case(device, size, int(steps))))
        return 0

    if args.device.startswith("cuda"):
        result = {"bench": "long_clip", "machine": machine(), **_child(["--large", args.device, "full", "4"])}
        out = args.out or REPO / "bench" / "results" / "long_clip_gpu.json"
        write_result(result, out)
        return 0 if result["finite"] else 1

    if args.quick:
        jobs = [("svd", "train", 9, 32, 1), ("wan", "sample", 13, 32, 1)]
    else:
        jobs = [(family, mode, frames, SIZE, STEPS) for family in ("svd", "wan") for mode in ("train", "sample")
                for frames in LENGTHS]
    points = []
    for job in jobs:
        points.append(_child(["--point", *map(str, job)]))
        p = points[-1]
        print(f"{p['family']:>3} {p['mode']:<6} {p['frames']:>4} frames: {p['seconds']:7.2f} s "
              f"({1000 * p['seconds_per_frame']:6.1f} ms/frame), peak +{p['peak_growth_mb']:7.1f} MB "
              f"({p['peak_growth_kb_per_frame']:7.1f} KB/frame)", file=sys.stderr, flush=True)
    result = {"bench": "long_clip", "machine": machine(), "device": "cpu", "torch_threads_per_point": 1,
              "window_frames": WINDOW, "points": points, "finite": all(p["finite"] for p in points)}
    if args.quick:
        result["large_case_tiny"] = _child(["--large", "cpu", "tiny", "2"])
        result["finite"] = result["finite"] and result["large_case_tiny"]["finite"]
    out = args.out or REPO / "bench" / "results" / ("long_clip_quick_cpu.json" if args.quick else "long_clip_cpu.json")
    write_result(result, out)
    return 0 if result["finite"] else 1


if __name__ == "__main__":
    sys.exit(main())
