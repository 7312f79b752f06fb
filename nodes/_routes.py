"""The pack's server routes, the server side of the camera path editor (web/recapture_camera_editor.js).

POST /recapture/camera_path: the poses of a keyframe path, computed by the same code as the Camera
Keyframes node, so the editor draws exactly the path the graph will use.

POST /recapture/point_cloud: the first frame of a PointCloudWarp node's clip as coloured points, to draw
the scene under the path.

POST /recapture/anchor_preview: one frame of a PointCloudWarp node's anchor, at reduced size, for a camera path.

A quick look at a path before the whole clip runs: the request names a PointCloudWarp node that has
run once (its frames and depth are remembered, see ``nodes/anchor.py``) and optionally a keyframe
path to try instead of the one it ran with. Everything in the request is checked as node inputs are;
anything wrong gets a 4xx with the message, never a traceback.

Request (JSON, at most 64 KiB): ``{"node": "<node id>", "frame": 0, "size": 256,
"keyframes": "0:\\n24: orbit_left=20" (optional), "interpolation": "pose: slerp + spline" (optional)}``.
Reply: ``{"frame", "width", "height", "hole_ratio", "image": <PNG, base64: the anchor with holes
tinted magenta>, "hole_mask": <PNG, base64: white = hole>}``.
"""
from __future__ import annotations

import base64
import io
import json
import sys

import torch

from ..recapture_core.camera.keyframes import INTERPOLATIONS, keyframe_trajectory, parse_keyframes
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.masks import overlay_mask
from ..recapture_core.validation import check_number, check_text
from ..recapture_core.warp import PREVIEW_SIDE, preview_frame
from .anchor import RECENT

ROUTE = "/recapture/anchor_preview"
PATH_ROUTE = "/recapture/camera_path"
CLOUD_ROUTE = "/recapture/point_cloud"
MAX_CLOUD_POINTS = 40000
MAX_BODY_BYTES = 64 * 1024
FIELDS = {"node", "frame", "size", "keyframes", "interpolation"}
PATH_FIELDS = {"keyframes", "interpolation", "preset", "amount", "easing", "num_frames", "hfov_deg", "subject_distance"}


def _png(image: torch.Tensor) -> str:
    """``[H, W, 3]`` or ``[H, W]`` in 0..1 -> base64 PNG."""
    import numpy as np
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class _Refused(Exception):
    """A request the route answers with ``status`` and ``message`` (never a traceback)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _answers(fields: set[str]):
    """A route's logic ``answer(request) -> JSON body`` made a ``request -> (status, body)`` function: the request
    must be a JSON object with only ``fields``; a refusal or a ReCaptureInputError becomes a 4xx with its reason."""
    def wrap(answer):
        def respond(request) -> tuple[int, dict]:
            if not isinstance(request, dict):
                return 400, {"error": "the request must be a JSON object"}
            unknown = sorted(set(request) - fields)
            if unknown:
                return 400, {"error": f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"}
            try:
                return 200, answer(request)
            except _Refused as err:
                return err.status, {"error": str(err)}
            except ReCaptureInputError as err:
                return 400, {"error": str(err)}

        return respond

    return wrap


def _last_run(request: dict) -> dict:
    """What the PointCloudWarp node named by the request saw when it last ran."""
    node = request.get("node")
    if not isinstance(node, (str, int)) or isinstance(node, bool):
        raise _Refused(400, "'node' must be the id of a PointCloudWarp node")
    seen = RECENT.get(str(node))
    if seen is None:
        raise _Refused(404, f"PointCloudWarp node {node} has not run since the server started: queue the graph once")
    return seen


def _choice(request: dict, name: str, default, choices) -> str:
    """The request's ``name`` (``default`` when absent), one of the node widget's ``choices``."""
    value = request.get(name, default)
    if not isinstance(value, str) or value not in choices:
        raise ReCaptureInputError(name, f"unknown {name} {value!r}", f"Choose one of: {', '.join(choices)}.")
    return value


def _preset_path(request: dict, num_frames: int, hfov_deg: float, subject_distance: float):
    from ..recapture_core.camera.poses import EASINGS
    from ..recapture_core.camera.presets import PRESETS, preset_trajectory

    preset, easing = _choice(request, "preset", None, PRESETS), _choice(request, "easing", "ease-in-out", EASINGS)
    amount = request.get("amount", 0.0)
    check_number(amount, "amount", 0.0, 360.0)
    return preset_trajectory(preset, float(amount), num_frames, easing, hfov_deg, subject_distance)


def _interpolation(request: dict) -> str:
    """The request's keyframe interpolation (the node's default when absent)."""
    return _choice(request, "interpolation", "pose: slerp + spline", INTERPOLATIONS)


@_answers(FIELDS)
def render(request: dict) -> dict:
    """The anchor preview of a parsed request (no I/O: the route's logic)."""
    seen = _last_run(request)
    trajectory = seen["trajectory"]
    if "keyframes" in request:
        text = check_text(request["keyframes"], "keyframes")
        interpolation = _interpolation(request)
        ran = trajectory  # the source camera and subject distance of the path the node ran with
        trajectory = keyframe_trajectory(parse_keyframes(text), seen["frames"].shape[0], interpolation,
                                         subject_distance=ran.subject_distance)
        trajectory = trajectory.with_source_intrinsics(ran.source_intrinsics)
    frame, size = request.get("frame", 0), request.get("size", PREVIEW_SIDE)
    result = preview_frame(seen["frames"], seen["depth"].as_depth(), trajectory, frame, size,
                           match_subject_distance=seen["match_subject_distance"], edge_threshold=seen["edge_threshold"])
    tinted = overlay_mask(result.anchor, result.hole_mask)[0]
    return {"frame": int(frame), "width": int(tinted.shape[1]), "height": int(tinted.shape[0]),
            "hole_ratio": float(result.hole_ratio[0]), "image": _png(tinted), "hole_mask": _png(result.hole_mask[0])}


@_answers(PATH_FIELDS)
def camera_path(request: dict) -> dict:
    """The per-frame poses ``target_to_source`` (row-major 4x4, OpenCV axes, scene units), zoom and keyframe
    frames of a Camera Keyframes path (``keyframes``) or of a Camera Trajectory preset (``preset``, ``amount``,
    ``easing``: no keyframes), checked as the nodes check their widgets."""
    num_frames = request.get("num_frames", 25)
    check_number(num_frames, "num_frames", 1, 4096, integer=True)
    hfov_deg, subject_distance = request.get("hfov_deg", 60.0), request.get("subject_distance", 1.0)
    check_number(hfov_deg, "hfov_deg", 1.0, 179.0)
    check_number(subject_distance, "subject_distance", 1e-3, 1e6)
    if "preset" in request:
        path, keyframes = _preset_path(request, int(num_frames), float(hfov_deg), float(subject_distance)), []
    else:
        keyframes = parse_keyframes(check_text(request.get("keyframes"), "keyframes"))
        path = keyframe_trajectory(keyframes, int(num_frames), _interpolation(request), float(hfov_deg),
                                   float(subject_distance))
    return {"num_frames": path.num_frames, "keyframe_frames": [frame for frame, _ in keyframes],
            "poses": path.target_to_source.reshape(path.num_frames, 16).tolist(), "zoom": path.zoom.tolist(),
            "hfov_deg": float(hfov_deg), "subject_distance": float(subject_distance)}


@_answers({"node"})
def point_cloud(request: dict) -> dict:
    """The first frame of a PointCloudWarp node's clip as coloured points in its source camera (OpenCV axes),
    at most MAX_CLOUD_POINTS on a regular pixel grid, in the units of the path the node ran with (when it matched
    the subject distance, the depth is scaled to that path's)."""
    seen = _last_run(request)
    from ..recapture_core.depth import central_median
    from ..recapture_core.warp import point_grid

    depth = seen["depth"].as_depth()
    scale = seen["trajectory"].subject_distance / central_median(depth) if seen["match_subject_distance"] else 1.0
    K = seen["trajectory"].source_K(depth.shape[2], depth.shape[1])
    points, colours = point_grid(seen["frames"][0], depth[0] * scale, K, MAX_CLOUD_POINTS)
    return {"count": int(points.shape[0]), "positions": points.reshape(-1).tolist(),
            "colours": (colours * 255).round().to(torch.uint8).reshape(-1).tolist()}


def register() -> None:
    """Add the route to ComfyUI's server, when there is one (not when the pack is imported by a script).

    ComfyUI imports its ``server`` module before it loads custom nodes; importing it here when it is
    not loaded would pull in much of ComfyUI for nothing."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None:
        return
    from aiohttp import web

    def json_route(path: str, answer):
        @instance.routes.post(path)
        async def handle(request):
            if request.content_length is None or request.content_length > MAX_BODY_BYTES:
                return web.json_response({"error": f"send a JSON body of at most {MAX_BODY_BYTES} bytes"}, status=413)
            try:
                body = json.loads(await request.text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                return web.json_response({"error": f"the body is not JSON: {err}"}, status=400)
            status, reply = answer(body)
            return web.json_response(reply, status=status)

    json_route(ROUTE, render)
    json_route(PATH_ROUTE, camera_path)
    json_route(CLOUD_ROUTE, point_cloud)
