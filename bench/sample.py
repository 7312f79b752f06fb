"""Sampling figures: seconds per denoising step and peak memory.

    .venv/bin/python bench/sample.py [--out bench/results/sample_cpu.json]
    .venv/bin/python bench/sample.py --full-size --device cuda      (needs a GPU)

On the CPU: the tiny test SVD at 14 frames of 64x64, with and without both LoRAs attached, side
by side in one process (their ratio is the LoRA overhead). With --full-size: the full SVD-XT
architecture with random weights at 25 frames of 576x1024 in fp16, chunked VAE decoding: seconds
per step and peak GPU memory for the whole sampling (goal: <= 24 GB).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from _common import machine, write_result  # noqa: E402


def tiny_cpu(steps: int) -> dict:
    from tiny_models import make_svd_folder

    from recapture_core.svd.backbone import load_diffusers_svd
    from recapture_core.svd.sample import SampleSettings, dual_lora_sample
    from recapture_core.svd.train import TrainSettings, train_spatial_lora, train_temporal_lora

    with tempfile.TemporaryDirectory() as tmp:
        backbone = load_diffusers_svd(make_svd_folder(Path(tmp) / "tiny-svd"), "fp32")
    anchor = torch.rand(14, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    fast = TrainSettings(steps=1, rank=16, alpha=16.0)
    spatial = train_spatial_lora(backbone, anchor, fast)
    temporal = train_temporal_lora(backbone, anchor, torch.ones(14, 64, 64), fast, spatial_lora=spatial)
    settings = SampleSettings(steps=steps)
    figures = {}
    for label, loras in (("no_lora", (None, None)), ("both_loras", (temporal, spatial))):
        start = time.perf_counter()
        dual_lora_sample(backbone, anchor, *loras, settings=settings)
        figures[label] = (time.perf_counter() - start) / steps
    return {"frames": 14, "size": "64x64", "steps": steps, "seconds_per_step": figures,
            "lora_overhead_ratio": figures["both_loras"] / figures["no_lora"],
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def full_size(device: str, steps: int) -> dict:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection
    from train import SVD_XT_UNET
    from tiny_models import SVD_SCHEDULER_CONFIG

    from recapture_core.svd.backbone import SVDBackbone
    from recapture_core.svd.sample import SampleSettings, dual_lora_sample

    dtype = torch.float16
    unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET).to(device, dtype).eval()
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(128, 256, 512, 512),
                                       down_block_types=("DownEncoderBlock2D",) * 4, layers_per_block=2,
                                       latent_channels=4).to(device, dtype).eval()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=1280, projection_dim=1024, num_hidden_layers=32,
                                                             num_attention_heads=16, intermediate_size=5120, image_size=224,
                                                             patch_size=14)).to(device, dtype).eval()
    processor = CLIPImageProcessor(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224})
    backbone = SVDBackbone(unet, vae, encoder, processor, SVD_SCHEDULER_CONFIG, dtype, "svd-xt-random")
    anchor = torch.rand(25, 576, 1024, 3)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    dual_lora_sample(backbone, anchor, settings=SampleSettings(steps=steps, decode_chunk_size=4), device=device)
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    return {"device": torch.cuda.get_device_name(), "frames": 25, "size": "576x1024", "dtype": "fp16", "steps": steps,
            "seconds_total": total, "seconds_per_step_upper_bound": total / steps,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30, "goal": "whole sampling <= 24 GB"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"bench": "sample", "machine": machine()}
    if args.full_size:
        result["full_size"] = full_size(args.device, args.steps)
        out = args.out or REPO / "bench" / "results" / "sample_gpu.json"
    else:
        result["tiny_cpu"] = tiny_cpu(args.steps)
        out = args.out or REPO / "bench" / "results" / "sample_cpu.json"
    write_result(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
