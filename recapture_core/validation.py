"""Checks on ComfyUI-typed tensors, shared by every entry point of the core.

Each check raises :class:`ReCaptureInputError` naming the input, before any long work starts.
"""
from __future__ import annotations

import torch

from .errors import ReCaptureInputError


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Check an IMAGE video: float ``[F, H, W, 3]``, F >= 1, finite values.

    Returns the tensor unchanged (for chaining).
    """
    if not isinstance(frames, torch.Tensor):
        raise ReCaptureInputError(name, f"expected an IMAGE tensor, got {type(frames).__name__}",
                                  "Connect an IMAGE output (e.g. Load Image or a video loader).")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ReCaptureInputError(name, f"expected an IMAGE of shape [frames, height, width, 3], got {list(frames.shape)}",
                                  "Connect an RGB IMAGE; convert RGBA or greyscale images to RGB first.")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ReCaptureInputError(name, f"the video is empty (shape {list(frames.shape)})",
                                  "Check the loader upstream: it produced no frames.")
    if not torch.isfinite(frames).all():
        raise ReCaptureInputError(name, "contains NaN or infinite values",
                                  "Check the node upstream; IMAGE values must be finite, in 0..1.")
    return frames


def check_mask(mask: torch.Tensor, name: str, frames: torch.Tensor | None = None,
               frames_name: str = "frames") -> torch.Tensor:
    """Check a MASK ``[F, H, W]`` (or ``[H, W]``) with values in 0..1.

    When ``frames`` ``[F, H, W, 3]`` is given, the mask must match its height and width and have
    either F frames or 1 (a single mask applies to every frame, as in ComfyUI's own nodes).

    Returns the mask as ``[F_mask, H, W]``.
    """
    if not isinstance(mask, torch.Tensor):
        raise ReCaptureInputError(name, f"expected a MASK tensor, got {type(mask).__name__}", "Connect a MASK output.")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3 or mask.shape[0] == 0:
        raise ReCaptureInputError(name, f"expected a MASK of shape [frames, height, width], got {list(mask.shape)}",
                                  "Connect a MASK output.")
    if not torch.isfinite(mask).all():
        raise ReCaptureInputError(name, "contains NaN or infinite values", "Check the node that made the mask.")
    low, high = float(mask.min()), float(mask.max())
    if low < 0.0 or high > 1.0:
        raise ReCaptureInputError(name, f"values must lie in 0..1, found {low:g}..{high:g}",
                                  "Normalise the mask (e.g. with a threshold node) before connecting it.")
    if frames is not None:
        num_frames, height, width = frames.shape[:3]
        if tuple(mask.shape[1:]) != (height, width):
            raise ReCaptureInputError(
                name, f"is {mask.shape[2]}x{mask.shape[1]} (width x height) but {frames_name} is {width}x{height}",
                f"Resize the mask or {frames_name} so both have the same size.")
        if mask.shape[0] not in (1, num_frames):
            raise ReCaptureInputError(
                name, f"has {mask.shape[0]} frames but {frames_name} has {num_frames}",
                f"Give one mask per frame ({num_frames}) or a single mask for all frames.")
    return mask
