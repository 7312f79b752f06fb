"""DEPTH: per-frame depth maps and what they mean.

The DEPTH type passed between nodes is a :class:`DepthMaps`. ``values`` keep the model's own
quantity; :meth:`DepthMaps.as_depth` turns any kind into depth (distance along the optical axis)
in scene units for geometry.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from .errors import ReCaptureInputError
from .validation import check_image

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
                                      "Give one depth map per frame.", hint="depth_source")

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    def as_depth(self) -> torch.Tensor:
        """Depth ``[F, H, W]`` in scene units (disparity is inverted; its scale stays arbitrary)."""
        check_depth_values(self.values, "disparity" if self.kind == "disparity" else "depth")
        return 1.0 / self.values if self.kind == "disparity" else self.values


def check_depth_values(values: torch.Tensor, what: str = "depth", input_name: str = "depth") -> None:
    """Depth (or disparity) ``[F, H, W]`` must be finite and positive everywhere: the one rule for every reader."""
    low, high = torch.aminmax(values.detach().reshape(-1))
    if not (math.isfinite(float(low)) and math.isfinite(float(high))):
        raise ReCaptureInputError(input_name, "contains NaN or infinite values", "Check the depth node upstream.")
    if float(low) <= 0:
        raise ReCaptureInputError(input_name, f"{what} must be positive everywhere, found {float(low):g}",
                                  "Check the depth node upstream, or how the depth image is read.")


def central_median_depth(depth: DepthMaps, region: float = 0.5) -> float:
    """Median depth of the central ``region`` (fraction of width and height) over all frames.

    The pivot of orbits and the unit of camera translations ("subject distances").
    """
    return central_median(depth.as_depth(), region)


def central_median(values: torch.Tensor, region: float = 0.5) -> float:
    """:func:`central_median_depth` of depth values ``[F, H, W]`` already in scene units."""
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
#: A depth-map frame whose values span less than half an 8-bit step is one flat value: no depth in it.
FLAT_SPREAD = 0.5 / 255.0

log = logging.getLogger(__name__)


#: Depth maps saved as 8-bit (or 16-bit) images hold codes on this grid of their 0..1 range.
QUANTISATION_LEVELS = (255, 65535)
#: Spread of the smoothing that turns a staircase of codes back into a surface (pixels of the map).
DEQUANTISE_SIGMA = 2.0
#: A jump between neighbouring pixels larger than this share of the map's 0..1 range is an edge the
#: dequantising blur does not cross (smooth surfaces in a depth map step far less per pixel).
DEQUANTISE_EDGE = 0.02


def quantisation_step(grey: torch.Tensor, tolerance: float = 0.02) -> float | None:
    """The code step of a depth map ``[F, h, w]`` in 0..1 read from an 8- or 16-bit image, or None if it is not on one."""
    flat = grey.reshape(-1)
    sample = flat[:: max(1, flat.numel() // 1_000_000)].double()  # a million values tell the grid; no copy of the clip
    for levels in QUANTISATION_LEVELS:
        codes = sample * levels
        if float((codes - codes.round()).abs().max()) <= tolerance:
            return 1.0 / levels
    return None


def dequantise(grey: torch.Tensor, step: float, sigma: float = DEQUANTISE_SIGMA) -> torch.Tensor:
    """Smooth surfaces back out of quantised codes ``[F, h, w]``: a blur that stops at edges, clamped to each code's cell.

    A map stored in 8 bits is a staircase: flat runs of one code, then a step of one code. Geometry
    reads every step as a small depth edge, and surfaces seen from a new camera crack along them.
    A Gaussian-weighted local line fit (rows, then columns) turns the steps back into the ramps they
    stand for (a plain blur would flatten ramps beside borders and edges). It does not reach across
    an edge (a jump between neighbours above ``DEQUANTISE_EDGE`` of the map's range, or three codes),
    so the surfaces beside a silhouette keep their shape; and as the true value lies within half a
    code of the stored one, the result is clamped to that cell. The last samples of a rim, where the
    line fit is biased by the rim's curvature, are refitted with a rim's shape (:func:`_refit_rims`).
    """
    edge = max(DEQUANTISE_EDGE, 3 * step)
    out = _edge_stopped_line_fit(grey, edge, sigma)
    projections = _rim_projections(grey.device)
    for index in range(grey.shape[0]):
        _refit_rims(grey[index], out[index], step, edge, projections)
    return torch.minimum(torch.maximum(out, grey - step / 2), grey + step / 2).clamp(0.0, 1.0)


#: Samples of a surface's run towards an edge that a rim is refitted over, and the last of them it sets.
RIM_SAMPLES = 12
RIM_SET = 3
#: Where the limb may lie beyond the edge pixel (pixels) in the rim model, tried on this grid.
RIM_LIMB_OFFSETS = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
#: ... only where the jump across the edge is at least this many times the surface's last step (codes).
RIM_JUMP = 4.0
#: A rim whose last step exceeds this many codes is pinned by the codes themselves (16 bits): no refit.
RIM_MAX_STEP_CODES = 4.0


def _rim_projections(device: torch.device) -> torch.Tensor:
    """``[T, M, M]``: codes of a run of RIM_SAMPLES -> their least-squares fit by :func:`_refit_rims`'s rim model,
    one matrix per limb offset of RIM_LIMB_OFFSETS."""
    k = torch.arange(RIM_SAMPLES, dtype=torch.float64, device=device)
    designs = torch.stack([torch.stack([torch.ones_like(k), k, (k + t).sqrt()], 1)
                           for t in RIM_LIMB_OFFSETS.tolist()])  # [T, M, 3]
    return designs @ torch.linalg.pinv(designs)


def _refit_rims(grey: torch.Tensor, out: torch.Tensor, step: float, edge: float, projections: torch.Tensor) -> None:
    """Refit, in place in ``out [h, w]``, the last RIM_SET samples of a rim in quantised codes ``grey [h, w]``
    (``edge``: the jump between neighbours taken as an edge; ``projections``: :func:`_rim_projections`).

    Where a curved surface turns away towards a depth edge (a ball's rim, a cylinder's side) its steps grow
    like the square root of the distance to its limb, and the line fit's one-sided window (it stops at the
    edge) lays a line across that curve: the last samples come out 0.2-0.3 codes too deep, the edge pixel
    0.1 too shallow, and a limb fitted through them (recapture_core.warp) lands up to half a pixel off, as
    far as halfway. Along each row and column, a run of RIM_SAMPLES codes of one surface ending at an edge
    is fitted (least squares) by ``a + b k + c sqrt(k + t)`` (k: pixels inwards from the edge pixel, t: the
    limb's distance beyond it, best of RIM_LIMB_OFFSETS), the shape of a rim near its limb; where that fit
    steepens towards the edge (a rim, not a face), its last RIM_SET samples replace the line fit's (the
    mean of the row's and the column's where both refit a pixel). Measured on balls and cylinders saved in
    8 bits: the two samples inside the edge pixel drop from 0.2-0.3 codes rms to 0.1 (the edge pixel stays
    near 0.3: it is where the model extrapolates). Depth in 16 bits steps by hundreds of codes at a rim
    and the code's cell already pins it (RIM_MAX_STEP_CODES).
    """
    total = torch.zeros(grey.shape, dtype=torch.float64, device=grey.device)
    count = torch.zeros_like(total)
    for transpose in (False, True):  # along rows, then along columns
        g = grey.T if transpose else grey
        n = g.shape[1]
        if n < RIM_SAMPLES:
            continue
        lines, lower = torch.nonzero((g[:, 1:] - g[:, :-1]).abs() > edge).unbind(1)
        for pixel, inwards in ((lower, -1), (lower + 1, 1)):  # the edge pixel before the edge, then after it
            taps = pixel[:, None] + inwards * torch.arange(RIM_SAMPLES, device=grey.device)
            inside = (taps >= 0).all(1) & (taps < n).all(1)
            rows, taps = lines[inside], taps[inside]
            if rows.numel() == 0:
                continue
            codes = g[rows[:, None], taps].double()  # [N, M]
            jump = g[rows, taps[:, 0] - inwards].double() - codes[:, 0]  # across the edge, outwards
            last_code_step = codes[:, 0] - codes[:, 1]
            # One surface up to the edge, and a silhouette beyond it: the jump goes on the way the surface
            # turns and dwarfs its last step (a steep ramp, as of disparity near the camera, crosses the
            # edge threshold step by step, steps alike).
            one_surface = ((codes.diff(dim=1).abs() <= edge).all(1) & (last_code_step.abs() <= RIM_MAX_STEP_CODES * step)
                           & (jump * last_code_step >= 0) & (jump.abs() >= RIM_JUMP * last_code_step.abs().clamp(min=step)))
            rows, taps, codes = rows[one_surface], taps[one_surface], codes[one_surface]
            if rows.numel() == 0:
                continue
            fits = torch.einsum("tmj,nj->ntm", projections, codes)  # [N, T, M]
            best = (fits - codes[:, None]).square().sum(-1).argmin(1)
            fit = fits[torch.arange(rows.shape[0], device=grey.device), best]  # [N, M]
            last, before = fit[:, 0] - fit[:, 1], fit[:, 1] - fit[:, 2]
            rim = (last * before > 0) & (last.abs() > before.abs())
            rows, taps, fit = rows[rim, None].expand(-1, RIM_SET), taps[rim, :RIM_SET], fit[rim, :RIM_SET]
            where = (taps, rows) if transpose else (rows, taps)
            total.index_put_(where, fit, accumulate=True)
            count.index_put_(where, torch.ones_like(fit), accumulate=True)
    refit = count > 0
    out[refit] = (total[refit] / count[refit]).to(out.dtype)


def _edge_stopped_line_fit(grey: torch.Tensor, edge: float, sigma: float) -> torch.Tensor:
    """:func:`dequantise`'s local line fit (rows, then columns) of ``grey [F, h, w]``, not clamped; it stops at
    jumps between neighbours above ``edge``."""
    radius = max(1, math.ceil(3 * sigma))
    out = torch.empty_like(grey)
    for index in range(grey.shape[0]):  # one frame at a time: a handful of [h, w] buffers
        value = grey[index]
        for axis in (1, 0):  # columns within each row, then rows within each column
            n = value.shape[axis]
            jumps = (grey[index].narrow(axis, 1, n - 1) - grey[index].narrow(axis, 0, n - 1)).abs() > edge
            # Surface id along the axis: the number of edges crossed so far; a tap counts when it is the same.
            surface = torch.cat([torch.zeros_like(jumps.narrow(axis, 0, 1), dtype=torch.int32),
                                 jumps.to(torch.int32).cumsum(axis, dtype=torch.int32)], dim=axis)
            # Weighted sums of 1, o, o^2, v, o v over the taps at offsets o, for a weighted least-squares
            # line through them: where taps are missing on one side (a border or an edge) a plain weighted
            # mean would drag a ramp towards its inside (up to 0.9 codes: kinks that crack an orbit); the
            # line's value at o = 0 does not. With taps on both sides alike it is the weighted mean.
            s0, t0 = torch.ones_like(value), value.clone()
            s1, s2, t1 = torch.zeros_like(value), torch.zeros_like(value), torch.zeros_like(value)
            for offset in range(1, radius + 1):
                w = math.exp(-0.5 * (offset / sigma) ** 2)
                for lo, hi, o in ((0, offset, -offset), (offset, 0, offset)):  # the tap before, then after, the pixel
                    tap = value.narrow(axis, lo, n - offset)
                    weight = w * (surface.narrow(axis, lo, n - offset) == surface.narrow(axis, hi, n - offset)).to(value.dtype)
                    s0.narrow(axis, hi, n - offset).add_(weight)
                    s1.narrow(axis, hi, n - offset).add_(weight, alpha=o)
                    s2.narrow(axis, hi, n - offset).add_(weight, alpha=o * o)
                    t0.narrow(axis, hi, n - offset).addcmul_(weight, tap)
                    t1.narrow(axis, hi, n - offset).addcmul_(weight, tap, value=o)
            spread = s0 * s2 - s1 * s1  # 0 when the pixel is alone on its surface along this axis
            line = (s2 * t0 - s1 * t1) / spread.clamp(min=1e-12)
            value = torch.where(spread > 1e-9 * s0 * s2.clamp(min=1.0), line, t0 / s0)
        out[index] = value
    return out


def depth_from_image(image: torch.Tensor, reading: str, near: float = 0.5, far: float = 20.0,
                     size: tuple[int, int] | None = None, input_name: str = "depth_image", align_frames: bool = False,
                     progress=None, check_interrupt=None) -> DepthMaps:
    """Turn a depth-map IMAGE ``[F, h, w, 3]`` (0..1, grey) from any depth pack into DepthMaps.

    A map on an 8- or 16-bit grid (what depth packs save and Load Image reads) is dequantised first
    (:func:`dequantise`), so its steps of one code are not taken for edges.

    Args:
        reading: one of ``IMAGE_READINGS``; metric readings map 0..1 linearly onto ``near..far``
            (scene units), relative ones onto ``RELATIVE_FLOOR..1``.
        size: ``(H, W)`` of the video; the map is resized bilinearly when it differs.
        align_frames: make the frames consistent with each other: relative readings as maps normalised
            frame by frame (:func:`align_normalised_maps`), metric ones by a scale per frame
            (:func:`align_depth_temporally`).
    """
    if reading not in IMAGE_READINGS:
        raise ReCaptureInputError("reading", f"unknown reading {reading!r}", f"Choose one of: {', '.join(IMAGE_READINGS)}.")
    check_image(image, input_name, channels=(1, 3, 4))
    kind, bright_is_near = IMAGE_READINGS[reading]
    if kind == "metric" and not (0 < near < far):
        raise ReCaptureInputError("near", f"metric readings need 0 < near < far, got near={near:g}, far={far:g}",
                                  "Set near and far to the closest and farthest distances in the scene.")
    grey = image[..., :3].to(torch.float32).mean(dim=-1).clamp(0.0, 1.0)  # [F, h, w]
    spread = (grey.amax(dim=(1, 2)) - grey.amin(dim=(1, 2)))
    flat = [int(i) for i in torch.nonzero(spread < FLAT_SPREAD).flatten()]
    if flat:
        shown = ", ".join(map(str, flat[:8])) + (" ..." if len(flat) > 8 else "")
        raise ReCaptureInputError(input_name, f"frame(s) {shown} of {grey.shape[0]} are one flat grey value "
                                  f"({float(grey[flat[0]].mean()):.3f}): a depth map with no depth (all black or all white?)",
                                  "Check the depth node upstream (its output may be blank), or that the right image is connected.")
    step = quantisation_step(grey)
    if step is not None:
        grey = dequantise(grey, step)
    if align_frames and kind != "metric":
        grey = align_normalised_maps(grey, progress=progress, check_interrupt=check_interrupt)[0]
    if size is not None and tuple(grey.shape[1:]) != tuple(size):
        log.info("depth map is %dx%d, video is %dx%d: resizing the depth map bilinearly",
                 grey.shape[2], grey.shape[1], size[1], size[0])
        grey = torch.nn.functional.interpolate(grey[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if kind == "metric":
        t = 1.0 - grey if bright_is_near else grey
        depth = DepthMaps(near + t * (far - near), "metric")
        if align_frames:
            depth = align_depth_temporally(depth, progress=progress, check_interrupt=check_interrupt)[0]
        return depth
    return DepthMaps(RELATIVE_FLOOR + (1.0 - RELATIVE_FLOOR) * grey, kind)


# --- temporal consistency ------------------------------------------------------------------------
#: An affine (scale + shift) fit is kept only while its scale stays within this factor of the
#: scale-only fit: a near-flat frame (8-bit maps of a flat scene) makes the affine fit ill-posed.
AFFINE_SCALE_RANGE = 4.0
#: ... and while it keeps the frame's smallest value at least this share of where the scale-only fit puts it.
AFFINE_MIN_KEEP = 0.1


def _log_scale_fit(source: torch.Tensor, target: torch.Tensor) -> float:
    """The scale mapping positive ``source [N]`` onto positive ``target [N]``: the median ratio, positive by construction."""
    return float(torch.exp((target.log() - source.log()).median()))


def _least_squares(source: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    design = torch.stack([source, torch.ones_like(source)], 1)
    solution = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    return float(solution[0]), float(solution[1])


def _quantile_affine_fit(source: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Scale and shift matching the value distributions of ``source [N]`` and ``target [N]`` (their 5..95 %
    quantiles, least squares). Needs no pixel correspondence, so moving objects and a moving camera barely
    move it."""
    levels = torch.linspace(0.05, 0.95, 19, dtype=source.dtype)
    return _least_squares(torch.quantile(source, levels), torch.quantile(target, levels))


def _robust_affine_fit(source: torch.Tensor, target: torch.Tensor, keep: float = 0.8, iterations: int = 3,
                       start: tuple[float, float] | None = None) -> tuple[float, float]:
    """Scale and shift mapping ``source [N]`` onto ``target [N]``: least squares on the ``keep`` share of
    smallest residuals, repeated (moving objects and occlusions are the outliers), from ``start`` (default:
    least squares on all points)."""
    scale, shift = start if start is not None else _least_squares(source, target)
    for _ in range(iterations):
        residual = (scale * source + shift - target).abs()
        mask = residual <= torch.quantile(residual.float(), keep)
        scale, shift = _least_squares(source[mask], target[mask])
    return scale, shift


def _two_start_affine_fit(source: torch.Tensor, target: torch.Tensor, keep: float = 0.8) -> tuple[float, float]:
    """:func:`_robust_affine_fit` from whichever start leaves the smaller ``keep``-quantile residual: least
    squares on all points, or the distribution match. From all points alone, a large moving object (a box
    at the maximum of one normalised frame and elsewhere in the next) drags the first fit and the trimming
    then keeps the wrong points; the distribution match alone is coarse on maps of a few grey levels."""
    def trimmed_error(fit):
        return float(torch.quantile((fit[0] * source + fit[1] - target).abs().float(), keep))

    start = min((_least_squares(source, target), _quantile_affine_fit(source, target)), key=trimmed_error)
    return _robust_affine_fit(source, target, keep, start=start)


def _frame_fit(source: torch.Tensor, target: torch.Tensor, frame_min: float, with_shift: bool) -> tuple[float, float]:
    """(scale, shift) for one frame that keeps its order (scale > 0) and positivity (min stays > 0).

    The scale-only fit in log space always does; the affine fit replaces it only where it is
    well-posed (scale near the scale-only one) and keeps the frame's smallest value clear of zero.
    """
    scale = _log_scale_fit(source, target)
    if not with_shift:
        return scale, 0.0
    affine_scale, affine_shift = _robust_affine_fit(source, target)
    well_posed = math.isfinite(affine_scale) and math.isfinite(affine_shift) and \
        scale / AFFINE_SCALE_RANGE <= affine_scale <= scale * AFFINE_SCALE_RANGE
    if well_posed and affine_scale * frame_min + affine_shift >= AFFINE_MIN_KEEP * scale * frame_min:
        return affine_scale, affine_shift
    return scale, 0.0


def _fit_to_neighbours(samples: torch.Tensor, fit, radius: int, passes: int, progress=None,
                       check_interrupt=None) -> torch.Tensor:
    """``[F, 2]`` (scale, shift) per frame: each frame of ``samples [F, N]`` fitted (``fit(i, source, reference)``)
    to the per-pixel median of its ``radius`` neighbours on each side, ``passes`` times over."""
    num_frames = samples.shape[0]
    params = torch.tensor([[1.0, 0.0]] * num_frames, dtype=torch.float64)
    aligned = samples.clone()
    total = passes * num_frames
    for iteration in range(passes):
        updated = aligned.clone()
        for i in range(num_frames):
            if check_interrupt is not None:
                check_interrupt()
            neighbours = [j for j in range(max(0, i - radius), min(num_frames, i + radius + 1)) if j != i]
            scale, shift = fit(i, samples[i], aligned[neighbours].median(dim=0).values)
            params[i] = torch.tensor([scale, shift], dtype=torch.float64)
            updated[i] = scale * samples[i] + shift
            if progress is not None:
                progress(iteration * num_frames + i + 1, total)
        aligned = updated
    return params


def _pixel_samples(values: torch.Tensor, max_samples: int) -> torch.Tensor:
    """``[F, N]``: the same (seeded) random pixels of every frame of ``values [F, H, W]``, float64."""
    flat = values.reshape(values.shape[0], -1)
    samples = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))[:max_samples]
    return flat[:, samples].double()


def align_depth_temporally(depth: DepthMaps, radius: int = 3, passes: int = 4, max_samples: int = 20000,
                           progress=None, check_interrupt=None) -> tuple[DepthMaps, torch.Tensor]:
    """Remove per-frame scale flicker: fit each frame to the per-pixel median of its neighbours.

    Metric depth gets a scale only (its zero is meaningful); relative depth and disparity get
    scale and shift (they are affine-invariant) where that is well-posed, else a scale. Every
    frame keeps its depth order and stays positive (scales are positive, shifts are bounded), and
    the result does not depend on the depth's units (fits run on values divided by the clip's
    median). Scales are normalised to a median of 1, so the clip keeps its overall scale.

    Args:
        progress: ``progress(done, total)`` over frames x passes; check_interrupt: called per frame.

    Returns the aligned maps and the ``[F, 2]`` (scale, shift) applied to each frame (shift in the depth's units).
    """
    values = depth.values.to(torch.float32)
    num_frames = values.shape[0]
    if num_frames < 2:
        return depth, torch.tensor([[1.0, 0.0]] * num_frames, dtype=torch.float64)
    low = float(values.min())
    if not (math.isfinite(low) and math.isfinite(float(values.max()))) or low <= 0:
        raise ReCaptureInputError("depth", f"must be finite and positive to align, found minimum {low:g}",
                                  "Check the depth node upstream, or turn temporal_consistency off.")
    samples = _pixel_samples(values, max_samples)
    unit = float(samples.median())  # fits in units of the clip's median: scale-invariant
    source = samples / unit
    frame_mins = values.reshape(num_frames, -1).amin(dim=1).double() / unit
    with_shift = depth.kind != "metric"
    params = _fit_to_neighbours(source, lambda i, x, y: _frame_fit(x, y, float(frame_mins[i]), with_shift),
                                radius, passes, progress, check_interrupt)
    params /= params[:, 0].median()
    params[:, 1] *= unit
    out = values * params[:, 0, None, None].float() + params[:, 1, None, None].float()
    if not bool((out > 0).all()):  # a bug, not bad input: the fits above keep every frame positive
        raise RuntimeError("ReCapture: temporal depth alignment produced non-positive depth")
    return DepthMaps(out, depth.kind, depth.intrinsics), params


def _order_keeping_affine_fit(source: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """The robust affine fit, or (where it would flip the order) a shift matching the medians."""
    scale, shift = _two_start_affine_fit(source, target)
    if math.isfinite(scale) and math.isfinite(shift) and scale > 0:
        return scale, shift
    return 1.0, float(target.median() - source.median())


def align_normalised_maps(grey: torch.Tensor, history: int = 3, max_samples: int = 20000,
                          progress=None, check_interrupt=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth-map images normalised frame by frame -> one consistent clip, ``[F, H, W]`` in 0..1.

    Depth packs (comfyui_controlnet_aux's Depth Anything, MiDaS, ...) stretch each frame's map to
    0..1 on its own, so a grey value means something else in every frame: each frame is an unknown
    affine map of one consistent clip. Frame by frame from the first, each is fitted affinely (robustly,
    keeping its order) to the per-pixel median of the ``history`` frames before it, already aligned;
    then the clip as a whole is stretched back to 0..1, so a clip normalised as one comes out as it
    went in, to rounding. Fitting to the frames before (rather than to neighbours on both sides, as
    :func:`align_depth_temporally` does against flicker) also removes slow drift: an object that
    approaches the camera raises every frame's maximum and, normalised per frame, pushes the rest of
    the scene back a little more in each frame; a symmetric neighbourhood sees no flicker in that.

    Returns the maps and the ``[F, 2]`` (scale, shift) applied to each frame before the final stretch.
    """
    num_frames = grey.shape[0]
    params = torch.tensor([[1.0, 0.0]] * num_frames, dtype=torch.float64)
    if num_frames < 2:
        return grey, params
    samples = _pixel_samples(grey, max_samples)
    aligned = samples.clone()
    for i in range(1, num_frames):
        if check_interrupt is not None:
            check_interrupt()
        reference = aligned[max(0, i - history):i].median(dim=0).values
        scale, shift = _order_keeping_affine_fit(samples[i], reference)
        params[i] = torch.tensor([scale, shift], dtype=torch.float64)
        aligned[i] = scale * samples[i] + shift
        if progress is not None:
            progress(i + 1, num_frames)
    out = grey.double() * params[:, 0, None, None] + params[:, 1, None, None]
    low, high = float(out.min()), float(out.max())
    return ((out - low) / (high - low)).to(grey.dtype).clamp(0.0, 1.0), params


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
