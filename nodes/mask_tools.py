"""Mask nodes: convert between valid_mask and hole_mask, and preview a mask on the video."""
from __future__ import annotations

from ..recapture_core.masks import hole_mask_from_valid, overlay_mask

_COLORS = {
    "magenta": (1.0, 0.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
}


class ReCaptureHoleMask:
    DESCRIPTION = ("Turn a valid_mask (1 = pixel rendered from the source) into a hole_mask "
                   "(1 = pixel to fill, ComfyUI's inpainting convention), optionally grown by a few pixels.")
    CATEGORY = "ReCapture/masks"
    FUNCTION = "convert"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("hole_mask",)
    OUTPUT_TOOLTIPS = ("1 = pixel to fill. Same frames and size as valid_mask.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "valid_mask": ("MASK", {"tooltip": "1 = pixel rendered from the source video (e.g. PointCloudWarp's valid_mask). Any value below 1 counts as a hole."}),
                "dilate_px": ("INT", {"default": 0, "min": 0, "max": 64, "step": 1,
                                      "tooltip": "Grow every hole by this many pixels, to cover the fringe of unreliable pixels around it."}),
            }
        }

    def convert(self, valid_mask, dilate_px):
        return (hole_mask_from_valid(valid_mask, dilate_px),)


class ReCaptureMaskOverlay:
    DESCRIPTION = "Tint the masked pixels of a video to check a mask by eye (e.g. the holes of an anchor video)."
    CATEGORY = "ReCapture/masks"
    FUNCTION = "overlay"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    OUTPUT_TOOLTIPS = ("The frames with masked pixels tinted; unmasked pixels are unchanged.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The video, [frames, height, width, 3]."}),
                "mask": ("MASK", {"tooltip": "One mask per frame, or a single mask for all frames; must have the frames' size."}),
                "color": (list(_COLORS), {"default": "magenta", "tooltip": "Tint for masked pixels."}),
                "opacity": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "0 = invisible, 1 = masked pixels painted solid."}),
            }
        }

    def overlay(self, frames, mask, color, opacity):
        return (overlay_mask(frames, mask, _COLORS[color], opacity),)


NODE_CLASS_MAPPINGS = {
    "ReCaptureHoleMask": ReCaptureHoleMask,
    "ReCaptureMaskOverlay": ReCaptureMaskOverlay,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ReCaptureHoleMask": "Valid Mask → Hole Mask (ReCapture)",
    "ReCaptureMaskOverlay": "Mask Overlay (ReCapture)",
}
