"""RECAPTURE_BACKBONE: Stable Video Diffusion (SVD / SVD-XT) in diffusers form."""
from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import torch

from ..errors import ReCaptureInputError
from ..model_files import read_json, reading

#: A host's placement of the backbone for one job: a context manager factory that moves the
#: backbone where it runs, yields that device, and moves it back (ComfyUI's model management).
OnDevice = Callable[[], ContextManager[torch.device]]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
COMPONENTS = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")
HELP = ("Use Stable Video Diffusion as a diffusers folder (model_index.json with unet/, vae/, image_encoder/, "
        "feature_extractor/, scheduler/), e.g. stable-video-diffusion-img2vid-xt.")
HINT = "svd_diffusers"  # where the host keeps them


@dataclass
class SVDBackbone:
    """The loaded video diffusion model. Shared between nodes: jobs attach adapters and detach them."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    feature_extractor: object
    scheduler_config: dict
    dtype: torch.dtype
    name: str

    @property
    def num_frames(self) -> int:
        """Frames the UNet was trained on: 14 for SVD, 25 for SVD-XT."""
        return int(self.unet.config.num_frames)

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this: the VAE's factor times the UNet's downsampling."""
        return self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def architecture_id(self) -> str:
        """Identifies the UNet architecture: LoRAs load only onto the same one."""
        config = {k: v for k, v in dict(self.unet.config).items() if not k.startswith("_")}
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def weights_id(self) -> str:
        """A cheap fingerprint of the weights (two small tensors), to tell fine-tunes of one architecture apart."""
        digest = hashlib.sha256()
        for tensor in (self.unet.conv_in.weight, self.unet.conv_out.bias):
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "vae": self.vae, "image_encoder": self.image_encoder}

    def to(self, device) -> "SVDBackbone":
        for module in self.modules().values():
            module.to(device)
        return self

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for m in self.modules().values() for p in m.parameters())

    def check_frames(self, frames: torch.Tensor, name: str = "frames") -> None:
        """Frame size the backbone can take ([F, H, W, 3], sides multiples of size_multiple)."""
        height, width = int(frames.shape[1]), int(frames.shape[2])
        m = self.size_multiple
        if height % m or width % m:
            fit_w, fit_h = max(m, round(width / m) * m), max(m, round(height / m) * m)
            raise ReCaptureInputError(
                name, f"is {width}x{height}, but this backbone needs width and height in multiples of {m}",
                f"Resize or crop the video first, e.g. to {fit_w}x{fit_h} (SVD-XT was trained at 1024x576).")


def placement(device, on_device: OnDevice | None = None):
    """Where a job runs: ``on_device()`` when the host manages the backbone, else plain ``device``."""
    return on_device() if on_device is not None else nullcontext(torch.device(device))


def load_diffusers_svd(folder: Path, dtype: str = "fp16") -> SVDBackbone:
    """Load an SVD diffusers folder from disk only (never the hub)."""
    if dtype not in DTYPES:
        raise ReCaptureInputError("dtype", f"unknown dtype {dtype!r}", f"Choose one of: {', '.join(DTYPES)}.")
    if not (folder / "model_index.json").is_file():
        raise ReCaptureInputError("model", f"{folder} has no model_index.json", HELP, HINT)
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise ReCaptureInputError("model", f"{folder.name} lacks the component folders {', '.join(missing)}", HELP, HINT)
    index = read_json(folder / "model_index.json", "model")
    if not isinstance(index, dict) or index.get("_class_name") != "StableVideoDiffusionPipeline":
        found = index.get("_class_name") if isinstance(index, dict) else type(index).__name__
        raise ReCaptureInputError("model", f"{folder.name} is a {found!r}, not Stable Video Diffusion", HELP, HINT)
    from diffusers import StableVideoDiffusionPipeline

    with reading(folder, "model", "A file in the folder is damaged or truncated: copy it again. " + HELP, HINT):
        pipeline = StableVideoDiffusionPipeline.from_pretrained(folder, dtype=DTYPES[dtype], local_files_only=True)
    for module in (pipeline.unet, pipeline.vae, pipeline.image_encoder):
        module.eval().requires_grad_(False)
    return SVDBackbone(pipeline.unet, pipeline.vae, pipeline.image_encoder, pipeline.feature_extractor,
                       dict(pipeline.scheduler.config), DTYPES[dtype], folder.name)


