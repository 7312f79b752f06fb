"""Camera paths: the CAMERA_TRAJECTORY type, presets, keyframes, camera files and previews.

Conventions (axes, pose meaning, intrinsics) are stated once, in ``conventions.py``.
"""
from .conventions import DEFAULT_HFOV_DEG, intrinsics_matrix, normalized_intrinsics_from_hfov
from .poses import MoveParams, pose_from_params
from .trajectory import CameraTrajectory

__all__ = ["CameraTrajectory", "MoveParams", "pose_from_params", "DEFAULT_HFOV_DEG", "intrinsics_matrix",
           "normalized_intrinsics_from_hfov"]
