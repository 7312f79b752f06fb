"""Test-only ComfyUI nodes, linked into the *test* server's custom_nodes (never shipped with the pack).

ComfyUI's "Load CLIP Vision" can only build its fixed full-size encoders (ViT-L/H/bigG, SigLIP,
DINOv2; 300 M+ parameters): it picks the JSON config from which layer keys exist. The tests need
a CLIP_VISION that is a few hundred KB, so this node builds ComfyUI's own ``ClipVisionModel``
from a JSON config that sits next to the weights in models/clip_vision/ (tests/tiny_comfy_models.py).

``ReCaptureTestForeignValue`` stands in for another pack's node: it hands on what other packs
may give (values 0..255, NaN, a plain tensor on a socket named DEPTH), for the hostile-input tests.
"""
import os

import comfy.clip_vision
import torch
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


class ReCaptureTestForeignValue:
    CATEGORY = "testing"
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE", "MASK", "DEPTH")
    KINDS = ("image 0..255", "image with NaN", "mask 0..255", "plain tensor as DEPTH", "uint8 image")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "kind": (list(cls.KINDS),)}}

    def make(self, image, kind):
        image = image.clone()
        mask = image[..., 0].clone()
        if kind == "image 0..255":
            image = image * 255.0
        elif kind == "image with NaN":
            image[0, 0, 0, 0] = float("nan")
        elif kind == "mask 0..255":
            mask = mask * 255.0
        elif kind == "uint8 image":
            image = (image * 255).round().to(torch.uint8)
        return (image, mask, image[..., 0].clone())  # the last: a plain tensor where ReCapture's DEPTH belongs


NODE_CLASS_MAPPINGS = {"ReCaptureTestTinyCLIPVisionLoader": ReCaptureTestTinyCLIPVisionLoader,
                       "ReCaptureTestForeignValue": ReCaptureTestForeignValue}
