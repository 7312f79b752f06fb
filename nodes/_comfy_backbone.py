"""ComfyUI's own MODEL + VAE + CONDITIONING as a training backbone of the masked fine-tuning.

The trainers of :mod:`recapture_core.finetune` run here on a model a ComfyUI loader made
(Image Only Checkpoint Loader for SVD), the way core's ``TrainLoraNode`` trains on any MODEL:
a clone of the model patcher gets one trainable ``comfy.weight_adapter`` LoRA per targeted
Linear as a weight wrapper, ``comfy.model_management.load_models_gpu`` loads it (so ComfyUI
evicts other models for it and the user's model is held once), and every step goes through a
``Guider_Basic`` with the conditioning from ComfyUI's own nodes (``SVD_img2vid_Conditioning``).
Patches already on the MODEL (a spatial LoRA applied by the spatial trainer or a LoRA loader)
stay underneath, frozen. The model's weights are never changed: adapters are wrappers on a
clone, and the clone is unloaded when the job ends (success, error or interrupt).

This is host code (it imports ComfyUI), so it lives with the nodes; the arithmetic is the core's.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager, nullcontext

import comfy.model_management
import comfy.samplers
import torch

from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.finetune import TrainSettings, edm_loss_weight, lognormal_sigma, target_modules
from ..recapture_core.svd.lora import COMFY_KINDS

log = logging.getLogger("recapture")
HINT = "comfy_model"


def _model_kind(model) -> str:
    """The ComfyUI model class; only those the trainers know how to make 'spatial only' are taken."""
    import comfy.model_base

    base = model.model
    if isinstance(base, comfy.model_base.SVD_img2vid):
        return "svd"
    raise ReCaptureInputError(
        "model", f"is a {type(base).__name__} model; the trainers on ComfyUI's MODEL support Stable Video Diffusion so far",
        "Load svd.safetensors or svd_xt.safetensors with 'Image Only Checkpoint Loader (img2vid model)', or use the "
        "pack's own SVD loader and trainers.", HINT)


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
    if isinstance(value, (list, tuple)):
        return type(value)(_normal_tensors(v) for v in value)
    return value


class _Session:
    """The EDM step through ComfyUI's sampling machinery (``model_wrap`` is the guider inside a sampler)."""

    def __init__(self, model_wrap, extra_args, parameters, device, weight_dtype: torch.dtype):
        self.model_wrap, self.extra_args, self.parameters, self.device = model_wrap, extra_args, parameters, device
        self.sampling = model_wrap.inner_model.model_sampling
        self.weight_dtype = str(weight_dtype).replace("torch.", "")
        self.computes_in_fp16 = device.type == "cuda" and weight_dtype == torch.float16

    def draw_sigma(self, generator, settings):
        return lognormal_sigma(generator, settings, float(self.sampling.sigma_min), float(self.sampling.sigma_max))

    def predict(self, latents, noise, sigma, prompt, generator):
        sigmas = sigma.to(self.device).expand(latents.shape[0])
        noisy = self.sampling.noise_scaling(sigmas, noise, latents, False)
        denoised = self.model_wrap(noisy, sigmas, **self.extra_args)
        return denoised, latents, edm_loss_weight(sigma, float(self.sampling.sigma_data))


class _Inside(comfy.samplers.Sampler):
    """A 'sampler' that runs ``job(session)`` once the guider has loaded the model and prepared the conditioning."""

    def __init__(self, job, parameters):
        self.job, self.parameters, self.result = job, parameters, None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        base = model_wrap.inner_model
        weight_dtype = base.manual_cast_dtype or base.get_dtype()
        with torch.inference_mode(False), torch.enable_grad():
            self.result = self.job(_Session(model_wrap, extra_args, self.parameters, noise.device, weight_dtype))
        return torch.zeros_like(noise)


def without_temporal_layers(patcher):
    """A clone of ``patcher`` whose video UNet runs with the temporal layers off (see ``_spatial_only_wrapper``)."""
    patcher = patcher.clone()
    patcher.set_model_unet_function_wrapper(_spatial_only_wrapper(patcher.model_options.get("model_function_wrapper")))
    return patcher


def run_with_model(patcher, positive, example_shape: tuple[int, ...], job, parameters=(), seed: int = 0):
    """``job(session)`` with ``patcher`` loaded by ComfyUI and ``positive`` prepared for latents of ``example_shape``.

    The session predicts through ComfyUI's own sampling code (the conditioning nodes' outputs, the
    model's wrappers and patches), so anything a KSampler graph would apply applies here too.
    """
    from comfy_extras.nodes_custom_sampler import Guider_Basic

    inside = _Inside(job, list(parameters))
    guider = Guider_Basic(patcher)
    guider.set_conds(_normal_tensors(positive))
    empty = torch.zeros(example_shape)
    guider.sample(empty, empty, inside, torch.tensor([1.0, 0.0]), seed=seed, disable_pbar=True)
    return inside.result


class ComfyModelTraining:
    """A ComfyUI MODEL with its VAE and positive conditioning, as a :class:`recapture_core.finetune.TrainingBackbone`.

    ``train`` returns a ComfyUI-format LoRA state dict (``diffusion_model.<module>.lora_up/lora_down/alpha``,
    float32), the format ``LoraLoaderModelOnly`` applies, and keeps the loss history in ``losses``.
    """

    def __init__(self, model, vae, positive):
        _model_kind(model)
        if not isinstance(positive, list) or not positive:
            raise ReCaptureInputError("positive", "holds no conditioning",
                                      "Connect 'positive' of SVD_img2vid_Conditioning (the first frame as its init_image).")
        self.model, self.vae, self.positive = model, vae, positive
        self.name = type(model.model).__name__
        self.spatial_factor = int(vae.spacial_compression_encode())
        self.temporal_factor = int(vae.temporal_compression_decode() or 1)
        self.window = 10**6  # the conditioning is wired once, for the whole clip: one window
        self.losses: list[float] = []

    def check_frames(self, frames, input_name):
        # The VAE's factor times the UNet's downsampling (SVD: 8 x 8 = 64).
        levels = len(self.model.model.model_config.unet_config.get("channel_mult", (1,)))
        multiple = self.spatial_factor * 2 ** (levels - 1)
        height, width = int(frames.shape[1]), int(frames.shape[2])
        if height % multiple or width % multiple:
            fit_w, fit_h = max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple)
            raise ReCaptureInputError(input_name, f"is {width}x{height}, but this model needs width and height in "
                                      f"multiples of {multiple}", f"Resize or crop the video first, e.g. to {fit_w}x{fit_h} "
                                      "(SVD-XT was trained at 1024x576), and give SVD_img2vid_Conditioning the same size.")

    def placed(self):
        return nullcontext()  # ComfyUI places the VAE and the model itself

    def encode(self, video, prompts, single_frames):
        # SVD's VAE encodes frames one by one; the image prompt is the wired conditioning.
        latents = self.vae.encode(video[..., :3])
        return self.model.model.process_latent_in(latents.float())

    def train(self, kind, settings: TrainSettings, spatial_only, example_shape, fit):
        with torch.inference_mode(False):
            patcher = without_temporal_layers(self.model) if spatial_only else self.model.clone()
            diffusion_model = patcher.model.diffusion_model
            names = target_modules(diffusion_model, settings.targets, COMFY_KINDS[kind],
                                   "input_blocks.1.1.time_stack.0.attn1.to_q")
            adapters = self._adapters(patcher, diffusion_model, names, settings)
            parameters = [p for a in adapters.values() for p in a.parameters() if p.requires_grad]
            try:
                with _frozen_base(diffusion_model, settings.gradient_checkpointing):
                    # Training needs the whole model on the device (as core's TrainLoraNode); ComfyUI frees room for it.
                    comfy.model_management.load_models_gpu([patcher], force_full_load=True)
                    for adapter in adapters.values():
                        adapter.to(patcher.load_device)
                    self.losses = run_with_model(patcher, self.positive, example_shape, fit, parameters, settings.seed)
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
