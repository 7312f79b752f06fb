"""Multiview anchors: camera poses for object-centric novel-view models, and fusion with the warp.

Object-centric models (Stable Zero123, SV3D) take a view as (elevation, azimuth, distance) of a
camera that orbits the object and looks at it. ReCapture's trajectories are general poses, so
each is converted around the pivot (the subject, on the source camera's optical axis at the
subject distance):

* azimuth: the turn of the pivot->camera direction about the vertical axis, positive when the
  camera moves left ("orbit left 30°" is azimuth +30°),
* elevation: the angle of that direction above the horizontal plane ("orbit up 10°" is +10°),
* distance: the camera's distance to the pivot over the source's (1 = unchanged).

Limits: a pose that does not look at the pivot (pan, tilt, truck...) has no exact counterpart;
``look_error_deg`` says how far off the optical axis the pivot is, so callers can warn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .camera.poses import MoveParams, pose_from_params
from .camera.trajectory import CameraTrajectory
from .errors import ReCaptureInputError


@dataclass(frozen=True)
class OrbitView:
    elevation_deg: float
    azimuth_deg: float
    distance: float  # relative to the source camera's distance to the pivot
    look_error_deg: float  # angle between the optical axis and the direction to the pivot


def orbit_view(target_to_source: torch.Tensor, subject_distance: float) -> OrbitView:
    """The (elevation, azimuth, distance) of one pose ``[4, 4]`` around the pivot (0, 0, d)."""
    pose = target_to_source.to(torch.float64)
    pivot = torch.tensor([0.0, 0.0, float(subject_distance)], dtype=torch.float64)
    offset = pose[:3, 3] - pivot  # pivot -> camera; the source camera has (0, 0, -d)
    length = float(offset.norm())
    if length < 1e-9 * subject_distance:
        raise ReCaptureInputError("trajectory", "a target camera sits on the pivot itself",
                                  "Use a smaller dolly-in, or a larger subject distance.")
    azimuth = math.degrees(math.atan2(-float(offset[0]), -float(offset[2])))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, -float(offset[1]) / length))))
    to_pivot = -offset / length
    cos_error = float((pose[:3, 2] * to_pivot).sum())
    return OrbitView(elevation, azimuth, length / subject_distance, math.degrees(math.acos(max(-1.0, min(1.0, cos_error)))))


def orbit_views(trajectory: CameraTrajectory) -> list[OrbitView]:
    return [orbit_view(pose, trajectory.subject_distance) for pose in trajectory.target_to_source]


def pose_from_orbit_view(view: OrbitView, subject_distance: float) -> torch.Tensor:
    """The camera pose ``[4, 4]`` looking at the pivot from ``view`` (the inverse of :func:`orbit_view`)."""
    return pose_from_params(MoveParams(orbit_left=view.azimuth_deg, orbit_up=view.elevation_deg,
                                       dolly_in=1.0 - view.distance), subject_distance)


def fuse_anchor(warped: torch.Tensor, valid_mask: torch.Tensor, generated: torch.Tensor,
                use_generator: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep every pixel the warp rendered (exact), take the rest from the generated views.

    Args:
        warped: IMAGE ``[F, H, W, 3]`` from PointCloudWarp; valid_mask ``[F, H, W]`` its valid pixels.
        generated: IMAGE ``[F, H, W, 3]`` novel views from the multiview model (ignored where unused).
        use_generator: ``[F]`` bool, frames whose holes the generator fills.

    Returns:
        anchor ``[F, H, W, 3]``, valid_mask (from the source), generated_mask (from the generator),
        hole_mask (neither); the three masks partition every frame.
    """
    valid = (valid_mask >= 1.0).to(torch.float32)
    generated_mask = (1.0 - valid) * use_generator.to(torch.float32)[:, None, None]
    anchor = torch.where(valid[..., None] > 0, warped, torch.where(generated_mask[..., None] > 0, generated, warped))
    return anchor, valid, generated_mask, 1.0 - valid - generated_mask
