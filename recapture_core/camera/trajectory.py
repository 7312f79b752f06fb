"""CAMERA_TRAJECTORY: per-frame target poses relative to the source camera, plus intrinsics.

See conventions.py for the axes, the meaning of a pose and the resolution-free intrinsics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from kornia.geometry.quaternion import Quaternion

from ..errors import ReCaptureInputError
from .conventions import DEFAULT_HFOV_DEG, hfov_deg_from_normalized, intrinsics_matrix, normalized_intrinsics_from_hfov
from .poses import make_pose, rotation_angle_deg

ORTHONORMAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class CameraTrajectory:
    """Per output frame i: where the target camera is relative to the source camera of frame i.

    Attributes:
        target_to_source: ``[F, 4, 4]`` float64 rigid poses (OpenCV axes).
        target_intrinsics: ``[F, 4]`` float64, (fx/W, fy/W, cx/W, cy/H) of the target camera.
        source_intrinsics: ``[4]`` float64, same normalisation, of the source camera.
        subject_distance: the pivot distance in scene units that translations were scaled by.
        image_size: ``(width, height)`` the intrinsics came with (from a camera file), else None.
        label: a short human description ("orbit left 20°, ease-in-out").
    """

    target_to_source: torch.Tensor
    target_intrinsics: torch.Tensor
    source_intrinsics: torch.Tensor
    subject_distance: float = 1.0
    image_size: tuple[int, int] | None = None
    label: str = ""
    input_name: str = field(default="trajectory", compare=False, repr=False)

    def __post_init__(self):
        name = self.input_name
        poses, intr, src = self.target_to_source, self.target_intrinsics, self.source_intrinsics
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] == 0:
            raise ReCaptureInputError(name, f"poses must have shape [frames, 4, 4] with at least one frame, got {list(poses.shape)}",
                                      "Build the trajectory with a CameraTrajectory node or a camera file.")
        if intr.shape != (poses.shape[0], 4) or src.shape != (4,):
            raise ReCaptureInputError(name, f"intrinsics must be [{poses.shape[0]}, 4] and [4], got {list(intr.shape)} and {list(src.shape)}",
                                      "Give one set of intrinsics per frame.")
        for what, tensor in (("poses", poses), ("intrinsics", intr), ("source intrinsics", src)):
            if not torch.isfinite(tensor).all():
                raise ReCaptureInputError(name, f"{what} contain NaN or infinite values", "Check the camera file or keyframes.")
        if not (intr[:, :2] > 0).all() or not (src[:2] > 0).all():
            raise ReCaptureInputError(name, "focal lengths must be positive", "Check the field of view / focal length values.")
        if not math.isfinite(self.subject_distance) or self.subject_distance <= 0:
            raise ReCaptureInputError(name, f"subject distance must be positive, got {self.subject_distance}",
                                      "Set subject_distance to the distance from the camera to the subject (> 0).")
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=poses.dtype)
        if not torch.allclose(poses[:, 3, :], bottom.expand(poses.shape[0], 4), atol=ORTHONORMAL_TOLERANCE):
            raise ReCaptureInputError(name, "poses must be rigid transforms with last row [0, 0, 0, 1]", "Check the camera file.")
        R = poses[:, :3, :3]
        error = (R.transpose(1, 2) @ R - torch.eye(3, dtype=R.dtype)).abs().amax(dim=(1, 2))
        det = torch.linalg.det(R)
        bad = torch.nonzero((error > ORTHONORMAL_TOLERANCE) | (det <= 0)).flatten()
        if bad.numel():
            i = int(bad[0])
            raise ReCaptureInputError(
                name, f"the rotation of frame {i} is not orthonormal (|RᵀR - I| = {float(error[i]):.2g}, det = {float(det[i]):.4g})",
                "Poses must be rotations plus translations, without scale, shear or mirroring; check the camera file.")

    # --- construction -----------------------------------------------------------------
    @classmethod
    def from_poses(cls, target_to_source: torch.Tensor, source_intrinsics: torch.Tensor | None = None,
                   zoom: torch.Tensor | None = None, **kwargs) -> "CameraTrajectory":
        """Poses ``[F, 4, 4]`` plus the source intrinsics; target intrinsics = source with focal x ``zoom [F]``."""
        poses = target_to_source.to(torch.float64)
        src = normalized_intrinsics_from_hfov(DEFAULT_HFOV_DEG) if source_intrinsics is None else source_intrinsics.to(torch.float64)
        scale = torch.ones(poses.shape[0], dtype=torch.float64) if zoom is None else zoom.to(torch.float64)
        target = src.expand(poses.shape[0], 4).clone()
        target[:, :2] *= scale[:, None]
        return cls(poses, target, src, **kwargs)

    @classmethod
    def static(cls, num_frames: int, source_intrinsics: torch.Tensor | None = None, **kwargs) -> "CameraTrajectory":
        return cls.from_poses(torch.eye(4, dtype=torch.float64).expand(num_frames, 4, 4).clone(), source_intrinsics, **kwargs)

    # --- reading ------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.target_to_source.shape[0])

    @property
    def zoom(self) -> torch.Tensor:
        """Focal length of each target frame over the source's, ``[F]``."""
        return self.target_intrinsics[:, 0] / self.source_intrinsics[0]

    def source_K(self, width: int, height: int) -> torch.Tensor:
        """Pixel intrinsics ``[3, 3]`` of the source camera for a W x H video."""
        return intrinsics_matrix(self.source_intrinsics, width, height)

    def target_K(self, width: int, height: int) -> torch.Tensor:
        """Pixel intrinsics ``[F, 3, 3]`` of the target cameras for a W x H output."""
        return intrinsics_matrix(self.target_intrinsics, width, height)

    def check_frame_count(self, num_frames: int, video_name: str = "frames", trajectory_name: str = "trajectory") -> None:
        """Raise a clear error when this trajectory does not have one pose per video frame."""
        if self.num_frames != num_frames:
            raise ReCaptureInputError(
                trajectory_name,
                f"has {self.num_frames} frames but {video_name} has {num_frames}",
                f"Set the trajectory's frame count to {num_frames}, or resample it to {num_frames} frames.",
                hint="resample_trajectory")

    def summary(self) -> str:
        """A few lines for the user: frames, rotation, translation (in subject distances), zoom."""
        R, t = self.target_to_source[:, :3, :3], self.target_to_source[:, :3, 3]
        angles = rotation_angle_deg(R)
        distance = t.norm(dim=-1) / self.subject_distance
        path = (t[1:] - t[:-1]).norm(dim=-1).sum() / self.subject_distance if self.num_frames > 1 else torch.tensor(0.0)
        zoom = self.zoom
        fov = hfov_deg_from_normalized(self.source_intrinsics)
        lines = [
            f"{self.label or 'camera trajectory'}: {self.num_frames} frames",
            f"last frame: rotated {float(angles[-1]):.1f}°, moved {float(distance[-1]):.3f} subject distances "
            f"(x {float(t[-1, 0] / self.subject_distance):+.3f}, y {float(t[-1, 1] / self.subject_distance):+.3f}, "
            f"z {float(t[-1, 2] / self.subject_distance):+.3f})",
            f"largest rotation {float(angles.max()):.1f}°, largest move {float(distance.max()):.3f}, "
            f"path length {float(path):.3f} subject distances",
            f"zoom {float(zoom.min()):.3f}x..{float(zoom.max()):.3f}x, source horizontal FOV {float(fov):.1f}°, "
            f"subject distance {self.subject_distance:g} scene units",
        ]
        return "\n".join(lines)

    # --- operations (each returns a new trajectory; inputs are never modified) ----------
    def compose(self, other: "CameraTrajectory") -> "CameraTrajectory":
        """Apply ``other`` on top of this one, frame by frame, in this trajectory's camera frame.

        ``T = self[i] @ other[i]``; zoom factors multiply. E.g. orbit.compose(dolly) orbits, then
        dollies along the orbited camera's optical axis. Both need the same frame count.
        """
        if other.num_frames != self.num_frames:
            raise ReCaptureInputError("second", f"has {other.num_frames} frames but first has {self.num_frames}",
                                      "Give both trajectories the same frame count, or resample one of them.")
        poses = self.target_to_source @ other.target_to_source
        return CameraTrajectory.from_poses(
            poses, self.source_intrinsics, zoom=self.zoom * other.zoom,
            subject_distance=self.subject_distance, image_size=self.image_size,
            label=f"{self.label} + {other.label}".strip(" +"))

    def with_source_intrinsics(self, source_intrinsics: torch.Tensor) -> "CameraTrajectory":
        """The same poses and zoom factors for a source camera with other intrinsics ``[4]``."""
        return CameraTrajectory.from_poses(self.target_to_source, source_intrinsics, zoom=self.zoom,
                                           subject_distance=self.subject_distance, image_size=self.image_size,
                                           label=self.label)

    def scaled_to_subject_distance(self, subject_distance: float) -> "CameraTrajectory":
        """The same move for a subject at ``subject_distance`` scene units: translations scale along.

        A preset made for a subject 1 unit away, applied to depth whose subject is 7.3 units away,
        moves 7.3 times as far, so it looks the same.
        """
        factor = subject_distance / self.subject_distance
        poses = self.target_to_source.clone()
        poses[:, :3, 3] *= factor
        return replace(self, target_to_source=poses, subject_distance=float(subject_distance))

    def window(self, first: int, count: int, why: str = "") -> "CameraTrajectory":
        """Frames ``first .. first + count - 1`` of this trajectory: the cameras of one chunk of a longer clip.

        ``why`` says where the window comes from, for the error when the trajectory is too short.
        """
        if first < 0 or count < 1 or first + count > self.num_frames:
            raise ReCaptureInputError(
                "trajectory", f"has {self.num_frames} frames but {why or 'the window'} needs frames {first}..{first + count - 1}",
                f"Give the trajectory one frame per frame of the whole clip (at least {first + count}).",
                hint="resample_trajectory")
        return replace(self, target_to_source=self.target_to_source[first:first + count].clone(),
                       target_intrinsics=self.target_intrinsics[first:first + count].clone())

    def reverse(self) -> "CameraTrajectory":
        """The same path travelled backwards: frame i gets the pose of frame F-1-i."""
        return replace(self, target_to_source=self.target_to_source.flip(0).clone(),
                       target_intrinsics=self.target_intrinsics.flip(0).clone(), label=f"{self.label} (reversed)")

    def sample(self, positions: torch.Tensor) -> "CameraTrajectory":
        """Poses at fractional frame positions ``[N]`` in 0..F-1.

        Rotations by slerp (kornia), positions by a monotone cubic spline through the frames,
        zoom log-linearly. Integer positions return the frames exactly.
        """
        poses = interpolate_poses(torch.arange(self.num_frames, dtype=torch.float64), self.target_to_source, positions)
        log_zoom = interpolate_linear(torch.arange(self.num_frames, dtype=torch.float64), self.zoom.log()[:, None], positions)
        return CameraTrajectory.from_poses(poses, self.source_intrinsics, zoom=log_zoom[:, 0].exp(),
                                           subject_distance=self.subject_distance, image_size=self.image_size,
                                           label=self.label)

    def resample(self, num_frames: int) -> "CameraTrajectory":
        """The same path with ``num_frames`` frames; first and last poses are kept exactly."""
        if num_frames < 1:
            raise ReCaptureInputError("num_frames", f"must be at least 1, got {num_frames}", "Choose a positive frame count.")
        if num_frames == 1 or self.num_frames == 1:
            positions = torch.full((num_frames,), float(self.num_frames - 1), dtype=torch.float64)
        else:
            positions = torch.linspace(0.0, float(self.num_frames - 1), num_frames, dtype=torch.float64)
            positions[-1] = float(self.num_frames - 1)
        out = self.sample(positions)
        return replace(out, label=f"{self.label} (resampled to {num_frames})")


# --- interpolation helpers (pose space) -------------------------------------------------
def _segments(knots: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index ``[N]`` and local parameter in 0..1 ``[N]`` of positions over sorted knots.

    Positions outside the knots are clamped: the first and last keys hold.
    """
    positions = positions.clamp(float(knots[0]), float(knots[-1]))
    index = (torch.searchsorted(knots, positions, right=True) - 1).clamp(0, max(len(knots) - 2, 0))
    if len(knots) == 1:
        return index, torch.zeros_like(positions)
    return index, (positions - knots[index]) / (knots[index + 1] - knots[index])


def _exact_hits(knots: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask ``[N]`` of positions that sit on a knot (after clamping) and that knot's index ``[N]``."""
    positions = positions.clamp(float(knots[0]), float(knots[-1]))
    match = positions[:, None] == knots[None, :]
    return match.any(dim=1), match.to(torch.int64).argmax(dim=1)


def interpolate_linear(knots: torch.Tensor, values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear values ``[N, D]`` at positions, from ``values [K, D]`` at sorted ``knots [K]``."""
    index, local = _segments(knots, positions)
    if len(knots) == 1:
        return values[index].clone()
    out = values[index] + (values[index + 1] - values[index]) * local[:, None]
    hit, key = _exact_hits(knots, positions)
    return torch.where(hit[:, None], values[key], out)


def monotone_tangents(knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Fritsch–Carlson tangents ``[K, D]`` for a shape-preserving cubic through ``values [K, D]``.

    Interior tangents are PCHIP's weighted harmonic mean of the neighbouring slopes (0 at a
    turning point or a hold); end tangents are the end slopes; then each segment is scaled into
    the monotone region (alpha² + beta² <= 9). No overshoot: a held value stays held.
    """
    h = (knots[1:] - knots[:-1])[:, None]
    slopes = (values[1:] - values[:-1]) / h
    tangents = torch.zeros_like(values)
    tangents[0], tangents[-1] = slopes[0], slopes[-1]
    if len(knots) > 2:
        s0, s1, h0, h1 = slopes[:-1], slopes[1:], h[:-1], h[1:]
        w0, w1 = 2 * h1 + h0, h1 + 2 * h0
        same_sign = (s0 * s1) > 0
        harmonic = (w0 + w1) / (w0 / torch.where(same_sign, s0, 1.0) + w1 / torch.where(same_sign, s1, 1.0))
        tangents[1:-1] = torch.where(same_sign, harmonic, 0.0)
    for k in range(len(knots) - 1):  # K keyframes: a handful, not a per-point loop
        flat = slopes[k] == 0
        tangents[k] = torch.where(flat, 0.0, tangents[k])
        tangents[k + 1] = torch.where(flat, 0.0, tangents[k + 1])
        alpha = torch.where(flat, 0.0, tangents[k] / torch.where(flat, 1.0, slopes[k]))
        beta = torch.where(flat, 0.0, tangents[k + 1] / torch.where(flat, 1.0, slopes[k]))
        radius = torch.sqrt(alpha**2 + beta**2)
        scale = torch.where(radius > 3.0, 3.0 / radius.clamp_min(1e-300), 1.0)
        tangents[k], tangents[k + 1] = tangents[k] * scale, tangents[k + 1] * scale
    return tangents


def interpolate_hermite(knots: torch.Tensor, values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Monotone C1 cubic ``[N, D]`` through ``values [K, D]`` at sorted, unevenly spaced ``knots [K]``.

    Hand-written: a few lines of float64 torch, where scipy's PchipInterpolator would add a numpy
    round trip and a dependency the core does not otherwise need. Knot positions return the
    key values exactly.
    """
    if len(knots) < 2:
        return interpolate_linear(knots, values, positions)
    tangents = monotone_tangents(knots, values)
    index, s = _segments(knots, positions)
    h = (knots[index + 1] - knots[index])[:, None]
    s = s[:, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    out = h00 * values[index] + h10 * h * tangents[index] + h01 * values[index + 1] + h11 * h * tangents[index + 1]
    hit, key = _exact_hits(knots, positions)
    return torch.where(hit[:, None], values[key], out)


def interpolate_poses(knots: torch.Tensor, poses: torch.Tensor, positions: torch.Tensor, smooth: bool = True) -> torch.Tensor:
    """Poses ``[N, 4, 4]`` at positions from key poses ``[K, 4, 4]`` at sorted ``knots [K]``.

    Rotations: slerp between neighbouring keys (kornia). Translations: Hermite spline when
    ``smooth``, else linear. A position equal to a knot returns that key pose bit-exactly.
    """
    index, local = _segments(knots, positions)
    translations = (interpolate_hermite if smooth else interpolate_linear)(knots, poses[:, :3, 3], positions)
    if len(knots) == 1:
        return poses[index].clone()
    q0 = Quaternion.from_matrix(poses[index, :3, :3])
    q1 = Quaternion.from_matrix(poses[index + 1, :3, :3])
    rotations = q0.slerp(q1, local).matrix()
    out = make_pose(rotations, translations)
    hit, key = _exact_hits(knots, positions)
    return torch.where(hit[:, None, None], poses[key], out)
