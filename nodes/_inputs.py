"""One input-checking layer for every node of the pack.

Anything may arrive on a socket: another pack's tensor on another scale, a plain tensor where a
DEPTH was declared, a NaN typed through the API. Rather than a check per node and per reported
case, every node's FUNCTION is wrapped once at registration (``nodes/__init__.py``): each input is
checked by its declared socket type before the node runs, and IMAGE / MASK outputs are checked to
be finite after it ran, so no node ever hands NaN on silently. The same wrapper adds ComfyUI's own
words (folders, node titles) to the core's messages, which speak only in the core's terms.
"""
from __future__ import annotations

import functools
import math

import torch

from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.validation import check_image, check_mask, check_number, check_text
from . import _meta_batch


def _pack_type(module: str, name: str, made_by: str):
    """A check that the value is the pack's own object.

    Matched by class name and defining module rather than ``isinstance``: a script or test may hold
    the core under another import name than ComfyUI gives the pack, and the object is the same kind.
    """

    def check(value, input_name: str, _options: dict):
        kind = type(value)
        if kind.__name__ != name or not kind.__module__.endswith(f"recapture_core.{module}"):
            raise ReCaptureInputError(
                input_name, f"expected ReCapture's {name} (from {made_by}), got {kind.__module__}.{kind.__name__}",
                f"Connect the output of {made_by}; another pack's object of the same type name cannot be read.")

    return check


def _image(value, input_name: str, _options: dict):
    check_image(value, input_name)


def _mask(value, input_name: str, _options: dict):
    check_mask(value, input_name)


def _number(integer: bool):
    def check(value, input_name: str, options: dict):
        check_number(value, input_name, options.get("min"), options.get("max"), integer=integer)

    return check


def _text(value, input_name: str, _options: dict):
    check_text(value, input_name)


#: Socket type -> check(value, input name, the input's options). Types not listed (ComfyUI's MODEL,
#: VAE, CLIP_VISION, combos, BOOLEAN) are checked by ComfyUI or by the node that reads them.
INPUT_CHECKS = {
    "IMAGE": _image,
    "MASK": _mask,
    "INT": _number(integer=True),
    "FLOAT": _number(integer=False),
    "STRING": _text,
    "DEPTH": _pack_type("depth", "DepthMaps", "DepthEstimate or Depth From Image"),
    "CAMERA_TRAJECTORY": _pack_type("camera.trajectory", "CameraTrajectory", "a ReCapture camera node"),
    "RECAPTURE_BACKBONE": _pack_type("svd.backbone", "SVDBackbone", "a ReCapture SVD loader"),
    "RECAPTURE_LORA": _pack_type("svd.lora", "ReCaptureLoRA", "a ReCapture LoRA trainer or Load ReCapture LoRA"),
}


_DECLARED: dict[type, dict[str, tuple[str, dict]]] = {}


def _declared_inputs(cls) -> dict[str, tuple[str, dict]]:
    """``{input name: (socket type, options)}`` of a V1 node (combo lists are skipped: ComfyUI checks them).

    Read once per class: what is kept never changes, while INPUT_TYPES lists model folders on every call."""
    if cls not in _DECLARED:
        declared = {}
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                kind = entry[0]
                if isinstance(kind, str):
                    declared[name] = (kind, entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {})
        _DECLARED[cls] = declared
    return _DECLARED[cls]


def check_inputs(cls, inputs: dict) -> None:
    """Check every given input of node class ``cls`` by its socket type; raises ReCaptureInputError."""
    for name, (kind, options) in _declared_inputs(cls).items():
        check = INPUT_CHECKS.get(kind)
        if check is not None and inputs.get(name) is not None:
            check(inputs[name], name, options)


def check_outputs(cls, result) -> None:
    """No IMAGE or MASK output may hold NaN or infinity: that is a failure, never a result."""
    values = result.get("result", ()) if isinstance(result, dict) else result
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    for kind, name, value in zip(cls.RETURN_TYPES, names, values or ()):
        if kind in ("IMAGE", "MASK") and isinstance(value, torch.Tensor) and value.numel():
            low, high = torch.aminmax(value.detach().reshape(-1))
            if not (math.isfinite(float(low)) and math.isfinite(float(high))):
                raise RuntimeError(f"ReCapture: output '{name}' came out with NaN or infinite values; nothing was passed on. "
                                   "Check the inputs (a LoRA or backbone with non-finite weights?) and report it if they are fine.")


#: What ComfyUI users are told beyond the core's own words, by the error's hint: folders and node titles.
HOST_WORDS = {
    "depth_models": "Put it under ComfyUI's models/depth/ and refresh.",
    "svd_diffusers": "Put it under ComfyUI's models/diffusers/ and refresh.",
    "svd_checkpoints": "Put it under ComfyUI's models/checkpoints/ and refresh.",
    "camera_files": "Put the file into ComfyUI's input folder and refresh.",
    "lora_files": "'Save ReCapture LoRA' writes them; its ComfyUI-format exports (_comfyui) go to LoraLoaderModelOnly instead.",
    "resize_depth": "Depth From Image resizes a depth map to the video (connect the video to its 'frames').",
    "depth_source": "Connect DepthEstimate, or Depth From Image for a depth-map IMAGE from another pack.",
    "resample_trajectory": "'Resample Camera Trajectory' does that.",
    "spatial_lora": "Connect SpatialLoRATrain's output (or Load ReCapture LoRA with a spatial LoRA).",
    "temporal_lora": "Connect MaskedTemporalLoRATrain's output (or Load ReCapture LoRA with a temporal LoRA).",
}


def guard(cls) -> type:
    """Wrap ``cls``'s FUNCTION with the input and output checks (once; subclasses get their own wrapper)."""
    function_name = cls.FUNCTION
    original = getattr(cls, function_name)
    if getattr(original, "_recapture_guarded_for", None) is cls:
        return cls
    meta_batch = getattr(cls, "META_BATCH", None)  # how the node runs under Meta Batch Manager (_meta_batch.py)
    if meta_batch is not None:
        declared = cls.INPUT_TYPES

        def input_types(_cls):
            spec = declared()
            return {**spec, "hidden": {**spec.get("hidden", {}), **_meta_batch.HIDDEN_INPUTS}}

        cls.INPUT_TYPES = classmethod(input_types)
    title = cls.__name__.removeprefix("ReCapture")

    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        if meta_batch is not None:
            _meta_batch.apply(meta_batch, title, kwargs)
        check_inputs(cls, kwargs)
        try:
            result = original(self, *args, **kwargs)
        except ReCaptureInputError as err:
            if err.hint in HOST_WORDS:
                raise err.with_host_words(HOST_WORDS[err.hint]) from None
            raise
        check_outputs(cls, result)
        return result

    guarded._recapture_guarded_for = cls
    setattr(cls, function_name, guarded)
    return cls
