"""PointCloudWarp: the anchor video of ReCapture's first stage."""
from __future__ import annotations

import logging
import threading

from ..recapture_core.cache import LRUCache
from ..recapture_core.depth import IMAGE_READINGS, depth_from_image
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.warp import EDGE_THRESHOLD, HOLE_FILLS, anchor_from_depth, feasibility_report
from . import _comfy, _meta_batch
from .depth import IMAGE_ALIGNMENT_INPUT

log = logging.getLogger(__name__)


def _running_prompt_id() -> str | None:
    """The id of the prompt ComfyUI is running: its prompt worker (main.py) sets ``last_prompt_id`` before it runs one."""
    return getattr(_comfy.prompt_server(), "last_prompt_id", None)


class RecentRuns:
    """node id -> what the last run of that PointCloudWarp node saw, for the editor's routes (nodes/_routes.py):
    references to its inputs (the DEPTH as given: a route turns it into depth when asked), plus the node's type and
    the prompt it ran in, so that a route can tell when the id has since become another node. ``size`` nodes at most.

    Written by ComfyUI's prompt worker thread, read by the routes on the server's threads: one lock."""

    def __init__(self, size: int):
        self._runs, self._lock = LRUCache(size=size), threading.Lock()

    def remember(self, node_id: str, node_type: str, **seen) -> None:
        entry = {**seen, "node_type": node_type, "prompt_id": _running_prompt_id()}
        with self._lock:
            self._runs.put(node_id, entry)

    def recall(self, node_id: str) -> dict | None:
        with self._lock:
            return self._runs.get(node_id)


RECENT = RecentRuns(size=4)


class ReCapturePointCloudWarp:
    DESCRIPTION = ("Render every frame from its new camera: depth -> point cloud -> exact z-buffer. Gives the anchor "
                   "video, valid_mask (1 = rendered from the source), hole_mask (1 = to fill) and a feasibility report. "
                   "Connect DEPTH, or a depth-map IMAGE from another pack with the reading widget.")
    CATEGORY = "ReCapture/anchor"
    FUNCTION = "warp"
    META_BATCH = _meta_batch.ANCHOR
    RETURN_TYPES = ("IMAGE", "MASK", "MASK", "STRING")
    RETURN_NAMES = ("anchor", "valid_mask", "hole_mask", "report")
    OUTPUT_TOOLTIPS = ("The frames seen from the new cameras; holes filled as chosen.",
                       "1 = pixel rendered from the source video.",
                       "1 = pixel to fill (ComfyUI's inpainting convention); valid_mask + hole_mask = 1.",
                       "Hole ratio per frame, mean and maximum, with a warning when the move is too large.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The source video, [frames, height, width, 3]."}),
                "trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "One target camera per frame, relative to that frame's source camera."}),
                "match_subject_distance": ("BOOLEAN", {"default": True,
                                           "tooltip": "Scale the trajectory's moves so that its subject distance equals the depth's "
                                                      "(median of the central region). Turn off for camera files in the depth's own units."}),
                "edge_threshold": ("FLOAT", {"default": EDGE_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.001,
                                             "tooltip": "Drop 'flying' pixels inside depth jumps steeper than this relative step per "
                                                        "pixel; they would smear into streaks. 0 = off."}),
                "hole_dilation": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Grow holes by this many pixels."}),
                "hole_fill": (list(HOLE_FILLS), {"default": "black", "tooltip": "What hole pixels of the anchor video hold."}),
                "warn_above": ("FLOAT", {"default": 0.35, "min": 0.0, "max": 1.0, "step": 0.01,
                                         "tooltip": "Warn in the report when a frame has more holes than this share."}),
            },
            "optional": {
                "depth": ("DEPTH", {"tooltip": "Depth of the source video (DepthEstimate or Depth From Image)."}),
                "depth_image": ("IMAGE", {"tooltip": "Or: a depth-map IMAGE from another pack, read with 'reading'."}),
                "reading": (list(IMAGE_READINGS), {"default": "disparity, bright = near",
                            "tooltip": "How to read depth_image (ignored for DEPTH)."}),
                "near": ("FLOAT", {"default": 0.5, "min": 1e-3, "max": 1e5, "step": 0.001, "tooltip": "Metric readings: nearest distance."}),
                "far": ("FLOAT", {"default": 20.0, "min": 1e-3, "max": 1e5, "step": 0.001, "tooltip": "Metric readings: farthest distance."}),
                "temporal_consistency": IMAGE_ALIGNMENT_INPUT,  # last: workflows saved before it keep their widget values
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def warp(self, frames, trajectory, match_subject_distance, edge_threshold, hole_dilation, hole_fill, warn_above,
             depth=None, depth_image=None, reading="disparity, bright = near", near=0.5, far=20.0, temporal_consistency=True,
             unique_id=None, meta_batch_chunk=None):
        if (depth is None) == (depth_image is None):
            raise ReCaptureInputError("depth", "connect exactly one of depth (DEPTH) or depth_image (IMAGE)",
                                      "Use DepthEstimate, Depth From Image, or a depth-map IMAGE from another pack.")
        if depth is None:
            depth = depth_from_image(depth_image, reading, near, far, size=tuple(frames.shape[1:3]),
                                     align_frames=temporal_consistency, check_interrupt=_comfy.check_interrupt)
        trajectory, subject_distance = _meta_batch.anchor_window(meta_batch_chunk, trajectory, frames.shape[0], depth,
                                                                 match_subject_distance)
        result = anchor_from_depth(frames, depth, trajectory, match_subject_distance=match_subject_distance,
                                   subject_distance=subject_distance, edge_threshold=edge_threshold,
                                   hole_dilation=hole_dilation, hole_fill=hole_fill, device=_comfy.device(),
                                   progress=_comfy.progress(frames.shape[0]), check_interrupt=_comfy.check_interrupt)
        if unique_id is not None:
            RECENT.remember(str(unique_id), type(self).__name__,  # its name in NODE_CLASS_MAPPINGS below
                            frames=frames, depth=depth, trajectory=trajectory,
                            match_subject_distance=match_subject_distance, edge_threshold=edge_threshold)
        report = feasibility_report(result, warn_above)
        log.info("ReCapture PointCloudWarp: %s", report.replace("\n", " | "))
        return (result.anchor, result.valid_mask, result.hole_mask, report)


NODE_CLASS_MAPPINGS = {"ReCapturePointCloudWarp": ReCapturePointCloudWarp}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCapturePointCloudWarp": "PointCloudWarp (ReCapture)"}
