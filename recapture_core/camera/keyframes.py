"""Keyframed camera paths: a few poses at chosen frames, interpolated in between.

Text format (one keyframe a line, ``#`` starts a comment; parameters as in :class:`MoveParams`,
missing ones are 0, ``zoom`` is 1)::

    0:
    24: orbit_left=20, dolly_in=0.2
    48: orbit_left=0, tilt_up=5, zoom=1.3

Frames before the first keyframe hold its pose, frames after the last hold the last pose.
"""
from __future__ import annotations

import math
import re

import torch

from ..errors import ReCaptureInputError
from .conventions import normalized_intrinsics_from_hfov
from .poses import MoveParams, poses_from_params
from .trajectory import CameraTrajectory, interpolate_hermite, interpolate_linear, interpolate_poses

INTERPOLATIONS = {
    "pose: slerp + spline": "rotations by slerp, positions by a smooth spline through the keyframes",
    "pose: slerp + linear": "rotations by slerp, positions along straight lines",
    "parameters: spline": "the move parameters themselves by a smooth spline: an orbit stays on its circle",
}

#: Longest keyframe text read (the widget's tooltip says so); parsing is linear in its length.
MAX_KEYFRAME_CHARS = 65536
_NAME = re.compile(r"[a-z_]+")


def parse_keyframes(text: str, input_name: str = "keyframes") -> list[tuple[int, MoveParams]]:
    """Parse keyframe text into sorted ``(frame, MoveParams)`` pairs; errors name the line.

    Linear time in the text's length: lines are split into tokens with ``str`` methods and no
    regular expression that can backtrack over a long run of spaces.
    """
    if len(text) > MAX_KEYFRAME_CHARS:
        raise ReCaptureInputError(input_name, f"is {len(text)} characters long; at most {MAX_KEYFRAME_CHARS} are read",
                                  "Keep one short line per keyframe.")
    keyframes: dict[int, MoveParams] = {}
    valid = MoveParams.names()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        shown = raw.strip()[:60]
        head, colon, rest = line.partition(":")
        if not colon:  # '24 orbit_left=20' without a colon: the frame is the first token
            head, _, rest = line.partition(" ")
        head = head.strip()
        if not (head.isascii() and head.isdigit()) or len(head) > 9:
            raise ReCaptureInputError(input_name, f"line {number} ({shown!r}) does not start with a frame number",
                                      "Write each keyframe as 'frame: name=value, name=value', e.g. '24: orbit_left=20'.")
        frame = int(head)
        # 'a = 1, b=2' -> ['a=1', 'b=2']: commas and runs of spaces become single spaces, spaces around '=' go.
        tokens = " ".join(rest.replace(",", " ").split()).replace(" =", "=").replace("= ", "=").split()
        values: dict[str, float] = {}
        for item in tokens:
            name, equals, value_text = item.partition("=")
            if not equals or not value_text or "=" in value_text or not _NAME.fullmatch(name):
                raise ReCaptureInputError(input_name, f"line {number}: cannot read {item[:40]!r}",
                                          "Write parameters as name=value, separated by commas.")
            if name not in valid:
                raise ReCaptureInputError(input_name, f"line {number}: unknown parameter {name!r}",
                                          f"Use any of: {', '.join(valid)}.")
            if name in values:
                raise ReCaptureInputError(input_name, f"line {number}: {name} is given twice",
                                          "Give each parameter once per keyframe.")
            try:
                value = float(value_text)
            except ValueError:
                raise ReCaptureInputError(input_name, f"line {number}: {name}={value_text[:40]!r} is not a number",
                                          "Give a number, e.g. orbit_left=15 or dolly_in=0.2.") from None
            if not math.isfinite(value) or (name == "zoom" and value <= 0):
                raise ReCaptureInputError(input_name, f"line {number}: {name}={value_text[:40]} is not allowed",
                                          "Use finite numbers; zoom must be positive (1 = no zoom).")
            values[name] = value
        if frame in keyframes:
            raise ReCaptureInputError(input_name, f"frame {frame} has two keyframes (line {number})",
                                      "Keep one keyframe per frame.")
        keyframes[frame] = MoveParams(**values)
    if not keyframes:
        raise ReCaptureInputError(input_name, "no keyframes found", "Add at least one line like '0:' or '24: orbit_left=20'.")
    return sorted(keyframes.items())


def keyframe_trajectory(keyframes: list[tuple[int, MoveParams]], num_frames: int,
                        interpolation: str = "pose: slerp + spline", hfov_deg: float = 60.0,
                        subject_distance: float = 1.0) -> CameraTrajectory:
    """A trajectory of ``num_frames`` through the keyframes, which it hits exactly."""
    if interpolation not in INTERPOLATIONS:
        raise ReCaptureInputError("interpolation", f"unknown interpolation {interpolation!r}",
                                  f"Choose one of: {', '.join(INTERPOLATIONS)}.")
    last = keyframes[-1][0]
    if last >= num_frames:
        raise ReCaptureInputError("keyframes", f"a keyframe is at frame {last} but the trajectory has {num_frames} frames (0..{num_frames - 1})",
                                  f"Raise num_frames above {last}, or move the keyframe.")
    knots = torch.tensor([frame for frame, _ in keyframes], dtype=torch.float64)
    positions = torch.arange(num_frames, dtype=torch.float64)
    names = MoveParams.names()
    params = torch.tensor([[getattr(p, n) for n in names] for _, p in keyframes], dtype=torch.float64)
    zoom_column = names.index("zoom")
    params[:, zoom_column] = params[:, zoom_column].log()  # zoom interpolates geometrically

    if interpolation == "parameters: spline":
        per_frame = interpolate_hermite(knots, params, positions)
        per_frame[:, zoom_column] = per_frame[:, zoom_column].exp()
        moves = [MoveParams(**dict(zip(names, map(float, row)))) for row in per_frame]
        poses = poses_from_params(moves, subject_distance)
        zoom = per_frame[:, zoom_column]
    else:
        key_poses = poses_from_params([p for _, p in keyframes], subject_distance)
        poses = interpolate_poses(knots, key_poses, positions, smooth=interpolation == "pose: slerp + spline")
        zoom = interpolate_linear(knots, params[:, zoom_column:zoom_column + 1], positions)[:, 0].exp()
    # exp(log(z)) is not always z bit for bit: put the keyframes' own zoom back.
    for frame, p in keyframes:
        zoom[frame] = p.zoom
    return CameraTrajectory.from_poses(poses, normalized_intrinsics_from_hfov(hfov_deg), zoom=zoom,
                                       subject_distance=subject_distance,
                                       label=f"{len(keyframes)} keyframes, {interpolation}")
