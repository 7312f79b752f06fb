"""Test-side helpers for the SVD backbone: measurements and conversions the pack itself never needs.

* :func:`state_fingerprint` — a hash of a module's weights and types, for "left exactly as it was" checks;
* :func:`clip_loss` — the EDM loss of a whole clip at fixed noise, a deterministic yardstick of training;
* :func:`to_original_state_dict` — a diffusers SVD as an original single-file checkpoint (the tiny
  ``svd_xt.safetensors`` stand-in the loader tests read).
"""
from __future__ import annotations

import hashlib
from contextlib import nullcontext

import torch

from recapture_core.masks import fill_holes
from recapture_core.svd.backbone import SVDBackbone
from recapture_core.svd.conditioning import temporal_layers_off
from recapture_core.svd.keys import clip_key_to_original, is_vae_attention_matrix, unet_key_to_original, vae_key_to_original
from recapture_core.svd.lora import AdapterSpec, ReCaptureLoRA, adapters_attached
from recapture_core.svd.single_file import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, _unet_layout
from recapture_core.finetune import masked_mse
from recapture_core.svd.train import DiffusersSVDTraining, TrainSettings, _SVDSession, latent_valid_mask


def state_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's state dict (names, dtypes, values) and module types, for 'left unchanged' checks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    for name, sub in module.named_modules():
        digest.update(f"{name}:{type(sub).__name__}".encode())
    return digest.hexdigest()


def clip_loss(backbone, frames: torch.Tensor, lora: ReCaptureLoRA | None = None, *, valid_mask: torch.Tensor | None = None,
              temporal_off: bool = False, sigmas: tuple[float, ...] = (0.2, 1.0, 4.0), seed: int = 1234,
              device="cpu") -> float:
    """Mean EDM loss of a whole clip at fixed noise levels and noise (a deterministic yardstick).

    The clip is conditioned on its first frame; with ``valid_mask`` the loss is masked as in
    temporal training; ``lora`` (if any) is attached for the measurement and removed after.
    """
    job = DiffusersSVDTraining(backbone, device)
    session = _SVDSession(job, [], TrainSettings(seed=seed))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        filled = frames.clone().float() if valid_mask is None else fill_holes(frames.clone().float(), valid_mask)
        latents = job.encode(filled, [0], single_frames=False).float().to(job.device)
        mask = None if valid_mask is None else latent_valid_mask(valid_mask, backbone.vae_factor).to(job.device)
        specs = [] if lora is None else [AdapterSpec.from_lora("rc_measured", lora)]
        with adapters_attached(backbone.unet, specs), (temporal_layers_off(backbone.unet) if temporal_off else nullcontext()):
            losses = []
            for sigma in sigmas:
                noise = torch.randn(latents.shape, generator=generator).to(job.device)
                losses.append(float(masked_mse(*session.predict(latents, noise, torch.tensor([float(sigma)]), 0, generator), mask)))
    return sum(losses) / len(losses)


def to_original_state_dict(backbone: SVDBackbone) -> dict[str, torch.Tensor]:
    """The backbone as one original-format state dict (what ``svd_xt.safetensors`` holds)."""
    out = {}
    layers, up_attention = _unet_layout(backbone.unet)
    for key, tensor in backbone.unet.state_dict().items():
        out[UNET_PREFIX + unet_key_to_original(key, layers, up_attention)] = tensor.contiguous()
    levels = len(backbone.vae.config.block_out_channels)
    for key, tensor in backbone.vae.state_dict().items():
        if key.startswith("quant_conv."):
            continue  # the original VAE has no quant_conv: it must be (and is checked to be) the identity
        out[VAE_PREFIX + vae_key_to_original(key, levels)] = (tensor[..., None, None] if is_vae_attention_matrix(key)
                                                              else tensor).contiguous()
    qkv: dict[str, list] = {}
    for key, tensor in backbone.image_encoder.state_dict().items():
        if key.endswith("position_ids"):
            continue
        name, third = clip_key_to_original(key)
        if third is None:
            out[CLIP_PREFIX + name] = (tensor.t() if name == "proj" else tensor).contiguous()
        else:
            qkv.setdefault(name, [None] * 3)[third] = tensor
    for name, parts in qkv.items():
        out[CLIP_PREFIX + name] = torch.cat(parts).contiguous()
    return out
