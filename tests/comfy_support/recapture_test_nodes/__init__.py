"""Test-only ComfyUI nodes, linked into the *test* server's custom_nodes (never shipped with the pack).

ComfyUI's "Load CLIP Vision" can only build its fixed full-size encoders (ViT-L/H/bigG, SigLIP,
DINOv2; 300 M+ parameters): it picks the JSON config from which layer keys exist. The tests need
a CLIP_VISION that is a few hundred KB, so this node builds ComfyUI's own ``ClipVisionModel``
from a JSON config that sits next to the weights in models/clip_vision/ (tests/tiny_comfy_models.py).
"""
import os

import comfy.clip_vision
import comfy.utils
import folder_paths


class ReCaptureTestTinyCLIPVisionLoader:
    CATEGORY = "testing"
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP_VISION",)

    @classmethod
    def INPUT_TYPES(cls):
        names = [n for n in folder_paths.get_filename_list("clip_vision") if n.endswith(".safetensors")]
        return {"required": {"clip_name": (names,)}}

    def load(self, clip_name):
        weights = folder_paths.get_full_path_or_raise("clip_vision", clip_name)
        clip_vision = comfy.clip_vision.ClipVisionModel(os.path.splitext(weights)[0] + ".json")
        missing, unexpected = clip_vision.load_sd(comfy.utils.load_torch_file(weights))
        if missing or unexpected:
            raise ValueError(f"tiny CLIP vision {clip_name}: missing {missing}, unexpected {unexpected}")
        return (clip_vision,)


NODE_CLASS_MAPPINGS = {"ReCaptureTestTinyCLIPVisionLoader": ReCaptureTestTinyCLIPVisionLoader}
