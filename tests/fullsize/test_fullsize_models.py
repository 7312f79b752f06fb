"""The released architectures at full size, through ComfyUI's real loader nodes, in a real ComfyUI server.

Random weights in the released formats and shapes (fullsize_files.py: made on first use, cached under
.host/fullsize-cache/), small latents, 2 steps: what is checked is that the files users download load,
train, patch and sample, not what the model learns. Each backbone gets its own server, started and stopped
by its test, so a 9 GB model never sits in memory beside the next one; the server's peak RSS goes to
.host/fullsize-last-run.json.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import comfy_host
import fullsize_files

pytestmark = [pytest.mark.server, pytest.mark.fullsize]

REPO = Path(__file__).resolve().parents[2]
RUN_RECORD = REPO / ".host" / "fullsize-last-run.json"
TRAIN = {"steps": 2, "learning_rate": 5e-4, "rank": 16, "alpha": 16.0, "seed": 0, "gradient_checkpointing": True}
#: SVD: 4 frames at 64x128. Its UNet halves the latent three times, so at 64x64 the middle block's spatial
#: self-attention would see one token (q/k without gradient); 128 wide gives it two. Wan: 5 frames (4k+1) at 64x64.
SVD_CLIP = {"frames": 4, "width": 128, "height": 64}
WAN_CLIP = {"frames": 5, "width": 64, "height": 64}
NEEDS_GB = {"svd_xt": 14, "svd_xt_diffusers": 14, "wan": 9, "depth": 2}


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    base = comfy_host.make_base_directory(tmp_path_factory.mktemp("comfy_fullsize"))
    (base / "custom_nodes" / "recapture_test_nodes").symlink_to(REPO / "tests" / "comfy_support" / "recapture_test_nodes",
                                                                target_is_directory=True)
    return base


def place(source: Path, target: Path) -> None:
    """Hard links (a copy across file systems): the pack refuses model folders that are symlinks out of models/."""
    if source.is_dir():
        for item in source.rglob("*"):
            if item.is_file():
                place(item, target / item.relative_to(source))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)


#: The cached files each server needs (made on first use: a run of one test makes only its own).
SERVER_FILES = {"svd_xt": ("svd_xt",), "svd_xt_diffusers": ("svd_xt_diffusers",),
                "wan": ("wan21_t2v_1.3B", "wan21_vae"), "depth": ("depth_anything_v2_small",)}


@contextmanager
def server(base_dir: Path, name: str):
    """A ComfyUI server for one backbone, with its model files in place; waits (up to 10 min) for the memory it
    needs on a shared machine."""
    for file in SERVER_FILES[name]:
        target = base_dir / "models" / fullsize_files.FILES[file]
        if not target.exists():
            place(fullsize_files.model_file(file), target)
    deadline = time.monotonic() + 600
    while available_gb() < NEEDS_GB[name] and time.monotonic() < deadline:
        time.sleep(10)
    started = time.perf_counter()
    process = comfy_host.ComfyServer(comfy_dir=Path(comfy_host.host_paths()["COMFYUI_DIR"]), base_dir=base_dir,
                                     python=sys.executable, log_path=base_dir / f"comfyui-{name}.log")
    process.start(timeout_s=float(os.environ.get("RECAPTURE_SERVER_TIMEOUT", "180")))
    try:
        yield process
    finally:
        peak = _peak_rss_gb(process.process.pid)
        process.stop()
        (REPO / ".host").mkdir(exist_ok=True)
        (REPO / ".host" / f"last-fullsize-{name}.log").write_text(process.log_text())
        record = json.loads(RUN_RECORD.read_text()) if RUN_RECORD.exists() else {}
        record[name] = {"server_peak_rss_gb": peak, "seconds": round(time.perf_counter() - started, 1)}
        RUN_RECORD.write_text(json.dumps(record, indent=1) + "\n")


def _peak_rss_gb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        return None
    return None


def with_defaults(comfy, graph: dict) -> dict:
    """``graph`` with every required widget it leaves out at the node's default (widgets added later need no edit here)."""
    info = comfy.object_info()
    out = {}
    for node_id, node in graph.items():
        inputs = dict(node["inputs"])
        for name, spec in info[node["class_type"]]["input"].get("required", {}).items():
            if name not in inputs and len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]:
                inputs[name] = spec[1]["default"]
        out[node_id] = {**node, "inputs": inputs}
    return out


def reports(entry: dict) -> dict:
    """The ReCaptureTestModelReport outputs of a finished prompt, by label."""
    found = {}
    for output in entry["outputs"].values():
        for text in output.get("text", []):
            info = json.loads(text)
            found[info["label"]] = info
    return found


def lora_modules(path: Path, zero_part: str) -> tuple[set[str], set[str]]:
    """(modules, modules whose zero-initialised matrix is still exactly zero) of a LoRA file."""
    modules, zero = set(), set()
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            if key.endswith(zero_part):
                modules.add(key[: -len(zero_part)])
                if not handle.get_tensor(key).any():
                    zero.add(key[: -len(zero_part)])
            else:
                assert torch.isfinite(handle.get_tensor(key)).all(), key
    return modules, zero


def model_path_graphs(loader: dict, vae: list, positive: list, negative: list, clip: dict, prefix: str,
                      conditioning: dict, latent: list, sampler: dict) -> tuple[dict, callable]:
    """The training graph and, given the two LoRA file names, the graph that applies them and samples."""
    train = {**loader, **conditioning,
             "clip": {"class_type": "ReCaptureTestMovingClip", "inputs": clip},
             "before": {"class_type": "ReCaptureTestModelReport", "inputs": {"model": ["model", 0], "label": "before"}},
             "spatial": {"class_type": "ReCaptureSpatialLoRATrainModel",
                         "inputs": {"model": ["model", 0], "vae": vae, "positive": positive, "frames": ["clip", 0], **TRAIN,
                                    "filename_prefix": prefix, "frames_per_step": 2}},
             "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrainModel",
                          "inputs": {"model": ["spatial", 0], "vae": vae, "positive": positive, "anchor": ["clip", 0],
                                     "valid_mask": ["clip", 1], **TRAIN, "filename_prefix": prefix}},
             "after": {"class_type": "ReCaptureTestModelReport",
                       "inputs": {"model": ["model", 0], "label": "after", "after": ["temporal", 1]}}}

    def apply(spatial_name: str, temporal_name: str) -> dict:
        return {**loader, **conditioning,
                "clip": {"class_type": "ReCaptureTestMovingClip", "inputs": clip},
                "with_spatial": {"class_type": "LoraLoaderModelOnly",
                                 "inputs": {"model": ["model", 0], "lora_name": spatial_name, "strength_model": 1.0}},
                "with_both": {"class_type": "LoraLoaderModelOnly",
                              "inputs": {"model": ["with_spatial", 0], "lora_name": temporal_name, "strength_model": 1.0}},
                "sample": {"class_type": "KSampler",
                           "inputs": {"model": ["with_both", 0], "seed": 0, "steps": 2, "cfg": 1.0, **sampler,
                                      "positive": positive, "negative": negative, "latent_image": latent, "denoise": 1.0}},
                "sampled": {"class_type": "ReCaptureTestModelReport",
                            "inputs": {"model": ["with_both", 0], "label": "sampled", "latent": ["sample", 0]}}}

    return train, apply


def check_model_path(comfy, graphs, prefix: str, model_class: str, weight_dtype: str):
    """Train both LoRAs, then apply them with LoraLoaderModelOnly and sample 2 steps with KSampler."""
    train, apply = graphs
    entry = comfy.run(with_defaults(comfy, train), timeout_s=1800)
    found = reports(entry)
    assert found["before"]["class"] == model_class
    assert weight_dtype in found["before"]["dtypes"]
    assert found["after"]["fingerprint"] == found["before"]["fingerprint"]  # the input MODEL's weights, bit for bit

    loras = comfy.base_dir / "models" / "loras"
    files = {kind: loras / "recapture" / f"{prefix}_{kind}_00001_comfyui.safetensors" for kind in ("spatial", "temporal")}
    expected = 0
    for kind, path in files.items():
        modules, still_zero = lora_modules(path, ".lora_down.weight")
        assert modules and not still_zero, f"{kind}: {len(still_zero)} of {len(modules)} modules never learnt, e.g. {sorted(still_zero)[:3]}"
        assert not any(re.search(r"\.attn2\.(to_q|to_k)$", m) for m in modules)  # SVD's single-token cross-attention
        expected += len(modules)

    before = len(comfy.log_text())
    entry = comfy.run(with_defaults(comfy, apply(*(p.relative_to(loras).as_posix() for p in files.values()))), timeout_s=1800)
    log = comfy.log_text()[before:]
    assert "lora key not loaded" not in log, log[-4000:]
    sampled = reports(entry)["sampled"]
    assert sampled["lora_patches"] == expected  # every module of both files patched, nothing left over
    assert sampled["latent"]["finite"]


def test_svd_xt_single_file_through_image_only_checkpoint_loader(base_dir):
    """svd_xt.safetensors as users download it: detected as SVD-XT from its keys, fp32 weights on the CPU."""
    conditioning = {
        "first": {"class_type": "ImageFromBatch", "inputs": {"image": ["clip", 0], "batch_index": 0, "length": 1}},
        "cond": {"class_type": "SVD_img2vid_Conditioning",
                 "inputs": {"clip_vision": ["model", 1], "init_image": ["first", 0], "vae": ["model", 2],
                            "width": SVD_CLIP["width"], "height": SVD_CLIP["height"], "video_frames": SVD_CLIP["frames"],
                            "motion_bucket_id": 127, "fps": 7, "augmentation_level": 0.0}}}
    loader = {"model": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "svd_xt.safetensors"}}}
    graphs = model_path_graphs(loader, ["model", 2], ["cond", 0], ["cond", 1], SVD_CLIP, "fullsize_svd", conditioning,
                               ["cond", 2], {"sampler_name": "euler", "scheduler": "karras"})
    with server(base_dir, "svd_xt") as comfy:
        check_model_path(comfy, graphs, "fullsize_svd", "SVD_img2vid", "float32")
        assert "clip missing" not in comfy.log_text().lower()  # the CLIP-ViT-H tower loaded in full


@pytest.mark.parametrize("weight_dtype", ["default", "fp8_e4m3fn"])
def test_wan21_t2v_1_3b_through_unet_loader(base_dir, weight_dtype):
    """wan2.1_t2v_1.3B_fp16.safetensors + wan_2.1_vae.safetensors; text conditioning of UMT5-XXL's shape."""
    loader = {"model": {"class_type": "UNETLoader", "inputs": {"unet_name": Path(fullsize_files.FILES["wan21_t2v_1.3B"]).name,
                                                               "weight_dtype": weight_dtype}},
              "vae": {"class_type": "VAELoader", "inputs": {"vae_name": Path(fullsize_files.FILES["wan21_vae"]).name}}}
    conditioning = {"text": {"class_type": "ReCaptureTestWanText", "inputs": {"text": "a box gliding past a wall", "tokens": 512}},
                    "latent": {"class_type": "EmptyHunyuanLatentVideo",
                               "inputs": {"width": WAN_CLIP["width"], "height": WAN_CLIP["height"],
                                          "length": WAN_CLIP["frames"], "batch_size": 1}}}
    prefix = f"fullsize_wan_{weight_dtype}"
    graphs = model_path_graphs(loader, ["vae", 0], ["text", 0], ["text", 0], WAN_CLIP, prefix, conditioning, ["latent", 0],
                               {"sampler_name": "euler", "scheduler": "simple"})
    with server(base_dir, "wan") as comfy:
        check_model_path(comfy, graphs, prefix, "WAN21", "float8_e4m3fn" if weight_dtype == "fp8_e4m3fn" else "float32")


def test_svd_xt_diffusers_folder_through_the_packs_svd_loader(base_dir):
    """The diffusers path: SVD Loader, both trainers (every targeted module learns), LoRA files, DualLoRASample."""
    clip = {"class_type": "ReCaptureTestMovingClip", "inputs": SVD_CLIP}
    train = {**TRAIN, "mixed_precision": "auto"}
    graph = {"backbone": {"class_type": "ReCaptureSVDLoader", "inputs": {"model": "svd-xt", "dtype": "fp32"}},
             "clip": clip,
             "spatial": {"class_type": "ReCaptureSpatialLoRATrain",
                         "inputs": {"backbone": ["backbone", 0], "frames": ["clip", 0], **train, "frames_per_step": 2}},
             "temporal": {"class_type": "ReCaptureMaskedTemporalLoRATrain",
                          "inputs": {"backbone": ["backbone", 0], "anchor": ["clip", 0], "valid_mask": ["clip", 1], **train,
                                     "spatial_lora": ["spatial", 0]}},
             "save_spatial": {"class_type": "ReCaptureLoRASave",
                              "inputs": {"lora": ["spatial", 0], "filename_prefix": "fullsize_diffusers", "export_comfyui": False}},
             "save_temporal": {"class_type": "ReCaptureLoRASave",
                               "inputs": {"lora": ["temporal", 0], "filename_prefix": "fullsize_diffusers", "export_comfyui": False}},
             "sample": {"class_type": "ReCaptureDualLoRASample",
                        "inputs": {"backbone": ["backbone", 0], "anchor": ["clip", 0], "temporal_strength": 1.0,
                                   "spatial_strength": 1.0, "start_strength": 1.0, "seed": 0, "steps": 2, "min_guidance": 1.0,
                                   "max_guidance": 1.0, "motion_bucket_id": 127, "fps": 7.0, "noise_aug_strength": 0.02,
                                   "decode_chunk_size": 4, "window": 0, "overlap": 0,
                                   "temporal_lora": ["temporal", 0], "spatial_lora": ["spatial", 0]}},
             "preview": {"class_type": "PreviewImage", "inputs": {"images": ["sample", 0]}}}
    with server(base_dir, "svd_xt_diffusers") as comfy:
        entry = comfy.run(with_defaults(comfy, graph), timeout_s=1800)
    assert len(comfy.output_files(entry, "preview")) == SVD_CLIP["frames"]
    for kind in ("spatial", "temporal"):
        modules, still_zero = lora_modules(comfy.base_dir / "models" / "loras" / "recapture" /
                                           f"fullsize_diffusers_{kind}_00001.safetensors", ".lora_B.weight")
        assert modules and not still_zero, f"{kind}: {len(still_zero)} of {len(modules)} modules never learnt"


def test_depth_anything_v2_small_through_depth_estimate(base_dir):
    graph = {"clip": {"class_type": "ReCaptureTestMovingClip", "inputs": {"frames": 1, "width": 96, "height": 64}},
             "depth": {"class_type": "ReCaptureDepthEstimate",
                       "inputs": {"frames": ["clip", 0], "depth_model": Path(fullsize_files.FILES["depth_anything_v2_small"]).name,
                                  "batch_size": 1, "temporal_consistency": False}},
             "preview": {"class_type": "PreviewImage", "inputs": {"images": ["depth", 1]}}}
    with server(base_dir, "depth") as comfy:
        entry = comfy.run(with_defaults(comfy, graph), timeout_s=600)
        log = comfy.log_text()
    assert len(comfy.output_files(entry, "preview")) == 1
    assert not re.search(r"(were not used|newly initialized|MISSING|UNEXPECTED)", log), log[-3000:]
