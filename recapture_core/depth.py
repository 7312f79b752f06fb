"""DEPTH: per-frame depth maps and what they mean.

The DEPTH type passed between nodes is a :class:`DepthMaps`. ``values`` keep the model's own
quantity; :meth:`DepthMaps.as_depth` turns any kind into depth (distance along the optical axis)
in scene units for geometry.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ReCaptureInputError

DEPTH_KINDS = ("metric", "relative", "disparity")


@dataclass(frozen=True)
class DepthMaps:
    """Per-frame depth.

    Attributes:
        values: ``[F, H, W]`` float32: metric depth (metres), relative depth (arbitrary scale),
            or disparity (proportional to 1 / depth, arbitrary scale), as ``kind`` says.
        kind: one of ``DEPTH_KINDS``.
        intrinsics: ``[4]`` resolution-free source intrinsics (fx/W, fy/W, cx/W, cy/H) when the
            depth model or file supplies them, else None.
    """

    values: torch.Tensor
    kind: str
    intrinsics: torch.Tensor | None = None

    def __post_init__(self):
        if self.kind not in DEPTH_KINDS:
            raise ReCaptureInputError("depth", f"unknown depth kind {self.kind!r}", f"Use one of {', '.join(DEPTH_KINDS)}.")
        if self.values.ndim != 3 or 0 in self.values.shape:
            raise ReCaptureInputError("depth", f"expected depth of shape [frames, height, width], got {list(self.values.shape)}",
                                      "Connect a DEPTH output or an IMAGE depth map read by 'Depth From Image'.")

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def as_depth(self) -> torch.Tensor:
        """Depth ``[F, H, W]`` in scene units (disparity is inverted; its scale stays arbitrary)."""
        values = self.values
        if not torch.isfinite(values).all():
            raise ReCaptureInputError("depth", "contains NaN or infinite values", "Check the depth node upstream.")
        if (values <= 0).any():
            what = "disparity" if self.kind == "disparity" else "depth"
            raise ReCaptureInputError("depth", f"{what} must be positive everywhere, found {float(values.min()):g}",
                                      "Check the depth node upstream, or how the depth image is read.")
        return 1.0 / values if self.kind == "disparity" else values


def central_median_depth(depth: DepthMaps, region: float = 0.5) -> float:
    """Median depth of the central ``region`` (fraction of width and height) over all frames.

    The pivot of orbits and the unit of camera translations ("subject distances").
    """
    values = depth.as_depth()
    _, height, width = values.shape
    h0, w0 = int(round(height * (1 - region) / 2)), int(round(width * (1 - region) / 2))
    centre = values[:, h0:height - h0 or None, w0:width - w0 or None]
    return float(centre.reshape(-1).median())
