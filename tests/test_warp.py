"""PointCloudWarp's core against an analytic renderer (tests/scenes.py)."""
from __future__ import annotations

import pytest
import torch

from recapture_core.camera.keyframes import keyframe_trajectory, parse_keyframes
from recapture_core.camera.presets import preset_trajectory
from recapture_core.camera.trajectory import CameraTrajectory
from recapture_core.errors import ReCaptureInputError
from recapture_core.masks import hole_mask_from_valid
from recapture_core.depth import depth_from_image
from recapture_core.warp import anchor_from_depth, feasibility_report, flying_pixels, warp_video
from recapture_core.synthetic import box_on_pixel_boundaries, psnr, render, visible_from_source

W, H = 320, 240


def scene_for(traj):
    K = traj.source_K(W, H)
    return box_on_pixel_boundaries(K, z_front=2.5, columns=(120, 230), rows=(70, 180), z_back=3.2), K


def warp_against_truth(traj, **kwargs):
    scene, K = scene_for(traj)
    colour, depth, _ = render(scene, torch.eye(4, dtype=torch.float64), K, W, H)
    frames = colour[None].expand(traj.num_frames, H, W, 3).to(torch.float32)
    depths = depth[None].expand(traj.num_frames, H, W).to(torch.float32)
    result = warp_video(frames, depths, traj, **kwargs)
    truth_colour, truth_depth, points = render(scene, traj.target_to_source[-1], traj.target_K(W, H)[-1], W, H)
    seen = visible_from_source(scene, points, K, W, H)
    return result, truth_colour, truth_depth, seen


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / float((a | b).sum())


@pytest.mark.parametrize("make", [
    lambda: preset_trajectory("truck right", 0.15, 1, subject_distance=3.0),
    lambda: preset_trajectory("orbit left", 8.0, 1, subject_distance=3.0),
    lambda: keyframe_trajectory(parse_keyframes("0: orbit_up=5, truck_right=-0.1, dolly_in=0.1, roll_cw=3"), 1, subject_distance=3.0),
], ids=["truck", "orbit", "mixed"])
def test_warp_matches_the_analytic_render(make):
    traj = make()
    result, truth_colour, truth_depth, seen = warp_against_truth(traj, edge_threshold=0.05)
    valid = result.valid_mask[-1] > 0
    holes = result.hole_mask[-1] > 0
    assert psnr(result.anchor[-1][valid], truth_colour[valid]) >= 40.0
    assert iou(holes, ~seen) >= 0.99, iou(holes, ~seen)
    assert 0.02 < float(holes.float().mean()) < 0.5  # the test scene really has holes to find
    # The surface each valid pixel shows is the true one, but for pixel centres within a hair of a
    # silhouette corner, where the first-order footprint and the true projected square differ.
    wrong_surface = (result.depth[-1][valid].double() - truth_depth[valid]).abs() > 2e-3 * truth_depth[valid]
    assert int(wrong_surface.sum()) <= 3


def test_identity_trajectory_returns_the_input_exactly():
    frames = torch.rand(3, 40, 56, 3, generator=torch.Generator().manual_seed(0))
    depth = 1.0 + 4.0 * torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(1))
    result = warp_video(frames, depth, CameraTrajectory.static(3), edge_threshold=0.0)
    assert torch.equal(result.anchor, frames)
    assert torch.equal(result.valid_mask, torch.ones(3, 40, 56))
    assert torch.equal(result.valid_mask + result.hole_mask, torch.ones(3, 40, 56))


@pytest.mark.parametrize("preset", ["truck left", "truck right", "pedestal up", "pedestal down"])
def test_nearer_layer_wins_wherever_layers_overlap_whatever_the_point_order(preset):
    # A near square in front of a far wall; moving makes them overlap in the target. The four
    # directions put the occluded wall pixels before and after the square's in memory order.
    traj = preset_trajectory(preset, 0.1, 1, subject_distance=2.0)  # the square moves 37 px, staying in frame
    depth = torch.full((1, H, W), 4.0)
    depth[0, 80:160, 100:200] = 1.5
    colours = torch.zeros(1, H, W, 3)
    colours[..., 2] = 1.0  # far: blue
    colours[0, 80:160, 100:200] = torch.tensor([1.0, 0.0, 0.0])  # near: red
    result = warp_video(colours, depth, traj, edge_threshold=0.0)
    near_pixels = (result.depth[0] > 0) & (result.depth[0] < 2.0)
    far_pixels = result.depth[0] > 3.0
    assert int(near_pixels.sum()) == 80 * 100  # the square, whole, at its new place
    assert torch.equal(result.anchor[0][near_pixels], torch.tensor([1.0, 0.0, 0.0]).expand(8000, 3))
    assert torch.equal(result.anchor[0][far_pixels], torch.tensor([0.0, 0.0, 1.0]).expand(int(far_pixels.sum()), 3))


def test_moving_closer_leaves_no_cracks():
    traj = preset_trajectory("dolly in", 0.4, 1, subject_distance=2.0)
    frames = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(2))
    depth = torch.full((1, H, W), 2.0)
    result = warp_video(frames, depth, traj, edge_threshold=0.05)
    # Magnified 1/0.6 = 1.67x around the centre: every pixel of the target sees the plane.
    assert torch.equal(result.valid_mask, torch.ones(1, H, W))
    single_pixel = warp_video(frames, depth, traj, edge_threshold=0.05, max_footprint=0)
    assert float(single_pixel.hole_mask.mean()) > 0.2  # without footprints the same move cracks


def step_edge_depth():
    """A foreground (2) / background (4) step, smeared like a resized network prediction."""
    coarse = torch.full((1, 1, H // 4, W // 4), 4.0)
    coarse[..., : W // 8] = 2.0
    return torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)[:, 0]


def test_depth_edge_filter_removes_every_streak_pixel():
    # Truck right: the foreground (left) slides left faster than the background and opens a gap
    # that in-between points would bridge with streaks.
    traj = preset_trajectory("truck right", 0.3, 1, subject_distance=3.0)
    depth = step_edge_depth()
    assert ((depth > 2.05) & (depth < 3.95)).sum() > 0  # the input really has in-between depths
    frames = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(3))
    filtered = warp_video(frames, depth, traj, edge_threshold=0.05)
    rendered = filtered.depth[0]
    streaks = (rendered > 2.05) & (rendered < 3.95)
    assert int(streaks.sum()) == 0
    unfiltered = warp_video(frames, depth, traj, edge_threshold=0.0).depth[0]
    assert int(((unfiltered > 2.05) & (unfiltered < 3.95)).sum()) > 100


def test_flying_pixel_filter_keeps_both_sides_of_a_clean_step_and_gentle_slopes():
    depth = torch.full((1, 6, 12), 4.0)
    depth[..., :6] = 2.0
    assert not flying_pixels(depth, 0.05).any()
    slope = torch.linspace(2.0, 2.2, 12).expand(1, 6, 12).contiguous()  # < 1% per pixel
    assert not flying_pixels(slope, 0.05).any()
    blended = depth.clone()
    blended[..., 6:8] = 3.0  # a 2-pixel block of in-between depth: needs the distance-2 stencil
    assert flying_pixels(blended, 0.05)[..., 6:8].all()


def test_masks_partition_every_frame_and_dilation_grows_holes():
    traj = preset_trajectory("orbit right", 10.0, 3, subject_distance=3.0)
    scene, K = scene_for(traj)
    colour, depth, _ = render(scene, torch.eye(4, dtype=torch.float64), K, W, H)
    frames, depths = colour[None].expand(3, H, W, 3).float(), depth[None].expand(3, H, W).float()
    plain = warp_video(frames, depths, traj)
    grown = warp_video(frames, depths, traj, hole_dilation=3, hole_fill="grey")
    for result in (plain, grown):
        assert torch.equal(result.valid_mask + result.hole_mask, torch.ones_like(result.valid_mask))
        assert set(result.hole_mask.unique().tolist()) <= {0.0, 1.0}
    assert (grown.hole_mask >= plain.hole_mask).all() and grown.hole_mask.sum() > plain.hole_mask.sum()
    holes = grown.hole_mask > 0
    assert (grown.anchor[holes] == 0.5).all() and (plain.anchor[plain.hole_mask > 0] == 0.0).all()
    assert plain.hole_ratio[0] == 0.0  # frame 0 of a preset is the source camera


def test_feasibility_report_warns_about_large_holes():
    traj = preset_trajectory("orbit left", 40.0, 2, subject_distance=3.0)
    frames = torch.rand(2, 60, 80, 3)
    result = warp_video(frames, torch.full((2, 60, 80), 3.0), traj)
    report = feasibility_report(result, warn_above=0.1)
    assert "WARNING" in report and "MultiviewAnchor" in report and "hole ratio per frame: 0.0%" in report
    assert "WARNING" not in feasibility_report(result, warn_above=0.99)


@pytest.mark.parametrize("frames, depth, traj, name, needle", [
    (torch.rand(3, 8, 8, 3), torch.ones(2, 8, 8), CameraTrajectory.static(3), "depth", "has 2 frames but frames has 3"),
    (torch.rand(3, 8, 8, 3), torch.ones(3, 8, 9), CameraTrajectory.static(3), "depth", "is 9x8 but frames is 8x8"),
    (torch.rand(3, 8, 8, 3), torch.full((3, 8, 8), float("nan")), CameraTrajectory.static(3), "depth", "NaN"),
    (torch.rand(3, 8, 8, 3), torch.zeros(3, 8, 8), CameraTrajectory.static(3), "depth", "must be positive"),
    (torch.rand(3, 8, 8, 3), torch.ones(3, 8, 8), CameraTrajectory.static(4), "trajectory", "has 4 frames but frames has 3"),
    (torch.rand(0, 8, 8, 3), torch.ones(0, 8, 8), CameraTrajectory.static(1), "frames", "empty"),
])
def test_bad_input_is_rejected_before_any_work(frames, depth, traj, name, needle):
    calls = []
    with pytest.raises(ReCaptureInputError) as err:
        warp_video(frames, depth, traj, progress=lambda done, total: calls.append(done))
    assert err.value.input_name == name and needle in str(err.value)
    assert calls == []


def test_every_tensor_the_warp_makes_follows_the_input_device():
    # No GPU in CI: make "a tensor created without naming a device" observable on the CPU instead.
    # Under a meta default device such a tensor lands on meta and meeting a CPU tensor fails, just
    # as a CPU-allocated buffer would fail against CUDA inputs on ComfyUI's GPU.
    frames = torch.rand(2, 12, 16, 3, generator=torch.Generator().manual_seed(0))
    depth = torch.full((2, 12, 16), 3.0)
    depth[:, 4:8, 5:11] = 2.0
    trajectory = preset_trajectory("orbit left", 10.0, 2, subject_distance=3.0)
    reference = warp_video(frames, depth, trajectory)
    with torch.device("meta"):
        result = warp_video(frames, depth, trajectory, device="cpu")
    assert torch.equal(result.anchor, reference.anchor) and torch.equal(result.valid_mask, reference.valid_mask)


def crack_pixels(valid: torch.Tensor) -> torch.Tensor:
    """``[F, H, W]`` bool: holes one pixel wide (both left and right, or both up and down, neighbours valid)."""
    hole, out = ~valid, torch.zeros_like(valid)
    out[:, :, 1:-1] |= hole[:, :, 1:-1] & valid[:, :, :-2] & valid[:, :, 2:]
    out[:, 1:-1, :] |= hole[:, 1:-1, :] & valid[:, :-2, :] & valid[:, 2:, :]
    return out


def ball_before_a_slanted_wall(frames=3, height=144, width=192) -> torch.Tensor:
    """A depth-map image in 0..1 (bright = near): a ball with a curved silhouette before a sloping wall."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None].expand(height, width)
    r2 = ((x - 0.5) * width / height) ** 2 + (y - 0.5) ** 2
    grey = torch.where(r2 < 0.06, 0.95 - 1.5 * r2, 0.30 + 0.35 * y + 0.05 * x)
    return grey[None, ..., None].expand(frames, height, width, 3).contiguous()


def boxes_on_a_tilted_ground(frames=3, height=144, width=256) -> torch.Tensor:
    """A depth-map image in 0..1 (bright = near): a bumpy ground tilted towards the camera with two boxes on it."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None].expand(height, width)
    grey = 0.15 + 0.6 * y + 0.04 * torch.sin(9 * x) * torch.sin(7 * y)
    for cx, cy, half, level in ((0.3, 0.6, 0.08, 0.9), (0.65, 0.45, 0.06, 0.75)):
        box = ((x - cx).abs() < half) & ((y - cy).abs() < half * width / height)
        grey = torch.where(box, torch.full_like(grey, level), grey)
    return grey[None, ..., None].expand(frames, height, width, 3).contiguous()


def assert_quantised_depth_renders_like_float_depth(exact: torch.Tensor, levels: int, reading: str, near: float,
                                                    far: float, trajectory) -> None:
    """The same scene from float depth and from its image in ``levels`` codes: no 1-px cracks that float depth
    does not have (steps of one code are not edges), the same holes, the same colours."""
    frames = torch.rand(*exact.shape, generator=torch.Generator().manual_seed(0))
    results = [anchor_from_depth(frames, depth_from_image(image, reading, near=near, far=far), trajectory)
               for image in (exact, (exact * levels).round() / levels)]
    valid_float, valid_quantised = (r.valid_mask > 0 for r in results)
    # Inside surfaces, not along silhouettes (which may move by a pixel: the depth there is half a code off).
    inside = ~hole_mask_from_valid(valid_float.float(), 2).bool()
    assert int((crack_pixels(valid_quantised) & inside).sum()) == 0
    holes_float, holes_quantised = ~valid_float, ~valid_quantised
    if holes_float.any():
        assert iou(holes_float, holes_quantised) >= 0.98
    else:
        assert not holes_quantised.any()
    both = valid_float & valid_quantised
    assert psnr(results[1].anchor[both], results[0].anchor[both]) >= 35.0


@pytest.mark.parametrize("reading", ["disparity, bright = near", "metric: near..far, bright = near"])
@pytest.mark.parametrize("move", [("dolly in", 0.25), ("orbit left", 8.0)], ids=["dolly", "orbit"])
@pytest.mark.parametrize("levels", [255, 65535], ids=["8-bit", "16-bit"])
def test_depth_maps_saved_in_8_or_16_bits_render_as_whole_surfaces(reading, move, levels):
    # A curved silhouette; 8-bit left hundreds of cracks before dequantising.
    assert_quantised_depth_renders_like_float_depth(ball_before_a_slanted_wall(), levels, reading, 2.0, 6.0,
                                                    preset_trajectory(move[0], move[1], 3, subject_distance=1.0))


@pytest.mark.parametrize("move", [("truck right", 0.1), ("orbit left", 8.0)], ids=["truck", "orbit"])
@pytest.mark.parametrize("levels", [255, 65535], ids=["8-bit", "16-bit"])
def test_quantised_ground_stays_whole_along_the_edges_of_boxes_standing_on_it(move, levels):
    # Next to a box the ground is another surface above or below but the same one beside: one code's step
    # there stretched the gap to the next pixel beyond a half-pixel footprint (1-5 cracks per clip before
    # footprints reached halfway to same-surface neighbours on each axis).
    assert_quantised_depth_renders_like_float_depth(boxes_on_a_tilted_ground(), levels,
                                                    "metric: near..far, bright = near", 2.0, 9.0,
                                                    preset_trajectory(move[0], move[1], 3, subject_distance=1.0))


def test_the_preview_of_a_frame_is_that_frame_of_the_anchor_at_full_size_and_smaller_on_request():
    from recapture_core.camera.presets import preset_trajectory
    from recapture_core.depth import central_median
    from recapture_core.errors import ReCaptureInputError
    from recapture_core.warp import preview_frame

    generator = torch.Generator().manual_seed(5)
    frames = torch.rand(4, 48, 64, 3, generator=generator)
    depth = 3.0 + torch.rand(4, 48, 64, generator=generator)
    depth[:, 12:30, 20:44] = 1.5
    path = preset_trajectory("orbit left", 10.0, 4)
    full = warp_video(frames, depth, path.scaled_to_subject_distance(central_median(depth)))
    for frame in range(4):
        preview = preview_frame(frames, depth, path, frame, 64)
        assert torch.equal(preview.anchor[0], full.anchor[frame]) and torch.equal(preview.hole_mask[0], full.hole_mask[frame])
    small = preview_frame(frames, depth, path, 3, 32)
    assert small.anchor.shape == (1, 24, 32, 3)
    assert abs(float(small.hole_ratio[0]) - float(full.hole_ratio[3])) < 0.05
    with pytest.raises(ReCaptureInputError, match="input 'frame'"):
        preview_frame(frames, depth, path, 4)


def test_projection_is_kornias_unproject_transform_project():
    from kornia.geometry.camera import project_points
    from kornia.geometry.depth import depth_to_3d_v2
    from kornia.geometry.linalg import transform_points

    from recapture_core.warp import homography_and_parallax, project_rows

    generator = torch.Generator().manual_seed(11)
    height, width = 23, 31
    K_source = torch.tensor([[40.0, 0.0, 15.2], [0.0, 42.0, 10.7], [0.0, 0.0, 1.0]])
    K_target = torch.tensor([[35.0, 0.0, 16.1], [0.0, 36.5, 11.9], [0.0, 0.0, 1.0]])
    world_to_target = keyframe_trajectory(parse_keyframes("0:\n1: orbit_left=12, pedestal_up=0.1, dolly_in=0.2"), 2,
                                          subject_distance=2.0).target_to_source[1].inverse().to(torch.float32)
    depth = 1.0 + 3.0 * torch.rand(height, width, generator=generator)
    points = depth_to_3d_v2(depth[None], K_source[None])[0]
    moved = transform_points(world_to_target[None], points.reshape(1, -1, 3))[0]
    expected_uv = project_points(moved, K_target.expand(moved.shape[0], 3, 3)).reshape(height, width, 2)
    homography, parallax = (m.to(torch.float32) for m in homography_and_parallax(K_source, world_to_target, K_target))
    first = 9  # a band of rows 9..16 projects like the same rows of the whole image
    target = project_rows(depth[first:17], first, homography, parallax)
    torch.testing.assert_close(target[2], moved.reshape(height, width, 3)[first:17, :, 2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((target[:2] / target[2]).permute(1, 2, 0), expected_uv[first:17], rtol=0, atol=2e-4)


@pytest.mark.parametrize("keyframes", ["0:\n1: orbit_left=8, pedestal_up=0.05", "0:\n1: dolly_in=0.3", "0:\n1: zoom=1.6"])
def test_bands_of_rows_render_exactly_what_the_whole_frame_renders(monkeypatch, keyframes):
    import recapture_core.warp as warp

    # Edges, flying pixels and magnified footprints cross band borders (3 rows a band here): a near
    # box whose top and left edges carry a 2-pixel rim of in-between depth (only the distance-2
    # stencil finds it), the top rim starting on the first row of a band.
    depth = torch.full((1, H, W), 4.0)
    depth[:, 99:, 60:] = 3.0
    depth[:, 101:, 62:] = 2.0
    traj = keyframe_trajectory(parse_keyframes(keyframes), 2, subject_distance=3.0)
    frames = torch.rand(2, H, W, 3, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(warp, "BAND_POINTS", 1 << 30)
    whole = warp_video(frames, depth.expand(2, H, W), traj, edge_threshold=0.05)
    monkeypatch.setattr(warp, "BAND_POINTS", 3 * W)
    banded = warp_video(frames, depth.expand(2, H, W), traj, edge_threshold=0.05)
    assert flying_pixels(depth, 0.05)[0, 99:101, 100].all()
    assert torch.equal(banded.valid_mask, whole.valid_mask)
    assert torch.equal(banded.anchor, whole.anchor)
    assert torch.equal(banded.depth, whole.depth)
