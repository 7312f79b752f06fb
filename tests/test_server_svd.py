"""SVD loader, both LoRA trainers and LoRA save/load through POST /prompt, on the tiny SVD."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from comfy_host import PromptFailed

pytestmark = pytest.mark.server
TRAIN = {"steps": 2, "learning_rate": 1e-3, "rank": 4, "alpha": 4.0, "seed": 0, "gradient_checkpointing": True,
         "mixed_precision": "auto"}


@pytest.fixture(scope="module")
def frame_names(comfy_server):
    rng = np.random.default_rng(1)
    for name, size in (("svd_frame.png", 32), ("svd_odd.png", 30)):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(comfy_server.base_dir / "input" / name)
    depth = np.full((32, 32), 180, np.uint8)
    depth[8:24, 8:24] = 60
    Image.fromarray(depth).convert("RGB").save(comfy_server.base_dir / "input" / "svd_depth.png")
    return "svd_frame.png", "svd_odd.png", "svd_depth.png"


def clip(node_id, image, frames=4):
    return {f"{node_id}a": {"class_type": "LoadImage", "inputs": {"image": image}},
            node_id: {"class_type": "RepeatImageBatch", "inputs": {"image": [f"{node_id}a", 0], "amount": frames}}}


def test_loader_trainers_and_save_through_the_server(comfy_server, frame_names):
    frame, _, depth = frame_names
    graph = {
        **clip("1", frame), **clip("2", depth),
        "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
        "4": {"class_type": "ReCaptureCameraTrajectory",
              "inputs": {"preset": "orbit left", "amount": 5.0, "easing": "linear", "num_frames": 4, "hfov_deg": 60.0,
                         "subject_distance": 1.0}},
        "5": {"class_type": "ReCapturePointCloudWarp",
              "inputs": {"frames": ["1", 0], "trajectory": ["4", 0], "depth_image": ["2", 0], "reading": "depth, bright = far",
                         "near": 0.5, "far": 20.0, "match_subject_distance": True, "edge_threshold": 0.05,
                         "hole_dilation": 0, "hole_fill": "black", "warn_above": 0.35}},
        "6": {"class_type": "ReCaptureSpatialLoRATrain", "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **TRAIN,
                                                                   "frames_per_step": 2}},
        "7": {"class_type": "ReCaptureMaskedTemporalLoRATrain",
              "inputs": {"backbone": ["3", 0], "anchor": ["5", 0], "valid_mask": ["5", 1], "spatial_lora": ["6", 0], **TRAIN}},
        "8": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["6", 0], "filename_prefix": "test/run", "export_comfyui": True}},
        "9": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["7", 0], "filename_prefix": "test/run", "export_comfyui": True}},
    }
    entry = comfy_server.run(graph, timeout_s=900)
    spatial_path, spatial_comfy = entry["outputs"]["8"]["text"]
    temporal_path, _ = entry["outputs"]["9"]["text"]
    assert spatial_path.endswith("recapture/test/run_spatial_00001.safetensors")
    assert temporal_path.endswith("recapture/test/run_temporal_00001.safetensors")
    with safe_open(spatial_path, framework="pt") as handle:
        assert handle.metadata()["kind"] == "spatial" and handle.metadata()["steps"] == "2"
    with safe_open(spatial_comfy, framework="pt") as handle:
        assert all(k.startswith("diffusion_model.") for k in handle.keys())

    # The saved LoRA is listed, loads, and saves again without overwriting the first file.
    listed = comfy_server.object_info()["ReCaptureLoRALoad"]["input"]["required"]["lora_name"][0]
    assert "recapture/test/run_spatial_00001.safetensors" in listed
    assert not any(name.endswith("_comfyui.safetensors") for name in listed)
    again = comfy_server.run({
        "1": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": "recapture/test/run_spatial_00001.safetensors"}},
        "2": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["1", 0], "filename_prefix": "test/run", "export_comfyui": False}},
    })
    assert again["outputs"]["2"]["text"][0].endswith("run_spatial_00002.safetensors")


def test_a_frame_size_the_backbone_cannot_take_is_refused_before_training(comfy_server, frame_names):
    _, odd, _ = frame_names
    graph = {**clip("1", odd),
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "6": {"class_type": "ReCaptureSpatialLoRATrain", "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **TRAIN,
                                                                        "frames_per_step": 2}},
             "8": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["6", 0], "filename_prefix": "never", "export_comfyui": False}}}
    with pytest.raises(PromptFailed) as failure:
        comfy_server.run(graph)
    assert failure.value.exception_message.startswith(
        "ReCapture: input 'frames': is 30x30, but this backbone needs width and height in multiples of 4.")


SAMPLE = {"seed": 0, "steps": 2, "min_guidance": 1.0, "max_guidance": 3.0, "motion_bucket_id": 127, "fps": 7,
          "noise_aug_strength": 0.02, "decode_chunk_size": 4, "window": 0, "overlap": 4}


def test_end_to_end_recapture_to_a_saved_animation(comfy_server, frame_names):
    frame, _, depth = frame_names
    graph = {
        **clip("1", frame, frames=5), **clip("2", depth, frames=5),
        "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
        "4": {"class_type": "ReCaptureDepthFromImage",
              "inputs": {"depth_image": ["2", 0], "reading": "depth, bright = far", "near": 0.5, "far": 20.0,
                         "temporal_consistency": False, "frames": ["1", 0]}},
        "5": {"class_type": "ReCaptureCameraTrajectory",
              "inputs": {"preset": "truck left", "amount": 0.1, "easing": "ease-in-out", "num_frames": 5,
                         "hfov_deg": 60.0, "subject_distance": 1.0, "depth": ["4", 0]}},
        "6": {"class_type": "ReCapturePointCloudWarp",
              "inputs": {"frames": ["1", 0], "trajectory": ["5", 0], "depth": ["4", 0], "match_subject_distance": True,
                         "edge_threshold": 0.05, "hole_dilation": 0, "hole_fill": "black", "warn_above": 0.35}},
        "7": {"class_type": "ReCaptureSpatialLoRATrain", "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **TRAIN,
                                                                   "frames_per_step": 2}},
        "8": {"class_type": "ReCaptureMaskedTemporalLoRATrain",
              "inputs": {"backbone": ["3", 0], "anchor": ["6", 0], "valid_mask": ["6", 1], "spatial_lora": ["7", 0], **TRAIN}},
        "9": {"class_type": "ReCaptureDualLoRASample",
              "inputs": {"backbone": ["3", 0], "anchor": ["6", 0], "temporal_lora": ["8", 0], "spatial_lora": ["7", 0],
                         "temporal_strength": 1.0, "spatial_strength": 1.0, "start_strength": 1.0, **SAMPLE}},
        "10": {"class_type": "ReCaptureSDEditRefine",
               "inputs": {"backbone": ["3", 0], "frames": ["9", 0], "spatial_lora": ["7", 0], "strength": 0.3,
                          "spatial_strength": 1.0, **SAMPLE}},
        "11": {"class_type": "SaveAnimatedPNG",
               "inputs": {"images": ["10", 0], "filename_prefix": "recapture_test/reshoot", "fps": 7.0, "compress_level": 4}},
    }
    entry = comfy_server.run(graph, timeout_s=900)
    [path] = comfy_server.output_files(entry, "11")
    with Image.open(path) as animation:
        assert animation.size == (32, 32)
        assert animation.n_frames == 5


def test_single_file_checkpoint_loader_feeds_training(comfy_server, frame_names):
    frame, _, _ = frame_names
    info = comfy_server.object_info()["ReCaptureSVDCheckpointLoader"]["input"]["required"]
    assert "tiny_svd.safetensors" in info["ckpt_name"][0] and "like tiny-svd" in info["architecture"][0]
    graph = {**clip("1", frame),
             "3": {"class_type": "ReCaptureSVDCheckpointLoader",
                   "inputs": {"ckpt_name": "tiny_svd.safetensors", "architecture": "like tiny-svd", "dtype": "fp32"}},
             "6": {"class_type": "ReCaptureSpatialLoRATrain", "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **TRAIN,
                                                                        "frames_per_step": 2}},
             "8": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["6", 0], "filename_prefix": "single_file",
                                                                "export_comfyui": False}}}
    entry = comfy_server.run(graph)
    assert entry["outputs"]["8"]["text"][0].endswith("single_file_spatial_00001.safetensors")


def test_a_video_loaders_float_fps_connects_to_the_samplers(comfy_server, frame_names):
    """VideoHelperSuite's loaded_fps and core Get Video Components' fps are FLOAT: the link must be accepted."""
    frame, _, _ = frame_names
    graph = {**clip("1", frame),
             "2": {"class_type": "PrimitiveFloat", "inputs": {"value": 29.97}},
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "4": {"class_type": "ReCaptureSDEditRefine",
                   "inputs": {"backbone": ["3", 0], "frames": ["1", 0], "strength": 0.3, "spatial_strength": 1.0,
                              **{**SAMPLE, "fps": ["2", 0]}}},
             "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}}
    comfy_server.run(graph)
