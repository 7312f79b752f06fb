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

How a request is served. ComfyUI answers every HTTP request on one event loop, so anything slow there
freezes the whole server for everyone. On the loop runs only what costs at most a few milliseconds
whatever the request: the body's size and charset, JSON with a nesting-depth and a number-length limit,
every field checked as the node widget it stands for (kind and limits read from that node's
INPUT_TYPES), the node's last run looked up. Everything that grows with frames or pixels (paths,
warps, PNGs, the JSON reply) runs in a small pool of worker threads; when ROUTE_JOBS requests are
already admitted the next one is answered 503 with Retry-After at once, never queued without bound.
Every refusal is a 4xx with a JSON ``error`` naming the field; an unexpected failure is logged and
answered 500 with a JSON ``error``.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import logging
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from ..recapture_core.camera.keyframes import keyframe_trajectory, parse_keyframes
from ..recapture_core.camera.presets import preset_trajectory
from ..recapture_core.depth import central_median
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.masks import overlay_mask
from ..recapture_core.validation import check_number, shown
from ..recapture_core.warp import PREVIEW_SIDE, point_grid, preview_frame
from ._comfy import prompt_server
from ._inputs import INPUT_CHECKS
from .anchor import RECENT
from .camera import ReCaptureCameraKeyframes, ReCaptureCameraTrajectory

log = logging.getLogger(__name__)

ROUTE = "/recapture/anchor_preview"
PATH_ROUTE = "/recapture/camera_path"
CLOUD_ROUTE = "/recapture/point_cloud"
MAX_CLOUD_POINTS = 40000
MAX_BODY_BYTES = 64 * 1024
#: Every body is one object of plain values; deeper JSON is refused before it is parsed (the parser would
#: recurse once per level: 30,000 levels end in a RecursionError).
MAX_JSON_DEPTH = 8
#: A longer number literal is refused as its field's error: Python will not read an integer of more than
#: 4300 digits at all, and no widget takes more than 17 significant digits.
MAX_NUMBER_CHARS = 40
#: Threads that run the routes' work, and requests admitted at once (running or waiting for a thread).
#: A browser opens at most 6 connections to one server, so one user's editor never meets the limit.
ROUTE_WORKERS = 2
ROUTE_JOBS = 8
#: Added to the workers' nice value (Linux), so that the event loop and the prompt worker win busy CPUs.
WORKER_NICENESS = 10
RETRY_AFTER_S = 1
#: JSON is UTF-8 (RFC 8259); a client that declares another charset would be misread.
CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}

#: Route field -> the node whose widget of the same name it stands for (kind, limits, default: that node's INPUT_TYPES).
PREVIEW_WIDGETS = {"keyframes": ReCaptureCameraKeyframes, "interpolation": ReCaptureCameraKeyframes}
PATH_WIDGETS = {"keyframes": ReCaptureCameraKeyframes, "interpolation": ReCaptureCameraKeyframes,
                "num_frames": ReCaptureCameraKeyframes, "hfov_deg": ReCaptureCameraKeyframes,
                "subject_distance": ReCaptureCameraKeyframes, "preset": ReCaptureCameraTrajectory,
                "amount": ReCaptureCameraTrajectory, "easing": ReCaptureCameraTrajectory}
FIELDS = {"node", "frame", "size", *PREVIEW_WIDGETS}
PATH_FIELDS = set(PATH_WIDGETS)


class _Refused(Exception):
    """A request the route answers with ``status`` and ``message`` (never a traceback)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


# --- the body: cheap checks on the event loop --------------------------------------------------------------------

_JSON_STRING = re.compile(rb'"[^"]*"')  # once escaped quotes are gone
_ALL_BUT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_BRACKETS_ALIKE = bytes.maketrans(b"{}", b"[]")
_LONG_NUMBER = re.compile(rb"[-+.0-9eE]{%d}" % (MAX_NUMBER_CHARS + 1))
_FIELD_OPENING_CONTAINER = re.compile(r'"([^"\\]{1,64})"\s*:\s*[\[{]')


def _nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether JSON ``raw`` nests arrays and objects more than ``limit`` deep, found without parsing it: strings
    dropped, brackets kept, innermost pairs removed ``limit`` times (C-speed passes over at most MAX_BODY_BYTES)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Escaped backslashes go first, so that what is left of \" is an escaped quote, not the end of a string.
    skeleton = _JSON_STRING.sub(b"", raw.replace(b"\\\\", b"").replace(b'\\"', b""))
    brackets = skeleton.translate(_BRACKETS_ALIKE, _ALL_BUT_BRACKETS)  # a mismatch of kinds is the parser's to report
    for _ in range(limit):
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            break
        brackets = inner_removed
    # Left: pairs deeper than the limit, or brackets that never close (the parser would recurse through those too).
    return b"[]" in brackets or brackets.count(b"[") > limit


class NumberTooLong:
    """Stands for a JSON number literal longer than MAX_NUMBER_CHARS: the field check that meets it refuses it by name."""

    def __init__(self, literal: str):
        self.chars = len(literal)

    def __repr__(self) -> str:
        return f"a number of {self.chars} characters"


def _read_number(kind: type) -> Callable[[str], object]:
    return lambda literal: kind(literal) if len(literal) <= MAX_NUMBER_CHARS else NumberTooLong(literal)


def parse_body(raw: bytes, charset: str | None):
    """The JSON value of a request body of at most MAX_BODY_BYTES, or a refusal saying what is wrong with it.

    Costs a few milliseconds at most: depth is checked before parsing (MAX_JSON_DEPTH), and number literals
    are read with a length limit (only when the body holds a run of characters that long at all)."""
    if charset is not None and charset.strip().lower() not in CHARSETS:
        raise _Refused(415, f"the Content-Type's charset {shown(charset)} is not supported: send the JSON body in UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Refused(400, f"the body is not UTF-8 text: {err}") from None
    if _nests_deeper_than(raw, MAX_JSON_DEPTH):
        field = _FIELD_OPENING_CONTAINER.search(text)
        if field is not None:
            raise ReCaptureInputError(field.group(1), f"nests JSON arrays or objects deeper than {MAX_JSON_DEPTH} levels",
                                      "Send a plain value (a number or text).")
        raise _Refused(400, f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels: send one object of plain values")
    numbers = {"parse_int": _read_number(int), "parse_float": _read_number(float)} if _LONG_NUMBER.search(raw) else {}
    try:
        return json.loads(text, **numbers)
    except json.JSONDecodeError as err:
        raise _Refused(400, f"the body is not JSON: {err}") from None
    except RecursionError:  # a safety net: the depth check above refuses such bodies first
        raise _Refused(400, f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels: send one object of plain values") from None


# --- fields: checked as the node widgets they stand for ------------------------------------------------------------

@functools.cache
def _widgets(node_class) -> dict[str, tuple]:
    """``{widget name: (kind, options)}`` as ``node_class`` declares them (a combo's kind is its list of choices)."""
    spec = node_class.INPUT_TYPES()
    return {name: (entry[0], entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {})
            for section in ("required", "optional") for name, entry in spec.get(section, {}).items()}


def _widget_value(request: dict, name: str, node_class, required: bool = False):
    """Field ``name`` checked as ``node_class``'s widget of that name: kind, limits or choices from its INPUT_TYPES.
    The value, or the widget's default when the field is absent (a ``required`` field must be there)."""
    kind, options = _widgets(node_class)[name]
    if name not in request:
        if required:
            raise ReCaptureInputError(name, "is missing", f"Send it as the {node_class.__name__} node's '{name}' widget.")
        return options.get("default")
    value = request[name]
    if isinstance(kind, list):
        if not isinstance(value, str) or value not in kind:
            raise ReCaptureInputError(name, f"unknown {name} {shown(value)}", f"Choose one of: {', '.join(map(str, kind))}.")
    else:
        INPUT_CHECKS[kind](value, name, options)
    return value


def _answers(fields: set[str], widgets: dict):
    """A route's ``prepare(request) -> work`` checked first: the request must be a JSON object with only ``fields``,
    and every field that stands for a node widget (``widgets``) is checked as that widget."""
    def wrap(prepare):
        @functools.wraps(prepare)
        def checked(request) -> Callable[[], dict]:
            if not isinstance(request, dict):
                raise _Refused(400, "the request must be a JSON object")
            unknown = sorted(set(request) - fields)
            if unknown:
                raise _Refused(400, f"unknown field(s) {', '.join(name[:64] for name in unknown)}; known: {', '.join(sorted(fields))}")
            for name in sorted(request.keys() & widgets.keys()):
                _widget_value(request, name, widgets[name])
            return prepare(request)

        return checked

    return wrap


# --- the node a request names: its last run, if it is still that node ---------------------------------------------

def _node_type_in_latest_prompt(node_id: str) -> tuple[str, str | None] | None:
    """(id of the prompt ComfyUI ran last or runs now, the class_type node ``node_id`` has in it or None when it is
    not in it), or None when that is unknown (no server; the history was cleared).

    ComfyUI 0.3.75: the prompt worker (main.py) sets ``last_prompt_id`` as it starts a prompt; the queue item
    ``(number, prompt_id, prompt, extra_data, outputs_to_execute, ...)`` is in ``PromptQueue.currently_running``
    while it runs, then under ``history[prompt_id]["prompt"]`` (execution.py), both guarded by ``mutex``."""
    server = prompt_server()
    prompt_id, queue = getattr(server, "last_prompt_id", None), getattr(server, "prompt_queue", None)
    if prompt_id is None or queue is None:
        return None
    with queue.mutex:
        finished = queue.history.get(prompt_id)
        items = ([finished["prompt"]] if finished else []) + list(queue.currently_running.values())
        for item in items:
            if len(item) > 2 and item[1] == prompt_id and isinstance(item[2], dict):
                node = item[2].get(node_id)
                return prompt_id, node.get("class_type") if isinstance(node, dict) else None
    return None


def _last_run(request: dict) -> dict:
    """What the PointCloudWarp node named by the request saw when it last ran, while that id still names it."""
    node = request.get("node")
    if not isinstance(node, (str, int)) or isinstance(node, bool):
        raise _Refused(400, "'node' must be the id of a PointCloudWarp node")
    node_id = str(node)
    seen = RECENT.recall(node_id)
    if seen is None:
        raise _Refused(404, f"PointCloudWarp node {shown(node)} has not run since the server started: queue the graph once")
    latest = _node_type_in_latest_prompt(node_id)
    if latest is not None and latest[0] != seen["prompt_id"]:  # the node did not run in the latest prompt
        prompt_id, node_type = latest
        if node_type is None:
            raise _Refused(404, f"node {shown(node)} is not in the graph queued last (prompt {prompt_id}): what it "
                                f"remembers is from an earlier graph. Queue this graph once")
        if node_type != seen["node_type"]:
            raise _Refused(404, f"node {shown(node)} is a {node_type} in the graph queued last (prompt {prompt_id}), no "
                                f"longer the {seen['node_type']} that ran with that id: queue the graph once")
    return seen


# --- the routes: cheap checks now, the work for a worker thread ---------------------------------------------------

def _png(image: torch.Tensor) -> str:
    """``[H, W, 3]`` or ``[H, W]`` in 0..1 -> base64 PNG."""
    import numpy as np
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@_answers(FIELDS, PREVIEW_WIDGETS)
def render(request: dict) -> Callable[[], dict]:
    """The anchor preview of a request: checked here, rendered by the returned work."""
    seen = _last_run(request)
    frame = check_number(request.get("frame", 0), "frame", 0, seen["frames"].shape[0] - 1, integer=True)
    size = check_number(request.get("size", PREVIEW_SIDE), "size", integer=True)  # its range: preview_frame's
    keyframes = request.get("keyframes")
    interpolation = _widget_value(request, "interpolation", ReCaptureCameraKeyframes)
    return functools.partial(_preview, seen, int(frame), int(size), keyframes, interpolation)


def _preview(seen: dict, frame: int, size: int, keyframes: str | None, interpolation: str) -> dict:
    trajectory = seen["trajectory"]
    if keyframes is not None:
        ran = trajectory  # the source camera and subject distance of the path the node ran with
        trajectory = keyframe_trajectory(parse_keyframes(keyframes), seen["frames"].shape[0], interpolation,
                                         subject_distance=ran.subject_distance)
        trajectory = trajectory.with_source_intrinsics(ran.source_intrinsics)
    result = preview_frame(seen["frames"], seen["depth"].as_depth(), trajectory, frame, size,
                           match_subject_distance=seen["match_subject_distance"], edge_threshold=seen["edge_threshold"])
    tinted = overlay_mask(result.anchor, result.hole_mask)[0]
    return {"frame": frame, "width": int(tinted.shape[1]), "height": int(tinted.shape[0]),
            "hole_ratio": float(result.hole_ratio[0]), "image": _png(tinted), "hole_mask": _png(result.hole_mask[0])}


@_answers(PATH_FIELDS, PATH_WIDGETS)
def camera_path(request: dict) -> Callable[[], dict]:
    """The per-frame poses ``target_to_source`` (row-major 4x4, OpenCV axes, scene units), zoom and keyframe
    frames of a Camera Keyframes path (``keyframes``) or of a Camera Trajectory preset (``preset``, ``amount``,
    ``easing``: no keyframes); every field defaults to its widget's default."""
    scene = [_widget_value(request, name, PATH_WIDGETS[name]) for name in ("num_frames", "hfov_deg", "subject_distance")]
    num_frames, hfov_deg, subject_distance = int(scene[0]), float(scene[1]), float(scene[2])
    if "preset" in request:
        preset, amount, easing = (_widget_value(request, name, ReCaptureCameraTrajectory) for name in ("preset", "amount", "easing"))
        return lambda: _path_reply(preset_trajectory(preset, float(amount), num_frames, easing, hfov_deg, subject_distance),
                                   [], hfov_deg, subject_distance)
    keyframes = _widget_value(request, "keyframes", ReCaptureCameraKeyframes, required=True)
    interpolation = _widget_value(request, "interpolation", ReCaptureCameraKeyframes)

    def work() -> dict:
        parsed = parse_keyframes(keyframes)
        path = keyframe_trajectory(parsed, num_frames, interpolation, hfov_deg, subject_distance)
        return _path_reply(path, [frame for frame, _ in parsed], hfov_deg, subject_distance)

    return work


def _path_reply(path, keyframe_frames: list[int], hfov_deg: float, subject_distance: float) -> dict:
    return {"num_frames": path.num_frames, "keyframe_frames": keyframe_frames,
            "poses": path.target_to_source.reshape(path.num_frames, 16).tolist(), "zoom": path.zoom.tolist(),
            "hfov_deg": hfov_deg, "subject_distance": subject_distance}


@_answers({"node"}, {})
def point_cloud(request: dict) -> Callable[[], dict]:
    """The first frame of a PointCloudWarp node's clip as coloured points in its source camera (OpenCV axes),
    at most MAX_CLOUD_POINTS on a regular pixel grid, in the units of the path the node ran with (when it matched
    the subject distance, the depth is scaled to that path's)."""
    return functools.partial(_cloud, _last_run(request))


def _cloud(seen: dict) -> dict:
    depth = seen["depth"].as_depth()
    scale = seen["trajectory"].subject_distance / central_median(depth) if seen["match_subject_distance"] else 1.0
    K = seen["trajectory"].source_K(depth.shape[2], depth.shape[1])
    points, colours = point_grid(seen["frames"][0], depth[0] * scale, K, MAX_CLOUD_POINTS)
    return {"count": int(points.shape[0]), "positions": points.reshape(-1).tolist(),
            "colours": (colours * 255).round().to(torch.uint8).reshape(-1).tolist()}


# --- serving: the event loop's part and the workers' part ---------------------------------------------------------

def _reply(status: int, body: dict) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(body).encode(), {}


def _refusal(err: Exception) -> tuple[int, bytes, dict[str, str]]:
    """Any failure as (status, JSON body, headers): a refusal as it says, bad input 400, anything else a logged 500."""
    if isinstance(err, _Refused):
        return err.status, json.dumps({"error": str(err)}).encode(), err.headers
    if isinstance(err, ReCaptureInputError):
        return _reply(400, {"error": str(err)})
    log.error("ReCapture: a camera editor route failed", exc_info=err)
    return _reply(500, {"error": f"ReCapture: the server failed on this request ({type(err).__name__}); "
                                 "the server log has the details"})


def _work_reply(work: Callable[[], dict]) -> tuple[int, bytes, dict[str, str]]:
    """A route's work, run in a worker thread, with its reply made there too (a long path is megabytes of JSON)."""
    try:
        return _reply(200, work())
    except Exception as err:  # noqa: BLE001  (every failure becomes a JSON answer)
        return _refusal(err)


def _lower_priority() -> None:
    """Run this worker thread at a lower CPU priority: the editor's requests give way to the server answering and
    to the prompt ComfyUI runs. Linux only (there a thread has its own nice value; elsewhere it would be the process's)."""
    if sys.platform.startswith("linux"):
        try:
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + WORKER_NICENESS))
        except OSError:  # not allowed here: the work still runs, at the usual priority
            log.debug("ReCapture: route worker priority unchanged", exc_info=True)


class _WorkerPool:
    """``workers`` threads for the routes' work; at most ``capacity`` requests admitted at once (running or waiting
    for a thread). The next one is refused at once: a loop of requests keeps the pool busy, never grows a queue."""

    def __init__(self, workers: int, capacity: int):
        self.workers, self.capacity = workers, capacity
        self._slots = threading.BoundedSemaphore(capacity)
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[[], dict]) -> tuple[int, bytes, dict[str, str]]:
        if not self._slots.acquire(blocking=False):
            raise _Refused(503, f"busy: {self.capacity} camera editor requests are being computed; try again in a moment",
                           {"Retry-After": str(RETRY_AFTER_S)})
        try:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="recapture-route",
                                                    initializer=_lower_priority)
            future = self._executor.submit(_work_reply, work)
        except BaseException:
            self._slots.release()
            raise
        # Freed when the work ends, or when it is cancelled before it started (the client went away): never twice.
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)


POOL = _WorkerPool(ROUTE_WORKERS, ROUTE_JOBS)


async def _serve(request, prepare: Callable[[object], Callable[[], dict]]):
    """One request on the event loop: cheap checks, then the work in the pool; always a JSON answer."""
    from aiohttp import web

    try:
        if request.content_length is None or request.content_length > MAX_BODY_BYTES:
            raise _Refused(413, f"send a JSON body of at most {MAX_BODY_BYTES} bytes, with its Content-Length")
        work = prepare(parse_body(await request.read(), request.charset))
        status, body, headers = await POOL.run(work)
    except Exception as err:  # noqa: BLE001  (every failure becomes a JSON answer)
        status, body, headers = _refusal(err)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def register() -> None:
    """Add the routes to ComfyUI's server, when there is one (not when the pack is imported by a script)."""
    instance = prompt_server()
    if instance is None:
        return

    def json_route(path: str, prepare):
        @instance.routes.post(path)
        async def handle(request):
            return await _serve(request, prepare)

    json_route(ROUTE, render)
    json_route(PATH_ROUTE, camera_path)
    json_route(CLOUD_ROUTE, point_cloud)
