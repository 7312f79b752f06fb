"""Depth nodes: DepthEstimate (transformers depth models) and Depth From Image (any other pack)."""
from __future__ import annotations

import logging
import threading

from ..recapture_core.depth import IMAGE_READINGS, align_depth_temporally, colorize_depth, depth_from_image
from ..recapture_core.errors import ReCaptureInputError
from . import _comfy, _meta_batch

log = logging.getLogger(__name__)
CATEGORY = "ReCapture/depth"
NO_MODELS = "(no depth models in models/depth)"
DEPTH_TOOLTIP = "Per-frame depth [frames, height, width] at the video's size, plus what it is (metric, relative, disparity)."
PREVIEW_TOOLTIP = "Colour-mapped depth, near = bright, one scale for the whole clip."
TEMPORAL_TOOLTIP = ("Remove per-frame scale flicker: fit each frame's depth to its neighbours by a robust least-squares "
                    "scale (and shift for relative depth / disparity).")
#: Depth packs normalise every frame's map to 0..1 on its own: on by default wherever depth arrives as an IMAGE.
IMAGE_ALIGNMENT_INPUT = ("BOOLEAN", {"default": True, "tooltip": (
    "Make the maps one consistent clip. Depth packs (Depth Anything, MiDaS preprocessors) stretch each frame's map to "
    "0..1 on its own, so a grey value means another depth in every frame: relative readings are fitted frame by frame "
    "(scale and shift, robustly, to the frames before) and the clip re-stretched to 0..1 as one; metric readings get "
    "a scale per frame. Turn off for maps already consistent across the clip (a depth file you made, exact depth).")})



class _DepthOutput:
    """Shared declarations of the nodes that make DEPTH."""

    CATEGORY = CATEGORY
    META_BATCH = _meta_batch.ALIGNED_DEPTH
    RETURN_TYPES = ("DEPTH", "IMAGE")
    RETURN_NAMES = ("depth", "preview")
    OUTPUT_TOOLTIPS = (DEPTH_TOOLTIP, PREVIEW_TOOLTIP)


_cache_lock = threading.Lock()
_cached = {}  # (path, mtime) -> DepthModel, one entry: the last model used stays loaded on the CPU


def _load_cached(path):
    from ..recapture_core.depth_models import load_depth_model

    key = (str(path), (path / "config.json").stat().st_mtime)
    with _cache_lock:
        if key not in _cached:
            _cached.clear()
            _cached[key] = load_depth_model(path)
        return _cached[key]


def _maybe_align(depth, temporal_consistency):
    if not temporal_consistency or depth.num_frames < 2:
        return depth
    aligned, params = align_depth_temporally(depth, progress=_comfy.progress(depth.num_frames),
                                             check_interrupt=_comfy.check_interrupt)
    log.info("ReCapture depth: per-frame scales after alignment %.3f..%.3f", float(params[:, 0].min()), float(params[:, 0].max()))
    return aligned


class ReCaptureDepthEstimate(_DepthOutput):
    DESCRIPTION = ("Estimate per-frame depth with a transformers depth model from models/depth/ (Depth Anything V2, "
                   "DPT/MiDaS, ZoeDepth). Runs on ComfyUI's device in frame batches; never downloads anything.")
    FUNCTION = "estimate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The video, [frames, height, width, 3]."}),
            "depth_model": (_comfy.model_subfolders("depth") or [NO_MODELS],
                            {"tooltip": "A transformers depth model folder under models/depth/ (config.json, "
                                        "model.safetensors, preprocessor_config.json)."}),
            "batch_size": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "Frames per forward pass; lower it if memory runs out."}),
            "temporal_consistency": ("BOOLEAN", {"default": True, "tooltip": TEMPORAL_TOOLTIP}),
        }}

    def estimate(self, frames, depth_model, batch_size, temporal_consistency):
        from ..recapture_core.depth_models import HELP, HINT, estimate_depth

        path = _comfy.model_subfolder_path("depth", depth_model, "depth_model", NO_MODELS, HELP, HINT)
        model = _load_cached(path)
        device = _comfy.device()
        model.model.to(device)
        try:
            depth = estimate_depth(model, frames, batch_size=batch_size, device=device,
                                   progress=_comfy.progress(frames.shape[0]), check_interrupt=_comfy.check_interrupt)
        finally:
            model.model.to(_comfy.offload_device())
            _comfy.model_management.soft_empty_cache()
        depth = _maybe_align(depth, temporal_consistency)
        return (depth, colorize_depth(depth))


class ReCaptureDepthFromImage(_DepthOutput):
    DESCRIPTION = ("Use a depth map from any other pack (Depth Anything, MiDaS, Marigold, ZoeDepth preprocessors) or "
                   "from files: say how to read its brightness, and it becomes DEPTH at the video's size.")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "depth_image": ("IMAGE", {"tooltip": "Greyscale depth maps, one per frame (colour-mapped previews cannot be read)."}),
                "reading": (list(IMAGE_READINGS), {"default": "disparity, bright = near",
                            "tooltip": "How brightness maps to depth. Most preprocessors give disparity, bright = near."}),
                "near": ("FLOAT", {"default": 0.5, "min": 1e-3, "max": 1e5, "step": 0.001,
                                   "tooltip": "Metric readings only: distance of the nearest value, in scene units (metres)."}),
                "far": ("FLOAT", {"default": 20.0, "min": 1e-3, "max": 1e5, "step": 0.001,
                                  "tooltip": "Metric readings only: distance of the farthest value."}),
                "temporal_consistency": IMAGE_ALIGNMENT_INPUT,
            },
            "optional": {"frames": ("IMAGE", {"tooltip": "Optional: the video; the depth is resized to its size when they differ."})},
        }

    def convert(self, depth_image, reading, near, far, temporal_consistency, frames=None):
        size = tuple(frames.shape[1:3]) if frames is not None else None
        if frames is not None and frames.shape[0] != depth_image.shape[0]:
            raise ReCaptureInputError("depth_image", f"has {depth_image.shape[0]} frames but frames has {frames.shape[0]}",
                                      "Give one depth map per video frame: the depth made from this video. After swapping "
                                      "the video in a sample workflow, replace its depth file by DepthEstimate on the new "
                                      "frames (or your depth pack's output).")
        depth = depth_from_image(depth_image, reading, near, far, size, align_frames=temporal_consistency,
                                 progress=_comfy.progress(depth_image.shape[0]), check_interrupt=_comfy.check_interrupt)
        return (depth, colorize_depth(depth))


NODE_CLASS_MAPPINGS = {"ReCaptureDepthEstimate": ReCaptureDepthEstimate, "ReCaptureDepthFromImage": ReCaptureDepthFromImage}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCaptureDepthEstimate": "DepthEstimate (ReCapture)",
                              "ReCaptureDepthFromImage": "Depth From Image (ReCapture)"}
