"""RECAPTURE_LORA on disk: our safetensors files (with metadata) and ComfyUI-native exports."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ReCaptureInputError
from ..model_files import reading, save_safetensors
from .keys import attention_module_to_original
from .lora import ReCaptureLoRA

_PREFIX = "unet."
_REQUIRED_METADATA = ("kind", "rank", "alpha", "targets", "backbone_architecture", "backbone_weights")


def save_lora(lora: ReCaptureLoRA, path: Path) -> None:
    """Write atomically with the metadata in the safetensors header."""
    tensors = {_PREFIX + k: v.contiguous() for k, v in lora.state_dict.items()}
    save_safetensors(tensors, path, lora.metadata())


def load_lora(path: Path, input_name: str = "lora_name") -> ReCaptureLoRA:
    """A LoRA saved by :func:`save_lora`; a damaged file or missing metadata is an error naming the file."""
    from safetensors import safe_open

    if not path.is_file():
        raise ReCaptureInputError(input_name, f"{path} does not exist", "Train and save a LoRA first, or pick another file.")
    with reading(path, input_name, "Save the LoRA again, or pick another file."):
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != "recapture.lora":
                raise ReCaptureInputError(input_name, f"{path.name} is not a ReCapture LoRA (no recapture.lora metadata)",
                                          "Load LoRAs saved by this pack, with their metadata.", hint="lora_files")
            missing = [key for key in _REQUIRED_METADATA if key not in meta]
            if missing:
                raise ReCaptureInputError(input_name, f"{path.name} lacks the metadata {', '.join(missing)}",
                                          "Save the LoRA again.", hint="lora_files")
            state = {k[len(_PREFIX):]: handle.get_tensor(k) for k in handle.keys()}
        lora = ReCaptureLoRA(kind=meta["kind"], rank=int(meta["rank"]), alpha=float(meta["alpha"]), targets=meta["targets"],
                             state_dict=state, backbone_architecture=meta["backbone_architecture"],
                             backbone_weights=meta["backbone_weights"], backbone_name=meta.get("backbone_name", ""),
                             layers_per_block=int(meta.get("layers_per_block", 2)),
                             steps=int(meta.get("steps", 0)), final_loss=float(meta.get("final_loss", "nan")),
                             settings=json.loads(meta.get("settings", "{}")))
    lora.check_contents(input_name)
    return lora


def to_comfy_state_dict(lora: ReCaptureLoRA) -> dict[str, torch.Tensor]:
    """ComfyUI-native LoRA keys for its SVD model: ``diffusion_model.<original>.lora_up/lora_down/alpha``.

    peft's ``lora_B`` is ComfyUI's ``lora_up`` and ``lora_A`` its ``lora_down``; both scale by alpha / rank.
    """
    out = {}
    for key, tensor in lora.state_dict.items():
        module, _, part = key.rpartition(".lora_")
        original = "diffusion_model." + attention_module_to_original(module, lora.layers_per_block)
        if part == "A.weight":
            out[f"{original}.lora_down.weight"] = tensor.contiguous()
        elif part == "B.weight":
            out[f"{original}.lora_up.weight"] = tensor.contiguous()
        else:
            raise ValueError(f"unexpected LoRA key {key}")
        out[f"{original}.alpha"] = torch.tensor(float(lora.alpha))
    return out


def export_comfy_lora(lora: ReCaptureLoRA, path: Path) -> None:
    metadata = {"recapture_kind": lora.kind, "recapture_backbone": lora.backbone_name}
    save_safetensors(to_comfy_state_dict(lora), path, metadata)
