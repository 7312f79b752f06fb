"""Small helpers shared by the tests."""
from __future__ import annotations


#: Inputs whose choices are files listed from the server's model/input folders (they differ between
#: the test process and the server, so tests compare them by kind, not by value).
FOLDER_LISTS = {"ReCaptureSVDLoader": ("model",), "ReCaptureSVDCheckpointLoader": ("ckpt_name", "architecture"),
                "ReCaptureLoRALoad": ("lora_name",), "ReCaptureDepthEstimate": ("depth_model",),
                "ReCaptureCameraImport": ("file",), "ReCaptureDepthLoad": ("file",)}


class Interrupted(Exception):
    """Stands in for ComfyUI's interrupt exception."""


def interrupt_on_call(n: int):
    """A ``check_interrupt`` callback that raises :class:`Interrupted` on its n-th call."""
    calls = []

    def check():
        calls.append(1)
        if len(calls) == n:
            raise Interrupted

    return check
