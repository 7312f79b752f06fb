"""The masked temporal LoRA step on ComfyUI's own Wan 2.1 1.3B MODEL: seconds per step, peak memory, finite losses.

    .venv/bin/python bench/train_model_path.py --device cuda            # full size: 33 frames 480x832, bf16
    .venv/bin/python bench/train_model_path.py --size tiny --steps 2    # a CPU smoke run of the same code

The DiT is ComfyUI's ``WanModel`` with the released 1.3B configuration and random weights (normal,
1/sqrt(fan in)), wrapped in ComfyUI's ModelPatcher and trained through the pack's MODEL-path trainer
(``nodes/_comfy_backbone.py``: weight-adapter LoRAs, load_models_gpu, Guider_Basic) with the shared
loop of ``recapture_core/finetune.py``. Latents, the valid mask (a third of each frame a hole) and the
text conditioning are random tensors of the real shapes, so no VAE or text encoder is loaded.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from _common import LatentOnlyWanVAE, machine, write_result  # noqa: E402

SIZES = {  # frames, height, width, DiT config
    "full": (33, 480, 832, dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)),
    "tiny": (9, 32, 48, dict(dim=128, ffn_dim=256, num_heads=1, num_layers=2)),
}


def wan_model(config: dict, device: str, dtype: torch.dtype):
    import comfy.model_patcher
    import comfy.supported_models

    unet_config = {"image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "freq_dim": 256,
                   "in_dim": 16, "out_dim": 16, "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True,
                   "eps": 1e-6, **config}
    model_config = comfy.supported_models.WAN21_T2V(unet_config)
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({})
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.diffusion_model.named_parameters():
            if parameter.ndim >= 2:
                values = torch.randn(parameter.shape, generator=generator) / math.sqrt(parameter[0].numel())
            else:
                values = torch.ones(parameter.shape) if "norm" in name else torch.zeros(parameter.shape)
            parameter.data = values.to(device=device, dtype=parameter.dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device(device), offload_device=torch.device("cpu"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.size == "tiny" and args.device == "cuda" and not torch.cuda.is_available():
        args.device = "cpu"

    import comfy_host

    sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = args.device == "cpu"
    pack = comfy_host.import_pack("recapture_bench_pack")
    from importlib import import_module

    backbone_module = import_module(f"{pack.__name__}.nodes._comfy_backbone")
    from recapture_core.finetune import TrainSettings, optimise

    frames, height, width, config = SIZES[args.size]
    dtype = torch.bfloat16 if args.device != "cpu" else torch.float32
    patcher = wan_model(config, args.device, dtype)
    positive = [[torch.randn(1, 512, 4096) * 0.1, {}]]
    training = backbone_module.ComfyModelTraining(patcher, LatentOnlyWanVAE(), positive)
    latent_frames = (frames - 1) // 4 + 1
    latents = torch.randn(latent_frames, 16, height // 8, width // 8)
    mask = torch.ones(latent_frames, height // 8, width // 8)
    mask[:, :, : width // 24] = 0.0
    settings = TrainSettings(steps=args.steps, rank=16, alpha=16.0, learning_rate=5e-4)
    times, peak = [], 0.0

    def fit(session):
        def timed_progress(step, total, loss):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter())

        times.append(time.perf_counter())
        return optimise(session, settings, lambda: (latents, 0, mask), torch.Generator().manual_seed(0), timed_progress)

    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode(False):
        training.train("temporal", settings, False, tuple(latents.shape), fit)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
    steps = [b - a for a, b in zip(times, times[1:])]
    steady = steps[2:] or steps
    result = {"bench": "train_model_path", "machine": machine(), "device": args.device if args.device == "cpu" else
              torch.cuda.get_device_name(), "model": "Wan 2.1 T2V 1.3B architecture" if args.size == "full" else "tiny Wan",
              "frames": frames, "size": f"{width}x{height}", "dtype": str(dtype).replace("torch.", ""),
              "lora_rank": 16, "seconds_per_step": sum(steady) / len(steady), "peak_memory_gb": peak or "cpu (not measured)",
              "losses": training.losses, "losses_finite": all(math.isfinite(v) for v in training.losses)}
    out = args.out or REPO / "bench" / "results" / f"train_model_path_{args.size}_{args.device.split(':')[0]}.json"
    write_result(result, out)
    return 0 if result["losses_finite"] else 1


if __name__ == "__main__":
    sys.exit(main())
