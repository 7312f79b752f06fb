"""DualLoRASample and SDEditRefine: the re-shot video."""
from __future__ import annotations

from . import _comfy, _meta_batch

CATEGORY = "ReCapture/sample"


def _sampling_inputs(steps: int, seed_tooltip: str) -> dict:
    return {
        "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "control_after_generate": True, "tooltip": seed_tooltip}),
        "steps": ("INT", {"default": steps, "min": 1, "max": 200, "tooltip": "Denoising steps (EDM Euler, Karras noise levels)."}),
        "min_guidance": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 20.0, "step": 0.01,
                                   "tooltip": "Guidance at the first frame; it rises linearly to max_guidance at the last (SVD's frame-wise CFG)."}),
        "max_guidance": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 20.0, "step": 0.01, "tooltip": "Guidance at the last frame."}),
        "motion_bucket_id": ("INT", {"default": 127, "min": 1, "max": 1023, "tooltip": "SVD's motion amount conditioning."}),
        "fps": ("FLOAT", {"default": 7.0, "min": 1.0, "max": 120.0, "step": 0.001,
                          "tooltip": "SVD's frame-rate conditioning. A FLOAT, so a video loader's fps output (VideoHelperSuite's "
                                     "loaded_fps, core Get Video Components' fps) connects directly."}),
        "noise_aug_strength": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 1.0, "step": 0.001,
                                         "tooltip": "Noise added to the image prompt before encoding (SVD's conditioning augmentation)."}),
        "decode_chunk_size": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip": "Frames decoded by the VAE at once; lower it if memory runs out."}),
        "window": ("INT", {"default": 0, "min": 0, "max": 128,
                           "tooltip": "Frames per window for long videos; 0 = the backbone's own (14 SVD, 25 SVD-XT)."}),
        "overlap": ("INT", {"default": 4, "min": 0, "max": 64, "tooltip": "Frames shared by neighbouring windows, blended linearly in latent space."}),
    }


def _settings(**widgets):
    from ..recapture_core.svd.sample import SampleSettings

    return SampleSettings(**widgets)


class ReCaptureDualLoRASample:
    DESCRIPTION = ("Sample the re-shot video: SVD image-to-video with the first anchor frame as the image prompt and "
                   "both LoRAs attached (temporal: the new camera motion; spatial: the source appearance). Videos longer "
                   "than the backbone's window are sampled in overlapping, blended windows.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    META_BATCH = _meta_batch.SAMPLING
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The sampled video, [frames, height, width, 3], same size and length as the anchor.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("RECAPTURE_BACKBONE", {"tooltip": "From the SVD loader."}),
                "anchor": ("IMAGE", {"tooltip": "The anchor video; each window's first frame is its image prompt."}),
                "temporal_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "Scale of the temporal LoRA (0 = off)."}),
                "spatial_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "Scale of the spatial LoRA (0 = off)."}),
                "start_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                             "tooltip": "1 = start from pure noise (the paper); below 1 = start from the anchor video noised this far."}),
                **_sampling_inputs(25, "Seed of the initial noise."),
            },
            "optional": {
                "temporal_lora": ("RECAPTURE_LORA", {"tooltip": "From MaskedTemporalLoRATrain (or Load ReCapture LoRA)."}),
                "spatial_lora": ("RECAPTURE_LORA", {"tooltip": "From SpatialLoRATrain (or Load ReCapture LoRA)."}),
            },
        }

    def sample(self, backbone, anchor, temporal_strength, spatial_strength, start_strength, temporal_lora=None,
               spatial_lora=None, **widgets):
        from ..recapture_core.svd.sample import dual_lora_sample

        settings = _settings(strength=start_strength, **widgets)
        with _comfy.autograd_enabled():
            return (dual_lora_sample(backbone, anchor, temporal_lora, spatial_lora, temporal_strength, spatial_strength,
                                     settings, progress=_comfy.progress(1), **_comfy.backbone_job(backbone)),)


class ReCaptureSDEditRefine:
    DESCRIPTION = ("Remove blur: re-noise the sampled frames to a strength and denoise them with the spatial LoRA only "
                   "(temporal LoRA off), same conditioning as the sampler. Strength 0 returns the input (VAE round trip).")
    CATEGORY = CATEGORY
    FUNCTION = "refine"
    META_BATCH = _meta_batch.SAMPLING
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The refined video, same size and length as the input.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("RECAPTURE_BACKBONE", {"tooltip": "From the SVD loader."}),
                "frames": ("IMAGE", {"tooltip": "The video to refine (DualLoRASample's output)."}),
                "strength": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "tooltip": "How far to re-noise, as a fraction of the noise schedule: 0 = no change, 1 = from pure noise."}),
                "spatial_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "Scale of the spatial LoRA."}),
                **_sampling_inputs(25, "Seed of the re-noising."),
            },
            "optional": {"spatial_lora": ("RECAPTURE_LORA", {"tooltip": "From SpatialLoRATrain; without it, plain SVD refines."})},
        }

    def refine(self, backbone, frames, strength, spatial_strength, spatial_lora=None, **widgets):
        from ..recapture_core.svd.sample import sdedit_refine

        settings = _settings(strength=strength, **widgets)
        with _comfy.autograd_enabled():
            return (sdedit_refine(backbone, frames, spatial_lora, spatial_strength, settings, progress=_comfy.progress(1),
                                  **_comfy.backbone_job(backbone)),)


NODE_CLASS_MAPPINGS = {"ReCaptureDualLoRASample": ReCaptureDualLoRASample, "ReCaptureSDEditRefine": ReCaptureSDEditRefine}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCaptureDualLoRASample": "DualLoRASample (ReCapture)",
                              "ReCaptureSDEditRefine": "SDEditRefine (ReCapture)"}
