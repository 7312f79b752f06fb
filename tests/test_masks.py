"""Mask conventions and previews (recapture_core.masks), against values computed by hand."""
from __future__ import annotations

import pytest
import torch

from recapture_core.errors import ReCaptureInputError
from recapture_core.masks import hole_mask_from_valid, overlay_mask


def test_hole_mask_is_the_complement_of_a_binary_valid_mask():
    valid = (torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(0)) > 0.3).float()
    holes = hole_mask_from_valid(valid)
    assert torch.equal(holes + valid, torch.ones_like(valid))


def test_partially_valid_pixels_count_as_holes():
    valid = torch.tensor([[[1.0, 0.999, 0.0]]])
    assert hole_mask_from_valid(valid).tolist() == [[[0.0, 1.0, 1.0]]]


def test_dilation_grows_a_single_hole_into_a_square():
    valid = torch.ones(1, 9, 9)
    valid[0, 4, 4] = 0.0
    holes = hole_mask_from_valid(valid, dilate_px=2)
    expected = torch.zeros(1, 9, 9)
    expected[0, 2:7, 2:7] = 1.0
    assert torch.equal(holes, expected)


def test_dilation_at_the_border_does_not_wrap():
    valid = torch.ones(1, 5, 5)
    valid[0, 0, 0] = 0.0
    holes = hole_mask_from_valid(valid, dilate_px=1)
    assert holes.sum() == 4 and holes[0, :2, :2].sum() == 4


def test_overlay_tints_masked_pixels_and_leaves_the_rest_bit_exact():
    frames = torch.rand(2, 4, 5, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 4, 5)
    mask[1, 2, 3] = 1.0
    mask[0, 0, 0] = 0.5
    out = overlay_mask(frames, mask, color=(1.0, 0.0, 0.5), opacity=0.6)
    untouched = mask == 0
    assert torch.equal(out[untouched], frames[untouched])
    expected = frames[1, 2, 3] * 0.4 + torch.tensor([1.0, 0.0, 0.5]) * 0.6
    torch.testing.assert_close(out[1, 2, 3], expected, rtol=0, atol=1e-7)
    expected_half = frames[0, 0, 0] * 0.7 + torch.tensor([1.0, 0.0, 0.5]) * 0.3
    torch.testing.assert_close(out[0, 0, 0], expected_half, rtol=0, atol=1e-7)


def test_overlay_broadcasts_a_single_mask_over_all_frames():
    frames = torch.zeros(3, 2, 2, 3)
    mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    out = overlay_mask(frames, mask, color=(0.0, 1.0, 0.0), opacity=1.0)
    assert out[:, 0, 0].tolist() == [[0.0, 1.0, 0.0]] * 3
    assert out[:, 1, 1].abs().sum() == 0


@pytest.mark.parametrize(
    "mask, needle",
    [
        (torch.ones(3, 4, 4), "is 4x4 (width x height) but frames is 5x4"),
        (torch.ones(2, 4, 5), "has 2 frames but frames has 3"),
        (torch.full((3, 4, 5), 2.0), "values must lie in 0..1, found 2..2"),
        (torch.full((3, 4, 5), float("nan")), "NaN"),
        (torch.ones(3, 4, 5, 1), "expected a MASK of shape"),
    ],
)
def test_bad_masks_are_rejected_with_the_input_named(mask, needle):
    with pytest.raises(ReCaptureInputError) as err:
        overlay_mask(torch.zeros(3, 4, 5, 3), mask)
    assert err.value.input_name == "mask"
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "frames, needle",
    [
        (torch.zeros(0, 4, 5, 3), "the video is empty"),
        (torch.zeros(3, 4, 5, 4), "expected an IMAGE of shape"),
        (torch.full((1, 4, 5, 3), float("inf")), "NaN or infinite"),
    ],
)
def test_bad_frames_are_rejected_with_the_input_named(frames, needle):
    with pytest.raises(ReCaptureInputError) as err:
        overlay_mask(frames, torch.ones(1, 4, 5))
    assert err.value.input_name == "frames"
    assert needle in str(err.value)
