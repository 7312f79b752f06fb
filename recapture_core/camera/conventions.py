"""The camera conventions of the pack, stated once.

Axes (OpenCV): x right, y down, z forward (the optical axis). A pose is a 4x4 rigid transform.

CameraTrajectory.target_to_source[i]  ``[4, 4]``
    The pose of the *target* camera of output frame i in the coordinates of the *source* camera
    of frame i (camera-to-source-camera, "camera-to-world" with the source camera as the world).
    A point ``X_t`` in target-camera coordinates is ``X_s = T @ X_t`` in source coordinates.
    ReCapture estimates depth per frame, so the source camera of every frame is its own origin:
    the identity pose means "film frame i from where it was filmed".

Intrinsics are stored resolution-free, assuming square pixels unless a file says otherwise:
    ``(fx / W, fy / W, cx / W, cy / H)`` for an image W pixels wide and H high. The horizontal
    field of view ``hfov`` gives ``fx / W = 1 / (2 tan(hfov / 2))``.

Pixel centres, the one convention: the principal point of stored intrinsics (and of every camera
file the pack reads and writes: COLMAP, NeRF transforms.json, ReCapture JSON) is measured on the
image plane whose corners are (0, 0) and (W, H), so pixel (i, j) has its centre at (i + 0.5, j + 0.5)
and a centred camera has cx / W = 0.5. This is COLMAP's stated convention and what NeRF loaders
assume (rays through i + 0.5), so files need no conversion. The pixel matrices the geometry uses
(:func:`intrinsics_matrix`, for kornia, whose pixel grids are integers) put pixel centres at integer
coordinates, as OpenCV does: there ``cx = (cx / W) * W - 0.5``, and the centre of a W-wide image is
(W - 1) / 2.

Translations of presets and keyframes are in *subject distances*: 1.0 = the distance from the
source camera to the pivot (the subject), so one preset works for metric depth, relative depth
and disparity alike.
"""
from __future__ import annotations

import math

import torch

#: Camera-axis flip between OpenCV (x right, y down, z forward) and OpenGL / NeRF
#: (x right, y up, z backward). It is its own inverse.
OPENCV_FROM_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))

DEFAULT_HFOV_DEG = 60.0


def normalized_intrinsics_from_hfov(hfov_deg: float, principal_point: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """Resolution-free intrinsics ``[4]`` = (fx/W, fy/W, cx/W, cy/H) for a horizontal field of view."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must lie in (0, 180) degrees, got {hfov_deg}")
    focal = 1.0 / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    return torch.tensor([focal, focal, principal_point[0], principal_point[1]], dtype=torch.float64)


def hfov_deg_from_normalized(intrinsics: torch.Tensor) -> torch.Tensor:
    """Horizontal field of view in degrees of normalised intrinsics ``[..., 4]``."""
    return torch.rad2deg(2.0 * torch.atan(0.5 / intrinsics[..., 0]))


#: Pixel-corner image plane (stored intrinsics, camera files) -> integer pixel centres (pixel matrices).
PIXEL_CENTRE_OFFSET = 0.5


def intrinsics_matrix(intrinsics: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel intrinsics ``[..., 3, 3]`` (pixel centres at integer coordinates) from normalised intrinsics
    ``[..., 4]`` (pixel corners at integers; see the module docstring) for a W x H image."""
    fx = intrinsics[..., 0] * width
    fy = intrinsics[..., 1] * width
    cx = intrinsics[..., 2] * width - PIXEL_CENTRE_OFFSET
    cy = intrinsics[..., 3] * height - PIXEL_CENTRE_OFFSET
    K = torch.zeros(*intrinsics.shape[:-1], 3, 3, dtype=intrinsics.dtype, device=intrinsics.device)
    K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = fx, fy, cx, cy, 1.0
    return K
