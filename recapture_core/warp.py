"""Point-cloud warping: per-frame depth -> points -> the target camera, with an exact z-buffer.

Stage 1 of ReCapture. For every frame, each source pixel is lifted to a 3D point with its depth,
moved into the target camera and projected (:func:`project_rows`: kornia's unproject -> transform
-> project chain folded into one homography and a parallax vector, tested against kornia). The
splat is hand-written, because kornia has none:

* **Footprints.** A source pixel is a small square of surface, not a point. Its image in the
  target is, to first order, the parallelogram ``J @ [-0.5, 0.5]^2`` around its projection, with
  ``J`` the Jacobian of the warp (finite differences of the projected grid: next to an edge from
  the side of the smaller depth jump, so they never straddle it; between neighbours of one surface
  from the side of the longer step, so a quantised depth step cannot open a gap). A target pixel
  is covered when its centre lies inside that parallelogram. Footprints of one surface tile it
  without gaps, so a camera that moves closer leaves no cracks, and a surface never grows beyond
  its own pixels towards an edge, so background does not show through foreground.
* **Silhouettes of curved surfaces.** At a depth edge the near surface ends somewhere between two
  pixel centres. Where it recedes faster and faster towards the edge (the rim of a ball, the side
  of a cylinder, seen at a grazing angle) it ends at its limb, found from its last depth samples
  (:func:`_limb`: the circle through them in the plane of the camera centre and the image line,
  exact for a ball; then smoothed along the silhouette, :func:`_smooth_limbs`, which averages out
  much of the rounding of depth saved in 8 bits): its edge pixel's footprint reaches exactly there,
  to where the limb projects in the target (a grazing sliver stretches far more than its inner
  neighbours tell), and the farther pixel's footprint starts there. Both end on the silhouette's
  tangent, not on the pixel's axis (a silhouette runs slanted through the pixels): the near one on
  the tangent of the limb's projection in the target, the far one on the tangent in the source
  (:func:`_silhouette_tangents`). Elsewhere (a box's face) both reach halfway, as the pixel squares do.
* **Exact z-buffer.** Every (target pixel, candidate) pair becomes one int64 key: the float32
  bits of the candidate's depth (ordered like the depths, as they are positive) over its source
  point's index. ``scatter_reduce(..., "amin")`` keeps the nearest candidate of every pixel; ties
  go to the lower index, so the result is deterministic. No Python loop over points or pixels:
  the loops run over frames, over bands of rows (on the CPU, see BAND_POINTS) and over the few
  footprint offsets.
* **Colour by backward refinement.** The winner's colour is the source image sampled
  bilinearly at ``p + J^-1 (c - u)``: the source position that lands exactly on the target pixel
  centre ``c``. Positions within 1e-3 px of a pixel centre snap to it, so an identity trajectory
  copies the input bit-exactly.
* **Flying pixels.** Depth from a network (or resized depth) blends foreground and background at
  edges; such pixels float between the two and smear into streaks. A pixel whose depth lies
  strictly between its neighbours at distance k (k = 1, 2) along x or y, with both relative
  jumps above ``k * edge_threshold``, is dropped and leaves a hole. Pixels on either side of a
  clean step are kept, as are surfaces sloping less than ``edge_threshold`` per pixel, the last
  pixels of a surface seen at a grazing angle (its steps grow towards the edge as a rim's do, and
  the jump beyond dwarfs them) and slivers of a middle surface three pixels or more across.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from kornia.geometry.depth import depth_to_3d_v2

from .camera.poses import invert_pose
from .camera.trajectory import CameraTrajectory
from .depth import DepthMaps, central_median, check_depth_values
from .errors import ReCaptureInputError
from .masks import hole_mask_from_valid
from .validation import check_frames, check_number

MIN_DEPTH = 1e-6
SNAP_PX = 1e-3
COVER_EPS = 1e-4
#: Footprints reach this much further (in source pixels) along an axis where both neighbours are on the
#: same surface (within SAME_SURFACE relative depth): first-order footprints of neighbours meet only up
#: to rounding and curvature (a bumpy ground seen from a 20-degree orbit), and depth quantised to 8 bits
#: leaves slivers between them that a pixel centre can fall into (1-px cracks). Per axis, so a pixel
#: below a box's edge still closes the slivers beside it. Towards a depth edge the footprint stays
#: exact, so silhouettes do not grow and nothing shows through.
SMOOTH_REACH = 0.1
SAME_SURFACE = 0.05  # relative depth step between neighbours still taken as one surface when sampling colour
#: A curved surface seen at a grazing angle (the rim of a ball, the side of a cylinder) steepens towards its
#: silhouette like the square root of the distance to it: its last depth step before the silhouette is at
#: most 1 + sqrt(2) = 2.41 times the step before (sampled anywhere, at any distance k). A pixel whose near-side
#: step grows at most this much over the step before is taken as that surface's, not as a blend of two.
GRAZING_GROWTH = 3.0
#: ... and only where the jump on its far side is at least this many times its near-side step: a silhouette,
#: not a ramp (a blend spread over several pixels has steps alike on both sides).
EDGE_DOMINANCE = 2.0
#: How far outside the gap to the next pixel centre (pixels) a fitted limb may fall and still be taken
#: (clamped into the gap): depth saved in 8 bits moves it by about this much.
LIMB_SLACK = 0.1
#: Least last step (relative to its depth) of a surface towards a silhouette for a limb to be fitted: the
#: rims of balls and cylinders step 1-10% there; a face seen nearly head-on steps by rounding noise.
LIMB_MIN_STEP = 0.005
#: Least reach of a footprint towards a silhouette (source pixels): a pixel always covers its own centre.
MIN_EXTENT = 0.05
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

    A pixel strictly between its neighbours at distance k is flying when both jumps exceed
    ``k * edge_threshold`` (relative), unless it is the last pixel of the surface on its near side
    seen at a grazing angle (:func:`_leads_up_to`) or, for k > 1, both its next neighbours are on its
    own surface. ``edge_threshold <= 0`` disables the filter.
    """
    flying = torch.zeros_like(depth, dtype=torch.bool)
    if edge_threshold <= 0:
        return flying
    values = depth.reshape(-1)
    for axis in (1, 2):  # rows (y), then columns (x)
        stride = depth.shape[2] if axis == 1 else 1
        for k in range(1, radius + 1):
            size = depth.shape[axis]
            if size <= 2 * k:
                continue
            step = depth.narrow(axis, k, size - k) - depth.narrow(axis, 0, size - k)  # d[i + k] - d[i]
            jump_before, jump_after = step.narrow(axis, 0, size - 2 * k), step.narrow(axis, k, size - 2 * k)
            inside = jump_before * jump_after > 0  # strictly monotonic through the centre
            magnitude = step.abs()
            smaller = torch.minimum(magnitude.narrow(axis, 0, size - 2 * k), magnitude.narrow(axis, k, size - 2 * k))
            hit = inside & (smaller > (k * edge_threshold) * depth.narrow(axis, k, size - 2 * k))
            candidates = torch.nonzero(hit)  # few: only pixels inside a jump
            if candidates.numel():
                position = candidates[:, axis] + k  # along the axis, in the whole map
                frame, row, column = candidates.unbind(1)
                centre = (frame * depth.shape[1] + row + (k if axis == 1 else 0)) * depth.shape[2] + column + (k if axis == 2 else 0)
                surface = _leads_up_to(values, centre, position, size, k * stride, k)
                if k > 1:
                    # Both next neighbours on its own surface: a sliver of a middle surface at least three
                    # pixels across (a ball partly hidden by a nearer one), not a block of blended pixels.
                    here = values.index_select(0, centre)
                    tolerance = edge_threshold * here
                    surface |= (((values.index_select(0, centre - stride) - here).abs() <= tolerance)
                                & ((values.index_select(0, centre + stride) - here).abs() <= tolerance))
                hit[tuple(candidates[surface].T)] = False
            flying.narrow(axis, k, size - 2 * k).logical_or_(hit)
    return flying


def _leads_up_to(values: torch.Tensor, centre: torch.Tensor, position: torch.Tensor, size: int, stride: int,
                 k: int) -> torch.Tensor:
    """``[N]`` bool: the pixels at flat ``centre`` (``position`` along an axis of ``size`` pixels, neighbours
    ``stride`` apart in ``values``) continue the surface on their near side.

    The near side is the neighbour with the smaller depth step ``a``. The pixel belongs to that surface
    when the surface leads up to it: the step before, ``a2``, goes the same way with ``a <= GRAZING_GROWTH
    * a2``, and the jump on the far side is at least ``EDGE_DOMINANCE * a``: a curved surface seen at a
    grazing angle. A pixel that blends two surfaces jumps off a flat or gently sloping one (``a2`` near 0)
    or sits midway (both jumps alike).
    """
    def at(offset: int) -> torch.Tensor:
        return values.index_select(0, (centre + offset * stride).clamp(0, values.numel() - 1))

    before2, before, here, after, after2 = at(-2), at(-1), at(0), at(1), at(2)
    step_before, step_after = here - before, after - here
    near_is_before = step_before.abs() <= step_after.abs()
    near_step = torch.where(near_is_before, step_before, step_after)
    far_step = torch.where(near_is_before, step_after, step_before)
    previous = torch.where(near_is_before, before - before2, after2 - after)
    available = torch.where(near_is_before, position >= 2 * k, position + 2 * k <= size - 1)
    return (available & (previous * near_step > 0) & (near_step.abs() <= GRAZING_GROWTH * previous.abs())
            & (far_step.abs() >= EDGE_DOMINANCE * near_step.abs()))


def _one_sided_difference(values: torch.Tensor, jump: torch.Tensor, smooth: torch.Tensor, dim: int) -> torch.Tensor:
    """d(values)/d(pixel) along ``dim`` of ``values [2, h, w]`` (projected u, v), from one side.

    Where both neighbours are on the same surface (``smooth [h, w]``) the side with the longer step
    in the target, so a footprint reaches halfway to both neighbours even when a quantised depth
    step stretches one gap; elsewhere the side with the smaller depth step (``jump``: absolute depth
    steps between neighbours, one shorter along ``dim``), so a footprint never spans an edge. The
    first and last pixel take their only side; a single pixel has no difference (0).
    """
    n = values.shape[dim]
    if n < 2:
        return torch.zeros_like(values)
    diff = values.diff(dim=dim)  # diff[i] = values[i + 1] - values[i]: forward at i, backward at i + 1
    out = torch.empty_like(values)
    out.narrow(dim, 0, 1).copy_(diff.narrow(dim, 0, 1))
    out.narrow(dim, n - 1, 1).copy_(diff.narrow(dim, n - 2, 1))
    if n > 2:
        axis = dim - 1  # of the [h, w] planes
        length = diff.square().sum(dim=0)
        forward_is_longer = length.narrow(axis, 1, n - 2) >= length.narrow(axis, 0, n - 2)
        forward_is_flatter = jump.narrow(axis, 1, n - 2) <= jump.narrow(axis, 0, n - 2)
        forward = torch.where(smooth.narrow(axis, 1, n - 2), forward_is_longer, forward_is_flatter)
        torch.where(forward, diff.narrow(dim, 1, n - 2), diff.narrow(dim, 0, n - 2), out=out.narrow(dim, 1, n - 2))
    return out


def _inside_smooth_surface(depth: torch.Tensor, jump_x: torch.Tensor, jump_y: torch.Tensor
                           ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``[2, h, w]`` bool: both neighbours along x (plane 0) / along y (plane 1) have a depth within
    SAME_SURFACE (relative) of the pixel's; and the depth edges themselves: ``edge_x [h, w - 1]`` /
    ``edge_y [h - 1, w]``, True between neighbours on different surfaces.

    ``jump_x [h, w - 1]`` / ``jump_y [h - 1, w]``: absolute depth steps between neighbours.
    """
    smooth = torch.ones(2, *depth.shape, dtype=torch.bool, device=depth.device)
    edges = []
    for plane, dim, jump in ((0, 1, jump_x), (1, 0, jump_y)):
        n = depth.shape[dim]
        step = jump > SAME_SURFACE * torch.minimum(depth.narrow(dim, 0, n - 1), depth.narrow(dim, 1, n - 1))
        edges.append(step)
        if n < 2:
            continue
        smooth[plane].narrow(dim, 0, n - 1).logical_and_(~step)
        smooth[plane].narrow(dim, 1, n - 1).logical_and_(~step)
    return smooth, (edges[0], edges[1])


def _limb(z0: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, s0: torch.Tensor, pitch: torch.Tensor,
          across: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where a surface that recedes towards a depth edge turns away from the camera (its limb).

    ``z0, z1, z2`` ``[N]``: the depths of the edge pixel and of its two inner neighbours along an image
    row or column; ``s0``: the edge pixel's normalised image coordinate along that line (``(x - cx) / fx``
    for a row), ``pitch``: the normalised step of one pixel outwards (``+-1 / fx``), ``across``: the line's
    normalised coordinate across it (``(y - cy) / fy`` for a row); no skew.

    The three samples are 3D points in the plane through the camera centre and the image line. The circle
    through them is the cut of a ball through that plane, exactly, whatever its size and distance; and
    the limb is where a ray from the camera centre touches that circle. (A parabola through the samples
    in image position against depth, as this was first, puts the limb of a ball of 20 pixels' radius 0.17
    px short on average, 0.07-0.16 px for larger ones: enough to lose 6% of the thin crescents a dolly
    opens beside small balls.) An upright cylinder's cut by a tilted row plane is an ellipse barely off
    that circle (0.004 px). Returns whether the surface recedes faster and faster and turns within a pixel
    beyond the edge pixel (within LIMB_SLACK), the limb's distance beyond it in pixels (clamped to 0..1)
    and the surface's depth there minus the edge pixel's.
    """
    dtype = z0.dtype
    z0, z1, z2, s0, pitch, across = (t.double() for t in (z0, z1, z2, s0, pitch, across))
    last_step, step_before = z0 - z1, z1 - z2
    receding = (step_before > 0) & (last_step > step_before)
    # In-plane coordinates: a along the line's axis, b along (0, across, 1) / q: a sample at image
    # coordinate s and depth z is z * (s, q), and an in-plane point (a, b) is seen at s = q a / b, depth b / q.
    q = (1.0 + across * across).sqrt()
    a0, b0 = z0 * s0, z0 * q
    # The circle's centre relative to sample 0, from the two chords to samples 1 and 2.
    a1, b1 = z1 * (s0 - pitch) - a0, (z1 - z0) * q
    a2, b2 = z2 * (s0 - 2 * pitch) - a0, (z2 - z0) * q
    cross = 2 * (a1 * b2 - b1 * a2)
    cross = torch.where(receding & (cross != 0), cross, torch.ones_like(cross))
    n1, n2 = a1 * a1 + b1 * b1, a2 * a2 + b2 * b2
    centre_a, centre_b = (b2 * n1 - b1 * n2) / cross, (a1 * n2 - a2 * n1) / cross
    radius2 = centre_a * centre_a + centre_b * centre_b
    centre_a, centre_b = centre_a + a0, centre_b + b0  # from the camera centre
    distance2 = centre_a * centre_a + centre_b * centre_b
    outside = distance2 > radius2
    # The two tangent points c (1 - r^2 / D) +- r sqrt(D - r^2) / D perp(c); the limb is the one further out.
    along = 1.0 - radius2 / distance2
    sideways = (radius2 * (distance2 - radius2).clamp(min=0.0)).sqrt() / distance2
    tangents = []
    for sign in (1.0, -1.0):
        ta, tb = centre_a * along - sign * sideways * centre_b, centre_b * along + sign * sideways * centre_a
        tangents.append((q * ta / tb, tb / q))  # image coordinate, depth
    (sa, za), (sb, zb) = tangents
    first = (sa - sb) * pitch > 0
    position = (torch.where(first, sa, sb) - s0) / pitch
    depth = torch.where(first, za, zb)
    valid = (receding & outside & torch.isfinite(position) & (position >= -LIMB_SLACK)
             & (position <= 1 + LIMB_SLACK))
    limb = position.nan_to_num(0.5).clamp(0.0, 1.0)
    # A limb taken into the gap from beyond it: where the ray there meets the circle's near side.
    s = s0 + pitch * limb
    dot = s * centre_a + q * centre_b
    norm = s * s + q * q
    inside = (dot * dot - norm * (distance2 - radius2)).clamp(min=0.0)
    depth = torch.where(position > limb, (dot - inside.sqrt()) / norm, depth)
    offset = (depth - z0).nan_to_num(0.0).clamp(min=0.0)
    return valid, limb.to(dtype), torch.minimum(offset, GRAZING_GROWTH * last_step).to(dtype)


class _Silhouettes(NamedTuple):
    """Footprint sides that stop where a curved surface turns away inside the gap to a farther one.

    ``point``/``axis``/``side``/``extent`` ``[k]``: the footprint of band point ``point`` reaches
    ``extent`` source pixels along ``axis`` (0 = x, 1 = y) towards lower (side 0) or higher (side 1)
    coordinates, ``widen [k]`` further where its end is slanted (see ``normal``; the near pixels' follows from
    ``limb_normal``). The near pixel's entries come first, ``limbs`` of them, with ``limb [limbs]``: where the
    limb is along that axis (source pixels beyond the pixel) and ``limb_uv [2, limbs]``: where it projects
    in the target, which its footprint's secant reaches, and ``limb_normal [2, limbs]``: the footprint ends on
    the line through it with this normal (target pixels, pointing away from the pixel; 0 for none).
    ``normal [2, k]`` and ``offset [k]``: the far pixels' half-planes ``normal . s <= offset`` (``s``: source
    pixels from the pixel, along x and y) on their side of the silhouette's tangent (normal 0 and offset inf
    where there is none, and for the near pixels).
    """

    point: torch.Tensor
    axis: torch.Tensor
    side: torch.Tensor
    extent: torch.Tensor
    widen: torch.Tensor
    limbs: int
    limb: torch.Tensor
    limb_uv: torch.Tensor
    limb_normal: torch.Tensor
    normal: torch.Tensor
    offset: torch.Tensor


#: Crossings of a silhouette within this many pixels (rows and columns) of one give its tangent there.
TANGENT_WINDOW = 2
#: Reach across the silhouette's axis over which a slanted silhouette widens a footprint's axial reach.
LATERAL_REACH = 0.5 + SMOOTH_REACH


def _crossing_neighbours(crossing: torch.Tensor, near: torch.Tensor, near_depth: torch.Tensor, direction: torch.Tensor,
                         height: int, width: int, radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs ``(query [p], other [p])`` of silhouette crossings ``[2, k]`` (see :func:`_silhouette_tangents`)
    of one near surface within ``radius`` pixels of each other (each crossing is among its own), and
    ``offset [2, p]``: the other's crossing minus the query's."""
    k, device = near.shape[0], near.device
    # The crossings by direction and near pixel, in a map padded by the window so that no look-up leaves it.
    pad = radius
    padded = width + 2 * pad
    cells = (height + 2 * pad) * padded
    row = torch.div(near, width, rounding_mode="floor")
    cell = (row + pad) * padded + (near - row * width) + pad
    grid = torch.full((4 * cells,), -1, dtype=torch.int32, device=device)
    grid[direction * cells + cell] = torch.arange(k, dtype=torch.int32, device=device)
    span = torch.arange(-pad, pad + 1, device=device)
    window = (span[:, None] * padded + span).reshape(-1)
    window = (torch.arange(4, device=device)[:, None] * cells + window).reshape(-1)  # [4 w]
    found = grid.take(cell[:, None] + window).view(-1)  # [k * 4 w]: the crossings around each, -1 for none
    pairs = torch.nonzero(found >= 0).squeeze(1)
    query, other = torch.div(pairs, window.shape[0], rounding_mode="floor"), found.index_select(0, pairs).long()
    # Of the same near surface and within the radius.
    offset = crossing.index_select(1, other) - crossing.index_select(1, query)
    depth = near_depth.index_select(0, query)
    keep = torch.nonzero(((near_depth.index_select(0, other) - depth).abs() <= SAME_SURFACE * depth)
                         & (offset.square().sum(0) <= (pad + 0.5) ** 2)).squeeze(1)
    return query.index_select(0, keep), other.index_select(0, keep), offset.index_select(1, keep)


def _silhouette_tangents(crossing: torch.Tensor, near: torch.Tensor, near_depth: torch.Tensor, direction: torch.Tensor,
                         height: int, width: int, *curves: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Unit tangents ``[2, k]`` of silhouettes at their crossings ``[2, k]`` (x, y, source pixels) of the
    segments between ``near [k]`` pixels (flat index in an ``[height, width]`` map, depth ``near_depth``) and
    their farther neighbours (``direction [k]``: 0..3 for -x, +x, -y, +y), and of the ``curves [2, k]`` that
    follow the crossings (where their limbs project in the target); and whether they were found.

    A silhouette crosses the segments between pixel centres about once a pixel; those of one near surface
    within TANGENT_WINDOW pixels lie on an arc of it, and the arc's principal direction is its tangent at
    the middle (a ball of 11 pixels' radius sags 0.2 px over that window, evenly on both sides).
    """
    k, device = near.shape[0], near.device
    query, other, offset = _crossing_neighbours(crossing, near, near_depth, direction, height, width, TANGENT_WINDOW)
    count = torch.zeros(k, dtype=crossing.dtype, device=device).index_add_(0, query, torch.ones_like(query, dtype=crossing.dtype))
    tangents, ok = [], count >= 3
    for curve in (crossing, *curves):
        p = offset if curve is crossing else curve.index_select(1, other) - curve.index_select(1, query)  # about its own
        sums = torch.zeros(5, k, dtype=curve.dtype, device=device)
        sums.index_add_(1, query, torch.stack([p[0], p[1], p[0] * p[0], p[1] * p[1], p[0] * p[1]]))
        mean_x, mean_y = sums[0] / count, sums[1] / count
        xx, yy, xy = sums[2] - count * mean_x * mean_x, sums[3] - count * mean_y * mean_y, sums[4] - count * mean_x * mean_y
        angle = 0.5 * torch.atan2(2 * xy, xx - yy)
        # An arc, not a cluster: spread along one direction.
        trace, det = xx + yy, xx * yy - xy * xy
        ok &= det <= 0.1 * trace * trace
        tangents.append(torch.stack([angle.cos(), angle.sin()]))
    return tangents, ok


#: Crossings of a silhouette within this many pixels of one smooth its limb (:func:`_smooth_limbs`), weighted
#: by a Gaussian of this width (pixels).
LIMB_WINDOW = 4
LIMB_SIGMA = 3.0
#: Least crossings in that window for a smoothing fit (three coefficients per curve).
LIMB_MIN_CROSSINGS = 5


def _smooth_limbs(crossing: torch.Tensor, limb_depth: torch.Tensor, tangent: torch.Tensor, has_tangent: torch.Tensor,
                  axis_unit: torch.Tensor, neighbours: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """How far each limb crossing ``[2, k]`` moves along its pair's axis (``axis_unit [2, k]``, +x or +y:
    source pixels, ``[k]``) and how much its depth ``limb_depth [k]`` changes (``[k]``) to lie on the
    silhouette's smooth curve through its neighbours (``neighbours``: :func:`_crossing_neighbours` within
    LIMB_WINDOW). ``tangent [2, k]``: the silhouette's tangent there; 0 and 0 where there is none.

    Each limb is fitted from the three depth samples of one row or column (:func:`_limb`). Depth saved in
    8 bits moves such a fit by a tenth to half a pixel and a few hundredths of its depth, differently at
    each crossing (the rim passes through the pixels at every sub-pixel offset, so the rounding falls
    differently each time), while the limb itself is a smooth curve with a smooth depth along it. A
    weighted least-squares parabola through the crossings around one (offset across the tangent, and
    limb depth, against position along it) averages the rounding out and keeps the curve (a ball of 11
    pixels' radius departs from its parabola by 0.02 px within the window). Limbs fitted to exact depth
    move by 0.002 px on average (0.04 at most). A cylinder's side seen straight up the image crosses every
    row at the same offset: its rounding is the same at each and stays.
    """
    query, other, offset = neighbours
    k, device = crossing.shape[1], crossing.device
    t = tangent.double()
    normal = torch.stack([-t[1], t[0]])
    along = (offset.double() * t.index_select(1, query)).sum(0)  # [p]: neighbour's position along the tangent
    across = (offset.double() * normal.index_select(1, query)).sum(0)  # ... and its offset across it
    rise = (limb_depth.index_select(0, other) - limb_depth.index_select(0, query)).double()
    weight = torch.exp(-0.5 * offset.double().square().sum(0) / LIMB_SIGMA ** 2)
    powers = torch.stack([weight * along ** power for power in range(5)])  # [5, p]
    moments = torch.zeros(5, k, dtype=torch.float64, device=device).index_add_(1, query, powers)
    count = torch.zeros(k, dtype=torch.float64, device=device).index_add_(0, query, torch.ones_like(along))
    normal_matrix = torch.stack([moments[i:i + 3] for i in range(3)]).permute(2, 0, 1)  # [k, 3, 3]
    normal_matrix = normal_matrix + 1e-9 * torch.eye(3, dtype=torch.float64, device=device)
    targets = torch.stack([torch.zeros(3, k, dtype=torch.float64, device=device).index_add_(1, query, powers[:3] * value)
                           for value in (across, rise)])
    coefficients = torch.linalg.solve(normal_matrix, targets.permute(2, 1, 0))  # [k, 3, 2]: across, rise
    (c0, c1, c2), (r0, r1, r2) = coefficients[..., 0].unbind(1), coefficients[..., 1].unbind(1)
    # Along the axis by m the crossing is at (m e.t, m e.n) in the tangent's frame: on the parabola where
    # m e.n = c0 + c1 m e.t + c2 (m e.t)^2; one step from the line's root is exact to 1e-4 px here.
    axis_along, axis_across = (axis_unit.double() * t).sum(0), (axis_unit.double() * normal).sum(0)
    slope = axis_across - c1 * axis_along
    fits = has_tangent & (count >= LIMB_MIN_CROSSINGS) & (slope.abs() > 0.3)
    slope = torch.where(fits, slope, torch.ones_like(slope))
    move = c0 / slope
    move = ((c0 + c2 * (move * axis_along).square()) / slope).clamp(-0.5, 0.5)
    position = move * axis_along
    change = r0 + r1 * position + r2 * position.square()
    move, change = move.masked_fill(~fits, 0.0), change.masked_fill(~fits, 0.0)
    return move.to(crossing.dtype), change.to(limb_depth.dtype)


def _silhouettes(d: torch.Tensor, edges: tuple[torch.Tensor, torch.Tensor], top: int, inner: slice,
                 homography: torch.Tensor, parallax: torch.Tensor, K_source: torch.Tensor) -> _Silhouettes | None:
    """The silhouettes of curved surfaces among the depth ``edges`` of ``d [h, W]`` (source rows ``top ..``),
    for the points of rows ``inner`` of ``d`` (flattened): None when there is none. ``K_source [3, 3]``: the
    source camera's pixel intrinsics, for the limb fits.

    At an edge the near surface ends somewhere between the two pixel centres. Where it turns away
    from the camera (:func:`_limb`), it ends at its limb: the near pixel's footprint reaches the limb
    (in the target, exactly where the limb projects: a surface seen at a grazing angle stretches far
    more there than its inner neighbours tell) and the far pixel's footprint, behind, starts there.
    A silhouette runs slanted through the pixels, so both footprints end on its tangent there
    (:func:`_silhouette_tangents`), a line through the limb, not on the pixel's axis: an axis-aligned end
    overshoots it on one side of the pixel and falls short on the other, which at a diagonal rim under a
    dolly (the limb pixels stretch several pixels in the target) covers the holes beside it.
    Elsewhere (a box's face, a blend) each reaches halfway, as without this.
    """
    height, width = d.shape
    values = d.reshape(-1)
    K = K_source.double()
    found = []
    for axis, edge in enumerate(edges):
        stride, size = (1, width) if axis == 0 else (width, height)
        pairs = torch.nonzero(edge)  # [k, 2]: (row, column) of the lower pixel of each pair
        # The band's own pairs (a pair across rows touches the band when either of its rows is in it) and
        # those within SILHOUETTE_ROWS rows, whose crossings give the smoothed limbs and tangents.
        first_row = inner.start - SILHOUETTE_ROWS - (1 if axis == 1 else 0)
        pairs = pairs[(pairs[:, 0] >= first_row) & (pairs[:, 0] < inner.stop + SILHOUETTE_ROWS)]
        if pairs.numel() == 0:
            continue
        position = pairs[:, 1 - axis]
        lower = pairs[:, 0] * width + pairs[:, 1]
        upper = lower + stride
        near_is_lower = values[lower] < values[upper]
        near = torch.where(near_is_lower, lower, upper)
        outward = torch.where(near_is_lower, 1, -1)
        available = torch.where(near_is_lower, position >= 2, position + 3 <= size - 1)
        inner1 = (near - outward * stride).clamp(0, values.numel() - 1)
        inner2 = (near - 2 * outward * stride).clamp(0, values.numel() - 1)
        z0, z1, z2 = values[near], values[inner1], values[inner2]
        # A silhouette, not the next step of a steep surface: the jump dwarfs the surface's own step; and a
        # surface seen at a grazing angle, not a face-on one whose depth rounding happens to grow; receding
        # faster and faster (checked here too, so that only these few are fitted).
        candidate = (available & ((values[upper] - values[lower]).abs() >= EDGE_DOMINANCE * (z0 - z1))
                     & (z0 - z1 >= LIMB_MIN_STEP * z0) & (z1 - z2 > 0) & (z0 - z1 > z1 - z2))
        pick = torch.nonzero(candidate).squeeze(1)
        if pick.numel() == 0:
            continue
        near, outward, z0, z1, z2 = near[pick], outward[pick], z0[pick], z1[pick], z2[pick]
        # Normalised image coordinates of the edge pixel along the line and across it (no skew).
        row = torch.div(near, width, rounding_mode="floor")
        x_n = ((near - row * width).double() - K[0, 2]) / K[0, 0]
        y_n = ((row + top).double() - K[1, 2]) / K[1, 1]
        focal = K[0, 0] if axis == 0 else K[1, 1]
        valid, limb, depth_offset = _limb(z0, z1, z2, x_n if axis == 0 else y_n, outward / focal,
                                          y_n if axis == 0 else x_n)
        if not bool(valid.any()):
            continue
        pick = torch.nonzero(valid).squeeze(1)
        found.append((near[pick], outward[pick], limb[pick].clamp(MIN_EXTENT, 1.0 - MIN_EXTENT), depth_offset[pick],
                      torch.full_like(pick, axis)))
    if not found:
        return None
    near, outward, limb, depth_offset, axis = (torch.cat(parts) for parts in zip(*found))
    stride = torch.where(axis == 0, 1, width)
    far = near + outward * stride
    row = torch.div(near, width, rounding_mode="floor")
    x = (near - row * width).to(d.dtype)
    y = (row + top).to(d.dtype)  # source rows: the same arithmetic whatever the band
    along_x = axis == 0
    direction = 2 * axis + (outward > 0).long()

    def crossings(limb):
        step = outward * limb
        return torch.stack([x + torch.where(along_x, step, 0.0), y + torch.where(along_x, 0.0, step)])  # [2, k]

    crossing = crossings(limb)
    # Limbs smoothed along the silhouette (the crossings within SILHOUETTE_ROWS rows of the band's are in
    # hand, so a band smooths its own, and those its tangents take, as the whole frame does).
    (raw_tangent,), has_raw_tangent = _silhouette_tangents(crossing, near, values[near], direction, height, width)
    axis_unit = torch.stack([along_x, ~along_x]).to(d.dtype)
    neighbours = _crossing_neighbours(crossing, near, values[near], direction, height, width, LIMB_WINDOW)
    move, change = _smooth_limbs(crossing, values[near] + depth_offset, raw_tangent, has_raw_tangent, axis_unit,
                                 neighbours)
    limb = (limb + move * outward).clamp(MIN_EXTENT, 1.0 - MIN_EXTENT)
    depth_offset = (depth_offset + change).clamp(min=0.0)
    crossing = crossings(limb)
    # The limb in the source image, lifted with its depth and projected into the target; and the near pixel.
    def project(px, py, depth):
        moved = (homography[:, 0, None] * px + homography[:, 1, None] * py + homography[:, 2, None]) * depth
        moved = moved + parallax[:, None]
        return moved[:2] / moved[2]

    limb_uv = project(crossing[0], crossing[1], values[near] + depth_offset)
    (tangent, limb_tangent), has_tangent = _silhouette_tangents(crossing, near, values[near], direction, height, width,
                                                                limb_uv)
    # The outward normal of the silhouette (from the near surface to the far one) at its crossing.
    normal = torch.stack([-tangent[1], tangent[0]]).to(d.dtype)
    outward_axis = torch.stack([torch.where(along_x, outward, 0), torch.where(along_x, 0, outward)]).to(d.dtype)
    normal = torch.where((normal * outward_axis).sum(0) < 0, -normal, normal)
    normal_along = (normal * outward_axis).sum(0)  # > 0: the component along the pair's axis, outwards
    has_tangent &= normal_along > 0.05
    # Along its axis a footprint reaches as far as the slanted line does within its reach across it.
    widen = torch.where(has_tangent, (normal.abs().sum(0) - normal_along) / normal_along.clamp(min=0.05) * LATERAL_REACH,
                        0.0)
    # The far pixel keeps its side of the tangent through the crossing: -normal . s <= -normal . (crossing - far),
    # with crossing - far = crossing - near - the outward axis.
    far_offset = normal_along - (normal * (crossing - torch.stack([x, y]))).sum(0)
    no_plane = ~has_tangent
    normal = normal.masked_fill(no_plane, 0.0)
    far_offset = far_offset.masked_fill(no_plane, math.inf)
    # The near pixel ends where the limb projects in the target, along that curve's tangent there (the
    # stretch of a grazing surface bends the source's tangent far off it): its half-plane is set in
    # target pixels, turned towards where the pixel itself lands (its inner side).
    limb_normal = torch.stack([-limb_tangent[1], limb_tangent[0]]).to(d.dtype)
    towards_pixel = (limb_normal * (project(x, y, values[near]) - limb_uv)).sum(0)
    limb_normal = torch.where(towards_pixel > 0, -limb_normal, limb_normal).masked_fill(no_plane, 0.0)
    side = (outward > 0).to(torch.int64)

    first, last = inner.start * width, inner.stop * width
    keep_near = (near >= first) & (near < last)
    keep_far = (far >= first) & (far < last)
    both = lambda a, b: torch.cat([a[keep_near], b[keep_far]])  # noqa: E731
    return _Silhouettes(both(near - first, far - first), both(axis, axis), both(side, 1 - side),
                        both(limb, 1.0 - limb), both(torch.zeros_like(widen), widen), int(keep_near.sum()), limb[keep_near],
                        limb_uv[:, keep_near],
                        limb_normal[:, keep_near], torch.cat([torch.zeros_like(normal[:, keep_near]), -normal[:, keep_far]], dim=1),
                        both(torch.full_like(far_offset, math.inf), far_offset))


def _pixel_table(colors: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """``[H * W, C + 1]``: each pixel's colour channels and depth, so a bilinear tap is one row gather."""
    height, width, channels = colors.shape
    return torch.cat([colors, depth[..., None].to(colors.dtype)], dim=2).reshape(height * width, channels + 1)


def _bilinear_same_surface(pixels: torch.Tensor, width: int, x: torch.Tensor, y: torch.Tensor,
                           reference_depth: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Sample colours bilinearly at ``x, y [N]`` (source pixels), using only taps on the same surface.

    ``pixels`` is :func:`_pixel_table`'s ``[H * W, C + 1]``. A tap whose depth differs from
    ``reference_depth [N]`` (the winning source pixel's) by more than SAME_SURFACE relative is left
    out and the other weights renormalised, so colours never blend across a depth edge. Where none is on
    that surface, the colour is that of the winning pixel, ``own [N]`` (flat index). Returns ``[C, N]``.
    """
    count, planes = pixels.shape
    height, channels = count // width, planes - 1
    x = x.clamp(0, width - 1)
    y = y.clamp(0, height - 1)
    x0 = x.floor().clamp_(max=max(width - 2, 0))
    y0 = y.floor().clamp_(max=max(height - 2, 0))
    ax, ay = x - x0, y - y0
    top = y0.long() * width + x0.long()
    right, down = (1 if width > 1 else 0), (width if height > 1 else 0)
    bx, by = 1 - ax, 1 - ay
    tolerance = SAME_SURFACE * reference_depth
    taps = []  # (colour and depth rows, weight) of top left, top right, bottom left, bottom right
    for offset, weight in ((0, bx * by), (right, ax * by), (down, bx * ay), (down + right, ax * ay)):
        # A row gather (one cache line per sample), then arithmetic on its column views.
        rows = pixels.index_select(0, top + offset if offset else top).T
        weight.masked_fill_((rows[channels] - reference_depth).abs_() > tolerance, 0.0)
        taps.append((rows, weight))
    weight_sum = taps[0][1] + taps[1][1] + taps[2][1] + taps[3][1]
    colour = torch.empty(channels, x.shape[0], dtype=pixels.dtype, device=pixels.device)
    for c in range(channels):
        torch.mul(taps[0][0][c], taps[0][1], out=colour[c])
        for rows, weight in taps[1:]:
            colour[c].addcmul_(rows[c], weight)
    # Exact when one tap has all the weight: v * 1 + w * 0 + ... == v, and v / 1 == v.
    colour.div_(weight_sum)
    # No tap on the winner's surface (a position at the far end of a footprint stretched to a limb, or off a
    # sliver): the winner's own colour (``own [N]``: its pixel), not 0 / 0.
    lost = torch.nonzero(weight_sum == 0).squeeze(1)
    if lost.numel():
        colour.index_copy_(1, lost, pixels.index_select(0, own.index_select(0, lost))[:, :channels].T.to(colour.dtype))
    return colour


def _snap(coordinate: torch.Tensor) -> torch.Tensor:
    """Coordinates within SNAP_PX of a whole pixel become that pixel, so an identity warp copies exactly."""
    nearest = coordinate.round()
    return torch.where((coordinate - nearest).abs_() < SNAP_PX, nearest, coordinate)


def _splat_block(best: torch.Tensor, width: int, key: torch.Tensor, offset_u: torch.Tensor, offset_v: torch.Tensor,
                 lo_u: torch.Tensor, lo_v: torch.Tensor, inverse_jacobian: tuple, reach: torch.Tensor) -> None:
    """z-buffer the 2x2 candidate centres ``lo + {0, 1}^2`` of ``[m]`` points into ``best [H * W + 1]``.

    A centre c is covered when ``|J^-1 (c - p)|`` is within ``reach [2, m]`` (source x, source y);
    ``offset_u/v`` are ``lo - p``; points with a negative ``reach`` cover nothing (their ``lo`` may be
    anything).
    """
    a00, a01, a10, a11 = inverse_jacobian
    m = key.shape[0]
    source_offset = torch.empty(2, 4, m, dtype=offset_u.dtype, device=offset_u.device)  # [x|y, candidate, point]
    torch.add(a00 * offset_u, a01 * offset_v, out=source_offset[0, 0])
    torch.add(a10 * offset_u, a11 * offset_v, out=source_offset[1, 0])
    for axis, (step_right, step_down) in enumerate(((a00, a01), (a10, a11))):
        torch.add(source_offset[axis, 0], step_right, out=source_offset[axis, 1])
        torch.add(source_offset[axis, 0], step_down, out=source_offset[axis, 2])
        torch.add(source_offset[axis, 1], step_down, out=source_offset[axis, 3])
    source_offset.abs_()
    covered = (source_offset[0] <= reach[0]) & (source_offset[1] <= reach[1])  # [4, m]
    pixel = torch.where(reach[0] >= 0, lo_v * width + lo_u, 0.0).long()
    steps = torch.tensor([0, 1, width, width + 1], dtype=torch.int64, device=pixel.device)
    # Uncovered candidates carry the empty key, which amin ignores: no need to send them elsewhere.
    candidates = torch.where(covered, key, torch.iinfo(torch.int64).max)
    best.scatter_reduce_(0, (pixel + steps[:, None]).reshape(-1), candidates.reshape(-1), reduce="amin", include_self=True)


def _splat_spans(best: torch.Tensor, width: int, height: int, key: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 lo_u: torch.Tensor, lo_v: torch.Tensor, span_u: torch.Tensor, span_v: torch.Tensor,
                 inverse_jacobian: tuple, reach: torch.Tensor, max_footprint: int, planes: torch.Tensor | None = None
                 ) -> None:
    """z-buffer every candidate centre ``lo + (du, dv)`` within ``span`` of ``[m]`` points, checking the frame's bounds
    (and the half-planes ``planes [2, 3, m]``, :class:`_BandFootprints`)."""
    a00, a01, a10, a11 = inverse_jacobian
    n = height * width
    span = int(min(max(float(span_u.max()), float(span_v.max()), 1.0), max_footprint + 1))
    for dv in range(span):
        for du in range(span):
            cu, cv = lo_u + du, lo_v + dv
            du_px, dv_px = cu - u, cv - v
            sx = a00 * du_px + a01 * dv_px
            sy = a10 * du_px + a11 * dv_px
            covered = ((sx.abs() <= reach[0]) & (sy.abs() <= reach[1]) & (cu >= 0) & (cu <= width - 1) & (cv >= 0)
                       & (cv <= height - 1) & (span_u > du) & (span_v > dv))
            if planes is not None:
                for n_x, n_y, c in planes:
                    covered &= n_x * sx + n_y * sy <= c
            pixel = torch.where(covered, cv * width + cu, n).long()
            best.scatter_reduce_(0, pixel, torch.where(covered, key, torch.iinfo(torch.int64).max), reduce="amin",
                                 include_self=True)


def homography_and_parallax(K_source: torch.Tensor, world_to_target: torch.Tensor, K_target: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``H_inf = K_t R K_s^-1`` ``[3, 3]`` and ``K_t t`` ``[3]`` (float64) of a source -> target camera move.

    A source pixel (x, y) with depth d lands at ``d * H_inf @ [x, y, 1] + K_t @ t`` in homogeneous
    target pixels: lift (``K_s^-1``), move (R, t), project (``K_t``) in one matrix and one vector.
    """
    rotation, translation = world_to_target[:3, :3].double(), world_to_target[:3, 3].double()
    K_target = K_target.double()
    return K_target @ rotation @ torch.linalg.inv(K_source.double()), K_target @ translation


def project_rows(depth: torch.Tensor, first_row: int, homography: torch.Tensor, parallax: torch.Tensor) -> torch.Tensor:
    """``[3, h, W]``: ``z * (u, v, 1)`` in the target camera of source rows ``first_row ..`` with ``depth [h, W]``.

    The same arithmetic as kornia's ``depth_to_3d_v2`` -> ``transform_points`` -> ``project_points``
    (the tests check it against that chain), written as three fused passes over a band of rows
    because the chain makes nine over ``[N, 3]`` points and takes the pixel grid whole.
    """
    height, width = depth.shape
    columns = torch.arange(width, dtype=depth.dtype, device=depth.device)
    rows = torch.arange(first_row, first_row + height, dtype=depth.dtype, device=depth.device)
    ray = homography[:, 0, None, None] * columns + (homography[:, 1, None] * rows + homography[:, 2, None])[:, :, None]
    return ray.mul_(depth).add_(parallax[:, None, None])


#: Source points per band of rows on the CPU. The warp runs band by band so that its few dozen working
#: tensors stay in the core's cache: measured on a 2-core Xeon, an elementwise operation over a whole
#: 576x1024 frame costs 5-15x more per element than over 64 K elements (fresh pages and cache misses
#: for every 2.4 MB temporary). A GPU takes the whole frame at once.
BAND_POINTS = 1 << 16
#: Rows above and below a band that its stencils read (the flying-pixel filter reaches 4: its distance-2
#: stencil and the step before; silhouettes 9: limb fits 3 rows deep, smoothed over LIMB_WINDOW rows around,
#: their tangents from TANGENT_WINDOW rows around; differences 1).
SILHOUETTE_ROWS = TANGENT_WINDOW + max(TANGENT_WINDOW, LIMB_WINDOW)
HALO_ROWS = 3 + SILHOUETTE_ROWS


def _rows_per_band(height: int, width: int, device: torch.device) -> int:
    return height if device.type != "cpu" else max(1, min(height, BAND_POINTS // max(width, 1)))


class _BandFootprints(NamedTuple):
    """Footprints of the ``[m]`` source points of a band of rows (flattened), in target pixels.

    u, v, z: projection and target depth; depth: source depth; inverse_jacobian: J^-1 as four ``[m]``
    entries; centre_u, centre_v: the footprint's centre (the projection, but where a footprint reaches
    further to one side, towards a silhouette); reach ``[2, m]``: footprint half-size in source pixels
    along source x and y (-1: renders nothing); lo_u, lo_v: first candidate pixel centre; span_u,
    span_v: candidate centres per axis; usable: the point renders at all; planes ``[2, 3, m]`` or None: up
    to two half-planes ``n . t <= c`` of source offsets from the centre that a footprint ends on besides its
    reach (a silhouette's tangent, :func:`_silhouettes`; ``c`` inf for none).
    """

    u: torch.Tensor
    v: torch.Tensor
    centre_u: torch.Tensor
    centre_v: torch.Tensor
    z: torch.Tensor
    depth: torch.Tensor
    inverse_jacobian: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    reach: torch.Tensor
    lo_u: torch.Tensor
    lo_v: torch.Tensor
    span_u: torch.Tensor
    span_v: torch.Tensor
    usable: torch.Tensor
    planes: torch.Tensor | None


def _band_footprints(depth: torch.Tensor, row0: int, row1: int, homography: torch.Tensor, parallax: torch.Tensor,
                     edge_threshold: float, max_footprint: int, K_source: torch.Tensor) -> _BandFootprints:
    """The footprints of source rows ``row0 .. row1 - 1`` of ``depth [H, W]`` (stencils read HALO_ROWS beyond);
    ``K_source [3, 3]``: the source camera's pixel intrinsics, for the limb fits of curved silhouettes."""
    height = depth.shape[0]
    top, bottom = max(0, row0 - HALO_ROWS), min(height, row1 + HALO_ROWS)
    d = depth[top:bottom]  # [h, W] with halo
    target = project_rows(d, top, homography, parallax)  # [3, h, W]: z * (u, v, 1)
    z_all = target[2]
    uv = target[:2] / z_all  # [2, h, W]
    jump_x = d.diff(dim=1).abs_()
    jump_y = d.diff(dim=0).abs_()
    smooth, edges = _inside_smooth_surface(d, jump_x, jump_y)
    d_dx = _one_sided_difference(uv, jump_x, smooth[0], dim=2)
    d_dy = _one_sided_difference(uv, jump_y, smooth[1], dim=1)
    keep = ~flying_pixels(d[None], edge_threshold)[0]

    inner = slice(row0 - top, row1 - top)  # the band's own rows, flattened to [m] points
    flat = lambda t: t[..., inner, :].reshape(*t.shape[:-2], -1)  # noqa: E731
    (u, v), z, depth_here = flat(uv), flat(z_all), flat(d)
    (j00, j10), (j01, j11) = flat(d_dx), flat(d_dy)
    # Beyond half a pixel only towards neighbours of the same surface.
    reach = torch.where(flat(smooth), 0.5 + SMOOTH_REACH, 0.5 + COVER_EPS).to(d.dtype)
    centre_u, centre_v = u, v
    planes = None
    silhouettes = _silhouettes(d, edges, top, inner, homography, parallax, K_source)
    if silhouettes is not None:
        reach, centre, plain_centre, (j00, j10, j01, j11), planes = _reach_to_silhouettes(silhouettes, reach, u, v,
                                                                                           (j00, j10, j01, j11))
        centre_u, centre_v = centre
    det = j00 * j11 - j01 * j10
    usable = (flat(keep) & (depth_here > MIN_DEPTH) & (z > MIN_DEPTH) & torch.isfinite(u) & torch.isfinite(v)
              & (det.abs() > 1e-12))
    inverse_det = torch.where(usable, det.reciprocal(), torch.zeros_like(det))
    reach.masked_fill_(~usable, -1.0)
    half_u = reach[0] * j00.abs() + reach[1] * j01.abs()
    half_v = reach[0] * j10.abs() + reach[1] * j11.abs()
    window_u, window_v = centre_u, centre_v  # the candidate pixels lie around here
    if silhouettes is not None:
        window_u = torch.where(half_u > max_footprint / 2.0, plain_centre[0], centre_u)
        window_v = torch.where(half_v > max_footprint / 2.0, plain_centre[1], centre_v)
    half_u, half_v = half_u.clamp_(0, max_footprint / 2.0), half_v.clamp_(0, max_footprint / 2.0)
    u, v = u.masked_fill(~usable, 0.0), v.masked_fill(~usable, 0.0)
    if silhouettes is not None:
        centre_u, centre_v = centre_u.masked_fill(~usable, 0.0), centre_v.masked_fill(~usable, 0.0)
        window_u, window_v = window_u.masked_fill(~usable, 0.0), window_v.masked_fill(~usable, 0.0)
    else:
        centre_u, centre_v = window_u, window_v = u, v
    lo_u, lo_v = torch.ceil(window_u - half_u - COVER_EPS), torch.ceil(window_v - half_v - COVER_EPS)
    return _BandFootprints(u, v, centre_u, centre_v, z, depth_here,
                           (j11 * inverse_det, -j01 * inverse_det, -j10 * inverse_det, j00 * inverse_det), reach,
                           lo_u, lo_v, torch.floor(window_u + half_u + COVER_EPS) - lo_u + 1,
                           torch.floor(window_v + half_v + COVER_EPS) - lo_v + 1, usable, planes)


def _reach_to_silhouettes(silhouettes: _Silhouettes, reach: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                          jacobian: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple, torch.Tensor]:
    """Footprints that reach further to one side than the other (:func:`_silhouettes`), as centred ones.

    A footprint spans ``[-lower, higher]`` source pixels along each axis (``reach [2, m]`` on both sides
    where no silhouette is near); the cover test takes it as half-size ``(lower + higher) / 2`` around
    the image of its middle. A limb pixel's footprint runs, along the limb's axis, from where its inner
    side maps (the pixel's own Jacobian) to where the limb projects: its Jacobian column there becomes
    that secant. ``jacobian``: ``(du/dx, dv/dx, du/dy, dv/dy)`` ``[m]`` each. Returns the half-sizes
    ``[2, m]``, the centres ``[2, m]`` (u, v), the centres without the widening of slanted ends ``[2, m]``, the
    Jacobian and the half-planes ``[2, 3, m]``: per axis of the entries
    they come from, ``(n_x, n_y, c)`` of ``n . t <= c`` in the centred footprint's source offsets ``t``
    (``c`` inf for none; a point with two entries along one axis keeps neither).
    """
    point, axis, side, extent = silhouettes.point, silhouettes.axis, silhouettes.side, silhouettes.extent
    widen = silhouettes.widen.to(reach.dtype)
    reaches = torch.stack([reach, reach])  # [side, axis, m]
    reaches.index_put_((side, axis, point), extent.to(reach.dtype))
    columns = torch.stack(jacobian).reshape(2, 2, -1)  # [axis, u|v, m]
    touched = torch.unique(point)
    if silhouettes.limbs:
        limb_point, limb_axis = point[:silhouettes.limbs], axis[:silhouettes.limbs]
        outward = (side[:silhouettes.limbs] * 2 - 1).to(reach.dtype)
        limb = silhouettes.limb.to(reach.dtype)
        inner_reach = reaches[1 - side[:silhouettes.limbs], limb_axis, limb_point]
        column = columns[limb_axis, :, limb_point].T  # [2, l]
        inner_end = torch.stack([u[limb_point], v[limb_point]]) - outward * column * inner_reach
        secant = outward * (silhouettes.limb_uv.to(reach.dtype) - inner_end) / (limb + inner_reach)
        columns[limb_axis, :, limb_point] = secant.T
        # Where the pixel itself would map on the secant: the footprint is anchored at its inner end.
        anchor_shift = inner_end + outward * secant * inner_reach - torch.stack([u[limb_point], v[limb_point]])
        # The limb's line in the target, as a half-plane of source offsets s from the pixel (c = (u, v) + J s
        # on the secant's map): (J^T n) . s <= n . (limb_uv - (u, v)); along its axis the footprint reaches as
        # far as that line does within its reach across.
        limb_normal = silhouettes.limb_normal.to(reach.dtype)
        limb_plane = (columns[:, :, limb_point] * limb_normal[None]).sum(1)  # [axis, l]
        has_plane = limb_normal.abs().sum(0) > 0
        along = limb_plane[limb_axis, torch.arange(limb_axis.shape[0], device=limb_axis.device)] * outward
        across = limb_plane[1 - limb_axis, torch.arange(limb_axis.shape[0], device=limb_axis.device)].abs()
        has_plane &= along > 1e-6 * (along.abs() + across)
        widen = widen.clone()
        widen[:silhouettes.limbs] = torch.where(has_plane, across / along.clamp(min=1e-12) * LATERAL_REACH, 0.0)

    def centred(reaches):
        lower, higher = reaches[0][:, touched], reaches[1][:, touched]  # [axis, t]
        middle = (higher - lower) / 2
        shift = columns[0][:, touched] * middle[0] + columns[1][:, touched] * middle[1]  # [u|v, t]
        centre = torch.stack([u, v])
        centre[:, touched] += shift
        if silhouettes.limbs:
            centre.index_add_(1, limb_point, anchor_shift)
        return middle, centre

    # Footprints clamped to max_footprint keep the pixels around the middle of what they cover: the middle of
    # their box up to the limb (a slanted end, widened on one side and cut on the other, keeps it there).
    _, plain_centre = centred(reaches)
    reaches.index_put_((side, axis, point), torch.minimum(extent.to(reach.dtype) + widen, torch.ones_like(widen)))
    middle, centre = centred(reaches)
    # Half-planes, from the pixel's source offsets s to the centred footprint's t = s - middle.
    m = u.shape[0]
    planes = torch.zeros(2, 3, m, dtype=reach.dtype, device=reach.device)
    planes[:, 2] = math.inf
    normal = silhouettes.normal.to(reach.dtype)
    middles = torch.zeros(2, m, dtype=reach.dtype, device=reach.device)
    middles[:, touched] = middle
    offset = silhouettes.offset.to(reach.dtype) - (normal * middles[:, point]).sum(0)
    if silhouettes.limbs:
        # c = centre + J t: n . (centre + J t - limb_uv) <= 0.
        normal = normal.clone()
        normal[:, :silhouettes.limbs] = limb_plane
        limb_offset = (limb_normal * (silhouettes.limb_uv.to(reach.dtype) - centre[:, limb_point])).sum(0)
        offset[:silhouettes.limbs] = torch.where(has_plane, limb_offset, math.inf)
    single = torch.bincount(axis * m + point, minlength=2 * m)[axis * m + point] == 1
    single &= torch.isfinite(offset)
    slot, at = axis[single], point[single]
    planes[slot, 0, at] = normal[0, single]
    planes[slot, 1, at] = normal[1, single]
    planes[slot, 2, at] = offset[single]
    return (reaches[0] + reaches[1]) / 2, centre, plain_centre, tuple(columns.reshape(4, -1)), planes


def splat_frame(colors: torch.Tensor, depth: torch.Tensor, K_source: torch.Tensor, world_to_target: torch.Tensor,
                K_target: torch.Tensor, edge_threshold: float = 0.0, max_footprint: int = 4
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render one source frame into one target camera.

    Args:
        colors: ``[H, W, C]`` source image.
        depth: ``[H, W]`` positive source depth (z along the optical axis, scene units).
        K_source, K_target: ``[3, 3]`` pixel intrinsics (pixel centres at integer coordinates).
        world_to_target: ``[4, 4]`` source-camera to target-camera transform.
        edge_threshold: flying pixels (see :func:`flying_pixels`) are dropped; 0 keeps every pixel.
        max_footprint: largest footprint side in target pixels (extreme magnification is clamped).

    Returns:
        image ``[H, W, C]`` (zeros in holes), valid ``[H, W]`` bool, target depth ``[H, W]``.
    """
    height, width = depth.shape
    n = height * width
    dtype, device = depth.dtype, depth.device
    homography, parallax = (m.to(dtype) for m in homography_and_parallax(K_source, world_to_target, K_target))
    columns = torch.arange(width, dtype=dtype, device=device)

    # Per source point, what the colour pass needs if it wins: the affine map from target pixel centre
    # to source position (J^-1 and offset, per axis), its target z and its own depth.
    winner_table = torch.empty(n, 8, dtype=dtype, device=device)
    empty = torch.iinfo(torch.int64).max
    best = torch.full((n + 1,), empty, dtype=torch.int64, device=device)  # slot n swallows candidates that cover nothing
    band_rows = _rows_per_band(height, width, device)
    for row0 in range(0, height, band_rows):
        row1 = min(height, row0 + band_rows)
        band = _band_footprints(depth, row0, row1, homography, parallax, edge_threshold, max_footprint, K_source)
        u, v, z, lo_u, lo_v, span_u, span_v, reach = (band.u, band.v, band.z, band.lo_u, band.lo_v, band.span_u,
                                                        band.span_v, band.reach)
        centre_u, centre_v = band.centre_u, band.centre_v
        a00, a01, a10, a11 = band.inverse_jacobian
        first = row0 * width
        point_ids = torch.arange(first, first + u.numel(), dtype=torch.int64, device=device)
        # z-buffer key: the float32 bits of the depth (ordered like the depths, as they are positive)
        # over the point id, so ties go to the lower id and the result is deterministic.
        key_of_point = (z.masked_fill(~band.usable, 1.0).to(torch.float32).view(torch.int32).to(torch.int64) << 32) | point_ids
        # Nearly every point's candidates fit a 2x2 block of pixel centres inside the frame: those run
        # dense, all four at once. The rest (footprints near the border, or wider than two pixels) are
        # few and run gathered, over their whole span.
        in_block = (max_footprint >= 2) & ((span_u <= 2) & (span_v <= 2) & (lo_u >= 0) & (lo_u <= width - 2) & (lo_v >= 0)
                    & (lo_v <= height - 2))
        if band.planes is not None:  # footprints that end on a slanted silhouette: few, gathered
            in_block &= ~torch.isfinite(band.planes[:, 2]).any(0)
        if height > 1 and width > 1:
            _splat_block(best, width, key_of_point, lo_u - centre_u, lo_v - centre_v, lo_u, lo_v, (a00, a01, a10, a11),
                         reach.masked_fill(~in_block, -1.0))
        # Points whose every candidate lies outside the frame (moved out of view) need no work at all.
        in_view = (lo_u <= width - 1) & (lo_u + span_u >= 1) & (lo_v <= height - 1) & (lo_v + span_v >= 1)
        rest = torch.nonzero(band.usable & ~in_block & in_view).squeeze(1)
        if rest.numel():
            pick = lambda t: t.index_select(0, rest)  # noqa: E731
            _splat_spans(best, width, height, pick(key_of_point), pick(centre_u), pick(centre_v), pick(lo_u), pick(lo_v),
                         pick(span_u), pick(span_v), tuple(map(pick, (a00, a01, a10, a11))), reach.index_select(1, rest),
                         max_footprint, None if band.planes is None else band.planes.index_select(2, rest))
        # Source position of target centre c: p + J^-1 (c - (u, v)) = J^-1 c + (p - J^-1 (u, v)).
        source_x = columns.expand(row1 - row0, width).reshape(-1)
        source_y = torch.arange(row0, row1, dtype=dtype, device=device)[:, None].expand(row1 - row0, width).reshape(-1)
        torch.stack((a00, a01, source_x - (a00 * u + a01 * v), a10, a11, source_y - (a10 * u + a11 * v), z, band.depth),
                    dim=1, out=winner_table[first:first + u.numel()])

    return _colour_by_backward_refinement(colors, depth, best, winner_table, band_rows)


def _colour_by_backward_refinement(colors: torch.Tensor, depth: torch.Tensor, best: torch.Tensor,
                                   winner_table: torch.Tensor, band_rows: int
                                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image ``[H, W, C]``, valid ``[H, W]`` and target depth ``[H, W]`` from the z-buffer ``best [H * W + 1]``.

    Band by band over the target: the winner's source image sampled at ``p + J^-1 (c - u)``, the
    source position that lands exactly on the target pixel centre ``c`` (``winner_table [N, 8]``
    holds each source point's map from ``c`` to that position, its target z and its depth).
    """
    height, width = depth.shape
    n = height * width
    dtype, device = depth.dtype, depth.device
    empty = torch.iinfo(torch.int64).max
    pixels = _pixel_table(colors, depth)
    image = torch.zeros(colors.shape[-1], n, dtype=colors.dtype, device=device)
    target_depth = torch.zeros(n, dtype=dtype, device=device)
    valid = (best[:n] != empty).reshape(height, width)
    for row0 in range(0, height, band_rows):
        cells = torch.nonzero(valid[row0:row0 + band_rows])  # [k, 2]: row in band, column
        if cells.numel() == 0:
            continue
        target_v, target_u = (cells[:, 0] + row0), cells[:, 1]
        found = target_v * width + target_u
        source = best.index_select(0, found) & 0xFFFFFFFF
        a00, a01, offset_x, a10, a11, offset_y, w_z, reference = winner_table.index_select(0, source).T
        centre_u, centre_v = target_u.to(dtype), target_v.to(dtype)
        sample_x = _snap(torch.addcmul(torch.addcmul(offset_x, a00, centre_u), a01, centre_v))
        sample_y = _snap(torch.addcmul(torch.addcmul(offset_y, a10, centre_u), a11, centre_v))
        colour = _bilinear_same_surface(pixels, width, sample_x, sample_y, reference, source)
        image.index_copy_(1, found, colour.to(colors.dtype))
        target_depth.index_copy_(0, found, w_z)
    return image.reshape(-1, height, width).permute(1, 2, 0), valid, target_depth.reshape(height, width)


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
        image, valid, z = splat_frame(
            frames[i].to(device=device, dtype=torch.float32), depth[i].to(device=device, dtype=torch.float32),
            K_source.to(device), world_to_target[i].to(device), K_target[i].to(device), edge_threshold, max_footprint)
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
                      match_subject_distance: bool = True, subject_distance: float | None = None,
                      **warp_options) -> WarpResult:
    """The anchor video of ReCapture's first stage from a DEPTH: every anchor node's one entry point.

    With ``match_subject_distance`` the trajectory's moves (in subject distances) are scaled to the
    depth's own subject distance first: ``subject_distance`` when given (a chunk of a longer clip
    keeps its first chunk's), else the median depth of the central region. ``warp_options`` are
    :func:`warp_video`'s (edge threshold, holes, device, progress, interrupt); the inputs are
    checked there, before any frame is warped.
    """
    values = depth.as_depth()  # once: for disparity this inverts the whole clip
    if match_subject_distance:
        trajectory = trajectory.scaled_to_subject_distance(central_median(values) if subject_distance is None else subject_distance)
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
    camera = trajectory.window(frame, 1)
    image, values = frames[frame:frame + 1], depth[frame:frame + 1]
    scale = min(1.0, longest_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2).float(), size=size, mode="area").permute(0, 2, 3, 1)
        values = torch.nn.functional.interpolate(values[:, None].float(), size=size, mode="nearest-exact")[:, 0]
    return warp_video(image.contiguous(), values.contiguous(), camera, edge_threshold=edge_threshold)
