"""The anchor stage through POST /prompt on the real server: depth nodes and PointCloudWarp."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptFailed

pytestmark = pytest.mark.server
W, H = 96, 64


@pytest.fixture(scope="module")
def input_images(comfy_server):
    """A textured frame and its depth map (bright = far) in the server's input folder."""
    rng = np.random.default_rng(0)
    frame = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    depth = np.full((H, W), 200, np.uint8)
    depth[16:48, 30:66] = 60  # a near box in front of a far wall
    Image.fromarray(frame).save(comfy_server.base_dir / "input" / "rc_frame.png")
    Image.fromarray(depth).convert("RGB").save(comfy_server.base_dir / "input" / "rc_depth.png")
    return "rc_frame.png", "rc_depth.png"


def video(node_id: str, image: str, frames: int = 3) -> dict:
    return {f"{node_id}a": {"class_type": "LoadImage", "inputs": {"image": image}},
            node_id: {"class_type": "RepeatImageBatch", "inputs": {"image": [f"{node_id}a", 0], "amount": frames}}}


def trajectory(num_frames: int = 3) -> dict:
    return {"class_type": "ReCaptureCameraTrajectory",
            "inputs": {"preset": "truck right", "amount": 0.1, "easing": "linear", "num_frames": num_frames,
                       "hfov_deg": 60.0, "subject_distance": 1.0}}


WARP_WIDGETS = {"match_subject_distance": True, "edge_threshold": 0.05, "hole_dilation": 1, "hole_fill": "black",
                "warn_above": 0.35}


def test_depth_image_to_point_cloud_warp_to_saved_anchor_and_masks(comfy_server, input_images):
    frame, depth = input_images
    graph = {**video("1", frame), **video("2", depth),
             "3": trajectory(),
             "4": {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "depth_image": ["2", 0],
                              "reading": "depth, bright = far", "near": 0.5, "far": 20.0, **WARP_WIDGETS}},
             "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "recapture_test/anchor"}},
             "6": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 2]}},
             "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "recapture_test/holes"}},
             "8": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 1]}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "recapture_test/valid"}}}
    entry = comfy_server.run(graph)
    anchors, holes, valids = (comfy_server.output_files(entry, n) for n in ("5", "7", "9"))
    assert len(anchors) == len(holes) == len(valids) == 3
    first_anchor = np.asarray(Image.open(anchors[0]).convert("RGB"))
    source = np.asarray(Image.open(comfy_server.base_dir / "input" / frame).convert("RGB"))
    assert first_anchor.shape == (H, W, 3)
    assert np.array_equal(first_anchor, source)  # frame 0 of a preset is the source camera
    last_holes = np.asarray(Image.open(holes[-1]).convert("L")) > 127
    last_valid = np.asarray(Image.open(valids[-1]).convert("L")) > 127
    assert last_holes.any() and np.array_equal(last_holes, ~last_valid)


def test_depth_estimate_with_a_tiny_model_feeds_the_warp(comfy_server, input_images):
    frame, _ = input_images
    info = comfy_server.object_info()["ReCaptureDepthEstimate"]["input"]["required"]["depth_model"][0]
    assert {"tiny-depth_anything", "tiny-dpt", "tiny-zoedepth"} <= set(info)
    graph = {**video("1", frame),
             "2": {"class_type": "ReCaptureDepthEstimate",
                   "inputs": {"frames": ["1", 0], "depth_model": "tiny-zoedepth", "batch_size": 2, "temporal_consistency": True}},
             "3": trajectory(),
             "4": {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "depth": ["2", 0], **WARP_WIDGETS}},
             "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "recapture_test/est_anchor"}},
             "6": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "recapture_test/est_depth"}}}
    entry = comfy_server.run(graph)
    assert len(comfy_server.output_files(entry, "5")) == 3 and len(comfy_server.output_files(entry, "6")) == 3


def test_trajectory_length_mismatch_fails_with_both_counts(comfy_server, input_images):
    frame, depth = input_images
    graph = {**video("1", frame), **video("2", depth),
             "3": trajectory(num_frames=5),
             "4": {"class_type": "ReCaptureDepthFromImage",
                   "inputs": {"depth_image": ["2", 0], "reading": "depth, bright = far", "near": 0.5, "far": 20.0,
                              "temporal_consistency": False, "frames": ["1", 0]}},
             "5": {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "depth": ["4", 0], **WARP_WIDGETS}},
             "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}}
    with pytest.raises(PromptFailed) as failure:
        comfy_server.run(graph)
    assert failure.value.exception_message.startswith("ReCapture: input 'trajectory': has 5 frames but frames has 3.")


def test_warp_without_any_depth_is_a_clear_error(comfy_server, input_images):
    frame, _ = input_images
    graph = {**video("1", frame), "3": trajectory(),
             "5": {"class_type": "ReCapturePointCloudWarp", "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], **WARP_WIDGETS}},
             "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}}
    with pytest.raises(PromptFailed, match="connect exactly one of depth"):
        comfy_server.run(graph)
