"""A shot list's graphs: workflow 7 (SVD) or 8 (Wan) of ``scripts/workflow_defs.py``, filled in per shot and split.

The graphs come from the same definitions the saved workflows are built from, so the farm and the
sample workflows never drift apart. One workflow graph does a whole shot; the farm splits it:

- the **clip graph** (once per clip): everything the spatial trainer needs, the trainer itself and a
  PreviewAny that reports the LoRA's file name; with a ``depth_model``, also DepthEstimate and Save Depth.
- the **path graph** (once per camera path): the rest, with the spatial trainer replaced by
  LoraLoaderModelOnly on the file the clip graph wrote (the trainer's own MODEL output is exactly that
  LoRA applied at strength 1 to the same MODEL), and a PreviewAny reporting the temporal LoRA's name.

Standard library only: the driver builds graphs without torch or ComfyUI.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .files import file_sha256, sha256_bytes
from .shotlist import CameraPath, Clip, Job

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import workflow_defs  # noqa: E402  (scripts/ is not a package)

#: Workflow definitions by backbone.
BACKBONES: dict[str, Callable[[], workflow_defs.Workflow]] = {"svd": workflow_defs.full_comfy_model,
                                                               "wan": workflow_defs.full_wan}
SPATIAL_TRAINER = "ReCaptureSpatialLoRATrainModel"
TEMPORAL_TRAINER = "ReCaptureMaskedTemporalLoRATrainModel"
#: Node types whose results ComfyUI reports in the history (the only ones worth keeping when pruning).
OUTPUT_NODES = {"SaveVideo", "SaveImage", "PreviewAny", "ReCaptureDepthSave"}
#: What a shot keeps: the output folder's name for each saving node of the workflow graphs.
SHOT_FILES = {"save_result": "reshot", "save_anchor": "anchor", "save_holes": "holes", "save_camera_preview": "camera"}
#: Where uploaded LoRAs go, under a worker's models/loras/.
LORA_FOLDER = "recapture_farm"
#: Stands for the spatial LoRA's file name in a path graph until the clip's LoRA exists.
SPATIAL_LORA_PLACEHOLDER = "<spatial LoRA of the clip>"
#: Likewise the estimated depth file's name, for a clip with a depth model.
DEPTH_PLACEHOLDER = "<depth of the clip>"


@dataclass(frozen=True)
class Upload:
    """A file a task needs on its worker: ``folder`` is ``input`` or ``loras``, ``name`` relative to it."""

    folder: str
    name: str
    sha256: str
    source: Path | None = None  # the driver's copy; None for a file made by another task (the spatial LoRA)
    # Kept on the worker to the nanosecond: LoadVideo's IS_CHANGED is the file's time, and SaveVideo writes it
    # into every video's metadata, so outputs are identical only where the time is.
    mtime_ns: int = 0


@dataclass
class Task:
    """One prompt for one worker.

    ``reports``: node id -> what its PreviewAny text names (``spatial_lora``, ``temporal_lora``, ``depth``,
    ``report``); ``saves``: node id -> the file stem the saved output gets in the shot's folder.
    """

    label: str
    graph: dict
    uploads: list[Upload]
    key: str
    reports: dict[str, str] = field(default_factory=dict)
    saves: dict[str, str] = field(default_factory=dict)



def graph_key(*parts) -> str:
    """A stable hash of JSON-able parts (graphs, settings): equal keys mean the same work."""
    return sha256_bytes(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode())


def input_upload(path: Path, sha256: str | None = None) -> Upload:
    """A file for ComfyUI's input folder, named by its content: the same file always gets the same name, on every
    worker and run, so a shot's graph (and its key) depends on what the file holds, never on where it lay.
    LoadVideo and LoadImage list only the input folder's top level, hence no subfolder."""
    sha256 = sha256 or file_sha256(path)
    return Upload("input", f"farm_{sha256[:16]}_{path.name}", sha256, path, path.stat().st_mtime_ns)


def _ancestors(graph: dict, roots: list[str]) -> set[str]:
    seen, stack = set(), list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(value[0] for value in graph[node]["inputs"].values() if isinstance(value, list))
    return seen


def pruned(graph: dict) -> dict:
    """Only the nodes an output node needs, in the graph's order."""
    keep = _ancestors(graph, [name for name, node in graph.items() if node["class_type"] in OUTPUT_NODES])
    return {name: node for name, node in graph.items() if name in keep}


def _untrimmed(graph: dict) -> dict:
    """Workflow 8 trims the 14-frame sample to 13 frames (ImageFromBatch ``clip`` / ``depth_clip``); a shot list's
    clip is used whole (Wan needs 4k+1 frames: the trainer says so when a clip has another length)."""
    links = {"clip": ["components", 0], "depth_clip": ["depth_file", 0]}
    out = {}
    for name, node in graph.items():
        if name in links:
            continue
        inputs = {k: (links[v[0]] if isinstance(v, list) and v[0] in links else v) for k, v in node["inputs"].items()}
        out[name] = {**node, "inputs": inputs}
    return out


def _settings(graph: dict, job: Job) -> None:
    """The job's seed, steps, rank and learning rate, model files and prompt, in place."""
    models = dict(job.models)
    for node in graph.values():
        inputs, kind = node["inputs"], node["class_type"]
        if "seed" in inputs:
            inputs["seed"] = job.seed
        if kind in (SPATIAL_TRAINER, TEMPORAL_TRAINER):
            inputs.update(steps=job.train_steps, rank=job.rank, alpha=float(job.rank), learning_rate=job.learning_rate)
        elif kind == "KSampler" and job.sample_steps is not None:
            inputs["steps"] = job.sample_steps
        elif kind == "ImageOnlyCheckpointLoader" and "checkpoint" in models:
            inputs["ckpt_name"] = models["checkpoint"]
        elif kind == "UNETLoader" and "diffusion_model" in models:
            inputs["unet_name"] = models["diffusion_model"]
        elif kind == "VAELoader" and "vae" in models:
            inputs["vae_name"] = models["vae"]
        elif kind == "CLIPLoader" and "text_encoder" in models:
            inputs["clip_name"] = models["text_encoder"]
    if job.prompt is not None and "prompt" in graph:
        graph["prompt"]["inputs"]["text"] = job.prompt


def workflow_graph(job: Job) -> dict:
    """The backbone's workflow graph (API form, named node ids) with the job's settings."""
    graph = copy.deepcopy(BACKBONES[job.backbone]().graph)
    if job.backbone == "wan":
        graph = _untrimmed(graph)
    _settings(graph, job)
    return graph


def _with_clip(graph: dict, clip: Clip, video: Upload, depth: Upload | None) -> None:
    """The clip's video and depth file in place (``depth``: its depth image; None with a depth model)."""
    graph["video"]["inputs"]["file"] = video.name
    if depth is not None:
        graph["depth_file"]["inputs"]["image"] = depth.name
        graph["depth"]["inputs"].update(reading=clip.depth_reading, near=clip.depth_near, far=clip.depth_far)


def _with_camera(graph: dict, path: CameraPath, camera_file: Upload | None) -> None:
    """The camera node for ``path``: the preset, the keyframes or the camera file."""
    camera = graph["camera"]
    if path.preset is not None:
        camera["inputs"].update(preset=path.preset, amount=path.amount, easing=path.easing)
        return
    shared = {name: camera["inputs"][name] for name in ("num_frames", "hfov_deg", "subject_distance", "frames", "depth")}
    if path.keyframes is not None:
        graph["camera"] = {"class_type": "ReCaptureCameraKeyframes",
                           "inputs": {"keyframes": path.keyframes, "interpolation": "pose: slerp + spline", **shared}}
    else:
        # A camera file brings its own poses: the file's first pose is where the video was filmed.
        graph["camera"] = {"class_type": "ReCaptureCameraImport",
                           "inputs": {"file": camera_file.name, "format": "auto", "reference": "first pose is the source camera",
                                      "translation_scale": 1.0, "subject_distance": shared["subject_distance"]}}


def _prefixes(graph: dict, folder: str) -> None:
    """Where the workers save: one folder per clip or shot under ComfyUI's output/ and models/loras/recapture/."""
    for name, node in graph.items():
        if node["class_type"] in ("SaveVideo", "SaveImage", "ReCaptureDepthSave"):
            node["inputs"]["filename_prefix"] = f"recapture_farm/{folder}/{SHOT_FILES.get(name, name)}"
        elif node["class_type"] in (SPATIAL_TRAINER, TEMPORAL_TRAINER):
            node["inputs"]["filename_prefix"] = f"farm/{folder.replace('/', '_')}"


def _spatial_node(graph: dict) -> str:
    nodes = [name for name, node in graph.items() if node["class_type"] == SPATIAL_TRAINER]
    if len(nodes) != 1:
        raise ValueError(f"the workflow graph has {len(nodes)} spatial trainers; the farm splits graphs with exactly one")
    for node in graph.values():
        for value in node["inputs"].values():
            if isinstance(value, list) and value[0] == nodes[0] and value[1] != 0:
                raise ValueError("the workflow graph uses a spatial trainer output other than its MODEL")
    return nodes[0]


@dataclass
class ClipFiles:
    """The uploads of one clip: its video, its depth image (or None) and, per path, its camera file (or None)."""

    video: Upload
    depth_image: Upload | None
    cameras: dict[str, Upload | None]


def clip_files(clip: Clip, hashes: dict[Path, str] | None = None) -> ClipFiles:
    hashes = hashes or {}
    upload = lambda path: input_upload(path, hashes.get(path))  # noqa: E731
    return ClipFiles(video=upload(clip.video), depth_image=upload(clip.depth_image) if clip.depth_image else None,
                     cameras={path.name: upload(path.camera_file) if path.camera_file else None for path in clip.paths})


def clip_task(job: Job, clip: Clip, files: ClipFiles, prepare: Callable[[dict], dict] | None = None) -> Task:
    """The clip's graph: the spatial LoRA (and the depth, with a depth model), once for all its camera paths."""
    graph = workflow_graph(job)
    _with_clip(graph, clip, files.video, files.depth_image)
    spatial = _spatial_node(graph)
    keep = _ancestors(graph, [spatial])
    out = {name: node for name, node in graph.items() if name in keep}
    out["report_spatial_lora"] = {"class_type": "PreviewAny", "inputs": {"source": [spatial, 1]}}
    reports = {"report_spatial_lora": "spatial_lora"}
    if clip.depth_model is not None:
        out["depth"] = {"class_type": "ReCaptureDepthEstimate",
                        "inputs": {"frames": graph["warp"]["inputs"]["frames"], "depth_model": clip.depth_model,
                                   "batch_size": 4, "temporal_consistency": True}}
        out["save_depth"] = {"class_type": "ReCaptureDepthSave", "inputs": {"depth": ["depth", 0]}}
        out["report_depth"] = {"class_type": "PreviewAny", "inputs": {"source": ["save_depth", 0]}}
        reports["report_depth"] = "depth"
    _prefixes(out, clip.name)
    out = prepare(out) if prepare else out
    uploads = [files.video] + ([files.depth_image] if files.depth_image else [])
    return Task(f"{clip.name} (spatial LoRA)", out, uploads, graph_key("clip", out), reports)


def path_task(job: Job, clip: Clip, path: CameraPath, files: ClipFiles, clip_key: str,
              prepare: Callable[[dict], dict] | None = None) -> Task:
    """One camera path's graph, with the spatial LoRA's name left as :data:`SPATIAL_LORA_PLACEHOLDER` (see
    :func:`with_spatial_lora`). Its key covers the clip's key, so a new spatial LoRA means new shots."""
    graph = workflow_graph(job)
    _with_clip(graph, clip, files.video, files.depth_image)
    _with_camera(graph, path, files.cameras.get(path.name))
    spatial = _spatial_node(graph)
    graph[spatial] = {"class_type": "LoraLoaderModelOnly",
                      "inputs": {"model": graph[spatial]["inputs"]["model"], "lora_name": SPATIAL_LORA_PLACEHOLDER,
                                 "strength_model": 1.0}}
    if clip.depth_model is not None:
        del graph["depth_file"]
        graph["depth"] = {"class_type": "ReCaptureDepthLoad", "inputs": {"file": DEPTH_PLACEHOLDER}}
    temporal = next(name for name, node in graph.items() if node["class_type"] == TEMPORAL_TRAINER)
    graph["report_temporal_lora"] = {"class_type": "PreviewAny", "inputs": {"source": [temporal, 1]}}
    graph = pruned(graph)
    _prefixes(graph, f"{clip.name}/{path.name}")
    graph = prepare(graph) if prepare else graph
    uploads = [files.video] + ([files.depth_image] if files.depth_image else [])
    if files.cameras.get(path.name):
        uploads.append(files.cameras[path.name])
    saves = {name: stem for name, stem in SHOT_FILES.items() if name in graph}
    return Task(f"{clip.name}/{path.name}", graph, uploads, graph_key("path", clip_key, graph),
                {"report_temporal_lora": "temporal_lora", "report": "report"}, saves)


def with_spatial_lora(task: Task, lora: Upload, depth: Upload | None = None) -> Task:
    """The path task with the clip's spatial LoRA (and estimated depth file) filled in."""
    graph = copy.deepcopy(task.graph)
    for node in graph.values():
        if node["class_type"] == "LoraLoaderModelOnly" and node["inputs"]["lora_name"] == SPATIAL_LORA_PLACEHOLDER:
            node["inputs"]["lora_name"] = lora.name
        elif node["class_type"] == "ReCaptureDepthLoad" and node["inputs"]["file"] == DEPTH_PLACEHOLDER:
            node["inputs"]["file"] = depth.name
    return Task(task.label, graph, task.uploads + [lora] + ([depth] if depth else []), task.key, task.reports, task.saves)


def lora_upload(data_sha256: str) -> Upload:
    """Where a LoRA lands on a worker: named by its content under models/loras/recapture_farm/."""
    return Upload("loras", f"{LORA_FOLDER}/{data_sha256[:16]}.safetensors", data_sha256)


def depth_upload(data_sha256: str) -> Upload:
    return Upload("input", f"farm_{data_sha256[:16]}.depth.safetensors", data_sha256)
