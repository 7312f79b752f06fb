"""Depth files: Save Depth writes DEPTH to output/, Load Depth reads it back from input/.

Depth is computed once (e.g. by DepthEstimate on a render farm's depth server) and the file is reused by
other graphs or shipped to other servers' input/ folders. The file keeps the float values and the depth
kind, which an 8-bit PNG of the depth does not. Format: recapture_core/depth_files.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import folder_paths

from ..recapture_core.depth import colorize_depth
from ..recapture_core.depth_files import SUFFIX, depth_file_fingerprint, list_depth_files, load_depth_file, save_depth
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.paths import safe_child, unused_path
from . import _meta_batch
from .depth import CATEGORY, DEPTH_TOOLTIP, PREVIEW_TOOLTIP

NO_DEPTH_FILES = f"(no {SUFFIX} files in ComfyUI's input folder)"
_WHY = ("Compute depth once and reuse it in other graphs or on other servers (copy the file into their input folder). "
        "The file keeps the float values and the depth kind (metric, relative, disparity), unlike an 8-bit PNG.")

#: Every chunk of a Meta Batch run would get the same frames: the whole file, in a prompt that holds a few frames.
#: (A window per chunk cannot work: ComfyUI caches the node by its file, and IS_CHANGED is given no prompt to
#: tell the chunk by, so the second chunk would get the first one's frames from the cache.)
WHOLE_FILE = _meta_batch.MetaBatchRule(
    "the file holds the depth of the whole clip, and every chunk would get all of it",
    fix="Run the whole clip in one prompt, or make the depth chunk by chunk (DepthEstimate or Depth From Image "
        "with temporal_consistency off).")


class ReCaptureDepthSave:
    DESCRIPTION = (f"Save DEPTH to ComfyUI's output folder as a {SUFFIX} file. {_WHY} Never overwrites: a counter is "
                   "added. Load Depth (ReCapture) reads it back.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)
    OUTPUT_TOOLTIPS = ("The file written, relative to ComfyUI's output folder (e.g. recapture/depth_00001.depth.safetensors).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": ("DEPTH", {"tooltip": "The depth to save (from DepthEstimate, Depth From Image or Load Depth)."}),
            "filename_prefix": ("STRING", {"default": "recapture/depth",
                                           "tooltip": "Name inside ComfyUI's output folder; may contain subfolders, never '..'. "
                                                      f"A counter and {SUFFIX} are added."}),
        }}

    def save(self, depth, filename_prefix):
        output_dir = Path(folder_paths.get_output_directory())
        target = safe_child(output_dir, filename_prefix, "filename_prefix")  # resolved, checked to stay inside
        try:
            path = save_depth(depth, unused_path(target.parent, target.name, SUFFIX))
        except OSError as err:  # a full disk, a read-only folder, a file where the prefix names a folder
            raise ReCaptureInputError("filename_prefix", f"cannot write under {filename_prefix!r} ({os.strerror(err.errno or 0)})",
                                      "Check that ComfyUI's output folder is writable and has room, and that no file "
                                      "there has the name of a folder in the prefix.") from None
        relative = path.relative_to(output_dir.resolve()).as_posix()  # the server's own folders are not shown
        return {"ui": {"text": [relative]}, "result": (relative,)}


def _depth_files() -> list[str]:
    """Depth files under ComfyUI's input folder (list_depth_files: regular files that stay inside it)."""
    return list_depth_files(folder_paths.get_input_directory()) or [NO_DEPTH_FILES]


class ReCaptureDepthLoad:
    DESCRIPTION = (f"Load DEPTH from a {SUFFIX} file in ComfyUI's input folder (written by Save Depth). {_WHY}")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    META_BATCH = WHOLE_FILE
    RETURN_TYPES = ("DEPTH", "IMAGE")
    RETURN_NAMES = ("depth", "preview")
    OUTPUT_TOOLTIPS = (DEPTH_TOOLTIP, PREVIEW_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "file": (_depth_files(), {"tooltip": f"A {SUFFIX} file under ComfyUI's input folder (subfolders included), "
                                                 "as Save Depth wrote it. Refresh after copying one in."}),
        }}

    @classmethod
    def IS_CHANGED(cls, file, **_):
        try:
            return depth_file_fingerprint(folder_paths.get_input_directory(), file)
        except (ReCaptureInputError, OSError):
            return file  # load() says what is wrong

    def load(self, file):
        if file == NO_DEPTH_FILES:
            raise ReCaptureInputError("file", "no depth file was chosen",
                                      f"Put a {SUFFIX} file (written by Save Depth) into ComfyUI's input folder, then refresh.")
        depth = load_depth_file(folder_paths.get_input_directory(), file)
        return (depth, colorize_depth(depth))


NODE_CLASS_MAPPINGS = {"ReCaptureDepthSave": ReCaptureDepthSave, "ReCaptureDepthLoad": ReCaptureDepthLoad}
NODE_DISPLAY_NAME_MAPPINGS = {"ReCaptureDepthSave": "Save Depth (ReCapture)", "ReCaptureDepthLoad": "Load Depth (ReCapture)"}
