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
