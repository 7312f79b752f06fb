"""Stable Video Diffusion nodes: the backbone loader, the two LoRA trainers, LoRA save and load."""
from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import folder_paths

from ..recapture_core.cache import LRUCache, content_key
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.paths import safe_child, unused_path
from . import _comfy, _meta_batch

log = logging.getLogger(__name__)
NO_SVD = "(no SVD diffusers folder in models/diffusers)"
NO_LORAS = "(no ReCapture LoRAs in models/loras/recapture)"
LORA_SUBFOLDER = "recapture"
COMFY_SUFFIX = "_comfyui"
LORA_TOOLTIP = "Trained LoRA weights with their kind, rank, alpha, targets and the backbone they belong to."
_trained = LRUCache(size=4)  # content key -> RECAPTURE_LORA: retraining identical inputs is skipped


def _svd_folders() -> list[str]:
    """Diffusers folders under models/diffusers whose model_index.json is a Stable Video Diffusion pipeline."""
    found = []
    for root in folder_paths.get_folder_paths("diffusers"):
        if not os.path.isdir(root):
            continue
        for entry in sorted(os.listdir(root)):
            index = os.path.join(root, entry, "model_index.json")
            if not os.path.isfile(index):
                continue
            try:  # one unreadable folder must not take the loader out of the UI for everyone
                with open(index, encoding="utf-8") as handle:
                    if "StableVideoDiffusionPipeline" in handle.read(1 << 20):
                        found.append(entry)
            except (OSError, UnicodeDecodeError) as err:
                log.warning("ReCapture: skipping %s in the SVD list: %s", index, err)
    return found


def _lora_files() -> list[str]:
    return [name for name in folder_paths.get_filename_list("loras")
            if name.replace("\\", "/").startswith(f"{LORA_SUBFOLDER}/") and not name.endswith(f"{COMFY_SUFFIX}.safetensors")]


def _training_inputs():
    return {
        "steps": ("INT", {"default": 400, "min": 1, "max": 100000, "tooltip": "Optimiser steps (the paper: 400)."}),
        "learning_rate": ("FLOAT", {"default": 5e-4, "min": 1e-7, "max": 1.0, "step": 1e-7,
                                    "tooltip": "AdamW learning rate (the paper: 5e-4)."}),
        "rank": ("INT", {"default": 16, "min": 1, "max": 256, "tooltip": "LoRA rank (the paper: 16)."}),
        "alpha": ("FLOAT", {"default": 16.0, "min": 0.01, "max": 1024.0, "step": 0.01,
                            "tooltip": "LoRA alpha; the update is scaled by alpha / rank."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Seeds the LoRA initialisation, noise and frame choice."}),
        "gradient_checkpointing": ("BOOLEAN", {"default": True, "tooltip": "Trade compute for memory (needed for full-size SVD on 24 GB)."}),
        "mixed_precision": (["auto", "no", "bf16", "fp16"], {"default": "auto",
                            "tooltip": "Autocast on CUDA: auto = bf16; ignored on the CPU."}),
    }


TARGETS_INPUT = {"targets": ("STRING", {"default": "", "tooltip": "Regular expression over UNet module names the LoRA goes into. "
                                                                   "Empty: the paper's (temporal: q/k/v/out of the temporal attention; "
                                                                   "spatial: q/k/v/out of the spatial self-attention)."})}


def _settings(**widgets):
    from ..recapture_core.svd.train import TrainSettings

    return TrainSettings(**widgets)


def _progress_with_loss(total: int, label: str):
    bar = _comfy.progress(total)

    def report(step, of, loss):
        bar(step, of)
        if step == 1 or step == of or step % 50 == 0:
            log.info("ReCapture %s: step %d/%d, loss %.4f", label, step, of, loss)

    return report


def _report(lora) -> str:
    losses = lora.settings.get("losses", [])
    head = sum(losses[:10]) / max(len(losses[:10]), 1)
    return (f"{lora.kind} LoRA on {lora.backbone_name}: rank {lora.rank}, alpha {lora.alpha:g}, {lora.steps} steps, "
            f"loss {head:.4f} (first 10 steps) -> {lora.final_loss:.4f} (last 10)")


class _BackboneLoader:
    """What the two SVD loaders share."""

    CATEGORY = "ReCapture/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("RECAPTURE_BACKBONE",)
    RETURN_NAMES = ("backbone",)
    OUTPUT_TOOLTIPS = ("The video diffusion model, shared by the trainers and samplers (they never modify it).",)
    DTYPE_INPUT = {"dtype": (["fp16", "bf16", "fp32"], {
        "default": "fp16", "tooltip": "Weight precision: fp16 for GPUs, fp32 on the CPU (half precision is slow there). "
                                      "LoRAs train in float32 whatever this is."})}


class ReCaptureSVDLoader(_BackboneLoader):
    DESCRIPTION = ("Load Stable Video Diffusion (SVD or SVD-XT) from a diffusers folder under models/diffusers "
                   "(model_index.json, unet/, vae/, image_encoder/, feature_extractor/, scheduler/). Never downloads.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (_svd_folders() or [NO_SVD], {"tooltip": "An SVD diffusers folder under models/diffusers."}),
            **cls.DTYPE_INPUT,
        }}

    def load(self, model, dtype):
        from ..recapture_core.svd.backbone import HELP, HINT, load_diffusers_svd

        folder = _comfy.model_subfolder_path("diffusers", model, "model", NO_SVD, HELP, HINT)
        with _comfy.autograd_enabled():  # weights made under inference mode could never be trained
            return (load_diffusers_svd(folder, dtype),)


class ReCaptureSVDCheckpointLoader(_BackboneLoader):
    DESCRIPTION = ("Load Stable Video Diffusion from the single-file checkpoint ComfyUI users already have "
                   "(svd.safetensors / svd_xt.safetensors in models/checkpoints), with architecture configs that ship "
                   "with this pack. Never downloads.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (folder_paths.get_filename_list("checkpoints"), {"tooltip": "The SVD or SVD-XT checkpoint."}),
            "architecture": (["auto", "svd", "svd_xt", *(f"like {name}" for name in _svd_folders())],
                             {"default": "auto", "tooltip": "auto: SVD-XT (25 frames) when the file name contains 'xt', else SVD "
                                                            "(14 frames). 'like <folder>': the architecture of a diffusers folder."}),
            **cls.DTYPE_INPUT,
        }}

    def load(self, ckpt_name, architecture, dtype):
        from ..recapture_core.svd.single_file import load_single_file_svd

        path = Path(folder_paths.get_full_path_or_raise("checkpoints", ckpt_name))
        configs = None
        if architecture.startswith("like "):
            configs = _comfy.model_subfolder_path("diffusers", architecture[len("like "):], "architecture")
            architecture = "auto"
        with _comfy.autograd_enabled():  # weights made under inference mode could never be trained
            return (load_single_file_svd(path, dtype, architecture, configs=configs),)


class _TrainerNode:
    """What the two LoRA trainers share: declarations, the content cache, and running under ComfyUI."""

    CATEGORY = "ReCapture/train"
    FUNCTION = "train"
    META_BATCH = _meta_batch.FINE_TUNING
    OUTPUT_TOOLTIPS = (LORA_TOOLTIP, "Rank, steps and the loss at the start and the end.")
    RETURN_TYPES = ("RECAPTURE_LORA", "STRING")
    KIND = ""
    SOURCES: dict = {}  # the node's own required sockets, before the training widgets
    EXTRA_WIDGETS: dict = {}  # after them
    OPTIONAL: dict = {}  # before the targets widget

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"backbone": ("RECAPTURE_BACKBONE", {"tooltip": "From the SVD loader."}),
                             **cls.SOURCES, **_training_inputs(), **cls.EXTRA_WIDGETS},
                "optional": {**cls.OPTIONAL, **TARGETS_INPUT}}

    def _train_cached(self, key, settings, train, backbone, *args):
        """Reuse a LoRA trained on identical inputs, else run ``train(backbone, *args)`` on ComfyUI's device
        (the core checks every input before the backbone moves)."""
        label = f"{self.KIND} LoRA"
        lora = _trained.get(key)
        if lora is not None:
            log.info("ReCapture %s: same inputs and settings as before, reusing the trained LoRA", label)
        else:
            with _comfy.autograd_enabled():
                lora = train(backbone, *args, progress=_progress_with_loss(settings.steps, label), **_comfy.backbone_job(backbone))
            _trained.put(key, lora)
        return (lora, _report(lora))


class ReCaptureSpatialLoRATrain(_TrainerNode):
    DESCRIPTION = ("Train the spatial LoRA: the self-attention of SVD's spatial blocks learns the source video's "
                   "appearance from random single frames, with the temporal layers switched off. Identical inputs "
                   "are not trained twice (results are cached by content).")
    RETURN_NAMES = ("spatial_lora", "report")
    KIND = "spatial"
    SOURCES = {"frames": ("IMAGE", {"tooltip": "The source video; its first frame is the image prompt."})}
    EXTRA_WIDGETS = {"frames_per_step": ("INT", {"default": 2, "min": 1, "max": 64,
                                                 "tooltip": "Independent frames per step (a batch; frames never see each other)."})}

    def train(self, backbone, frames, **widgets):
        from ..recapture_core.svd.train import train_spatial_lora

        settings = _settings(**widgets)
        key = content_key("spatial", frames, asdict(settings), backbone.architecture_id, backbone.weights_id)
        return self._train_cached(key, settings, train_spatial_lora, backbone, frames, settings)


class ReCaptureMaskedTemporalLoRATrain(_TrainerNode):
    DESCRIPTION = ("Train the temporal LoRA: the temporal attention of SVD learns the anchor video's motion with the "
                   "loss only on valid pixels (holes contribute exactly nothing). The spatial LoRA, if connected, is "
                   "applied and frozen underneath, as in the paper.")
    RETURN_NAMES = ("temporal_lora", "report")
    KIND = "temporal"
    SOURCES = {
        "anchor": ("IMAGE", {"tooltip": "The anchor video (PointCloudWarp or MultiviewAnchor); its first frame is the image prompt."}),
        "valid_mask": ("MASK", {"tooltip": "1 = pixel rendered from the source: only these count in the loss."}),
    }
    OPTIONAL = {"spatial_lora": ("RECAPTURE_LORA", {"tooltip": "Optional: the spatial LoRA, applied and frozen during training."})}

    def train(self, backbone, anchor, valid_mask, spatial_lora=None, **widgets):
        from ..recapture_core.svd.train import train_temporal_lora

        settings = _settings(**widgets)
        spatial_key = content_key(spatial_lora.state_dict) if spatial_lora is not None else None
        key = content_key("temporal", anchor, valid_mask, asdict(settings), backbone.architecture_id,
                          backbone.weights_id, spatial_key)
        return self._train_cached(key, settings, train_temporal_lora, backbone, anchor, valid_mask, settings, spatial_lora)


class ReCaptureLoRASave:
    DESCRIPTION = ("Save a ReCapture LoRA to models/loras/recapture/ (safetensors with its metadata; never overwrites). "
                   "Optionally also export it with the original SVD key names, for ComfyUI's own LoraLoaderModelOnly "
                   "on a natively loaded SVD model.")
    CATEGORY = "ReCapture/loaders"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("The file written.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "lora": ("RECAPTURE_LORA", {"tooltip": "A trained LoRA."}),
            "filename_prefix": ("STRING", {"default": "reshoot", "tooltip": "Name inside models/loras/recapture/ (subfolders allowed, never '..')."}),
            "export_comfyui": ("BOOLEAN", {"default": True,
                               "tooltip": "Also write <name>_comfyui.safetensors with ComfyUI-native keys (LoraLoaderModelOnly)."}),
        }}

    def save(self, lora, filename_prefix, export_comfyui):
        from ..recapture_core.svd.lora_files import export_comfy_lora, save_lora

        root = Path(folder_paths.get_folder_paths("loras")[0]) / LORA_SUBFOLDER
        target = safe_child(root, filename_prefix, "filename_prefix")
        path = unused_path(target.parent, f"{target.name}_{lora.kind}", ".safetensors")
        save_lora(lora, path)
        written = [str(path)]
        if export_comfyui:
            comfy_path = path.with_name(path.stem + COMFY_SUFFIX + ".safetensors")
            export_comfy_lora(lora, comfy_path)
            written.append(str(comfy_path))
        return {"ui": {"text": written}, "result": (str(path),)}


class ReCaptureLoRALoad:
    DESCRIPTION = "Load a LoRA saved by 'Save ReCapture LoRA' from models/loras/recapture/."
    CATEGORY = "ReCapture/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("RECAPTURE_LORA",)
    RETURN_NAMES = ("lora",)
    OUTPUT_TOOLTIPS = (LORA_TOOLTIP,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"lora_name": (_lora_files() or [NO_LORAS], {"tooltip": "A .safetensors file under models/loras/recapture/."})}}

    def load(self, lora_name):
        from ..recapture_core.svd.lora_files import load_lora

        if lora_name == NO_LORAS:
            raise ReCaptureInputError("lora_name", "no ReCapture LoRA found", "Train one and save it with 'Save ReCapture LoRA'.")
        return (load_lora(Path(folder_paths.get_full_path_or_raise("loras", lora_name))),)


NODE_CLASS_MAPPINGS = {
    "ReCaptureSVDLoader": ReCaptureSVDLoader,
    "ReCaptureSVDCheckpointLoader": ReCaptureSVDCheckpointLoader,
    "ReCaptureSpatialLoRATrain": ReCaptureSpatialLoRATrain,
    "ReCaptureMaskedTemporalLoRATrain": ReCaptureMaskedTemporalLoRATrain,
    "ReCaptureLoRASave": ReCaptureLoRASave,
    "ReCaptureLoRALoad": ReCaptureLoRALoad,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ReCaptureSVDLoader": "SVD Loader (ReCapture)",
    "ReCaptureSVDCheckpointLoader": "SVD Checkpoint Loader (ReCapture)",
    "ReCaptureSpatialLoRATrain": "SpatialLoRATrain (ReCapture)",
    "ReCaptureMaskedTemporalLoRATrain": "MaskedTemporalLoRATrain (ReCapture)",
    "ReCaptureLoRASave": "Save ReCapture LoRA",
    "ReCaptureLoRALoad": "Load ReCapture LoRA",
}
