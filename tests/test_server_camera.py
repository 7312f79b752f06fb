"""Camera nodes through POST /prompt on the real server."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptRejected

pytestmark = pytest.mark.server

ORBIT = {"class_type": "ReCaptureCameraTrajectory",
         "inputs": {"preset": "orbit left", "amount": 30.0, "easing": "ease-in-out", "num_frames": 14,
                    "hfov_deg": 60.0, "subject_distance": 2.0}}


def test_trajectory_preview_save_image(comfy_server):
    graph = {
        "1": ORBIT,
        "2": {"class_type": "ReCaptureCameraTrajectory",
              "inputs": {**ORBIT["inputs"], "preset": "dolly in", "amount": 0.2}},
        "3": {"class_type": "ReCaptureCameraCompose", "inputs": {"first": ["1", 0], "second": ["2", 0]}},
        "4": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["3", 0], "width": 640, "height": 320}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "recapture_test/camera"}},
    }
    entry = comfy_server.run(graph)
    [path] = comfy_server.output_files(entry, "5")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape == (320, 640, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # frusta were drawn, not a blank canvas


def test_export_then_import_through_the_server(comfy_server):
    export = {"1": ORBIT, "2": {"class_type": "ReCaptureCameraExport",
                               "inputs": {"trajectory": ["1", 0], "filename_prefix": "recapture_test/cams/orbit",
                                          "format": "recapture json", "width": 1024, "height": 576}}}
    entry = comfy_server.run(export)
    [written] = entry["outputs"]["2"]["text"]
    data = json.loads(open(written).read())
    assert data["format"] == "recapture.camera_trajectory" and len(data["frames"]) == 14

    inputs = comfy_server.base_dir / "input" / "cams"
    inputs.mkdir(parents=True, exist_ok=True)
    shutil.copy(written, inputs / "orbit.json")
    load = {"1": {"class_type": "ReCaptureCameraImport",
                  "inputs": {"file": "cams/orbit.json", "format": "auto", "reference": "first pose is the source camera",
                             "translation_scale": 1.0, "subject_distance": 1.0}},
            "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 320, "height": 160}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    comfy_server.run(load)
    assert "cams/orbit.json" in comfy_server.object_info()["ReCaptureCameraImport"]["input"]["required"]["file"][0]


def test_bad_keyframes_are_refused_before_anything_runs(comfy_server):
    graph = {"1": {"class_type": "ReCaptureCameraKeyframes",
                   "inputs": {"keyframes": "0:\n12: wobble=3", "interpolation": "pose: slerp + spline",
                              "num_frames": 25, "hfov_deg": 60.0, "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 320, "height": 160}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(graph)
    assert "line 2: unknown parameter 'wobble'" in str(rejected.value)


def test_a_file_name_outside_the_list_is_refused(comfy_server):
    graph = {"1": {"class_type": "ReCaptureCameraImport",
                   "inputs": {"file": "../../etc/passwd", "format": "auto", "reference": "first pose is the source camera",
                              "translation_scale": 1.0, "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 320, "height": 160}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    with pytest.raises(PromptRejected):
        comfy_server.submit(graph)


def test_a_realestate10k_pose_file_is_listed_and_drives_the_warp(comfy_server):
    from test_camera_files import REALESTATE10K_TXT

    folder = comfy_server.base_dir / "input" / "cams"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "re10k_clip.txt").write_text(REALESTATE10K_TXT)
    listed = comfy_server.object_info()["ReCaptureCameraImport"]["input"]["required"]["file"][0]
    assert "cams/re10k_clip.txt" in listed and not any(name.endswith("cameras.txt") for name in listed)
    graph = {"1": {"class_type": "ReCaptureCameraImport",
                   "inputs": {"file": "cams/re10k_clip.txt", "format": "auto", "reference": "first pose is the source camera",
                              "translation_scale": 0.1, "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraExport",
                   "inputs": {"trajectory": ["1", 0], "filename_prefix": "recapture_test/cams/from_re10k",
                              "format": "recapture json", "width": 64, "height": 36}}}
    written = comfy_server.run(graph)["outputs"]["2"]["text"][0]
    data = json.loads(open(written).read())
    assert len(data["frames"]) == 3 and data["frames"][1]["target_to_source"][0][3] == pytest.approx(0.1)


def test_a_recammaster_extrinsics_file_imports_the_chosen_camera_through_the_server(comfy_server):
    from test_camera_files import RECAMMASTER_JSON

    folder = comfy_server.base_dir / "input" / "cams"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "camera_extrinsics.json").write_text(json.dumps(RECAMMASTER_JSON))
    assert "cams/camera_extrinsics.json" in comfy_server.object_info()["ReCaptureCameraImport"]["input"]["required"]["file"][0]
    exported = {}
    for camera in (1, 2):
        graph = {"1": {"class_type": "ReCaptureCameraImport",
                       "inputs": {"file": "cams/camera_extrinsics.json", "format": "auto",
                                  "reference": "first pose is the source camera", "translation_scale": 0.5,
                                  "subject_distance": 1.0, "camera": camera}},
                 "2": {"class_type": "ReCaptureCameraExport",
                       "inputs": {"trajectory": ["1", 0], "filename_prefix": f"recapture_test/cams/from_recam_{camera}",
                                  "format": "recapture json", "width": 64, "height": 36}}}
        exported[camera] = json.loads(open(comfy_server.run(graph)["outputs"]["2"]["text"][0]).read())
    assert exported[1]["frames"][1]["target_to_source"][0][3] == pytest.approx(0.5)  # 100 cm right, scaled by 0.5
    assert all(frame["target_to_source"][0][3] == 0.0 for frame in exported[2]["frames"])  # cam02 stands still
