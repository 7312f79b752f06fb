"""The trainers on ComfyUI's own MODEL through POST /prompt: workflow 7's graph, LoRA files ComfyUI's loader applies."""
from __future__ import annotations

import re

import pytest
from safetensors import safe_open

from comfy_host import PromptFailed
from workflow_defs import full_comfy_model, with_tiny_models

pytestmark = pytest.mark.server


def graph_in(weight_dtype: str, prefix: str) -> dict:
    graph = with_tiny_models(full_comfy_model().graph)
    graph["svd"]["inputs"]["weight_dtype"] = weight_dtype
    for node in ("spatial", "temporal"):
        graph[node]["inputs"].update(filename_prefix=prefix, steps=2)
    return graph


@pytest.mark.parametrize("weight_dtype", ["fp32", "bf16"])  # fp16 runs in test_server_workflows
def test_workflow_7_trains_samples_and_writes_loras_comfyui_applies(comfy_server, weight_dtype):
    prefix = f"native_{weight_dtype}"
    entry = comfy_server.run(graph_in(weight_dtype, prefix), timeout_s=900)
    assert entry["outputs"]["save_result"]["images"]
    loras = comfy_server.base_dir / "models" / "loras"
    spatial, temporal = (loras / "recapture" / f"{prefix}_{kind}_00001_comfyui.safetensors" for kind in ("spatial", "temporal"))
    for path, kind, count in ((spatial, "spatial", 12), (temporal, "temporal", 18)):
        with safe_open(str(path), framework="pt") as handle:
            assert handle.metadata()["recapture_kind"] == kind
            modules = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in handle.keys()}
            assert len(modules) == count
            assert all(handle.get_tensor(k).dtype.is_floating_point for k in handle.keys())

    # ComfyUI's own LoRA loader applies every key of both files to a freshly loaded model.
    before = len(comfy_server.log_text())
    apply = {
        "svd": {"class_type": "ReCaptureTestTinySVDLoader",
                "inputs": {"weight_dtype": weight_dtype, "seed": 0, "clip_name": "tiny-clip-vision.safetensors"}},
        "with_spatial": {"class_type": "LoraLoaderModelOnly",
                         "inputs": {"model": ["svd", 0], "lora_name": spatial.relative_to(loras).as_posix(), "strength_model": 1.0}},
        "with_both": {"class_type": "LoraLoaderModelOnly",
                      "inputs": {"model": ["with_spatial", 0], "lora_name": temporal.relative_to(loras).as_posix(),
                                 "strength_model": 1.0}},
        "image": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 8421504}},
        "cond": {"class_type": "SVD_img2vid_Conditioning",
                 "inputs": {"clip_vision": ["svd", 1], "init_image": ["image", 0], "vae": ["svd", 2], "width": 32, "height": 24,
                            "video_frames": 3, "motion_bucket_id": 127, "fps": 7, "augmentation_level": 0.0}},
        "sample": {"class_type": "KSampler",
                   "inputs": {"model": ["with_both", 0], "seed": 0, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
                              "scheduler": "karras", "positive": ["cond", 0], "negative": ["cond", 1],
                              "latent_image": ["cond", 2], "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["svd", 2]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}},
    }
    comfy_server.run(apply)
    log = comfy_server.log_text()[before:]
    assert not re.search(r"lora key not loaded", log), log


def test_a_model_the_trainers_cannot_run_is_named_before_training(comfy_server):
    graph = graph_in("fp32", "never")
    graph["svd"] = {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "tiny_stable_zero123.safetensors"}}
    # Stable Zero123's checkpoint has no CLIP vision: condition with the test encoder instead.
    graph["tiny_clip"] = {"class_type": "ReCaptureTestTinyCLIPVisionLoader", "inputs": {"clip_name": "tiny-clip-vision.safetensors"}}
    for node in ("source_conditioning", "anchor_conditioning"):
        graph[node]["inputs"]["clip_vision"] = ["tiny_clip", 0]
    with pytest.raises(PromptFailed, match=r"input 'model'.*Stable Video Diffusion.*Image Only Checkpoint Loader"):
        comfy_server.run(graph)
    assert not list((comfy_server.base_dir / "models" / "loras").glob("**/never_*"))


def test_an_unsafe_lora_name_is_refused_before_training(comfy_server):
    graph = graph_in("fp32", "../outside")
    with pytest.raises(PromptFailed, match=r"input 'filename_prefix'"):
        comfy_server.run(graph)


@pytest.mark.parametrize("weight_dtype", ["default", "fp8_e4m3fn"])
def test_workflow_8_trains_wan_through_comfyuis_loaders(comfy_server, weight_dtype):
    from workflow_defs import full_wan

    prefix = f"wan_{weight_dtype}"
    graph = with_tiny_models(full_wan().graph)
    graph["wan"]["inputs"]["weight_dtype"] = weight_dtype
    for node in ("spatial", "temporal"):
        graph[node]["inputs"].update(filename_prefix=prefix, steps=2)
    entry = comfy_server.run(graph, timeout_s=900)
    assert entry["outputs"]["save_result"]["images"]
    loras = comfy_server.base_dir / "models" / "loras" / "recapture"
    for kind in ("spatial", "temporal"):
        with safe_open(str(loras / f"{prefix}_{kind}_00001_comfyui.safetensors"), framework="pt") as handle:
            assert handle.metadata()["recapture_model"] == "WAN21"
            assert {k.split(".")[3] for k in handle.keys()} == {"self_attn"}


def test_a_wan_clip_of_4k_plus_2_frames_runs(comfy_server):
    """Wan's VAE takes 4k+1 frames: the temporal trainer pads a 10-frame anchor to 13 (no loss on the padding)."""
    from workflow_defs import full_wan

    graph = with_tiny_models(full_wan().graph)
    graph["clip"]["inputs"]["length"] = 10
    graph["depth_clip"]["inputs"]["length"] = 10
    graph["camera"]["inputs"]["num_frames"] = 10
    for node in ("spatial", "temporal"):
        graph[node]["inputs"].update(filename_prefix="wan_4k_plus_2", steps=2)
    entry = comfy_server.run(graph, timeout_s=900)
    assert entry["outputs"]["save_result"]["images"]
