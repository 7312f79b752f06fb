"""Test-side measurements on ComfyUI MODELs for the trainers in nodes/_comfy_backbone.py (SVD and Wan alike)."""
from __future__ import annotations

import hashlib

import torch

from recapture_core.finetune import latent_valid_mask, masked_mse


def moving_clip(frames: int, height: int, width: int, seed: int = 4) -> torch.Tensor:
    """A smooth pattern sliding right by 2 px a frame: ``[frames, height, width, 3]`` in 0..1."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width + 2 * frames).float(), indexing="ij")
    canvas = torch.stack([0.5 + 0.4 * torch.sin(x / 3 + seed), 0.5 + 0.4 * torch.cos(y / 4),
                          0.5 + 0.3 * torch.sin((x + y) / 5)], -1)
    return torch.stack([canvas[:, 2 * f:2 * f + width] for f in range(frames)])


def fingerprint(patcher) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(patcher.model.diffusion_model.state_dict().items()):
        digest.update(name.encode() + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def times_loaded(patcher) -> int:
    import comfy.model_management

    return sum(1 for loaded in comfy.model_management.current_loaded_models
               if loaded.model is not None and loaded.model.model is patcher.model)


def wrappers_left(patcher) -> int:
    return sum(len(getattr(m, "weight_function", [])) for m in patcher.model.diffusion_model.modules())


def predictions(module, patcher, positive, latents, sigmas=(0.3, 1.0, 3.0), seed=11, spatial=False, single_frames=False):
    """The model's denoised estimates of ``latents [f, C, h, w]`` at fixed noise levels and noise (through ComfyUI's
    sampling code); ``spatial``: SVD's temporal layers off; ``single_frames``: f clips of one frame (a video DiT)."""
    generator = torch.Generator().manual_seed(seed)
    noises = [torch.randn(latents.shape, generator=generator) for _ in sigmas]
    if spatial:
        patcher = module.without_temporal_layers(patcher)

    def job(session):
        with torch.no_grad():
            return [session.predict(latents.to(session.device), noise.to(session.device), torch.tensor([s]), 0, generator)
                    for s, noise in zip(sigmas, noises)]

    return module.run_with_model(patcher, positive, tuple(latents.shape), job, single_frames=single_frames)


def masked_loss(module, patcher, vae, positive, video, valid, sigmas=(0.3, 1.0, 3.0)):
    """The masked training loss of a clip at fixed noise levels and noise: a deterministic yardstick."""
    from recapture_core.masks import fill_holes

    training = module.ComfyModelTraining(patcher, vae, positive)
    with torch.inference_mode(False), torch.no_grad():
        latents = training.encode(fill_holes(video.clone(), valid), [0], False)
    cells = latent_valid_mask(valid, training.spatial_factor, training.temporal_factor)
    outs = predictions(module, patcher, positive, latents, sigmas)
    return sum(float(masked_mse(*out, cells)) for out in outs) / len(outs)


def with_lora(patcher, state):
    import comfy.sd

    return comfy.sd.load_lora_for_models(patcher, None, state, 1.0, 0)[0]


