"""The diffusers SVD as a :class:`~recapture_core.finetune.TrainingBackbone`, and its two trainers.

SVD's EDM objective (log-normal σ, v-prediction preconditioning, loss weight (σ²+1)/σ²), its
image conditioning (CLIP embedding and noise-augmented VAE latents of the prompt frame), peft
adapters on the UNet, gradient checkpointing and autocast on CUDA. The loop, the examples, the
mask reduction and the masked loss are the shared ones of :mod:`recapture_core.finetune`.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from typing import Callable

import torch

from ..finetune import (Progress, TrainSettings, edm_loss_weight, latent_valid_mask, lognormal_sigma, train_spatial,
                        train_temporal)
from .backbone import OnDevice, SVDBackbone, placement
from .conditioning import (added_time_ids, conditioning_latents, denoise, encode_latents, image_embedding,
                           temporal_layers_off, to_model_range)
from .lora import KINDS, AdapterSpec, ReCaptureLoRA, adapters_attached, extract_state_dict

__all__ = ["TrainSettings", "DiffusersSVDTraining", "train_spatial_lora", "train_temporal_lora", "latent_valid_mask",
           "float32_compute_on_cpu"]


def _autocast(device: torch.device, mode: str):
    if device.type != "cuda" or mode == "no":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.float16 if mode == "fp16" else torch.bfloat16)


@contextmanager
def float32_compute_on_cpu(unet: torch.nn.Module, device: torch.device):
    """On the CPU, train a half-precision UNet in float32 and put every tensor back in its own dtype after.

    The CPU has no autocast for fp16 and its half-precision kernels are slow, and a backward pass
    through fp16 layers without loss scaling loses its gradients; fp16 -> fp32 -> fp16 is exact, so
    the shared backbone comes back bit for bit. On CUDA the weights keep their dtype (autocast and
    loss scaling handle half precision there).
    """
    tensors = [t for t in (*unet.parameters(), *unet.buffers()) if t.is_floating_point() and t.dtype != torch.float32]
    if torch.device(device).type != "cpu" or not tensors:
        yield
        return
    saved = [t.dtype for t in tensors]
    with torch.no_grad():
        for tensor in tensors:
            tensor.data = tensor.data.float()
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, dtype in zip(tensors, saved):
                tensor.data = tensor.data.to(dtype)


class _SVDSession:
    """The EDM step of the diffusers SVD with the job's adapters attached."""

    def __init__(self, job: "DiffusersSVDTraining", parameters: list[torch.Tensor], settings: TrainSettings):
        self.job, self.parameters, self.settings = job, parameters, settings
        self.device = job.device
        self.weight_dtype = str(job.backbone.dtype).replace("torch.", "")
        weights_fp16 = job.backbone.dtype == torch.float16
        self.computes_in_fp16 = self.device.type == "cuda" and (weights_fp16 or settings.mixed_precision == "fp16")

    def draw_sigma(self, generator, settings):
        return lognormal_sigma(generator, settings)

    def predict(self, latents, noise, sigma, prompt, generator):
        s, job = self.settings, self.job
        sigma = sigma.to(self.device)
        image = job.prompts[prompt:prompt + 1].to(self.device)
        with torch.no_grad():
            aug = torch.randn(image.shape, generator=generator).to(self.device)
            cond = conditioning_latents(job.backbone, image, s.noise_aug_strength, aug)
        noisy = (latents + noise * sigma)[None]  # [1, F, 4, h, w]
        ids = added_time_ids(s.fps, s.motion_bucket_id, s.noise_aug_strength, 1, self.device, torch.float32)
        with _autocast(self.device, s.mixed_precision):
            denoised = denoise(job.backbone, noisy, sigma, cond, job.embeds[prompt:prompt + 1], ids)
        return denoised[0], latents, edm_loss_weight(sigma)


class DiffusersSVDTraining:
    """A diffusers :class:`SVDBackbone` as a training backbone, on ``device`` or placed by the host's ``on_device``.

    ``frozen``: a trained spatial LoRA attached underneath (not trained) while a temporal one trains.
    """

    temporal_factor = 1

    def __init__(self, backbone: SVDBackbone, device="cpu", on_device: OnDevice | None = None,
                 frozen: ReCaptureLoRA | None = None):
        self.backbone, self.frozen = backbone, frozen
        self.name = backbone.name
        self.spatial_factor = backbone.vae_factor
        self.window = backbone.num_frames
        self.device = torch.device(device)
        self._requested, self._on_device = device, on_device
        self.prompts = self.embeds = None

    def check_frames(self, frames, input_name, clip=True):
        self.backbone.check_frames(frames, input_name)

    @contextmanager
    def placed(self):
        with placement(self._requested, self._on_device) as device:
            self.device = torch.device(device)
            yield

    def encode(self, video, prompts, single_frames):
        # SVD's VAE has no temporal compression: frames encode alike one by one or as a clip.
        video = to_model_range(video)
        latents = encode_latents(self.backbone, video)
        self.prompts = video[prompts]
        self.embeds = torch.cat([image_embedding(self.backbone, self.prompts[i:i + 8].to(self.device))
                                 for i in range(0, len(prompts), 8)]).float()
        return latents

    def train(self, kind, settings, spatial_only, example_shape, fit):
        unet = self.backbone.unet
        specs = [AdapterSpec("rc_trainable", kind, settings.rank, settings.alpha, trainable=True, targets=settings.targets)]
        if self.frozen is not None:
            specs.insert(0, AdapterSpec.from_lora("rc_spatial", self.frozen))
        with torch.enable_grad(), float32_compute_on_cpu(unet, self.device):
            with adapters_attached(unet, specs, gradient_checkpointing=settings.gradient_checkpointing,
                                   init_seed=settings.seed) as trainable, \
                    (temporal_layers_off(unet) if spatial_only else nullcontext()):
                unet.train()
                losses = fit(_SVDSession(self, trainable["rc_trainable"], settings))
                state = extract_state_dict(unet, "rc_trainable")
        tail = losses[-min(10, len(losses)):]
        b = self.backbone
        return ReCaptureLoRA(kind=kind, rank=settings.rank, alpha=settings.alpha, targets=settings.targets or KINDS[kind],
                             state_dict=state, backbone_architecture=b.architecture_id, backbone_weights=b.weights_id,
                             backbone_name=b.name, layers_per_block=int(unet.config.layers_per_block),
                             steps=settings.steps, final_loss=sum(tail) / len(tail),
                             settings={**asdict(settings), "losses": losses})


def train_spatial_lora(backbone: SVDBackbone, frames: torch.Tensor, settings: TrainSettings = TrainSettings(), *,
                       device="cpu", on_device: OnDevice | None = None, progress: Progress | None = None,
                       check_interrupt: Callable[[], None] | None = None) -> ReCaptureLoRA:
    """Spatial LoRA of the diffusers SVD (see :func:`recapture_core.finetune.train_spatial`)."""
    job = DiffusersSVDTraining(backbone, device, on_device)
    return train_spatial(job, frames, settings, progress=progress, check_interrupt=check_interrupt)


def train_temporal_lora(backbone: SVDBackbone, anchor: torch.Tensor, valid_mask: torch.Tensor,
                        settings: TrainSettings = TrainSettings(), spatial_lora: ReCaptureLoRA | None = None, *,
                        device="cpu", on_device: OnDevice | None = None, progress: Progress | None = None,
                        check_interrupt: Callable[[], None] | None = None) -> ReCaptureLoRA:
    """Temporal LoRA of the diffusers SVD on top of a frozen ``spatial_lora`` (see
    :func:`recapture_core.finetune.train_temporal`)."""
    if spatial_lora is not None:
        spatial_lora.check_use(backbone, "spatial", "spatial_lora")
    job = DiffusersSVDTraining(backbone, device, on_device, frozen=spatial_lora)
    return train_temporal(job, anchor, valid_mask, settings, progress=progress, check_interrupt=check_interrupt)
