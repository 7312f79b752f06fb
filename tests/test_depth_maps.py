"""DepthMaps: kinds, conversion to depth, and the subject distance taken from depth."""
from __future__ import annotations

import pytest
import torch

from recapture_core.depth import DepthMaps, central_median_depth
from recapture_core.errors import ReCaptureInputError


def test_subject_distance_is_the_median_of_the_central_region():
    depth = torch.full((2, 8, 12), 10.0)
    depth[:, 2:6, 3:9] = 3.0  # the central half in each direction
    depth[1, 4, 5] = 100.0  # one outlier does not move a median
    assert central_median_depth(DepthMaps(depth, "metric")) == 3.0


def test_disparity_is_inverted_before_taking_the_median():
    disparity = torch.full((1, 4, 4), 0.5)
    assert central_median_depth(DepthMaps(disparity, "disparity")) == 2.0


@pytest.mark.parametrize("values, needle", [
    (torch.zeros(1, 4, 4), "must be positive"),
    (torch.full((1, 4, 4), float("nan")), "NaN"),
])
def test_invalid_depth_is_rejected(values, needle):
    with pytest.raises(ReCaptureInputError, match=needle):
        DepthMaps(values, "metric").as_depth()


def test_unknown_kind_and_bad_shape_are_rejected():
    with pytest.raises(ReCaptureInputError, match="unknown depth kind"):
        DepthMaps(torch.ones(1, 2, 2), "depthish")
    with pytest.raises(ReCaptureInputError, match="shape"):
        DepthMaps(torch.ones(2, 2), "metric")


# --- depth maps from other packs ----------------------------------------------------------------
from recapture_core.depth import (RELATIVE_FLOOR, align_depth_temporally, align_normalised_maps, colorize_depth,  # noqa: E402
                                  depth_from_image)


def grey(values: torch.Tensor) -> torch.Tensor:
    return values[..., None].expand(*values.shape, 3)


@pytest.mark.parametrize("reading, expected_kind, expected", [
    ("disparity, bright = near", "disparity", [RELATIVE_FLOOR, RELATIVE_FLOOR + (1 - RELATIVE_FLOOR) * 0.5, 1.0]),
    ("depth, bright = far", "relative", [RELATIVE_FLOOR, RELATIVE_FLOOR + (1 - RELATIVE_FLOOR) * 0.5, 1.0]),
    ("metric: near..far, bright = far", "metric", [1.0, 5.5, 10.0]),
    ("metric: near..far, bright = near", "metric", [10.0, 5.5, 1.0]),
])
def test_depth_image_readings(reading, expected_kind, expected):
    image = grey(torch.tensor([[[0.0, 0.5, 1.0]]]))
    depth = depth_from_image(image, reading, near=1.0, far=10.0)
    assert depth.kind == expected_kind
    torch.testing.assert_close(depth.values[0, 0], torch.tensor(expected), rtol=0, atol=1e-6)
    assert (depth.as_depth() > 0).all()


def test_bright_means_near_for_disparity_after_conversion():
    depth = depth_from_image(grey(torch.tensor([[[0.2, 0.9]]])), "disparity, bright = near").as_depth()
    assert depth[0, 0, 1] < depth[0, 0, 0]


def test_depth_image_is_resized_to_the_video(caplog):
    image = grey(torch.rand(2, 12, 16))
    with caplog.at_level("INFO"):
        depth = depth_from_image(image, "depth, bright = far", size=(24, 32))
    assert depth.values.shape == (2, 24, 32) and "resizing the depth map" in caplog.text


def test_metric_reading_needs_ordered_near_and_far():
    with pytest.raises(ReCaptureInputError, match="need 0 < near < far"):
        depth_from_image(grey(torch.rand(1, 4, 4)), "metric: near..far, bright = far", near=5.0, far=2.0)


# --- temporal consistency ------------------------------------------------------------------------
def flickering_clip(kind: str, frames: int = 12):
    generator = torch.Generator().manual_seed(4)
    base = 2.0 + 3.0 * torch.rand(1, 24, 32, generator=generator)
    drift = torch.linspace(0, 0.3, frames)[:, None, None]  # slow true change, which must survive
    truth = base * (1 + 0.1 * drift)
    scales = torch.exp(0.25 * torch.randn(frames, generator=generator))  # per-frame scale noise
    shifts = 0.3 * torch.randn(frames, generator=generator) if kind != "metric" else torch.zeros(frames)
    noisy = truth * scales[:, None, None] + shifts[:, None, None]
    return truth, noisy


def frame_scale_spread(values: torch.Tensor, truth: torch.Tensor) -> float:
    """Std of log(per-frame least-squares scale to the truth): 0 when flicker-free."""
    scales = (values * truth).sum(dim=(1, 2)) / (values * values).sum(dim=(1, 2))
    return float(scales.log().std())


@pytest.mark.parametrize("kind", ["metric", "disparity"])
def test_temporal_alignment_removes_injected_scale_flicker(kind):
    truth, noisy = flickering_clip(kind)
    aligned, params = align_depth_temporally(DepthMaps(noisy, kind))
    before = frame_scale_spread(noisy - noisy.mean(dim=(1, 2), keepdim=True) if kind != "metric" else noisy,
                                truth - truth.mean(dim=(1, 2), keepdim=True) if kind != "metric" else truth)
    after = frame_scale_spread(aligned.values - aligned.values.mean(dim=(1, 2), keepdim=True) if kind != "metric" else aligned.values,
                               truth - truth.mean(dim=(1, 2), keepdim=True) if kind != "metric" else truth)
    assert after < before / 10, (before, after)
    assert params.shape == (12, 2) and float(params[:, 0].median()) == pytest.approx(1.0)
    if kind == "metric":
        assert (params[:, 1] == 0).all()


def test_colorized_depth_is_an_image_with_near_brighter():
    depth = torch.full((2, 8, 8), 8.0)
    depth[:, :, :4] = 1.0
    preview = colorize_depth(DepthMaps(depth, "metric"))
    assert preview.shape == (2, 8, 8, 3) and preview.min() >= 0 and preview.max() <= 1
    assert preview[0, 0, 0].sum() > preview[0, 0, 7].sum()


def _keeps_order_and_sign(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Every frame is positive and sorted the same way (a positive monotone map of its input)."""
    for x, y in zip(before.reshape(before.shape[0], -1), after.reshape(after.shape[0], -1)):
        order = torch.argsort(x, stable=True)
        if not (y > 0).all() or (y[order].diff() < 0).any():
            return False
    return True


def near_flat_8bit_maps(frames=10, size=24, seed=0):
    """8-bit grey maps of a near-flat scene: 0.5 +- 1/255, as a depth pack gives for a blank wall."""
    generator = torch.Generator().manual_seed(seed)
    codes = 128 + torch.randint(-1, 2, (frames, size, size), generator=generator)
    return codes.float() / 255.0


@pytest.mark.parametrize("kind", ["disparity", "relative", "metric"])
@pytest.mark.parametrize("clip", ["near-flat 8-bit", "tiny magnitude", "noise"])
def test_alignment_keeps_every_frames_order_and_sign_and_ignores_units(kind, clip):
    generator = torch.Generator().manual_seed(4)
    if clip == "near-flat 8-bit":
        values = RELATIVE_FLOOR + (1 - RELATIVE_FLOOR) * near_flat_8bit_maps()
    elif clip == "tiny magnitude":  # 1e-9 .. 6e-8, what a model in odd units gives
        values = 1e-9 + 5e-8 * torch.rand(10, 24, 24, generator=generator)
    else:  # noise-like frames, each on its own scale
        values = torch.rand(10, 24, 24, generator=generator) * torch.exp(torch.randn(10, 1, 1, generator=generator)) + 1e-3
    aligned, params = align_depth_temporally(DepthMaps(values, kind))
    assert (params[:, 0] > 0).all()
    assert _keeps_order_and_sign(values, aligned.values)
    # Scale-invariant: the same clip in units a billion times larger aligns to the same result, scaled.
    scaled, _ = align_depth_temporally(DepthMaps(values * 1e9, kind))
    assert torch.allclose(scaled.values, aligned.values * 1e9, rtol=1e-4)


def test_alignment_refuses_non_positive_depth():
    values = torch.rand(4, 8, 8) + 0.1
    values[2, 3, 3] = 0.0
    with pytest.raises(ReCaptureInputError, match="must be finite and positive to align"):
        align_depth_temporally(DepthMaps(values, "relative"))


def test_alignment_checks_for_interrupt_every_frame():
    from helpers import Interrupted, interrupt_on_call

    with pytest.raises(Interrupted):
        align_depth_temporally(DepthMaps(torch.rand(50, 8, 8) + 0.1, "relative"), check_interrupt=interrupt_on_call(3))


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_a_flat_depth_image_is_refused_naming_the_frames(value):
    image = torch.rand(3, 8, 8, 1).expand(3, 8, 8, 3).clone()
    image[1] = value
    with pytest.raises(ReCaptureInputError, match=r"input 'depth_image': frame\(s\) 1 of 3 are one flat grey value"):
        depth_from_image(image, "disparity, bright = near")


def _approaching_box_scene(frames=10, height=72, width=96):
    """True depth and colours ``[F, H, W]`` / ``[F, H, W, 3]``: a sloping, bumpy ground seen by a camera trucking
    right, and a box moving right while it approaches (its disparity, the clip's maximum, grows every frame)."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None].expand(height, width)
    depths, colours = [], []
    for f in range(frames):
        xs = x + 0.01 * f
        depth = 8.0 - 5.0 * y + 0.3 * torch.sin(9 * xs) * torch.sin(7 * y)
        box = ((x - (0.3 + 0.03 * f)).abs() < 0.1) & ((y - 0.55).abs() < 0.15)
        depths.append(torch.where(box, torch.full_like(depth, 3.0 - 0.12 * f), depth))
        colour = torch.stack([0.5 + 0.4 * torch.sin(12 * xs + 3 * y), 0.5 + 0.4 * torch.cos(10 * y),
                              0.5 + 0.3 * torch.sin(8 * (xs + y))], -1)
        colours.append(torch.where(box[..., None], torch.tensor([0.9, 0.2, 0.2]), colour))
    return torch.stack(depths), torch.stack(colours)


def _as_8bit_image(grey: torch.Tensor) -> torch.Tensor:
    return ((grey * 255).round() / 255)[..., None].expand(*grey.shape, 3).contiguous()


def test_maps_normalised_frame_by_frame_give_the_anchor_of_one_consistent_clip():
    """Depth Anything through a depth pack: disparity stretched to 0..1 in every frame, 8-bit. Aligned, the
    maps and the anchor match those of the same disparity normalised once over the clip; not aligned, they
    do not (the approaching box pushes the ground back a little more in every frame)."""
    import math

    from recapture_core.camera.presets import preset_trajectory
    from recapture_core.warp import anchor_from_depth

    depth, frames = _approaching_box_scene()
    disparity = 1.0 / depth
    clip_normalised = (disparity - disparity.min()) / (disparity.max() - disparity.min())
    low, high = disparity.amin(dim=(1, 2), keepdim=True), disparity.amax(dim=(1, 2), keepdim=True)
    per_frame = _as_8bit_image((disparity - low) / (high - low))
    reading = "disparity, bright = near"

    aligned = depth_from_image(per_frame, reading, align_frames=True)
    plain = depth_from_image(per_frame, reading)
    truth = depth_from_image(_as_8bit_image(clip_normalised), reading)
    def as_grey(maps):
        return (maps.values - RELATIVE_FLOOR) / (1 - RELATIVE_FLOOR)

    assert float((as_grey(aligned) - clip_normalised).abs().max()) < 2 / 255
    assert float((as_grey(plain) - clip_normalised).abs().max()) > 0.3

    trajectory = preset_trajectory("orbit left", 5.0, depth.shape[0], "linear")
    reference = anchor_from_depth(frames, truth, trajectory)

    def agreement(maps):
        result = anchor_from_depth(frames, maps, trajectory)
        a, b = reference.valid_mask > 0, result.valid_mask > 0
        both = a & b
        mse = float(((reference.anchor - result.anchor) ** 2)[both].mean())
        return float(both.sum() / (a | b).sum()), 10 * math.log10(1 / max(mse, 1e-12))

    iou, psnr = agreement(aligned)
    assert iou >= 0.97 and psnr >= 38.0, (iou, psnr)
    iou, psnr = agreement(plain)
    assert iou < 0.95 and psnr < 30.0, (iou, psnr)


def test_a_clip_normalised_as_one_passes_alignment_unchanged_within_two_codes():
    depth, _ = _approaching_box_scene()
    disparity = 1.0 / depth
    grey = _as_8bit_image((disparity - disparity.min()) / (disparity.max() - disparity.min()))[..., 0]
    aligned, params = align_normalised_maps(grey)
    assert float((aligned - grey).abs().max()) <= 2 / 255
    assert (params[:, 0] > 0).all()


def test_normalised_map_alignment_keeps_order_even_on_noise():
    generator = torch.Generator().manual_seed(2)
    grey = torch.rand(6, 16, 16, generator=generator)
    aligned, params = align_normalised_maps(grey)
    assert (params[:, 0] > 0).all() and float(aligned.min()) == 0.0 and float(aligned.max()) == 1.0
    for x, y in zip(grey.reshape(6, -1), aligned.reshape(6, -1)):
        order = torch.argsort(x, stable=True)
        assert not (y[order].diff() < 0).any()


@pytest.mark.parametrize("axis", [1, 2], ids=["down the rows", "along the columns"])
def test_dequantising_recovers_a_ramp_to_its_borders_and_keeps_an_edge_near_one(axis):
    from recapture_core.depth import dequantise

    step = 1 / 255
    ramp = torch.linspace(0.2, 0.6, 40)
    truth = (ramp[:, None] if axis == 1 else ramp[None, :]).expand(40, 40).clone()
    near_edge = truth.clone()
    # Two pixels of another surface at the far border: the ramp beside them keeps its own slope.
    if axis == 1:
        near_edge[-2:] = 0.95
    else:
        near_edge[:, -2:] = 0.95
    for scene in (truth, near_edge):
        smoothed = dequantise(((scene * 255).round() / 255)[None], step)[0]
        error_in_codes = (smoothed - scene).abs() / step
        # A weighted mean flattened the ramp by up to 0.9 codes where its taps are one-sided, at the border and
        # beside the edge (kinks that cracked a 20-degree orbit); a local line fit keeps the ramp.
        assert float(error_in_codes.max()) <= 0.3
