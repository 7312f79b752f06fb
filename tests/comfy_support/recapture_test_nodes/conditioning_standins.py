"""Test-only stand-in for text encoders whose real models cannot be tiny (CLIP-L of SD-1.5, OpenCLIP-H of SD-2,
UMT5-XXL of Wan): CONDITIONING of the shape their CLIPTextEncode gives, for the hostile-input tests of the
trainers on ComfyUI's MODEL (tests/test_server_comfy_model_hostile.py).
"""
import torch


class ReCaptureTestTextConditioning:
    """``[[context [1, tokens, width], {"pooled_output": [1, width]}]]`` as CLIPTextEncode makes it, seeded."""

    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tokens": ("INT", {"default": 77, "min": 1, "max": 1024}),
                             "width": ("INT", {"default": 768, "min": 1, "max": 8192}),
                             "pooled_output": ("BOOLEAN", {"default": True}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 1000})}}

    def encode(self, tokens, width, pooled_output, seed):
        generator = torch.Generator().manual_seed(seed)
        context = torch.randn(1, tokens, width, generator=generator) * 0.1
        extras = {"pooled_output": torch.randn(1, width, generator=generator) * 0.1} if pooled_output else {}
        return ([[context, extras]],)


NODE_CLASS_MAPPINGS = {"ReCaptureTestTextConditioning": ReCaptureTestTextConditioning}
