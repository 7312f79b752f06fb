"""The two LoRA trainers on ComfyUI's own MODEL (loaded by ComfyUI's loaders, managed by its model management).

Graph: Image Only Checkpoint Loader -> SVD_img2vid_Conditioning (first frame) -> Spatial LoRA Train
(MODEL) -> Masked Temporal LoRA Train (MODEL) -> KSampler; SDEdit is a second KSampler on the
spatial MODEL with denoise < 1. Each trainer writes its LoRA to models/loras/recapture/ in ComfyUI's
format (LoraLoaderModelOnly applies it later) and outputs the MODEL with it applied.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import folder_paths

from ..recapture_core.model_files import save_safetensors
from ..recapture_core.paths import safe_child, unused_path
from . import _comfy, _meta_batch
from .svd import COMFY_SUFFIX, LORA_SUBFOLDER, _progress_with_loss, _training_inputs

log = logging.getLogger(__name__)


def _widgets():
    # The diffusers trainers' widgets; ComfyUI sets the compute dtype of its MODEL, so no autocast choice here.
    widgets = {k: v for k, v in _training_inputs().items() if k != "mixed_precision"}
    return {**widgets, "filename_prefix": ("STRING", {
        "default": "reshoot", "tooltip": "Name inside models/loras/recapture/ (subfolders allowed, never '..'); a counter "
                                         "is added, nothing is overwritten."})}


SHARED = {
    "model": ("MODEL", {"tooltip": "The video model from ComfyUI's loader (Image Only Checkpoint Loader for SVD). Patches "
                        "already on it (a LoRA) stay underneath, frozen."}),
    "vae": ("VAE", {"tooltip": "The VAE from the same loader."}),
    "positive": ("CONDITIONING", {"tooltip": "From SVD_img2vid_Conditioning with the video's first frame as init_image, at "
                                  "the video's size."}),
}


class _ModelTrainer:
    CATEGORY = "ReCapture/train"
    FUNCTION = "train"
    META_BATCH = _meta_batch.FINE_TUNING
    RETURN_TYPES = ("MODEL", "STRING", "STRING")
    OUTPUT_TOOLTIPS = ("The input MODEL with the trained LoRA applied (ComfyUI's own LoRA patching).",
                       "The LoRA file, relative to models/loras/ (for LoraLoaderModelOnly).",
                       "Rank, steps and the loss at the start and the end.")
    KIND = ""
    SOURCES: dict = {}
    EXTRA_WIDGETS: dict = {}
    OPTIONAL: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**SHARED, **cls.SOURCES, **_widgets(), **cls.EXTRA_WIDGETS}, "optional": dict(cls.OPTIONAL)}

    def _run(self, model, vae, positive, widgets, train, *clip):
        import comfy.sd

        from ..recapture_core.finetune import TrainSettings
        from ._comfy_backbone import ComfyModelTraining, architecture_id

        root = Path(folder_paths.get_folder_paths("loras")[0]) / LORA_SUBFOLDER
        prefix = widgets.pop("filename_prefix")
        target = safe_child(root, prefix, "filename_prefix")  # checked before any work
        window, clip_vision = widgets.pop("window", 0), widgets.pop("clip_vision", None)
        settings = TrainSettings(**widgets)
        # Checks vae and positive against the model; a clip longer than ``window`` trains on windows of it.
        backbone = ComfyModelTraining(model, vae, positive, self.KIND, window, clip_vision)
        label = f"{self.KIND} LoRA"
        with _comfy.autograd_enabled():
            state = train(backbone, *clip, settings, progress=_progress_with_loss(settings.steps, label),
                          check_interrupt=_comfy.check_interrupt)
        losses = backbone.losses
        head, tail = losses[:10], losses[-10:]
        metadata = {"recapture_kind": self.KIND, "recapture_model": backbone.name,
                    "recapture_architecture": architecture_id(model), "rank": str(settings.rank),
                    "alpha": repr(float(settings.alpha)), "steps": str(settings.steps),
                    "losses": json.dumps([round(v, 6) for v in losses])}
        path = unused_path(target.parent, f"{target.name}_{self.KIND}", COMFY_SUFFIX + ".safetensors")
        save_safetensors(state, path, metadata)
        patched, _ = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0)
        name = path.relative_to(Path(folder_paths.get_folder_paths("loras")[0])).as_posix()
        report = (f"{self.KIND} LoRA on {backbone.name}: rank {settings.rank}, alpha {settings.alpha:g}, {settings.steps} "
                  f"steps, loss {sum(head) / len(head):.4f} (first 10 steps) -> {sum(tail) / len(tail):.4f} (last 10); {name}")
        log.info("ReCapture: %s", report)
        return (patched, name, report)


class ReCaptureSpatialLoRATrainModel(_ModelTrainer):
    DESCRIPTION = ("Spatial LoRA on ComfyUI's own MODEL: the spatial self-attention learns the source video's appearance "
                   "from random single frames with the temporal layers off. ComfyUI loads the model (and evicts others "
                   "for it); the model's own weights are never changed. Outputs the MODEL with the LoRA applied: the "
                   "base of the temporal trainer and of the SDEdit KSampler.")
    RETURN_NAMES = ("model", "lora_name", "report")
    KIND = "spatial"
    SOURCES = {"frames": ("IMAGE", {"tooltip": "The source video (the size given to SVD_img2vid_Conditioning)."})}
    EXTRA_WIDGETS = {"frames_per_step": ("INT", {"default": 2, "min": 1, "max": 64,
                                                 "tooltip": "Independent frames per step (frames never see each other)."})}

    def train(self, model, vae, positive, frames, **widgets):
        from ..recapture_core.finetune import train_spatial

        return self._run(model, vae, positive, widgets, train_spatial, frames)


class ReCaptureMaskedTemporalLoRATrainModel(_ModelTrainer):
    DESCRIPTION = ("Masked temporal LoRA on ComfyUI's own MODEL: the temporal attention learns the anchor video's motion "
                   "with the loss only on valid pixels (holes contribute exactly nothing). Connect the spatial trainer's "
                   "MODEL: its LoRA stays applied and frozen underneath, as in the paper. Outputs the MODEL with both "
                   "LoRAs for the KSampler.")
    RETURN_NAMES = ("model", "lora_name", "report")
    KIND = "temporal"
    SOURCES = {
        "anchor": ("IMAGE", {"tooltip": "The anchor video (PointCloudWarp); its first frame is the conditioning's init_image."}),
        "valid_mask": ("MASK", {"tooltip": "1 = pixel rendered from the source: only these count in the loss."}),
    }
    # Optional (0 when absent), so prompts saved before windows existed still validate.
    OPTIONAL = {"window": ("INT", {
        "default": 0, "min": 0, "max": 1024, "tooltip": "Frames of one training window: each step trains on a random "
        "window of this many anchor frames, conditioned on its own first frame, so any clip length trains in the "
        "memory of one window. 0: the model's own length (SVD-XT 25, Wan 81). For SVD give the video_frames of "
        "SVD_img2vid_Conditioning (14 for svd.safetensors); Wan rounds down to 4k+1."}),
                "clip_vision": ("CLIP_VISION", {
        "tooltip": "SVD only, optional: the loader's CLIP_VISION, to give each window the image embed of its own first "
                   "frame. Without it every window keeps the wired embed (the clip's first frame); the concat latent "
                   "is always the window's own."})}

    def train(self, model, vae, positive, anchor, valid_mask, **widgets):  # clip_vision, if connected, is in widgets
        from ..recapture_core.finetune import train_temporal

        return self._run(model, vae, positive, widgets, train_temporal, anchor, valid_mask)


NODE_CLASS_MAPPINGS = {
    "ReCaptureSpatialLoRATrainModel": ReCaptureSpatialLoRATrainModel,
    "ReCaptureMaskedTemporalLoRATrainModel": ReCaptureMaskedTemporalLoRATrainModel,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ReCaptureSpatialLoRATrainModel": "SpatialLoRATrain on MODEL (ReCapture)",
    "ReCaptureMaskedTemporalLoRATrainModel": "MaskedTemporalLoRATrain on MODEL (ReCapture)",
}
