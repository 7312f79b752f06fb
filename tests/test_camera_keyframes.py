"""Keyframed camera paths (recapture_core.camera.keyframes)."""
from __future__ import annotations

import pytest
import torch

from recapture_core.camera.keyframes import INTERPOLATIONS, keyframe_trajectory, parse_keyframes
from recapture_core.camera.poses import MoveParams, pose_from_params
from recapture_core.errors import ReCaptureInputError

TEXT = """
# a wandering move
3: orbit_left=-5
10: orbit_left=20, dolly_in=0.2, zoom=1.2
17: tilt_up=6 roll_cw=-4, pedestal_up=0.1   # mixed separators
24: orbit_up=15, pan_right=10, zoom=0.8
"""


def test_parser_reads_frames_names_and_values():
    keys = parse_keyframes(TEXT)
    assert [frame for frame, _ in keys] == [3, 10, 17, 24]
    assert keys[1][1] == MoveParams(orbit_left=20.0, dolly_in=0.2, zoom=1.2)
    assert keys[2][1] == MoveParams(tilt_up=6.0, roll_cw=-4.0, pedestal_up=0.1)
    assert parse_keyframes("0:")[0] == (0, MoveParams())


@pytest.mark.parametrize("interpolation", list(INTERPOLATIONS))
def test_keyframes_are_hit_exactly_and_held_outside(interpolation):
    keys = parse_keyframes(TEXT)
    d = 2.5
    traj = keyframe_trajectory(keys, 30, interpolation, subject_distance=d)
    for frame, params in keys:
        assert torch.equal(traj.target_to_source[frame], pose_from_params(params, d)), frame
        assert float(traj.zoom[frame]) == pytest.approx(params.zoom, abs=1e-15)
    for frame in range(3):
        assert torch.equal(traj.target_to_source[frame], traj.target_to_source[3])
    for frame in range(25, 30):
        assert torch.equal(traj.target_to_source[frame], traj.target_to_source[24])


@pytest.mark.parametrize("interpolation", list(INTERPOLATIONS))
def test_interpolated_rotations_stay_orthonormal(interpolation):
    traj = keyframe_trajectory(parse_keyframes(TEXT), 30, interpolation)
    R = traj.target_to_source[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R.transpose(1, 2) @ R, eye, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(30, dtype=torch.float64), rtol=0, atol=1e-12)


def test_slerp_halfway_between_two_turns_is_the_half_turn():
    keys = parse_keyframes("0: pan_right=0\n10: pan_right=40")
    traj = keyframe_trajectory(keys, 11, "pose: slerp + linear")
    torch.testing.assert_close(traj.target_to_source[5], pose_from_params(MoveParams(pan_right=20.0)), rtol=0, atol=1e-12)


def test_parameter_interpolation_keeps_an_orbit_on_its_circle():
    keys = parse_keyframes("0:\n12: orbit_left=60\n24: orbit_left=120")
    d = 2.0
    pivot = torch.tensor([0.0, 0.0, d], dtype=torch.float64)
    on_circle = keyframe_trajectory(keys, 25, "parameters: spline", subject_distance=d)
    distance = (on_circle.target_to_source[:, :3, 3] - pivot).norm(dim=-1)
    torch.testing.assert_close(distance, torch.full((25,), d, dtype=torch.float64), rtol=0, atol=1e-12)
    # Pose-space interpolation cuts the chord between keyframes: strictly inside the circle.
    chord = keyframe_trajectory(keys, 25, "pose: slerp + linear", subject_distance=d)
    assert float((chord.target_to_source[6, :3, 3] - pivot).norm()) < d - 0.05


def test_monotone_spline_does_not_overshoot_a_hold():
    keys = parse_keyframes("0: dolly_in=0\n10: dolly_in=0\n20: dolly_in=0.5\n30: dolly_in=0.5")
    for interpolation in ("pose: slerp + spline", "parameters: spline"):
        z = keyframe_trajectory(keys, 31, interpolation).target_to_source[:, 2, 3]
        assert torch.equal(z[:11], torch.zeros(11, dtype=torch.float64)), interpolation
        assert torch.equal(z[20:], torch.full((11,), 0.5, dtype=torch.float64)), interpolation
        assert (z[1:] >= z[:-1]).all(), interpolation


@pytest.mark.parametrize("text, needle", [
    ("10: spin=3", "unknown parameter 'spin'"),
    ("10: orbit_left=abc", "is not a number"),
    ("10: orbit_left=5\n10: dolly_in=0.1", "frame 10 has two keyframes"),
    ("ten: orbit_left=5", "does not start with a frame number"),
    ("# nothing here\n", "no keyframes found"),
    ("0: zoom=0", "zoom=0 is not allowed"),
    ("0: orbit_left=nan", "is not allowed"),
    ("0: orbit_left 5", "cannot read"),
])
def test_bad_keyframe_text_is_rejected_with_the_line(text, needle):
    with pytest.raises(ReCaptureInputError) as err:
        parse_keyframes(text)
    assert err.value.input_name == "keyframes" and needle in str(err.value)


def test_keyframe_beyond_the_last_frame_is_rejected():
    with pytest.raises(ReCaptureInputError, match="keyframe is at frame 30 but the trajectory has 25 frames"):
        keyframe_trajectory(parse_keyframes("0:\n30: orbit_left=5"), 25)
