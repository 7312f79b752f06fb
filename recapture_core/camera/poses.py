"""Rigid-pose building blocks (float64, OpenCV axes; see conventions.py).

Rotations come from kornia; what is hand-written here is only the composition of the camera
moves the presets and keyframes speak in.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
from kornia.geometry.conversions import Rt_to_matrix4x4, axis_angle_to_rotation_matrix
from kornia.geometry.linalg import inverse_transformation

_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def rotation(axis: str, angle_deg: float | torch.Tensor) -> torch.Tensor:
    """Right-handed rotation ``[..., 3, 3]`` (float64) by ``angle_deg`` about a camera axis."""
    angle = torch.deg2rad(torch.as_tensor(angle_deg, dtype=torch.float64))
    axis_angle = angle[..., None] * torch.tensor(_AXES[axis], dtype=torch.float64)
    flat = axis_angle.reshape(-1, 3)
    return axis_angle_to_rotation_matrix(flat).reshape(*angle.shape, 3, 3)


def make_pose(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """4x4 pose ``[..., 4, 4]`` from a rotation ``[..., 3, 3]`` and a translation ``[..., 3]`` (kornia's, any batch shape)."""
    batch = R.shape[:-2]
    pose = Rt_to_matrix4x4(R.reshape(-1, 3, 3), t.to(R.dtype).reshape(-1, 3, 1))
    return pose.reshape(*batch, 4, 4)


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid poses ``[..., 4, 4]`` (kornia's: transposed rotation, exact; any batch shape)."""
    return inverse_transformation(T.reshape(-1, 4, 4)).reshape(T.shape)


def rotation_angle_deg(R: torch.Tensor) -> torch.Tensor:
    """Angle in degrees of rotations ``[..., 3, 3]`` (0..180)."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


@dataclass(frozen=True)
class MoveParams:
    """A camera pose relative to the source camera, in the words a camera operator uses.

    Angles in degrees, translations in subject distances (1.0 = distance to the pivot).
    Signs follow the names: ``orbit_left=-10`` is an orbit 10 degrees to the right.
    """

    orbit_left: float = 0.0  #: around the pivot, camera moves left and keeps looking at the pivot
    orbit_up: float = 0.0  #: around the pivot, camera rises and keeps looking at the pivot
    truck_right: float = 0.0  #: sideways, in the camera's own x
    pedestal_up: float = 0.0  #: vertically, against the camera's y (y points down)
    dolly_in: float = 0.0  #: forward, along the optical axis
    pan_right: float = 0.0  #: turn about the camera's vertical axis
    tilt_up: float = 0.0  #: turn about the camera's horizontal axis
    roll_cw: float = 0.0  #: turn about the optical axis, clockwise as seen from behind the camera
    zoom: float = 1.0  #: focal length factor (2.0 = twice the focal length)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def poses_from_params(params: Sequence[MoveParams], subject_distance: float = 1.0) -> torch.Tensor:
    """The target-to-source poses ``[F, 4, 4]`` (float64) of ``F`` :class:`MoveParams`, computed as one batch.

    Composition, each step in the camera frame left by the previous one:
    ``T = orbit(pivot) @ translate(truck, pedestal, dolly) @ rotate(pan, tilt, roll)``.
    The pivot sits on the optical axis at ``subject_distance``; an orbit alone keeps it on the
    optical axis, so it projects to the image centre. Batched because a path has one pose per frame:
    a loop of small kornia calls per frame took 6 ms a frame (25 s for a 4096-frame path).
    """
    d = float(subject_distance)
    value = {name: torch.tensor([getattr(p, name) for p in params], dtype=torch.float64) for name in MoveParams.names()}
    count = len(params)
    pivot = torch.tensor([0.0, 0.0, d], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(count, 3, 3)
    no_shift = torch.zeros(count, 3, dtype=torch.float64)
    # Orbit left = positive yaw about +y (y points down); orbit up = negative pitch about +x.
    R_orbit = rotation("y", value["orbit_left"]) @ rotation("x", -value["orbit_up"])
    T_orbit = make_pose(eye, pivot.expand(count, 3)) @ make_pose(R_orbit, no_shift) @ make_pose(eye, -pivot.expand(count, 3))
    shift = torch.stack([value["truck_right"], -value["pedestal_up"], value["dolly_in"]], dim=-1) * d
    T_translate = make_pose(eye, shift)
    R_turn = rotation("y", value["pan_right"]) @ rotation("x", value["tilt_up"]) @ rotation("z", value["roll_cw"])
    T_turn = make_pose(R_turn, no_shift)
    return T_orbit @ T_translate @ T_turn


def pose_from_params(params: MoveParams, subject_distance: float = 1.0) -> torch.Tensor:
    """The target-to-source pose ``[4, 4]`` (float64) of one :class:`MoveParams` (see :func:`poses_from_params`)."""
    return poses_from_params([params], subject_distance)[0]


EASINGS = {
    "linear": lambda t: t,
    "ease-in": lambda t: t * t,
    "ease-out": lambda t: 1.0 - (1.0 - t) * (1.0 - t),
    "ease-in-out": lambda t: t * t * (3.0 - 2.0 * t),
}


def eased_progress(num_frames: int, easing: str) -> torch.Tensor:
    """Progress ``[F]`` (float64) from 0 at the first frame to 1 at the last, shaped by an easing curve.

    A single frame gets progress 1 (the end of the move).
    """
    if easing not in EASINGS:
        raise ValueError(f"unknown easing {easing!r}; choose one of {sorted(EASINGS)}")
    if num_frames == 1:
        return torch.ones(1, dtype=torch.float64)
    t = torch.arange(num_frames, dtype=torch.float64) / (num_frames - 1)
    return EASINGS[easing](t)


def arc_angle_deg(offset: float) -> float:
    """Turn (degrees) that keeps the pivot centred after a sideways offset in subject distances."""
    return math.degrees(math.atan(offset))
