"""Single-file SVD checkpoints (``svd.safetensors`` / ``svd_xt.safetensors``) <-> diffusers modules.

diffusers 0.42 has no single-file support for Stable Video Diffusion, so the key conversion is
written here, once per component, in the diffusers -> original direction; loading inverts the
same table. The original checkpoint holds:

* ``model.diffusion_model.*`` — the UNet in Stability's "sgm" layout (``input_blocks``,
  ``middle_block``, ``output_blocks``; temporal parts under ``time_stack``),
* ``first_stage_model.*`` — the VAE in the LDM layout with a temporal decoder,
* ``conditioner.embedders.0.open_clip.model.visual.*`` — the OpenCLIP ViT-H image encoder.

Architectures come from the diffusers configs shipped in ``configs/`` (nothing is looked up
online); tests convert a tiny diffusers SVD to a single file and back, and check the names
against ComfyUI's own loaders.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ReCaptureInputError
from ..model_files import reading
from .backbone import DTYPES, SVDBackbone
from .keys import clip_key_to_original, is_vae_attention_matrix, unet_key_to_original, vae_key_to_original

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
CONFIGS = Path(__file__).resolve().parent / "configs"
VARIANTS = {"svd": 14, "svd_xt": 25}
HELP = "Use the original single-file SVD checkpoint (svd.safetensors or svd_xt.safetensors)."
HINT = "svd_checkpoints"  # where the host keeps them

# --- whole checkpoints --------------------------------------------------------------------------------------
def _unet_layout(unet) -> tuple[int, list[bool]]:
    config = unet.config
    return int(config.layers_per_block), [t.startswith("CrossAttn") for t in config.up_block_types]


def _fill(module: torch.nn.Module, source: dict, describe: str, mapping, transform) -> None:
    """Assign tensors from ``source`` (original keys) to every state-dict entry of ``module``."""
    state = {}
    missing = []
    for key, current in module.state_dict().items():
        if key.endswith("position_ids"):
            continue
        original = mapping(key)
        if original is None:
            state[key] = transform(key, None, current)
            continue
        name = original[0] if isinstance(original, tuple) else original
        if name not in source:
            missing.append(name)
            continue
        tensor = transform(key, original, current).contiguous()
        # A fresh, aligned, row-major copy: tensors read from the file can sit at unaligned
        # addresses, which sends CPU kernels down other paths and changes results in the last bit.
        if tensor.data_ptr() == source.get(name, tensor).data_ptr() or tensor.data_ptr() % 64:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        state[key] = tensor
    if missing:
        raise ReCaptureInputError("checkpoint", f"the {describe} lacks {len(missing)} weights, e.g. {missing[0]}",
                                  "Use an SVD or SVD-XT checkpoint (svd.safetensors / svd_xt.safetensors). " + HELP)
    result = module.load_state_dict(state, strict=False, assign=True)
    unexpected = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if unexpected:
        raise ReCaptureInputError("checkpoint", f"{describe}: {len(unexpected)} weights were not filled, e.g. {unexpected[0]}",
                                  "The checkpoint does not match the SVD architecture.")


def load_single_file_svd(path: Path, dtype: str = "fp16", variant: str = "auto", configs: Path | None = None,
                         name: str | None = None) -> SVDBackbone:
    """Load an original single-file SVD checkpoint into diffusers modules (configs from ``configs/<variant>``)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from safetensors import safe_open
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    if dtype not in DTYPES:
        raise ReCaptureInputError("dtype", f"unknown dtype {dtype!r}", f"Choose one of: {', '.join(DTYPES)}.")
    if not path.is_file():
        raise ReCaptureInputError("checkpoint", f"{path} does not exist", HELP, HINT)
    if configs is None:
        if variant == "auto":
            variant = "svd_xt" if "xt" in path.name.lower() else "svd"
        if variant not in VARIANTS:
            raise ReCaptureInputError("variant", f"unknown variant {variant!r}", "Choose auto, svd or svd_xt.")
        configs = CONFIGS / variant
    with reading(path, "checkpoint", "The checkpoint is damaged or truncated (compare its size with the original), "
                 "or not a safetensors file: download it again.", HINT), safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        if not any(k.startswith(UNET_PREFIX + "input_blocks.1.0.time_stack.") for k in keys):
            raise ReCaptureInputError("checkpoint", f"{path.name} is not a Stable Video Diffusion checkpoint (no temporal UNet layers)", HELP)
        source = {k: handle.get_tensor(k) for k in keys if k.startswith((UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX))}
    target_dtype = DTYPES[dtype]
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(json.loads((configs / "unet" / "config.json").read_text()))
        vae = AutoencoderKLTemporalDecoder.from_config(json.loads((configs / "vae" / "config.json").read_text()))
        clip_config = CLIPVisionConfig.from_dict(json.loads((configs / "image_encoder" / "config.json").read_text()))
        image_encoder = CLIPVisionModelWithProjection(clip_config)
    layers, up_attention = _unet_layout(unet)
    _fill(unet, source, "UNet", lambda k: UNET_PREFIX + unet_key_to_original(k, layers, up_attention),
          lambda k, o, c: source[o].to(target_dtype))
    levels = len(vae.config.block_out_channels)

    def vae_source(key, original, current):
        if original is None:  # quant_conv: identity, as the original VAE has none
            return (torch.eye(current.shape[0]).reshape(current.shape) if key.endswith("weight")
                    else torch.zeros(current.shape)).to(target_dtype)
        tensor = source[original]
        return (tensor[..., 0, 0] if is_vae_attention_matrix(key) else tensor).to(target_dtype)

    _fill(vae, source, "VAE", lambda k: None if k.startswith("quant_conv.") and VAE_PREFIX + "quant_conv.weight" not in source
          else VAE_PREFIX + vae_key_to_original(k, levels), vae_source)

    def clip_source(key, original, current):
        name, third = original
        tensor = source[name]
        if third is not None:
            size = tensor.shape[0] // 3
            tensor = tensor[third * size:(third + 1) * size]
        return (tensor.t() if name == CLIP_PREFIX + "proj" else tensor).to(target_dtype)

    def clip_name(key):
        name, third = clip_key_to_original(key)
        return CLIP_PREFIX + name, third

    _fill(image_encoder, source, "image encoder", clip_name, clip_source)
    embeddings = image_encoder.vision_model.embeddings
    if embeddings.position_ids.is_meta:  # a non-persistent buffer: not in any checkpoint
        embeddings.register_buffer("position_ids", torch.arange(embeddings.num_positions).expand((1, -1)),
                                   persistent=False)
    processor = CLIPImageProcessor.from_pretrained(configs / "feature_extractor", local_files_only=True)
    scheduler_config = json.loads((configs / "scheduler" / "scheduler_config.json").read_text())
    for module in (unet, vae, image_encoder):
        module.eval().requires_grad_(False)
    return SVDBackbone(unet, vae, image_encoder, processor, scheduler_config, target_dtype, name or path.stem)
