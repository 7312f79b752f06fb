"""A picture of a trajectory: source and target cameras as frusta, from above and from the side.

Drawn with PIL (which ComfyUI already ships), so the user sees the path before any long work.
"""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont

from .trajectory import CameraTrajectory

_BACKGROUND = (24, 26, 30)
_GRID = (48, 52, 60)
_SOURCE = (235, 235, 235)
_PIVOT = (255, 80, 80)
_TEXT = (200, 200, 200)


def _frustum_corners(trajectory: CameraTrajectory, aspect: float, size: float) -> torch.Tensor:
    """Image-corner points ``[F, 4, 3]`` at depth ``size`` of each target camera, in source coordinates."""
    fx, fy, cx, cy = trajectory.target_intrinsics.unbind(-1)
    xs = torch.stack([(0 - cx) / fx, (1 - cx) / fx, (1 - cx) / fx, (0 - cx) / fx], -1)
    ys = torch.stack([(0 - cy) * aspect / fy, (0 - cy) * aspect / fy, (1 - cy) * aspect / fy, (1 - cy) * aspect / fy], -1)
    local = torch.stack([xs, ys, torch.ones_like(xs)], -1) * size  # [F, 4, 3] in camera coordinates
    R, t = trajectory.target_to_source[:, :3, :3], trajectory.target_to_source[:, :3, 3]
    return local @ R.transpose(1, 2) + t[:, None, :]


def _colour(i: int, n: int) -> tuple[int, int, int]:
    a = i / max(n - 1, 1)
    return (int(70 + 185 * a), int(140 + 30 * a), int(255 - 200 * a))  # blue -> orange


def render_preview(trajectory: CameraTrajectory, width: int = 960, height: int = 480, max_frusta: int = 12) -> torch.Tensor:
    """IMAGE ``[1, height, width, 3]``: left panel top view (x right, z up), right panel side view (z right, y down)."""
    image_w, image_h = trajectory.image_size or (16, 9)
    aspect = image_h / image_w
    d = trajectory.subject_distance
    source = CameraTrajectory.static(1, trajectory.source_intrinsics, subject_distance=d)
    size = 0.15 * d
    centres = trajectory.target_to_source[:, :3, 3]
    corners = _frustum_corners(trajectory, aspect, size)
    source_corners = _frustum_corners(source, aspect, size)[0]
    pivot = torch.tensor([0.0, 0.0, d], dtype=torch.float64)
    every = torch.linspace(0, trajectory.num_frames - 1, min(max_frusta, trajectory.num_frames)).round().long().unique()

    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    panel_w = width // 2
    everything = torch.cat([centres, corners.reshape(-1, 3), source_corners, pivot[None], torch.zeros(1, 3, dtype=torch.float64)])

    for panel, (axis_a, axis_b, flip_b, title) in enumerate([(0, 2, True, "top view (x right, forward up)"),
                                                            (2, 1, False, "side view (forward right, y down)")]):
        left = panel * panel_w
        a, b = everything[:, axis_a], everything[:, axis_b]
        span = max(float(a.max() - a.min()), float(b.max() - b.min()), 1e-6) * 1.25
        mid_a, mid_b = float(a.max() + a.min()) / 2, float(b.max() + b.min()) / 2
        scale = (min(panel_w, height - 30) - 20) / span

        def to_px(point: torch.Tensor) -> tuple[float, float]:
            u = left + panel_w / 2 + (float(point[axis_a]) - mid_a) * scale
            v_offset = (float(point[axis_b]) - mid_b) * scale
            v = 15 + (height - 15) / 2 + (-v_offset if flip_b else v_offset)
            return (u, v)

        if panel:
            draw.line([(left, 0), (left, height)], fill=_GRID, width=1)
        draw.text((left + 8, 6), title, fill=_TEXT, font=font)

        def frustum(centre, quad, colour, line_width):
            pts = [to_px(p) for p in quad]
            c = to_px(centre)
            for p in pts:
                draw.line([c, p], fill=colour, width=line_width)
            draw.line(pts + [pts[0]], fill=colour, width=line_width)

        path = [to_px(c) for c in centres]
        if len(path) > 1:
            draw.line(path, fill=(120, 120, 140), width=1)
        for k, i in enumerate(every.tolist()):
            frustum(centres[i], corners[i], _colour(k, len(every)), 1)
        frustum(torch.zeros(3, dtype=torch.float64), source_corners, _SOURCE, 2)  # on top: always visible
        px, py = to_px(pivot)
        draw.line([(px - 5, py - 5), (px + 5, py + 5)], fill=_PIVOT, width=2)
        draw.line([(px - 5, py + 5), (px + 5, py - 5)], fill=_PIVOT, width=2)

    draw.text((8, height - 16), "white: source camera   blue to orange: target cameras, first to last   red x: pivot (subject)",
              fill=_TEXT, font=font)
    pixels = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).reshape(height, width, 3)
    return (pixels.to(torch.float32) / 255.0)[None]
