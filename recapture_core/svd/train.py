"""The two LoRA trainers of ReCapture's masked video fine-tuning.

* Spatial LoRA: random single frames of the source video, temporal layers switched off, so it
  learns appearance only.
* Temporal LoRA: windows of the anchor video with the spatial LoRA attached and frozen; the EDM
  loss counts only latent cells whose pixels are all valid, so holes contribute exactly zero.

Both use SVD's EDM objective (log-normal σ, v-prediction preconditioning, loss weight
(σ²+1)/σ²), AdamW on the LoRA weights only, a seed for everything random, gradient
checkpointing, and autocast on CUDA.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..errors import ReCaptureInputError
from ..masks import fill_holes
from ..validation import check_frames, check_mask
from .backbone import OnDevice, placement
from .conditioning import (added_time_ids, conditioning_latents, denoise, encode_latents, image_embedding,
                           temporal_layers_off, to_model_range)
from .lora import KINDS, AdapterSpec, ReCaptureLoRA, adapters_attached, extract_state_dict

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrainSettings:
    """Paper defaults: rank 16, learning rate 5e-4, 400 steps."""

    steps: int = 400
    learning_rate: float = 5e-4
    rank: int = 16
    alpha: float = 16.0
    seed: int = 0
    frames_per_step: int = 2  # spatial: independent frames per step; temporal: ignored (a window)
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    p_mean: float = 0.7  # log-normal σ, as in SVD's training
    p_std: float = 1.6
    targets: str = ""  # regex over UNet module names; empty: the paper's targets for the kind
    gradient_checkpointing: bool = True
    mixed_precision: str = "auto"  # "auto": bf16 autocast on CUDA, none on the CPU; or "no", "bf16", "fp16"

    def check(self) -> None:
        if self.steps < 1:
            raise ReCaptureInputError("steps", f"must be at least 1, got {self.steps}", "Use 400 (the paper's setting).")
        if self.rank < 1:
            raise ReCaptureInputError("rank", f"must be at least 1, got {self.rank}", "Use 16 (the paper's setting).")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ReCaptureInputError("learning_rate", f"must be positive, got {self.learning_rate}", "Use 5e-4.")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ReCaptureInputError("mixed_precision", f"unknown value {self.mixed_precision!r}", "Use auto, no, bf16 or fp16.")


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


def _diverged(step: int, steps: int, loss: float, unet: torch.nn.Module) -> ReCaptureInputError:
    dtype = str(next(unet.parameters()).dtype).replace("torch.", "")
    return ReCaptureInputError(
        "learning_rate", f"training diverged: the loss became {loss} at step {step} of {steps} (weights in {dtype}); "
        "no LoRA was produced", "Lower the learning rate (the paper: 5e-4), or load the backbone in bf16 or fp32.")


def latent_valid_mask(valid_mask: torch.Tensor, factor: int) -> torch.Tensor:
    """``[F, H, W]`` pixel mask -> ``[F, H/factor, W/factor]``: 1 where every pixel of the cell is valid (min-pool)."""
    binary = (valid_mask >= 1.0).float()[:, None]
    return (-torch.nn.functional.max_pool2d(-binary, factor, factor))[:, 0]


class _Trainer:
    """What both trainers share: seeded randomness, the EDM step, the optimiser loop."""

    def __init__(self, backbone, settings: TrainSettings, device, progress: Progress | None,
                 check_interrupt: Callable[[], None] | None):
        self.backbone, self.settings, self.device = backbone, settings, torch.device(device)
        self.progress, self.check_interrupt = progress, check_interrupt
        self.generator = torch.Generator().manual_seed(settings.seed)

    def _computes_in_fp16(self, unet: torch.nn.Module) -> bool:
        weights_fp16 = next(unet.parameters()).dtype == torch.float16
        autocast_fp16 = self.device.type == "cuda" and self.settings.mixed_precision == "fp16"
        return self.device.type == "cuda" and (weights_fp16 or autocast_fp16)

    def randn(self, *shape) -> torch.Tensor:
        # Drawn on the CPU (the generator's device), so a seed gives the same run on any device.
        return torch.randn(*shape, generator=self.generator, device="cpu")

    def step_loss(self, latents, cond_image, embeds, latent_mask=None, sigma: float | None = None) -> torch.Tensor:
        """EDM loss of one clip: latents ``[1, F, 4, h, w]``, image prompt ``[1, 3, H, W]``, embeds ``[1, 1, D]``.

        σ is drawn from the training distribution unless given.
        """
        s = self.settings
        drawn = torch.exp(self.randn(1) * s.p_std + s.p_mean)
        sigma = (drawn if sigma is None else torch.tensor([float(sigma)])).to(self.device)
        noise = self.randn(*latents.shape).to(self.device)
        with torch.no_grad():
            cond = conditioning_latents(self.backbone, cond_image, s.noise_aug_strength, self.randn(*cond_image.shape).to(self.device))
        noisy = latents + noise * sigma.view(-1, 1, 1, 1, 1)
        ids = added_time_ids(s.fps, s.motion_bucket_id, s.noise_aug_strength, 1, self.device, torch.float32)
        with _autocast(self.device, s.mixed_precision):
            denoised = denoise(self.backbone, noisy, sigma, cond, embeds, ids)
        weight = (sigma**2 + 1.0) / sigma**2
        error = weight.view(-1, 1, 1, 1, 1) * (denoised.float() - latents.float()) ** 2
        if latent_mask is None:
            return error.mean()
        mask = latent_mask[None, :, None].to(error)  # [1, F, 1, h, w]
        return (error * mask).sum() / (mask.sum() * error.shape[2])

    def run(self, specs: list[AdapterSpec], sample_clip: Callable[[], tuple], spatial_only: bool, kind: str) -> ReCaptureLoRA:
        s = self.settings
        unet = self.backbone.unet
        losses = []
        with torch.enable_grad(), float32_compute_on_cpu(unet, self.device):
            with adapters_attached(unet, specs, gradient_checkpointing=s.gradient_checkpointing, init_seed=s.seed) as trainable, \
                    (temporal_layers_off(unet) if spatial_only else nullcontext()):
                params = trainable["rc_trainable"]
                optimizer = torch.optim.AdamW(params, lr=s.learning_rate)
                # fp16 gradients underflow without loss scaling; the parameters it unscales are float32.
                scaler = torch.amp.GradScaler(self.device.type, enabled=self._computes_in_fp16(unet))
                unet.train()
                for step in range(s.steps):
                    if self.check_interrupt is not None:
                        self.check_interrupt()
                    loss = self.step_loss(*sample_clip())
                    losses.append(float(loss.detach()))
                    if not math.isfinite(losses[-1]):
                        raise _diverged(step + 1, s.steps, losses[-1], unet)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    if self.progress is not None:
                        self.progress(step + 1, s.steps, losses[-1])
                state = extract_state_dict(unet, "rc_trainable")
        if not all(torch.isfinite(tensor).all() for tensor in state.values()):
            raise _diverged(s.steps, s.steps, losses[-1], unet)
        tail = losses[-min(10, len(losses)):]
        return ReCaptureLoRA(kind=kind, rank=s.rank, alpha=s.alpha, targets=s.targets or KINDS[kind], state_dict=state, backbone_architecture=self.backbone.architecture_id,
                             backbone_weights=self.backbone.weights_id, backbone_name=self.backbone.name,
                             layers_per_block=int(self.backbone.unet.config.layers_per_block), steps=s.steps,
                             final_loss=sum(tail) / len(tail), settings={**asdict(s), "losses": losses})


def train_spatial_lora(backbone, frames: torch.Tensor, settings: TrainSettings = TrainSettings(), *,
                       device="cpu", on_device: OnDevice | None = None, progress: Progress | None = None,
                       check_interrupt: Callable[[], None] | None = None) -> ReCaptureLoRA:
    """Spatial LoRA on random single frames of the source video ``[F, H, W, 3]``, temporal layers off.

    Every frame is conditioned on the video's first frame, the image prompt at sampling time.
    Inputs are checked before ``on_device`` (if given) places the backbone and training starts.
    """
    check_frames(frames, "frames")
    backbone.check_frames(frames, "frames")
    settings.check()
    with placement(device, on_device) as device:
        trainer = _Trainer(backbone, settings, device, progress, check_interrupt)
        with torch.no_grad():
            video = to_model_range(frames.clone().float())
            latents = encode_latents(backbone, video).float()  # [F, 4, h, w]
            prompt = video[:1].to(trainer.device)
            embeds = image_embedding(backbone, prompt).float()
        count = min(settings.frames_per_step, frames.shape[0])

        def sample_clip():
            picks = torch.randperm(frames.shape[0], generator=trainer.generator, device="cpu")[:count]
            return latents[picks][None], prompt, embeds

        return trainer.run([AdapterSpec("rc_trainable", "spatial", settings.rank, settings.alpha, trainable=True,
                                        targets=settings.targets)],
                           sample_clip, spatial_only=True, kind="spatial")


def train_temporal_lora(backbone, anchor: torch.Tensor, valid_mask: torch.Tensor,
                        settings: TrainSettings = TrainSettings(), spatial_lora: ReCaptureLoRA | None = None, *,
                        device="cpu", on_device: OnDevice | None = None, progress: Progress | None = None,
                        check_interrupt: Callable[[], None] | None = None) -> ReCaptureLoRA:
    """Temporal LoRA on the anchor video ``[F, H, W, 3]`` with the loss on valid pixels only.

    Holes are filled from valid pixels before VAE encoding, so hole contents never reach the
    model; the loss counts latent cells whose pixels are all valid. Videos longer than the
    backbone's window train on random windows, each conditioned on its first frame. Inputs are
    checked before ``on_device`` (if given) places the backbone and training starts.
    """
    check_frames(anchor, "anchor")
    valid_mask = check_mask(valid_mask, "valid_mask", anchor, "anchor", per_frame=True)
    backbone.check_frames(anchor, "anchor")
    settings.check()
    if anchor.shape[0] < 2:
        raise ReCaptureInputError("anchor", "has a single frame; the temporal LoRA learns motion between frames",
                                  "Give a video of at least 2 frames.")
    if spatial_lora is not None:
        spatial_lora.check_use(backbone, "spatial", "spatial_lora")
    valid_mask = valid_mask.clone()
    latent_mask = latent_valid_mask(valid_mask, backbone.vae_factor)
    if latent_mask.sum() == 0:
        raise ReCaptureInputError("valid_mask", "has no valid region at the model's resolution (no "
                                  f"{backbone.vae_factor}x{backbone.vae_factor} block of valid pixels)",
                                  "Use a smaller camera move (fewer holes), or check that the mask is not inverted "
                                  "(valid_mask: 1 = rendered from the source).")
    window = min(backbone.num_frames, anchor.shape[0])
    with placement(device, on_device) as device:
        trainer = _Trainer(backbone, settings, device, progress, check_interrupt)
        with torch.no_grad():
            video = to_model_range(fill_holes(anchor.clone().float(), valid_mask))
            latents = encode_latents(backbone, video).float()
            starts = range(anchor.shape[0] - window + 1)
            prompts = video[list(starts)]
            embeds = torch.cat([image_embedding(backbone, prompts[i:i + 8].to(trainer.device))
                                for i in range(0, len(prompts), 8)]).float()
        latent_mask = latent_mask.to(trainer.device)

        def sample_clip():
            start = int(torch.randint(len(starts), (1,), generator=trainer.generator, device="cpu"))
            return (latents[start:start + window][None], prompts[start:start + 1].to(trainer.device),
                    embeds[start:start + 1], latent_mask[start:start + window])

        specs = [AdapterSpec("rc_trainable", "temporal", settings.rank, settings.alpha, trainable=True,
                             targets=settings.targets)]
        if spatial_lora is not None:
            specs.insert(0, AdapterSpec.from_lora("rc_spatial", spatial_lora))
        return trainer.run(specs, sample_clip, spatial_only=False, kind="temporal")


