"""A procedural scene with exact geometry: analytic ray casting of a box in front of a textured wall.

Used as the renderer of truth in the tests (colour, z-depth and, for a moved camera, which pixels
show surface the source camera never saw, all computed from the scene description alone,
independently of the warp) and to make the bundled sample clip with its exact depth.
Pixel centres sit at integer coordinates, as in kornia's depth_to_3d_v2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BoxScene:
    wall_z: float = 5.0
    box_min: tuple[float, float, float] = (-0.6, -0.5, 2.5)
    box_max: tuple[float, float, float] = (0.4, 0.5, 3.2)

    def texture(self, points: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Smooth colour ``[N, 3]`` of surface points ``[N, 3]``; ``face`` 0 = wall, 1.. = box faces."""
        x, y, z = points.unbind(-1)
        base = torch.stack([
            0.5 + 0.25 * torch.sin(2 * math.pi * x / 0.9) * torch.cos(2 * math.pi * y / 1.1),
            0.5 + 0.25 * torch.cos(2 * math.pi * (x + z) / 1.3),
            0.5 + 0.2 * torch.sin(2 * math.pi * (y - z) / 0.8),
        ], -1)
        tint = torch.tensor([[0.0, 0.0, 0.0], [0.15, -0.1, 0.0], [-0.1, 0.15, 0.0], [0.0, -0.1, 0.15],
                             [0.1, 0.1, -0.15], [-0.15, 0.0, 0.1], [0.05, -0.15, 0.1]], dtype=points.dtype)
        return (base + tint[face]).clamp(0, 1)

    def intersect(self, origin: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest hit distance ``[N]`` along rays (inf for none) and the face hit ``[N]``."""
        n = direction.shape[0]
        best = torch.full((n,), float("inf"), dtype=direction.dtype)
        face = torch.zeros(n, dtype=torch.long)
        t_wall = (self.wall_z - origin[2]) / direction[:, 2]
        hit = t_wall > 1e-9
        best = torch.where(hit, t_wall, best)
        lo = torch.tensor(self.box_min, dtype=direction.dtype)
        hi = torch.tensor(self.box_max, dtype=direction.dtype)
        for axis in range(3):
            for side, plane in ((0, lo[axis]), (1, hi[axis])):
                t = (plane - origin[axis]) / direction[:, axis]
                p = origin + t[:, None] * direction
                others = [a for a in range(3) if a != axis]
                inside = torch.ones(n, dtype=torch.bool)
                for a in others:
                    inside &= (p[:, a] >= lo[a]) & (p[:, a] <= hi[a])
                closer = inside & (t > 1e-9) & (t < best)
                best = torch.where(closer, t, best)
                face = torch.where(closer, torch.full_like(face, 1 + 2 * axis + side), face)
        return best, face


def pixel_rays(K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Camera-frame ray directions ``[H*W, 3]`` with z = 1 through every pixel centre."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    x = (u.reshape(-1) - K[0, 2]) / K[0, 0]
    y = (v.reshape(-1) - K[1, 2]) / K[1, 1]
    return torch.stack([x, y, torch.ones_like(x)], -1)


def render(scene: BoxScene, pose: torch.Tensor, K: torch.Tensor, width: int, height: int):
    """Colour ``[H, W, 3]``, z-depth ``[H, W]`` and world hit points ``[H, W, 3]`` for a camera
    with camera-to-world ``pose [4, 4]`` (world = the source camera, OpenCV axes)."""
    rays_cam = pixel_rays(K, width, height)
    R, origin = pose[:3, :3].to(torch.float64), pose[:3, 3].to(torch.float64)
    rays = rays_cam @ R.T
    t, face = scene.intersect(origin, rays)
    points = origin + t[:, None] * rays
    colour = scene.texture(points, face)
    return colour.reshape(height, width, 3), t.reshape(height, width), points.reshape(height, width, 3)


def visible_from_source(scene: BoxScene, points: torch.Tensor, K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Whether world points ``[H, W, 3]`` are seen by the source camera (identity pose) ``[H, W]``.

    Seen = inside the source image (pixel squares around integer centres) and not hidden by a
    nearer surface along the source ray.
    """
    flat = points.reshape(-1, 3)
    u = K[0, 0] * flat[:, 0] / flat[:, 2] + K[0, 2]
    v = K[1, 1] * flat[:, 1] / flat[:, 2] + K[1, 2]
    inside = (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5) & (flat[:, 2] > 0)
    direction = flat / flat[:, 2:3]
    t, _ = scene.intersect(torch.zeros(3, dtype=torch.float64), direction)
    unoccluded = t >= flat[:, 2] * (1 - 1e-9)
    return (inside & unoccluded).reshape(points.shape[:2])


def box_on_pixel_boundaries(K: torch.Tensor, z_front: float, columns: tuple[int, int], rows: tuple[int, int],
                            z_back: float, wall_z: float = 5.0) -> BoxScene:
    """A box whose front face, seen from the source, covers exactly the pixels ``columns`` x ``rows``
    (half-open ranges): its silhouette runs along pixel boundaries, as the source pixels' squares do."""
    x0 = ((columns[0] - 0.5) - float(K[0, 2])) / float(K[0, 0]) * z_front
    x1 = ((columns[1] - 0.5) - float(K[0, 2])) / float(K[0, 0]) * z_front
    y0 = ((rows[0] - 0.5) - float(K[1, 2])) / float(K[1, 1]) * z_front
    y1 = ((rows[1] - 0.5) - float(K[1, 2])) / float(K[1, 1]) * z_front
    return BoxScene(wall_z=wall_z, box_min=(x0, y0, z_front), box_max=(x1, y1, z_back))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.to(torch.float64) - b.to(torch.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def sample_clip(num_frames: int = 14, width: int = 320, height: int = 192, hfov_deg: float = 60.0):
    """The bundled demo clip: a box gliding and bobbing in front of a textured wall, static camera.

    Returns IMAGE frames ``[F, H, W, 3]`` in 0..1 and their exact z-depth ``[F, H, W]``.
    """
    from .camera.conventions import intrinsics_matrix, normalized_intrinsics_from_hfov

    K = intrinsics_matrix(normalized_intrinsics_from_hfov(hfov_deg).double(), width, height)
    frames, depths = [], []
    for i in range(num_frames):
        t = i / max(num_frames - 1, 1)
        dx, dy = -0.5 + 0.9 * t, 0.12 * math.sin(2 * math.pi * t)
        scene = BoxScene(wall_z=5.0, box_min=(-0.45 + dx, -0.35 + dy, 2.6), box_max=(0.25 + dx, 0.35 + dy, 3.3))
        colour, depth, _ = render(scene, torch.eye(4, dtype=torch.float64), K, width, height)
        frames.append(colour.float())
        depths.append(depth.float())
    return torch.stack(frames), torch.stack(depths)
