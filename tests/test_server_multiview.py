"""MultiviewAnchor through POST /prompt: a tiny Stable Zero123 through ComfyUI's Image Only Checkpoint Loader."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comfy_host import PromptFailed
from test_server_anchor import WARP_WIDGETS, input_images, video  # noqa: F401  (module fixture)

pytestmark = pytest.mark.server

MULTIVIEW_WIDGETS = {"mode": "fuse with warp", "hole_threshold": 0.35, "resolution": 64, "seed": 5, "steps": 2,
                     "cfg": 3.0, "sampler_name": "euler", "scheduler": "normal", "source_elevation": 0.0,
                     "orbit_frames": 21}


def base_graph(frame: str, depth: str) -> dict:
    return {**video("1", frame), **video("2", depth),
            "3": {"class_type": "ReCaptureCameraTrajectory",
                  "inputs": {"preset": "orbit left", "amount": 40.0, "easing": "linear", "num_frames": 3,
                             "hfov_deg": 60.0, "subject_distance": 1.0}},
            "4": {"class_type": "ReCaptureDepthFromImage",
                  "inputs": {"depth_image": ["2", 0], "reading": "depth, bright = far", "near": 0.5, "far": 20.0,
                             "temporal_consistency": False, "frames": ["1", 0]}},
            "5": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_stable_zero123.safetensors"}},
            "6": {"class_type": "ReCaptureTestTinyCLIPVisionLoader", "inputs": {"clip_name": "tiny-clip-vision.safetensors"}}}


def save(node_id: str, images: list, prefix: str, mask: bool = False) -> dict:
    if not mask:
        return {node_id: {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": f"recapture_test/{prefix}"}}}
    return {f"{node_id}m": {"class_type": "MaskToImage", "inputs": {"mask": images}},
            node_id: {"class_type": "SaveImage", "inputs": {"images": [f"{node_id}m", 0], "filename_prefix": f"recapture_test/{prefix}"}}}


def read(paths, mode="RGB"):
    return [np.asarray(Image.open(path).convert(mode)) for path in paths]


def test_image_only_checkpoint_loader_to_multiview_anchor_to_saved_frames(comfy_server, input_images):  # noqa: F811
    frame, depth = input_images
    graph = {**base_graph(frame, depth),
             "7": {"class_type": "ReCaptureMultiviewAnchor",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "model": ["5", 0], "clip_vision": ["6", 0],
                              "vae": ["5", 2], "depth": ["4", 0], **MULTIVIEW_WIDGETS}},
             "8": {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "depth": ["4", 0],
                              **dict(WARP_WIDGETS, hole_dilation=0)}},
             **save("10", ["7", 0], "mv_anchor"), **save("11", ["7", 1], "mv_valid", mask=True),
             **save("12", ["7", 4], "mv_generated", mask=True), **save("13", ["7", 2], "mv_holes", mask=True),
             **save("14", ["8", 0], "mv_warp")}
    entry = comfy_server.run(graph)
    anchors, warps = read(comfy_server.output_files(entry, "10")), read(comfy_server.output_files(entry, "14"))
    valid, generated, holes = (np.stack(read(comfy_server.output_files(entry, n), "L")) > 127 for n in ("11", "12", "13"))
    assert len(anchors) == 3 and anchors[0].shape == warps[0].shape
    assert np.array_equal(valid.astype(int) + generated + holes, np.ones_like(valid, dtype=int))
    assert generated[2].any() and not holes.any()
    for anchor, warp, keep in zip(anchors, warps, valid):
        assert np.array_equal(anchor[keep], warp[keep])  # exact warp pixels, bit for bit after the same 8-bit save
    assert not np.array_equal(anchors[2][generated[2]], warps[2][generated[2]])  # holes were filled by the model


def test_the_checkpoints_missing_clip_vision_is_named(comfy_server, input_images):  # noqa: F811
    frame, depth = input_images
    graph = {**base_graph(frame, depth),
             "7": {"class_type": "ReCaptureMultiviewAnchor",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "model": ["5", 0], "clip_vision": ["5", 1],
                              "vae": ["5", 2], "depth": ["4", 0], **MULTIVIEW_WIDGETS}},
             "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}}
    with pytest.raises(PromptFailed, match="input 'clip_vision': no CLIP vision model arrived"):
        comfy_server.run(graph)

