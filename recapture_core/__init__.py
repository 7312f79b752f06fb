"""ReCapture as a plain PyTorch library (no ComfyUI imports, ever).

Re-shoot a user's video along a new camera path: per-frame depth -> point cloud -> anchor
video with a valid-pixel mask, then masked LoRA fine-tuning of Stable Video Diffusion.
Heavy libraries (diffusers, peft, transformers) are imported inside the functions that need
them, so importing this package stays cheap.
"""
from .errors import ReCaptureInputError

__version__ = "0.1.0"

__all__ = ["ReCaptureInputError", "__version__"]
