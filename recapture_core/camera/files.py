"""Camera files: our own JSON, NeRF-style transforms.json and COLMAP text, in and out; RealEstate10K /
CameraCtrl pose text and ReCamMaster's camera_extrinsics.json in.

Import: a file holds absolute poses; by default its **first pose is the source camera** and
every pose is made relative to it (a file that starts where the video was filmed, then moves).
With ``reference="file world is the source camera"`` the file's world frame is taken as the
source camera instead (what our own exports write, so any trajectory round-trips exactly).
Translations are multiplied by ``translation_scale`` to bring them into the depth's units.

Reading: a file is named relative to a folder (ComfyUI's input folder) and every file read, a COLMAP
model's two included, must be a regular file whose real path lies in that folder (``model_files.read_bytes``).
Messages about a file's content say the line or field and what was expected; they never quote the
file's text (only numbers the pack parsed, which carry none).

Export: world = the source camera. NeRF files use OpenGL axes (x right, y up, z backward) for
both world and cameras; COLMAP and our JSON use OpenCV axes. Our JSON keeps everything
(intrinsics per frame, subject distance, label) and round-trips bit-exactly.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

from ..errors import ReCaptureInputError
from ..model_files import read_bytes, read_json, read_text, reading
from ..paths import atomic_write_text, list_regular_files, safe_child, shown_name, unused_path
from .conventions import DEFAULT_HFOV_DEG, OPENCV_FROM_OPENGL, normalized_intrinsics_from_hfov
from .poses import invert_pose, make_pose
from .trajectory import CameraTrajectory

log = logging.getLogger(__name__)

FORMATS = ("recapture json", "nerf transforms.json", "colmap text")  # read and written
REALESTATE10K = "realestate10k / cameractrl text"
RECAMMASTER = "recammaster extrinsics json"
IMPORT_FORMATS = (*FORMATS, REALESTATE10K, RECAMMASTER)  # read only
REFERENCES = ("first pose is the source camera", "file world is the source camera")
JSON_FORMAT_ID = "recapture.camera_trajectory"
JSON_VERSION = 1
_INTRINSIC_KEYS = ("fx_over_width", "fy_over_width", "cx_over_width", "cy_over_height")


@dataclass(frozen=True)
class AbsoluteCameras:
    """Cameras as a file gives them, already in OpenCV camera axes.

    camera_to_world ``[F, 4, 4]``, intrinsics ``[F, 4]`` (normalised), source_intrinsics ``[4]``.
    """

    camera_to_world: torch.Tensor
    intrinsics: torch.Tensor
    source_intrinsics: torch.Tensor
    image_size: tuple[int, int] | None


def _fail(problem: str, fix: str = "Check the file, or export it again.") -> ReCaptureInputError:
    return ReCaptureInputError("file", problem, fix)


def _described(value) -> str:
    """A value read from a file, for a message: a number as itself (a number carries no text of the file),
    anything else by its JSON type only."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else "a number of more than 24 characters"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "a value of another type")


def _parsed(parts: list[str], fields, where: str, names=None, kind=float) -> list:
    """``kind(parts[i])`` for the 0-based ``fields``; a failure names the 1-based field, never its text."""
    values = []
    for index in fields:
        try:
            values.append(kind(parts[index]))
        except ValueError:
            label = f" ({names[index]})" if names and index < len(names) else ""
            raise _fail(f"{where}: field {index + 1}{label} is not {'an integer' if kind is int else 'a number'}") from None
    return values


def _matrix(value, where: str) -> torch.Tensor:
    try:
        tensor = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise _fail(f"{where} is not a 4x4 matrix of numbers") from None
    if tensor.shape != (4, 4):
        raise _fail(f"{where} must be 4x4, got shape {list(tensor.shape)}")
    return tensor


def _number(mapping: dict, key: str, where: str) -> float:
    if key not in mapping:
        raise _fail(f"{where} has no {key!r}")
    try:
        return float(mapping[key])
    except (TypeError, ValueError):
        raise _fail(f"{where}: {key} is {_described(mapping[key])}, not a number") from None


# --- our own JSON ---------------------------------------------------------------------------
def to_recapture_json(trajectory: CameraTrajectory) -> dict:
    """Our versioned schema: relative poses (target-to-source, OpenCV) and normalised intrinsics."""
    return {
        "format": JSON_FORMAT_ID,
        "version": JSON_VERSION,
        "convention": "opencv",
        "pose": "target_to_source",
        "intrinsics": "normalized: fx/width, fy/width, cx/width, cy/height",
        "label": trajectory.label,
        "subject_distance": trajectory.subject_distance,
        "image_size": list(trajectory.image_size) if trajectory.image_size else None,
        "source_intrinsics": dict(zip(_INTRINSIC_KEYS, trajectory.source_intrinsics.tolist())),
        "frames": [
            {"target_to_source": pose.tolist(), "intrinsics": dict(zip(_INTRINSIC_KEYS, intr.tolist()))}
            for pose, intr in zip(trajectory.target_to_source, trajectory.target_intrinsics)
        ],
    }


def from_recapture_json(data: dict, translation_scale: float = 1.0) -> CameraTrajectory:
    if data.get("format") != JSON_FORMAT_ID:
        raise _fail(f"is not a ReCapture camera file (its \"format\" is not {JSON_FORMAT_ID!r})",
                    "Choose the matching format, or 'auto'.")
    if data.get("version") != JSON_VERSION:
        raise _fail(f"has schema version {_described(data.get('version'))}; this pack reads version {JSON_VERSION}",
                    "Export it again with this version of the pack.")
    convention = data.get("convention")
    if convention not in ("opencv", "opengl"):
        raise _fail(f"has an unknown convention ({_described(convention)})",
                    "Use 'opencv' (x right, y down, z forward) or 'opengl'.")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise _fail("has no frames")
    poses = torch.stack([_matrix(f.get("target_to_source"), f"frame {i} target_to_source") for i, f in enumerate(frames)])
    if convention == "opengl":
        poses = OPENCV_FROM_OPENGL @ poses @ OPENCV_FROM_OPENGL
    intr = torch.tensor([[_number(f.get("intrinsics", {}), k, f"frame {i} intrinsics") for k in _INTRINSIC_KEYS]
                         for i, f in enumerate(frames)], dtype=torch.float64)
    src = torch.tensor([_number(data.get("source_intrinsics", {}), k, "source_intrinsics") for k in _INTRINSIC_KEYS],
                       dtype=torch.float64)
    poses[:, :3, 3] *= translation_scale
    size = data.get("image_size")
    return CameraTrajectory(poses, intr, src, subject_distance=_number(data, "subject_distance", "the file") * translation_scale,
                            image_size=tuple(int(v) for v in size) if size else None,
                            label=str(data.get("label", "")), input_name="file")


# --- NeRF transforms.json -----------------------------------------------------------------
def _nerf_intrinsics(entry: dict, fallback: dict, width: float, height: float) -> list[float]:
    def get(key):
        return entry[key] if key in entry else fallback.get(key)

    def focal_from_angle(key: str, side: float) -> float:
        angle = _number({key: get(key)}, key, "the file")
        if not 0.0 < angle < math.pi:
            raise _fail(f"{key} = {angle!r} is not a field of view in radians (0 < angle < pi)",
                        "Give the horizontal field of view in radians, e.g. 1.047 for 60 degrees.")
        return 0.5 * side / math.tan(0.5 * angle)

    fl_x, fl_y = get("fl_x"), get("fl_y")
    if fl_x is None:
        if get("camera_angle_x") is None:
            raise _fail("gives neither fl_x nor camera_angle_x", "Add the focal length (fl_x) or camera_angle_x.")
        fl_x = focal_from_angle("camera_angle_x", width)
    if fl_y is None:
        fl_y = focal_from_angle("camera_angle_y", height) if get("camera_angle_y") is not None else fl_x
    cx = get("cx") if get("cx") is not None else width / 2.0
    cy = get("cy") if get("cy") is not None else height / 2.0
    values = [_number({"v": v}, "v", name) for v, name in ((fl_x, "fl_x"), (fl_y, "fl_y"), (cx, "cx"), (cy, "cy"))]
    if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
        raise _fail(f"has focal lengths {values[0]!r}, {values[1]!r}; they must be positive and finite")
    return [values[0] / width, values[1] / width, values[2] / width, values[3] / height]


def from_nerf(data: dict) -> AbsoluteCameras:
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise _fail("has no 'frames' list", "A transforms.json lists frames with a transform_matrix each.")
    width, height = data.get("w"), data.get("h")
    if width is None or height is None:
        first = frames[0]
        width, height = first.get("w", width), first.get("h", height)
    if width is None or height is None:
        raise _fail("gives no image size (w, h)", "Add \"w\" and \"h\" (pixels) to the file.")
    width, height = _number({"w": width}, "w", "the file"), _number({"h": height}, "h", "the file")
    if not (width >= 1 and height >= 1 and math.isfinite(width * height)):
        raise _fail(f"gives the image size {width!r} x {height!r}", "\"w\" and \"h\" are the image size in pixels.")
    gl_poses = torch.stack([_matrix(f.get("transform_matrix"), f"frame {i} transform_matrix") for i, f in enumerate(frames)])
    # World and camera axes both go from OpenGL to OpenCV; the world flip cancels in relative poses.
    cv_poses = OPENCV_FROM_OPENGL @ gl_poses @ OPENCV_FROM_OPENGL
    intr = torch.tensor([_nerf_intrinsics(f, data, width, height) for f in frames], dtype=torch.float64)
    has_global = any(k in data for k in ("fl_x", "camera_angle_x"))
    src = torch.tensor(_nerf_intrinsics({}, data, width, height), dtype=torch.float64) if has_global else intr[0]
    return AbsoluteCameras(cv_poses, intr, src, (int(width), int(height)))


def to_nerf(trajectory: CameraTrajectory, width: int, height: int) -> dict:
    """transforms.json: global intrinsics = the source camera, per-frame ones = the targets."""
    gl_poses = OPENCV_FROM_OPENGL @ trajectory.target_to_source @ OPENCV_FROM_OPENGL
    fx, fy, cx, cy = trajectory.source_intrinsics.tolist()
    frames = []
    for i, (pose, intr) in enumerate(zip(gl_poses, trajectory.target_intrinsics)):
        tfx, tfy, tcx, tcy = intr.tolist()
        frames.append({"file_path": f"frame_{i:05d}", "transform_matrix": pose.tolist(),
                       "fl_x": tfx * width, "fl_y": tfy * width, "cx": tcx * width, "cy": tcy * height})
    return {"camera_angle_x": 2.0 * math.atan(0.5 / fx), "fl_x": fx * width, "fl_y": fy * width,
            "cx": cx * width, "cy": cy * height, "w": width, "h": height, "frames": frames}


# --- COLMAP text ------------------------------------------------------------------------------
_CAMERA_FIELDS = ("CAMERA_ID", "MODEL", "WIDTH", "HEIGHT")
_IMAGE_FIELDS = ("IMAGE_ID", "QW", "QX", "QY", "QZ", "TX", "TY", "TZ", "CAMERA_ID", "NAME")
_COLMAP_MODELS = {  # model -> (parameter count, (fx, fy, cx, cy) indices)
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2)), "PINHOLE": (4, (0, 1, 2, 3)), "SIMPLE_RADIAL": (4, (0, 0, 1, 2)),
    "RADIAL": (5, (0, 0, 1, 2)), "OPENCV": (8, (0, 1, 2, 3)), "FULL_OPENCV": (12, (0, 1, 2, 3)),
}


def _data_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.lstrip().startswith("#")]


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def from_colmap(cameras_txt: str, images_txt: str) -> AbsoluteCameras:
    """Cameras from COLMAP's text export; images are ordered by name (frame order)."""
    cameras = {}
    for number, line in _data_lines(cameras_txt):
        parts = line.split()
        if len(parts) < 4 or parts[1] not in _COLMAP_MODELS:
            found = f"it has {len(parts)} fields" if len(parts) < 4 else "its MODEL (field 2) is not one of them"
            raise _fail(f"cameras.txt line {number}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' with a pinhole-type "
                        f"model; {found}", f"Supported models: {', '.join(_COLMAP_MODELS)}.")
        count, index = _COLMAP_MODELS[parts[1]]
        where = f"cameras.txt line {number}"
        width, height = _parsed(parts, (2, 3), where, _CAMERA_FIELDS, kind=int)
        params = _parsed(parts, range(4, len(parts)), where)
        if len(params) != count:
            raise _fail(f"cameras.txt line {number}: model {parts[1]} needs {count} parameters, got {len(params)} (truncated file?)")
        if parts[1] not in ("SIMPLE_PINHOLE", "PINHOLE"):
            log.info("COLMAP cameras.txt line %d: lens distortion of model %s is ignored", number, parts[1])
        fx, fy, cx, cy = (params[i] for i in index)
        cameras[parts[0]] = ([fx / width, fy / width, cx / width, cy / height], (width, height))
    if not cameras:
        raise _fail("cameras.txt defines no camera")

    lines = _data_lines(images_txt)
    images = []
    # Each image takes two lines: the pose line, then its 2D points (which may be empty, and is then
    # dropped by _data_lines). A pose line has exactly 10 fields and a numeric 2nd..8th field.
    i = 0
    while i < len(lines):
        number, line = lines[i]
        parts = line.split()
        if len(parts) < 10:
            raise _fail(f"images.txt line {number}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got "
                        f"{len(parts)} fields (truncated file?)")
        quat_t = _parsed(parts, range(1, 8), f"images.txt line {number}", _IMAGE_FIELDS)
        if parts[8] not in cameras:
            raise _fail(f"images.txt line {number}: its CAMERA_ID (field 9) is not a camera of cameras.txt")
        images.append((" ".join(parts[9:]), quat_t, parts[8]))
        i += 1
        if i < len(lines) and not _looks_like_pose_line(lines[i][1], cameras):
            i += 1  # the POINTS2D line
    if not images:
        raise _fail("images.txt lists no image")
    images.sort(key=lambda item: _natural_key(item[0]))
    quats = torch.tensor([q[:4] for _, q, _ in images], dtype=torch.float64)
    if not torch.isfinite(quats).all() or (quats.norm(dim=-1) < 1e-8).any():
        raise _fail("images.txt has a zero, NaN or infinite quaternion")
    world_to_camera = make_pose(quaternion_to_rotation_matrix(quats / quats.norm(dim=-1, keepdim=True)),
                                torch.tensor([q[4:] for _, q, _ in images], dtype=torch.float64))
    intr = torch.tensor([cameras[cam][0] for _, _, cam in images], dtype=torch.float64)
    return AbsoluteCameras(invert_pose(world_to_camera), intr, intr[0], cameras[images[0][2]][1])


def _looks_like_pose_line(line: str, cameras: dict) -> bool:
    parts = line.split()
    if len(parts) < 10 or parts[8] not in cameras:
        return False
    try:
        [float(v) for v in parts[1:8]]
        int(parts[0])
    except ValueError:
        return False
    return True


def to_colmap(trajectory: CameraTrajectory, width: int, height: int) -> tuple[str, str]:
    """cameras.txt and images.txt (world = source camera; one PINHOLE camera per frame)."""
    world_to_camera = invert_pose(trajectory.target_to_source)
    quats = rotation_matrix_to_quaternion(world_to_camera[:, :3, :3].contiguous())
    quats = torch.where(quats[:, :1] < 0, -quats, quats)  # COLMAP's habit: QW >= 0
    cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for i, (intr, q, pose) in enumerate(zip(trajectory.target_intrinsics, quats, world_to_camera), start=1):
        fx, fy, cx, cy = intr.tolist()
        cam_lines.append(f"{i} PINHOLE {width} {height} {fx * width!r} {fy * width!r} {cx * width!r} {cy * height!r}")
        values = " ".join(repr(v) for v in [*q.tolist(), *pose[:3, 3].tolist()])
        img_lines.extend([f"{i} {values} {i} frame_{i - 1:05d}.png", ""])
    return "\n".join(cam_lines) + "\n", "\n".join(img_lines) + "\n"


# --- RealEstate10K / CameraCtrl pose text ------------------------------------------------------
def from_realestate10k(text: str) -> AbsoluteCameras:
    """Cameras from RealEstate10K's pose text, which CameraCtrl and its followers read.

    An optional first line holds the video's URL; then one line per frame: ``timestamp fx fy cx cy
    k1 k2`` and the 3x4 world-to-camera matrix row by row (OpenCV axes). Intrinsics are normalised
    by the image size (fx, cx by the width; fy, cy by the height); the image size itself is not in
    the file, so pixels are taken as square (fy/W = fx/W) and fy is not used. Frames are ordered by
    timestamp.
    """
    rows = []
    lines = _data_lines(text)
    for number, line in lines:
        parts = line.split()
        try:
            values = _parsed(parts, range(len(parts)), f"line {number}")
        except ReCaptureInputError:
            if number == lines[0][0]:
                continue  # the URL line
            raise
        if len(values) != 19:
            raise _fail(f"line {number}: expected 19 numbers (timestamp, fx fy cx cy, 2 distortion terms, a 3x4 "
                        f"world-to-camera matrix), got {len(values)} (truncated file?)")
        if not all(math.isfinite(v) for v in values) or values[1] <= 0:
            raise _fail(f"line {number}: non-finite values or a focal length that is not positive")
        rows.append(values)
    if not rows:
        raise _fail("lists no camera", "RealEstate10K pose files have one line per frame after the URL line.")
    rows.sort(key=lambda row: row[0])
    table = torch.tensor(rows, dtype=torch.float64)
    world_to_camera = torch.eye(4, dtype=torch.float64).repeat(len(rows), 1, 1)
    world_to_camera[:, :3, :] = table[:, 7:19].reshape(-1, 3, 4)
    intrinsics = torch.stack([table[:, 1], table[:, 1], table[:, 3], table[:, 4]], dim=1)
    return AbsoluteCameras(invert_pose(world_to_camera), intrinsics, intrinsics[0], None)


# --- ReCamMaster camera_extrinsics.json ---------------------------------------------------------
#: Unreal Engine's camera axes (x forward, y right, z up, world in centimetres) -> OpenCV's: the OpenCV
#: camera's x is Unreal's y, its y is Unreal's -z, its z is Unreal's x. ReCamMaster's loader does the same
#: on the camera axes (columns [1, 2, 0], the second negated) and divides translations by 100.
OPENCV_FROM_UNREAL = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                                   [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
_FRAME_KEY = re.compile(r"frame(\d+)")
_CAMERA_KEY = re.compile(r"cam(\d{1,3})")
_UNREAL_MATRIX = re.compile(r"\s*\[([^\[\]]*)\]\s*\[([^\[\]]*)\]\s*\[([^\[\]]*)\]\s*\[([^\[\]]*)\]\s*")


def _is_recammaster(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(_FRAME_KEY.fullmatch(str(key)) for key in data)


def from_recammaster(data: dict, camera: int = 1, hfov_deg: float = DEFAULT_HFOV_DEG) -> AbsoluteCameras:
    """Cameras from ReCamMaster's ``camera_extrinsics.json`` (its MultiCamVideo dataset and sample paths).

    ``{"frame0": {"cam01": "[fx fy fz 0] [rx ry rz 0] [ux uy uz 0] [px py pz 1]", ...}, ...}``: for every
    frame and camera, Unreal Engine's camera-to-world matrix written transposed (rows: the forward,
    right and up axes, then the position in centimetres). ``camera`` picks ``camNN``. The file has no
    intrinsics: every camera gets the field of view ``hfov_deg`` (the source's, so nothing zooms).
    """
    frames = sorted(data, key=lambda key: int(_FRAME_KEY.fullmatch(key).group(1)))
    name = f"cam{camera:02d}"
    matrices = []
    for key in frames:
        cameras = data[key]
        if not isinstance(cameras, dict) or name not in cameras:
            # Rebuilt from the numbers of the file's camNN keys: a message never quotes the file's text.
            present = sorted({int(match.group(1)) for entry in (cameras if isinstance(cameras, dict) else ())
                              if (match := _CAMERA_KEY.fullmatch(str(entry)))})
            listed = ", ".join(f"cam{number:02d}" for number in present[:12]) or "no camNN entry"
            raise ReCaptureInputError("camera", f"{key} of the file has no {name} (it has: {listed})",
                                      "Pick a camera the file holds.")
        match = _UNREAL_MATRIX.fullmatch(str(cameras[name]))
        try:
            rows = [[float(v) for v in row.split()] for row in match.groups()] if match else None
        except ValueError:
            rows = None
        if rows is None or any(len(row) != 4 for row in rows):
            raise _fail(f"{key} / {name} is not a matrix written as four bracketed rows of four numbers")
        matrices.append(rows)
    unreal_camera_to_world = torch.tensor(matrices, dtype=torch.float64).transpose(1, 2)
    if not torch.isfinite(unreal_camera_to_world).all():
        raise _fail("holds non-finite numbers")
    unreal_camera_to_world[:, :3, 3] /= 100.0  # centimetres -> metres
    # World and camera axes both to OpenCV's: X_cv = A X_ue on each side, so T_cv = A T_ue A^-1.
    camera_to_world = OPENCV_FROM_UNREAL @ unreal_camera_to_world @ OPENCV_FROM_UNREAL.T
    rotation = camera_to_world[:, :3, :3]
    if not torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand_as(rotation),
                          atol=1e-3):
        raise _fail(f"{name}'s matrices are not rotations with a translation (scaled or sheared axes)")
    intrinsics = normalized_intrinsics_from_hfov(hfov_deg).expand(len(frames), 4).clone()
    return AbsoluteCameras(camera_to_world, intrinsics, intrinsics[0].clone(), None)


# --- file-level entry points ------------------------------------------------------------------
_COLMAP_FILES = ("cameras.txt", "images.txt")


def list_camera_files(root: Path | str) -> list[str]:
    """Names (relative to ``root``, with ``/``) of the camera files a user may pick: ``*.json``, pose ``*.txt``
    and COLMAP folders by their images.txt, a few folders deep (:func:`~..paths.list_regular_files`)."""
    return list_regular_files(root, lambda name: name.endswith((".json", ".txt")) and name != "cameras.txt")


def _is_colmap(path: Path) -> bool:
    return path.is_dir() or path.name in _COLMAP_FILES


def _colmap_paths(path: Path) -> list[Path]:
    folder = path if path.is_dir() else path.parent
    return [folder / name for name in _COLMAP_FILES]


def _read_json(path: Path, root: Path):
    return read_json(path, "file", inside=root)


def _detect_format(path: Path, root: Path) -> tuple[str, object]:
    """The format of a file and, for JSON, its value (read once)."""
    if _is_colmap(path):
        return "colmap text", None
    if path.suffix.lower() == ".txt":
        return REALESTATE10K, None
    data = _read_json(path, root)
    if isinstance(data, dict) and data.get("format") == JSON_FORMAT_ID:
        return "recapture json", data
    return (RECAMMASTER if _is_recammaster(data) else "nerf transforms.json"), data


def camera_file_fingerprint(folder: Path | str, name: str) -> str:
    """A hash of every file :func:`import_trajectory` reads for ``name`` (a COLMAP model's two), read the same
    guarded way; raises :class:`ReCaptureInputError` where the import would."""
    root = Path(folder)
    path = safe_child(root, name, "file")
    digest = hashlib.sha256()
    for part in _colmap_paths(path) if _is_colmap(path) else [path]:
        if os.path.lexists(part):
            digest.update(read_bytes(part, "file", inside=root))
        digest.update(b"\0")
    return digest.hexdigest()


def relative_trajectory(cameras: AbsoluteCameras, reference: str, translation_scale: float,
                        subject_distance: float, label: str) -> CameraTrajectory:
    """Make absolute cameras relative to the source camera (see the module docstring)."""
    if reference not in REFERENCES:
        raise ReCaptureInputError("reference", f"unknown reference {reference!r}", f"Choose one of: {', '.join(REFERENCES)}.")
    poses = cameras.camera_to_world
    if reference == REFERENCES[0]:
        poses = invert_pose(poses[:1]) @ poses
        poses[0] = torch.eye(4, dtype=torch.float64)  # exactly, not up to rounding
    poses = poses.clone()
    poses[:, :3, 3] *= translation_scale
    return CameraTrajectory(poses, cameras.intrinsics, cameras.source_intrinsics, subject_distance=subject_distance,
                            image_size=cameras.image_size, label=label, input_name="file")


def import_trajectory(folder: Path | str, name: str, fmt: str = "auto", reference: str = REFERENCES[0],
                      translation_scale: float = 1.0, subject_distance: float = 1.0, camera: int = 1) -> CameraTrajectory:
    """Read the camera file ``name`` under ``folder`` (or a COLMAP folder / its images.txt) into a trajectory.

    Every file read must be a regular file whose real path lies under ``folder`` (see the module docstring).
    ``camera``: which camera of a file that holds several (ReCamMaster's cam01, cam02, ...)."""
    root = Path(folder)
    path = safe_child(root, name, "file")
    if not path.exists():
        raise ReCaptureInputError("file", f"{name} does not exist", "Check the file's name.", hint="camera_files")
    if not math.isfinite(translation_scale) or translation_scale <= 0:
        raise ReCaptureInputError("translation_scale", f"must be positive, got {translation_scale}",
                                  "Use 1.0 to keep the file's units.")
    # A file of the right syntax but an odd structure (a list where an object goes, a string for a
    # matrix) fails wherever it is first touched: any such failure names the file, not its text.
    with reading(path, "file", "Check the file against its format, or export it again.", quote_errors=False):
        return _import(path, root, fmt, reference, translation_scale, subject_distance, camera)


def _import(path: Path, root: Path, fmt: str, reference: str, translation_scale: float, subject_distance: float,
            camera: int) -> CameraTrajectory:
    data = None
    if fmt == "auto":
        fmt, data = _detect_format(path, root)
    elif fmt not in IMPORT_FORMATS:
        raise ReCaptureInputError("format", f"unknown format {fmt!r}", f"Choose 'auto' or one of: {', '.join(IMPORT_FORMATS)}.")
    if fmt in ("recapture json", "nerf transforms.json", RECAMMASTER) and data is None:
        data = _read_json(path, root)
    if fmt in ("recapture json", "nerf transforms.json") and not isinstance(data, dict):
        raise _fail(f"{path.name} does not hold a JSON object")
    if fmt == "recapture json":
        return from_recapture_json(data, translation_scale)
    if fmt == "nerf transforms.json":
        cameras = from_nerf(data)
    elif fmt == REALESTATE10K:
        cameras = from_realestate10k(read_text(path, "file", inside=root))
    elif fmt == RECAMMASTER:
        if not _is_recammaster(data):
            raise _fail(f"{path.name} is not ReCamMaster's camera_extrinsics.json (an object of frame0, frame1, ... entries)")
        cameras = from_recammaster(data, camera)
    else:  # colmap text
        cameras_path, images_path = _colmap_paths(path)
        # lexists: a FIFO or a link leading out is not "missing", the reader says what it is.
        missing = [part.name for part in (cameras_path, images_path) if not os.path.lexists(part)]
        if missing:
            raise _fail(f"{shown_name(cameras_path.parent, root)} lacks {', '.join(missing)}",
                        "A COLMAP text model is a folder with cameras.txt and images.txt.")
        cameras = from_colmap(read_text(cameras_path, "file", inside=root), read_text(images_path, "file", inside=root))
    label = f"{fmt} {path.name}" + (f" cam{camera:02d}" if fmt == RECAMMASTER else "")
    return relative_trajectory(cameras, reference, translation_scale, subject_distance, label)


def export_trajectory(trajectory: CameraTrajectory, folder: Path, stem: str, fmt: str,
                      image_size: tuple[int, int]) -> Path:
    """Write a trajectory under ``folder`` as ``stem_NNNNN...``; never overwrites. Returns the path."""
    width, height = trajectory.image_size or image_size
    if fmt == "recapture json":
        path = unused_path(folder, stem, ".json")
        atomic_write_text(path, json.dumps(to_recapture_json(trajectory), indent=1) + "\n")
    elif fmt == "nerf transforms.json":
        path = unused_path(folder, stem, "_transforms.json")
        atomic_write_text(path, json.dumps(to_nerf(trajectory, width, height), indent=1) + "\n")
    elif fmt == "colmap text":
        path = unused_path(folder, stem, "")
        cameras_txt, images_txt = to_colmap(trajectory, width, height)
        path.mkdir(parents=True)
        atomic_write_text(path / "cameras.txt", cameras_txt)
        atomic_write_text(path / "images.txt", images_txt)
    else:
        raise ReCaptureInputError("format", f"unknown format {fmt!r}", f"Choose one of: {', '.join(FORMATS)}.")
    return path
