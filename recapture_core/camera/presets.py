"""Camera-move presets: orbit, dolly, truck, pedestal, pan, tilt, roll, zoom, arc, static."""
from __future__ import annotations

import torch

from ..errors import ReCaptureInputError
from .conventions import normalized_intrinsics_from_hfov
from .poses import MoveParams, arc_angle_deg, eased_progress, poses_from_params
from .trajectory import CameraTrajectory

#: preset -> (MoveParams field, sign). Units: degrees for turns, subject distances for moves.
_LINEAR_PRESETS = {
    "orbit left": ("orbit_left", 1.0), "orbit right": ("orbit_left", -1.0),
    "orbit up": ("orbit_up", 1.0), "orbit down": ("orbit_up", -1.0),
    "dolly in": ("dolly_in", 1.0), "dolly out": ("dolly_in", -1.0),
    "truck left": ("truck_right", -1.0), "truck right": ("truck_right", 1.0),
    "pedestal up": ("pedestal_up", 1.0), "pedestal down": ("pedestal_up", -1.0),
    "pan left": ("pan_right", -1.0), "pan right": ("pan_right", 1.0),
    "tilt up": ("tilt_up", 1.0), "tilt down": ("tilt_up", -1.0),
    "roll clockwise": ("roll_cw", 1.0), "roll counterclockwise": ("roll_cw", -1.0),
}
_ARC_PRESETS = {"arc left": ("truck_right", "pan_right", -1.0), "arc right": ("truck_right", "pan_right", 1.0),
                "arc up": ("pedestal_up", "tilt_up", 1.0), "arc down": ("pedestal_up", "tilt_up", -1.0)}
_ZOOM_PRESETS = {"zoom in": 1.0, "zoom out": -1.0}

PRESETS = ["static", *_LINEAR_PRESETS, *_ZOOM_PRESETS, *_ARC_PRESETS]

#: Default amount per preset family, used by the node's documentation and tests.
UNITS = {
    "orbit": "degrees", "pan": "degrees", "tilt": "degrees", "roll": "degrees",
    "dolly": "subject distances", "truck": "subject distances", "pedestal": "subject distances",
    "arc": "subject distances sideways (the camera turns to keep the subject centred)",
    "zoom": "focal-length increase (0.5 = 1.5x focal length for zoom in, 1/1.5 for zoom out)",
    "static": "ignored",
}


def preset_params(preset: str, amount: float, progress: float) -> MoveParams:
    """The :class:`MoveParams` of a preset at ``progress`` (0 = start, 1 = full amount)."""
    value = amount * progress
    if preset == "static":
        return MoveParams()
    if preset in _LINEAR_PRESETS:
        name, sign = _LINEAR_PRESETS[preset]
        return MoveParams(**{name: sign * value})
    if preset in _ZOOM_PRESETS:
        factor = 1.0 + value
        return MoveParams(zoom=factor if _ZOOM_PRESETS[preset] > 0 else 1.0 / factor)
    if preset in _ARC_PRESETS:
        shift, turn, sign = _ARC_PRESETS[preset]
        offset = sign * value
        # Keep the pivot centred: turn back towards it by atan(offset / 1 subject distance)
        # (truck right pairs with a pan left, pedestal up with a tilt down).
        return MoveParams(**{shift: offset, turn: -arc_angle_deg(offset)})
    raise ReCaptureInputError("preset", f"unknown preset {preset!r}", f"Choose one of: {', '.join(PRESETS)}.")


def check_preset_amount(preset: str, amount: float) -> None:
    """Reject amounts that cannot mean what the user wants, before any work."""
    if amount < 0:
        raise ReCaptureInputError("amount", f"must not be negative, got {amount:g}",
                                  "The direction is part of the preset (e.g. 'orbit right' instead of a negative 'orbit left').")
    if preset == "dolly in" and amount >= 1.0:
        raise ReCaptureInputError("amount", f"dolly in by {amount:g} subject distances reaches or passes the subject",
                                  "Use an amount below 1.0 (0.3 moves a third of the way to the subject).")


def preset_trajectory(preset: str, amount: float, num_frames: int, easing: str = "ease-in-out",
                      hfov_deg: float = 60.0, subject_distance: float = 1.0) -> CameraTrajectory:
    """A trajectory of ``num_frames`` that performs one preset move, starting at the source camera."""
    if num_frames < 1:
        raise ReCaptureInputError("num_frames", f"must be at least 1, got {num_frames}", "Choose a positive frame count.")
    check_preset_amount(preset, amount)
    progress = eased_progress(num_frames, easing)
    params = [preset_params(preset, amount, float(p)) for p in progress]
    poses = poses_from_params(params, subject_distance)
    zoom = torch.tensor([p.zoom for p in params], dtype=torch.float64)
    unit = UNITS[preset.split()[0]]
    label = "static camera" if preset == "static" else f"{preset} {amount:g} ({unit.split(' (')[0]}), {easing}"
    return CameraTrajectory.from_poses(poses, normalized_intrinsics_from_hfov(hfov_deg), zoom=zoom,
                                       subject_distance=subject_distance, label=label)
