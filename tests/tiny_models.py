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
    folder = make_svd_folder(models_dir / "diffusers" / "tiny-svd")
    make_svd_checkpoint(folder, models_dir / "checkpoints" / "tiny_svd.safetensors")
    from tiny_comfy_models import (TINY_WAN_FILES, make_clip_vision, make_stable_zero123_checkpoint, make_wan21_t2v,
                                   make_wan21_vae)

    make_stable_zero123_checkpoint(models_dir / "checkpoints" / "tiny_stable_zero123.safetensors")
    make_clip_vision(models_dir / "clip_vision")
    make_wan21_t2v(models_dir / "diffusion_models" / TINY_WAN_FILES["model"])
    make_wan21_vae(models_dir / "vae" / TINY_WAN_FILES["vae"])


def make_svd_checkpoint(folder: Path, path: Path) -> Path:
    """The tiny SVD of ``folder`` as an original-format single file (as svd_xt.safetensors is)."""
    from safetensors.torch import save_file

    from recapture_core.svd.backbone import load_diffusers_svd
    from svd_support import to_original_state_dict

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_original_state_dict(load_diffusers_svd(folder, "fp32")), str(path))
    return path


# --- Stable Video Diffusion ---------------------------------------------------------------------------
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "v_prediction", "sigma_max": 700.0, "sigma_min": 0.002,
    "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous", "use_karras_sigmas": True,
}


def make_svd_components(num_frames: int = 14, seed: int = 0):
    """Tiny SVD: UNet (2 levels), temporal-decoder VAE (factor 2), CLIP vision encoder, processor, scheduler."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=8, out_channels=4, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, layers_per_block=1,
        cross_attention_dim=32, num_attention_heads=(2, 4), num_frames=num_frames)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                                       latent_channels=4, layers_per_block=2, sample_size=16)  # 2: the decoder mid block has 2 resnets only then, as in SVD
    with torch.no_grad():  # SVD's original VAE has no quant_conv: the diffusers one is the identity there
        vae.quant_conv.weight.copy_(torch.eye(8).reshape(8, 8, 1, 1))
        vae.quant_conv.bias.zero_()
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8))
    feature_extractor = CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32})
    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
    return unet, vae, image_encoder, feature_extractor, scheduler


def make_svd_folder(folder: Path, num_frames: int = 14, seed: int = 0) -> Path:
    """A tiny SVD saved as a diffusers pipeline folder (model_index.json and one folder per component)."""
    from diffusers import StableVideoDiffusionPipeline

    unet, vae, image_encoder, feature_extractor, scheduler = make_svd_components(num_frames, seed)
    pipeline = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                            feature_extractor=feature_extractor)
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder
