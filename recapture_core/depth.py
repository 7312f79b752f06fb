"""DEPTH: per-frame depth maps and what they mean.

The DEPTH type passed between nodes is a :class:`DepthMaps`. ``values`` keep the model's own
quantity; :meth:`DepthMaps.as_depth` turns any kind into depth (distance along the optical axis)
in scene units for geometry.
"""
from __future__ import annotations

import logging
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


# --- depth maps from other packs (plain IMAGE) -------------------------------------------------
#: How to read a greyscale depth IMAGE from another pack: kind, and whether bright means near.
IMAGE_READINGS = {
    "disparity, bright = near": ("disparity", True),
    "depth, bright = far": ("relative", False),
    "metric: near..far, bright = far": ("metric", False),
    "metric: near..far, bright = near": ("metric", True),
}
#: Relative readings map 0..1 to FLOOR..1 so nothing is infinitely far (a 50:1 depth range).
RELATIVE_FLOOR = 0.02

log = logging.getLogger(__name__)


def depth_from_image(image: torch.Tensor, reading: str, near: float = 0.5, far: float = 20.0,
                     size: tuple[int, int] | None = None, input_name: str = "depth_image") -> DepthMaps:
    """Turn a depth-map IMAGE ``[F, h, w, 3]`` (0..1, grey) from any depth pack into DepthMaps.

    Args:
        reading: one of ``IMAGE_READINGS``; metric readings map 0..1 linearly onto ``near..far``
            (scene units), relative ones onto ``RELATIVE_FLOOR..1``.
        size: ``(H, W)`` of the video; the map is resized bilinearly when it differs.
    """
    if reading not in IMAGE_READINGS:
        raise ReCaptureInputError("reading", f"unknown reading {reading!r}", f"Choose one of: {', '.join(IMAGE_READINGS)}.")
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
        raise ReCaptureInputError(input_name, f"expected an IMAGE [frames, height, width, 3], got {list(image.shape)}",
                                  "Connect the IMAGE output of a depth node (Depth Anything, MiDaS, Marigold, ZoeDepth...).")
    if not torch.isfinite(image).all():
        raise ReCaptureInputError(input_name, "contains NaN or infinite values", "Check the depth node upstream.")
    kind, bright_is_near = IMAGE_READINGS[reading]
    if kind == "metric" and not (0 < near < far):
        raise ReCaptureInputError("near", f"metric readings need 0 < near < far, got near={near:g}, far={far:g}",
                                  "Set near and far to the closest and farthest distances in the scene.")
    grey = image[..., :3].to(torch.float32).mean(dim=-1).clamp(0.0, 1.0)  # [F, h, w]
    if size is not None and tuple(grey.shape[1:]) != tuple(size):
        log.info("depth map is %dx%d, video is %dx%d: resizing the depth map bilinearly",
                 grey.shape[2], grey.shape[1], size[1], size[0])
        grey = torch.nn.functional.interpolate(grey[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if kind == "metric":
        t = 1.0 - grey if bright_is_near else grey
        return DepthMaps(near + t * (far - near), "metric")
    return DepthMaps(RELATIVE_FLOOR + (1.0 - RELATIVE_FLOOR) * grey, kind)


# --- temporal consistency ------------------------------------------------------------------------
def _robust_fit(source: torch.Tensor, target: torch.Tensor, with_shift: bool, keep: float = 0.8,
                iterations: int = 3) -> tuple[float, float]:
    """Scale (and shift) mapping ``source [N]`` onto ``target [N]``: least squares, refit on the
    ``keep`` share of smallest residuals (moving objects and occlusions are the outliers)."""
    mask = torch.ones_like(source, dtype=torch.bool)
    scale, shift = 1.0, 0.0
    for _ in range(iterations):
        x, y = source[mask].double(), target[mask].double()
        if with_shift:
            A = torch.stack([x, torch.ones_like(x)], 1)
            solution = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
            scale, shift = float(solution[0]), float(solution[1])
        else:
            scale, shift = float((x * y).sum() / (x * x).sum().clamp_min(1e-30)), 0.0
        residual = (scale * source + shift - target).abs()
        mask = residual <= torch.quantile(residual.float(), keep)
    return scale, shift


def align_depth_temporally(depth: DepthMaps, radius: int = 3, passes: int = 4,
                           max_samples: int = 20000) -> tuple[DepthMaps, torch.Tensor]:
    """Remove per-frame scale flicker: fit each frame to the per-pixel median of its neighbours.

    Metric depth gets a scale only (its zero is meaningful); relative depth and disparity get
    scale and shift (they are affine-invariant). Scales are then normalised to a median of 1,
    so the clip keeps its overall scale. Returns the aligned maps and the ``[F, 2]`` (scale,
    shift) applied to each frame.
    """
    values = depth.values.to(torch.float32)
    num_frames = values.shape[0]
    with_shift = depth.kind != "metric"
    params = torch.tensor([[1.0, 0.0]] * num_frames, dtype=torch.float64)
    if num_frames < 2:
        return depth, params
    flat = values.reshape(num_frames, -1)
    generator = torch.Generator().manual_seed(0)
    samples = torch.randperm(flat.shape[1], generator=generator)[:max_samples]
    aligned = flat[:, samples].clone()
    for _ in range(passes):
        updated = aligned.clone()
        for i in range(num_frames):
            neighbours = [j for j in range(max(0, i - radius), min(num_frames, i + radius + 1)) if j != i]
            reference = aligned[neighbours].median(dim=0).values
            scale, shift = _robust_fit(flat[i, samples], reference, with_shift)
            params[i] = torch.tensor([scale, shift], dtype=torch.float64)
            updated[i] = scale * flat[i, samples] + shift
        aligned = updated
    norm = params[:, 0].median()
    params /= norm
    out = (values * params[:, 0, None, None].float() + params[:, 1, None, None].float())
    if depth.kind != "metric":
        floor = out.amax(dim=(1, 2), keepdim=True) * 1e-3
        out = torch.maximum(out, floor)  # a shift may not push values to zero or below
    return DepthMaps(out, depth.kind, depth.intrinsics), params


# --- preview ------------------------------------------------------------------------------------------
_COLORMAP = torch.tensor([[0.05, 0.03, 0.20], [0.35, 0.05, 0.50], [0.80, 0.25, 0.30], [0.98, 0.60, 0.10],
                          [0.99, 0.95, 0.60]])  # dark (far) -> bright (near)


def colorize_depth(depth: DepthMaps) -> torch.Tensor:
    """IMAGE ``[F, H, W, 3]`` preview: near is bright, far is dark, one scale for the whole clip."""
    nearness = 1.0 / depth.as_depth()
    low = torch.quantile(nearness.reshape(-1)[:: max(1, nearness.numel() // 200000)].float(), 0.02)
    high = torch.quantile(nearness.reshape(-1)[:: max(1, nearness.numel() // 200000)].float(), 0.98)
    t = ((nearness - low) / (high - low).clamp_min(1e-12)).clamp(0, 1) * (len(_COLORMAP) - 1)
    index = t.floor().long().clamp(max=len(_COLORMAP) - 2)
    frac = (t - index)[..., None]
    return _COLORMAP[index] * (1 - frac) + _COLORMAP[index + 1] * frac
