"""Checks on tensors and values arriving from other nodes, shared by every entry point of the core.

Each check raises :class:`ReCaptureInputError` naming the input, before any long work starts.
The nodes run :func:`check_value` on every input by its declared socket type (one layer for all
nodes, ``nodes/_inputs.py``); the core functions call the tensor checks for callers outside ComfyUI.
"""
from __future__ import annotations

import math

import torch

from .errors import ReCaptureInputError

#: IMAGE and MASK values may overshoot 0..1 by this much (resamplers ring a little); beyond it the
#: tensor is on another scale (e.g. 0..255) and every later step would be silently wrong.
RANGE_TOLERANCE = 1.0 / 255.0
#: The longest text a STRING widget takes (keyframes, names): parsing stays fast, nothing stalls.
MAX_TEXT_CHARS = 65536


def _value_range(tensor: torch.Tensor) -> tuple[float, float]:
    """(min, max) in one pass; NaN propagates through both, so a finite pair means all values are finite."""
    low, high = torch.aminmax(tensor.detach().reshape(-1))
    return float(low), float(high)


def _check_unit_range(tensor: torch.Tensor, name: str, what: str, source_hint: str) -> None:
    if tensor.dtype == torch.bool or not (tensor.is_floating_point()):
        raise ReCaptureInputError(name, f"holds {str(tensor.dtype).replace('torch.', '')} values; {what} values are floats in 0..1",
                                  f"Convert it to float in 0..1 (divide 8-bit values by 255). {source_hint}")
    low, high = _value_range(tensor)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ReCaptureInputError(name, "contains NaN or infinite values", f"Check the node upstream. {source_hint}")
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        scale = " (it looks like 8-bit values 0..255: divide by 255)" if high > 2.0 and high <= 255.0 + RANGE_TOLERANCE else ""
        raise ReCaptureInputError(name, f"values must lie in 0..1, found {low:g}..{high:g}{scale}",
                                  f"Rescale the {what} to 0..1 before connecting it. {source_hint}")


def check_image(image: torch.Tensor, name: str, channels: tuple[int, ...] = (3,)) -> torch.Tensor:
    """An IMAGE ``[F, H, W, C]`` (C in ``channels``), F, H, W >= 1, float values in 0..1. Returns it unchanged."""
    if not isinstance(image, torch.Tensor):
        raise ReCaptureInputError(name, f"expected an IMAGE tensor, got {type(image).__name__}",
                                  "Connect an IMAGE output (e.g. Load Image or a video loader).")
    if image.ndim != 4 or image.shape[-1] not in channels:
        raise ReCaptureInputError(name, f"expected an IMAGE of shape [frames, height, width, {'/'.join(map(str, channels))}], "
                                  f"got {list(image.shape)}", "Connect an RGB IMAGE; convert RGBA or greyscale images to RGB first.")
    if 0 in image.shape:
        raise ReCaptureInputError(name, f"the video is empty (shape {list(image.shape)})",
                                  "Check the loader upstream: it produced no frames.")
    _check_unit_range(image, name, "IMAGE", "")
    return image


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Check an RGB IMAGE video: float ``[F, H, W, 3]``, F >= 1, finite values in 0..1. Returns it unchanged."""
    return check_image(frames, name)


def check_mask(mask: torch.Tensor, name: str, frames: torch.Tensor | None = None,
               frames_name: str = "frames", per_frame: bool = False) -> torch.Tensor:
    """Check a MASK ``[F, H, W]`` (or ``[H, W]``) with values in 0..1.

    When ``frames`` ``[F, H, W, 3]`` is given, the mask must match its height and width and have
    F frames, or 1 (a single mask applies to every frame, as in ComfyUI's own nodes) unless
    ``per_frame`` says every frame needs its own.

    Returns the mask as ``[F_mask, H, W]``.
    """
    if not isinstance(mask, torch.Tensor):
        raise ReCaptureInputError(name, f"expected a MASK tensor, got {type(mask).__name__}", "Connect a MASK output.")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3 or 0 in mask.shape:
        raise ReCaptureInputError(name, f"expected a MASK of shape [frames, height, width], got {list(mask.shape)}",
                                  "Connect a MASK output.")
    _check_unit_range(mask, name, "MASK", "")
    if frames is not None:
        num_frames, height, width = frames.shape[:3]
        if tuple(mask.shape[1:]) != (height, width):
            raise ReCaptureInputError(
                name, f"is {mask.shape[2]}x{mask.shape[1]} (width x height) but {frames_name} is {width}x{height}",
                f"Resize the mask or {frames_name} so both have the same size.")
        allowed = (num_frames,) if per_frame else (1, num_frames)
        if mask.shape[0] not in allowed:
            fix = (f"Give one mask per frame of {frames_name} ({num_frames}): the mask made together with it."
                   if per_frame else f"Give one mask per frame ({num_frames}) or a single mask for all frames.")
            raise ReCaptureInputError(name, f"has {mask.shape[0]} frames but {frames_name} has {num_frames}", fix)
    return mask


def shown(value, max_chars: int = 60) -> str:
    """``value`` as a message quotes it: its repr, cut to ``max_chars``. A whole number too long to print (Python
    refuses to print more than 4300 digits) is described by its size instead."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * max_chars:
        return f"a whole number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= max_chars else f"{text[:max_chars - 3]}..."


def check_number(value, name: str, low: float | None = None, high: float | None = None, integer: bool = False):
    """A widget number: finite, of the right kind, within ``low..high`` (the widget's own limits).

    Whole numbers of any size are compared exactly (never converted to float, which overflows past 1e308)."""
    kind = "a whole number" if integer else "a number"
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (integer and isinstance(value, float) and not value.is_integer())):
        raise ReCaptureInputError(name, f"expected {kind}, got {shown(value)}", "Type a number into the widget.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ReCaptureInputError(name, f"must be finite, got {shown(value)}", "Type a finite number into the widget.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ReCaptureInputError(name, f"{shown(value)} is outside {low!r}..{high!r}", f"Use a value from {low!r} to {high!r}.")
    return value


def check_text(value, name: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A STRING widget: text of at most ``max_chars`` characters, no NUL."""
    if not isinstance(value, str):
        raise ReCaptureInputError(name, f"expected text, got {type(value).__name__}", "Type text into the widget.")
    if len(value) > max_chars:
        raise ReCaptureInputError(name, f"is {len(value)} characters long; at most {max_chars} are read",
                                  "Shorten the text.")
    if "\x00" in value:
        raise ReCaptureInputError(name, "contains a NUL character", "Remove it.")
    return value
