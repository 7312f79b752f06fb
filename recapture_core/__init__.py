"""ReCapture as a plain PyTorch library (no ComfyUI imports, ever).

Re-shoot a user's video along a new camera path: per-frame depth -> point cloud -> anchor
video with a valid-pixel mask, then masked LoRA fine-tuning of Stable Video Diffusion.
Heavy libraries (diffusers, peft, transformers) are imported inside the functions that need
them, so importing this package stays cheap.
"""
import torch

from .errors import ReCaptureInputError

__version__ = "0.1.0"
#: The oldest torch with the APIs the pack calls. requirements.txt leaves torch out on purpose (it
#: must never replace the CUDA build a ComfyUI install already has), so the floor is checked here.
MIN_TORCH = (2, 13)


def check_torch_version(version: str) -> None:
    """Raise ImportError with what to do when ``version`` (``torch.__version__``) is older than MIN_TORCH."""
    parts = version.split("+")[0].split(".")
    try:
        found = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return  # a development build with an unusual version string: let it try
    if found < MIN_TORCH:
        raise ImportError(f"ReCapture needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, but this ComfyUI runs torch {version}. "
                          "Update torch the way your ComfyUI install does (its own instructions pick the right CUDA "
                          "build); the pack's requirements.txt leaves torch alone on purpose.")


check_torch_version(torch.__version__)

__all__ = ["ReCaptureInputError", "MIN_TORCH", "check_torch_version", "__version__"]
