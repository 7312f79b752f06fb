"""What every node borrows from ComfyUI: device, progress bar, interrupt check, model folders, the server."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import comfy.model_management as model_management
import comfy.utils
import folder_paths
import torch

from ..recapture_core.errors import ReCaptureInputError

#: Our model folders under ComfyUI's models/ (paths a user already configured are kept).
MODEL_FOLDERS = {"depth": ("depth",)}


def prompt_server():
    """ComfyUI's PromptServer, or None when the pack runs without one (a script, an in-process test).

    ComfyUI imports its ``server`` module before it loads custom nodes; importing it here when it is
    not loaded would pull in much of ComfyUI for nothing."""
    return getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)


def register_model_folders() -> None:
    for name, parts in MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, *parts)
        if name not in folder_paths.folder_names_and_paths or default not in folder_paths.get_folder_paths(name):
            folder_paths.add_model_folder_path(name, default)


def model_subfolders(name: str, marker: str = "config.json") -> list[str]:
    """Folders (one level down) of a registered model folder that contain ``marker``."""
    found = []
    for root in folder_paths.get_folder_paths(name):
        if os.path.isdir(root):
            found.extend(entry for entry in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, entry, marker)))
    return found


def model_subfolder_path(name: str, entry: str, input_name: str, placeholder: str = "", fix: str = "",
                         hint: str | None = None) -> Path:
    """The folder ``entry`` a user chose from a registered model folder's listing (``placeholder``: the
    choice shown when the listing was empty); an error naming ``input_name`` when there is none."""
    if entry == placeholder:
        raise ReCaptureInputError(input_name, "no model folder was found", fix, hint)
    for root in folder_paths.get_folder_paths(name):
        candidate = Path(root) / entry
        if candidate.is_dir() and Path(root).resolve() in candidate.resolve().parents:
            return candidate
    roots = ", ".join(folder_paths.get_folder_paths(name))
    raise ReCaptureInputError(input_name, f"model folder '{entry}' not found under {roots}", fix, hint)


def device():
    return model_management.get_torch_device()


def offload_device():
    return model_management.unet_offload_device()


def check_interrupt() -> None:
    model_management.throw_exception_if_processing_interrupted()


@contextmanager
def autograd_enabled():
    """Leave ComfyUI's inference mode: the pack's one place that does.

    ComfyUI runs every node under ``torch.inference_mode()``; tensors made there (inputs, weights a
    loader made) can never be saved for backward. Loading a backbone and every job on it (training,
    and sampling, which attaches adapters) run inside this, so the core can assume normal autograd.
    """
    with torch.inference_mode(False):
        yield


def backbone_job(backbone) -> dict:
    """Keyword arguments for a core job on ``backbone`` under ComfyUI: its device and memory management, its interrupt."""
    return {"on_device": lambda: backbone_on_device(backbone), "check_interrupt": check_interrupt}


@contextmanager
def backbone_on_device(backbone):
    """Make room through ComfyUI (it unloads its own models as needed), run on its device, offload after."""
    target = device()
    model_management.free_memory(backbone.weight_bytes() * 3, target)
    backbone.to(target)
    try:
        yield target
    finally:
        backbone.to(offload_device())
        model_management.soft_empty_cache()


def progress(total: int):
    """A ``progress(done, total)`` callback driving ComfyUI's progress bar."""
    bar = comfy.utils.ProgressBar(total)
    return lambda done, of=total: bar.update_absolute(done, of)


register_model_folders()
