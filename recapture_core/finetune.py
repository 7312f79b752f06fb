"""ReCapture's masked video fine-tuning, written once against a backbone interface.

* Spatial LoRA: random single frames of the source video with the backbone's temporal mixing
  switched off (SVD: blenders forced to their spatial path; a joint-attention DiT such as Wan:
  single-frame clips), so it learns appearance only.
* Temporal LoRA: the anchor video with the spatial LoRA frozen underneath; the loss counts only
  latent cells whose pixels are all valid (in every frame the cell covers), and holes are filled
  before encoding, so hole pixels have exactly zero effect on the weights.

A backbone (:class:`TrainingBackbone`) supplies what differs between models: encoding, the
conditioning, the model's prediction and its loss weight, which modules the adapters target,
how "spatial only" is done, and where the job runs. The diffusers SVD
(``recapture_core/svd/train.py``) and ComfyUI's own MODEL (``nodes/_comfy_backbone.py``, since the
core never imports ComfyUI) are the two implementations; the loop, the sampling of examples, the
mask reduction and the masked loss below are shared by both.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, ContextManager, Protocol, TypeVar

import torch

from .errors import ReCaptureInputError
from .masks import fill_holes
from .validation import check_frames, check_mask
from .windows import pad_to_cover

Progress = Callable[[int, int, float], None]
Result = TypeVar("Result")


@dataclass(frozen=True)
class TrainSettings:
    """Paper defaults: rank 16, learning rate 5e-4, 400 steps.

    ``fps``, ``motion_bucket_id`` and ``noise_aug_strength`` are SVD's micro-conditioning; a
    backbone that takes its conditioning from the host graph ignores them.
    """

    steps: int = 400
    learning_rate: float = 5e-4
    rank: int = 16
    alpha: float = 16.0
    seed: int = 0
    frames_per_step: int = 2  # spatial: independent frames per step; temporal: ignored (a window)
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    p_mean: float = 0.7  # log-normal σ, as in SVD's (EDM) training
    p_std: float = 1.6
    targets: str = ""  # regex over module names; empty: the paper's targets for the kind
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
        try:
            re.compile(self.targets)
        except re.error as err:
            raise ReCaptureInputError("targets", f"is not a valid regular expression ({err})",
                                      "Leave it empty for the paper's targets.") from None


class Session(Protocol):
    """One training job on a backbone with its adapters attached (given to the loop by ``TrainingBackbone.train``)."""

    parameters: list[torch.Tensor]  # the trainable adapter weights, float32 whatever the model's dtype
    device: torch.device
    computes_in_fp16: bool  # fp16 gradients need loss scaling
    weight_dtype: str  # for messages

    def draw_sigma(self, generator: torch.Generator, settings: TrainSettings) -> torch.Tensor:
        """A training noise level ``[1]`` on the CPU."""

    def predict(self, latents: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, prompt: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(denoised, target, weight)`` for clean ``latents [f, C, h, w]`` noised with ``noise`` at ``sigma``.

        ``prompt`` indexes the conditioning images given to ``encode``; ``weight`` scales the squared error.
        """


class TrainingBackbone(Protocol[Result]):
    """What the trainers need from a video diffusion backbone."""

    name: str
    spatial_factor: int  # pixels per latent cell side (the VAE's spatial compression)
    temporal_factor: int  # video frames per latent frame after the first (1: none; Wan: 4, frames = 4k + 1)
    window: int  # the most latent frames one temporal training step takes

    def check_frames(self, frames: torch.Tensor, input_name: str, clip: bool = True) -> None:
        """Frame size rules of the model, and with ``clip`` its frame-count rule; a clear error naming the fix."""

    def placed(self) -> ContextManager[None]:
        """The job's placement (encode and train inside it)."""

    def encode(self, video: torch.Tensor, prompts: list[int], single_frames: bool) -> torch.Tensor:
        """``[F, H, W, 3]`` in 0..1 -> latents ``[f, C, h, w]``; also prepares conditioning on the frames ``prompts``.

        ``single_frames``: encode every frame as a clip of its own (``f == F``).
        """

    def train(self, kind: str, settings: TrainSettings, spatial_only: bool, example_shape: tuple[int, ...],
              fit: Callable[[Session], list[float]]) -> Result:
        """Attach a trainable ``kind`` adapter, run ``fit`` on the session, detach, return the trained LoRA."""


def target_modules(model: torch.nn.Module, targets: str, default: str, example: str) -> list[str]:
    """Names of ``model``'s Linear modules matching the regex ``targets`` (``default`` when empty), in full."""
    try:
        pattern = re.compile(targets or default)
    except re.error as err:
        raise ReCaptureInputError("targets", f"is not a valid regular expression ({err})",
                                  "Leave it empty for the paper's targets.") from None
    found = [name for name, module in model.named_modules() if pattern.fullmatch(name) and isinstance(module, torch.nn.Linear)]
    if not found:
        raise ReCaptureInputError("targets", f"matches no Linear module of the model ({targets or default!r})",
                                  f"Leave it empty for the paper's targets, or match names like '{example}'.")
    return found


def latent_valid_mask(valid_mask: torch.Tensor, spatial_factor: int, temporal_factor: int = 1) -> torch.Tensor:
    """``[F, H, W]`` pixel mask -> ``[f, H/s, W/s]``: 1 where every pixel of every frame the cell covers is valid.

    Temporal compression is causal as in Wan's and LTX's VAEs: latent frame 0 is frame 0 alone,
    latent frame i covers frames ``t(i-1)+1 .. t·i`` (so ``F = t·k + 1``).
    """
    binary = (valid_mask >= 1.0).float()[:, None]
    cells = (-torch.nn.functional.max_pool2d(-binary, spatial_factor, spatial_factor))[:, 0]
    if temporal_factor == 1:
        return cells
    frames = cells.shape[0]
    if (frames - 1) % temporal_factor:
        raise ValueError(f"{frames} frames do not fit a temporal compression of {temporal_factor} (need {temporal_factor}k+1)")
    rest = cells[1:].reshape(-1, temporal_factor, *cells.shape[1:]).amin(dim=1)
    return torch.cat([cells[:1], rest])


def masked_mse(denoised: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               latent_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted squared error of ``[f, C, h, w]`` predictions, averaged over valid cells ``[f, h, w]`` only.

    A cell outside the mask is multiplied by exactly zero, so its content has no gradient at all.
    """
    error = weight.reshape(-1, *([1] * (denoised.ndim - 1))) * (denoised.float() - target.float()) ** 2
    if latent_mask is None:
        return error.mean()
    mask = latent_mask[:, None].to(error)
    return (error * mask).sum() / (mask.sum() * error.shape[1])


def lognormal_sigma(generator: torch.Generator, settings: TrainSettings, sigma_min: float = 0.0,
                    sigma_max: float = math.inf) -> torch.Tensor:
    """EDM's training noise level: log σ ~ N(p_mean, p_std), clamped to the model's range. ``[1]``, CPU."""
    drawn = torch.exp(torch.randn(1, generator=generator) * settings.p_std + settings.p_mean)
    return drawn.clamp(sigma_min, sigma_max)


def uniform_flow_sigma(generator: torch.Generator, percent_to_sigma: Callable[[float], float],
                       sigma_min: float = 1e-3) -> torch.Tensor:
    """A rectified-flow training noise level: uniform in the model's schedule (``percent_to_sigma``, which
    carries its shift), kept off 0 where the velocity weight 1/σ² has no limit. ``[1]``, CPU."""
    drawn = float(torch.rand(1, generator=generator))
    return torch.tensor([max(percent_to_sigma(drawn), sigma_min)])


def flow_loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """1/σ²: with x_σ = σ·noise + (1-σ)·x0, the velocity error is the x0 error divided by σ."""
    return 1.0 / sigma**2


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 1.0) -> torch.Tensor:
    """EDM's λ(σ) = (σ² + σ_d²) / (σ·σ_d)², so every noise level contributes alike."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def diverged(step: int, steps: int, loss: float, weight_dtype: str) -> ReCaptureInputError:
    return ReCaptureInputError(
        "learning_rate", f"training diverged: the loss became {loss} at step {step} of {steps} (weights in "
        f"{weight_dtype}); no LoRA was produced", "Lower the learning rate (the paper: 5e-4), or load the backbone in bf16 or fp32.")


def optimise(session: Session, settings: TrainSettings, next_example: Callable[[], tuple], generator: torch.Generator,
             progress: Progress | None = None, check_interrupt: Callable[[], None] | None = None) -> list[float]:
    """AdamW on the session's adapter weights; returns the loss of every step.

    ``next_example()`` gives ``(latents [f, C, h, w], prompt index, latent mask [f, h, w] or None)``.
    A loss that stops being finite ends training with an error (no LoRA is produced).
    """
    optimizer = torch.optim.AdamW(session.parameters, lr=settings.learning_rate)
    # fp16 gradients underflow without loss scaling; the parameters it unscales are float32.
    scaler = torch.amp.GradScaler(session.device.type, enabled=session.computes_in_fp16)
    losses: list[float] = []
    for step in range(settings.steps):
        if check_interrupt is not None:
            check_interrupt()
        latents, prompt, latent_mask = next_example()
        sigma = session.draw_sigma(generator, settings)
        # Drawn on the CPU (the generator's device), so a seed gives the same run on any device.
        noise = torch.randn(latents.shape, generator=generator).to(session.device)
        denoised, target, weight = session.predict(latents.to(session.device), noise, sigma, prompt, generator)
        mask = None if latent_mask is None else latent_mask.to(session.device)
        loss = masked_mse(denoised, target, weight.to(session.device), mask)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise diverged(step + 1, settings.steps, losses[-1], session.weight_dtype)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if progress is not None:
            progress(step + 1, settings.steps, losses[-1])
    if not all(torch.isfinite(p).all() for p in session.parameters):
        raise diverged(settings.steps, settings.steps, losses[-1], session.weight_dtype)
    return losses


def train_spatial(backbone: TrainingBackbone[Result], frames: torch.Tensor, settings: TrainSettings = TrainSettings(), *,
                  progress: Progress | None = None, check_interrupt: Callable[[], None] | None = None) -> Result:
    """Spatial LoRA on random single frames of the source video ``[F, H, W, 3]``, temporal mixing off.

    Every frame is conditioned on the video's first frame, the image prompt at sampling time.
    Inputs are checked before the backbone is placed and training starts.
    """
    check_frames(frames, "frames")
    backbone.check_frames(frames, "frames", clip=False)  # single frames: any count
    settings.check()
    generator = torch.Generator().manual_seed(settings.seed)
    count = min(settings.frames_per_step, frames.shape[0])
    with backbone.placed():
        with torch.no_grad():
            latents = backbone.encode(frames.clone().float(), [0], single_frames=True).float()  # [F, C, h, w]

        def next_example():
            picks = torch.randperm(latents.shape[0], generator=generator)[:count]
            return latents[picks], 0, None

        def fit(session: Session) -> list[float]:
            return optimise(session, settings, next_example, generator, progress, check_interrupt)

        return backbone.train("spatial", settings, True, (count, *latents.shape[1:]), fit)


def train_temporal(backbone: TrainingBackbone[Result], anchor: torch.Tensor, valid_mask: torch.Tensor,
                   settings: TrainSettings = TrainSettings(), *, progress: Progress | None = None,
                   check_interrupt: Callable[[], None] | None = None) -> Result:
    """Temporal LoRA on the anchor video ``[F, H, W, 3]`` with the loss on valid pixels ``[F, H, W]`` only.

    Holes are filled from valid pixels before encoding, so hole contents never reach the model;
    the loss counts latent cells whose pixels are all valid. Clips longer than the backbone's
    window train on random windows of its length, each conditioned on its own first frame (the
    backbone encodes the clip once, in chunks, and prepares only the drawn windows' prompts), so
    the memory of a step does not grow with the clip. A length the VAE cannot take is padded
    (:func:`recapture_core.windows.pad_to_cover`). Inputs are checked before the backbone is
    placed and training starts.
    """
    check_frames(anchor, "anchor")
    valid_mask = check_mask(valid_mask, "valid_mask", anchor, "anchor", per_frame=True).clone()
    # A length the VAE cannot take (Wan: 4k+1) is padded; the padded frames carry no loss.
    anchor, valid_mask = pad_to_cover(anchor, valid_mask, backbone.temporal_factor)
    backbone.check_frames(anchor, "anchor")
    settings.check()
    if anchor.shape[0] < 2:
        raise ReCaptureInputError("anchor", "has a single frame; the temporal LoRA learns motion between frames",
                                  "Give a video of at least 2 frames.")
    latent_mask = latent_valid_mask(valid_mask, backbone.spatial_factor, backbone.temporal_factor)
    if latent_mask.sum() == 0:
        raise ReCaptureInputError("valid_mask", "has no valid region at the model's resolution (no "
                                  f"{backbone.spatial_factor}x{backbone.spatial_factor} block of valid pixels)",
                                  "Use a smaller camera move (fewer holes), or check that the mask is not inverted "
                                  "(valid_mask: 1 = rendered from the source).")
    window = min(backbone.window, latent_mask.shape[0])
    generator = torch.Generator().manual_seed(settings.seed)
    # Every step's window, drawn up front so that only the windows trained on get their conditioning prepared
    # (one image prompt each, its own first frame); a latent start s is the clip's frame t·s.
    step_starts = torch.randint(latent_mask.shape[0] - window + 1, (settings.steps,), generator=generator).tolist()
    starts = sorted(set(step_starts))
    prompt_of = {start: index for index, start in enumerate(starts)}
    with backbone.placed():
        with torch.no_grad():
            video = fill_holes(anchor.clone().float(), valid_mask)
            latents = backbone.encode(video, [s * backbone.temporal_factor for s in starts], single_frames=False).float()
        steps = iter(step_starts)

        def next_example():
            start = next(steps)
            return latents[start:start + window], prompt_of[start], latent_mask[start:start + window]

        def fit(session: Session) -> list[float]:
            return optimise(session, settings, next_example, generator, progress, check_interrupt)

        return backbone.train("temporal", settings, False, (window, *latents.shape[1:]), fit)
