"""VideoHelperSuite's Meta Batch Manager: a clip run chunk by chunk, one prompt per chunk.

Through the real server with faithful stand-ins for VHS's manager and a loader fed by it
(tests/comfy_support: VHS's class name, its frames_per_batch, its re-queue counter in the prompt).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_host import PromptFailed

pytestmark = pytest.mark.server
W, H, FRAMES, CHUNK = 64, 48, 12, 4


@pytest.fixture(scope="module")
def input_images(comfy_server):
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(comfy_server.base_dir / "input" / "mb_frame.png")
    depth = np.full((H, W), 200, np.uint8)
    depth[12:36, 20:44] = 60  # a near box before a far wall (bright = far)
    Image.fromarray(depth).convert("RGB").save(comfy_server.base_dir / "input" / "mb_depth.png")
    return "mb_frame.png", "mb_depth.png"


def clip_graph(input_images, prefix, requeue=None, temporal_consistency=False, trajectory_frames=FRAMES):
    """The whole clip's warp, or (requeue given) the chunk a Meta Batch Manager run hands out on that re-queue."""
    frame, depth = input_images
    graph = {"1a": {"class_type": "LoadImage", "inputs": {"image": frame}},
             "1": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1a", 0], "amount": FRAMES}},
             "2a": {"class_type": "LoadImage", "inputs": {"image": depth}},
             "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2a", 0], "amount": FRAMES}},
             "3": {"class_type": "ReCaptureCameraTrajectory",
                   "inputs": {"preset": "orbit left", "amount": 15.0, "easing": "linear", "num_frames": trajectory_frames,
                              "hfov_deg": 60.0, "subject_distance": 1.0}},
             "4": {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["1", 0], "trajectory": ["3", 0], "depth_image": ["2", 0],
                              "reading": "depth, bright = far", "near": 0.5, "far": 20.0, "match_subject_distance": True,
                              "edge_threshold": 0.05, "hole_dilation": 0, "hole_fill": "black", "warn_above": 0.9,
                              "temporal_consistency": temporal_consistency}},
             "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix}}}
    if requeue is not None:
        graph["m"] = {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": CHUNK, "requeue": requeue}}
        graph["c1"] = {"class_type": "ReCaptureTestChunkedClip", "inputs": {"images": ["1", 0], "meta_batch": ["m", 0]}}
        graph["c2"] = {"class_type": "ReCaptureTestChunkedClip", "inputs": {"images": ["2", 0], "meta_batch": ["m", 0]}}
        graph["4"]["inputs"].update(frames=["c1", 0], depth_image=["c2", 0])
    return graph


def saved_frames(comfy_server, graph) -> list[np.ndarray]:
    entry = comfy_server.run(graph)
    return [np.asarray(Image.open(path).convert("RGB")) for path in comfy_server.output_files(entry, "5")]


def test_the_camera_path_continues_across_chunks_by_absolute_frame(comfy_server, input_images):
    whole = saved_frames(comfy_server, clip_graph(input_images, "recapture_test/mb/whole"))
    chunks = [saved_frames(comfy_server, clip_graph(input_images, f"recapture_test/mb/chunk{k}", requeue=k))
              for k in range(FRAMES // CHUNK)]
    assert [len(c) for c in chunks] == [CHUNK] * (FRAMES // CHUNK)
    for k, chunk in enumerate(chunks):
        for i, frame in enumerate(chunk):
            assert np.array_equal(frame, whole[k * CHUNK + i]), f"chunk {k}, frame {i}"
    # A path that restarted with every chunk (what each chunk would get from its own 4-frame trajectory) differs.
    assert not np.array_equal(chunks[1][0], whole[0])


def test_a_trajectory_shorter_than_the_clip_is_refused_naming_the_chunk(comfy_server, input_images):
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run(clip_graph(input_images, "recapture_test/mb/short", requeue=1, trajectory_frames=CHUNK))
    message = str(failed.value)
    assert "has 4 frames but Meta Batch chunk 2 (frames 4..7 of the clip) needs frames 4..7" in message
    assert "one frame per frame of the whole clip" in message


def test_depth_alignment_under_meta_batch_is_refused_before_any_work(comfy_server, input_images):
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run(clip_graph(input_images, "recapture_test/mb/aligned", requeue=0, temporal_consistency=True))
    message = str(failed.value)
    assert "PointCloudWarp cannot run chunk by chunk" in message and "Turn temporal_consistency off for chunks" in message


def test_depth_from_image_with_temporal_consistency_refuses_chunks(comfy_server, input_images):
    graph = clip_graph(input_images, "recapture_test/mb/depth_node", requeue=0)
    graph["6"] = {"class_type": "ReCaptureDepthFromImage",
                  "inputs": {"depth_image": ["c2", 0], "reading": "depth, bright = far", "near": 0.5, "far": 20.0,
                             "temporal_consistency": True}}
    graph["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 1]}}
    del graph["5"], graph["4"]
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run(graph)
    assert "DepthFromImage cannot run chunk by chunk" in str(failed.value)
    graph["6"]["inputs"]["temporal_consistency"] = False  # each chunk read on its own: runs
    comfy_server.run(graph)


def test_meta_batch_rules_of_the_nodes(pack):
    """Nodes that need the whole clip refuse chunks; anchors take their window; the subject distance of the first
    chunk stays the clip's."""
    import importlib

    meta_batch = importlib.import_module(f"{pack.__name__}.nodes._meta_batch")
    rules = {name: getattr(cls, "META_BATCH", None) for name, cls in pack.NODE_CLASS_MAPPINGS.items()}
    for name in ("ReCaptureSpatialLoRATrain", "ReCaptureMaskedTemporalLoRATrain", "ReCaptureSpatialLoRATrainModel",
                 "ReCaptureMaskedTemporalLoRATrainModel", "ReCaptureDualLoRASample", "ReCaptureSDEditRefine"):
        assert rules[name].whole_clip and not rules[name].whole_clip_when, name
    assert rules["ReCapturePointCloudWarp"].windowed and rules["ReCaptureMultiviewAnchor"].windowed
    assert rules["ReCaptureDepthEstimate"].whole_clip_when == ("temporal_consistency",)
    hidden = pack.NODE_CLASS_MAPPINGS["ReCaptureDualLoRASample"].INPUT_TYPES()["hidden"]
    assert hidden["recapture_prompt"] == "PROMPT" and hidden["recapture_node_id"] == "UNIQUE_ID"

    manager = {"m": {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": 8, "requeue": 2}}}
    assert meta_batch.current_chunk({"1": {"class_type": "LoadImage", "inputs": {}}}) is None
    chunk = meta_batch.current_chunk(manager, "7")
    assert (chunk.first_frame, chunk.node) == (16, "7")
    with pytest.raises(Exception, match="2 Meta Batch Managers"):
        meta_batch.current_chunk({**manager, "n": manager["m"]})
    with pytest.raises(Exception, match="a linked value cannot be read"):
        meta_batch.current_chunk({"m": {"class_type": "VHS_BatchManager", "inputs": {"frames_per_batch": ["9", 0]}}})

    from recapture_core.camera.presets import preset_trajectory
    from recapture_core.depth import DepthMaps

    path = preset_trajectory("orbit left", 10.0, 24, subject_distance=1.0)
    first = meta_batch.Chunk("m", 0, 8, "warp-node")
    near, far = DepthMaps(torch.full((8, 6, 6), 2.0), "metric"), DepthMaps(torch.full((8, 6, 6), 5.0), "metric")
    window, distance = meta_batch.anchor_window(first, path, 8, near, True)
    assert distance == 2.0 and torch.equal(window.target_to_source, path.target_to_source[:8])
    window, distance = meta_batch.anchor_window(meta_batch.Chunk("m", 2, 8, "warp-node"), path, 8, far, True)
    assert distance == 2.0 and torch.equal(window.target_to_source, path.target_to_source[16:])  # the first chunk's scale
    assert meta_batch.anchor_window(None, path, 24, far, True) == (path, None)
