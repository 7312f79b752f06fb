"""Test-only nodes of the full-size checks (tests/fullsize/): what a graph needs that no real node gives.

Wan's text conditioning at UMT5-XXL's real shape ``[1, 512, 4096]`` comes from ``ReCaptureTestWanText`` with
``tokens=512`` (UMT5-XXL, 5.7 B parameters, is too big to make and run on the test machine).
``ReCaptureTestMovingClip`` gives a clip and a valid mask with a hole, the trainers' inputs.
``ReCaptureTestModelReport`` reports on a MODEL: a hash of its own weights (to show training left them as
they were), the weights' dtype, the LoRA patches on it (what LoraLoaderModelOnly matched) and, given one,
whether a sampled LATENT is finite.
"""
import json
import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[2])
REPO = str(Path(__file__).resolve().parents[3])


def _tests_on_path():
    # The test helpers import recapture_core as a top-level package (as the tests do).
    for folder in (TESTS, REPO):
        if folder not in sys.path:
            sys.path.append(folder)


class ReCaptureTestMovingClip:
    CATEGORY = "testing"
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("frames", "valid_mask")

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 64, "min": 8, "max": 4096, "step": 8}
        return {"required": {"frames": ("INT", {"default": 5, "min": 1, "max": 256}), "width": ("INT", size),
                             "height": ("INT", size)}}

    def make(self, frames, width, height):
        _tests_on_path()
        from comfy_model_support import moving_clip

        clip = moving_clip(frames, height, width)
        valid = clip.new_ones(frames, height, width)
        valid[:, :, width * 2 // 3:] = 0.0  # a hole, as a camera move leaves one
        return (clip, valid)


class ReCaptureTestModelReport:
    CATEGORY = "testing"
    FUNCTION = "report"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "label": ("STRING", {"default": ""})},
                "optional": {"after": ("STRING", {"forceInput": True, "tooltip": "Only orders this node after another."}),
                             "latent": ("LATENT",)}}

    def report(self, model, label, after=None, latent=None):
        _tests_on_path()
        from comfy_model_support import fingerprint

        weight = model.model.diffusion_model.state_dict()
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in weight.values()})
        lora_patches = sum(1 for patches in model.patches.values() for patch in patches
                           if type(patch[1]).__name__ == "LoRAAdapter")
        info = {"label": label, "class": type(model.model).__name__, "fingerprint": fingerprint(model), "dtypes": dtypes,
                "parameters": sum(t.numel() for t in weight.values()), "lora_patches": lora_patches}
        if latent is not None:
            samples = latent["samples"]
            info["latent"] = {"shape": list(samples.shape), "finite": bool(samples.isfinite().all())}
        return {"ui": {"text": [json.dumps(info)]}}


NODE_CLASS_MAPPINGS = {"ReCaptureTestMovingClip": ReCaptureTestMovingClip,
                       "ReCaptureTestModelReport": ReCaptureTestModelReport}
