"""CameraTrajectory: validation, compose, resample, reverse, summary."""
from __future__ import annotations

import math

import pytest
import torch

from recapture_core.camera.keyframes import keyframe_trajectory, parse_keyframes
from recapture_core.camera.poses import invert_pose
from recapture_core.camera.presets import preset_trajectory
from recapture_core.camera.trajectory import CameraTrajectory
from recapture_core.errors import ReCaptureInputError


def test_orbit_plus_dolly_pushes_towards_the_pivot_from_the_orbited_camera():
    d = 2.0
    orbit = preset_trajectory("orbit left", 40.0, 9, subject_distance=d)
    dolly = preset_trajectory("dolly in", 0.25, 9, subject_distance=d)
    both = orbit.compose(dolly)
    assert torch.equal(both.target_to_source, orbit.target_to_source @ dolly.target_to_source)
    pivot = torch.tensor([0.0, 0.0, d, 1.0], dtype=torch.float64)
    in_camera = (invert_pose(both.target_to_source[-1]) @ pivot)[:3]
    torch.testing.assert_close(in_camera, torch.tensor([0.0, 0.0, 0.75 * d], dtype=torch.float64), rtol=0, atol=1e-12)


def test_compose_multiplies_zoom_and_needs_equal_frame_counts():
    zoom = preset_trajectory("zoom in", 1.0, 5, "linear")
    both = zoom.compose(zoom)
    torch.testing.assert_close(both.zoom, zoom.zoom**2)
    with pytest.raises(ReCaptureInputError, match="has 6 frames but first has 5"):
        zoom.compose(preset_trajectory("zoom in", 1.0, 6))


def test_resample_keeps_every_original_frame_on_a_finer_grid():
    traj = keyframe_trajectory(parse_keyframes("0:\n8: orbit_left=30, zoom=1.5\n16: tilt_up=10, dolly_in=0.3"), 17)
    finer = traj.resample(33)  # positions 0, 0.5, 1, ...: the even frames are the original ones
    assert finer.num_frames == 33
    assert torch.equal(finer.target_to_source[::2], traj.target_to_source)
    torch.testing.assert_close(finer.zoom[::2], traj.zoom, rtol=0, atol=1e-15)
    R = finer.target_to_source[:, :3, :3]
    torch.testing.assert_close(R.transpose(1, 2) @ R, torch.eye(3, dtype=torch.float64).expand_as(R), rtol=0, atol=1e-12)


def test_resample_to_fewer_frames_keeps_both_ends():
    traj = preset_trajectory("orbit right", 25.0, 25)
    short = traj.resample(7)
    assert torch.equal(short.target_to_source[0], traj.target_to_source[0])
    assert torch.equal(short.target_to_source[-1], traj.target_to_source[-1])
    assert traj.resample(1).num_frames == 1


def test_reverse_flips_the_order_and_twice_is_the_original():
    traj = preset_trajectory("pan left", 15.0, 6)
    back = traj.reverse()
    assert torch.equal(back.target_to_source, traj.target_to_source.flip(0))
    assert torch.equal(back.reverse().target_to_source, traj.target_to_source)
    assert traj.target_to_source[0].equal(torch.eye(4, dtype=torch.float64))  # the input was not modified


def test_frame_count_check_names_both_counts():
    with pytest.raises(ReCaptureInputError) as err:
        preset_trajectory("static", 0.0, 24).check_frame_count(25)
    assert "has 24 frames but frames has 25" in str(err.value) and "resample it to 25 frames" in str(err.value)
    assert err.value.hint == "resample_trajectory"  # ComfyUI's nodes add which node does that


def test_summary_reports_rotation_and_translation_in_subject_distances():
    text = preset_trajectory("orbit left", 30.0, 5, subject_distance=4.0).summary()
    expected_move = 2 * math.sin(math.radians(15.0))  # chord of a 30° arc on the unit circle
    assert "rotated 30.0°" in text and f"moved {expected_move:.3f} subject distances" in text


@pytest.mark.parametrize("mutate, needle", [
    (lambda p: p.__setitem__((1, 0, 0), 1.5), "rotation of frame 1 is not orthonormal"),
    (lambda p: p.__setitem__((2, 0, 0), -1.0), "rotation of frame 2 is not orthonormal"),  # a mirror: det = -1
    (lambda p: p.__setitem__((0, 1, 3), float("nan")), "NaN"),
    (lambda p: p.__setitem__((0, 3, 0), 0.5), "last row"),
])
def test_invalid_poses_are_rejected(mutate, needle):
    poses = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    mutate(poses)
    with pytest.raises(ReCaptureInputError) as err:
        CameraTrajectory.from_poses(poses)
    assert needle in str(err.value) and err.value.input_name == "trajectory"


def test_invalid_shapes_and_focal_lengths_are_rejected():
    with pytest.raises(ReCaptureInputError, match="shape"):
        CameraTrajectory.from_poses(torch.eye(4, dtype=torch.float64))
    with pytest.raises(ReCaptureInputError, match="focal lengths must be positive"):
        CameraTrajectory.from_poses(torch.eye(4, dtype=torch.float64)[None], torch.tensor([0.0, 1.0, 0.5, 0.5]))
    with pytest.raises(ReCaptureInputError, match="subject distance must be positive"):
        CameraTrajectory.static(2, subject_distance=0.0)


def test_scaling_to_the_depths_subject_distance_scales_translations_only():
    traj = preset_trajectory("orbit left", 20.0, 4, subject_distance=1.0).compose(preset_trajectory("zoom in", 0.5, 4))
    scaled = traj.scaled_to_subject_distance(7.5)
    assert scaled.subject_distance == 7.5
    torch.testing.assert_close(scaled.target_to_source[:, :3, 3], traj.target_to_source[:, :3, 3] * 7.5)
    assert torch.equal(scaled.target_to_source[:, :3, :3], traj.target_to_source[:, :3, :3])
    assert torch.equal(scaled.zoom, traj.zoom)
    # The same orbit made directly for a subject 7.5 units away.
    direct = preset_trajectory("orbit left", 20.0, 4, subject_distance=7.5)
    torch.testing.assert_close(scaled.target_to_source, direct.target_to_source, rtol=0, atol=1e-12)
