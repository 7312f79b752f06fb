"""Test-only ComfyUI nodes, linked into the *test* server's custom_nodes (never shipped with the pack).

ComfyUI's "Load CLIP Vision" can only build its fixed full-size encoders (ViT-L/H/bigG, SigLIP,
DINOv2; 300 M+ parameters): it picks the JSON config from which layer keys exist. The tests need
a CLIP_VISION that is a few hundred KB, so this node builds ComfyUI's own ``ClipVisionModel``
from a JSON config that sits next to the weights in models/clip_vision/ (tests/tiny_comfy_models.py).

``ReCaptureTestTinySVDLoader`` stands in for Image Only Checkpoint Loader on svd_xt.safetensors:
ComfyUI's SVD detection matches SVD's full layout (1.5 B parameters), so the test builds ComfyUI's
own ``SVD_img2vid`` model object from a tiny config (tests/tiny_comfy_models.py) in the weight
dtype a loader would pick.

``ReCaptureTestForeignValue`` stands in for another pack's node: it hands on what other packs
may give (values 0..255, NaN, a plain tensor on a socket named DEPTH), for the hostile-input tests.

``VHS_BatchManager`` and ``ReCaptureTestChunkedClip`` stand in for VideoHelperSuite's Meta Batch Manager
and a VHS loader fed by it (VHS is GPL-3 and needs the network to install, so it is not in the test set-up).
They keep VHS's protocol: the manager node has VHS's class name, ``frames_per_batch`` and its
``VHS_BatchManager`` output; VHS re-queues the prompt once per chunk with the manager's ``inputs.requeue``
raised by one (0 for the first chunk), and the loader hands out the next ``frames_per_batch`` frames.
"""
import os
import sys
from pathlib import Path

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


class ReCaptureTestTinySVDLoader:
    CATEGORY = "testing"
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP_VISION", "VAE")  # Image Only Checkpoint Loader's outputs
    DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weight_dtype": (list(cls.DTYPES),), "seed": ("INT", {"default": 0, "min": 0, "max": 1000}),
                             **ReCaptureTestTinyCLIPVisionLoader.INPUT_TYPES()["required"]}}

    def load(self, weight_dtype, seed, clip_name):
        tests = str(Path(__file__).resolve().parents[2])
        if tests not in sys.path:
            sys.path.append(tests)
        from tiny_comfy_models import make_svd_model

        model, vae = make_svd_model(seed=seed, dtype=self.DTYPES[weight_dtype])
        return (model, ReCaptureTestTinyCLIPVisionLoader().load(clip_name)[0], vae)


class ReCaptureTestWanText:
    """Stands in for CLIPLoader (umt5_xxl, type wan) + CLIPTextEncode: UMT5-XXL cannot be built tiny (nor run
    at full size here). ``tokens``: 8 for the tiny models' tests; 512 for UMT5-XXL's ``[1, 512, 4096]`` (tests/fullsize)."""

    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True})},
                "optional": {"tokens": ("INT", {"default": 8, "min": 1, "max": 512})}}

    def encode(self, text, tokens=8):
        tests = str(Path(__file__).resolve().parents[2])
        if tests not in sys.path:
            sys.path.append(tests)
        from tiny_comfy_models import wan_text_conditioning

        return (wan_text_conditioning(text, tokens=tokens),)


class ReCaptureTestLoad3DCamera:
    """Stands in for Load3D's camera_info (which needs the frontend's 3D viewer): the same dict."""

    CATEGORY = "testing"
    FUNCTION = "make"
    RETURN_TYPES = ("LOAD3D_CAMERA",)

    @classmethod
    def INPUT_TYPES(cls):
        number = ("FLOAT", {"default": 0.0, "min": -1e6, "max": 1e6, "step": 0.0001})
        return {"required": {**{k: number for k in ("x", "y", "z", "target_x", "target_y", "target_z")},
                             "zoom": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 100.0, "step": 0.01}),
                             "camera_type": (["perspective", "orthographic"],)}}

    def make(self, x, y, z, target_x, target_y, target_z, zoom, camera_type):
        return ({"position": {"x": x, "y": y, "z": z}, "target": {"x": target_x, "y": target_y, "z": target_z},
                 "zoom": zoom, "cameraType": camera_type},)


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


class VHSBatchManagerStandIn:
    CATEGORY = "testing"
    FUNCTION = "update_batch"
    RETURN_TYPES = ("VHS_BatchManager",)
    RETURN_NAMES = ("meta_batch",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"frames_per_batch": ("INT", {"default": 16, "min": 1, "max": 2 ** 53 - 1})},
                "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}}

    def update_batch(self, frames_per_batch, prompt=None, unique_id=None):
        requeue = prompt[unique_id]["inputs"].get("requeue", 0) if prompt and unique_id else 0
        return ({"frames_per_batch": frames_per_batch, "chunk": requeue},)


class ReCaptureTestChunkedClip:
    CATEGORY = "testing"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "meta_batch": ("VHS_BatchManager",)}}

    def load(self, images, meta_batch):
        first = meta_batch["chunk"] * meta_batch["frames_per_batch"]
        return (images[first:first + meta_batch["frames_per_batch"]],)


NODE_CLASS_MAPPINGS = {"VHS_BatchManager": VHSBatchManagerStandIn, "ReCaptureTestChunkedClip": ReCaptureTestChunkedClip,
                       "ReCaptureTestTinyCLIPVisionLoader": ReCaptureTestTinyCLIPVisionLoader,
                       "ReCaptureTestTinySVDLoader": ReCaptureTestTinySVDLoader,
                       "ReCaptureTestWanText": ReCaptureTestWanText,
                       "ReCaptureTestLoad3DCamera": ReCaptureTestLoad3DCamera,
                       "ReCaptureTestForeignValue": ReCaptureTestForeignValue}

from .fullsize_nodes import NODE_CLASS_MAPPINGS as _FULLSIZE_NODES  # noqa: E402  (tests/fullsize/)
NODE_CLASS_MAPPINGS.update(_FULLSIZE_NODES)
from .conditioning_standins import NODE_CLASS_MAPPINGS as _CONDITIONING_STANDINS  # noqa: E402  (MODEL trainers' hostile inputs)
NODE_CLASS_MAPPINGS.update(_CONDITIONING_STANDINS)

from . import route_probe  # noqa: E402,F401  (registers the test-only route probe of tests/test_server_routes_hostile.py)
