"""The released architectures at full size on this machine's CPU: seconds per training and sampling step, peak RSS.

    .venv/bin/python bench/fullsize_cpu.py                     # every row, one process each (peak RSS per row)
    .venv/bin/python bench/fullsize_cpu.py --rows wan21_fp8     # some rows
    .venv/bin/python bench/fullsize_cpu.py --rows wan22_ti2v_5B_fp8  # Wan 2.2 TI2V 5B: makes a 10 GB file first
    .venv/bin/python bench/fullsize_cpu.py --device cuda      # the GPU rows (bench/gpu_check.sh): fullsize_gpu.json

Random weights in the released formats (tests/fullsize/fullsize_files.py, the files the full-size tests use),
loaded with the code of ComfyUI's loader nodes (``load_checkpoint_guess_config`` as Image Only Checkpoint
Loader, ``load_diffusion_model`` as Load Diffusion Model) or the pack's SVD Loader, trained with the pack's
trainers (temporal LoRA, rank 16, the masked loss) at the tests' small latents, sampled with ComfyUI's
sampler (or the pack's DualLoRASample on the diffusers path). Step times are the mean after the first step.
The machine is shared: ``load_average`` says how busy it was.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "fullsize"))
sys.path.append(str(REPO))  # last: ComfyUI's own top-level `nodes` must win over the pack's nodes/

from _common import machine, write_result  # noqa: E402

ROWS = {  # architecture, loader node, file(s), weight dtype, clip (frames, height, width)
    "svd_xt_fp32": ("SVD-XT (UNet + CLIP-ViT-H + VAE)", "ImageOnlyCheckpointLoader", ["svd_xt"], "default (fp32 on CPU)", (4, 64, 128)),
    "wan21_default": ("Wan 2.1 T2V 1.3B", "UNETLoader + VAELoader", ["wan21_t2v_1.3B", "wan21_vae"], "default (fp32 on CPU)", (5, 64, 64)),
    "wan21_fp8": ("Wan 2.1 T2V 1.3B", "UNETLoader + VAELoader", ["wan21_t2v_1.3B", "wan21_vae"], "fp8_e4m3fn", (5, 64, 64)),
    "svd_xt_diffusers_fp32": ("SVD-XT diffusers folder", "ReCaptureSVDLoader", ["svd_xt_diffusers"], "fp32", (4, 64, 128)),
    "wan22_ti2v_5B_fp8": ("Wan 2.2 TI2V 5B", "UNETLoader + VAELoader", ["wan22_ti2v_5B", "wan22_vae"], "fp8_e4m3fn", (5, 64, 64)),
}
DEFAULT_ROWS = [r for r in ROWS if r != "wan22_ti2v_5B_fp8"]
WAN22_NOT_RUN = ("not run by default: its fp16 file is 10 GB, loading it with weight_dtype fp8_e4m3fn reads the whole "
                 "file into memory before casting (about 10 GB + 5 GB of fp8 weights + the 48-channel VAE), more than the "
                 "14 GB a process may take on this shared 24 GB machine; so it is in the bench only (--rows wan22_ti2v_5B_fp8), "
                 "never in the tests")
TRAIN_STEPS, SAMPLE_STEPS = 3, 3


DEVICE = os.environ.get("RECAPTURE_BENCH_DEVICE", "cpu")  # set by the parent from --device


def _host():
    import comfy_host

    sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = DEVICE == "cpu"
    pack = comfy_host.import_pack("recapture_bench_pack")
    from importlib import import_module

    return import_module(f"{pack.__name__}.nodes._comfy_backbone")


class _MissedKeys(logging.Handler):
    def __init__(self):
        super().__init__()
        self.missed = 0

    def emit(self, record):
        if "lora key not loaded" in record.getMessage():
            self.missed += 1


def _steady(stamps: list[float]) -> float:
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    rest = steps[1:] or steps
    return round(sum(rest) / len(rest), 2)


def run_row(name: str) -> dict:
    import fullsize_files
    from comfy_model_support import moving_clip

    architecture, loader, files, dtype, (frames, height, width) = ROWS[name]
    paths = [fullsize_files.model_file(f) for f in files]
    backbone_module = _host()
    import comfy.sample
    import comfy.sd
    import comfy.utils

    from recapture_core.finetune import TrainSettings, train_temporal

    clip = moving_clip(frames, height, width)
    valid = torch.ones(frames, height, width)
    valid[:, :, width * 2 // 3:] = 0.0
    settings = TrainSettings(steps=TRAIN_STEPS, rank=16, alpha=16.0, learning_rate=5e-4)
    stamps: list[float] = []

    def progress(step, total, loss):
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    if name.startswith("svd_xt_diffusers"):
        return _diffusers_row(name, paths[0], clip, valid, settings, start)
    with torch.inference_mode():
        if name.startswith("svd"):
            from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

            model, _, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(str(paths[0]), output_vae=True, output_clip=False,
                                                                              output_clipvision=True)[:4]
            positive, negative, latent = SVD_img2vid_Conditioning().encode(clip_vision, clip[:1], vae, width, height, frames,
                                                                           127, 7, 0.0)
            latent = latent["samples"]
            sampler = ("euler", "karras")
        else:
            options = {"dtype": torch.float8_e4m3fn} if "fp8" in dtype else {}
            model = comfy.sd.load_diffusion_model(str(paths[0]), model_options=options)
            vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(paths[1])))
            positive = negative = [[torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(0)) * 0.1, {}]]
            factor = vae.spacial_compression_encode()
            latent = torch.zeros(1, vae.latent_channels, (frames - 1) // 4 + 1, height // factor, width // factor)
            sampler = ("euler", "simple")
    load_s = time.perf_counter() - start
    parameters = sum(t.numel() for t in model.model.diffusion_model.state_dict().values())
    weight_dtype = str(next(model.model.diffusion_model.parameters()).dtype).replace("torch.", "")
    with torch.inference_mode(False):
        state = train_temporal(backbone_module.ComfyModelTraining(model, vae, positive), clip, valid, settings, progress=progress)
    train_step = _steady([start + load_s] + stamps) if len(stamps) < 2 else _steady(stamps)
    missed = _MissedKeys()
    logging.getLogger().addHandler(missed)
    with torch.inference_mode():
        patched = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0)[0]
        sample_stamps: list[float] = [time.perf_counter()]
        noise = comfy.sample.prepare_noise(latent, 0)
        out = comfy.sample.sample(patched, noise, SAMPLE_STEPS, 1.0, sampler[0], sampler[1], positive, negative, latent,
                                  callback=lambda *a: sample_stamps.append(time.perf_counter()), disable_pbar=True, seed=0)
    expected = len(state) // 3
    applied = sum(1 for patches in patched.patches.values() for p in patches if type(p[1]).__name__ == "LoRAAdapter")
    return {"architecture": architecture, "loader": loader, "weight_dtype": dtype, "weights_in_memory": weight_dtype,
            "parameters": parameters, "clip": f"{frames}x{height}x{width}", "load_s": round(load_s, 1),
            "train_step_s": _steady(stamps), "sample_step_s": _steady(sample_stamps),
            "sample_finite": bool(torch.isfinite(out).all()), "losses_finite": bool(torch.isfinite(torch.tensor(
                [float(v) for v in state.values() if v.ndim == 0] or [0.0])).all()),
            "lora_keys_applied": applied - missed.missed, "lora_keys_expected": expected,
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def _diffusers_row(name, folder, clip, valid, settings, start) -> dict:
    from recapture_core.svd.backbone import load_diffusers_svd
    from recapture_core.svd.sample import SampleSettings, dual_lora_sample
    from recapture_core.svd.train import train_temporal_lora

    architecture, loader, _, dtype, (frames, height, width) = ROWS[name]
    backbone = load_diffusers_svd(folder, "fp32")
    load_s = time.perf_counter() - start
    stamps: list[float] = []
    lora = train_temporal_lora(backbone, clip, valid, settings, device=DEVICE,
                               progress=lambda s, t, loss: stamps.append(time.perf_counter()))
    sample_start = time.perf_counter()
    out = dual_lora_sample(backbone, clip, lora, None, 1.0, 1.0, SampleSettings(steps=SAMPLE_STEPS, min_guidance=1.0,
                                                                                    max_guidance=1.0),
                           device=DEVICE)
    sample_step = (time.perf_counter() - sample_start) / SAMPLE_STEPS
    modules = {k.rpartition(".lora_")[0] for k in lora.state_dict}
    return {"architecture": architecture, "loader": loader, "weight_dtype": dtype, "weights_in_memory": "float32",
            "parameters": sum(p.numel() for p in backbone.unet.parameters()), "clip": f"{frames}x{height}x{width}",
            "load_s": round(load_s, 1), "train_step_s": _steady(stamps),
            "sample_step_s": round(sample_step, 2), "sample_step_note": "whole DualLoRASample call / steps (VAE encode and decode included)",
            "sample_finite": bool(torch.isfinite(out).all()), "losses_finite": bool(all(map(lambda v: v == v, lora.settings.get("losses", [])))),
            "lora_keys_applied": len(modules), "lora_keys_expected": len(modules),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="*", default=DEFAULT_ROWS, choices=list(ROWS))
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in this process (the parent runs one per row)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or REPO / "bench" / "results" / f"fullsize_{'gpu' if args.device == 'cuda' else 'cpu'}.json"
    if args.row:
        print("ROW " + json.dumps(run_row(args.row)))
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = dict(previous.get("rows", {}))
    for name in args.rows:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--row", name], capture_output=True, text=True,
                              env={**os.environ, "RECAPTURE_BENCH_DEVICE": args.device})
        found = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if done.returncode or not found:
            rows[name] = {"error": (done.stderr or done.stdout)[-2000:]}
        else:
            rows[name] = {**json.loads(found[0]), "wall_s": round(time.perf_counter() - started, 1),
                          "load_average": os.getloadavg()[0]}
        print(name, json.dumps(rows[name]), flush=True)
    if "wan22_ti2v_5B_fp8" not in rows:
        rows["wan22_ti2v_5B_fp8"] = {"not_measured": WAN22_NOT_RUN}
    write_result({"bench": f"fullsize_{args.device}", "machine": machine(), "device": args.device, "train_steps": TRAIN_STEPS, "sample_steps": SAMPLE_STEPS,
                  "lora": "temporal, rank 16, masked loss (a third of each frame a hole)", "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
