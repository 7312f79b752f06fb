"""SVD conditioning and the EDM parameterisation, as diffusers' SVD pipeline and scheduler define them.

SVD is an image-to-video model: every frame is conditioned on one image (the "image prompt")
through (a) its CLIP image embedding (cross-attention), (b) its VAE latent, noise-augmented and
concatenated to every frame's noisy latent, and (c) ``added_time_ids`` = (fps - 1, motion
bucket, noise augmentation). The UNet predicts v; with EDM preconditioning
``denoised = c_out * F + c_skip * x`` (c_out = -σ/√(σ²+1), c_skip = 1/(σ²+1)), c_in = 1/√(σ²+1)
and c_noise = ¼ ln σ, which is what ``EulerDiscreteScheduler`` (v-prediction, continuous
timesteps) computes at sampling time.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from einops import rearrange, repeat


def to_model_range(frames: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[F, H, W, 3]`` in 0..1 -> ``[F, 3, H, W]`` in -1..1."""
    return rearrange(frames, "f h w c -> f c h w") * 2.0 - 1.0


def image_embedding(backbone, image: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``[B, 1, D]`` of images ``[B, 3, H, W]`` in -1..1 (as the SVD pipeline does)."""
    processor = backbone.feature_extractor
    crop = processor.crop_size  # a dict, or transformers 5's SizeDict with attributes
    if hasattr(crop, "height"):
        size = (int(crop.height), int(crop.width))
    elif isinstance(crop, dict):
        size = (int(crop["height"]), int(crop["width"]))
    else:
        size = (int(crop), int(crop))
    resized = torch.nn.functional.interpolate(image.float(), size=size, mode="bicubic", align_corners=True, antialias=True)
    resized = ((resized + 1.0) / 2.0).clamp(0, 1)
    pixels = processor(images=list(resized.cpu()), do_normalize=True, do_center_crop=False, do_resize=False,
                       do_rescale=False, return_tensors="pt").pixel_values
    encoder = backbone.image_encoder
    parameter = next(encoder.parameters())
    embeds = encoder(pixels.to(parameter.device, parameter.dtype)).image_embeds
    return embeds[:, None, :]


def encode_latents(backbone, images: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Scaled VAE latents ``[N, 4, h, w]`` (distribution mode) of images ``[N, 3, H, W]`` in -1..1."""
    vae = backbone.vae
    parameter = next(vae.parameters())
    out = [vae.encode(images[i:i + chunk].to(parameter.device, parameter.dtype)).latent_dist.mode()
           for i in range(0, images.shape[0], chunk)]
    return torch.cat(out) * vae.config.scaling_factor


def conditioning_latents(backbone, image: torch.Tensor, noise_aug_strength: float, noise: torch.Tensor) -> torch.Tensor:
    """Unscaled VAE latent ``[B, 4, h, w]`` of the noise-augmented image prompt ``[B, 3, H, W]`` (pipeline convention)."""
    vae = backbone.vae
    parameter = next(vae.parameters())
    augmented = (image + noise_aug_strength * noise).to(parameter.device, parameter.dtype)
    return vae.encode(augmented).latent_dist.mode()


def added_time_ids(fps: float, motion_bucket_id: int, noise_aug_strength: float, batch: int, device, dtype) -> torch.Tensor:
    """``[B, 3]``: (fps - 1, motion bucket, noise augmentation), as StableVideoDiffusionPipeline passes them."""
    ids = torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], dtype=dtype, device=device)
    return ids.expand(batch, 3)


def edm_coefficients(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_in, c_skip, c_out, c_noise)`` for v-prediction EDM at noise levels ``sigma``."""
    c_in = 1.0 / torch.sqrt(sigma**2 + 1.0)
    c_skip = 1.0 / (sigma**2 + 1.0)
    c_out = -sigma / torch.sqrt(sigma**2 + 1.0)
    c_noise = 0.25 * torch.log(sigma)
    return c_in, c_skip, c_out, c_noise


def unet_output(backbone, scaled_noisy: torch.Tensor, timestep: torch.Tensor, cond_latents: torch.Tensor,
                embeds: torch.Tensor, time_ids: torch.Tensor) -> torch.Tensor:
    """Raw UNet output (v) ``[B, F, 4, h, w]`` for input already scaled by c_in, at ``timestep`` (= c_noise).

    ``cond_latents`` ``[B, 4, h, w]`` is repeated over the F frames and concatenated on channels.
    """
    unet = backbone.unet
    frames = scaled_noisy.shape[1]
    model_input = torch.cat([scaled_noisy, repeat(cond_latents, "b c h w -> b f c h w", f=frames).to(scaled_noisy.dtype)], dim=2)
    dtype = next(unet.parameters()).dtype
    timestep = torch.as_tensor(timestep, device=scaled_noisy.device).reshape(-1).to(dtype)
    return unet(model_input.to(dtype), timestep, encoder_hidden_states=embeds.to(dtype),
                added_time_ids=time_ids.to(dtype)).sample


def denoise(backbone, noisy: torch.Tensor, sigma: torch.Tensor, cond_latents: torch.Tensor, embeds: torch.Tensor,
            time_ids: torch.Tensor) -> torch.Tensor:
    """The model's estimate of the clean latents ``[B, F, 4, h, w]`` from ``noisy`` at ``sigma [B]``."""
    c_in, c_skip, c_out, c_noise = edm_coefficients(sigma.view(-1, 1, 1, 1, 1))
    prediction = unet_output(backbone, noisy * c_in, c_noise.reshape(-1), cond_latents, embeds, time_ids)
    return prediction.float() * c_out + noisy.float() * c_skip


@contextmanager
def temporal_layers_off(unet: torch.nn.Module):
    """Make every spatio-temporal blender return its spatial input (``image_only_indicator = 1``).

    diffusers' SVD UNet builds ``image_only_indicator`` as zeros inside ``forward``; this sets it
    to ones on the way into each ``AlphaBlender`` so frames are processed independently, which
    calling the UNet with ``num_frames = 1`` would not do (that still runs the temporal layers).
    """
    from diffusers.models.resnet import AlphaBlender

    def force_images(module, args, kwargs):
        indicator = kwargs.get("image_only_indicator")
        if indicator is not None:
            kwargs["image_only_indicator"] = torch.ones_like(indicator)
        return args, kwargs

    handles = [m.register_forward_pre_hook(force_images, with_kwargs=True)
               for m in unet.modules() if isinstance(m, AlphaBlender)]
    try:
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()
