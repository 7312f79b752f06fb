"""Camera paths from two Load3D views (LOAD3D_CAMERA): closed-form poses, errors, and the node in the server."""
from __future__ import annotations

import math

import pytest
import torch

from recapture_core.camera.load3d import look_at_pose, trajectory_from_load3d
from recapture_core.camera.presets import preset_trajectory
from recapture_core.errors import ReCaptureInputError


def view(position, target=(0.0, 0.0, 0.0), zoom=1.0, kind="perspective") -> dict:
    """A LOAD3D_CAMERA as Load3D hands it on."""
    return {"position": dict(zip("xyz", position)), "target": dict(zip("xyz", target)), "zoom": zoom, "cameraType": kind}


def test_a_three_js_camera_looking_down_minus_z_is_the_opencv_identity_rotation_flipped():
    pose = look_at_pose(torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    # OpenCV axes: x right = world +x, y down = world -y, z forward = world -z.
    assert torch.equal(pose[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)))
    assert torch.equal(pose[:3, 3], torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))


@pytest.mark.parametrize("degrees", [10.0, 30.0, 75.0])
def test_two_views_of_one_target_give_the_presets_orbit_frame_by_frame(degrees):
    angle = math.radians(degrees)
    moved = (5.0 * math.sin(angle), 0.0, 5.0 * math.cos(angle))  # the camera swung towards +x: to the right
    path = trajectory_from_load3d(view((0.0, 0.0, 5.0)), view(moved), 7, "ease-in-out", subject_distance=2.0)
    orbit = preset_trajectory("orbit right", degrees, 7, "ease-in-out", subject_distance=2.0)
    torch.testing.assert_close(path.target_to_source, orbit.target_to_source, atol=1e-12, rtol=0)
    assert torch.equal(path.target_to_source[0], torch.eye(4, dtype=torch.float64))
    assert path.subject_distance == 2.0


def test_a_dolly_and_a_zoom_between_views():
    path = trajectory_from_load3d(view((0.0, 1.0, 4.0), (0.0, 1.0, 0.0)), view((0.0, 1.0, 2.0), (0.0, 1.0, 0.0), zoom=2.0),
                                  3, "linear")
    last = path.target_to_source[-1]
    torch.testing.assert_close(last[:3, :3], torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(last[:3, 3], torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64), atol=1e-12, rtol=0)  # half way in
    torch.testing.assert_close(path.zoom, torch.tensor([1.0, math.sqrt(2.0), 2.0], dtype=torch.float64))


@pytest.mark.parametrize("camera, message", [
    ({"position": {"x": 0, "y": 0}, "target": {"x": 0, "y": 0, "z": 0}}, r"start.*no position with x, y and z"),
    (view((0.0, 0.0, 0.0)), r"start.*position on its target"),
    (view((0.0, 0.0, 5.0), kind="orthographic"), r"start.*orthographic.*perspective"),
    (view((float("nan"), 0.0, 5.0)), r"start.*non-finite position"),
    (view((0.0, 0.0, 5.0), zoom=0.0), r"start.*zoom 0.0"),
    ("not a camera", r"start.*expected Load3D's camera_info"),
])
def test_bad_views_are_named(camera, message):
    with pytest.raises(ReCaptureInputError, match=message):
        trajectory_from_load3d(camera, view((1.0, 0.0, 5.0)), 5)


def test_looking_straight_down_still_gives_a_rotation():
    pose = look_at_pose(torch.tensor([0.0, 5.0, 0.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    R = pose[:3, :3]
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=torch.float64))
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)


@pytest.mark.server
def test_the_node_turns_two_viewer_cameras_into_a_trajectory(comfy_server):
    def camera(x, z, kind="perspective"):
        return {"class_type": "ReCaptureTestLoad3DCamera",
                "inputs": {"x": x, "y": 0.0, "z": z, "target_x": 0.0, "target_y": 0.0, "target_z": 0.0, "zoom": 1.0,
                           "camera_type": kind}}

    angle = math.radians(20.0)
    graph = {"start": camera(0.0, 5.0), "end": camera(5 * math.sin(angle), 5 * math.cos(angle)),
             "path": {"class_type": "ReCaptureCameraFromLoad3D",
                      "inputs": {"start": ["start", 0], "end": ["end", 0], "easing": "linear", "num_frames": 5,
                                 "hfov_deg": 60.0, "subject_distance": 1.0}},
             "show": {"class_type": "PreviewAny", "inputs": {"source": ["path", 1]}}}
    entry = comfy_server.run(graph)
    summary = " ".join(entry["outputs"]["show"]["text"])
    assert "5 frames" in summary and "20.0" in summary, summary
    graph["end"] = camera(1.0, 5.0, "orthographic")
    with pytest.raises(Exception, match=r"input 'end'.*orthographic"):
        comfy_server.run(graph)
