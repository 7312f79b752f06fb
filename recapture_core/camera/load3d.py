"""Camera paths from ComfyUI's Load3D viewer: two of its cameras (LOAD3D_CAMERA) become a move.

Load3D hands on the viewer's camera as ``{"position": {x, y, z}, "target": {x, y, z}, "zoom": z,
"cameraType": "perspective" | "orthographic"}``: a three.js camera at ``position`` looking at
``target`` with the world's +y up (its own axes OpenGL-style: x right, y up, looking down -z). The
first camera stands for the source camera (where the video was filmed), the second for where the
new path ends; the move between them is expressed relative to the first, its translation in
*subject distances* (the first camera's distance to its target is 1), so one pair of views works
for any depth scale, as the presets do. In between, the camera moves as the viewer's orbit controls
move it: the target slides from one to the other, and the camera swings around it (its direction from
the target by slerp, its distance geometrically), always looking at it with +y up; two views of one
target give the exact orbit of the presets.
"""
from __future__ import annotations

import math

import torch

from ..errors import ReCaptureInputError
from .conventions import normalized_intrinsics_from_hfov
from .poses import eased_progress, invert_pose, make_pose
from .trajectory import CameraTrajectory

WORLD_UP = (0.0, 1.0, 0.0)  # three.js


def _vector(camera: dict, key: str, input_name: str) -> torch.Tensor:
    value = camera.get(key) if isinstance(camera, dict) else None
    try:
        out = torch.tensor([float(value[axis]) for axis in "xyz"], dtype=torch.float64)
    except (TypeError, KeyError, ValueError):
        raise ReCaptureInputError(input_name, f"has no {key} with x, y and z numbers (got {value!r})",
                                  "Connect Load3D's camera_info output.") from None
    if not torch.isfinite(out).all():
        raise ReCaptureInputError(input_name, f"has a non-finite {key} {out.tolist()}", "Reset the Load3D view.")
    return out


def _zoom(camera: dict, input_name: str) -> float:
    try:
        zoom = float(camera.get("zoom", 1.0))
    except (TypeError, ValueError):
        zoom = float("nan")
    if not (math.isfinite(zoom) and zoom > 0):
        raise ReCaptureInputError(input_name, f"has zoom {camera.get('zoom')!r}; it must be a positive number",
                                  "Reset the Load3D view.")
    return zoom


def look_at_pose(position: torch.Tensor, target: torch.Tensor, input_name: str = "camera") -> torch.Tensor:
    """Camera-to-world ``[4, 4]`` in OpenCV camera axes (x right, y down, z forward) of a camera at
    ``position [3]`` looking at ``target [3]`` with the world's +y up (three.js's convention)."""
    forward = target - position
    distance = float(forward.norm())
    if distance <= 1e-9 * max(1.0, float(position.norm())):
        raise ReCaptureInputError(input_name, "has its position on its target: no viewing direction",
                                  "Orbit or zoom the Load3D view out a little.")
    forward = forward / distance
    up = torch.tensor(WORLD_UP, dtype=torch.float64)
    right = torch.linalg.cross(forward, up)
    if float(right.norm()) < 1e-6:  # looking straight up or down: three.js keeps x as right there
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    return make_pose(torch.stack([right, down, forward], dim=1), position)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Unit vectors ``a``, ``b`` ``[3]``: the great-circle point a share ``t`` of the way (about world up
    when they are opposite, where the circle is not unique)."""
    cos = float(torch.clamp(a @ b, -1.0, 1.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return a.clone()
    if math.pi - angle < 1e-6:
        axis = torch.tensor(WORLD_UP, dtype=torch.float64)
        ortho = torch.linalg.cross(axis, a)
        ortho = ortho / ortho.norm() if float(ortho.norm()) > 1e-9 else torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        return a * math.cos(angle * t) + ortho * math.sin(angle * t)
    return (a * math.sin((1 - t) * angle) + b * math.sin(t * angle)) / math.sin(angle)


def trajectory_from_load3d(start: dict, end: dict, num_frames: int, easing: str = "ease-in-out",
                           hfov_deg: float = 60.0, subject_distance: float = 1.0) -> CameraTrajectory:
    """The move from Load3D camera ``start`` (the source camera) to ``end``, over ``num_frames`` frames.

    The camera orbits the sliding target along the eased progress (see the module docstring); the
    focal length follows the ratio of the two cameras' zoom, geometrically. ``start``'s distance to its
    target becomes ``subject_distance`` (the depth's units), as in the presets.
    """
    if num_frames < 1:
        raise ReCaptureInputError("num_frames", f"must be at least 1, got {num_frames}", "Choose a positive frame count.")
    positions, targets, zooms = [], [], []
    for camera, name in ((start, "start"), (end, "end")):
        if not isinstance(camera, dict):
            raise ReCaptureInputError(name, f"expected Load3D's camera_info (a dict), got {type(camera).__name__}",
                                      "Connect Load3D's camera_info output.")
        if camera.get("cameraType", "perspective") != "perspective":
            raise ReCaptureInputError(name, f"is an {camera.get('cameraType')} camera; only perspective cameras "
                                      "match a video camera", "Switch the Load3D view to perspective.")
        positions.append(_vector(camera, "position", name))
        targets.append(_vector(camera, "target", name))
        look_at_pose(positions[-1], targets[-1], name)  # checks it has a viewing direction
        zooms.append(_zoom(camera, name))
    offsets = [p - t for p, t in zip(positions, targets)]
    lengths = [float(o.norm()) for o in offsets]
    directions = [o / n for o, n in zip(offsets, lengths)]
    source = look_at_pose(positions[0], targets[0], "start")
    to_source = invert_pose(source)
    poses = []
    for p in eased_progress(num_frames, easing).tolist():
        target = targets[0] + p * (targets[1] - targets[0])
        position = target + _slerp(directions[0], directions[1], p) * lengths[0] * (lengths[1] / lengths[0]) ** p
        pose = to_source @ look_at_pose(position, target, "end")
        pose[:3, 3] *= subject_distance / lengths[0]
        poses.append(pose)
    if num_frames > 1:
        poses[0] = torch.eye(4, dtype=torch.float64)  # the source camera itself, bit for bit
    zoom = (zooms[1] / zooms[0]) ** eased_progress(num_frames, easing)
    return CameraTrajectory.from_poses(torch.stack(poses), normalized_intrinsics_from_hfov(hfov_deg), zoom=zoom,
                                       subject_distance=subject_distance, label=f"Load3D view to view, {easing}")
