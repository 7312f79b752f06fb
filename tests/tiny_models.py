"""Tiny models with random weights, built from configs and saved where the real loaders look.

A few hundred KB each, seconds on a CPU. Used by unit tests and by the real-server fixture.
"""
from __future__ import annotations

from pathlib import Path

import torch

DEPTH_FAMILIES = ("depth_anything", "dpt", "zoedepth")


def _dinov2():
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14,
                        image_size=56, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)


def make_depth_model(folder: Path, family: str, seed: int = 0) -> Path:
    """Save a tiny transformers depth model of ``family`` (with its image processor) to ``folder``."""
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTConfig, DPTForDepthEstimation,
                              DPTImageProcessor, ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor)

    torch.manual_seed(seed)
    if family == "depth_anything":
        model = DepthAnythingForDepthEstimation(DepthAnythingConfig(
            backbone_config=_dinov2(), reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
            fusion_hidden_size=16, head_hidden_size=8, patch_size=14))
        processor = DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14)
    elif family == "dpt":
        model = DPTForDepthEstimation(DPTConfig(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64, patch_size=16,
            backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16))
        processor = DPTImageProcessor(size={"height": 64, "width": 64}, keep_aspect_ratio=False, ensure_multiple_of=16)
    elif family == "zoedepth":
        model = ZoeDepthForDepthEstimation(ZoeDepthConfig(
            backbone_config=_dinov2(), reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
            bottleneck_features=16, num_relative_features=8, num_attractors=[4, 2, 2, 1], bin_embedding_dim=16,
            bin_configurations=[{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0, "name": "nyu"}], patch_size=14))
        processor = ZoeDepthImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14)
    else:
        raise ValueError(family)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def populate_models(models_dir: Path) -> None:
    """Every tiny model the server tests need, under a ComfyUI ``models/`` folder."""
    for family in DEPTH_FAMILIES:
        make_depth_model(models_dir / "depth" / f"tiny-{family}", family)
