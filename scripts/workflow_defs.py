"""The sample workflows, defined once: API-format graphs plus the notes shown on the canvas.

``scripts/build_workflows.py`` turns each into the UI format with ComfyUI's own frontend (in
headless Chromium) and writes ``workflows/<name>.json``; the demo runs the API graphs directly.
Every graph starts from the bundled sample clip in ``assets/`` (copied into ComfyUI's input
folder) and uses ComfyUI's core video nodes, so no other pack is needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_VIDEO = "recapture_sample.mp4"
SAMPLE_DEPTH = "recapture_sample_depth.png"
SVD_FOLDER = "stable-video-diffusion-img2vid-xt"
SVD_CHECKPOINT = "svd_xt.safetensors"
MULTIVIEW_CHECKPOINT = "stable_zero123.ckpt"

MODELS_NOTE = (
    "Models (nothing is downloaded):\n"
    f"- SVD-XT as a diffusers folder: ComfyUI/models/diffusers/{SVD_FOLDER}/ (model_index.json, unet/, vae/, "
    "image_encoder/, feature_extractor/, scheduler/)\n"
    f"- or the single file you already use: ComfyUI/models/checkpoints/{SVD_CHECKPOINT}\n"
    "- optional depth models: transformers folders in ComfyUI/models/depth/ (Depth Anything V2, DPT, ZoeDepth)\n"
    "LoRAs are saved to ComfyUI/models/loras/recapture/.")
VIDEO_NOTE = (
    "Your video: pick it in Load Video (or use VideoHelperSuite's Load Video: its IMAGE output plugs into the same "
    "sockets; VHS Video Combine can replace Create Video + Save Video). Frame sides must be multiples of 64 for SVD "
    "(1024x576 is what SVD-XT was trained on). The sample clip is 320x192 with exact depth in "
    f"{SAMPLE_DEPTH} (metric, 1.5..6.0, bright = far). With your own video that depth file no longer fits (Depth "
    "From Image stops: 'has 14 frames but frames has ...'): replace 'Load Image (depth)' + Depth From Image by "
    "DepthEstimate on the video's frames, or by your depth pack's output.")
CAMERA_NOTE = (
    "Camera: the target camera relative to each frame's source camera (OpenCV axes: x right, y down, z forward). "
    "Moves are in subject distances; with depth connected the subject distance is the depth's central median. "
    "Check the path in the preview before any long work.")


@dataclass
class Workflow:
    name: str
    title: str
    graph: dict
    notes: list[str] = field(default_factory=list)
    needs_models: bool = True


def _video_in() -> dict:
    return {
        "video": {"class_type": "LoadVideo", "inputs": {"file": SAMPLE_VIDEO}},
        "components": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
    }


def _depth_from_file() -> dict:
    return {
        "depth_file": {"class_type": "LoadImage", "inputs": {"image": SAMPLE_DEPTH}, "_meta": {"title": "Load Image (depth)"}},
        "depth": {"class_type": "ReCaptureDepthFromImage",
                  "inputs": {"depth_image": ["depth_file", 0], "reading": "metric: near..far, bright = far", "near": 1.5,
                             "far": 6.0, "temporal_consistency": False, "frames": ["components", 0]}},
    }


def _camera(node: str, preset: str, amount: float, with_depth: bool = True) -> dict:
    inputs = {"preset": preset, "amount": amount, "easing": "ease-in-out", "num_frames": 14, "hfov_deg": 60.0,
              "subject_distance": 3.0, "frames": ["components", 0]}
    if with_depth:
        inputs["depth"] = ["depth", 0]
    return {node: {"class_type": "ReCaptureCameraTrajectory", "inputs": inputs}}


def _warp(node: str, camera: str, depth_input: dict) -> dict:
    return {node: {"class_type": "ReCapturePointCloudWarp",
                   "inputs": {"frames": ["components", 0], "trajectory": [camera, 0], "match_subject_distance": True,
                              "edge_threshold": 0.05, "hole_dilation": 1, "hole_fill": "black", "warn_above": 0.35,
                              **depth_input}}}


def _save_video(node: str, images: list, prefix: str) -> dict:
    return {f"{node}_create": {"class_type": "CreateVideo", "inputs": {"images": images, "fps": 7.0}},
            node: {"class_type": "SaveVideo", "inputs": {"video": [f"{node}_create", 0], "filename_prefix": prefix,
                                                         "format": "auto", "codec": "auto"}}}


def _anchor_outputs(warp: str, camera: str, prefix: str, overlay_output: int = 2) -> dict:
    return {
        "camera_preview": {"class_type": "ReCaptureCameraPreview", "inputs": {"trajectory": [camera, 0], "width": 960, "height": 480}},
        "save_camera_preview": {"class_type": "SaveImage", "inputs": {"images": ["camera_preview", 0], "filename_prefix": f"{prefix}/camera"}},
        "hole_overlay": {"class_type": "ReCaptureMaskOverlay",
                         "inputs": {"frames": [warp, 0], "mask": [warp, overlay_output], "color": "magenta", "opacity": 0.6}},
        **_save_video("save_anchor", [warp, 0], f"{prefix}/anchor"),
        **_save_video("save_holes", ["hole_overlay", 0], f"{prefix}/holes"),
        "report": {"class_type": "PreviewAny", "inputs": {"source": [warp, 3]}},
    }


def _training(prefix: str, suffix: str = "", warp: str = "warp", spatial: str = "spatial", valid_mask: list | None = None) -> dict:
    return {
        f"temporal{suffix}": {"class_type": "ReCaptureMaskedTemporalLoRATrain",
                              "inputs": {"backbone": ["backbone", 0], "anchor": [warp, 0], "valid_mask": valid_mask or [warp, 1],
                                         "spatial_lora": [spatial, 0], **TRAIN}},
        f"sample{suffix}": {"class_type": "ReCaptureDualLoRASample",
                            "inputs": {"backbone": ["backbone", 0], "anchor": [warp, 0], "temporal_lora": [f"temporal{suffix}", 0],
                                       "spatial_lora": [spatial, 0], "temporal_strength": 1.0, "spatial_strength": 1.0,
                                       "start_strength": 1.0, **SAMPLE}},
        f"refine{suffix}": {"class_type": "ReCaptureSDEditRefine",
                            "inputs": {"backbone": ["backbone", 0], "frames": [f"sample{suffix}", 0], "spatial_lora": [spatial, 0],
                                       "strength": 0.3, "spatial_strength": 1.0, **SAMPLE}},
        **_save_video(f"save_result{suffix}", [f"refine{suffix}", 0], f"{prefix}/reshot{suffix}"),
    }


TRAIN = {"steps": 400, "learning_rate": 5e-4, "rank": 16, "alpha": 16.0, "seed": 0, "gradient_checkpointing": True,
         "mixed_precision": "auto"}
SAMPLE = {"seed": 0, "steps": 25, "min_guidance": 1.0, "max_guidance": 3.0, "motion_bucket_id": 127, "fps": 7,
          "noise_aug_strength": 0.02, "decode_chunk_size": 8, "window": 0, "overlap": 4}
SPATIAL = {"spatial": {"class_type": "ReCaptureSpatialLoRATrain",
                       "inputs": {"backbone": ["backbone", 0], "frames": ["components", 0], **TRAIN, "frames_per_step": 2}}}


def anchor_preview() -> Workflow:
    graph = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 10.0),
             **_warp("warp", "camera", {"depth": ["depth", 0]}), **_anchor_outputs("warp", "camera", "recapture/anchor_preview")}
    return Workflow("6_anchor_preview", "ReCapture 6: anchor preview only (no diffusion, seconds)", graph, [
        "Anchor preview: depth -> point cloud -> new camera, no diffusion model needed. Use it to choose a camera path: "
        "the hole overlay shows (magenta) what the diffusion stage will have to invent, the report gives the hole "
        "ratio per frame and warns when a move is too large.", VIDEO_NOTE, CAMERA_NOTE], needs_models=False)


def full_diffusers() -> Workflow:
    graph = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 10.0),
             **_warp("warp", "camera", {"depth": ["depth", 0]}), **_anchor_outputs("warp", "camera", "recapture/full"),
             "backbone": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": SVD_FOLDER, "dtype": "fp16"}},
             **SPATIAL, **_training("recapture/full")}
    return Workflow("1_recapture_pointcloud_diffusers", "ReCapture 1: full method, point-cloud anchor, SVD-XT diffusers folder",
                    graph, ["ReCapture: anchor video from depth, then masked LoRA fine-tuning of SVD-XT (spatial LoRA on "
                            "source frames, temporal LoRA on the anchor with the loss on valid pixels), sampling with both "
                            "LoRAs and an SDEdit pass. Paper settings: rank 16, lr 5e-4, 400 steps.", MODELS_NOTE,
                            VIDEO_NOTE, CAMERA_NOTE])


def full_checkpoint() -> Workflow:
    workflow = full_diffusers()
    graph = dict(workflow.graph)
    graph["backbone"] = {"class_type": "ReCaptureSVDCheckpointLoader",
                         "inputs": {"ckpt_name": SVD_CHECKPOINT, "architecture": "auto", "dtype": "fp16"}}
    return Workflow("2_recapture_pointcloud_checkpoint", "ReCapture 2: full method with the single-file svd_xt.safetensors",
                    graph, workflow.notes[:1] + [f"Backbone: the single-file {SVD_CHECKPOINT} from ComfyUI/models/checkpoints "
                                                 "(architecture 'auto' reads SVD-XT from 'xt' in the name)."] + workflow.notes[1:])


def depth_from_other_pack() -> Workflow:
    graph = {**_video_in(), "depth_file": {"class_type": "LoadImage", "inputs": {"image": SAMPLE_DEPTH},
                                           "_meta": {"title": "Load Image (depth)"}},
             **_camera("camera", "dolly in", 0.2, with_depth=False),
             **_warp("warp", "camera", {"depth_image": ["depth_file", 0], "reading": "metric: near..far, bright = far",
                                        "near": 1.5, "far": 6.0}),
             **_anchor_outputs("warp", "camera", "recapture/depth_from_pack")}
    return Workflow("4_depth_from_another_pack", "ReCapture 4: depth maps from any other depth pack", graph, [
        "Depth from another pack: replace 'Load Image (depth)' with any depth node's IMAGE output (Depth Anything, "
        "MiDaS, Marigold, ZoeDepth preprocessors) and set PointCloudWarp's 'reading': most preprocessors give "
        "'disparity, bright = near'. Without DEPTH connected, the camera's subject_distance widget gives the move's "
        "scale, and match_subject_distance rescales it to the depth.", VIDEO_NOTE], needs_models=False)


def train_once_render_many() -> Workflow:
    graph = {**_video_in(), **_depth_from_file(),
             "backbone": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": SVD_FOLDER, "dtype": "fp16"}}, **SPATIAL}
    for suffix, (preset, amount) in {"_orbit": ("orbit left", 10.0), "_dolly": ("dolly in", 0.2),
                                     "_arc": ("arc right", 0.2)}.items():
        graph.update(_camera(f"camera{suffix}", preset, amount))
        graph.update(_warp(f"warp{suffix}", f"camera{suffix}", {"depth": ["depth", 0]}))
        graph.update(_training("recapture/many", suffix, warp=f"warp{suffix}"))
    return Workflow("5_train_once_render_many", "ReCapture 5: one spatial LoRA, three camera paths", graph, [
        "Train once, render many: the spatial LoRA (appearance) depends only on the source video, so it is trained "
        "once and shared; each camera path gets its own anchor video and temporal LoRA (the new motion). Re-running "
        "with another path never retrains the spatial LoRA.", MODELS_NOTE, VIDEO_NOTE])


MODEL_TRAIN = {k: v for k, v in TRAIN.items() if k != "mixed_precision"}


def _svd_conditioning(node: str, image: list) -> dict:
    """SVD_img2vid_Conditioning on one frame, at the video's own size and length (Get Image Size)."""
    return {
        f"{node}_frame": {"class_type": "ImageFromBatch", "inputs": {"image": image, "batch_index": 0, "length": 1}},
        f"{node}_size": {"class_type": "GetImageSize", "inputs": {"image": image}},
        node: {"class_type": "SVD_img2vid_Conditioning",
               "inputs": {"clip_vision": ["svd", 1], "init_image": [f"{node}_frame", 0], "vae": ["svd", 2],
                          "width": [f"{node}_size", 0], "height": [f"{node}_size", 1], "video_frames": [f"{node}_size", 2],
                          "motion_bucket_id": 127, "fps": 7, "augmentation_level": 0.0}},
    }


def _sample_and_sdedit(model: list, spatial: list, positive: list, negative: list, latent: list, vae: list,
                       cfg: tuple[float, float], ksampler: dict, prefix: str) -> dict:
    """KSampler with both LoRAs, then SDEdit: re-noise part way and denoise with the spatial LoRA only (the paper's
    refinement), decoded and saved. ``cfg``: the guidance of each."""
    conditioning = {"positive": positive, "negative": negative}
    return {
        "sample": {"class_type": "KSampler", "inputs": {"model": model, **ksampler, "cfg": cfg[0], **conditioning,
                                                        "latent_image": latent, "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": vae}},
        "sdedit_latent": {"class_type": "VAEEncode", "inputs": {"pixels": ["decode", 0], "vae": vae}},
        "sdedit": {"class_type": "KSampler", "inputs": {"model": spatial, **ksampler, "cfg": cfg[1],
                                                        **conditioning, "latent_image": ["sdedit_latent", 0], "denoise": 0.3},
                   "_meta": {"title": "KSampler (SDEdit, spatial LoRA only)"}},
        "refined": {"class_type": "VAEDecode", "inputs": {"samples": ["sdedit", 0], "vae": vae}},
        **_save_video("save_result", ["refined", 0], prefix),
    }


def full_comfy_model() -> Workflow:
    ksampler = {"seed": 0, "steps": 25, "sampler_name": "euler", "scheduler": "karras"}
    graph = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 10.0),
             **_warp("warp", "camera", {"depth": ["depth", 0]}), **_anchor_outputs("warp", "camera", "recapture/comfy_svd"),
             "svd": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": SVD_CHECKPOINT}},
             **_svd_conditioning("source_conditioning", ["components", 0]),
             **_svd_conditioning("anchor_conditioning", ["warp", 0]),
             "spatial": {"class_type": "ReCaptureSpatialLoRATrainModel",
                         "inputs": {"model": ["svd", 0], "vae": ["svd", 2], "positive": ["source_conditioning", 0],
                                    "frames": ["components", 0], **MODEL_TRAIN, "filename_prefix": "reshoot",
                                    "frames_per_step": 2}},
             "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                          "inputs": {"model": ["spatial", 0], "vae": ["svd", 2], "positive": ["anchor_conditioning", 0],
                                     "anchor": ["warp", 0], "valid_mask": ["warp", 1], **MODEL_TRAIN,
                                     "filename_prefix": "reshoot"}},
             "guidance": {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["temporal", 0], "min_cfg": 1.0}},
             **_sample_and_sdedit(["guidance", 0], ["spatial", 0], ["anchor_conditioning", 0], ["anchor_conditioning", 1],
                                  ["anchor_conditioning", 2], ["svd", 2], (2.5, 1.0), ksampler, "recapture/comfy_svd/reshot")}
    return Workflow("7_recapture_comfy_svd", "ReCapture 7: full method on ComfyUI's own SVD (its loader, KSampler, memory management)",
                    graph, [
                        "ReCapture on ComfyUI's own model: Image Only Checkpoint Loader loads svd_xt.safetensors once; the "
                        "two trainers add their LoRAs to that MODEL under ComfyUI's model management (it evicts other models "
                        "for them) and write them to ComfyUI/models/loras/recapture/ (LoraLoaderModelOnly applies them later). "
                        "Sampling is a plain KSampler on the MODEL with both LoRAs (any sampler, scheduler, guidance); SDEdit "
                        "is a second KSampler on the spatial-LoRA MODEL with denoise 0.3.",
                        f"Model: ComfyUI/models/checkpoints/{SVD_CHECKPOINT} (or svd.safetensors). The conditioning nodes take "
                        "the first frame (source video for the spatial LoRA, anchor video for the rest) and the video's own "
                        "size and length.", VIDEO_NOTE, CAMERA_NOTE])


WAN_MODEL = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_FRAMES = 13  # Wan's VAE takes 4k+1 frames; the sample clip has 14


def _trimmed(graph: dict, length: int, loops: int = 1) -> dict:
    """The graph on the first ``length`` frames of the video and of the depth file (ImageFromBatch); with ``loops``
    > 1, of the video and depth file played ``loops`` times over (RepeatImageBatch) first, for a longer clip."""
    out = {}
    for name, node in graph.items():
        inputs = {k: (["clip", 0] if v == ["components", 0] else ["depth_clip", 0] if v == ["depth_file", 0] else v)
                  for k, v in node["inputs"].items()}
        out[name] = {**node, "inputs": inputs}
        for source, clip in (("components", "clip"), ("depth_file", "depth_clip")):
            if name != source:
                continue
            frames = [source, 0]
            if loops > 1:
                out[f"{clip}_looped"] = {"class_type": "RepeatImageBatch", "inputs": {"image": frames, "amount": loops}}
                frames = [f"{clip}_looped", 0]
            out[clip] = {"class_type": "ImageFromBatch", "inputs": {"image": frames, "batch_index": 0, "length": length}}
    return out


def full_wan() -> Workflow:
    ksampler = {"seed": 0, "steps": 30, "sampler_name": "uni_pc", "scheduler": "simple"}
    prompt = "a small box gliding in front of a textured wall, steady camera"
    anchor = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 10.0),
              **_warp("warp", "camera", {"depth": ["depth", 0]}), **_anchor_outputs("warp", "camera", "recapture/wan")}
    anchor["camera"]["inputs"]["num_frames"] = WAN_FRAMES
    graph = {**_trimmed(anchor, WAN_FRAMES),
             "wan": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_MODEL, "weight_dtype": "default"}},
             "text_encoder": {"class_type": "CLIPLoader", "inputs": {"clip_name": WAN_TEXT_ENCODER, "type": "wan", "device": "default"}},
             "prompt": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["text_encoder", 0]}},
             "negative": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, distorted, static", "clip": ["text_encoder", 0]}},
             "wan_vae": {"class_type": "VAELoader", "inputs": {"vae_name": WAN_VAE}},
             "spatial": {"class_type": "ReCaptureSpatialLoRATrainModel",
                         "inputs": {"model": ["wan", 0], "vae": ["wan_vae", 0], "positive": ["prompt", 0], "frames": ["clip", 0],
                                    **MODEL_TRAIN, "filename_prefix": "reshoot_wan", "frames_per_step": 2}},
             "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                          "inputs": {"model": ["spatial", 0], "vae": ["wan_vae", 0], "positive": ["prompt", 0],
                                     "anchor": ["warp", 0], "valid_mask": ["warp", 1], **MODEL_TRAIN,
                                     "filename_prefix": "reshoot_wan"}},
             "size": {"class_type": "GetImageSize", "inputs": {"image": ["warp", 0]}},
             "latent": {"class_type": "EmptyHunyuanLatentVideo",
                        "inputs": {"width": ["size", 0], "height": ["size", 1], "length": ["size", 2], "batch_size": 1}},
             **_sample_and_sdedit(["temporal", 0], ["spatial", 0], ["prompt", 0], ["negative", 0], ["latent", 0],
                                  ["wan_vae", 0], (5.0, 5.0), ksampler, "recapture/wan/reshot")}
    return Workflow("8_recapture_wan", "ReCapture 8: full method on Wan 2.1 T2V 1.3B (core Wan nodes)",
                    graph, [
                        "ReCapture on Wan: both LoRAs train on the MODEL from Load Diffusion Model (Wan has no separate temporal "
                        "layers: the spatial LoRA learns from single-frame clips, the temporal LoRA from the anchor clip on top "
                        "of it, loss on valid pixels only, the mask reduced through the VAE's 4x temporal compression). Wan 2.1 "
                        "T2V takes no image, so the prompt describes the scene and the LoRAs carry the video; sampling is a plain "
                        "KSampler, SDEdit a second one on the spatial-LoRA MODEL with denoise 0.3.",
                        f"Models (ComfyUI's Wan 2.1 template files): models/diffusion_models/{WAN_MODEL} (or "
                        f"wan2.2_ti2v_5B_fp16.safetensors with wan2.2_vae.safetensors), models/text_encoders/{WAN_TEXT_ENCODER}, "
                        f"models/vae/{WAN_VAE}. fp8 weights (weight_dtype) train too; the LoRAs stay float32.",
                        f"Frames: Wan's VAE takes 4k+1 frames and sides in multiples of 16: this graph trims the 14-frame sample "
                        f"to {WAN_FRAMES} (ImageFromBatch) and the camera path has {WAN_FRAMES} frames; the sample's 320x192 fits.",
                        VIDEO_NOTE, CAMERA_NOTE])


LONG_FRAMES = 61  # the 14-frame sample played 5 times, cut to 61: about 2.5 windows of SVD-XT's 25 frames
LONG_WINDOW, LONG_OVERLAP = 25, 6


def _windows(node: str, model: list, conditioning: str, video: list) -> dict:
    """ReCaptureContextWindows on ``model`` with the positive/negative of ``conditioning``, each window conditioned
    on its own first frame of ``video``."""
    return {node: {"class_type": "ReCaptureContextWindows",
                   "inputs": {"model": model, "positive": [conditioning, 0], "negative": [conditioning, 1],
                              "vae": ["svd", 2], "video": video, "window": LONG_WINDOW, "overlap": LONG_OVERLAP,
                              "clip_vision": ["svd", 1]}}}


def long_clip() -> Workflow:
    """Workflow 7 on a clip longer than SVD-XT's 25 frames: the temporal trainer trains on windows, and both
    KSamplers (sampling and SDEdit) sample in windows through ReCaptureContextWindows."""
    ksampler = {"seed": 0, "steps": 25, "sampler_name": "euler", "scheduler": "karras"}
    anchor = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 10.0),
              **_warp("warp", "camera", {"depth": ["depth", 0]}), **_anchor_outputs("warp", "camera", "recapture/long_clip")}
    anchor["camera"]["inputs"]["num_frames"] = LONG_FRAMES
    graph = {**_trimmed(anchor, LONG_FRAMES, loops=-(-LONG_FRAMES // 14)),
             "svd": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": SVD_CHECKPOINT}},
             **_svd_conditioning("source_conditioning", ["clip", 0]),
             **_svd_conditioning("anchor_conditioning", ["warp", 0]),
             "spatial": {"class_type": "ReCaptureSpatialLoRATrainModel",
                         "inputs": {"model": ["svd", 0], "vae": ["svd", 2], "positive": ["source_conditioning", 0],
                                    "frames": ["clip", 0], **MODEL_TRAIN, "filename_prefix": "reshoot_long",
                                    "frames_per_step": 2}},
             "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                          "inputs": {"model": ["spatial", 0], "vae": ["svd", 2], "positive": ["anchor_conditioning", 0],
                                     "anchor": ["warp", 0], "valid_mask": ["warp", 1], **MODEL_TRAIN,
                                     "filename_prefix": "reshoot_long", "window": LONG_WINDOW,
                                     "clip_vision": ["svd", 1]}},
             "guidance": {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["temporal", 0], "min_cfg": 1.0}},
             **_windows("windows", ["guidance", 0], "anchor_conditioning", ["warp", 0])}
    for name, node in _sample_and_sdedit(["windows", 0], ["sdedit_windows", 0], ["windows", 1], ["windows", 2],
                                         ["anchor_conditioning", 2], ["svd", 2], (2.5, 1.0), ksampler,
                                         "recapture/long_clip/reshot").items():
        if name == "sdedit":
            # SDEdit: windows on the spatial-LoRA MODEL, each conditioned on its own first frame of the sampled clip.
            graph.update(_windows("sdedit_windows", ["spatial", 0], "anchor_conditioning", ["decode", 0]))
            node["inputs"].update(positive=["sdedit_windows", 1], negative=["sdedit_windows", 2])
        graph[name] = node
    return Workflow("9_recapture_long_clip", "ReCapture 9: a long clip (61 frames) in windows on ComfyUI's own SVD",
                    graph, [
                        "A long clip: workflow 7 on 61 frames, more than SVD-XT's 25. Training: the temporal trainer's "
                        f"'window' ({LONG_WINDOW}) makes each step train on a random window of {LONG_WINDOW} anchor "
                        "frames, conditioned on that window's own first frame (concat latent, and CLIP embed with "
                        "clip_vision connected), so any length trains in the memory of one window. Sampling: Context "
                        "Windows (ReCapture) patches the MODEL so the stock KSampler runs the model on overlapping "
                        f"windows ({LONG_WINDOW} frames, {LONG_OVERLAP} shared) and blends their predictions linearly; "
                        "each window starts from its own first frame of 'video': the anchor for sampling, the sampled "
                        "frames for SDEdit. The conditioning nodes still take the whole clip's length; a clip that fits "
                        "one window samples exactly as without the windows node.",
                        f"The clip: the 14-frame sample played {-(-LONG_FRAMES // 14)} times (Repeat Image Batch) and cut "
                        f"to {LONG_FRAMES} frames (ImageFromBatch), the depth file likewise; with your own long video "
                        "remove both pairs and raise the camera's num_frames (the video's length replaces it anyway). "
                        f"Model: ComfyUI/models/checkpoints/{SVD_CHECKPOINT}; with svd.safetensors set both windows and "
                        "the trainer's window to 14.", VIDEO_NOTE, CAMERA_NOTE])


MULTIVIEW = {"mode": "fuse with warp", "hole_threshold": 0.35, "resolution": 0, "seed": 0, "steps": 20, "cfg": 4.0,
             "sampler_name": "euler", "scheduler": "sgm_uniform", "source_elevation": 0.0, "orbit_frames": 21}


def large_orbit() -> Workflow:
    graph = {**_video_in(), **_depth_from_file(), **_camera("camera", "orbit left", 60.0),
             "multiview_model": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": MULTIVIEW_CHECKPOINT}},
             "anchor": {"class_type": "ReCaptureMultiviewAnchor",
                        "inputs": {"frames": ["components", 0], "trajectory": ["camera", 0], "model": ["multiview_model", 0],
                                   "clip_vision": ["multiview_model", 1], "vae": ["multiview_model", 2],
                                   "depth": ["depth", 0], "match_subject_distance": True, **MULTIVIEW}},
             **_anchor_outputs("anchor", "camera", "recapture/large_orbit", overlay_output=4),
             # valid + generated pixels: as in the paper, a multiview anchor is trained on as a whole
             "trusted_mask": {"class_type": "InvertMask", "inputs": {"mask": ["anchor", 2]},
                              "_meta": {"title": "InvertMask (hole_mask -> source + generated)"}},
             "backbone": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": SVD_FOLDER, "dtype": "fp16"}},
             **SPATIAL, **_training("recapture/large_orbit", warp="anchor", valid_mask=["trusted_mask", 0])}
    return Workflow("3_large_orbit_multiview", "ReCapture 3: large orbit with a multiview anchor (Stable Zero123 / SV3D)", graph, [
        "Large orbit (60 deg): the point cloud alone would leave most of each frame empty, so MultiviewAnchor keeps the "
        "exact warped pixels and lets a pose-conditioned multiview model re-imagine the rest of every frame from its "
        "new camera. The overlay shows (magenta) what the multiview model generated. As in the paper, the temporal LoRA "
        "learns from the whole multiview anchor: InvertMask(hole_mask) marks source and generated pixels. To trust only "
        "the exact warped pixels, connect MultiviewAnchor's valid_mask to the trainer instead.",
        f"Multiview model: Stability AI's {MULTIVIEW_CHECKPOINT} (Stable Zero123) or sv3d_p.safetensors (SV3D_p; SV3D_u "
        "has no camera input) in ComfyUI/models/checkpoints/, loaded by 'Image Only "
        "Checkpoint Loader'; check their licences. Orbits map exactly to the model's elevation/azimuth; the report "
        "warns when a path is not an orbit around the subject.", MODELS_NOTE, VIDEO_NOTE, CAMERA_NOTE])


WORKFLOWS = [full_diffusers, full_checkpoint, large_orbit, depth_from_other_pack, train_once_render_many, anchor_preview,
             full_comfy_model, full_wan, long_clip]


def all_workflows() -> list[Workflow]:
    return [make() for make in WORKFLOWS]


def numbered(graph: dict) -> dict:
    """The graph with node ids 1..N (as ComfyUI numbers nodes), links rewritten accordingly."""
    ids = {name: str(i) for i, name in enumerate(graph, start=1)}
    out = {}
    for name, node in graph.items():
        inputs = {k: ([ids[v[0]], v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
        out[ids[name]] = {**node, "inputs": inputs}
    return out


def with_tiny_models(graph: dict, steps: int = 1, size: tuple[int, int] = (32, 32)) -> dict:
    """The same graph on the tests' tiny models: frames scaled down to ``size``, very few steps.

    The multiview model's CLIP vision comes from the test-only loader (tests/comfy_support): ComfyUI
    builds CLIP vision encoders only at their full sizes, so the tiny checkpoint holds none.
    """
    out = {}
    video = [node_id for node_id, node in graph.items() if node["class_type"] == "GetVideoComponents"]
    for node_id in video:
        out[f"tiny_scale_{node_id}"] = {"class_type": "ImageScale", "inputs": {
            "image": [node_id, 0], "upscale_method": "area", "width": size[0], "height": size[1], "crop": "disabled"}}
    for node_id, node in graph.items():
        inputs = {name: ([f"tiny_scale_{value[0]}", 0] if isinstance(value, list) and value[0] in video and value[1] == 0
                         else value) for name, value in node["inputs"].items()}
        if node["class_type"] == "ReCaptureSVDLoader":
            inputs.update(model="tiny-svd", dtype="fp32")
        elif node["class_type"] == "ReCaptureSVDCheckpointLoader":
            inputs.update(ckpt_name="tiny_svd.safetensors", architecture="like tiny-svd", dtype="fp32")
        elif node["class_type"] == "ImageOnlyCheckpointLoader" and inputs["ckpt_name"] == SVD_CHECKPOINT:
            out[node_id] = {"class_type": "ReCaptureTestTinySVDLoader",
                            "inputs": {"weight_dtype": "fp16", "seed": 0, "clip_name": "tiny-clip-vision.safetensors"}}
            continue
        elif node["class_type"] == "ImageOnlyCheckpointLoader":
            inputs.update(ckpt_name="tiny_stable_zero123.safetensors")
        elif node["class_type"] == "UNETLoader":
            inputs.update(unet_name="tiny_wan2.1_t2v.safetensors")
        elif node["class_type"] == "VAELoader":
            inputs.update(vae_name="tiny_wan_2.1_vae.safetensors")
        elif node["class_type"] == "CLIPLoader":
            continue  # UMT5-XXL cannot be tiny: the test-only node below gives conditioning of its shape
        elif node["class_type"] == "CLIPTextEncode":
            out[node_id] = {"class_type": "ReCaptureTestWanText", "inputs": {"text": inputs["text"]}}
            continue
        elif node["class_type"] == "ReCaptureMultiviewAnchor":
            out["tiny_clip_vision"] = {"class_type": "ReCaptureTestTinyCLIPVisionLoader",
                                       "inputs": {"clip_name": "tiny-clip-vision.safetensors"}}
            inputs.update(clip_vision=["tiny_clip_vision", 0], resolution=64, steps=steps)
        elif "steps" in inputs:
            inputs["steps"] = steps
        out[node_id] = {**node, "inputs": inputs}
    return out
