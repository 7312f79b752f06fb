"""Pose conversion for object-centric multiview models, and fusion with the warp (recapture_core.multiview)."""
from __future__ import annotations


import pytest
import torch

from recapture_core.camera.poses import MoveParams, pose_from_params
from recapture_core.camera.presets import preset_trajectory
from recapture_core.errors import ReCaptureInputError
from recapture_core.multiview import (OrbitView, fit_to_frame, fuse_anchor, generation_size, generator_frames, model_angles,
                                     orbit_sequence, orbit_view, orbit_views, pose_from_orbit_view)


@pytest.mark.parametrize("preset, amount, expected", [
    ("orbit left", 30.0, (0.0, 30.0)), ("orbit right", 45.0, (0.0, -45.0)),
    ("orbit up", 20.0, (20.0, 0.0)), ("orbit down", 15.0, (-15.0, 0.0)), ("orbit left", 170.0, (0.0, 170.0)),
])
def test_orbits_convert_to_elevation_and_azimuth_in_closed_form(preset, amount, expected):
    trajectory = preset_trajectory(preset, amount, 3, "linear", subject_distance=2.5)
    views = orbit_views(trajectory)
    assert views[0].elevation_deg == pytest.approx(0.0, abs=1e-12) and views[0].azimuth_deg == pytest.approx(0.0, abs=1e-12)
    last = views[-1]
    assert (last.elevation_deg, last.azimuth_deg) == pytest.approx(expected, abs=1e-9)
    assert last.distance == pytest.approx(1.0, abs=1e-12) and last.look_error_deg == pytest.approx(0.0, abs=1e-6)


def test_dolly_changes_distance_and_pan_shows_up_as_look_error():
    dolly = orbit_view(pose_from_params(MoveParams(dolly_in=0.25), 2.0), 2.0)
    assert dolly.distance == pytest.approx(0.75) and dolly.azimuth_deg == pytest.approx(0.0)
    pan = orbit_view(pose_from_params(MoveParams(pan_right=12.0), 2.0), 2.0)
    assert pan.look_error_deg == pytest.approx(12.0) and pan.azimuth_deg == pytest.approx(0.0)


@pytest.mark.parametrize("elevation", [-80.0, -30.0, 0.0, 25.0, 85.0])
@pytest.mark.parametrize("azimuth", [-170.0, -60.0, 0.0, 45.0, 179.0])
@pytest.mark.parametrize("distance", [0.5, 1.0, 1.7])
def test_round_trip_view_pose_view(elevation, azimuth, distance):
    view = OrbitView(elevation, azimuth, distance, 0.0)
    back = orbit_view(pose_from_orbit_view(view, 3.0), 3.0)
    assert (back.elevation_deg, back.azimuth_deg, back.distance) == pytest.approx((elevation, azimuth, distance), abs=1e-9)
    assert back.look_error_deg == pytest.approx(0.0, abs=1e-5)


def test_a_camera_on_the_pivot_is_rejected():
    with pytest.raises(ReCaptureInputError, match="sits on the pivot"):
        orbit_view(pose_from_params(MoveParams(dolly_in=1.0), 2.0), 2.0)


def test_fusion_copies_valid_warp_pixels_bit_exactly_and_masks_partition_the_frame():
    generator = torch.Generator().manual_seed(0)
    warped = torch.rand(3, 6, 8, 3, generator=generator)
    generated = torch.rand(3, 6, 8, 3, generator=generator)
    valid = (torch.rand(3, 6, 8, generator=generator) > 0.4).float()
    use = torch.tensor([True, False, True])
    anchor, valid_mask, generated_mask, hole_mask = fuse_anchor(warped, valid, generated, use)
    keep = valid > 0
    assert torch.equal(anchor[keep], warped[keep])
    fill = generated_mask > 0
    assert torch.equal(anchor[fill], generated[fill])
    assert torch.equal(valid_mask + generated_mask + hole_mask, torch.ones(3, 6, 8))
    assert generated_mask[1].sum() == 0 and torch.equal(hole_mask[1], 1 - valid[1])
    for mask in (valid_mask, generated_mask, hole_mask):
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("mode, expected", [
    ("fuse with warp", [True, True, True, True]),
    ("generator only", [True, True, True, True]),
    ("switch by hole ratio", [False, False, True, True]),
])
def test_generator_frames_by_mode(mode, expected):
    ratios = torch.tensor([0.0, 0.30, 0.31, 0.9])
    assert generator_frames(ratios, mode, 0.30).tolist() == expected


def test_unknown_mode_is_named():
    with pytest.raises(ReCaptureInputError, match="mode"):
        generator_frames(torch.zeros(2), "warp first", 0.3)


@pytest.mark.parametrize("size, longest, expected", [
    ((576, 1024), 256, (144, 256)), ((1024, 576), 256, (256, 144)), ((192, 320), 256, (152, 256)),
    ((256, 256), 576, (576, 576)), ((10, 1000), 256, (8, 256)),
])
def test_generation_size_keeps_the_aspect_on_the_latent_grid(size, longest, expected):
    assert generation_size(*size, longest) == expected


def test_orbit_sequence_sweeps_from_the_input_view_to_the_target():
    elevations, azimuths = orbit_sequence(OrbitView(20.0, 30.0, 1.0, 0.0), 10.0, 4)  # 30° orbit left, 20° up
    assert elevations == pytest.approx([10.0, 10.0 + 20 / 3, 10.0 + 40 / 3, 30.0])
    assert azimuths == pytest.approx([0.0, 350.0, 340.0, 330.0])  # model azimuth: positive = camera right
    with pytest.raises(ReCaptureInputError, match="orbit_frames"):
        orbit_sequence(OrbitView(0.0, 10.0, 1.0, 0.0), 0.0, 1)


@pytest.mark.parametrize("preset, expected", [
    ("orbit right", (0.0, 90.0)),  # Zero123's demo: "View from the Right" is azimuth +90
    ("orbit left", (0.0, -90.0)), ("orbit up", (90.0, 0.0)), ("orbit down", (-90.0, 0.0)),
])
def test_model_angles_follow_zero123s_convention(preset, expected):
    view = orbit_views(preset_trajectory(preset, 90.0, 2, "linear", subject_distance=2.0))[-1]
    assert model_angles(view) == pytest.approx(expected, abs=1e-9)


def test_fit_to_frame_keeps_matching_sizes_and_resizes_constants_exactly():
    images = torch.rand(2, 6, 8, 3)
    assert fit_to_frame(images, 6, 8) is images
    constant = torch.full((1, 4, 6, 3), 0.25)
    out = fit_to_frame(constant, 8, 12)
    assert out.shape == (1, 8, 12, 3) and torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)
