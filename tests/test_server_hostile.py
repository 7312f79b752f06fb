"""Hostile input through the real server: every bad input gets a ReCapture message naming it (or its file)
and the fix, no node hands on NaN or silently wrong data, no name leaves its folder, nothing stalls."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from comfy_host import PromptFailed, PromptRejected

pytestmark = pytest.mark.server
SAMPLE = {"seed": 0, "steps": 2, "min_guidance": 1.0, "max_guidance": 3.0, "motion_bucket_id": 127, "fps": 7,
          "noise_aug_strength": 0.02, "decode_chunk_size": 4, "window": 0, "overlap": 1}
TRAIN = {"steps": 3, "learning_rate": 1e-3, "rank": 4, "alpha": 4.0, "seed": 0, "gradient_checkpointing": True,
         "mixed_precision": "auto"}


@pytest.fixture(scope="module")
def inputs(comfy_server):
    """Images, camera files and damaged model files in the server's folders."""
    base = comfy_server.base_dir
    rng = np.random.default_rng(5)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(base / "input" / "hostile_frame.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(base / "input" / "hostile_black.png")
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(base / "input" / "hostile_1x1.png")
    # Near-flat 8-bit depth maps (0.5 +- 1/255), one per frame, as a depth pack gives for a blank wall.
    flat = [Image.fromarray((128 + rng.integers(-1, 2, (32, 32))).astype(np.uint8)).convert("RGB") for _ in range(8)]
    flat[0].save(base / "input" / "hostile_flat_depth.png", save_all=True, append_images=flat[1:])
    cams = base / "input" / "hostile_cams"
    cams.mkdir(exist_ok=True)
    (cams / "nested.json").write_text("[" * 100000 + "]" * 100000)
    (cams / "angle_zero.json").write_text(json.dumps({"camera_angle_x": 0, "w": 64, "h": 48, "frames": [
        {"transform_matrix": np.eye(4).tolist()}, {"transform_matrix": np.eye(4).tolist()}]}))
    (cams / "odd_structure.json").write_text(json.dumps({"w": 64, "h": 48, "fl_x": 50, "frames": [1, 2, 3]}))

    models = base / "models"
    broken_svd = models / "diffusers" / "broken-index"
    broken_svd.mkdir(parents=True, exist_ok=True)
    (broken_svd / "model_index.json").write_bytes(b"\xff\xfe\x00not utf-8 \x9c")
    checkpoint = (models / "checkpoints" / "tiny_svd.safetensors").read_bytes()
    (models / "checkpoints" / "truncated_svd.safetensors").write_bytes(checkpoint[: len(checkpoint) // 2])
    (models / "checkpoints" / "not_safetensors_svd.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    no_unet = models / "diffusers" / "no-unet-svd"  # listed (its index says SVD), but a component is missing
    shutil.copytree(models / "diffusers" / "tiny-svd", no_unet, dirs_exist_ok=True)
    shutil.rmtree(no_unet / "unet")
    depth = models / "depth" / "truncated-dpt"
    shutil.copytree(models / "depth" / "tiny-dpt", depth, dirs_exist_ok=True)
    weights = depth / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    return base


def clip(node_id: str, image: str, frames: int = 4) -> dict:
    return {f"{node_id}a": {"class_type": "LoadImage", "inputs": {"image": image}},
            node_id: {"class_type": "RepeatImageBatch", "inputs": {"image": [f"{node_id}a", 0], "amount": frames}}}


def foreign(node_id: str, image_node: str, kind: str) -> dict:
    return {node_id: {"class_type": "ReCaptureTestForeignValue", "inputs": {"image": [image_node, 0], "kind": kind}}}


def preview(node_id: str, socket: int = 0, mask: bool = False) -> dict:
    """An output node on ``node_id``'s output (ComfyUI runs only what leads to one)."""
    source = [node_id, socket]
    extra = {}
    if mask:
        extra = {f"{node_id}_image": {"class_type": "MaskToImage", "inputs": {"mask": source}}}
        source = [f"{node_id}_image", 0]
    return {**extra, f"{node_id}_preview": {"class_type": "PreviewImage", "inputs": {"images": source}}}


def fails_naming(comfy_server, graph: dict, input_name: str, *fragments: str) -> str:
    """The graph fails with a ReCapture message naming ``input_name`` and holding ``fragments``."""
    with pytest.raises(PromptFailed) as failure:
        comfy_server.run(graph, timeout_s=600)
    message = failure.value.exception_message
    assert failure.value.exception_type.endswith("ReCaptureInputError"), message
    assert message.startswith(f"ReCapture: input '{input_name}': "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def warp(frames: list, depth: dict) -> dict:
    return {"class_type": "ReCapturePointCloudWarp",
            "inputs": {"frames": frames, "trajectory": ["t", 0], "match_subject_distance": True, "edge_threshold": 0.05,
                       "hole_dilation": 0, "hole_fill": "black", "warn_above": 0.35, **depth}}


TRAJECTORY = {"t": {"class_type": "ReCaptureCameraTrajectory",
                    "inputs": {"preset": "truck left", "amount": 0.05, "easing": "linear", "num_frames": 4,
                               "hfov_deg": 60.0, "subject_distance": 1.0}}}


# --- tensors from other packs ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, socket, fragments", [
    ("image 0..255", 0, ("values must lie in 0..1, found", "8-bit values 0..255: divide by 255")),
    ("image with NaN", 0, ("NaN or infinite",)),
    ("uint8 image", 0, ("holds uint8 values",)),
])
def test_images_from_other_packs_on_another_scale_are_named_before_training(comfy_server, inputs, kind, socket, fragments):
    graph = {**clip("1", "hostile_frame.png"), **foreign("2", "1", kind),
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "4": {"class_type": "ReCaptureSpatialLoRATrain",
                   "inputs": {"backbone": ["3", 0], "frames": ["2", socket], **TRAIN, "frames_per_step": 2}},
             "5": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["4", 0], "filename_prefix": "hostile/never",
                                                                "export_comfyui": False}}}
    fails_naming(comfy_server, graph, "frames", *fragments)
    assert not (inputs / "models" / "loras" / "recapture" / "hostile").exists()


def test_a_mask_on_another_scale_and_a_plain_tensor_as_depth_are_named(comfy_server, inputs):
    base = {**clip("1", "hostile_frame.png"), **TRAJECTORY}
    graph = {**base, **foreign("2", "1", "mask 0..255"),
             "3": {"class_type": "ReCaptureHoleMask", "inputs": {"valid_mask": ["2", 1], "dilate_px": 0}}, **preview("3", mask=True)}
    fails_naming(comfy_server, graph, "valid_mask", "values must lie in 0..1")
    graph = {**base, **foreign("2", "1", "plain tensor as DEPTH"), "3": warp(["1", 0], {"depth": ["2", 2]}), **preview("3")}
    fails_naming(comfy_server, graph, "depth", "expected ReCapture's DepthMaps", "got torch.Tensor")


def test_a_black_depth_image_is_not_taken_for_a_flat_wall(comfy_server, inputs):
    graph = {**clip("1", "hostile_frame.png"), **clip("2", "hostile_black.png"), **TRAJECTORY,
             "3": warp(["1", 0], {"depth_image": ["2", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0}),
             **preview("3")}
    fails_naming(comfy_server, graph, "depth_image", "one flat grey value", "all black or all white")


def test_depth_estimate_on_a_1x1_video_says_so(comfy_server, inputs):
    graph = {**clip("1", "hostile_1x1.png"),
             "2": {"class_type": "ReCaptureDepthEstimate", "inputs": {"frames": ["1", 0], "depth_model": "tiny-dpt",
                                                                     "batch_size": 4, "temporal_consistency": True}},
             **preview("2", socket=1)}
    fails_naming(comfy_server, graph, "frames", "are 1x1 pixels; depth models need at least 8")


def test_near_flat_8bit_depth_with_alignment_keeps_order_and_stays_finite(comfy_server, inputs):
    """The alignment used to invert frames (scales down to -114); now the anchor comes out finite and valid."""
    graph = {"1a": {"class_type": "LoadImage", "inputs": {"image": "hostile_flat_depth.png"}},
             "1": {"class_type": "ImageScale", "inputs": {"image": ["1a", 0], "upscale_method": "nearest-exact",
                                                         "width": 32, "height": 32, "crop": "disabled"}},
             "2": {"class_type": "ReCaptureDepthFromImage",
                   "inputs": {"depth_image": ["1a", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0,
                              "temporal_consistency": True}},
             "t": {"class_type": "ReCaptureCameraTrajectory",
                   "inputs": {"preset": "truck left", "amount": 0.05, "easing": "linear", "num_frames": 8,
                              "hfov_deg": 60.0, "subject_distance": 1.0}},
             "3": warp(["1", 0], {"depth": ["2", 0]}),
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "hostile/flat"}}}
    entry = comfy_server.run(graph)
    assert len(comfy_server.output_files(entry, "4")) == 8


# --- files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("file, fragments", [
    ("hostile_cams/nested.json", ("nested.json", "nested too deeply")),
    ("hostile_cams/angle_zero.json", ("camera_angle_x = 0", "0 < angle < pi")),
    ("hostile_cams/odd_structure.json", ("cannot read odd_structure.json",)),
])
def test_damaged_camera_files_are_named(comfy_server, inputs, file, fragments):
    graph = {"1": {"class_type": "ReCaptureCameraImport",
                   "inputs": {"file": file, "format": "auto", "reference": "first pose is the source camera",
                              "translation_scale": 1.0, "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 256, "height": 128}},
             **preview("2")}
    fails_naming(comfy_server, graph, "file", *fragments)


@pytest.fixture(scope="module")
def lora_files(comfy_server, inputs):
    """A LoRA trained by the server, then copies of it damaged in three ways."""
    graph = {**clip("1", "hostile_frame.png"),
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "4": {"class_type": "ReCaptureSpatialLoRATrain",
                   "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **{**TRAIN, "steps": 1}, "frames_per_step": 1}},
             "5": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["4", 0], "filename_prefix": "hostile/good",
                                                                "export_comfyui": False}}}
    path = comfy_server.run(graph)["outputs"]["5"]["text"][0]
    with safe_open(path, framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    folder = inputs / "models" / "loras" / "recapture" / "hostile"
    save_file(tensors, str(folder / "no_kind.safetensors"), metadata={k: v for k, v in meta.items() if k != "kind"})
    # Another rank in the tensors than the metadata says: A [8, in], B [out, 8].
    wider = {k: (torch.cat([v, v]) if ".lora_A." in k else torch.cat([v, v], dim=1)) for k, v in tensors.items()}
    save_file(wider, str(folder / "other_rank.safetensors"), metadata=meta)
    # The same rank, but modules of another width than the backbone's.
    narrow = {k: (v[:, :-1].contiguous() if ".lora_A." in k else v) for k, v in tensors.items()}
    save_file(narrow, str(folder / "other_shape.safetensors"), metadata=meta)
    data = (folder / "no_kind.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize("name, fragments", [
    ("no_kind", ("no_kind.safetensors lacks the metadata kind",)),
    ("truncated", ("cannot read truncated.safetensors",)),
    ("other_rank", ("do not fit its rank 4",)),
])
def test_damaged_lora_files_are_named_on_load(comfy_server, lora_files, name, fragments):
    graph = {"1": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": f"recapture/hostile/{name}.safetensors"}},
             "2": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["1", 0], "filename_prefix": "hostile/never",
                                                                "export_comfyui": False}}}
    fails_naming(comfy_server, graph, "lora_name", *fragments)


def test_a_lora_that_does_not_fit_the_backbone_is_named_before_sampling(comfy_server, lora_files):
    graph = {**clip("1", "hostile_frame.png"),
             "2": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": "recapture/hostile/other_shape.safetensors"}},
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "4": {"class_type": "ReCaptureSDEditRefine",
                   "inputs": {"backbone": ["3", 0], "frames": ["1", 0], "spatial_lora": ["2", 0], "strength": 0.3,
                              "spatial_strength": 1.0, **SAMPLE}}, **preview("4")}
    fails_naming(comfy_server, graph, "spatial_lora", "of shape", "Use a LoRA trained on this backbone")


@pytest.mark.parametrize("ckpt", ["truncated_svd.safetensors", "not_safetensors_svd.safetensors"])
def test_damaged_checkpoints_are_named(comfy_server, inputs, ckpt):
    graph = {"1": {"class_type": "ReCaptureSVDCheckpointLoader", "inputs": {"ckpt_name": ckpt, "architecture": "like tiny-svd",
                                                                          "dtype": "fp32"}},
             **clip("3", "hostile_frame.png"),
             "4": {"class_type": "ReCaptureSpatialLoRATrain",
                   "inputs": {"backbone": ["1", 0], "frames": ["3", 0], **TRAIN, "frames_per_step": 1}},
             "5": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["4", 0], "filename_prefix": "hostile/never",
                                                                "export_comfyui": False}}}
    fails_naming(comfy_server, graph, "checkpoint", f"cannot read {ckpt}", "download it again")


def test_a_trajectory_of_another_length_names_the_resample_node(comfy_server, inputs):
    graph = {**clip("1", "hostile_frame.png", frames=5), **TRAJECTORY,
             "2": {"class_type": "ReCaptureDepthFromImage",
                   "inputs": {"depth_image": ["1", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0,
                              "temporal_consistency": False}},
             "3": warp(["1", 0], {"depth": ["2", 0]}), **preview("3")}
    fails_naming(comfy_server, graph, "trajectory", "has 4 frames but frames has 5",
                 "'Resample Camera Trajectory' does that.")


def test_an_incomplete_svd_folder_says_what_is_missing_and_where_it_goes(comfy_server, inputs):
    graph = {**clip("1", "hostile_frame.png"),
             "2": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "no-unet-svd", "dtype": "fp32"}},
             "3": {"class_type": "ReCaptureSDEditRefine",
                   "inputs": {"backbone": ["2", 0], "frames": ["1", 0], "strength": 0.3, "spatial_strength": 1.0,
                              **SAMPLE}},
             **preview("3")}
    fails_naming(comfy_server, graph, "model", "no-unet-svd lacks the component folders unet",
                 "model_index.json with unet/", "Put it under ComfyUI's models/diffusers/ and refresh.")


def test_a_wrong_kind_of_lora_names_the_node_that_makes_the_right_one(comfy_server, lora_files):
    graph = {**clip("1", "hostile_frame.png"),
             "2": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": "recapture/hostile/good_spatial_00001.safetensors"}},
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": "fp32"}},
             "4": {"class_type": "ReCaptureDualLoRASample",
                   "inputs": {"backbone": ["3", 0], "anchor": ["1", 0], "temporal_lora": ["2", 0], "temporal_strength": 1.0,
                              "spatial_strength": 1.0, "start_strength": 1.0, **SAMPLE}},
             **preview("4")}
    fails_naming(comfy_server, graph, "temporal_lora", "is a spatial LoRA where a temporal one belongs",
                 "Connect MaskedTemporalLoRATrain's output")


def test_a_damaged_depth_model_is_named(comfy_server, inputs):
    graph = {**clip("1", "hostile_frame.png"),
             "2": {"class_type": "ReCaptureDepthEstimate", "inputs": {"frames": ["1", 0], "depth_model": "truncated-dpt",
                                                                     "batch_size": 4, "temporal_consistency": False}},
             **preview("2", socket=1)}
    fails_naming(comfy_server, graph, "depth_model", "cannot read truncated-dpt", "copy the model folder again",
                 "Put it under ComfyUI's models/depth/")


def test_an_unreadable_model_index_does_not_take_the_loaders_out_of_the_ui(comfy_server, inputs):
    info = comfy_server.object_info()  # HTTP 500 before: the SVD listing read the broken file
    assert "tiny-svd" in info["ReCaptureSVDLoader"]["input"]["required"]["model"][0]
    assert "broken-index" not in info["ReCaptureSVDLoader"]["input"]["required"]["model"][0]
    assert "ReCaptureSVDCheckpointLoader" in info


# --- names that leave their folder ----------------------------------------------------------------
@pytest.mark.parametrize("prefix", [".", "..", "a/./b", "run\nname", "sub/", "/etc/x", "x\\..\\..\\y"])
def test_names_never_leave_their_folder(comfy_server, inputs, lora_files, prefix):
    before = sorted(str(p) for p in inputs.rglob("*"))
    camera = {**TRAJECTORY, "1": {"class_type": "ReCaptureCameraExport",
                                  "inputs": {"trajectory": ["t", 0], "filename_prefix": prefix, "format": "recapture json",
                                             "width": 256, "height": 128}}}
    fails_naming(comfy_server, camera, "filename_prefix")
    lora = {**clip("1", "hostile_frame.png"),
            "2": {"class_type": "ReCaptureLoRALoad", "inputs": {"lora_name": "recapture/hostile/good_spatial_00001.safetensors"}},
            "3": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["2", 0], "filename_prefix": prefix, "export_comfyui": True}}}
    fails_naming(comfy_server, lora, "filename_prefix")
    assert sorted(str(p) for p in inputs.rglob("*")) == before


# --- widgets typed into the API ----------------------------------------------------------------------
def test_a_repeated_keyframe_parameter_is_refused_at_validation(comfy_server, inputs):
    graph = {"1": {"class_type": "ReCaptureCameraKeyframes",
                   "inputs": {"keyframes": "0:\n8: orbit_left=10, orbit_left=20", "interpolation": "pose: slerp + spline",
                              "num_frames": 12, "hfov_deg": 60.0, "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 256, "height": 128}},
             **preview("2")}
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(graph)
    assert "line 2: orbit_left is given twice" in str(rejected.value)


def test_huge_whitespace_keyframes_validate_at_once_and_others_are_served_meanwhile(comfy_server, inputs):
    graph = {"1": {"class_type": "ReCaptureCameraKeyframes",
                   "inputs": {"keyframes": "0: orbit_left=1" + " " * 16000 + "x\n" + " " * 16000 + "\n",
                              "interpolation": "pose: slerp + spline", "num_frames": 12, "hfov_deg": 60.0,
                              "subject_distance": 1.0}},
             "2": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["1", 0], "width": 256, "height": 128}},
             **preview("2")}
    started = time.perf_counter()
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(graph)
    assert time.perf_counter() - started < 2.0  # was 5-9 s, blocking every client
    assert "cannot read 'x'" in str(rejected.value)
    graph["1"]["inputs"]["keyframes"] = "0:" + " " * 70000
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.submit(graph)
    assert "at most 65536 are read" in str(rejected.value)


def test_nan_sent_through_the_api_is_named(comfy_server, inputs):
    """ComfyUI's own range check refuses infinities but lets NaN through (every comparison with it is false)."""
    graph = {**TRAJECTORY}
    graph["t"] = {**graph["t"], "inputs": {**graph["t"]["inputs"], "amount": float("nan")}}
    graph["p"] = {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": ["t", 0], "width": 256, "height": 128}}
    graph.update(preview("p"))
    fails_naming(comfy_server, graph, "amount", "must be finite")


# --- default dtypes ----------------------------------------------------------------------------------
def test_the_loaders_default_fp16_trains_finite_loras_and_samples_finite_frames(comfy_server, inputs):
    default_dtype = comfy_server.object_info()["ReCaptureSVDLoader"]["input"]["required"]["dtype"][1]["default"]
    assert default_dtype == "fp16"
    graph = {**clip("1", "hostile_frame.png", frames=4), **clip("2", "hostile_frame.png", frames=4),
             "3": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "tiny-svd", "dtype": default_dtype}},
             "4": {"class_type": "ReCaptureSpatialLoRATrain",
                   "inputs": {"backbone": ["3", 0], "frames": ["1", 0], **{**TRAIN, "steps": 6}, "frames_per_step": 2}},
             "5": {"class_type": "ReCaptureLoRASave", "inputs": {"lora": ["4", 0], "filename_prefix": "hostile/fp16",
                                                                "export_comfyui": False}},
             "6": {"class_type": "ReCaptureSDEditRefine",
                   "inputs": {"backbone": ["3", 0], "frames": ["1", 0], "spatial_lora": ["4", 0], "strength": 0.5,
                              "spatial_strength": 1.0, **SAMPLE}},
             "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "hostile/fp16"}}}
    entry = comfy_server.run(graph)
    with safe_open(entry["outputs"]["5"]["text"][0], framework="pt") as handle:
        weights = [handle.get_tensor(k) for k in handle.keys()]
        losses = json.loads(handle.metadata()["settings"])["losses"]
    assert weights and all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights)
    assert all(np.isfinite(losses)) and any(w.abs().sum() > 0 for w in weights)
    frames = [np.asarray(Image.open(p)) for p in comfy_server.output_files(entry, "7")]
    assert len(frames) == 4 and all(f.std() > 0 for f in frames)  # NaN frames save as flat black


# --- the server stays responsive ---------------------------------------------------------------------
def test_an_interrupt_during_depth_alignment_of_a_long_clip_takes_effect_at_once(comfy_server, inputs):
    graph = {**clip("1", "hostile_frame.png", frames=3000),
             "2": {"class_type": "ReCaptureDepthFromImage",
                   "inputs": {"depth_image": ["1", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0,
                              "temporal_consistency": True}},
             "3": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 1], "batch_index": 0, "length": 1}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    prompt_id = comfy_server.submit(graph)
    time.sleep(2.0)  # loading and the first frames of the alignment (about 10 s for all 3000 frames here)
    interrupted_at = time.perf_counter()
    comfy_server.post_json("/interrupt", {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        history = comfy_server.get_json(f"/history/{prompt_id}")
        if prompt_id in history:
            break
        time.sleep(0.1)
    stopped_after = time.perf_counter() - interrupted_at
    messages = [kind for kind, _ in history[prompt_id]["status"]["messages"]]
    assert "execution_interrupted" in messages, messages
    assert stopped_after < 3.0, stopped_after  # was 25 s for 2000 frames


def test_a_depth_file_left_from_the_sample_names_the_swap(comfy_server, inputs):
    """Workflow 6 with the user's own clip: the sample's depth file stays connected and has other frame counts."""
    graph = {**clip("1", "hostile_frame.png", frames=6), **clip("2", "hostile_frame.png", frames=4),
             "3": {"class_type": "ReCaptureDepthFromImage",
                   "inputs": {"depth_image": ["2", 0], "reading": "disparity, bright = near", "near": 0.5, "far": 20.0,
                              "temporal_consistency": False, "frames": ["1", 0]}}, **preview("3", socket=1)}
    fails_naming(comfy_server, graph, "depth_image", "has 4 frames but frames has 6",
                 "replace its depth file by DepthEstimate on the new frames")
