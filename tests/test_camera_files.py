"""Camera files in and out: ReCapture JSON, NeRF transforms.json, COLMAP text; reading only regular files
inside the folder, never blocking, never quoting a file's text."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time

import pytest
import torch

from recapture_core import paths
from recapture_core.camera.files import (FORMATS, REFERENCES, camera_file_fingerprint, export_trajectory, import_trajectory,
                                         list_camera_files, to_recapture_json)
from recapture_core.model_files import MAX_TEXT_FILE_BYTES, read_json
from recapture_core.camera.keyframes import keyframe_trajectory, parse_keyframes
from recapture_core.camera.poses import MoveParams, pose_from_params
from recapture_core.camera.presets import preset_trajectory
from recapture_core.errors import ReCaptureInputError
from recapture_core.paths import safe_child

FIRST_IS_SOURCE, WORLD_IS_SOURCE = REFERENCES


def load(path, *args, **kwargs):
    """import_trajectory on a file (or COLMAP folder) named within its own folder."""
    return import_trajectory(path.parent, path.name, *args, **kwargs)


def wandering(**kwargs):
    text = "0:\n6: orbit_left=25, dolly_in=0.2, zoom=1.4\n12: orbit_up=10, truck_right=-0.3, roll_cw=7\n18: pan_right=-12, zoom=0.9"
    return keyframe_trajectory(parse_keyframes(text), 19, subject_distance=1.7, **kwargs)


def test_recapture_json_round_trip_is_bit_exact(tmp_path):
    traj = wandering().reverse()  # does not start at the source: the JSON keeps that too
    path = export_trajectory(traj, tmp_path, "cams", "recapture json", (640, 360))
    back = load(path)
    assert torch.equal(back.target_to_source, traj.target_to_source)
    assert torch.equal(back.target_intrinsics, traj.target_intrinsics)
    assert torch.equal(back.source_intrinsics, traj.source_intrinsics)
    assert back.subject_distance == traj.subject_distance and back.label == traj.label


@pytest.mark.parametrize("fmt", ["nerf transforms.json", "colmap text"])
@pytest.mark.parametrize("reference", REFERENCES)
def test_nerf_and_colmap_round_trips_are_exact_to_1e6(tmp_path, fmt, reference):
    traj = wandering()  # starts at the source, so both references mean the same
    path = export_trajectory(traj, tmp_path, "cams", fmt, (640, 360))
    if fmt == "colmap text":
        assert sorted(p.name for p in path.iterdir()) == ["cameras.txt", "images.txt"]
        path = path / "images.txt"
    back = load(path, "auto", reference, subject_distance=traj.subject_distance)
    torch.testing.assert_close(back.target_to_source, traj.target_to_source, rtol=0, atol=1e-6)
    torch.testing.assert_close(back.target_intrinsics, traj.target_intrinsics, rtol=0, atol=1e-6)
    assert back.image_size == (640, 360)


def test_file_world_reference_keeps_a_path_that_does_not_start_at_the_source(tmp_path):
    traj = preset_trajectory("orbit left", 30.0, 5).reverse()
    path = export_trajectory(traj, tmp_path, "rev", "nerf transforms.json", (512, 512))
    kept = load(path, "auto", WORLD_IS_SOURCE)
    torch.testing.assert_close(kept.target_to_source, traj.target_to_source, rtol=0, atol=1e-9)
    rebased = load(path, "auto", FIRST_IS_SOURCE)
    assert torch.equal(rebased.target_to_source[0], torch.eye(4, dtype=torch.float64))


def test_translation_scale_brings_file_units_to_depth_units(tmp_path):
    traj = preset_trajectory("truck right", 0.5, 3, subject_distance=2.0)
    path = export_trajectory(traj, tmp_path, "t", "colmap text", (64, 64))
    back = load(path, translation_scale=10.0)
    torch.testing.assert_close(back.target_to_source[-1, :3, 3], torch.tensor([10.0, 0.0, 0.0], dtype=torch.float64))


def gl_pose(rotation_y_deg=0.0, translation=(0.0, 0.0, 0.0)):
    """An OpenGL camera-to-world pose: yaw about the (up) y axis, then a translation."""
    a = math.radians(rotation_y_deg)
    return [[math.cos(a), 0.0, math.sin(a), translation[0]], [0.0, 1.0, 0.0, translation[1]],
            [-math.sin(a), 0.0, math.cos(a), translation[2]], [0.0, 0.0, 0.0, 1.0]]


def test_nerf_opengl_poses_convert_to_opencv_as_checked_by_hand(tmp_path):
    # Hand-checked: an OpenGL camera looks down -z with y up. Moving it along +y (up) is
    # y = -1 in OpenCV (y down); yawing it by +30° about +y turns it to the LEFT (its view
    # direction goes from -z towards -x), which is 'pan left 30°' in our words.
    data = {"camera_angle_x": math.radians(90.0), "w": 200, "h": 100, "frames": [
        {"file_path": "a", "transform_matrix": gl_pose(0.0, (5.0, 1.0, -2.0))},
        {"file_path": "b", "transform_matrix": gl_pose(0.0, (5.0, 2.0, -2.0))},
        {"file_path": "c", "transform_matrix": gl_pose(30.0, (5.0, 1.0, -2.0))},
    ]}
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(data))
    traj = load(path)
    assert torch.equal(traj.target_to_source[0], torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(traj.target_to_source[1], pose_from_params(MoveParams(pedestal_up=1.0)), rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.target_to_source[2], pose_from_params(MoveParams(pan_right=-30.0)), rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.source_intrinsics, torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64))


CAMERAS_TXT = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
1 PINHOLE 640 480 500 510 320 240
2 SIMPLE_RADIAL 640 480 800 330 250 0.01
"""
# Written by hand, not by our exporter. World-to-camera quaternions (QW QX QY QZ) and translations.
# frame_003: camera centre at world (1, 0, 0), no rotation -> t = -R c = (-1, 0, 0).
# frame_001: identity (listed second, but first by name: the source camera).
# frame_002: turned 90° to the right (camera-to-world R_y(+90°)); world-to-camera is R_y(-90°),
#            whose quaternion is (cos 45°, 0, -sin 45°, 0).
IMAGES_TXT = """# Image list with two lines of data per image:
#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME
#   POINTS2D[] as (X, Y, POINT3D_ID)
7 1 0 0 0 -1 0 0 1 frame_003.png
12.5 20.25 -1 100.5 3.75 17
3 1 0 0 0 0 0 0 1 frame_001.png

5 0.70710678118654752 0 -0.70710678118654752 0 0 0 0 2 frame_002.png
1.0 2.0 -1
"""


def write_colmap(folder, cameras=CAMERAS_TXT, images=IMAGES_TXT):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(cameras)
    (folder / "images.txt").write_text(images)
    return folder


def test_hand_written_colmap_model_imports_to_the_expected_poses(tmp_path):
    traj = load(write_colmap(tmp_path / "model") / "images.txt")
    assert traj.num_frames == 3
    assert torch.equal(traj.target_to_source[0], torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(traj.target_to_source[1], pose_from_params(MoveParams(pan_right=90.0)), rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.target_to_source[2], pose_from_params(MoveParams(truck_right=1.0)), rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.source_intrinsics, torch.tensor([500 / 640, 510 / 640, 0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(traj.target_intrinsics[1], torch.tensor([800 / 640, 800 / 640, 330 / 640, 250 / 480], dtype=torch.float64))


@pytest.mark.parametrize("name, content, needle", [
    ("broken.json", '{"frames": [', "is not valid JSON"),
    ("cut.json", json.dumps({"format": "recapture.camera_trajectory", "version": 1})[:-8], "is not valid JSON"),
    ("nan.json", None, "NaN"),
    ("conv.json", None, "unknown convention (a string)"),
    ("version.json", None, "schema version 99"),
    ("scaled.json", None, "not orthonormal"),
    ("noframes.json", json.dumps({"w": 10, "h": 10}), "has no 'frames' list"),
    ("nosize.json", json.dumps({"camera_angle_x": 1.0, "frames": [{"transform_matrix": gl_pose()}]}), "gives no image size"),
])
def test_bad_json_files_are_rejected_naming_the_file(tmp_path, name, content, needle):
    good = to_recapture_json(preset_trajectory("static", 0, 2))
    if name == "nan.json":
        good["frames"][1]["target_to_source"][0][3] = float("nan")
        content = json.dumps(good)
    elif name == "conv.json":
        content = json.dumps({**good, "convention": "blender"})
    elif name == "version.json":
        content = json.dumps({**good, "version": 99})
    elif name == "scaled.json":
        content = json.dumps({"camera_angle_x": 1.0, "w": 8, "h": 8, "frames": [
            {"transform_matrix": gl_pose()}, {"transform_matrix": [[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]]}]})
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ReCaptureInputError) as err:
        load(path)
    assert err.value.input_name == "file" and needle in str(err.value)


@pytest.mark.parametrize("images, needle", [
    (IMAGES_TXT.replace("0 0 2 frame_002.png", "0 0"), "truncated"),
    (IMAGES_TXT.replace("3 1 0 0 0 0 0 0 1", "3 1 0 0 0 x 0 0 1"), "images.txt line 6: field 6 (TX) is not a number"),
    (IMAGES_TXT.replace(" 0 0 0 -1 0 0 1 frame_003", " 0 0 0 -1 0 0 9 frame_003"), "line 4: its CAMERA_ID (field 9) is not a camera of cameras.txt"),
    ("# nothing\n", "lists no image"),
])
def test_bad_colmap_images_are_rejected(tmp_path, images, needle):
    with pytest.raises(ReCaptureInputError) as err:
        load(write_colmap(tmp_path / "m", images=images))
    assert needle in str(err.value)


def test_bad_colmap_cameras_and_missing_files_are_rejected(tmp_path):
    with pytest.raises(ReCaptureInputError, match="needs 4 parameters, got 3"):
        load(write_colmap(tmp_path / "a", cameras="1 PINHOLE 640 480 500 510 320\n"))
    with pytest.raises(ReCaptureInputError, match="pinhole-type model"):
        load(write_colmap(tmp_path / "b", cameras="1 FISHEYE_XYZ 640 480 1 2 3\n"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "images.txt").write_text(IMAGES_TXT)
    with pytest.raises(ReCaptureInputError, match="lacks cameras.txt"):
        load(tmp_path / "c" / "images.txt")
    with pytest.raises(ReCaptureInputError, match="does not exist"):
        load(tmp_path / "nowhere.json")


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "a/../../b.json", "..", "C:\\x.json", ""])
def test_names_that_leave_the_folder_are_rejected(tmp_path, name):
    with pytest.raises(ReCaptureInputError) as err:
        safe_child(tmp_path, name, "file")
    assert err.value.input_name == "file"


def test_symlink_out_of_the_folder_is_rejected(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path)
    with pytest.raises(ReCaptureInputError, match="resolves outside"):
        safe_child(tmp_path / "inside", "link/secret.json", "file")
    assert safe_child(tmp_path, "sub/ok.json", "file") == (tmp_path / "sub" / "ok.json").resolve()


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_never_overwrites(tmp_path, fmt):
    traj = preset_trajectory("orbit left", 10.0, 3)
    first = export_trajectory(traj, tmp_path, "same", fmt, (64, 48))
    before = sorted(p.read_bytes() for p in ([first] if first.is_file() else first.iterdir()))
    second = export_trajectory(preset_trajectory("orbit right", 10.0, 3), tmp_path, "same", fmt, (64, 48))
    assert first != second
    assert sorted(p.read_bytes() for p in ([first] if first.is_file() else first.iterdir())) == before
    assert not list(tmp_path.glob("**/*.partial"))


# --- one pixel-centre convention (conventions.py): files measure the principal point from the image corner ---
def optical_axis_pixel(traj, width, height):
    """Where a point on the source camera's optical axis lands in the source image (pixel centres at integers)."""
    K = traj.source_K(width, height)
    return float(K[0, 2]), float(K[1, 2])


def test_colmap_principal_point_is_measured_from_the_image_corner(tmp_path):
    # COLMAP: "the center of the upper left pixel is (0.5, 0.5)"; cx = W / 2 is a centred camera.
    cameras = "1 PINHOLE 640 480 500 500 320 240\n2 PINHOLE 640 480 500 500 320.5 240.5\n"
    images = "1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 0 0 0 2 b.png\n\n"
    traj = load(write_colmap(tmp_path / "c", cameras=cameras, images=images) / "images.txt")
    assert optical_axis_pixel(traj, 640, 480) == (319.5, 239.5)  # the centre of a 640 x 480 image
    # A principal point half a pixel off is the centre of pixel (320, 240) itself.
    assert [float(v) for v in traj.target_K(640, 480)[1, :2, 2]] == pytest.approx([320.0, 240.0], abs=1e-9)
    # Export writes it back in COLMAP's convention.
    cameras_txt = (export_trajectory(traj, tmp_path, "out", "colmap text", (640, 480)) / "cameras.txt").read_text()
    assert "640 480 500.0 500.0 320.0 240.0" in cameras_txt and "320.5 240.5" in cameras_txt


def test_nerf_principal_point_is_measured_from_the_image_corner(tmp_path):
    # transforms.json without cx / cy: a centred camera, cx = w / 2 (NeRF loaders cast rays through i + 0.5).
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"camera_angle_x": 2 * math.atan(0.5), "w": 64, "h": 48,
                                "frames": [{"transform_matrix": torch.eye(4).tolist()},
                                           {"transform_matrix": torch.eye(4).tolist(), "cx": 40.0, "cy": 20.0}]}))
    traj = load(path)
    assert optical_axis_pixel(traj, 64, 48) == (31.5, 23.5)
    assert [float(v) for v in traj.target_K(64, 48)[1, :2, 2]] == pytest.approx([39.5, 19.5], abs=1e-9)
    written = json.loads(export_trajectory(traj, tmp_path, "out", "nerf transforms.json", (64, 48)).read_text())
    assert (written["cx"], written["cy"]) == (32.0, 24.0) and (written["frames"][1]["cx"], written["frames"][1]["cy"]) == (40.0, 20.0)


def test_recapture_json_principal_point_is_normalised_from_the_image_corner(tmp_path):
    traj = preset_trajectory("static", 0.0, 1)
    data = json.loads(export_trajectory(traj, tmp_path, "c", "recapture json", (64, 48)).read_text())
    assert data["source_intrinsics"]["cx_over_width"] == 0.5 and data["source_intrinsics"]["cy_over_height"] == 0.5
    assert optical_axis_pixel(load(tmp_path / "c_00001.json"), 64, 48) == (31.5, 23.5)


# RealEstate10K / CameraCtrl pose text, written by hand: URL line, then timestamp fx fy cx cy k1 k2 and a
# row-major 3x4 world-to-camera matrix. Frame at 66733: turned 90° right (world-to-camera R_y(-90°));
# at 33366: centre at world x = 1 (t = -R c = (-1, 0, 0)); listed out of order on purpose.
REALESTATE10K_TXT = """https://www.youtube.com/watch?v=abcdefghijk
0 0.5 0.888889 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0
66733 0.6 1.066667 0.5 0.5 0 0 0 0 -1 0 0 1 0 0 1 0 0 0
33366 0.5 0.888889 0.52 0.48 0 0 1 0 0 -1 0 1 0 0 0 0 1 0
"""


def test_hand_written_realestate10k_poses_import_to_the_expected_trajectory(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text(REALESTATE10K_TXT)
    traj = load(path)  # auto: a .txt that is not COLMAP's
    assert traj.num_frames == 3
    assert torch.equal(traj.target_to_source[0], torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(traj.target_to_source[1], pose_from_params(MoveParams(truck_right=1.0)), rtol=0, atol=1e-12)
    torch.testing.assert_close(traj.target_to_source[2], pose_from_params(MoveParams(pan_right=90.0)), rtol=0, atol=1e-12)
    # fx and cx are per width, cy per height; square pixels: fy/W is fx/W (the file's fy is per height).
    torch.testing.assert_close(traj.target_intrinsics[1], torch.tensor([0.5, 0.5, 0.52, 0.48], dtype=torch.float64))
    torch.testing.assert_close(traj.target_intrinsics[2], torch.tensor([0.6, 0.6, 0.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("text, needle", [
    ("http://x\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0\n", "expected 19 numbers"),
    ("http://x\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 abc 0\n", "line 2: field 18 is not a number"),
    ("http://x\n0 -0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n", "focal length"),
    ("http://x\n", "lists no camera"),
])
def test_bad_realestate10k_files_are_rejected(tmp_path, text, needle):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ReCaptureInputError, match=needle) as err:
        load(path)
    assert err.value.input_name == "file"


# ReCamMaster's camera_extrinsics.json, written by hand: per frame and camera, Unreal's camera-to-world matrix
# written transposed (rows: forward, right, up, then the position in cm). cam01: frame1 is 100 cm to the right
# (Unreal +y); frame2 faces Unreal +y (turned 90 degrees right) 50 cm higher; frames listed out of order.
# cam02 stands still 3 m further forward.
RECAMMASTER_JSON = {
    "frame2": {"cam01": "[0 1 0 0] [-1 0 0 0] [0 0 1 0] [0 0 50 1]", "cam02": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [300 0 0 1]"},
    "frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]", "cam02": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [300 0 0 1]"},
    "frame1": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 100 0 1]", "cam02": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [300 0 0 1]"},
}


def test_hand_written_recammaster_extrinsics_import_to_the_expected_trajectory(tmp_path):
    path = tmp_path / "camera_extrinsics.json"
    path.write_text(json.dumps(RECAMMASTER_JSON))
    traj = load(path)  # auto: an object of frameN entries
    assert traj.num_frames == 3 and "cam01" in traj.label
    assert torch.equal(traj.target_to_source[0], torch.eye(4, dtype=torch.float64))
    # Unreal right = OpenCV x, Unreal up = OpenCV -y; centimetres become metres.
    torch.testing.assert_close(traj.target_to_source[1], pose_from_params(MoveParams(truck_right=1.0)), rtol=0, atol=1e-12)
    turned = pose_from_params(MoveParams(pan_right=90.0))
    turned[:3, 3] = torch.tensor([0.0, -0.5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(traj.target_to_source[2], turned, rtol=0, atol=1e-12)
    # No intrinsics in the file: every camera keeps the source's field of view (nothing zooms).
    assert torch.equal(traj.target_intrinsics, traj.source_intrinsics.expand(3, 4))
    still = load(path, camera=2, translation_scale=0.5)
    assert torch.equal(still.target_to_source, torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    world = load(path, camera=2, reference="file world is the source camera")
    torch.testing.assert_close(world.target_to_source[0, :3, 3], torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize("entries, camera, needle", [
    ({"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0]"}}, 1, "four bracketed rows"),
    ({"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 x 1]"}}, 1, "four bracketed rows"),
    ({"frame0": {"cam01": "[2 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}, 1, "not rotations"),
    ({"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}, 3, "has no cam03 (it has: cam01)"),
])
def test_bad_recammaster_files_are_rejected(tmp_path, entries, camera, needle):
    path = tmp_path / "camera_extrinsics.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ReCaptureInputError, match=re.escape(needle)):
        load(path, camera=camera)


# --- reading user-named files: regular files inside the folder, never blocking, never quoted --------------
MARKER = "RECAPTURE-MARKER-3f9c1e"  # text no message may ever show
FIFO_TIMEOUT_S = 60.0  # generous: a fixed reader refuses a FIFO at once; an unfixed one blocks until a writer comes


def unblock_fifo(fifo) -> bool:
    """Write to ``fifo`` if a reader waits on it (an unfixed reader blocks in open() until a writer comes)."""
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader waiting (ENXIO), or the FIFO is gone
        return False
    try:
        os.write(descriptor, b"not a camera file\n")
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return True


class FifoWatch:
    """Around a test that may block on a FIFO: unless the block ends without an error, a helper thread starts
    ``after_s`` seconds later (after the test's own timeout) to write to the FIFO until a reader blocked on it is
    released, so that a test of unfixed code fails instead of hanging, and leaves no reader blocked behind it."""

    def __init__(self, fifo, after_s: float = FIFO_TIMEOUT_S + 10.0, give_up_s: float = 600.0):
        self.fifo, self.after_s, self.give_up_s = fifo, after_s, give_up_s
        self.done = threading.Event()
        self.released = False
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        if self.done.wait(self.after_s):
            return
        deadline = time.monotonic() + self.give_up_s
        while time.monotonic() < deadline and not self.done.is_set():
            if unblock_fifo(self.fifo):
                self.released = True
                return
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            self.done.set()


def outcome_within(call, fifo, timeout_s: float = FIFO_TIMEOUT_S):
    """``call()``'s raised error or value; fails (after unblocking the reader) if it is still blocked after timeout_s."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout_s)
    blocked = worker.is_alive()
    if blocked:
        unblock_fifo(fifo)
        worker.join(10)
    assert not blocked, f"reading {fifo.name} was still blocked after {timeout_s:.0f} s"
    return outcome.get("error", outcome.get("value"))


@pytest.fixture
def folders(tmp_path):
    """(input, outside): the folder files are named in, and a folder beside it."""
    inside, outside = tmp_path / "input", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    return inside, outside


@pytest.mark.parametrize("linked, content", [
    ("cameras.txt", MARKER + "\n1 PINHOLE 640 480 500 510 320 240\n"),  # the first line would have been quoted
    ("cameras.txt", CAMERAS_TXT),  # a valid file outside is refused too, not read
    ("images.txt", IMAGES_TXT),
])
def test_a_colmap_file_linked_out_of_the_folder_is_refused_unread(folders, linked, content):
    inside, outside = folders
    model = write_colmap(inside / "model")
    (outside / linked).write_text(content)
    (model / linked).unlink()
    (model / linked).symlink_to(outside / linked)
    for name in ("model", "model/images.txt"):
        with pytest.raises(ReCaptureInputError) as err:
            import_trajectory(inside, name)
        assert err.value.input_name == "file"
        message = str(err.value)
        assert f"model/{linked}" in message and "outside" in message and "may not lead out of it" in message, message
        assert MARKER not in message and str(outside) not in message and str(inside) not in message
    with pytest.raises(ReCaptureInputError, match="outside"):
        camera_file_fingerprint(inside, "model/images.txt")


def test_links_that_stay_inside_the_folder_are_read(folders):
    inside, _ = folders
    write_colmap(inside / "model")
    (inside / "linked").mkdir()
    (inside / "linked" / "cameras.txt").symlink_to(inside / "model" / "cameras.txt")
    (inside / "linked" / "images.txt").symlink_to("../model/images.txt")
    assert torch.equal(import_trajectory(inside, "linked").target_to_source,
                       import_trajectory(inside, "model").target_to_source)


def test_a_folder_linked_out_is_refused(folders):
    inside, outside = folders
    write_colmap(outside / "model")
    (inside / "model").symlink_to(outside / "model", target_is_directory=True)
    for name in ("model", "model/images.txt"):
        with pytest.raises(ReCaptureInputError, match="resolves outside"):
            import_trajectory(inside, name)


@pytest.mark.parametrize("fifo_name, name", [
    ("path.json", "path.json"),
    ("poses.txt", "poses.txt"),
    ("model/cameras.txt", "model/images.txt"),
    ("model/images.txt", "model"),
])
def test_a_fifo_is_refused_at_once_and_never_blocks_the_reader(folders, fifo_name, name):
    inside, _ = folders
    write_colmap(inside / "model")
    fifo = inside / fifo_name
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    error = outcome_within(lambda: import_trajectory(inside, name), fifo)
    assert isinstance(error, ReCaptureInputError), error
    assert error.input_name == "file" and f"{fifo_name} is a FIFO (named pipe), not a regular file" in str(error)
    assert isinstance(outcome_within(lambda: camera_file_fingerprint(inside, name), fifo), ReCaptureInputError)


def test_model_folder_files_are_read_the_same_guarded_way(tmp_path):
    """Config files of model folders (depth_models, svd.backbone read them with read_json) may be links, as model
    folders often are, but never a FIFO."""
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    error = outcome_within(lambda: read_json(fifo, "depth_model"), fifo)
    assert isinstance(error, ReCaptureInputError) and "config.json is a FIFO" in str(error)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "real.json").write_text('{"model_type": "dpt"}')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").symlink_to(tmp_path / "elsewhere" / "real.json")
    assert read_json(tmp_path / "model" / "config.json", "depth_model") == {"model_type": "dpt"}


@pytest.mark.parametrize("swap", ["fifo", "link", "other file"])
def test_a_file_swapped_between_check_and_open_is_refused(tmp_path, monkeypatch, swap):
    path = tmp_path / "path.json"
    path.write_text(json.dumps(to_recapture_json(preset_trajectory("static", 0, 2))))
    (tmp_path / "other.json").write_text("{}")
    checked = paths.regular_file

    def check_then_swap(*args, **kwargs):
        result = checked(*args, **kwargs)
        path.unlink()
        if swap == "fifo":
            os.mkfifo(path)
        elif swap == "link":
            path.symlink_to(tmp_path / "other.json")
        else:
            (tmp_path / "other.json").rename(path)
        return result

    monkeypatch.setattr(paths, "regular_file", check_then_swap)
    error = outcome_within(lambda: import_trajectory(tmp_path, "path.json"), path)
    assert isinstance(error, ReCaptureInputError), error
    assert "path.json" in str(error) and "while being opened" in str(error)


def test_a_file_over_the_size_cap_is_named_with_the_cap(tmp_path):
    with open(tmp_path / "huge.json", "wb") as handle:  # sparse: no disk space, no time
        handle.truncate(MAX_TEXT_FILE_BYTES + 1)
    with pytest.raises(ReCaptureInputError) as err:
        import_trajectory(tmp_path, "huge.json")
    assert f"huge.json is {MAX_TEXT_FILE_BYTES + 1} bytes; at most {MAX_TEXT_FILE_BYTES} bytes are read" in str(err.value)


GOOD_JSON = to_recapture_json(preset_trajectory("static", 0, 2))


@pytest.mark.parametrize("name, content, needle", [
    ("a.txt", f"http://x\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 {MARKER} 0\n", "line 2: field 18 is not a number"),
    ("cameras.txt", f"{MARKER}\n", "cameras.txt line 1: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'"),
    ("cameras.txt", f"1 {MARKER} 640 480 1 2 3 4\n", "line 1: expected 'CAMERA_ID MODEL"),
    ("cameras.txt", f"1 PINHOLE 640 {MARKER} 500 510 320 240\n", "cameras.txt line 1: field 4 (HEIGHT) is not an integer"),
    ("cameras.txt", f"1 PINHOLE 640 480 500 510 320 {MARKER}\n", "cameras.txt line 1: field 8 is not a number"),
    ("images.txt", f"1 1 0 0 {MARKER} 0 0 0 1 a.png\n\n", "images.txt line 1: field 5 (QZ) is not a number"),
    ("images.txt", f"1 1 0 0 0 0 0 0 {MARKER} a.png\n\n", "images.txt line 1: its CAMERA_ID (field 9)"),
    ("images.txt", f"{MARKER} 1 0 0\n", "images.txt line 1: expected 'IMAGE_ID"),
    ("a.json", {**GOOD_JSON, "format": MARKER}, "is not a ReCapture camera file"),
    ("a.json", {**GOOD_JSON, "version": MARKER}, "has schema version a string"),
    ("a.json", {**GOOD_JSON, "convention": MARKER}, "unknown convention (a string)"),
    ("a.json", {**GOOD_JSON, "subject_distance": MARKER}, "subject_distance is a string, not a number"),
    ("a.json", {**GOOD_JSON, "image_size": [MARKER, 3]}, "cannot read a.json"),  # int() in the middle of parsing
    ("a.json", {"w": MARKER, "h": 4, "camera_angle_x": 1.0, "frames": [{"transform_matrix": gl_pose()}]}, "w is a string"),
    ("a.json", {"frame0": {MARKER: "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]", "cam07": "x"}}, "has no cam01 (it has: cam07)"),
])
def test_no_message_or_log_line_quotes_the_file(tmp_path, caplog, name, content, needle):
    if name in ("cameras.txt", "images.txt"):
        write_colmap(tmp_path / "model")
        (tmp_path / "model" / name).write_text(content)
        name = "model/images.txt"
    else:
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    caplog.set_level(logging.DEBUG)
    fmt = "recapture json" if isinstance(content, dict) and "format" in content else "auto"
    with pytest.raises(ReCaptureInputError) as err:
        import_trajectory(tmp_path, name, fmt)
    assert needle in str(err.value) and MARKER not in str(err.value)
    assert MARKER not in caplog.text


def test_a_distorted_camera_is_logged_by_its_line_not_its_text(tmp_path, caplog):
    write_colmap(tmp_path / "model", cameras=CAMERAS_TXT.replace("2 SIMPLE_RADIAL", f"{MARKER} SIMPLE_RADIAL"),
                 images=IMAGES_TXT.replace(" 0 2 frame_002", f" 0 {MARKER} frame_002"))
    caplog.set_level(logging.INFO)
    assert load(tmp_path / "model").num_frames == 3
    assert "cameras.txt line 4: lens distortion of model SIMPLE_RADIAL is ignored" in caplog.text
    assert MARKER not in caplog.text


def test_only_regular_files_inside_the_folder_are_listed(folders):
    inside, outside = folders
    write_colmap(inside / "model")
    (inside / "a.json").write_text("{}")
    (inside / "poses.txt").write_text(REALESTATE10K_TXT)
    os.mkfifo(inside / "fifo.json")
    (outside / "secret.json").write_text("{}")
    (inside / "out.json").symlink_to(outside / "secret.json")
    (inside / "in.json").symlink_to(inside / "a.json")
    write_colmap(outside / "model")
    (inside / "outside_model").symlink_to(outside / "model", target_is_directory=True)
    (inside / "linked_model").mkdir()
    (inside / "linked_model" / "images.txt").symlink_to(outside / "model" / "images.txt")
    assert list_camera_files(inside) == ["a.json", "in.json", "model/images.txt", "poses.txt"]


def test_the_fingerprint_covers_every_file_the_import_reads(tmp_path):
    write_colmap(tmp_path / "model")
    before = camera_file_fingerprint(tmp_path, "model/images.txt")
    assert camera_file_fingerprint(tmp_path, "model") == before
    (tmp_path / "model" / "cameras.txt").write_text(CAMERAS_TXT.replace("500 510", "501 510"))
    assert camera_file_fingerprint(tmp_path, "model/images.txt") != before
