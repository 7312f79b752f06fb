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
``look_error_deg`` says how far off the optical axis the pivot is, so callers can warn. Stable
Zero123 ignores distance (its fourth camera feature is a constant), and both models were trained
on centred objects at fixed distance: a scene is treated as one big object around the pivot.

Model conventions (what ComfyUI's ``StableZero123_Conditioning`` / ``SV3D_Conditioning`` feed):

* Zero123's azimuth is the other way round: positive turns the camera to its *right* (the
  Zero123 authors' demo labels azimuth +90 "View from the Right"; in its Objaverse renders the
  azimuth is atan2(y, x) of a z-up camera position, counter-clockwise seen from above, which is
  the camera's right). :func:`model_angles` converts; "orbit left 30°" is model azimuth -30°.
  Elevation agrees: ComfyUI feeds polar change = -elevation, and Zero123's "View from Above" is
  polar change -90°.
* Stable Zero123 takes the *relative* view directly.
* SV3D_p takes an *absolute* orbit, one (elevation, azimuth) per video frame, the input image at
  azimuth 0 and the elevation the user states for it; :func:`orbit_sequence` makes the frames
  sweep from the input view to the target view so the model's temporal layers see a smooth orbit.
  SV3D is trained on the same kind of Objaverse orbits; we take its azimuth to turn as Zero123's
  (not checkable here without its weights).
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


#: How MultiviewAnchor uses the generator, per frame.
MULTIVIEW_MODES = ("fuse with warp", "switch by hole ratio", "generator only")


def generator_frames(hole_ratio: torch.Tensor, mode: str, threshold: float) -> torch.Tensor:
    """Which frames the generator fills: ``hole_ratio [F]`` -> bool ``[F]``.

    "fuse with warp" and "generator only": every frame; "switch by hole ratio": only frames whose
    warp left more than ``threshold`` of the frame empty (the rest keep their holes, which the
    masked fine-tuning skips anyway).
    """
    if mode not in MULTIVIEW_MODES:
        raise ReCaptureInputError("mode", f"unknown mode {mode!r}", f"Use one of {', '.join(MULTIVIEW_MODES)}.")
    if mode == "switch by hole ratio":
        return hole_ratio > threshold
    return torch.ones_like(hole_ratio, dtype=torch.bool)


def generation_size(height: int, width: int, longest_side: int, multiple: int = 8) -> tuple[int, int]:
    """``(height, width)`` for the generator: the frame's aspect with its longer side ``longest_side``,
    both rounded to ``multiple`` (the VAE's downscale factor), never below one ``multiple``."""
    scale = longest_side / max(height, width)

    def snap(length: int) -> int:
        return max(multiple, int(round(length * scale / multiple)) * multiple)

    return snap(height), snap(width)


def fit_to_frame(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Generated views ``[N, h, w, 3]`` resized to the video's ``[N, height, width, 3]`` (bilinear,
    antialiased when shrinking; the aspect already matches, see :func:`generation_size`)."""
    if tuple(images.shape[1:3]) == (height, width):
        return images
    channels_first = images.movedim(-1, 1).to(torch.float32)
    resized = torch.nn.functional.interpolate(channels_first, size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)
    return resized.movedim(1, -1).clamp(0.0, 1.0)


def orbit_sequence(view: OrbitView, source_elevation_deg: float, frames: int) -> tuple[list[float], list[float]]:
    """SV3D's per-frame ``(elevations, azimuths)`` in degrees (model convention, see :func:`model_angles`):
    ``frames`` views evenly spaced from the input view (``source_elevation_deg``, azimuth 0) to
    ``view``; the last one is the target. Azimuths come back in [0, 360): "orbit left 30°" is 330°."""
    if frames < 2:
        raise ReCaptureInputError("orbit_frames", f"{frames} frames cannot hold both the input and the target view",
                                  "Use 2 or more (SV3D was trained on 21).")
    steps = [i / (frames - 1) for i in range(frames)]
    elevation, azimuth = model_angles(view)
    elevations = [source_elevation_deg + t * elevation for t in steps]
    # SV3D was trained on azimuths in [0, 360); ComfyUI embeds fmod(azimuth, 360), which keeps the sign.
    azimuths = [(t * azimuth) % 360.0 for t in steps]
    return elevations, azimuths


def model_angles(view: OrbitView) -> tuple[float, float]:
    """``(elevation, azimuth)`` in degrees in Zero123's convention (azimuth positive = camera right)."""
    return view.elevation_deg, -view.azimuth_deg


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
