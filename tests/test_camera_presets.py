"""Camera presets against closed-form poses (recapture_core.camera.presets)."""
from __future__ import annotations

import math

import pytest
import torch
from kornia.geometry.camera import project_points

from recapture_core.camera.poses import EASINGS, MoveParams, eased_progress, invert_pose, pose_from_params
from recapture_core.camera.presets import PRESETS, preset_trajectory
from recapture_core.errors import ReCaptureInputError

W, H = 1024, 576
#: The centre of the image in pixel coordinates with pixel centres at integers (conventions.py).
IMAGE_CENTRE = torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=torch.float64)


def pivot_pixels(trajectory, d):
    """Where the pivot (0, 0, d) in source coordinates lands in each target image, ``[F, 2]``."""
    pivot = torch.tensor([0.0, 0.0, d, 1.0], dtype=torch.float64)
    in_target = (invert_pose(trajectory.target_to_source) @ pivot)[:, :3]
    return project_points(in_target, trajectory.target_K(W, H))


@pytest.mark.parametrize("d", [0.7, 3.0])
@pytest.mark.parametrize("theta", [10.0, 45.0, 90.0])
def test_orbit_left_matches_the_closed_form_and_keeps_the_pivot_centred(theta, d):
    traj = preset_trajectory("orbit left", theta, 9, "linear", subject_distance=d)
    for i, angle in enumerate(torch.linspace(0, math.radians(theta), 9, dtype=torch.float64)):
        pose = traj.target_to_source[i]
        expected_centre = torch.tensor([-d * math.sin(angle), 0.0, d - d * math.cos(angle)], dtype=torch.float64)
        expected_axis = torch.tensor([math.sin(angle), 0.0, math.cos(angle)], dtype=torch.float64)
        torch.testing.assert_close(pose[:3, 3], expected_centre, rtol=0, atol=1e-12)
        torch.testing.assert_close(pose[:3, 2], expected_axis, rtol=0, atol=1e-12)
        torch.testing.assert_close(pose[:3, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    centre = IMAGE_CENTRE.expand(9, 2)
    torch.testing.assert_close(pivot_pixels(traj, d), centre, rtol=0, atol=1e-9)


@pytest.mark.parametrize("preset, sign_x, sign_y", [("orbit right", 1, 0), ("orbit up", 0, -1), ("orbit down", 0, 1)])
def test_other_orbits_move_the_camera_the_named_way(preset, sign_x, sign_y):
    d, theta = 2.0, math.radians(30.0)
    traj = preset_trajectory(preset, 30.0, 5, subject_distance=d)
    centre = traj.target_to_source[-1, :3, 3]
    torch.testing.assert_close(centre, torch.tensor([sign_x * d * math.sin(theta), sign_y * d * math.sin(theta),
                                                     d - d * math.cos(theta)], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(pivot_pixels(traj, d), IMAGE_CENTRE.expand(5, 2),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("preset", ["arc left", "arc right", "arc up", "arc down"])
def test_arcs_translate_sideways_and_keep_the_pivot_centred(preset):
    d = 1.5
    traj = preset_trajectory(preset, 0.4, 7, subject_distance=d)
    final = traj.target_to_source[-1, :3, 3]
    assert math.isclose(float(final.norm()), 0.4 * d, abs_tol=1e-12) and abs(float(final[2])) < 1e-12
    torch.testing.assert_close(pivot_pixels(traj, d), IMAGE_CENTRE.expand(7, 2),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("preset, expected", [
    ("dolly in", (0, 0, 0.3)), ("dolly out", (0, 0, -0.3)), ("truck left", (-0.3, 0, 0)),
    ("truck right", (0.3, 0, 0)), ("pedestal up", (0, -0.3, 0)), ("pedestal down", (0, 0.3, 0)),
])
def test_translations_are_in_subject_distances_without_rotation(preset, expected):
    traj = preset_trajectory(preset, 0.3, 4, subject_distance=2.0)
    torch.testing.assert_close(traj.target_to_source[-1, :3, 3], torch.tensor(expected, dtype=torch.float64) * 2.0,
                               rtol=0, atol=1e-12)
    assert torch.equal(traj.target_to_source[:, :3, :3], torch.eye(3, dtype=torch.float64).expand(4, 3, 3))


@pytest.mark.parametrize("preset, column, expected", [
    ("pan right", 2, (0.5, 0, math.sqrt(3) / 2)), ("pan left", 2, (-0.5, 0, math.sqrt(3) / 2)),
    ("tilt up", 2, (0, -0.5, math.sqrt(3) / 2)), ("tilt down", 2, (0, 0.5, math.sqrt(3) / 2)),
    ("roll clockwise", 0, (math.sqrt(3) / 2, 0.5, 0)), ("roll counterclockwise", 0, (math.sqrt(3) / 2, -0.5, 0)),
])
def test_turns_rotate_in_place_the_named_way(preset, column, expected):
    traj = preset_trajectory(preset, 30.0, 3)
    pose = traj.target_to_source[-1]
    torch.testing.assert_close(pose[:3, column], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(pose[:3, 3], torch.zeros(3, dtype=torch.float64))


def test_zoom_changes_the_focal_length_only():
    zoom_in = preset_trajectory("zoom in", 0.5, 5, "linear")
    zoom_out = preset_trajectory("zoom out", 0.5, 5, "linear")
    torch.testing.assert_close(zoom_in.zoom, torch.tensor([1.0, 1.125, 1.25, 1.375, 1.5], dtype=torch.float64))
    torch.testing.assert_close(zoom_out.zoom, 1.0 / zoom_in.zoom)
    torch.testing.assert_close(zoom_in.target_intrinsics[-1, :2], zoom_in.source_intrinsics[:2] * 1.5)
    assert torch.equal(zoom_in.target_intrinsics[:, 2:], zoom_in.source_intrinsics[2:].expand(5, 2))
    assert torch.equal(zoom_in.target_to_source, torch.eye(4, dtype=torch.float64).expand(5, 4, 4))


@pytest.mark.parametrize("preset", PRESETS)
def test_amount_zero_is_the_identity_and_every_preset_starts_at_the_source(preset):
    still = preset_trajectory(preset, 0.0, 6)
    assert torch.equal(still.target_to_source, torch.eye(4, dtype=torch.float64).expand(6, 4, 4))
    assert torch.equal(still.target_intrinsics, still.source_intrinsics.expand(6, 4))
    moving = preset_trajectory(preset, 0.3, 6)
    assert torch.equal(moving.target_to_source[0], torch.eye(4, dtype=torch.float64))
    assert moving.zoom[0] == 1.0


@pytest.mark.parametrize("easing", list(EASINGS))
def test_easing_curves_run_from_0_to_1_monotonically(easing):
    progress = eased_progress(11, easing)
    assert progress[0] == 0.0 and progress[-1] == 1.0
    assert (progress[1:] >= progress[:-1]).all()


def test_easings_differ_where_they_should():
    mid = {name: float(eased_progress(3, name)[1]) for name in EASINGS}
    assert mid == {"linear": 0.5, "ease-in": 0.25, "ease-out": 0.75, "ease-in-out": 0.5}
    assert float(eased_progress(5, "ease-in-out")[1]) < 0.25


def test_intrinsics_follow_the_field_of_view():
    traj = preset_trajectory("static", 0.0, 1, hfov_deg=90.0)
    K = traj.source_K(W, H)
    assert math.isclose(float(K[0, 0]), W / 2, rel_tol=1e-12) and float(K[0, 0]) == float(K[1, 1])
    # Pixel centres at integers: the principal point of a centred camera is the image centre, (W - 1) / 2.
    assert (float(K[0, 2]), float(K[1, 2])) == ((W - 1) / 2, (H - 1) / 2)


@pytest.mark.parametrize("kwargs, name, needle", [
    (dict(preset="orbit left", amount=-5.0, num_frames=5), "amount", "must not be negative"),
    (dict(preset="dolly in", amount=1.0, num_frames=5), "amount", "reaches or passes the subject"),
    (dict(preset="orbit left", amount=5.0, num_frames=0), "num_frames", "at least 1"),
    (dict(preset="spin", amount=5.0, num_frames=5), "preset", "unknown preset"),
])
def test_bad_preset_input_is_rejected_with_the_input_named(kwargs, name, needle):
    with pytest.raises(ReCaptureInputError) as err:
        preset_trajectory(**kwargs)
    assert err.value.input_name == name and needle in str(err.value)


def test_a_path_of_many_frames_is_one_batch_equal_to_its_poses_one_by_one():
    """poses_from_params batches a whole path (a loop of kornia calls took 6 ms a frame); each pose equals the
    one-pose computation bit for bit, and every move of the composition is present in the batch."""
    from recapture_core.camera.poses import poses_from_params

    generator = torch.Generator().manual_seed(3)
    moves = [MoveParams(**{name: float(v) for name, v in zip(MoveParams.names()[:-1], torch.randn(8, generator=generator) * 20)},
                        zoom=1.5) for _ in range(33)]
    batched = poses_from_params(moves, 2.5)
    assert batched.shape == (33, 4, 4) and batched.dtype == torch.float64
    for frame, move in enumerate(moves):
        assert torch.equal(batched[frame], pose_from_params(move, 2.5)), frame
