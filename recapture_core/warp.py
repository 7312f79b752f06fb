"""Point-cloud warping: per-frame depth -> points -> the target camera, with an exact z-buffer.

Stage 1 of ReCapture. For every frame, each source pixel is lifted to a 3D point with its depth
(kornia ``depth_to_3d_v2``), moved into the target camera (``transform_points``) and projected
(``project_points``). The splat is hand-written, because kornia has none:

* **Footprints.** A source pixel is a small square of surface, not a point. Its image in the
  target is, to first order, the parallelogram ``J @ [-0.5, 0.5]^2`` around its projection, with
  ``J`` the Jacobian of the warp (finite differences of the projected grid, taken on the side of
  the smaller depth jump so they never straddle an edge). A target pixel is covered when its
  centre lies inside that parallelogram. Footprints of one surface tile it without gaps or
  overlap, so a camera that moves closer leaves no cracks, and a surface never grows beyond
  its own pixels, so background does not show through foreground.
* **Exact z-buffer.** Every (target pixel, candidate) pair becomes one int64 key: the float32
  bits of the candidate's depth (ordered like the depths, as they are positive) over its index.
  One ``scatter_reduce(..., "amin")`` per frame keeps the nearest candidate of every pixel;
  ties go to the lower index, so the result is deterministic. No Python loop over points or
  pixels: the only loops run over frames and over the few footprint offsets.
* **Colour by backward refinement.** The winner's colour is the source image sampled
  bilinearly at ``p + J^-1 (c - u)``: the source position that lands exactly on the target pixel
  centre ``c``. Offsets below 1e-3 px snap to zero, so an identity trajectory copies the input
  bit-exactly.
* **Flying pixels.** Depth from a network (or resized depth) blends foreground and background at
  edges; such pixels float between the two and smear into streaks. A pixel whose depth lies
  strictly between its neighbours at distance k (k = 1, 2) along x or y, with both relative
  jumps above ``k * edge_threshold``, is dropped and leaves a hole. Pixels on either side of a
  clean step are kept, as are surfaces sloping less than ``edge_threshold`` per pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
from kornia.geometry.camera import project_points
from kornia.geometry.depth import depth_to_3d_v2
from kornia.geometry.linalg import transform_points

from .camera.poses import invert_pose
from .camera.trajectory import CameraTrajectory
from .depth import DepthMaps, central_median, check_depth_values
from .errors import ReCaptureInputError
from .masks import hole_mask_from_valid
from .validation import check_frames, check_number

MIN_DEPTH = 1e-6
SNAP_PX = 1e-3
COVER_EPS = 1e-4
#: Footprints of pixels inside a smooth surface (every 4-neighbour within SAME_SURFACE relative depth)
#: reach this much further, in source pixels: first-order footprints of neighbours meet only up to
#: rounding and curvature (a bumpy ground seen from a 20-degree orbit), and depth quantised to 8 bits
#: leaves slivers between them that a pixel centre can fall into (1-px cracks). Pixels next to a depth edge keep their exact footprint, so
#: silhouettes do not grow and nothing shows through.
SMOOTH_REACH = 0.1
SAME_SURFACE = 0.05  # relative depth step between neighbours still taken as one surface when sampling colour
HOLE_FILLS = {"black": 0.0, "grey": 0.5}


@dataclass(frozen=True)
class WarpResult:
    """Output of :func:`warp_video`.

    anchor ``[F, H, W, 3]`` (holes filled), valid_mask / hole_mask ``[F, H, W]`` (float 0/1,
    summing to 1), depth ``[F, H, W]`` (target-camera z of the winning surface, 0 in holes),
    hole_ratio ``[F]`` (share of hole pixels per frame).
    """

    anchor: torch.Tensor
    valid_mask: torch.Tensor
    hole_mask: torch.Tensor
    depth: torch.Tensor
    hole_ratio: torch.Tensor


def flying_pixels(depth: torch.Tensor, edge_threshold: float, radius: int = 2) -> torch.Tensor:
    """Mask ``[F, H, W]`` (bool) of pixels floating inside a depth jump (see the module docstring).

    ``edge_threshold <= 0`` disables the filter.
    """
    flying = torch.zeros_like(depth, dtype=torch.bool)
    if edge_threshold <= 0:
        return flying
    for axis in (1, 2):  # rows (y), then columns (x)
        for k in range(1, radius + 1):
            size = depth.shape[axis]
            if size <= 2 * k:
                continue
            centre = depth.narrow(axis, k, size - 2 * k)
            before = depth.narrow(axis, 0, size - 2 * k)
            after = depth.narrow(axis, 2 * k, size - 2 * k)
            jump_before, jump_after = centre - before, after - centre
            inside = jump_before * jump_after > 0  # strictly monotonic through the centre
            small = torch.minimum(jump_before.abs(), jump_after.abs()) / centre
            hit = inside & (small > k * edge_threshold)
            flying.narrow(axis, k, size - 2 * k).logical_or_(hit)
    return flying


def _one_sided_difference(values: torch.Tensor, depth: torch.Tensor, axis: int) -> torch.Tensor:
    """d(values)/d(pixel) along ``axis`` of ``[H, W, ...]`` grids, from the side with the smaller depth jump."""
    forward = torch.zeros_like(values)
    backward = torch.zeros_like(values)
    jump_forward = torch.full_like(depth, float("inf"))
    jump_backward = torch.full_like(depth, float("inf"))
    n = values.shape[axis]
    diff = values.narrow(axis, 1, n - 1) - values.narrow(axis, 0, n - 1)
    depth_jump = (depth.narrow(axis, 1, n - 1) - depth.narrow(axis, 0, n - 1)).abs()
    forward.narrow(axis, 0, n - 1).copy_(diff)
    backward.narrow(axis, 1, n - 1).copy_(diff)
    jump_forward.narrow(axis, 0, n - 1).copy_(depth_jump)
    jump_backward.narrow(axis, 1, n - 1).copy_(depth_jump)
    use_forward = (jump_forward <= jump_backward)
    while use_forward.ndim < values.ndim:
        use_forward = use_forward[..., None]
    return torch.where(use_forward, forward, backward)


def _inside_smooth_surface(depth: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` bool: every 4-neighbour's depth is within SAME_SURFACE (relative) of the pixel's."""
    smooth = torch.ones_like(depth, dtype=torch.bool)
    for axis in (0, 1):
        n = depth.shape[axis]
        if n < 2:
            continue
        a, b = depth.narrow(axis, 0, n - 1), depth.narrow(axis, 1, n - 1)
        step = (b - a).abs() > SAME_SURFACE * torch.minimum(a, b)
        smooth.narrow(axis, 0, n - 1).logical_and_(~step)
        smooth.narrow(axis, 1, n - 1).logical_and_(~step)
    return smooth


def _bilinear_same_surface(image: torch.Tensor, depth: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                           reference_depth: torch.Tensor) -> torch.Tensor:
    """Sample ``image [H, W, C]`` bilinearly at ``x, y [N]``, using only taps on the same surface.

    A tap whose depth differs from ``reference_depth [N]`` (the winning source pixel's) by more
    than SAME_SURFACE relative is left out and the other weights renormalised, so colours never
    blend across a depth edge. The winning pixel is always one of the four taps.
    """
    height, width, channels = image.shape
    # One row gather of [colour, depth] per tap (flat indices): far cheaper than 2-D fancy indexing.
    table = torch.cat([image.reshape(-1, channels), depth.reshape(-1, 1).to(image.dtype)], dim=1)
    x = x.clamp(0, width - 1)
    y = y.clamp(0, height - 1)
    x0 = x.floor().clamp(max=max(width - 2, 0))
    y0 = y.floor().clamp(max=max(height - 2, 0))
    ax, ay = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    x1 = (x0 + 1).clamp(max=width - 1)
    y1 = (y0 + 1).clamp(max=height - 1)
    taps = [(y0 * width + x0, (1 - ax) * (1 - ay)), (y0 * width + x1, ax * (1 - ay)),
            (y1 * width + x0, (1 - ax) * ay), (y1 * width + x1, ax * ay)]
    total = torch.zeros(x.shape[0], channels, dtype=image.dtype, device=image.device)
    weight_sum = torch.zeros(x.shape[0], dtype=image.dtype, device=image.device)
    for flat, weight in taps:
        values = table.index_select(0, flat)
        same = (values[:, channels] - reference_depth).abs() <= SAME_SURFACE * reference_depth
        weight = torch.where(same, weight, torch.zeros_like(weight))
        total += values[:, :channels] * weight[:, None]
        weight_sum += weight
    # Exact when one tap has all the weight: v * 1 / 1 == v.
    return total / weight_sum[:, None]


def splat_frame(colors: torch.Tensor, depth: torch.Tensor, keep: torch.Tensor, K_source: torch.Tensor,
                world_to_target: torch.Tensor, K_target: torch.Tensor, max_footprint: int = 4
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render one source frame into one target camera.

    Args:
        colors: ``[H, W, C]`` source image.
        depth: ``[H, W]`` positive source depth (z along the optical axis, scene units).
        keep: ``[H, W]`` bool, pixels allowed to render (e.g. not flying).
        K_source, K_target: ``[3, 3]`` pixel intrinsics (pixel centres at integer coordinates).
        world_to_target: ``[4, 4]`` source-camera to target-camera transform.
        max_footprint: largest footprint side in target pixels (extreme magnification is clamped).

    Returns:
        image ``[H, W, C]`` (zeros in holes), valid ``[H, W]`` bool, target depth ``[H, W]``.
    """
    height, width = depth.shape
    n = height * width
    dtype = depth.dtype
    points = depth_to_3d_v2(depth[None], K_source[None].to(dtype))[0]  # [H, W, 3] source camera
    points_t = transform_points(world_to_target[None].to(dtype), points.reshape(1, -1, 3))[0].reshape(height, width, 3)
    z = points_t[..., 2].reshape(-1)
    uv = project_points(points_t.reshape(-1, 3), K_target.to(dtype).expand(n, 3, 3)).reshape(height, width, 2)

    # Jacobian of source pixel (x, y) -> target pixel (u, v), and its inverse, as flat [N] entries.
    d_dx = _one_sided_difference(uv, depth, axis=1).reshape(n, 2)
    d_dy = _one_sided_difference(uv, depth, axis=0).reshape(n, 2)
    j00, j10, j01, j11 = d_dx[:, 0], d_dx[:, 1], d_dy[:, 0], d_dy[:, 1]
    det = j00 * j11 - j01 * j10
    u, v = uv[..., 0].reshape(-1), uv[..., 1].reshape(-1)
    usable = (keep.reshape(-1) & (depth.reshape(-1) > MIN_DEPTH) & (z > MIN_DEPTH) & torch.isfinite(u)
              & torch.isfinite(v) & (det.abs() > 1e-12))
    safe_det = torch.where(usable, det, torch.ones_like(det))
    a00, a01, a10, a11 = j11 / safe_det, -j01 / safe_det, -j10 / safe_det, j00 / safe_det  # J^-1
    reach = 0.5 + torch.where(_inside_smooth_surface(depth).reshape(-1), SMOOTH_REACH, COVER_EPS).to(dtype)  # [N], source px
    half_u = (reach * (j00.abs() + j01.abs())).clamp(max=max_footprint / 2.0)
    half_v = (reach * (j10.abs() + j11.abs())).clamp(max=max_footprint / 2.0)
    lo_u = torch.where(usable, torch.ceil(u - half_u - COVER_EPS), torch.zeros_like(u))  # first candidate centre
    lo_v = torch.where(usable, torch.ceil(v - half_v - COVER_EPS), torch.zeros_like(v))
    span_u = torch.where(usable, torch.floor(u + half_u + COVER_EPS) - lo_u + 1, torch.zeros_like(u))
    span_v = torch.where(usable, torch.floor(v + half_v + COVER_EPS) - lo_v + 1, torch.zeros_like(v))
    span = int(min(max(float(span_u.max()), float(span_v.max()), 1.0), max_footprint + 1)) if n else 1

    # Candidate id = offset id * N + point id (< 2**32); key = depth bits over candidate id.
    z_bits = torch.where(usable, z, torch.ones_like(z)).to(torch.float32).view(torch.int32).to(torch.int64) << 32
    empty = torch.iinfo(torch.int64).max
    best = torch.full((n + 1,), empty, dtype=torch.int64, device=depth.device)  # slot n swallows candidates that cover nothing
    point_ids = torch.arange(n, dtype=torch.int64, device=depth.device)

    def offset_to_source(du, dv, which):
        """Source-pixel offset of candidate centre (lo + (du, dv)) for the points ``which`` (None = all)."""
        pick = (lambda t: t) if which is None else (lambda t: t[which])
        du_px = pick(lo_u) + du - pick(u)
        dv_px = pick(lo_v) + dv - pick(v)
        return pick(a00) * du_px + pick(a01) * dv_px, pick(a10) * du_px + pick(a11) * dv_px

    for dv in range(span):
        for du in range(span):
            # Offsets 0 and 1 serve nearly every point: run them dense. Larger ones only for the
            # few points with large footprints, gathered.
            which = None if du < 2 and dv < 2 else torch.nonzero((span_u > du) & (span_v > dv)).squeeze(1)
            if which is not None and which.numel() == 0:
                continue
            pick = (lambda t: t) if which is None else (lambda t: t[which])
            sx, sy = offset_to_source(du, dv, which)
            cu, cv = pick(lo_u) + du, pick(lo_v) + dv
            covered = (pick(usable) & (sx.abs() <= pick(reach)) & (sy.abs() <= pick(reach))
                       & (cu >= 0) & (cu <= width - 1) & (cv >= 0) & (cv <= height - 1))
            pixel = torch.where(covered, cv.long() * width + cu.long(), n)
            key = torch.where(covered, pick(z_bits) | ((dv * span + du) * n + pick(point_ids)), empty)
            best.scatter_reduce_(0, pixel, key, reduce="amin", include_self=True)

    best = best[:n]
    valid = best != empty
    valid_index = torch.nonzero(valid).squeeze(1)
    candidate = best.index_select(0, valid_index) & 0xFFFFFFFF
    source = candidate % n
    offset_id = torch.div(candidate, n, rounding_mode="floor")
    du_w = (offset_id % span).to(dtype)
    dv_w = torch.div(offset_id, span, rounding_mode="floor").to(dtype)
    winner = torch.stack([lo_u, lo_v, u, v, a00, a01, a10, a11, z], dim=1).index_select(0, source)
    w_lo_u, w_lo_v, w_u, w_v, w00, w01, w10, w11, w_z = winner.unbind(1)
    du_px = w_lo_u + du_w - w_u
    dv_px = w_lo_v + dv_w - w_v
    sx = w00 * du_px + w01 * dv_px
    sy = w10 * du_px + w11 * dv_px
    sx = torch.where(sx.abs() < SNAP_PX, torch.zeros_like(sx), sx)
    sy = torch.where(sy.abs() < SNAP_PX, torch.zeros_like(sy), sy)
    sample_x = (source % width).to(dtype) + sx
    sample_y = torch.div(source, width, rounding_mode="floor").to(dtype) + sy

    image = torch.zeros(n, colors.shape[-1], dtype=colors.dtype, device=colors.device)
    image.index_copy_(0, valid_index, _bilinear_same_surface(colors, depth, sample_x, sample_y,
                                                             depth.reshape(-1).index_select(0, source)).to(colors.dtype))
    target_depth = torch.zeros(n, dtype=dtype, device=depth.device)
    target_depth.index_copy_(0, valid_index, w_z)
    return image.reshape(height, width, -1), valid.reshape(height, width), target_depth.reshape(height, width)


#: Default relative depth jump per pixel above which in-between ("flying") pixels are dropped.
EDGE_THRESHOLD = 0.05


def check_warp_inputs(frames: torch.Tensor, depth: torch.Tensor, trajectory: CameraTrajectory) -> None:
    """Everything PointCloudWarp needs, checked before any work."""
    check_frames(frames, "frames")
    if depth.shape[0] != frames.shape[0]:
        raise ReCaptureInputError("depth", f"has {depth.shape[0]} frames but frames has {frames.shape[0]}",
                                  "Estimate depth from the same video (same frame count).")
    if tuple(depth.shape[1:]) != tuple(frames.shape[1:3]):
        raise ReCaptureInputError("depth", f"is {depth.shape[2]}x{depth.shape[1]} but frames is {frames.shape[2]}x{frames.shape[1]}",
                                  "Resize the depth to the video's size.", hint="resize_depth")
    check_depth_values(depth)
    trajectory.check_frame_count(frames.shape[0])


def warp_video(frames: torch.Tensor, depth: torch.Tensor, trajectory: CameraTrajectory, *,
               edge_threshold: float = EDGE_THRESHOLD, hole_dilation: int = 0, hole_fill: str = "black",
               max_footprint: int = 4, device: torch.device | str = "cpu",
               progress: Callable[[int, int], None] | None = None,
               check_interrupt: Callable[[], None] | None = None) -> WarpResult:
    """Render every frame of a video from its target camera.

    Args:
        frames: IMAGE ``[F, H, W, 3]`` in 0..1.
        depth: ``[F, H, W]`` positive depth in scene units (z along the optical axis).
        trajectory: F target poses relative to the source camera of each frame.
        edge_threshold: relative depth jump per pixel above which in-between pixels are dropped (0 = off).
        hole_dilation: grow holes by this many pixels.
        hole_fill: what hole pixels of the anchor hold: "black" or "grey".
        device: where the geometry runs; results come back on the CPU.
        progress: called as ``progress(done, total)`` after every frame.
        check_interrupt: called before every frame; raises to stop.
    """
    check_warp_inputs(frames, depth, trajectory)
    if hole_fill not in HOLE_FILLS:
        raise ReCaptureInputError("hole_fill", f"unknown fill {hole_fill!r}", f"Choose one of: {', '.join(HOLE_FILLS)}.")
    num_frames, height, width = depth.shape
    K_source = trajectory.source_K(width, height).to(torch.float32)
    K_target = trajectory.target_K(width, height).to(torch.float32)
    world_to_target = invert_pose(trajectory.target_to_source).to(torch.float32)
    # Streamed: each frame is finished (holes grown, filled) into outputs allocated once, so memory is
    # the outputs plus one frame's working set, whatever the clip's length.
    anchor = torch.empty(num_frames, height, width, frames.shape[-1], dtype=torch.float32, device="cpu")
    hole_mask = torch.empty(num_frames, height, width, dtype=torch.float32, device="cpu")
    target_depth = torch.empty(num_frames, height, width, dtype=torch.float32, device="cpu")
    fill = HOLE_FILLS[hole_fill]
    for i in range(num_frames):
        if check_interrupt is not None:
            check_interrupt()
        d = depth[i].to(device=device, dtype=torch.float32)
        keep = ~flying_pixels(d[None], edge_threshold)[0]
        image, valid, z = splat_frame(
            frames[i].to(device=device, dtype=torch.float32), d, keep, K_source.to(device),
            world_to_target[i].to(device), K_target[i].to(device), max_footprint)
        holes = hole_mask_from_valid(valid[None].to(torch.float32), hole_dilation)[0]
        hole_mask[i] = holes.cpu()
        anchor[i] = image.masked_fill(holes[..., None] > 0, fill).cpu()
        target_depth[i] = (z * (1.0 - holes)).cpu()
        if progress is not None:
            progress(i + 1, num_frames)
    return WarpResult(anchor, 1.0 - hole_mask, hole_mask, target_depth, hole_mask.mean(dim=(1, 2)))


def feasibility_report(result: WarpResult, warn_above: float = 0.35) -> str:
    """Plain-language summary of how much of each anchor frame must be invented."""
    ratios = result.hole_ratio
    worst = int(ratios.argmax())
    lines = [f"anchor video: {ratios.numel()} frames, holes {float(ratios.mean()):.1%} on average, "
             f"{float(ratios.max()):.1%} at most (frame {worst})"]
    shown = ", ".join(f"{float(r):.1%}" for r in ratios[:50])
    lines.append(f"hole ratio per frame: {shown}{', ...' if ratios.numel() > 50 else ''}")
    if float(ratios.max()) > warn_above:
        lines.append(f"WARNING: more than {warn_above:.0%} of frame {worst} is hole; the diffusion stage has to invent "
                     "most of it. Try a smaller move, or MultiviewAnchor for large orbits.")
    return "\n".join(lines)


def anchor_from_depth(frames: torch.Tensor, depth: DepthMaps, trajectory: CameraTrajectory, *,
                      match_subject_distance: bool = True, **warp_options) -> WarpResult:
    """The anchor video of ReCapture's first stage from a DEPTH: every anchor node's one entry point.

    With ``match_subject_distance`` the trajectory's moves (in subject distances) are scaled to the
    depth's own subject distance (the median depth of the central region) first. ``warp_options``
    are :func:`warp_video`'s (edge threshold, holes, device, progress, interrupt); the inputs are
    checked there, before any frame is warped.
    """
    values = depth.as_depth()  # once: for disparity this inverts the whole clip
    if match_subject_distance:
        trajectory = trajectory.scaled_to_subject_distance(central_median(values))
    return warp_video(frames, values, trajectory, **warp_options)


def point_grid(image: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, max_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels of ``image [H, W, 3]`` on a regular grid of at most ``max_points`` as 3D points ``[N, 3]`` (the
    camera's OpenCV axes, lifted with ``depth [H, W]`` and pixel intrinsics ``K [3, 3]``) and their colours ``[N, 3]``."""
    height, width = depth.shape
    stride = max(1, math.ceil(math.sqrt(height * width / max_points)))
    points = depth_to_3d_v2(depth[None].to(torch.float32), K[None].to(torch.float32))[0]  # [H, W, 3]
    return points[::stride, ::stride].reshape(-1, 3), image[::stride, ::stride].reshape(-1, 3)


#: Longest side a preview renders at, and the largest it accepts.
PREVIEW_SIDE = 256
PREVIEW_MAX_SIDE = 1024


def preview_frame(frames: torch.Tensor, depth: torch.Tensor, trajectory: CameraTrajectory, frame: int = 0,
                  longest_side: int = PREVIEW_SIDE, *, match_subject_distance: bool = True,
                  edge_threshold: float = EDGE_THRESHOLD) -> WarpResult:
    """The anchor of one frame at reduced size: a quick look at a camera path before the whole clip runs.

    ``frames [F, H, W, 3]`` and positive ``depth [F, H, W]`` are the clip PointCloudWarp saw; the frame is
    scaled down (area) so its longest side is ``longest_side`` (never up), its depth by nearest sampling
    (blending depths across edges would invent surfaces), and warped with frame ``frame``'s camera of
    ``trajectory`` (scaled to the clip's subject distance as the anchor nodes do). At full size it is
    that frame of PointCloudWarp's anchor, to the bit.
    """
    check_warp_inputs(frames, depth, trajectory)
    num_frames, height, width = depth.shape
    check_number(frame, "frame", 0, num_frames - 1, integer=True)
    check_number(longest_side, "size", 16, PREVIEW_MAX_SIDE, integer=True)
    if match_subject_distance:
        trajectory = trajectory.scaled_to_subject_distance(central_median(depth))
    camera = replace(trajectory, target_to_source=trajectory.target_to_source[frame:frame + 1],
                     target_intrinsics=trajectory.target_intrinsics[frame:frame + 1])
    image, values = frames[frame:frame + 1], depth[frame:frame + 1]
    scale = min(1.0, longest_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2).float(), size=size, mode="area").permute(0, 2, 3, 1)
        values = torch.nn.functional.interpolate(values[:, None].float(), size=size, mode="nearest-exact")[:, 0]
    return warp_video(image.contiguous(), values.contiguous(), camera, edge_threshold=edge_threshold)
