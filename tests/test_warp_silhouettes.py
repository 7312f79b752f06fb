"""Curved silhouettes (issue 28): balls and cylinders before slanted planes, against analytic truth.

The scenes are ray-cast exactly (recapture_core.synthetic's render and visible_from_source take any
scene with ``intersect`` and ``texture``): the source depth is exact at every pixel centre, and the
truth of a target view is which of its pixels show a surface point the source camera saw. A curved
silhouette runs through pixels at every sub-pixel offset and its last pixels see the surface at a
grazing angle, which the box scenes of tests/test_warp.py (silhouettes on pixel boundaries, seen
face-on) never do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from recapture_core.camera.presets import preset_trajectory
from recapture_core.camera.trajectory import CameraTrajectory
from recapture_core.depth import depth_from_image
from recapture_core.synthetic import render, visible_from_source
from recapture_core.warp import flying_pixels, warp_video
from test_warp import iou

W, H = 320, 240
NEAR, FAR = 0.5, 8.5  # the metric range the depth-map images are saved in


@dataclass(frozen=True)
class CurvedScene:
    """Balls ``(x, y, z, radius)`` and upright cylinders ``(x, z, radius)`` (axis along y, unbounded)
    before the plane ``z = plane_z + slope_x * x + slope_y * y`` (source camera coordinates, OpenCV axes)."""

    balls: tuple[tuple[float, float, float, float], ...]
    cylinders: tuple[tuple[float, float, float], ...]
    plane_z: float = 5.0
    slope_x: float = 0.3
    slope_y: float = -0.4

    def texture(self, points: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Smooth colour ``[N, 3]`` of surface points ``[N, 3]``; ``face`` 0 = plane, then balls, then cylinders."""
        x, y, z = points.unbind(-1)
        base = torch.stack([0.5 + 0.25 * torch.sin(2 * math.pi * x / 0.9) * torch.cos(2 * math.pi * y / 1.1),
                            0.5 + 0.25 * torch.cos(2 * math.pi * (x + z) / 1.3),
                            0.5 + 0.2 * torch.sin(2 * math.pi * (y - z) / 0.8)], -1)
        tint = torch.tensor([0.0, 0.15, -0.1, 0.1, -0.15, 0.05], dtype=points.dtype)
        return (base + tint[face % 6, None]).clamp(0, 1)

    def intersect(self, origin: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest hit ``[N]`` along rays ``origin + t * direction`` (inf for none) and the face hit ``[N]``."""
        dtype = direction.dtype
        normal = torch.tensor([-self.slope_x, -self.slope_y, 1.0], dtype=dtype)
        t_plane = (self.plane_z - origin @ normal) / (direction @ normal)
        best = torch.where(t_plane > 1e-9, t_plane, torch.full_like(t_plane, math.inf))
        face = torch.zeros(direction.shape[0], dtype=torch.long)
        # Each shape as |o + t d - c|^2 = r^2 over the coordinates it is round in: all three for a
        # ball, x and z for an upright cylinder.
        shapes = [((0, 1, 2), (x, y, z), r) for x, y, z, r in self.balls]
        shapes += [((0, 2), (x, z), r) for x, z, r in self.cylinders]
        for index, (axes, centre, radius) in enumerate(shapes, start=1):
            o = origin[list(axes)] - torch.tensor(centre, dtype=dtype)
            d = direction[:, list(axes)]
            a, b, c = (d * d).sum(-1), 2 * (d @ o), float(o @ o) - radius * radius
            discriminant = b * b - 4 * a * c
            t = (-b - discriminant.clamp(min=0).sqrt()) / (2 * a)
            closer = (discriminant >= 0) & (t > 1e-9) & (t < best)
            best = torch.where(closer, t, best)
            face = torch.where(closer, index, face)
        return best, face


SCENES = {
    # Balls of 11 to 47 pixels' radius at three depths and a cylinder, apart, before a slanted plane.
    "balls": CurvedScene(balls=((-0.55, -0.2, 2.6, 0.45), (0.55, 0.35, 3.4, 0.3), (0.35, -0.45, 2.0, 0.15)),
                         cylinders=((0.0, 3.0, 0.18),)),
    # Close and large: a ball partly hidden by a nearer one (a three-pixel sliver of it shows between
    # that one and the plane) and a thick cylinder.
    "close": CurvedScene(balls=((-0.5, 0.1, 1.4, 0.65), (0.55, -0.1, 2.4, 0.5)), cylinders=((0.9, 1.6, 0.5),)),
}
#: Moves of the camera around each scene's subject (the distance its presets are scaled to).
MOVES = {"dolly": ("dolly in", 0.3), "orbit": ("orbit left", 8.0), "truck": ("truck right", 0.15)}
#: The subject distance the moves are scaled to: the dolly stops short of the close scene's nearest ball.
SUBJECT_DISTANCE = {("close", "dolly"): 1.6}
PRECISIONS = {"float": None, "16-bit": 65535, "8-bit": 255}


def source_view(scene: CurvedScene, trajectory: CameraTrajectory, levels: int | None):
    """The source frame ``[H, W, 3]`` and its depth ``[H, W]`` (float32): exact, or saved as a depth-map
    image in ``levels`` codes (metric, bright = near) and read back as Depth From Image reads it."""
    colour, depth, _ = render(scene, torch.eye(4, dtype=torch.float64), trajectory.source_K(W, H), W, H)
    if levels is None:
        return colour.float(), depth.float()
    grey = ((FAR - depth) / (FAR - NEAR) * levels).round() / levels
    image = grey[None, ..., None].expand(1, H, W, 3).float()
    return colour.float(), depth_from_image(image, "metric: near..far, bright = near", NEAR, FAR).as_depth()[0]


def holes_and_truth(scene: CurvedScene, trajectory: CameraTrajectory, levels: int | None):
    """The warp's hole mask of the last frame ``[H, W]`` and the truth: target pixels that show no surface
    point the source saw."""
    colour, depth = source_view(scene, trajectory, levels)
    frames = trajectory.num_frames
    result = warp_video(colour.expand(frames, H, W, 3), depth.expand(frames, H, W).contiguous(), trajectory)
    _, _, points = render(scene, trajectory.target_to_source[-1], trajectory.target_K(W, H)[-1], W, H)
    seen = visible_from_source(scene, points, trajectory.source_K(W, H), W, H)
    return result.hole_mask[-1] > 0, ~seen


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("scene", SCENES)
def test_a_static_camera_keeps_every_pixel_of_curved_silhouettes(scene, precision):
    # The last pixels before a ball's rim recede fast (5% of their depth per pixel here) and a sliver of
    # a half-hidden ball sits between two other depths: surfaces, not flying pixels.
    trajectory = CameraTrajectory.static(2)
    colour, depth = source_view(SCENES[scene], trajectory, PRECISIONS[precision])
    result = warp_video(colour.expand(2, H, W, 3), depth.expand(2, H, W).contiguous(), trajectory)
    assert int(result.hole_mask.sum()) == 0
    assert torch.equal(result.anchor, colour.expand(2, H, W, 3))


def test_grazing_pixels_of_a_rim_are_surface_and_blends_are_not():
    # A rim: the surface steepens towards it as a ball's does (its last step, 0.14, is 6% of its depth),
    # then the jump to the plane behind: kept.
    rim = torch.tensor([2.0, 2.02, 2.06, 2.12, 2.21, 2.35, 4.0, 4.0]).expand(1, 3, 8).contiguous()
    assert not flying_pixels(rim, 0.05)[0, 1].any()
    # A blend that jumps off a flat surface, the same step and jump: dropped.
    blend = torch.tensor([2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0]).expand(1, 3, 8).contiguous()
    assert flying_pixels(blend, 0.05)[0, 1, 4]
    # A ramp of blended pixels (steps alike on both sides) is dropped though its first steps grow.
    ramp = torch.tensor([2.0, 2.0, 2.1, 2.4, 2.9, 3.4, 3.9, 4.0, 4.0]).expand(1, 3, 9).contiguous()
    assert flying_pixels(ramp, 0.05)[0, 1, 3:6].all()


@pytest.mark.parametrize("precision", ["float", "16-bit"])
@pytest.mark.parametrize("scene, move", [("balls", "dolly"), ("balls", "orbit"), ("balls", "truck"), ("close", "dolly"),
                                         ("close", "orbit"), ("close", "truck")])
def test_holes_follow_curved_silhouettes(scene, move, precision):
    # Before the footprints stopped at the limbs, orbit and truck reached 0.970 and 0.975 on the balls,
    # the dolly 0.883 on the close scene (a whole column of the cylinder's rim missing). With limbs from a
    # parabola through the last samples (0.1-0.2 px short on balls of 11-47 px) and footprints ending on
    # the pixel's axis (at a diagonal rim the stretched limb pixels cover the holes beside it), the dolly
    # on the small balls reached 0.938.
    preset, amount = MOVES[move]
    trajectory = preset_trajectory(preset, amount, 2, subject_distance=SUBJECT_DISTANCE.get((scene, move), 3.0))
    holes, truth = holes_and_truth(SCENES[scene], trajectory, PRECISIONS[precision])
    assert int(truth.sum()) > 1000  # the move really opens holes beside the silhouettes
    assert iou(holes, truth) >= 0.98, iou(holes, truth)


#: IoU of the hole mask on depth saved in 8 bits (an open item of issue 28), measured with the parabola limbs
#: and axis-aligned footprint ends / with the circle limbs and slanted ends / with rims refitted when
#: dequantising / with limbs smoothed along the silhouette. Dequantising's local line fit smooths across a
#: rim's growing steps (the last samples before it 0.2-0.3 codes too deep) and a rim's last steps are 0.5-1
#: code there: limbs fitted to them land 0.1-0.5 px off. Refitting the rim (recapture_core.depth._refit_rims)
#: brings the two samples inside the edge pixel to 0.1 codes rms, the edge pixel's own stays near 0.3; the
#: rounding falls differently at each crossing of a ball's rim, and a parabola through the limbs around each
#: (recapture_core.warp._smooth_limbs) averages part of it out. What is left: the thin crescents a dolly opens
#: beside small balls (limbs fitted to exact samples reach only 0.981 there), and the close scene's cylinder,
#: whose side crosses every row at the same sub-pixel offset (nothing to average): the hole column beside it
#: lies 0.22 px inside where the limb lands, and the limb fitted to 8-bit samples (0.1 px short, 0.6 codes
#: too deep) lands 0.54 px short (one column of 240 pixels: 0.89 or 0.99).
EIGHT_BIT = {("balls", "dolly"): (0.897, 0.901, 0.908, 0.936), ("balls", "orbit"): (0.983, 0.984, 0.984, 0.988),
             ("balls", "truck"): (0.974, 0.975, 0.979, 0.985), ("close", "dolly"): (0.888, 0.888, 0.893, 0.894),
             ("close", "orbit"): (0.973, 0.973, 0.987, 0.987), ("close", "truck"): (0.980, 0.979, 0.98003, 0.981)}


def _eight_bit_case(case):
    """A case that met the goal with room to spare is a test; one at the goal by a pixel or two may go either
    way with another CPU's rounding (not strict); the rest are expected to fail until the open item closes."""
    measured = EIGHT_BIT[case][-1]
    if measured >= 0.982:
        return case
    return pytest.param(*case, marks=pytest.mark.xfail(
        reason="open item of issue 28: limbs from depth saved in 8 bits", strict=measured < 0.98))


@pytest.mark.parametrize("scene, move", [_eight_bit_case(case) for case in EIGHT_BIT])
def test_holes_follow_curved_silhouettes_in_8_bit_depth(scene, move):
    preset, amount = MOVES[move]
    trajectory = preset_trajectory(preset, amount, 2, subject_distance=SUBJECT_DISTANCE.get((scene, move), 3.0))
    holes, truth = holes_and_truth(SCENES[scene], trajectory, PRECISIONS["8-bit"])
    assert int(truth.sum()) > 1000
    print(f"{scene} {move} 8-bit: IoU {iou(holes, truth):.4f} (measured {EIGHT_BIT[scene, move]})")
    assert iou(holes, truth) >= 0.98, iou(holes, truth)


@pytest.mark.parametrize("precision", ["float", "8-bit"])
@pytest.mark.parametrize("scene, move", [("balls", "dolly"), ("close", "orbit"), ("balls", "truck")])
def test_bands_of_rows_render_curved_silhouettes_as_the_whole_frame_does(monkeypatch, scene, move, precision):
    # Limb fits, their smoothing and the silhouette tangents (windows of crossings around each) and their
    # footprints cross band borders; the colour of a footprint stretched to a limb is a real colour (no tap
    # on its surface: 0 / 0). In 8 bits the smoothing moves limbs by up to half a pixel.
    import recapture_core.warp as warp

    preset, amount = MOVES[move]
    trajectory = preset_trajectory(preset, amount, 2, subject_distance=SUBJECT_DISTANCE.get((scene, move), 3.0))
    colour, depth = source_view(SCENES[scene], trajectory, PRECISIONS[precision])
    frames, depths = colour.expand(2, H, W, 3), depth.expand(2, H, W).contiguous()
    monkeypatch.setattr(warp, "BAND_POINTS", 1 << 30)
    whole = warp_video(frames, depths, trajectory)
    monkeypatch.setattr(warp, "BAND_POINTS", 7 * W)
    banded = warp_video(frames, depths, trajectory)
    assert not torch.isnan(whole.anchor).any()
    assert torch.equal(banded.valid_mask, whole.valid_mask)
    assert torch.equal(banded.anchor, whole.anchor)
    assert torch.equal(banded.depth, whole.depth)


def _disk_crossings(radius: float, jitter: float, generator: torch.Generator | None):
    """The crossings of a disk's rim (centre off the pixel grid) with the segments between pixel centres, as
    recapture_core.warp._silhouettes makes them: near pixel (flat index in a 64x64 map), direction (0..3 for
    -x, +x, -y, +y), limb (pixels beyond the near pixel, ``jitter`` px of uniform noise added) and the exact
    one; with a limb depth of 2 + 0.01 y (noise of 0.002 where jittered) and its exact value."""
    width, cx, cy = 64, 31.37, 32.81
    near, direction, limb, exact = [], [], [], []
    for line in range(64):  # a row (axis 0), then a column (axis 1)
        for axis in (0, 1):
            half = radius * radius - (line - (cy if axis == 0 else cx)) ** 2
            if half <= 0:
                continue
            for sign in (1, -1):
                rim = (cx if axis == 0 else cy) + sign * math.sqrt(half)
                pixel = math.floor(rim) if sign > 0 else math.ceil(rim)
                if abs(rim - pixel) < 0.05:
                    continue  # the warp keeps limbs at least MIN_EXTENT from a pixel centre
                near.append(line * width + pixel if axis == 0 else pixel * width + line)
                direction.append(2 * axis + (sign > 0))
                exact.append(abs(rim - pixel))
    near, direction, exact = torch.tensor(near), torch.tensor(direction), torch.tensor(exact, dtype=torch.float64)
    noise = (torch.rand(exact.shape, generator=generator, dtype=torch.float64) - 0.5) * 2 if generator else 0 * exact
    limb = exact + jitter * noise
    return width, near, direction, limb, exact, noise


@pytest.mark.parametrize("radius", [11.0, 25.0])
def test_limbs_smoothed_along_a_silhouette_average_out_rounding_and_keep_the_curve(radius):
    from recapture_core.warp import LIMB_WINDOW, _crossing_neighbours, _silhouette_tangents, _smooth_limbs

    def smoothed(limb, noise_depth):
        outward = torch.where(direction % 2 == 1, 1.0, -1.0).double()
        along_x = direction < 2
        x, y = (near % width).double(), torch.div(near, width, rounding_mode="floor").double()
        step = outward * limb
        crossing = torch.stack([x + torch.where(along_x, step, 0.0), y + torch.where(along_x, 0.0, step)])
        near_depth = torch.full(near.shape, 2.0, dtype=torch.float64)
        limb_depth = 2.0 + 0.01 * crossing[1] + noise_depth
        (tangent,), has_tangent = _silhouette_tangents(crossing, near, near_depth, direction, 64, width)
        move, change = _smooth_limbs(crossing, limb_depth, tangent, has_tangent, torch.stack([along_x, ~along_x]).double(),
                                     _crossing_neighbours(crossing, near, near_depth, direction, 64, width, LIMB_WINDOW))
        assert bool(has_tangent.all())
        new_limb = limb + move * outward
        new_crossing_y = torch.where(along_x, y, y + outward * new_limb)
        return new_limb, limb_depth + change - (2.0 + 0.01 * new_crossing_y)

    width, near, direction, _, exact, _ = _disk_crossings(radius, 0.0, None)
    limb, depth_error = smoothed(exact, 0.0)
    # Exact limbs stay on the curve: a parabola through a rim of 11 px radius is off it by hundredths.
    assert float((limb - exact).abs().max()) < 0.05
    assert float(depth_error.abs().max()) < 1e-4
    # Rounding of up to 0.3 px and 0.002 in depth, different at each crossing: averaged down to about half.
    width, near, direction, noisy, exact, noise = _disk_crossings(radius, 0.3, torch.Generator().manual_seed(7))
    limb, depth_error = smoothed(noisy, 0.002 * noise.flip(0))
    rms = lambda t: float(t.square().mean().sqrt())  # noqa: E731
    assert rms(limb - exact) < 0.6 * rms(noisy - exact)
    assert rms(depth_error) < 0.6 * rms(0.002 * noise)
