"""Tiny random-weight pose-conditioned models in ComfyUI's own formats (for MultiviewAnchor's tests).

What ComfyUI's loaders accept, and so what can be tiny here:

* **Stable Zero123 through ImageOnlyCheckpointLoader** (the real loading path): ComfyUI detects
  the UNet's architecture from the checkpoint's shapes and matches it against Stable Zero123's
  fixed keys: 320 model channels, a 768-wide cross-attention context, 8 input channels, no ADM
  and a ``cc_projection``. Everything else is read from the file, so the smallest UNet that still
  matches has one level, one res block, one transformer and no middle block (~14 M parameters;
  fp16 on disk, ~27 MB). The VAE in the same file is a TAESD, which ComfyUI's VAE loader detects
  by key and which decodes SD-1.x latents (the ones Stable Zero123 uses).
* **The CLIP vision encoder cannot be tiny through a loader**: ComfyUI's CLIP vision loader picks
  one of its fixed JSON configs (ViT-L, ViT-H, ViT-bigG, SigLIP, DINOv2) from which layer keys
  exist and builds it at full size (300 M+ parameters), leaving missing weights uninitialised.
  So the checkpoint carries none (ComfyUI then returns no CLIP_VISION, as it would for any
  checkpoint without one) and the tests load a tiny ``comfy.clip_vision.ClipVisionModel`` built
  from a tiny JSON config with a test-only node (``tests/comfy_support``).
* **SV3D cannot be tiny through the loader either**: SV3D_p's match requires the full SVD
  transformer layout (depth 1 at six levels). The SV3D tests build ComfyUI's own SV3D_p model
  object from a tiny config directly (``comfy.supported_models.SV3D_p(config).get_model``).

All weights are seeded normal(0, 0.02) (norm scales 1), so outputs are finite and deterministic.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

CLIP_EMBED_DIM = 768  # Stable Zero123's cc_projection maps 768 + 4 camera features -> 768
TINY_CLIP_VISION = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 32, "image_size": 56,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 4, "num_channels": 3, "num_hidden_layers": 2,
    "patch_size": 14, "projection_dim": CLIP_EMBED_DIM, "torch_dtype": "float32",
}
CLIP_VISION_NAME = "tiny-clip-vision"


def _randomize(state_dict: dict, seed: int, fan_in: bool = False) -> dict:
    """Seeded random weights: normal(0, 0.02), or with ``fan_in`` normal(0, 1/sqrt(fan in)) for matrices and
    kernels (the scale of a default initialisation, so every layer passes a signal on; biases stay 0.02)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, tensor in state_dict.items():
        if tensor.dtype.is_floating_point and tensor.ndim == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
            out[name] = torch.ones(tensor.shape)
        elif tensor.dtype.is_floating_point and fan_in and tensor.ndim >= 2:
            out[name] = torch.randn(tensor.shape, generator=generator) / tensor[0].numel() ** 0.5
        elif tensor.dtype.is_floating_point:
            out[name] = torch.randn(tensor.shape, generator=generator) * 0.02
        else:
            out[name] = tensor.clone()
    return out


def _unet_state_dict(config: dict, seed: int) -> dict:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        unet = UNetModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    return _randomize(unet.state_dict(), seed)


STABLE_ZERO123_UNET = {
    "image_size": 32, "in_channels": 8, "out_channels": 4, "model_channels": 320, "num_res_blocks": [1],
    "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [0, 0], "transformer_depth_middle": -2,
    "context_dim": 768, "num_heads": 8, "num_head_channels": -1, "use_spatial_transformer": True, "legacy": False,
    "use_linear_in_transformer": False, "adm_in_channels": None,
}


def make_stable_zero123_checkpoint(path: Path, seed: int = 0, pose_conditioned: bool = True) -> Path:
    """A tiny Stable Zero123 checkpoint (UNet + TAESD VAE) that ImageOnlyCheckpointLoader accepts.

    ``pose_conditioned=False`` leaves out ``cc_projection``: ComfyUI then detects a plain SD-1.x
    inpainting-shaped UNet, a model with no camera input.
    """
    from comfy.taesd.taesd import TAESD
    from safetensors.torch import save_file

    sd = {f"model.diffusion_model.{k}": v for k, v in _unet_state_dict(STABLE_ZERO123_UNET, seed).items()}
    with torch.device("meta"):
        vae = TAESD()
    sd.update({f"first_stage_model.{k}": v for k, v in _randomize(vae.state_dict(), seed + 1).items()})
    sd["first_stage_model.vae_scale"] = torch.tensor(1.0)
    sd["first_stage_model.vae_shift"] = torch.tensor(0.0)
    if pose_conditioned:
        generator = torch.Generator().manual_seed(seed + 2)
        sd["cc_projection.weight"] = torch.randn(768, CLIP_EMBED_DIM + 4, generator=generator) * 0.02
        sd["cc_projection.bias"] = torch.zeros(768)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items()}, str(path))
    return path


def make_clip_vision(folder: Path, seed: int = 0) -> Path:
    """``<folder>/tiny-clip-vision.json`` + ``.safetensors``: a 2-layer CLIP vision tower with a 768 projection."""
    import comfy.clip_model
    import comfy.ops
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{CLIP_VISION_NAME}.json"
    config_path.write_text(json.dumps(TINY_CLIP_VISION, indent=1))
    with torch.device("meta"):
        model = comfy.clip_model.CLIPVisionModelProjection(TINY_CLIP_VISION, torch.float32, "meta", comfy.ops.manual_cast)
    save_file(_randomize(model.state_dict(), seed), str(folder / f"{CLIP_VISION_NAME}.safetensors"))
    return config_path


def load_clip_vision(folder: Path):
    """The tiny CLIP vision of :func:`make_clip_vision` as ComfyUI's own ClipVisionModel."""
    import comfy.clip_vision
    import comfy.utils

    clip_vision = comfy.clip_vision.ClipVisionModel(str(folder / f"{CLIP_VISION_NAME}.json"))
    missing, unexpected = clip_vision.load_sd(comfy.utils.load_torch_file(str(folder / f"{CLIP_VISION_NAME}.safetensors")))
    assert not missing and not unexpected, (missing, unexpected)
    return clip_vision


# SVD_img2vid (and so SV3D) forces 64-channel attention heads: 64 channels is the smallest with a head.
SV3D_UNET = {
    "image_size": 32, "in_channels": 8, "out_channels": 4, "model_channels": 64, "num_res_blocks": [1],
    "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [1, 1], "transformer_depth_middle": -2,
    "context_dim": CLIP_EMBED_DIM, "num_heads": -1, "num_head_channels": 64, "use_spatial_transformer": True,
    "legacy": False, "use_linear_in_transformer": True, "adm_in_channels": 1280, "num_classes": "sequential",
    "extra_ff_mix_layer": True, "use_spatial_context": True, "merge_strategy": "learned_with_images", "merge_factor": 0.0,
    "video_kernel_size": [3, 1, 1], "use_temporal_resblock": True, "use_temporal_attention": True,
    "disable_temporal_crossattention": False, "max_ddpm_temb_period": 10000,
}


def make_sv3d_model(seed: int = 0):
    """ComfyUI's SV3D_p model object (in a ModelPatcher) from a tiny config, with random weights.

    Returns ``(model_patcher, vae)``: the VAE is a random TAESD built through ComfyUI's VAE class.
    """
    import comfy.supported_models

    return _video_unet_model(comfy.supported_models.SV3D_p(dict(SV3D_UNET)), seed, torch.float32)


#: SVD_img2vid's layout at the smallest size: one level, 64 channels, a 768-wide context (the tiny CLIP vision's
#: projection) and SVD's micro-conditioning of 3 x 256 timestep features.
SVD_UNET = {**SV3D_UNET, "adm_in_channels": 768}


def make_svd_model(seed: int = 0, dtype: torch.dtype = torch.float32):
    """ComfyUI's own SVD_img2vid model object from a tiny config (what Image Only Checkpoint Loader builds
    from svd_xt.safetensors; its detection needs SVD's full layout). ``dtype``: the weights' dtype, as the
    loader picks it (fp16 on most GPUs), computing in float32 on the CPU as ComfyUI does.

    Returns ``(model_patcher, vae)`` with a random TAESD VAE.
    """
    import comfy.supported_models

    return _video_unet_model(comfy.supported_models.SVD_img2vid(dict(SVD_UNET)), seed, dtype, fan_in=True)


def _video_unet_model(config, seed: int, dtype: torch.dtype, fan_in: bool = False):
    import comfy.model_patcher
    import comfy.sd
    from comfy.taesd.taesd import TAESD

    config.set_inference_dtype(dtype, None if dtype == torch.float32 else torch.float32)
    model = config.get_model({})
    weights = _randomize(model.diffusion_model.state_dict(), seed, fan_in)
    model.diffusion_model.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    with torch.device("meta"):
        taesd = TAESD()
    vae_sd = {k: v for k, v in _randomize(taesd.state_dict(), seed + 1, fan_in).items()}
    # With fan-in weights, scale the latents to unit size in the model's space (SD's 0.18215 factor is applied
    # after the VAE), so a clip is a target a model can learn rather than noise around zero.
    vae_sd["vae_scale"], vae_sd["vae_shift"] = torch.tensor(0.03 if fan_in else 1.0), torch.tensor(0.0)
    return patcher, comfy.sd.VAE(sd=vae_sd)


# Wan 2.1 as ComfyUI's own loaders read it. Load Diffusion Model detects a Wan DiT from its shapes (dim from
# head.modulation, 128 channels per head, layer count, ffn width; the text projection stays 4096 wide), so a
# 1-head, 2-layer model loads through the real loader. Load VAE reads the Wan 2.1 VAE's base width from
# decoder.head.0.gamma (the channel multipliers, 16 latent channels, 8x spatial and 4x causal temporal
# compression are fixed), so an 8-wide VAE loads too. The UMT5-XXL text encoder cannot be tiny (its config
# is fixed at 4096 x 24 layers): tests hand over text conditioning of its shape with a test-only node.
WAN_TEXT_DIM = 4096
TINY_WAN = {"model_type": "t2v", "patch_size": (1, 2, 2), "text_len": 512, "in_dim": 16, "dim": 128, "ffn_dim": 256,
            "freq_dim": 256, "text_dim": WAN_TEXT_DIM, "out_dim": 16, "num_heads": 1, "num_layers": 2}
TINY_WAN_VAE_DIM = 8
TINY_WAN_FILES = {"model": "tiny_wan2.1_t2v.safetensors", "vae": "tiny_wan_2.1_vae.safetensors"}


def make_wan21_t2v(path: Path, seed: int = 0, dtype: torch.dtype = torch.float16, image_to_video: bool = False) -> Path:
    """A tiny Wan 2.1 T2V diffusion model file, as ``wan2.1_t2v_1.3B_fp16.safetensors`` is laid out; with
    ``image_to_video`` laid out as Wan 2.2's I2V A14B files are (36 input channels: the noisy latent, the
    first-frame latent and a 4-channel mask; no CLIP image embedding)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel
    from safetensors.torch import save_file

    config = {**TINY_WAN, "in_dim": 36} if image_to_video else TINY_WAN
    with torch.device("meta"):
        model = WanModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    weights = _randomize(model.state_dict(), seed, fan_in=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in weights.items()}, str(path))
    return path


def make_wan21_vae(path: Path, seed: int = 0) -> Path:
    """A tiny Wan 2.1 VAE file (``wan_2.1_vae.safetensors``'s layout at base width 8)."""
    from comfy.ldm.wan.vae import WanVAE
    from safetensors.torch import save_file

    with torch.device("meta"):
        vae = WanVAE(dim=TINY_WAN_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True], dropout=0.0)
    weights = _randomize(vae.state_dict(), seed, fan_in=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    return path


def wan_text_conditioning(text: str, tokens: int = 8):
    """CONDITIONING shaped as CLIPTextEncode's with UMT5-XXL (``[1, tokens, 4096]``), seeded by the text."""
    seed = int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") % (2**31)
    cond = torch.randn(1, tokens, WAN_TEXT_DIM, generator=torch.Generator().manual_seed(seed)) * 0.1
    return [[cond, {}]]
