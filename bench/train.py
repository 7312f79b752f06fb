"""LoRA training figures: trainable parameters on the full SVD-XT UNet and Wan DiTs, step time on the tiny model.

    .venv/bin/python bench/train.py [--out bench/results/train_cpu.json] [--full-size --device cuda]

Parameter counts use the full SVD-XT UNet architecture and ComfyUI's Wan 2.1 1.3B / Wan 2.2 5B DiTs
(the modules the MODEL-path trainers target) on the meta device (no weights, no memory). Step times run spatial and temporal training side by side on the tiny test model in
one process. With --full-size (needs a GPU), the full SVD-XT architecture with random weights
trains at 14 frames of 576x1024 in bf16 with gradient checkpointing: seconds per step and peak
memory.
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

SVD_XT_UNET = dict(sample_size=96, in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                   down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
                   up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
                   addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, layers_per_block=2,
                   cross_attention_dim=1024, num_attention_heads=(5, 10, 20, 20), num_frames=25)

from _common import machine, write_result  # noqa: E402


def lora_parameter_counts(rank: int = 16) -> dict:
    from diffusers import UNetSpatioTemporalConditionModel
    from peft import LoraConfig, inject_adapter_in_model

    from recapture_core.svd.lora import KINDS, target_modules

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET)
    total = sum(p.numel() for p in unet.parameters())
    out = {"unet_parameters": total}
    for kind, pattern in KINDS.items():
        modules = target_modules(unet, kind)
        with torch.device("meta"):
            inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=pattern), unet, adapter_name=kind)
        count = sum(p.numel() for n, p in unet.named_parameters() if f".{kind}." in n and "lora_" in n)
        out[kind] = {"modules": len(modules), "trainable_parameters": count, "share_of_unet": count / total}
    return out


#: ComfyUI's WanModel configs of the released files (what Load Diffusion Model detects from their shapes).
WAN_DITS = {
    "wan2.1_t2v_1.3B": dict(model_type="t2v", dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, in_dim=16, out_dim=16),
    "wan2.2_ti2v_5B": dict(model_type="t2v", dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, in_dim=48, out_dim=48),
}


def wan_lora_parameter_counts(rank: int = 16) -> dict:
    """Trainable parameters of the spatial and temporal LoRAs on the Wan DiTs (both in the self-attention)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import comfy_host

    sys.path.insert(1, comfy_host.host_paths()["COMFYUI_DIR"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    pack = comfy_host.import_pack("recapture_bench_pack")
    from importlib import import_module

    family = import_module(f"{pack.__name__}.nodes._comfy_backbone").WAN
    from recapture_core.finetune import target_modules

    out = {}
    for name, config in WAN_DITS.items():
        with torch.device("meta"):
            model = WanModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
        total = sum(p.numel() for p in model.parameters())
        entry = {"dit_parameters": total}
        for kind, pattern in family.targets.items():
            modules = [model.get_submodule(n) for n in target_modules(model, "", pattern, family.example_module)]
            count = sum(rank * (m.in_features + m.out_features) for m in modules)
            entry[kind] = {"modules": len(modules), "trainable_parameters": count, "share_of_dit": count / total}
        out[name] = entry
    return out


UNMEASURED = {
    "svd_xt_14x576x1024_bf16": "unmeasured: no GPU was lent to the sessions so far (run with --full-size on one)",
    "wan2.1_t2v_1.3B_33x480x832_bf16": "unmeasured: no GPU was lent; the MODEL-path step on full-size Wan is not written yet",
}


def tiny_step_times(steps: int) -> dict:
    from tiny_models import make_svd_folder

    from recapture_core.svd.backbone import load_diffusers_svd
    from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora

    with tempfile.TemporaryDirectory() as tmp:
        backbone = load_diffusers_svd(make_svd_folder(Path(tmp) / "tiny-svd"), "fp32")
    clip = torch.rand(14, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    settings = TrainSettings(steps=steps, rank=16, alpha=16.0)
    timings = {}
    for kind in ("spatial", "temporal"):
        start = time.perf_counter()
        if kind == "spatial":
            train_spatial_lora(backbone, clip, settings)
        else:
            train_temporal_lora(backbone, clip, torch.ones(14, 64, 64), settings)
        timings[kind] = (time.perf_counter() - start) / steps
    return {"frames": 14, "size": "64x64", "seconds_per_step": timings,
            "temporal_over_spatial": timings["temporal"] / timings["spatial"]}


def full_size_step(device: str, steps: int) -> dict:
    from diffusers import UNetSpatioTemporalConditionModel

    from recapture_core.svd.conditioning import denoise
    from recapture_core.svd.lora import AdapterSpec, adapters_attached

    class Backbone:  # just what denoise() reads
        def __init__(self, unet):
            self.unet = unet

    torch.cuda.reset_peak_memory_stats()
    unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET).to(device, torch.bfloat16).eval().requires_grad_(False)
    backbone = Backbone(unet)
    latents = torch.randn(1, 14, 4, 72, 128, device=device)
    cond = torch.randn(1, 4, 72, 128, device=device)
    embeds = torch.randn(1, 1, 1024, device=device)
    ids = torch.tensor([[6.0, 127.0, 0.02]], device=device)
    spec = AdapterSpec("rc_trainable", "temporal", 16, 16.0, trainable=True)
    times = []
    with adapters_attached(unet, [spec], gradient_checkpointing=True) as trainable:
        optimizer = torch.optim.AdamW(trainable["rc_trainable"], lr=5e-4)
        unet.train()
        for _ in range(steps):
            torch.cuda.synchronize()
            start = time.perf_counter()
            sigma = torch.exp(torch.randn(1, device=device) * 1.6 + 0.7)
            noisy = latents + torch.randn_like(latents) * sigma
            with torch.autocast("cuda", dtype=torch.bfloat16):
                denoised = denoise(backbone, noisy, sigma, cond, embeds, ids)
            loss = (((sigma**2 + 1) / sigma**2) * (denoised - latents) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    steady = times[2:] or times
    return {"device": torch.cuda.get_device_name(), "frames": 14, "size": "576x1024", "dtype": "bf16",
            "gradient_checkpointing": True, "seconds_per_step": sum(steady) / len(steady),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
            "goal": "<= 0.6 s/step on an H100, <= 24 GB"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"bench": "train", "machine": machine(),
              "lora_parameters_svd_xt_rank16": lora_parameter_counts(),
              "lora_parameters_wan_rank16": wan_lora_parameter_counts()}
    if args.full_size:
        result["full_size"] = full_size_step(args.device, args.steps)
        out = args.out or REPO / "bench" / "results" / "train_gpu.json"
    else:
        result["tiny_cpu"] = tiny_step_times(args.steps)
        result["full_size_gpu"] = UNMEASURED
        out = args.out or REPO / "bench" / "results" / "train_cpu.json"
    write_result(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
