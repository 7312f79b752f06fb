"""ReCapture for ComfyUI: re-shoot your own video along a new camera path (CVPR 2025 method).

ComfyUI imports this file at start-up. It must stay cheap: no diffusers, peft or transformers
here or in any node module's top level (they load when a node first runs).
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

#: The camera path editor (web/recapture_camera_editor.js, with three.js vendored under web/vendor/).
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
