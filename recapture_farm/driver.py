"""The farm's driver: plans a shot list, starts workers on Ray, schedules tasks, gathers outputs.

Per clip the spatial LoRA (and an estimated depth) is made once, on one worker; its file travels to the
workers that render the clip's camera paths through Ray's object store, as do the clip's video and depth
image. Per camera path, anchor + temporal LoRA + sampling + SDEdit run as one prompt. A task whose worker's
ComfyUI died or hung is retried (its worker restarts the server); a worker actor that died is replaced.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import graphs
from .graphs import Task, Upload
from .files import atomic_write, file_sha256, sha256_bytes
from .manifest import Manifest
from .shotlist import Job, load_job
from .worker import WorkerSpec

log = logging.getLogger("recapture_farm")
CLIP_FOLDER = "_spatial"  # output/<clip>/_spatial/: the clip's LoRA; path names cannot start with '_'


class FarmError(RuntimeError):
    """A job that cannot start (a worker lacks a model file, a node type, ...) or whose shots failed."""


@dataclass
class _Pending:
    task: Task
    clip: str
    kind: str  # "clip" | "shot"
    attempts: int = 0
    submitted: float = 0.0  # perf_counter at the last submission
    sent_task: Task | None = None  # the task as last sent (a shot's with its clip's LoRA filled in)


@dataclass
class FarmStats:
    """What a run moved and how long it took (the bench reads these)."""

    wall_s: float = 0.0
    object_store_bytes: int = 0
    task_seconds: dict = field(default_factory=dict)   # label -> seconds on the worker
    round_trip_s: dict = field(default_factory=dict)   # label -> seconds from submission to result on the driver
    workers_ready_s: float = 0.0


def default_worker_spec(scratch_dir: str | None = None, models_dir: str | None = None, gpu: bool | None = None) -> WorkerSpec:
    """Workers like this checkout's ComfyUI (``scripts/setup.sh``'s ``.host/``): its ComfyUI, its models."""
    import comfy_host  # scripts/, put on the path by .worker

    paths = comfy_host.host_paths()
    base = Path(paths["RECAPTURE_BASE_DIR"])
    return WorkerSpec(comfy_dir=paths["COMFYUI_DIR"], models_dir=models_dir or str(base / "models"),
                      scratch_dir=scratch_dir or str(graphs.REPO / ".host" / "farm"), python=paths["RECAPTURE_PYTHON"],
                      gpu=bool(gpu))


def check_graph(task: Task, worker: dict) -> list[str]:
    """What keeps ``worker`` from running ``task``, checked against its server's own node definitions: node types
    it lacks, and choices (model files) its folders do not hold. Files the farm uploads are not checked."""
    uploaded = {upload.name for upload in task.uploads} | {graphs.SPATIAL_LORA_PLACEHOLDER, graphs.DEPTH_PLACEHOLDER}
    info, problems = worker["object_info"], []
    for node_id, node in task.graph.items():
        kind = node["class_type"]
        if kind not in info:
            problems.append(f"has no node type {kind} (a custom node pack missing on it?)")
            continue
        declared = {**info[kind]["input"].get("required", {}), **info[kind]["input"].get("optional", {})}
        for name, value in node["inputs"].items():
            spec = declared.get(name)
            if isinstance(value, list) or not spec or not isinstance(spec[0], list) or value in uploaded:
                continue
            if value not in spec[0]:
                shown = ", ".join(map(str, spec[0][:8])) + (", ..." if len(spec[0]) > 8 else "")
                problems.append(f"has no {value!r} for {kind}'s {name} (it has: {shown or 'nothing'})")
    return problems


class _Farm:
    def __init__(self, job: Job, workers: int | None, spec: WorkerSpec, prepare, max_attempts: int, progress: bool,
                 address: str | None):
        self.job, self.spec, self.prepare = job, spec, prepare
        self.max_attempts, self.show_progress, self.address = max_attempts, progress, address
        self.requested_workers = workers
        self.manifest = Manifest.load(job.output)
        self.stats = FarmStats()
        self.loras: dict[str, Upload] = {}  # clip -> its spatial LoRA on the workers
        self.depths: dict[str, Upload] = {}  # clip -> its estimated depth file on the workers
        self.blobs: dict[str, tuple[object, int]] = {}  # sha256 -> (ObjectRef, bytes) of every file sent to workers
        self.present: dict[str, set[str]] = {}  # worker name -> sha256s it holds
        self.bars: dict = {}

    # --- planning --------------------------------------------------------------------------
    def plan(self) -> tuple[list[_Pending], dict[str, list[_Pending]], dict[str, dict]]:
        """Clip tasks to run now, per clip the shot tasks waiting for its LoRA (finished shots left out), and the
        manifest entries of clips whose LoRA an earlier run made."""
        hashes: dict[Path, str] = {}
        clip_tasks, waiting, made = [], {}, {}
        for clip in self.job.clips:
            for path in [clip.video, clip.depth_image, *(p.camera_file for p in clip.paths)]:
                if path is not None and path not in hashes:
                    hashes[path] = file_sha256(path)
            files = graphs.clip_files(clip, hashes)
            task = graphs.clip_task(self.job, clip, files, self.prepare)
            shots = []
            for path in clip.paths:
                shot = graphs.path_task(self.job, clip, path, files, task.key, self.prepare)
                if self.manifest.shot_done(shot.label, shot.key):
                    log.info("%s: done in an earlier run, skipped", shot.label)
                    continue
                shots.append(_Pending(shot, clip.name, "shot"))
            if not shots:
                continue
            waiting[clip.name] = shots
            done = self.manifest.clip_lora(clip.name, task.key)
            if done:
                made[clip.name] = done
            else:
                clip_tasks.append(_Pending(task, clip.name, "clip"))
        return clip_tasks, waiting, made

    def _lora_from_manifest(self, clip: str, entry: dict) -> None:
        """Share a LoRA (and depth) an earlier run left in the output folder: no need to train it again."""
        for stem, registry, make in (("spatial_lora", self.loras, graphs.lora_upload),
                                     ("depth", self.depths, graphs.depth_upload)):
            if stem in entry["files"]:
                registry[clip] = make(self._share((self.job.output / entry["files"][stem]["path"]).read_bytes()))

    def _share(self, data: bytes) -> str:
        """Put ``data`` into Ray's object store once; its sha256."""
        import ray

        digest = sha256_bytes(data)
        if digest not in self.blobs:
            self.blobs[digest] = (ray.put(data), len(data))
        return digest

    # --- workers ---------------------------------------------------------------------------
    def start_workers(self, count: int) -> None:
        import ray

        from .worker import ComfyWorker

        resources = {"num_gpus": 1} if self.spec.gpu else {"num_cpus": 1}
        self.actor_class = ray.remote(max_concurrency=4, **resources)(ComfyWorker)
        started = time.perf_counter()
        self.actors = {f"worker-{i}": self.actor_class.remote(f"worker-{i}", self.spec) for i in range(count)}
        names = list(self.actors)
        try:
            described = ray.get([self.actors[name].describe.remote() for name in names])
        except ray.exceptions.RayError as err:  # the actor's constructor: ComfyUI did not start (its log's tail is in err)
            raise FarmError(f"a worker's ComfyUI did not start; its log:\n{str(err)[-3000:]}\nCheck the workers' "
                            "ComfyUI folder, Python and models folder (--models), then run again.") from None
        self.workers = dict(zip(names, described))
        self.stats.workers_ready_s = time.perf_counter() - started
        for name in names:
            self.present[name] = set()

    def replace_worker(self, name: str) -> None:
        import ray

        log.warning("%s: its actor died; starting a new one", name)
        try:
            ray.kill(self.actors[name])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[name] = self.actor_class.remote(name, self.spec)
        self.workers[name] = ray.get(self.actors[name].describe.remote())
        self.present[name] = set()

    def preflight(self, tasks: list[Task]) -> None:
        """Refuse the job before any prompt when a worker cannot run one of its graphs, naming worker and file."""
        needed_by: dict[str, list[str]] = {}  # "worker ... has no ..." -> the tasks that need it
        for name, worker in self.workers.items():
            for task in tasks:
                for problem in check_graph(task, worker):
                    needed_by.setdefault(f"{name} ({worker['host']}, {worker['url']}) {problem}", []).append(task.label)
        if needed_by:
            lines = [f"{problem}: needed by {', '.join(labels[:4])}{f' and {len(labels) - 4} more' if len(labels) > 4 else ''}"
                     for problem, labels in needed_by.items()]
            raise FarmError("a worker cannot run this job, nothing was started:\n  " + "\n  ".join(lines[:20])
                            + ("\n  ..." if len(lines) > 20 else "")
                            + "\nPut the missing files in the workers' models folders (or fix the shot list), then run again.")

    # --- running ---------------------------------------------------------------------------
    def _upload_args(self, worker: str, task: Task) -> tuple[list[dict], list]:
        """The task's uploads as the worker takes them: ObjectRefs only for files it does not hold yet."""
        described, refs = [], []
        for upload in task.uploads:
            present = upload.sha256 in self.present[worker]
            described.append({"folder": upload.folder, "name": upload.name, "sha256": upload.sha256, "present": present,
                              "mtime_ns": upload.mtime_ns})
            if present:
                continue
            if upload.sha256 not in self.blobs and self._share(upload.source.read_bytes()) != upload.sha256:
                raise FarmError(f"{upload.source} changed while the job ran; run again")
            ref, size = self.blobs[upload.sha256]
            refs.append(ref)
            self.stats.object_store_bytes += size
        return described, refs

    def submit(self, worker: str, pending: _Pending):
        task = pending.task
        pending.submitted = time.perf_counter()
        if pending.kind == "shot":
            task = graphs.with_spatial_lora(task, self.loras[pending.clip], self.depths.get(pending.clip))
        described, refs = self._upload_args(worker, task)
        pending.attempts += 1
        pending.sent_task = task
        return self.actors[worker].run.remote(task.label, task.graph, described, *refs)

    def finish_clip(self, pending: _Pending, worker: str, result: dict) -> None:
        import ray

        texts = _texts(result["outputs"], pending.task.reports)
        lora_name = texts["spatial_lora"]
        lora = ray.get(self.actors[worker].read_file.remote("loras", lora_name))
        files = {"spatial_lora": ("spatial_lora.safetensors", lora),
                 "graph": ("graph.json", _graph_json(pending.task.graph))}
        depth = None
        if "depth" in texts:
            depth = ray.get(self.actors[worker].read_file.remote("output", texts["depth"]))
            files["depth"] = ("depth.depth.safetensors", depth)
        self.stats.object_store_bytes += len(lora) + (len(depth) if depth else 0)
        entry = self.manifest.clip(pending.clip)
        entry.update(status="done", key=pending.task.key, worker=worker, seconds=round(result["seconds"], 3),
                     inputs=_inputs(pending.sent_task), files=self.manifest.store(f"{pending.clip}/{CLIP_FOLDER}", files))
        self.manifest.save()
        self.loras[pending.clip] = graphs.lora_upload(self._share(lora))
        if depth is not None:
            self.depths[pending.clip] = graphs.depth_upload(self._share(depth))

    def finish_shot(self, pending: _Pending, worker: str, result: dict) -> None:
        import ray

        task = pending.sent_task
        texts = _texts(result["outputs"], task.reports)
        files = {"graph": ("graph.json", _graph_json(task.graph)), "report": ("report.txt", texts.get("report", "").encode())}
        wanted = []
        for node_id, stem in task.saves.items():
            for item in result["outputs"].get(node_id, {}).get("images", []):
                name = f"{item.get('subfolder', '')}/{item['filename']}".lstrip("/")
                wanted.append((stem, Path(item["filename"]).suffix, ("output", name)))
        wanted.append(("temporal_lora", ".safetensors", ("loras", texts["temporal_lora"])))
        blobs = ray.get([self.actors[worker].read_file.remote(*where) for _, _, where in wanted])
        for (stem, suffix, _), data in zip(wanted, blobs):
            files[stem] = (f"{stem}{suffix}", data)
            self.stats.object_store_bytes += len(data)
        entry = self.manifest.shot(task.label)
        entry.update(status="done", key=task.key, worker=worker, prompt_id=result["prompt_id"], seed=self.job.seed,
                     seconds=round(result["seconds"], 3), inputs=_inputs(task), files=self.manifest.store(task.label, files))
        self.manifest.save()

    def record_failure(self, pending: _Pending, worker: str, error: str, retry: bool) -> None:
        entry = (self.manifest.clip(pending.clip) if pending.kind == "clip" else self.manifest.shot(pending.task.label))
        entry["attempts"].append({"worker": worker, "error": error[-2000:], "retried": retry,
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if not retry:
            entry["status"] = "failed"
            entry["error"] = error[-2000:]
        self.manifest.save()

    def run(self) -> Manifest:
        import ray

        started = time.perf_counter()
        clip_tasks, waiting, made = self.plan()
        if not waiting:
            log.info("every shot is done already: nothing to run")
            return self.manifest
        own_ray = not ray.is_initialized()
        if own_ray:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": {"PYTHONPATH": str(graphs.REPO)}})
        for clip, entry in made.items():  # after ray.init: ray.put would start a Ray of its own before it
            self._lora_from_manifest(clip, entry)
        count = self.requested_workers or _default_worker_count(self.spec.gpu)
        self.manifest.start_run({"workers": count, "shots": sum(len(v) for v in waiting.values()),
                                 "versions": _versions()})
        self.manifest.save()
        try:
            self.start_workers(count)
            self.preflight([p.task for p in clip_tasks] + [p.task for v in waiting.values() for p in v])
            self.manifest.data["runs"][-1]["workers_detail"] = {
                name: {k: w[k] for k in ("host", "url", "comfyui_version", "python_version", "devices")}
                for name, w in self.workers.items()}
            self._loop(clip_tasks, waiting)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            self.stats.wall_s = time.perf_counter() - started
            self._shutdown(own_ray)
        failed = [label for label, shot in self.manifest.data["shots"].items() if shot.get("status") == "failed"]
        if failed:
            raise FarmError(f"{len(failed)} shot(s) failed: " + "; ".join(
                f"{label}: {self.manifest.data['shots'][label]['error']}" for label in failed))
        return self.manifest

    def _loop(self, ready: list[_Pending], waiting: dict[str, list[_Pending]]) -> None:
        import ray

        total = len(ready) + sum(len(v) for v in waiting.values())
        ready += [p for clip, shots in waiting.items() if clip in self.loras for p in shots]
        waiting = {clip: shots for clip, shots in waiting.items() if clip not in self.loras}
        idle = list(self.actors)
        in_flight: dict = {}  # ref -> (worker, pending)
        overall = self._bar(total, "all tasks", 0)
        while ready or in_flight:
            while ready and idle:
                worker, pending = idle.pop(0), ready.pop(0)
                self._bar_for(pending, worker)
                in_flight[self.submit(worker, pending)] = (worker, pending)
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            self._update_bars(in_flight)
            for ref in done:
                worker, pending = in_flight.pop(ref)
                label = pending.task.label
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    result = {"ok": False, "retryable": True, "error": f"{worker}'s actor died ({type(err).__name__})",
                              "seconds": 0.0}
                    self.replace_worker(worker)
                self.stats.task_seconds[label] = result.get("seconds", 0.0)
                if result["ok"]:
                    for upload in pending.sent_task.uploads:
                        self.present[worker].add(upload.sha256)
                    if pending.kind == "clip":
                        self.finish_clip(pending, worker, result)
                        ready += waiting.pop(pending.clip, [])
                    else:
                        self.finish_shot(pending, worker, result)
                    # Submission (uploads included) to outputs stored: the worker's time plus the farm's overhead.
                    self.stats.round_trip_s[label] = time.perf_counter() - pending.submitted
                    overall.update(1)
                else:
                    retry = result["retryable"] and pending.attempts < self.max_attempts
                    log.warning("%s on %s: %s%s", label, worker, result["error"], " (retrying)" if retry else "")
                    self.record_failure(pending, worker, result["error"], retry)
                    self.present[worker] = set()  # a restarted server may have lost what it was sent
                    if retry:
                        ready.insert(0, pending)
                    elif pending.kind == "clip":
                        for shot in waiting.pop(pending.clip, []):
                            self.record_failure(shot, worker, f"its clip's spatial LoRA failed: {result['error']}", False)
                self._close_bar(label)
                idle.append(worker)
        overall.close()

    # --- progress --------------------------------------------------------------------------
    def _bar(self, total: int, label: str, position: int):
        from tqdm import tqdm

        return tqdm(total=total, desc=label, position=position, leave=position == 0, disable=not self.show_progress,
                    file=sys.stderr, dynamic_ncols=True)

    def _bar_for(self, pending: _Pending, worker: str) -> None:
        self.bars[pending.task.label] = self._bar(len(pending.task.graph), f"{pending.task.label} [{worker}]",
                                                  1 + len(self.bars))

    def _update_bars(self, in_flight: dict) -> None:
        import ray

        if not self.show_progress:
            return
        for worker, pending in in_flight.values():
            try:
                state = ray.get(self.actors[worker].progress.remote(), timeout=2)
            except Exception:  # noqa: BLE001 - progress only
                continue
            bar = self.bars.get(pending.task.label)
            if bar is not None and state.get("label") == pending.task.label:
                fraction = state.get("value", 0) / state["max"] if state.get("max") else 0.0
                bar.n = min(bar.total, state.get("done", 0) + fraction)
                bar.set_postfix_str(state.get("node", ""), refresh=True)

    def _close_bar(self, label: str) -> None:
        bar = self.bars.pop(label, None)
        if bar is not None:
            bar.close()

    # --- stopping --------------------------------------------------------------------------
    def _interrupt(self) -> None:
        import ray

        log.warning("interrupted: stopping the workers' prompts; finished shots are kept, re-run to resume")
        try:
            ray.get([actor.interrupt.remote() for actor in self.actors.values()], timeout=30)
        except Exception:  # noqa: BLE001 - best effort: the workers are stopped next anyway
            pass
        self.manifest.save()

    def _shutdown(self, own_ray: bool) -> None:
        import ray

        for bar in list(self.bars.values()):
            bar.close()
        logs = self.job.output / "logs"
        for name, actor in getattr(self, "actors", {}).items():
            try:
                report = ray.get(actor.shutdown.remote(), timeout=60)
                atomic_write(logs / f"{name}.log", report["log"].encode())
                atomic_write(logs / f"{name}.history.json", _graph_json(report["history"]))
            except Exception as err:  # noqa: BLE001 - a dead worker has nothing to hand back
                log.warning("%s: no log gathered (%s)", name, err)
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        self.manifest.clean_staging()
        self.manifest.data["runs"][-1]["stats"] = {
            "wall_s": round(self.stats.wall_s, 3), "workers_ready_s": round(self.stats.workers_ready_s, 3),
            "object_store_bytes": self.stats.object_store_bytes,
            "task_s": {k: round(v, 3) for k, v in self.stats.task_seconds.items()},
            "round_trip_s": {k: round(v, 3) for k, v in self.stats.round_trip_s.items()}}
        self.manifest.save()
        if own_ray:
            ray.shutdown()


def _inputs(task: Task) -> dict[str, dict]:
    """What a task was given, for the manifest: each uploaded file's name on the workers, its hash and, for the
    user's own files, where it came from."""
    return {upload.name: {"sha256": upload.sha256, **({"source": str(upload.source)} if upload.source else {})}
            for upload in task.uploads}


def _texts(outputs: dict, reports: dict[str, str]) -> dict[str, str]:
    """What the PreviewAny nodes of a finished prompt said, by meaning (``spatial_lora`` -> its file name)."""
    return {meaning: "".join(outputs[node]["text"]) for node, meaning in reports.items() if node in outputs}


def _graph_json(value) -> bytes:
    """JSON in the order the graph was sent: ComfyUI writes the prompt into each video, so the order is content."""
    import json

    return json.dumps(value, indent=2).encode()


def _default_worker_count(gpu: bool) -> int:
    import ray

    resources = ray.cluster_resources()
    return max(1, int(resources.get("GPU", 0)) if gpu else 1)


def _versions() -> dict:
    import platform
    import tomllib

    import ray

    project = tomllib.loads((graphs.REPO / "pyproject.toml").read_text())["project"]
    return {"recapture": project["version"], "ray": ray.__version__, "python": platform.python_version()}


def run(job: Job | str | os.PathLike, *, address: str | None = None, workers: int | None = None,
        worker_spec: WorkerSpec | None = None, prepare_graph: Callable[[dict], dict] | None = None,
        max_attempts: int = 3, progress: bool = True) -> Manifest:
    """Render a shot list on Ray and return the manifest (``manifest.data``: clips, shots, runs).

    ``address``: a Ray cluster (``ray://host:10001`` or ``auto``); None starts Ray on this machine (or uses the
    one already initialised in this process). ``workers``: ComfyUI servers (default: one per GPU, or one).
    ``prepare_graph``: applied to every graph before it is sent (swap a loader for your own, say).
    ``max_attempts``: tries per task when a worker's server dies or hangs. Raises :class:`FarmError` before any
    prompt when a worker cannot run the job, and after the run when shots failed (the others are kept).
    """
    job = job if isinstance(job, Job) else load_job(job)
    spec = worker_spec or default_worker_spec()
    farm = _Farm(job, workers, spec, prepare_graph, max_attempts, progress, address)
    farm.manifest.save()
    return farm.run()
