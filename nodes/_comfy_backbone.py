"""ComfyUI's own MODEL + VAE + CONDITIONING as a training backbone of the masked fine-tuning.

The trainers of :mod:`recapture_core.finetune` run here on a model a ComfyUI loader made
(Image Only Checkpoint Loader for SVD, Load Diffusion Model for Wan), the way core's
``TrainLoraNode`` trains on any MODEL:
a clone of the model patcher gets one trainable ``comfy.weight_adapter`` LoRA per targeted
Linear as a weight wrapper, ``comfy.model_management.load_models_gpu`` loads it (so ComfyUI
evicts other models for it and the user's model is held once), and every step goes through a
``Guider_Basic`` with the conditioning from ComfyUI's own nodes (``SVD_img2vid_Conditioning``,
``CLIPTextEncode``). What differs between model families is one :class:`Family` record.
Patches already on the MODEL (a spatial LoRA applied by the spatial trainer or a LoRA loader)
stay underneath, frozen. The model's weights are never changed: adapters are wrappers on a
clone, and the clone is unloaded when the job ends (success, error or interrupt).

This is host code (it imports ComfyUI), so it lives with the nodes; the arithmetic is the core's.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import comfy.model_management
import comfy.samplers
import torch

from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.finetune import (TrainSettings, edm_loss_weight, flow_loss_weight, lognormal_sigma,
                                      target_modules, uniform_flow_sigma)
from ..recapture_core.svd.lora import COMFY_KINDS
from ..recapture_core.windows import latent_length, pixel_length

@dataclass(frozen=True)
class Family:
    """What the trainers need to know about one family of ComfyUI video models."""

    name: str
    targets: dict  # LoRA kind -> regex over the diffusion model's module names
    example_module: str  # for messages about ``targets``
    frames_in_time: bool  # latents [B, C, f, h, w] (video DiTs); else frames on the batch axis (SVD's UNet)
    conditioning: str  # where ``positive`` comes from, for messages
    temporal_layers: bool  # separate temporal layers that "spatial only" switches off (else: single-frame clips)
    # What ``positive`` and ``vae`` must be for this family (``check_inputs``): a wrong one trains silently on
    # what the sampler never gives, or fails deep inside the model with a shape error naming no input.
    context: str  # what the conditioning tensor [B, tokens, width] is, for messages
    context_width_key: str  # its width: this key of the model's unet_config, else the diffusion model's attribute
    channel_keys: tuple[str, str]  # unet_config keys of the model's input and output channels
    mask_channels: int  # of the extra input channels (input - output), those that are a mask, not the image latent
    image_hint: str  # how conditioning with an image (``concat_latent_image``) is made right, for messages
    image_latent_in_single_frames: bool  # single frames take it too (else only whole clips: a DiT's covers the clip)
    vae_factors: dict  # latent channels -> (spatial, temporal) compression of this family's VAEs
    vae_node: str  # where ``vae`` comes from, for messages

    def to_model(self, latents: torch.Tensor, single_frames: bool) -> torch.Tensor:
        """``[f, C, h, w]`` -> the model's layout: SVD as is; a DiT ``[1, C, f, h, w]`` (or ``[f, C, 1, h, w]``:
        f clips of one frame each)."""
        if not self.frames_in_time:
            return latents
        return latents[:, :, None] if single_frames else latents.permute(1, 0, 2, 3)[None]

    def from_model(self, x: torch.Tensor, single_frames: bool) -> torch.Tensor:
        if not self.frames_in_time:
            return x
        return x[:, :, 0] if single_frames else x[0].permute(1, 0, 2, 3)

    def check_inputs(self, model, vae, positive, single_frames: bool | None = None) -> None:
        """Refuse a ``vae`` or ``positive`` made for another family (or shape) by input name, before any work.

        ``positive``: entries ``[context [B, tokens, width], {...}]``; an image-to-video model also takes the
        first frame's latent as ``concat_latent_image`` (SVD ``[N, C, h, w]``, Wan I2V ``[1, C, f, h, w]``).
        ``single_frames`` (the model runs on clips of one frame; None: not known) decides whether an
        image-to-video DiT takes that latent: a clip does; single-frame clips cannot (it covers the whole clip).
        """
        self._check_vae(model, vae)
        config = model.model.model_config.unet_config
        width = int(config[self.context_width_key] if self.context_width_key in config
                    else getattr(model.model.diffusion_model, self.context_width_key))
        extra = int(config.get(self.channel_keys[0], 0)) - int(config.get(self.channel_keys[1], 0))
        image_channels = extra - self.mask_channels if extra > 0 else 0  # 0: the model takes no image latent
        image_refused = image_channels > 0 and single_frames and not self.image_latent_in_single_frames
        image_needed = image_channels > 0 and not image_refused and (
            single_frames is not None or self.image_latent_in_single_frames)  # unknown: a DiT's is optional
        expected = f"{self.context} {width} wide" + (
            f" with the first frame's {image_channels}-channel latent as concat_latent_image" if image_needed else "")
        fix = f"Connect 'positive' of {self.conditioning}" + (f", {self.image_hint}" if image_channels > 0 else "") + "."
        for entry in positive:
            tensor, extras = (entry[0], entry[1]) if isinstance(entry, (list, tuple)) and len(entry) >= 2 else (None, None)
            if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3 or not isinstance(extras, dict):
                raise ReCaptureInputError("positive", f"is not ComfyUI conditioning (entries [tensor [B, tokens, width], "
                                          f"dict]); this {self.name} model takes {expected}", fix)
            image = extras.get("concat_latent_image")
            found = f"holds {list(tensor.shape)} conditioning" + (
                " (a text encoder's: it has a pooled_output)" if "pooled_output" in extras else "") + (
                f" with a concat_latent_image {list(image.shape)}" if isinstance(image, torch.Tensor) else
                " and no concat_latent_image")
            if image_refused and image is not None:
                raise ReCaptureInputError("positive", f"{found}, but the spatial trainer trains this image-to-video "
                                          f"{self.name} model on single frames, which take no first-frame image",
                                          "Connect the text encoder's conditioning alone to the spatial trainer; the "
                                          "one with the image goes to the temporal trainer and the sampler.")
            image_fits = (isinstance(image, torch.Tensor) and image.ndim == (5 if self.frames_in_time else 4)
                          and int(image.shape[1]) == image_channels)
            if int(tensor.shape[-1]) != width or (image_channels and (image_needed or image is not None) and not image_fits):
                raise ReCaptureInputError("positive", f"{found}, but this {self.name} model takes {expected}", fix)

    def _check_vae(self, model, vae) -> None:
        """The VAE's latent channels and spatial and temporal compression against the model's (ComfyUI's VAE object)."""
        channels = int(model.model.latent_format.latent_channels)
        spatial, temporal = self.vae_factors.get(channels, (None, None))
        try:
            found = (int(vae.latent_channels), int(vae.spacial_compression_encode()),
                     int(vae.temporal_compression_decode() or 1))
        except (AttributeError, TypeError, ValueError):
            raise ReCaptureInputError("vae", f"is {type(vae).__name__!r}, not a ComfyUI VAE",
                                      f"Connect {self.vae_node}.") from None
        expected = (channels, spatial or found[1], temporal or found[2])
        if found != expected:
            def factors(c, s, t):
                return f"{c} latent channels, {s}x spatial and " + (f"{t}x temporal compression" if t > 1 else
                                                                    "no temporal compression")
            raise ReCaptureInputError("vae", f"has {factors(*found)}, but this {self.name} model takes latents of a VAE "
                                      f"with {factors(*expected)}", f"Connect {self.vae_node}.")


_WAN_ATTENTION = r"blocks\.\d+\.self_attn\.(q|k|v|o)"
SVD = Family("Stable Video Diffusion", COMFY_KINDS, "input_blocks.1.1.time_stack.0.attn1.to_q", False,
             "SVD_img2vid_Conditioning (the first frame as init_image)", True,
             context="CLIP-vision image embeds", context_width_key="context_dim",
             channel_keys=("in_channels", "out_channels"), mask_channels=0,
             image_hint="with the CLIP_VISION and the VAE of the model's own loader",
             image_latent_in_single_frames=True, vae_factors={4: (8, 1)},
             vae_node="the VAE output of the loader that loaded the model (Image Only Checkpoint Loader on "
                      "svd_xt.safetensors)")
# Wan's DiT attends jointly over space and time: both LoRAs go into its self-attention; the spatial one
# learns from single-frame clips (no frame sees another), the temporal one from the clip on top of it.
WAN = Family("Wan", {"spatial": _WAN_ATTENTION, "temporal": _WAN_ATTENTION}, "blocks.0.self_attn.q", True,
             "CLIPTextEncode with the Wan text encoder (umt5_xxl), through WanImageToVideo for image-to-video models",
             False,
             context="text context", context_width_key="text_dim",  # UMT5-XXL's 4096 in every Wan 2.x
             channel_keys=("in_dim", "out_dim"), mask_channels=4,
             image_hint="the first anchor frame as WanImageToVideo's start_image, at the anchor's size and length",
             image_latent_in_single_frames=False, vae_factors={16: (8, 4), 48: (16, 4)},  # Wan 2.1 VAE, Wan 2.2 VAE
             vae_node="'Load VAE' with wan_2.1_vae.safetensors (wan2.2_vae.safetensors for Wan 2.2 TI2V 5B)")


def family_of(model) -> Family:
    """The family of a ComfyUI MODEL; models the trainers cannot drive are refused by name."""
    import comfy.model_base

    base = model.model
    if isinstance(base, comfy.model_base.SVD_img2vid):
        return SVD
    config = base.model_config.unet_config
    # Wan text-to-video (in = out channels) and image-to-video by concatenated channels (the first-frame
    # latent and a 4-channel mask: Wan 2.1 I2V 14B, Wan 2.2 I2V A14B), whose image comes with the
    # conditioning (WanImageToVideo): nothing in the training step changes.
    image_channels = int(config.get("in_dim", 0)) - int(config.get("out_dim", 0))
    if (isinstance(base, comfy.model_base.WAN21) and config.get("model_type") in ("t2v", "i2v")
            and image_channels in (0, int(config.get("out_dim", 0)) + 4)):
        return WAN
    kind = f"{type(base).__name__} ({config.get('model_type')})" if config.get("model_type") else type(base).__name__
    raise ReCaptureInputError(
        "model", f"is a {kind} model; the trainers on ComfyUI's MODEL take Stable Video Diffusion and Wan 2.x text-to-video "
        "and image-to-video (14B) models so far", "Load svd_xt.safetensors with 'Image Only Checkpoint Loader (img2vid "
        "model)', or a Wan 2.1 / 2.2 model (e.g. wan2.1_t2v_1.3B_fp16.safetensors, wan2.2_i2v_low_noise_14B_fp16.safetensors) "
        "with 'Load Diffusion Model'.")


def architecture_id(model) -> str:
    """Identifies the diffusion model's architecture (its config): LoRAs apply only to the same one."""
    config = {k: v for k, v in model.model.model_config.unet_config.items()}
    text = json.dumps({"class": type(model.model).__name__, **config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _normal_weights(module: torch.nn.Module) -> None:
    """Make every inference-mode weight of ``module`` a normal tensor with the same values, once and in place.

    ComfyUI's loaders run under ``torch.inference_mode()``, so a loaded model's weights are inference
    tensors, which autograd refuses to save for backward (a Linear's weight is needed for the gradient
    of its input). A clone made outside inference mode is a normal tensor; swapping one tensor at a
    time costs no lasting memory and leaves the weights bit for bit as they were.
    """
    for sub in module.modules():
        for name, parameter in list(sub._parameters.items()):
            if parameter is not None and parameter.is_inference():
                sub._parameters[name] = torch.nn.Parameter(parameter.clone(), requires_grad=parameter.requires_grad)
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None and buffer.is_inference():
                sub._buffers[name] = buffer.clone()


@contextmanager
def _frozen_base(diffusion_model: torch.nn.Module, gradient_checkpointing: bool):
    """No gradient into the model's own weights, optional checkpointing; both undone afterwards."""
    from comfy_extras.nodes_train import find_all_highest_child_module_with_forward, patch, unpatch

    _normal_weights(diffusion_model)
    flags = [(p, p.requires_grad) for p in diffusion_model.parameters()]
    patched = find_all_highest_child_module_with_forward(diffusion_model) if gradient_checkpointing else []
    try:
        diffusion_model.requires_grad_(False)
        for module in patched:
            patch(module)
        yield
    finally:
        for module in patched:
            unpatch(module)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _spatial_only_wrapper(previous):
    """A model function wrapper that runs SVD's video UNet with every blender on its spatial path.

    ``image_only_indicator`` = 1 makes each AlphaBlender take the spatial branch alone, so frames
    in a batch never see each other (the temporal layers are off).
    """
    def wrapper(apply_model, args):
        c = dict(args["c"])
        frames = int(c.get("num_video_frames", args["input"].shape[0]))
        c["image_only_indicator"] = torch.ones(args["input"].shape[0] // frames, frames, device=args["input"].device)
        if previous is not None:
            return previous(apply_model, {**args, "c": c})
        return apply_model(args["input"], args["timestep"], **c)

    return wrapper


def _normal_tensors(value):
    """A copy of conditioning whose tensors are plain (not inference-mode) tensors with no autograd history."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _normal_tensors(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # not named tuples and other objects: handed on as they are
        return type(value)(_normal_tensors(v) for v in value)
    return value


class _Session:
    """One training step through ComfyUI's sampling machinery (``model_wrap`` is the guider inside a sampler).

    The objective follows the model's own sampling: EDM (SVD: log-normal σ, weight (σ²+σ_d²)/(σσ_d)²)
    or rectified flow (Wan: σ from the model's shifted schedule, velocity loss = x0 error / σ²).
    """

    def __init__(self, model_wrap, extra_args, parameters, device, weight_dtype: torch.dtype, layout,
                 window_prompts: list[dict] | None = None):
        self.model_wrap, self.extra_args, self.parameters, self.device = model_wrap, extra_args, parameters, device
        # Per prompt index: what replaces the wired conditioning's image entries for a window (None: as wired).
        self.window_prompts = window_prompts
        self.wired = model_wrap.conds.get("positive") if window_prompts is not None else None
        self.sampling = model_wrap.inner_model.model_sampling
        self.flow = not hasattr(self.sampling, "sigma_data")
        self.layout = layout  # (to_model, from_model) for [f, C, h, w] latents
        self.weight_dtype = str(weight_dtype).replace("torch.", "")
        self.computes_in_fp16 = device.type == "cuda" and weight_dtype == torch.float16

    def draw_sigma(self, generator, settings):
        if self.flow:
            return uniform_flow_sigma(generator, lambda u: float(self.sampling.percent_to_sigma(u)))
        return lognormal_sigma(generator, settings, float(self.sampling.sigma_min), float(self.sampling.sigma_max))

    def predict(self, latents, noise, sigma, prompt, generator):
        to_model, from_model = self.layout
        x0, noise = to_model(latents), to_model(noise)
        if self.window_prompts is not None:
            self._condition_on(self.window_prompts[prompt], x0)
        sigmas = sigma.to(self.device).expand(x0.shape[0])
        noisy = self.sampling.noise_scaling(sigmas, noise, x0, False)
        denoised = from_model(self.model_wrap(noisy, sigmas, **self.extra_args))
        weight = flow_loss_weight(sigma) if self.flow else edm_loss_weight(sigma, float(self.sampling.sigma_data))
        return denoised, latents, weight

    def _condition_on(self, prompt: dict, x0: torch.Tensor) -> None:
        """The wired conditioning with the window's own image prompt, rebuilt by the model's own ``extra_conds``
        for latents shaped like ``x0`` (as ComfyUI builds it when sampling starts)."""
        entries = [{**entry, **prompt} for entry in self.wired]
        self.model_wrap.conds["positive"] = comfy.samplers.encode_model_conds(
            self.model_wrap.inner_model.extra_conds, entries, x0, self.device, "positive")


class _Inside(comfy.samplers.Sampler):
    """A 'sampler' that runs ``job(session)`` once the guider has loaded the model and prepared the conditioning."""

    def __init__(self, job, parameters, layout, window_prompts=None):
        self.job, self.parameters, self.layout, self.result = job, parameters, layout, None
        self.window_prompts = window_prompts

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        base = model_wrap.inner_model
        weight_dtype = base.manual_cast_dtype or base.get_dtype()
        with torch.inference_mode(False), torch.enable_grad():
            self.result = self.job(_Session(model_wrap, extra_args, self.parameters, noise.device, weight_dtype, self.layout,
                                            self.window_prompts))
        return torch.zeros_like(noise)


def without_temporal_layers(patcher):
    """A clone of ``patcher`` whose video UNet runs with the temporal layers off (SVD; see ``_spatial_only_wrapper``)."""
    patcher = patcher.clone()
    patcher.set_model_unet_function_wrapper(_spatial_only_wrapper(patcher.model_options.get("model_function_wrapper")))
    return patcher


def run_with_model(patcher, positive, example_shape: tuple[int, ...], job, parameters=(), seed: int = 0,
                   single_frames: bool = False, window_prompts: list[dict] | None = None):
    """``job(session)`` with ``patcher`` loaded by ComfyUI and ``positive`` prepared for latents ``[f, C, h, w]``
    of ``example_shape`` (``single_frames``: f clips of one frame each, for a video DiT). ``window_prompts``:
    per prompt index given to ``session.predict``, the entries that replace the image prompt in ``positive``.

    The session predicts through ComfyUI's own sampling code (the conditioning nodes' outputs, the
    model's wrappers and patches), so anything a KSampler graph would apply applies here too.
    """
    from comfy_extras.nodes_custom_sampler import Guider_Basic

    family = family_of(patcher)
    layout = (lambda x: family.to_model(x, single_frames), lambda x: family.from_model(x, single_frames))
    inside = _Inside(job, list(parameters), layout, window_prompts)
    guider = Guider_Basic(patcher)
    guider.set_conds(_normal_tensors(positive))
    empty = layout[0](torch.zeros(example_shape))
    guider.sample(empty, empty, inside, torch.tensor([1.0, 0.0]), seed=seed, disable_pbar=True)
    return inside.result


def window_prompt(family: Family, vae, extras: dict, image: torch.Tensor, window: int, temporal_factor: int,
                  clip_vision=None, seed: int = 0) -> dict:
    """What replaces a conditioning entry's image prompt (its dict ``extras``) for a window of ``window`` latent
    frames whose first frame is ``image [1, H, W, 3]``, made as ComfyUI's conditioning nodes make it: SVD:
    SVD_img2vid_Conditioning's concat latent (noise-augmented as ``extras`` says, noise seeded by ``seed``) and,
    with ``clip_vision``, its image embed; Wan image-to-video: WanImageToVideo's first-frame latent and mask over
    the window; an entry without an image prompt (Wan T2V): nothing."""
    image = image[..., :3]
    if "concat_latent_image" not in extras:
        return {}
    if family.frames_in_time:
        clip = torch.full((pixel_length(window, temporal_factor), *image.shape[1:]), 0.5)
        clip[:1] = image
        latent = vae.encode(clip)
        mask = torch.ones(1, 1, latent.shape[2], latent.shape[-2], latent.shape[-1])
        mask[:, :, :1] = 0.0
        return _normal_tensors({"concat_latent_image": latent, "concat_mask": mask})
    level = float(extras.get("augmentation_level", 0.0))
    pixels = image
    if level > 0:
        pixels = image + level * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    prompt = {"concat_latent_image": vae.encode(pixels)}
    if clip_vision is not None:
        prompt["cross_attn"] = clip_vision.encode_image(image).image_embeds.unsqueeze(0)
    return _normal_tensors(prompt)


#: Frames a family's models were trained on (SVD-XT 25, SVD 14: set the trainer's ``window``; Wan 2.x 81).
NATIVE_FRAMES = {SVD.name: 25, WAN.name: 81}


class ComfyModelTraining:
    """A ComfyUI MODEL with its VAE and positive conditioning, as a :class:`recapture_core.finetune.TrainingBackbone`.

    ``train`` returns a ComfyUI-format LoRA state dict (``diffusion_model.<module>.lora_up/lora_down/alpha``,
    float32), the format ``LoraLoaderModelOnly`` applies, and keeps the loss history in ``losses``.
    """

    def __init__(self, model, vae, positive, kind: str | None = None, window: int = 0, clip_vision=None):
        self.family = family_of(model)
        if not isinstance(positive, list) or not positive:
            raise ReCaptureInputError("positive", "holds no conditioning", f"Connect 'positive' of {self.family.conditioning}.")
        # kind: "spatial" / "temporal", as the trainer node says; single frames as ``train`` runs them
        single_frames = None if kind is None else kind == "spatial" and not self.family.temporal_layers
        self.family.check_inputs(model, vae, positive, single_frames)
        self.model, self.vae, self.positive = model, vae, positive
        self.name = type(model.model).__name__
        self.spatial_factor = int(vae.spacial_compression_encode())
        self.temporal_factor = int(vae.temporal_compression_decode() or 1)
        # The model's native clip length (``window`` frames; 0: the family's, see NATIVE_FRAMES), in latent frames.
        frames = window or NATIVE_FRAMES[self.family.name]
        if frames < 2:
            raise ReCaptureInputError("window", f"must be at least 2 frames, got {frames}",
                                      f"Use 0 for the model's own length ({NATIVE_FRAMES[self.family.name]} frames).")
        self.window = latent_length(frames, self.temporal_factor)
        # SVD's image embed per window: re-encoded from the window's first frame when CLIP vision is given,
        # else the wired one (the clip's first frame) for every window.
        self.clip_vision = clip_vision
        self.window_prompts: list[dict] | None = None
        self.losses: list[float] = []

    def size_multiple(self) -> int:
        """Frame sides: the VAE's factor times the model's patch (Wan: 8 x 2) or UNet downsampling (SVD: 8 x 8)."""
        config = self.model.model.model_config.unet_config
        if self.family.frames_in_time:
            return self.spatial_factor * int(config.get("patch_size", (1, 2, 2))[-1])
        return self.spatial_factor * 2 ** (len(config.get("channel_mult", (1,))) - 1)

    def check_frames(self, frames, input_name, clip=True):
        multiple = self.size_multiple()
        height, width = int(frames.shape[1]), int(frames.shape[2])
        if height % multiple or width % multiple:
            fit_w, fit_h = max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple)
            raise ReCaptureInputError(input_name, f"is {width}x{height}, but this {self.family.name} model needs width and "
                                      f"height in multiples of {multiple}", f"Resize or crop the video first, e.g. to "
                                      f"{fit_w}x{fit_h}, and give the conditioning node the same size.")
        count, step = int(frames.shape[0]), self.temporal_factor
        if clip and step > 1 and (count - 1) % step:
            shorter, longer = (count - 1) // step * step + 1, ((count - 1) // step + 1) * step + 1
            raise ReCaptureInputError(input_name, f"has {count} frames, but this {self.family.name} model's VAE takes "
                                      f"{step}k+1 frames", f"Trim the video to {shorter} frames (or extend it to {longer}), "
                                      "e.g. with the camera path's num_frames and ImageFromBatch.")

    def placed(self):
        return nullcontext()  # ComfyUI places the VAE and the model itself

    def encode(self, video, prompts, single_frames):
        # The image prompt is the wired conditioning; video [F, H, W, 3] -> latents [f, C, h, w].
        if single_frames and self.family.frames_in_time:
            latents = torch.cat([self.vae.encode(video[i:i + 1, ..., :3]) for i in range(video.shape[0])], dim=2)
        elif self.family.frames_in_time:
            latents = self.vae.encode(video[..., :3])  # a video VAE: the clip in one call (it caches across frames)
        else:
            # SVD's VAE encodes frame by frame; ComfyUI sizes a batch to free memory (on the CPU: all frames at
            # once), so the clip goes in window-sized chunks and the peak stays one window's, whatever its length.
            chunk = max(1, self.window)
            latents = torch.cat([self.vae.encode(video[start:start + chunk, ..., :3])
                                 for start in range(0, video.shape[0], chunk)])
        latents = self.model.model.process_latent_in(latents.float())
        latents = self.family.from_model(latents, False) if self.family.frames_in_time else latents
        # A clip longer than the window trains on windows, each with its own first frame as image prompt.
        longer = not single_frames and latents.shape[0] > self.window
        self.window_prompts = [self._window_prompt(video, frame) for frame in prompts] if longer else None
        return latents

    def _window_prompt(self, video, frame: int) -> dict:
        return window_prompt(self.family, self.vae, self.positive[0][1], video[frame:frame + 1], self.window,
                             self.temporal_factor, self.clip_vision, seed=frame)

    def train(self, kind, settings: TrainSettings, spatial_only, example_shape, fit):
        single_frames = spatial_only and not self.family.temporal_layers
        with torch.inference_mode(False):
            use_wrapper = spatial_only and self.family.temporal_layers
            patcher = without_temporal_layers(self.model) if use_wrapper else self.model.clone()
            diffusion_model = patcher.model.diffusion_model
            names = target_modules(diffusion_model, settings.targets, self.family.targets[kind], self.family.example_module)
            adapters = self._adapters(patcher, diffusion_model, names, settings)
            parameters = [p for a in adapters.values() for p in a.parameters() if p.requires_grad]
            try:
                with _frozen_base(diffusion_model, settings.gradient_checkpointing):
                    # Training needs the whole model on the device (as core's TrainLoraNode); ComfyUI frees room for it.
                    comfy.model_management.load_models_gpu([patcher], force_full_load=True)
                    for adapter in adapters.values():
                        adapter.to(patcher.load_device)
                    self.losses = run_with_model(patcher, self.positive, example_shape, fit, parameters, settings.seed,
                                                 single_frames, None if spatial_only else self.window_prompts)
            finally:
                _unload(patcher, list(adapters.values()))
        state = {}
        for name, adapter in adapters.items():
            key = f"diffusion_model.{name}"
            state[f"{key}.lora_up.weight"] = adapter.lora_up.weight.detach().float().cpu().contiguous()
            state[f"{key}.lora_down.weight"] = adapter.lora_down.weight.detach().float().cpu().contiguous()
            state[f"{key}.alpha"] = torch.tensor(float(settings.alpha))
        return state

    @staticmethod
    def _adapters(patcher, diffusion_model, names, settings) -> dict:
        """One float32 trainable LoRA per module (up random, down zero: the model starts unchanged), seeded."""
        from comfy.weight_adapter.lora import LoRAAdapter

        adapters = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            for name in names:
                weight = diffusion_model.get_submodule(name).weight
                adapter = LoRAAdapter.create_train(weight, rank=settings.rank, alpha=settings.alpha).to(torch.float32)
                patcher.add_weight_wrapper(f"diffusion_model.{name}.weight", adapter)
                adapters[name] = adapter
        return adapters


def _unload(patcher, adapters: list) -> None:
    """Take the training clone out of ComfyUI's loaded models, its patches undone and its wrappers gone."""
    loaded = comfy.model_management.current_loaded_models
    for index in reversed(range(len(loaded))):
        if loaded[index].model is patcher:
            loaded.pop(index).model_unload()
    for module in patcher.model.diffusion_model.modules():
        if hasattr(module, "weight_function"):
            module.weight_function = [f for f in module.weight_function if not any(f is a for a in adapters)]
