"""Sampling with the trained LoRAs (DualLoRASample) and the SDEdit clean-up pass (SDEditRefine).

The denoising loop is diffusers' own machinery: ``EulerDiscreteScheduler`` built from the
backbone's scheduler config (EDM Euler, Karras σ), ``scale_model_input`` and ``step``, with the
SVD pipeline's conditioning and its frame-wise linear classifier-free guidance (min → max
guidance from the first frame to the last). What the pipeline cannot do, and this module adds:
LoRA adapters attached for the job, a start from the anchor video noised to a strength, and
videos longer than the backbone's window, sampled as overlapping windows whose predictions are
blended with linear weights in latent space at every step, so there is no seam.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from einops import rearrange

from ..errors import ReCaptureInputError
from ..validation import check_frames
from ..windows import blend_windows, window_starts, window_weights  # noqa: F401 (also imported from here)
from .backbone import OnDevice, placement
from .conditioning import added_time_ids, conditioning_latents, encode_latents, image_embedding, to_model_range, unet_output
from .lora import AdapterSpec, ReCaptureLoRA, adapters_attached


@dataclass(frozen=True)
class SampleSettings:
    steps: int = 25
    seed: int = 0
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    motion_bucket_id: int = 127
    fps: float = 7.0
    noise_aug_strength: float = 0.02
    decode_chunk_size: int = 8
    window: int = 0  # 0: the backbone's own frame count (14 SVD, 25 SVD-XT)
    overlap: int = 4
    strength: float = 1.0  # 1: start from pure noise; below 1: from the input video noised this far (SDEdit)

    def check(self, num_frames: int, window: int) -> None:
        if self.steps < 1:
            raise ReCaptureInputError("steps", f"must be at least 1, got {self.steps}", "Use 25.")
        if not 0.0 <= self.strength <= 1.0:
            raise ReCaptureInputError("strength", f"must lie in 0..1, got {self.strength}", "1 = pure noise, 0 = no change.")
        if num_frames > window and not 0 <= self.overlap < window:
            raise ReCaptureInputError("overlap", f"must be at least 0 and below the window ({window}), got {self.overlap}",
                                      f"Use about a quarter of the window, e.g. {max(1, window // 4)}.")


def decode(backbone, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """Latents ``[1, F, 4, h, w]`` -> IMAGE ``[F, H, W, 3]`` in 0..1 on the CPU, decoding ``chunk`` frames at a time."""
    vae = backbone.vae
    flat = latents[0] / vae.config.scaling_factor
    parameter = next(vae.parameters())
    frames = []
    for i in range(0, flat.shape[0], max(1, chunk)):
        part = flat[i:i + chunk].to(parameter.device, parameter.dtype)
        frames.append(vae.decode(part, num_frames=part.shape[0]).sample.float().cpu())
    video = torch.cat(frames)
    return rearrange((video / 2 + 0.5).clamp(0, 1), "f c h w -> f h w c")


def generate(backbone, video: torch.Tensor, adapters: list[AdapterSpec], settings: SampleSettings, *, device="cpu",
             on_device: OnDevice | None = None, progress: Callable[[int, int], None] | None = None,
             check_interrupt: Callable[[], None] | None = None, output_latents: bool = False,
             video_name: str = "anchor") -> torch.Tensor:
    """The shared sampling loop. ``video`` IMAGE ``[F, H, W, 3]``: each window's first frame is its image
    prompt, and with ``strength < 1`` the video itself is the starting point, noised that far.
    ``video_name`` is the input errors about it name. Inputs are checked before ``on_device`` (if
    given) places the backbone.

    Returns IMAGE ``[F, H, W, 3]``, or the final latents ``[1, F, 4, h, w]`` with ``output_latents``.
    """
    check_frames(video, video_name)
    backbone.check_frames(video, video_name)
    num_frames = video.shape[0]
    window = settings.window or backbone.num_frames
    settings.check(num_frames, window)
    with placement(device, on_device) as device:
        return _sample(backbone, video, adapters, settings, window, device, progress, check_interrupt, output_latents)


def _sample(backbone, video, adapters, settings, window, device, progress, check_interrupt, output_latents):
    """The loop of :func:`generate`, on ``device``, after every check."""
    from diffusers import EulerDiscreteScheduler

    num_frames = video.shape[0]
    starts = window_starts(num_frames, window, settings.overlap)
    weights = window_weights(num_frames, window, starts)
    with torch.device("cpu"):  # its tables are built on the CPU whatever default device another pack set
        scheduler = EulerDiscreteScheduler.from_config(backbone.scheduler_config)
    scheduler.set_timesteps(settings.steps, device=device)
    first = int(round(settings.steps * (1.0 - settings.strength)))
    timesteps = scheduler.timesteps[first:]
    generator = torch.Generator().manual_seed(settings.seed)

    with torch.no_grad():
        frames = to_model_range(video.float())
        prompts = frames[starts]
        embeds = torch.cat([image_embedding(backbone, prompts[i:i + 1].to(device)) for i in range(len(starts))]).float()
        cond = torch.cat([conditioning_latents(backbone, prompts[i:i + 1].to(device), settings.noise_aug_strength,
                                               torch.randn(prompts[i:i + 1].shape, generator=generator, device="cpu").to(device))
                          for i in range(len(starts))]).float()
        height, width = video.shape[1] // backbone.vae_factor, video.shape[2] // backbone.vae_factor
        noise = torch.randn(1, num_frames, 4, height, width, generator=generator, device="cpu").to(device)
        if first == 0:
            latents = noise * scheduler.init_noise_sigma
        elif len(timesteps) == 0:
            latents = encode_latents(backbone, frames.to(device))[None].float()
        else:
            clean = encode_latents(backbone, frames.to(device))[None].float()
            latents = scheduler.add_noise(clean, noise, timesteps[:1])
        guidance = torch.linspace(settings.min_guidance, settings.max_guidance, window, device=device).view(1, window, 1, 1, 1)
        time_ids = added_time_ids(settings.fps, settings.motion_bucket_id, settings.noise_aug_strength, 2, device, torch.float32)
        total = len(timesteps) * len(starts)
        done = 0
        with adapters_attached(backbone.unet, adapters):
            for t in timesteps:
                scaled = scheduler.scale_model_input(latents, t)
                outputs = []
                for k, start in enumerate(starts):
                    if check_interrupt is not None:
                        check_interrupt()
                    clip = scaled[:, start:start + window]
                    span = clip.shape[1]
                    # Classifier-free guidance as the pipeline does it: zero embeddings and zero image latents.
                    both = unet_output(backbone, torch.cat([clip, clip]), t.repeat(2),
                                       torch.cat([torch.zeros_like(cond[k:k + 1]), cond[k:k + 1]]),
                                       torch.cat([torch.zeros_like(embeds[k:k + 1]), embeds[k:k + 1]]), time_ids).float()
                    uncond, conditional = both.chunk(2)
                    outputs.append(uncond + guidance[:, :span] * (conditional - uncond))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                latents = scheduler.step(blend_windows(outputs, starts, weights), t, latents).prev_sample
    return latents if output_latents else decode(backbone, latents, settings.decode_chunk_size)


def _adapter(name: str, lora: ReCaptureLoRA | None, strength: float, kind: str, backbone, input_name: str):
    if lora is None:
        return []
    lora.check_use(backbone, kind, input_name)
    return [AdapterSpec.from_lora(name, lora, strength)]


def dual_lora_sample(backbone, anchor: torch.Tensor, temporal_lora: ReCaptureLoRA | None = None,
                     spatial_lora: ReCaptureLoRA | None = None, temporal_strength: float = 1.0,
                     spatial_strength: float = 1.0, settings: SampleSettings = SampleSettings(), **kwargs) -> torch.Tensor:
    """ReCapture's sampling: SVD img2vid from the first anchor frame with both LoRAs. Returns IMAGE ``[F, H, W, 3]``."""
    adapters = (_adapter("rc_temporal", temporal_lora, temporal_strength, "temporal", backbone, "temporal_lora")
                + _adapter("rc_spatial", spatial_lora, spatial_strength, "spatial", backbone, "spatial_lora"))
    return generate(backbone, anchor, adapters, settings, **kwargs)


def sdedit_refine(backbone, frames: torch.Tensor, spatial_lora: ReCaptureLoRA | None = None, spatial_strength: float = 1.0,
                  settings: SampleSettings = SampleSettings(strength=0.3), **kwargs) -> torch.Tensor:
    """Re-noise the sampled frames to ``settings.strength`` and denoise with the spatial LoRA only.

    Strength 0 runs no denoising step: the result is the VAE round trip of the input.
    """
    adapters = _adapter("rc_spatial", spatial_lora, spatial_strength, "spatial", backbone, "spatial_lora")
    return generate(backbone, frames, adapters, settings, video_name="frames", **kwargs)
