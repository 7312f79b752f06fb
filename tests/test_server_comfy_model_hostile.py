"""Hostile inputs to the trainers on ComfyUI's MODEL, through POST /prompt: conditioning and VAEs of the other family.

Every refused case must stop before any training step with ReCaptureInputError naming the input
(``positive`` or ``vae``), what it found and the node that makes the right one, and write no LoRA.
Text encoders cannot be tiny, so a test-only node hands out conditioning of their shapes
(tests/comfy_support/recapture_test_nodes/conditioning_standins.py).
"""
from __future__ import annotations

import pytest

from comfy_host import PromptFailed
from tiny_comfy_models import TINY_WAN_FILES, make_wan21_t2v
from workflow_defs import MODEL_TRAIN

pytestmark = pytest.mark.server

SIZE = 32  # frame sides: multiples of SVD's 8 and Wan's 16
WAN_I2V_FILE = "tiny_wan2.2_i2v.safetensors"
SD15_TEXT = {"class_type": "ReCaptureTestTextConditioning", "inputs": {"tokens": 77, "width": 768, "pooled_output": True, "seed": 0}}
SD2_TEXT = {"class_type": "ReCaptureTestTextConditioning", "inputs": {"tokens": 77, "width": 1024, "pooled_output": True, "seed": 0}}
UMT5_TEXT = {"class_type": "ReCaptureTestWanText", "inputs": {"text": "a box gliding in front of a wall"}}


def _image(frames: int, color: int) -> dict:
    return {"class_type": "EmptyImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": frames, "color": color}}


def _graph(model: str, kind: str, prefix: str) -> dict:
    """A trainer (``kind``) on ``model`` ("svd", "wan" or "wan_i2v") with the right vae and positive, among the nodes
    the cases rewire it to. Frames: 4 for SVD, 9 for Wan (its VAE takes 4k+1); the valid mask is all ones."""
    frames = 4 if model == "svd" else 9
    graph = {
        "svd": {"class_type": "ReCaptureTestTinySVDLoader",
                "inputs": {"weight_dtype": "fp32", "seed": 0, "clip_name": "tiny-clip-vision.safetensors"}},
        "wan": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_WAN_FILES["model"], "weight_dtype": "default"}},
        "wan_i2v": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_I2V_FILE, "weight_dtype": "default"}},
        "wan_vae": {"class_type": "VAELoader", "inputs": {"vae_name": TINY_WAN_FILES["vae"]}},
        "clip": _image(frames, 0x808080),
        "first": _image(1, 0x808080),
        "valid": {"class_type": "ImageToMask", "inputs": {"image": ["white", 0], "channel": "red"}},
        "white": _image(frames, 0xFFFFFF),
        "svd_conditioning": {"class_type": "SVD_img2vid_Conditioning",
                             "inputs": {"clip_vision": ["svd", 1], "init_image": ["first", 0], "vae": ["svd", 2],
                                        "width": SIZE, "height": SIZE, "video_frames": frames, "motion_bucket_id": 127,
                                        "fps": 7, "augmentation_level": 0.0}},
        "text": UMT5_TEXT,
        "wan_image": {"class_type": "WanImageToVideo",
                      "inputs": {"positive": ["text", 0], "negative": ["text", 0], "vae": ["wan_vae", 0], "width": SIZE,
                                 "height": SIZE, "length": frames, "batch_size": 1, "start_image": ["first", 0]}},
    }
    vae = ["svd", 2] if model == "svd" else ["wan_vae", 0]
    positive = {"svd": ["svd_conditioning", 0], "wan": ["text", 0],
                "wan_i2v": ["wan_image", 0] if kind == "temporal" else ["text", 0]}[model]
    model_output = ["svd", 0] if model == "svd" else [model, 0]
    common = {"model": model_output, "vae": vae, "positive": positive, **MODEL_TRAIN, "steps": 1, "filename_prefix": prefix}
    if kind == "spatial":
        graph["trainer"] = {"class_type": "ReCaptureSpatialLoRATrainModel",
                            "inputs": {**common, "frames": ["clip", 0], "frames_per_step": 2}}
    else:
        graph["trainer"] = {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                            "inputs": {**common, "anchor": ["clip", 0], "valid_mask": ["valid", 0], "window": 0}}
    graph["report"] = {"class_type": "PreviewAny", "inputs": {"source": ["trainer", 2]}}  # the graph's output node
    return graph


def _reachable(graph: dict) -> dict:
    """The nodes the report depends on (ComfyUI would run an unused loader too)."""
    used, pending = {"report"}, ["report"]
    while pending:
        for value in graph[pending.pop()]["inputs"].values():
            if isinstance(value, list) and value[0] not in used:
                used.add(value[0])
                pending.append(value[0])
    return {name: node for name, node in graph.items() if name in used}


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session's server with a tiny Wan image-to-video model (Wan 2.2 I2V A14B's layout) in diffusion_models/."""
    path = comfy_server.base_dir / "models" / "diffusion_models" / WAN_I2V_FILE
    if not path.exists():
        make_wan21_t2v(path, image_to_video=True)
    return comfy_server


def _loras(server, prefix: str) -> list:
    return list((server.base_dir / "models" / "loras").glob(f"**/{prefix}_*"))


REFUSED = {
    # name: (model, trainer, {node: replacement or input: link}, expected message)
    "svd_with_sd15_text": ("svd", "spatial", {"svd_conditioning": SD15_TEXT},
                           r"input 'positive': holds \[1, 77, 768\] conditioning \(a text encoder's.*no concat_latent_image, "
                           r"but this Stable Video Diffusion model takes CLIP-vision image embeds 768 wide with the first "
                           r"frame's 4-channel latent.*Connect 'positive' of SVD_img2vid_Conditioning"),
    "svd_with_sd2_text": ("svd", "temporal", {"svd_conditioning": SD2_TEXT},
                          r"input 'positive': holds \[1, 77, 1024\] conditioning.*CLIP-vision image embeds 768 wide.*"
                          r"SVD_img2vid_Conditioning"),
    "svd_with_umt5_text": ("svd", "spatial", {"svd_conditioning": UMT5_TEXT},
                           r"input 'positive': holds \[1, 8, 4096\] conditioning and no concat_latent_image.*"
                           r"SVD_img2vid_Conditioning"),
    "svd_conditioned_through_the_wan_vae": ("svd", "spatial", {"svd_conditioning.vae": ["wan_vae", 0]},
                                            r"input 'positive': holds \[1, 1, 768\] conditioning with a concat_latent_image "
                                            r"\[1, 16, 1, 4, 4\].*4-channel latent.*VAE of the model's own loader"),
    "svd_with_the_wan_vae": ("svd", "spatial", {"trainer.vae": ["wan_vae", 0]},
                             r"input 'vae': has 16 latent channels, 8x spatial and 4x temporal compression, but this Stable "
                             r"Video Diffusion model takes latents of a VAE with 4 latent channels, 8x spatial and no temporal "
                             r"compression.*Image Only Checkpoint Loader"),
    "wan_with_the_svd_vae": ("wan", "temporal", {"trainer.vae": ["svd", 2]},
                             r"input 'vae': has 4 latent channels.*this Wan model takes latents of a VAE with 16 latent "
                             r"channels, 8x spatial and 4x temporal compression.*Load VAE"),
    "wan_with_svd_conditioning": ("wan", "spatial", {"trainer.positive": ["svd_conditioning", 0]},
                                  r"input 'positive': holds \[1, 1, 768\] conditioning with a concat_latent_image.*this Wan "
                                  r"model takes text context 4096 wide.*CLIPTextEncode"),
    "wan_with_sd15_text": ("wan", "temporal", {"text": SD15_TEXT},
                           r"input 'positive': holds \[1, 77, 768\].*text context 4096 wide"),
    "wan_i2v_clip_without_its_image": ("wan_i2v", "temporal", {"trainer.positive": ["text", 0]},
                                       r"input 'positive': holds \[1, 8, 4096\] conditioning and no concat_latent_image, but "
                                       r"this Wan model takes text context 4096 wide with the first frame's 16-channel latent.*"
                                       r"WanImageToVideo's start_image"),
    "wan_i2v_single_frames_with_an_image": ("wan_i2v", "spatial", {"trainer.positive": ["wan_image", 0]},
                                            r"input 'positive': holds \[1, 8, 4096\] conditioning with a concat_latent_image "
                                            r"\[1, 16, 3, 4, 4\], but the spatial trainer.*single frames.*"
                                            r"text encoder's conditioning alone"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_conditioning_or_a_vae_of_another_family_is_refused_by_name_before_training(server, case):
    model, kind, changes, message = REFUSED[case]
    graph = _graph(model, kind, f"hostile_{case}")
    for target, replacement in changes.items():
        if "." in target:
            node, name = target.split(".")
            graph[node]["inputs"][name] = replacement
        else:
            graph[target] = replacement
    with pytest.raises(PromptFailed, match=message) as failure:
        server.run(_reachable(graph))
    assert failure.value.exception_type.endswith("ReCaptureInputError")
    assert not _loras(server, f"hostile_{case}")


def test_an_image_to_video_wan_trains_with_the_text_for_single_frames_and_the_image_for_the_clip(server):
    """The right wiring passes the same checks: text alone into the spatial trainer, WanImageToVideo's into the
    temporal one (on the spatial trainer's MODEL)."""
    graph = _graph("wan_i2v", "temporal", "i2v_ok")
    graph["spatial"] = {"class_type": "ReCaptureSpatialLoRATrainModel",
                        "inputs": {**{k: v for k, v in graph["trainer"]["inputs"].items() if k not in ("anchor", "valid_mask", "window")},
                                   "positive": ["text", 0], "frames": ["clip", 0], "frames_per_step": 2}}
    graph["trainer"]["inputs"]["model"] = ["spatial", 0]
    server.run(_reachable(graph), timeout_s=600)
    assert {p.name for p in _loras(server, "i2v_ok")} == {"i2v_ok_spatial_00001_comfyui.safetensors",
                                                         "i2v_ok_temporal_00001_comfyui.safetensors"}

