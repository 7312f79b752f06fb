"""Monocular depth models in transformers format (Depth Anything V1/V2, DPT/MiDaS, ZoeDepth).

Loaded with ``AutoModelForDepthEstimation`` + ``AutoImageProcessor`` from a local folder only
(``local_files_only=True``): nothing is ever downloaded. transformers is imported inside the
functions, so importing this module is cheap.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .depth import DepthMaps
from .errors import ReCaptureInputError
from .model_files import read_json, reading
from .validation import check_frames

log = logging.getLogger(__name__)

REQUIRED_FILES = ("config.json", "preprocessor_config.json")
#: model_type -> what its predicted_depth is.
FAMILIES = {
    "depth_anything": "disparity",  # relative inverse depth, unless the config says "metric"
    "dpt": "disparity",  # MiDaS / DPT: relative inverse depth
    "zoedepth": "metric",
}
HELP = ("Use a transformers depth model folder (config.json, model.safetensors, preprocessor_config.json), e.g. "
        "Depth-Anything-V2-Small-hf, dpt-hybrid-midas or zoedepth-nyu-kitti.")
HINT = "depth_models"  # where the host keeps them


@dataclass
class DepthModel:
    """A loaded depth model: transformers model and processor, what it predicts, where it came from."""

    model: torch.nn.Module
    processor: object
    kind: str
    family: str
    path: Path


#: Smallest frame side a depth model is given (its processor cannot tell channels from pixels below this).
MIN_SIDE = 8


def inspect_folder(folder: Path) -> tuple[str, str]:
    """``(family, kind)`` of a depth model folder, read from its config.json; clear errors otherwise."""
    if not folder.is_dir():
        raise ReCaptureInputError("depth_model", f"{folder} is not a folder", HELP, HINT)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    if missing or not weights:
        lacking = missing + ([] if weights else ["model.safetensors"])
        raise ReCaptureInputError("depth_model", f"{folder.name} lacks {', '.join(lacking)}", HELP, HINT)
    config = read_json(folder / "config.json", "depth_model")
    if not isinstance(config, dict):
        raise ReCaptureInputError("depth_model", f"{folder.name}/config.json does not hold a JSON object", HELP, HINT)
    family = config.get("model_type")
    if family not in FAMILIES:
        raise ReCaptureInputError("depth_model", f"{folder.name} is a {family!r} model, not a supported depth model",
                                  f"Supported: {', '.join(FAMILIES)}. " + HELP, HINT)
    kind = FAMILIES[family]
    if family == "depth_anything" and config.get("depth_estimation_type") == "metric":
        kind = "metric"
    return family, kind


def load_depth_model(folder: Path, dtype: torch.dtype = torch.float32) -> DepthModel:
    """Load a depth model folder on the CPU (the caller moves it to its device)."""
    family, kind = inspect_folder(folder)
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    with reading(folder, "depth_model", "A file in the folder is damaged or truncated: copy the model folder again. " + HELP, HINT):
        model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return DepthModel(model, processor, kind, family, folder)


def estimate_depth(depth_model: DepthModel, frames: torch.Tensor, *, batch_size: int = 4,
                   device: torch.device | str = "cpu",
                   progress: Callable[[int, int], None] | None = None,
                   check_interrupt: Callable[[], None] | None = None) -> DepthMaps:
    """Per-frame depth ``[F, H, W]`` of an IMAGE video ``[F, H, W, 3]``, at the video's size.

    Runs in batches of ``batch_size`` frames on ``device``. Disparity of exactly zero (sky, or
    "infinitely far") is raised to 1/1000 of the frame's largest value, so depth stays finite.
    """
    num_frames, height, width, _ = check_frames(frames, "frames").shape
    if min(height, width) < MIN_SIDE:
        raise ReCaptureInputError("frames", f"are {width}x{height} pixels; depth models need at least {MIN_SIDE} on each side",
                                  "Connect the video itself, not a thumbnail or a mask.")
    model, processor = depth_model.model, depth_model.processor
    model_dtype = next(model.parameters()).dtype
    values = torch.empty(num_frames, height, width, dtype=torch.float32, device="cpu")  # filled batch by batch
    for start in range(0, num_frames, batch_size):
        if check_interrupt is not None:
            check_interrupt()
        batch = frames[start:start + batch_size].permute(0, 3, 1, 2).float().cpu()
        inputs = processor(images=list(batch), return_tensors="pt", do_rescale=False, input_data_format="channels_first")
        pixel_values = inputs["pixel_values"].to(device=device, dtype=model_dtype)
        with torch.no_grad():
            prediction = model(pixel_values=pixel_values)
        prediction.predicted_depth = prediction.predicted_depth.float().cpu()
        sizes = [(height, width)] * batch.shape[0]
        kwargs = {"source_sizes": sizes} if depth_model.family == "zoedepth" else {}
        post = processor.post_process_depth_estimation(prediction, target_sizes=sizes, **kwargs)
        for offset, item in enumerate(post):
            values[start + offset] = item["predicted_depth"].float()
        if progress is not None:
            progress(min(start + batch_size, num_frames), num_frames)
    if not torch.isfinite(values).all():
        raise ReCaptureInputError("depth_model", f"{depth_model.path.name} gave NaN or infinite depth",
                                  "The model's weights may be damaged: copy the model folder again, or use another model.")
    if depth_model.kind == "disparity":
        floor = values.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6) * 1e-3
        torch.maximum(values, floor, out=values)  # in place: no second copy of the clip's depth
    else:
        values.clamp_min_(1e-3)
    return DepthMaps(values, depth_model.kind)
