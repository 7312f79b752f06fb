"""Clips longer than the model's window on ComfyUI's own MODEL, through POST /prompt: the temporal trainer trains on
windows, ReCaptureContextWindows lets a stock KSampler sample in windows, VAEDecode decodes the whole clip.

Each graph is one cheap prompt on the tiny models (32x32 frames, 1 sampling step, 2 training steps): the sample
clip's frames repeated to the length under test, so every window starts on a different frame.
"""
from __future__ import annotations

import pytest

from workflow_defs import MODEL_TRAIN, SAMPLE_VIDEO, SVD_CHECKPOINT, WAN_MODEL, WAN_TEXT_ENCODER, WAN_VAE, with_tiny_models

pytestmark = pytest.mark.server

NODE = "ReCaptureContextWindows"


def clip_of(frames: int) -> dict:
    """``clip``: the sample video (14 frames) repeated and cut to ``frames``; ``valid``: an all-valid mask of as many
    frames (the trainer takes one mask per frame)."""
    return {
        "video": {"class_type": "LoadVideo", "inputs": {"file": SAMPLE_VIDEO}},
        "components": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "repeated": {"class_type": "RepeatImageBatch", "inputs": {"image": ["components", 0], "amount": -(-frames // 14)}},
        "clip": {"class_type": "ImageFromBatch", "inputs": {"image": ["repeated", 0], "batch_index": 0, "length": frames}},
        "size": {"class_type": "GetImageSize", "inputs": {"image": ["clip", 0]}},
        "solid": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}},
        "solid_image": {"class_type": "MaskToImage", "inputs": {"mask": ["solid", 0]}},
        "solid_frames": {"class_type": "RepeatImageBatch", "inputs": {"image": ["solid_image", 0], "amount": frames}},
        "valid": {"class_type": "ImageToMask", "inputs": {"image": ["solid_frames", 0], "channel": "red"}},
    }


def trained_and_sampled(model: list, vae: list, positive: list, negative: list, latent: list, window: int,
                        overlap: int, prefix: str, clip_vision: list | None = None) -> dict:
    """The temporal trainer on the clip, then windows node + KSampler + VAEDecode; the decoded frame count shown."""
    optional = {"clip_vision": clip_vision} if clip_vision else {}
    return {
        "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                     "inputs": {"model": model, "vae": vae, "positive": positive, "anchor": ["clip", 0],
                                "valid_mask": ["valid", 0], **MODEL_TRAIN, "filename_prefix": prefix, "window": window,
                                **optional}},
        "windows": {"class_type": NODE,
                    "inputs": {"model": ["temporal", 0], "positive": positive, "negative": negative, "vae": vae,
                               "video": ["clip", 0], "window": window, "overlap": overlap, **optional}},
        "sample": {"class_type": "KSampler",
                   "inputs": {"model": ["windows", 0], "positive": ["windows", 1], "negative": ["windows", 2],
                              "latent_image": latent, "seed": 0, "steps": 1, "cfg": 2.0, "sampler_name": "euler",
                              "scheduler": "simple", "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": vae}},
        "decoded_size": {"class_type": "GetImageSize", "inputs": {"image": ["decode", 0]}},
        "frames_out": {"class_type": "PreviewAny", "inputs": {"source": ["decoded_size", 2]}},
    }


def tiny(graph: dict, training_steps: int = 2) -> dict:
    graph = with_tiny_models(graph)
    graph["temporal"]["inputs"]["steps"] = training_steps
    return graph


def frames_out(entry: dict) -> int:
    return int(entry["outputs"]["frames_out"]["text"][0])


def test_the_windows_node_is_listed_with_tooltips_on_every_input(comfy_server):
    info = comfy_server.object_info()
    node = info[NODE]
    assert node["python_module"] == "custom_nodes.recapture"
    assert node["display_name"] == "Context Windows, own first frames (ReCapture)"
    assert node["output"] == ["MODEL", "CONDITIONING", "CONDITIONING"]
    assert set(node["input"]["required"]) == {"model", "positive", "negative", "vae", "video", "window", "overlap"}
    assert set(node["input"]["optional"]) == {"clip_vision"}
    for section in ("required", "optional"):
        for name, spec in node["input"][section].items():
            assert len(spec[1].get("tooltip", "")) > 20, name
    trainer = info["ReCaptureMaskedTemporalLoRATrainModel"]["input"]
    # Optional, so API prompts saved before windows existed (no "window") still validate.
    assert "window" not in trainer["required"]
    assert trainer["optional"]["window"][1]["default"] == 0 and "window" in trainer["optional"]["window"][1]["tooltip"]
    assert trainer["optional"]["clip_vision"][0] == "CLIP_VISION"


def test_an_svd_clip_of_100_frames_trains_on_windows_and_samples_through_a_stock_ksampler(comfy_server):
    """100 frames, 4x the 25 of SVD-XT: windows of 25 frames with their own first frame's concat latent and CLIP
    embed, in training and in sampling; frame-wise guidance (VideoLinearCFGGuidance) on the blended prediction."""
    graph = {**clip_of(100),
             "svd": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": SVD_CHECKPOINT}},
             "first": {"class_type": "ImageFromBatch", "inputs": {"image": ["clip", 0], "batch_index": 0, "length": 1}},
             "conditioning": {"class_type": "SVD_img2vid_Conditioning",
                              "inputs": {"clip_vision": ["svd", 1], "init_image": ["first", 0], "vae": ["svd", 2],
                                         "width": ["size", 0], "height": ["size", 1], "video_frames": ["size", 2],
                                         "motion_bucket_id": 127, "fps": 7, "augmentation_level": 0.0}},
             **trained_and_sampled(["svd", 0], ["svd", 2], ["conditioning", 0], ["conditioning", 1],
                                   ["conditioning", 2], 0, 0, "long_svd", clip_vision=["svd", 1])}
    graph["guidance"] = {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["temporal", 0], "min_cfg": 1.0}}
    graph["windows"]["inputs"]["model"] = ["guidance", 0]
    entry = comfy_server.run(tiny(graph), timeout_s=900)
    assert frames_out(entry) == 100
    loras = comfy_server.base_dir / "models" / "loras" / "recapture"
    assert list(loras.glob("long_svd_temporal_*_comfyui.safetensors"))


def test_a_wan_clip_of_4k_plus_2_frames_trains_and_samples_in_windows(comfy_server):
    """22 frames: the trainer pads them to 25 (7 latent frames) and trains on windows of 9 frames (3 latent frames);
    the windows node samples the 6 latent frames core's EmptyHunyuanLatentVideo makes for 22 frames in windows of 3."""
    graph = {**clip_of(22),
             "wan": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_MODEL, "weight_dtype": "default"}},
             "text_encoder": {"class_type": "CLIPLoader", "inputs": {"clip_name": WAN_TEXT_ENCODER, "type": "wan",
                                                                     "device": "default"}},
             "prompt": {"class_type": "CLIPTextEncode", "inputs": {"text": "a box", "clip": ["text_encoder", 0]}},
             "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["text_encoder", 0]}},
             "wan_vae": {"class_type": "VAELoader", "inputs": {"vae_name": WAN_VAE}},
             "latent": {"class_type": "EmptyHunyuanLatentVideo",
                        "inputs": {"width": ["size", 0], "height": ["size", 1], "length": ["size", 2], "batch_size": 1}},
             **trained_and_sampled(["wan", 0], ["wan_vae", 0], ["prompt", 0], ["negative", 0], ["latent", 0], 9, 4,
                                   "long_wan")}
    entry = comfy_server.run(tiny(graph), timeout_s=900)
    assert frames_out(entry) == 21  # 6 latent frames decode to 4·5 + 1
    loras = comfy_server.base_dir / "models" / "loras" / "recapture"
    assert list(loras.glob("long_wan_temporal_*_comfyui.safetensors"))


def test_an_overlap_as_long_as_the_window_is_refused_by_name(comfy_server):
    from comfy_host import PromptFailed

    graph = {**clip_of(22),
             "wan": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_MODEL, "weight_dtype": "default"}},
             "text_encoder": {"class_type": "CLIPLoader", "inputs": {"clip_name": WAN_TEXT_ENCODER, "type": "wan",
                                                                     "device": "default"}},
             "prompt": {"class_type": "CLIPTextEncode", "inputs": {"text": "a box", "clip": ["text_encoder", 0]}},
             "wan_vae": {"class_type": "VAELoader", "inputs": {"vae_name": WAN_VAE}},
             "windows": {"class_type": NODE,
                         "inputs": {"model": ["wan", 0], "positive": ["prompt", 0], "negative": ["prompt", 0],
                                    "vae": ["wan_vae", 0], "video": ["clip", 0], "window": 9, "overlap": 9}},
             "report": {"class_type": "PreviewAny", "inputs": {"source": ["windows", 0]}}}
    with pytest.raises(PromptFailed, match=r"input 'overlap'"):
        comfy_server.run(with_tiny_models(graph))
