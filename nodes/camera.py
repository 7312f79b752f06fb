"""Camera-path nodes: presets, keyframes, compose / resample / reverse, camera files, preview.

Every node outputs CAMERA_TRAJECTORY: per frame, the target camera relative to the source camera
of that frame (OpenCV axes: x right, y down, z forward), plus intrinsics. See
recapture_core/camera/conventions.py.
"""
from __future__ import annotations

import folder_paths

from ..recapture_core.camera.conventions import DEFAULT_HFOV_DEG
from ..recapture_core.camera.files import (FORMATS, IMPORT_FORMATS, REFERENCES, camera_file_fingerprint, export_trajectory,
                                           import_trajectory, list_camera_files)
from ..recapture_core.camera.keyframes import INTERPOLATIONS, keyframe_trajectory, parse_keyframes
from ..recapture_core.camera.presets import PRESETS, UNITS, preset_trajectory
from ..recapture_core.camera.preview import render_preview
from ..recapture_core.depth import central_median_depth
from ..recapture_core.errors import ReCaptureInputError
from ..recapture_core.paths import safe_child

CATEGORY = "ReCapture/camera"
TRAJECTORY_TOOLTIP = "Per-frame target camera relative to the source camera of that frame, with intrinsics."
NO_CAMERA_FILES = "(no camera files in ComfyUI's input folder)"

SUMMARY_TOOLTIP = "Total rotation, translation in subject distances, zoom."


class _TrajectoryOutput:
    """Shared declarations of nodes whose one output is a trajectory."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("CAMERA_TRAJECTORY",)
    RETURN_NAMES = ("trajectory",)
    OUTPUT_TOOLTIPS = (TRAJECTORY_TOOLTIP,)


class _TrajectoryAndSummaryOutput:
    """Shared declarations of nodes that make a trajectory and describe it."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("CAMERA_TRAJECTORY", "STRING")
    RETURN_NAMES = ("trajectory", "summary")
    OUTPUT_TOOLTIPS = (TRAJECTORY_TOOLTIP, SUMMARY_TOOLTIP)


_FRAMES_TOOLTIP = "Optional: the video. When connected, its frame count replaces num_frames."
_DEPTH_TOOLTIP = ("Optional: depth of the video. When connected, the subject distance is the median depth of the "
                  "central region (replacing subject_distance), and the depth's intrinsics replace hfov_deg if it has them.")


def _shared_inputs() -> dict:
    return {
        "num_frames": ("INT", {"default": 25, "min": 1, "max": 4096,
                               "tooltip": "Frames in the trajectory; must equal the video's frame count downstream (or connect frames)."}),
        "hfov_deg": ("FLOAT", {"default": DEFAULT_HFOV_DEG, "min": 1.0, "max": 179.0, "step": 0.01,
                               "tooltip": "Horizontal field of view of the source video in degrees (60 suits most phone footage). "
                                          "Used unless the depth supplies intrinsics."}),
        "subject_distance": ("FLOAT", {"default": 1.0, "min": 1e-3, "max": 1e6, "step": 0.001,
                                       "tooltip": "Distance from the camera to the subject (the orbit pivot) in the depth's units. "
                                                  "Moves are given as fractions of it. Ignored when depth is connected."}),
    }


def _optional_video_inputs() -> dict:
    return {"frames": ("IMAGE", {"tooltip": _FRAMES_TOOLTIP}), "depth": ("DEPTH", {"tooltip": _DEPTH_TOOLTIP})}


def _resolve_scene(num_frames, hfov_deg, subject_distance, frames=None, depth=None) -> tuple[int, float, float, object]:
    """Frame count, hfov, subject distance and source intrinsics, with connected inputs winning."""
    if frames is not None:
        num_frames = int(frames.shape[0])
    intrinsics = None
    if depth is not None:
        subject_distance = central_median_depth(depth)
        intrinsics = depth.intrinsics
    return num_frames, hfov_deg, subject_distance, intrinsics


def _with_intrinsics(trajectory, intrinsics):
    """The depth's intrinsics, when it has them, replace the field-of-view widget."""
    return trajectory if intrinsics is None else trajectory.with_source_intrinsics(intrinsics)


class ReCaptureCameraTrajectory(_TrajectoryAndSummaryOutput):
    DESCRIPTION = ("A camera move as a preset: orbit (the camera keeps looking at the subject), dolly, truck, pedestal, "
                   "pan, tilt, roll, zoom, arc or static, with easing. Starts at the source camera.")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        units = "; ".join(f"{k}: {v}" for k, v in UNITS.items() if k != "static")
        return {
            "required": {
                "preset": (PRESETS, {"default": "orbit left", "tooltip": "The camera move. Orbits keep the subject at the image centre."}),
                "amount": ("FLOAT", {"default": 20.0, "min": 0.0, "max": 360.0, "step": 0.001,
                                     "tooltip": f"How far the move goes by the last frame. Units: {units}."}),
                "easing": (["linear", "ease-in", "ease-out", "ease-in-out"], {"default": "ease-in-out",
                           "tooltip": "Speed profile: ease-in starts slowly, ease-out ends slowly."}),
                **_shared_inputs(),
            },
            "optional": _optional_video_inputs(),
        }

    def build(self, preset, amount, easing, num_frames, hfov_deg, subject_distance, frames=None, depth=None):
        num_frames, hfov_deg, subject_distance, intrinsics = _resolve_scene(num_frames, hfov_deg, subject_distance, frames, depth)
        trajectory = _with_intrinsics(preset_trajectory(preset, amount, num_frames, easing, hfov_deg, subject_distance), intrinsics)
        return (trajectory, trajectory.summary())


class ReCaptureCameraFromLoad3D(_TrajectoryAndSummaryOutput):
    DESCRIPTION = ("A camera move between two views of ComfyUI's Load3D viewer: 'start' stands for the camera that "
                   "filmed the video, 'end' for where the new path ends. In between the camera orbits the (sliding) "
                   "target as the viewer's controls do; its distance to the start target is the subject distance.")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        camera = "camera_info output of a Load3D node (perspective view)"
        return {
            "required": {
                "start": ("LOAD3D_CAMERA", {"tooltip": f"The view that matches the video's camera: {camera}."}),
                "end": ("LOAD3D_CAMERA", {"tooltip": f"The view the new path ends at: {camera}."}),
                "easing": (["linear", "ease-in", "ease-out", "ease-in-out"], {"default": "ease-in-out",
                           "tooltip": "Speed profile: ease-in starts slowly, ease-out ends slowly."}),
                **_shared_inputs(),
            },
            "optional": _optional_video_inputs(),
        }

    def build(self, start, end, easing, num_frames, hfov_deg, subject_distance, frames=None, depth=None):
        from ..recapture_core.camera.load3d import trajectory_from_load3d

        num_frames, hfov_deg, subject_distance, intrinsics = _resolve_scene(num_frames, hfov_deg, subject_distance, frames, depth)
        trajectory = trajectory_from_load3d(start, end, num_frames, easing, hfov_deg, subject_distance)
        trajectory = _with_intrinsics(trajectory, intrinsics)
        return (trajectory, trajectory.summary())


class ReCaptureCameraKeyframes(_TrajectoryAndSummaryOutput):
    DESCRIPTION = ("A camera path through keyframes, one per line as 'frame: name=value, ...' with the names "
                   "orbit_left, orbit_up, truck_right, pedestal_up, dolly_in, pan_right, tilt_up, roll_cw (degrees or "
                   "subject distances) and zoom (factor). The path hits every keyframe exactly.")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "keyframes": ("STRING", {"multiline": True, "default": "0:\n12: orbit_left=10, dolly_in=0.1\n24: orbit_left=20, tilt_up=3",
                                         "tooltip": "One keyframe per line: 'frame: name=value, ...'. Missing names are 0 (zoom 1). "
                                                    "Frames before the first / after the last keyframe hold its pose. '#' starts a comment. "
                                                    "At most 65536 characters."}),
                "interpolation": (list(INTERPOLATIONS), {"default": "pose: slerp + spline",
                                  "tooltip": "; ".join(f"{k}: {v}" for k, v in INTERPOLATIONS.items())}),
                **_shared_inputs(),
            },
            "optional": _optional_video_inputs(),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, keyframes):
        try:
            parse_keyframes(keyframes)
        except ReCaptureInputError as err:
            return str(err)
        return True

    def build(self, keyframes, interpolation, num_frames, hfov_deg, subject_distance, frames=None, depth=None):
        num_frames, hfov_deg, subject_distance, intrinsics = _resolve_scene(num_frames, hfov_deg, subject_distance, frames, depth)
        trajectory = keyframe_trajectory(parse_keyframes(keyframes), num_frames, interpolation, hfov_deg, subject_distance)
        trajectory = _with_intrinsics(trajectory, intrinsics)
        return (trajectory, trajectory.summary())


class ReCaptureCameraCompose(_TrajectoryOutput):
    DESCRIPTION = ("Combine two camera paths frame by frame: the second move happens in the camera frame the first one "
                   "reached (e.g. orbit + dolly = orbit, then push in towards the subject). Zoom factors multiply.")
    FUNCTION = "compose"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "first": ("CAMERA_TRAJECTORY", {"tooltip": "Applied first; its source intrinsics and subject distance are kept."}),
            "second": ("CAMERA_TRAJECTORY", {"tooltip": "Applied on top of the first, in its camera frame. Same frame count."}),
        }}

    def compose(self, first, second):
        return (first.compose(second),)


class ReCaptureCameraResample(_TrajectoryOutput):
    DESCRIPTION = ("Resample a camera path to another frame count (same path, same start and end), e.g. to fit a "
                   "camera file to the video. Rotations by slerp, positions by a smooth spline.")
    FUNCTION = "resample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "The path to resample."}),
                "num_frames": ("INT", {"default": 25, "min": 1, "max": 4096, "tooltip": "Frame count of the result."}),
            },
            "optional": {"frames": ("IMAGE", {"tooltip": _FRAMES_TOOLTIP})},
        }

    def resample(self, trajectory, num_frames, frames=None):
        return (trajectory.resample(int(frames.shape[0]) if frames is not None else num_frames),)


class ReCaptureCameraReverse(_TrajectoryOutput):
    DESCRIPTION = "Travel a camera path backwards: the last pose comes first."
    FUNCTION = "reverse"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "The path to reverse."})}}

    def reverse(self, trajectory):
        return (trajectory.reverse(),)


def _camera_files() -> list[str]:
    """Camera files under ComfyUI's input folder (list_camera_files: regular files that stay inside it)."""
    return list_camera_files(folder_paths.get_input_directory()) or [NO_CAMERA_FILES]


class ReCaptureCameraImport(_TrajectoryAndSummaryOutput):
    DESCRIPTION = ("Load a camera path from a file in ComfyUI's input folder: ReCapture JSON, NeRF transforms.json "
                   "(OpenGL axes, converted), a COLMAP text model (pick its images.txt), RealEstate10K / CameraCtrl "
                   "pose text or ReCamMaster's camera_extrinsics.json (Unreal axes and centimetres, converted). The file's "
                   "FIRST pose is the source camera (where the video was filmed); every pose is made relative to it.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "file": (_camera_files(), {"tooltip": "A .json file, a RealEstate10K / CameraCtrl pose .txt, or a COLMAP images.txt "
                                                  "(with cameras.txt beside it) under ComfyUI's input folder."}),
            "format": (["auto", *IMPORT_FORMATS], {"default": "auto", "tooltip": "auto: ReCapture JSON by its header, .json of "
                       "frame0, frame1, ... as ReCamMaster's, other .json as NeRF, images.txt as COLMAP, other .txt as "
                       "RealEstate10K / CameraCtrl poses (square pixels assumed)."}),
            "reference": (list(REFERENCES), {"default": REFERENCES[0],
                          "tooltip": "first pose is the source camera: the file starts where the video was filmed. "
                                     "file world is the source camera: poses are already relative to it (what Export writes)."}),
            "translation_scale": ("FLOAT", {"default": 1.0, "min": 1e-6, "max": 1e6, "step": 1e-6,
                                            "tooltip": "Multiplies the file's translations to bring them into the depth's units "
                                                       "(monocular depth has an arbitrary scale)."}),
            "subject_distance": ("FLOAT", {"default": 1.0, "min": 1e-3, "max": 1e6, "step": 0.001,
                                           "tooltip": "Distance to the subject in the depth's units, for the summary and preview "
                                                      "(a ReCapture JSON file brings its own)."}),
        }, "optional": {
            # Last: workflows saved before it keep their widget values.
            "camera": ("INT", {"default": 1, "min": 1, "max": 99, "tooltip": "Files with several cameras (ReCamMaster's "
                                                                              "cam01, cam02, ...): which one. Ignored by other formats."}),
        }}

    @classmethod
    def IS_CHANGED(cls, file, **_):
        try:
            return camera_file_fingerprint(folder_paths.get_input_directory(), file)
        except (ReCaptureInputError, OSError):
            return file  # load() says what is wrong

    def load(self, file, format, reference, translation_scale, subject_distance, camera=1):
        if file == NO_CAMERA_FILES:
            raise ReCaptureInputError("file", "no camera file was chosen",
                                      "Put a .json camera file or a COLMAP folder into ComfyUI's input folder, then refresh.")
        trajectory = import_trajectory(folder_paths.get_input_directory(), file, format, reference, translation_scale,
                                       subject_distance, camera)
        return (trajectory, trajectory.summary())


class ReCaptureCameraExport:
    DESCRIPTION = ("Save a camera path to ComfyUI's output folder as ReCapture JSON (keeps everything), NeRF "
                   "transforms.json or a COLMAP text model. The world frame is the source camera, so the first pose of "
                   "a path that starts at the source is the identity. Never overwrites: a counter is added.")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("The file (or COLMAP folder) written.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "The path to save."}),
            "filename_prefix": ("STRING", {"default": "recapture_cameras/trajectory",
                                           "tooltip": "Name inside ComfyUI's output folder; may contain subfolders, never '..'."}),
            "format": (list(FORMATS), {"default": FORMATS[0], "tooltip": "File format."}),
            "width": ("INT", {"default": 1024, "min": 8, "max": 16384, "tooltip": "Image width in pixels for formats that store pixel intrinsics (unless the path came from a file with a size)."}),
            "height": ("INT", {"default": 576, "min": 8, "max": 16384, "tooltip": "Image height in pixels, as width."}),
        }}

    def save(self, trajectory, filename_prefix, format, width, height):
        output_dir = folder_paths.get_output_directory()
        target = safe_child(output_dir, filename_prefix, "filename_prefix")
        path = export_trajectory(trajectory, target.parent, target.name, format, (width, height))
        return {"ui": {"text": [str(path)]}, "result": (str(path),)}


class ReCaptureCameraPreview:
    DESCRIPTION = ("Draw a camera path before any long work: source and target cameras as frusta from above and from "
                   "the side, with the pivot, plus a text summary.")
    CATEGORY = CATEGORY
    FUNCTION = "preview"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("preview", "summary")
    OUTPUT_TOOLTIPS = ("One image: top view (left) and side view (right).", SUMMARY_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "trajectory": ("CAMERA_TRAJECTORY", {"tooltip": "The path to draw."}),
            "width": ("INT", {"default": 960, "min": 256, "max": 4096, "step": 2, "tooltip": "Width of the preview image."}),
            "height": ("INT", {"default": 480, "min": 128, "max": 4096, "step": 2, "tooltip": "Height of the preview image."}),
        }}

    def preview(self, trajectory, width, height):
        return (render_preview(trajectory, width, height), trajectory.summary())


NODE_CLASS_MAPPINGS = {
    "ReCaptureCameraTrajectory": ReCaptureCameraTrajectory,
    "ReCaptureCameraKeyframes": ReCaptureCameraKeyframes,
    "ReCaptureCameraCompose": ReCaptureCameraCompose,
    "ReCaptureCameraResample": ReCaptureCameraResample,
    "ReCaptureCameraReverse": ReCaptureCameraReverse,
    "ReCaptureCameraImport": ReCaptureCameraImport,
    "ReCaptureCameraFromLoad3D": ReCaptureCameraFromLoad3D,
    "ReCaptureCameraExport": ReCaptureCameraExport,
    "ReCaptureCameraPreview": ReCaptureCameraPreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ReCaptureCameraTrajectory": "Camera Trajectory (ReCapture)",
    "ReCaptureCameraKeyframes": "Camera Keyframes (ReCapture)",
    "ReCaptureCameraCompose": "Compose Camera Trajectories (ReCapture)",
    "ReCaptureCameraResample": "Resample Camera Trajectory (ReCapture)",
    "ReCaptureCameraReverse": "Reverse Camera Trajectory (ReCapture)",
    "ReCaptureCameraImport": "Load Camera File (ReCapture)",
    "ReCaptureCameraFromLoad3D": "Camera From Load3D Views (ReCapture)",
    "ReCaptureCameraExport": "Save Camera File (ReCapture)",
    "ReCaptureCameraPreview": "Camera Trajectory Preview (ReCapture)",
}
