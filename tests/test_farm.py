"""The Ray farm on this machine: local Ray, two workers each owning a real ComfyUI server, tiny models.

A 2-clip x 2-path shot list on the bundled sample clip. The graphs are workflow 7's (scripts/workflow_defs.py)
on the tests' tiny models (``with_tiny_models``); the trainers take a few more steps than elsewhere so that a
test can kill a server while a temporal LoRA trains.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the farm's tests need Ray (pip install '.[farm]'; scripts/setup.sh installs it)")

import comfy_host  # noqa: E402
from workflow_defs import SAMPLE_DEPTH, SAMPLE_VIDEO, with_tiny_models  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.server
TRAIN_STEPS = 12  # tiny models: a second or two of training, long enough to kill a server in the middle
SPATIAL = "ReCaptureSpatialLoRATrainModel"
#: One torch thread per server: two servers share this machine's cores, and the by-hand reference runs alike.
SERVER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

SHOTS = f"""
backbone = "svd"
output = "out"
seed = 3
train_steps = {TRAIN_STEPS}

[[clips]]
name = "sample"
video = "{SAMPLE_VIDEO}"
depth_image = "{SAMPLE_DEPTH}"
depth_near = 1.5
depth_far = 6.0

  [[clips.paths]]
  name = "orbit"
  preset = "orbit left"
  amount = 10.0

  [[clips.paths]]
  name = "dolly"
  preset = "dolly in"
  amount = 0.2

[[clips]]
name = "sample_far"
video = "{SAMPLE_VIDEO}"
depth_image = "{SAMPLE_DEPTH}"
depth_near = 3.0
depth_far = 12.0

  [[clips.paths]]
  name = "arc"
  preset = "arc right"
  amount = 0.2

  [[clips.paths]]
  name = "keys"
  keyframes = "0:\\n13: orbit_left=6, dolly_in=0.1"
"""
SHOT_LABELS = ["sample/orbit", "sample/dolly", "sample_far/arc", "sample_far/keys"]


def on_tiny_models(graph: dict) -> dict:
    """The farm's graph on the tiny models: one sampling step, the trainers' own step count (bench/farm.py)."""
    out = with_tiny_models(graph, steps=1)
    for node in out.values():
        if node["class_type"].endswith("LoRATrainModel"):
            node["inputs"]["steps"] = TRAIN_STEPS
    return out


def tiny(graph: dict) -> dict:
    """``on_tiny_models`` with the videos saved losslessly (``lossless_videos``), for outputs compared byte for byte."""
    return lossless_videos(on_tiny_models(graph))


def lossless_videos(graph: dict) -> dict:
    """Each CreateVideo + SaveVideo pair as one SaveAnimatedPNG of the same frames, under the save's node id.

    ComfyUI's SaveVideo (PyAV's H.264) does not give the same bytes for the same frames in every process:
    the encoder's output depends on what the process's heap held before (measured here: a 192x320 clip
    encoded three times in one process, with other allocations in between, gave three different files; five
    servers that had trained a LoRA encoded the same anchor frames three different ways). So the tests
    that compare the farm's outputs byte for byte compare lossless animated PNGs of the frames; the
    Wan shot list test keeps SaveVideo and checks its MP4s.
    """
    out = json.loads(json.dumps(graph))
    for node_id, node in graph.items():
        if node["class_type"] == "SaveVideo":
            create = out.pop(node["inputs"]["video"][0])
            assert create["class_type"] == "CreateVideo", create
            out[node_id] = {"class_type": "SaveAnimatedPNG", "inputs": {
                "images": create["inputs"]["images"], "filename_prefix": node["inputs"]["filename_prefix"],
                "fps": create["inputs"]["fps"], "compress_level": 4}}
    return out


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 CPUs: one per worker), shut down at the end."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'scripts'}"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shot_list(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shots")
    for name in (SAMPLE_VIDEO, SAMPLE_DEPTH):
        shutil.copy(REPO / "assets" / name, folder / name)
    (folder / "shots.toml").write_text(SHOTS)
    return folder / "shots.toml"


def worker_spec(tmp_path: Path, models_dir: Path):
    from recapture_farm.worker import WorkerSpec

    return WorkerSpec(comfy_dir=str(comfy_host.host_paths()["COMFYUI_DIR"]), models_dir=str(models_dir),
                      scratch_dir=str(tmp_path / "scratch"), python=sys.executable,
                      custom_nodes=(str(REPO / "tests" / "comfy_support" / "recapture_test_nodes"),), env=SERVER_ENV)


def job_in(shot_list: Path, folder: Path):
    """The shot list with its output in ``folder``."""
    from recapture_farm import load_job

    text = shot_list.read_text().replace('output = "out"', f'output = "{folder}"')
    copy = shot_list.with_name(f"shots-{folder.name}.toml")
    copy.write_text(text)
    return load_job(copy)


def prompts(output: Path) -> list[dict]:
    """Every prompt the workers' servers ran, from the histories the farm gathered into output/logs/."""
    found = []
    for path in sorted((output / "logs").glob("*.history.json")):
        for entry in json.loads(path.read_text()).values():
            number, prompt_id, graph, extra = entry["prompt"][:4]
            found.append({"worker": path.name.split(".")[0], "graph": graph,
                          "task": extra.get("recapture_farm", {}).get("task")})
    return found


def shot_files(output: Path, label: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((output / label).iterdir())}


@pytest.fixture(scope="module")
def two_worker_run(local_ray, shot_list, server_base_dir, tmp_path_factory):
    from recapture_farm import run

    folder = tmp_path_factory.mktemp("farm2")
    job = job_in(shot_list, folder / "out")
    manifest = run(job, workers=2, worker_spec=worker_spec(folder, server_base_dir / "models"), prepare_graph=tiny,
                   progress=False)
    return job, manifest


def test_two_workers_render_every_shot_training_each_spatial_lora_once(two_worker_run):
    job, manifest = two_worker_run
    shots = manifest.data["shots"]
    assert sorted(shots) == sorted(SHOT_LABELS)
    for label in SHOT_LABELS:
        assert shots[label]["status"] == "done"
        files = shot_files(job.output, label)
        assert {"reshot.png", "anchor.png", "holes.png", "temporal_lora.safetensors", "graph.json", "report.txt"} <= set(files)
        assert files["reshot.png"][:8] == b"\x89PNG\r\n\x1a\n" and b"acTL" in files["reshot.png"]  # animated
    ran = prompts(job.output)
    spatial_runs = [p["task"] for p in ran if any(n["class_type"] == SPATIAL for n in p["graph"].values())]
    assert sorted(spatial_runs) == ["sample (spatial LoRA)", "sample_far (spatial LoRA)"]
    assert len(ran) == 6  # 2 clips + 4 shots, nothing twice
    assert len({p["worker"] for p in ran}) == 2  # both servers worked
    # The LoRA each path used is its clip's, uploaded by hash: the manifest's file is what the graph names.
    from recapture_farm import graphs

    for label in SHOT_LABELS:
        graph = json.loads((job.output / label / "graph.json").read_text())
        lora = next(n["inputs"]["lora_name"] for n in graph.values() if n["class_type"] == "LoraLoaderModelOnly")
        clip = manifest.data["clips"][label.split("/")[0]]
        assert lora == f"recapture_farm/{clip['files']['spatial_lora']['sha256'][:16]}.safetensors"
    video_sha256 = graphs.file_sha256(REPO / "assets" / SAMPLE_VIDEO)
    inputs = manifest.data["shots"]["sample/orbit"]["inputs"]
    assert inputs[f"farm_{video_sha256[:16]}_{SAMPLE_VIDEO}"]["sha256"] == video_sha256
    spatial = manifest.data["clips"]["sample"]["files"]["spatial_lora"]["sha256"]
    assert inputs[f"recapture_farm/{spatial[:16]}.safetensors"]["sha256"] == spatial
    stats = manifest.data["runs"][-1]["stats"]
    assert stats["object_store_bytes"] > (REPO / "assets" / SAMPLE_VIDEO).stat().st_size
    assert not (job.output / ".staging").exists()


def test_farm_outputs_are_bit_identical_to_the_same_graphs_run_by_hand(two_worker_run, server_base_dir, tmp_path):
    """One server, by hand: the clip graphs, then every shot's graph.json with the LoRA it names."""
    job, manifest = two_worker_run
    base = comfy_host.make_base_directory(tmp_path / "base")
    for name in ("custom_nodes/recapture_test_nodes",):
        (base / name).symlink_to(REPO / "tests" / "comfy_support" / "recapture_test_nodes", target_is_directory=True)
    models = server_base_dir / "models"
    for sub in models.iterdir():
        if sub.name != "loras" and sub.is_dir():
            shutil.rmtree(base / "models" / sub.name, ignore_errors=True)
            (base / "models" / sub.name).symlink_to(sub, target_is_directory=True)
    from recapture_farm import graphs

    for clip in job.clips:
        for path in (clip.video, clip.depth_image):
            upload = graphs.input_upload(path)
            shutil.copy2(path, base / "input" / upload.name)  # with its time, as the farm keeps it
    server = comfy_host.ComfyServer(comfy_dir=Path(comfy_host.host_paths()["COMFYUI_DIR"]), base_dir=base,
                                    python=sys.executable, env=SERVER_ENV)
    with server:
        for clip_name, clip in manifest.data["clips"].items():
            graph = json.loads((job.output / clip["files"]["graph"]["path"]).read_text())
            entry = server.run(graph, timeout_s=600)
            lora_name = "".join(entry["outputs"]["report_spatial_lora"]["text"])
            made = (base / "models" / "loras" / lora_name).read_bytes()
            assert made == (job.output / clip["files"]["spatial_lora"]["path"]).read_bytes(), clip_name
            target = base / "models" / "loras" / graphs.lora_upload(clip["files"]["spatial_lora"]["sha256"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(made)
        for label in SHOT_LABELS:
            graph = json.loads((job.output / label / "graph.json").read_text())
            entry = server.run(graph, timeout_s=600)
            farm = shot_files(job.output, label)
            for node, stem in graphs.SHOT_FILES.items():
                if node in graph:
                    [by_hand] = server.output_files(entry, node)
                    assert by_hand.read_bytes() == farm[f"{stem}{by_hand.suffix}"], (label, stem)
            lora = "".join(entry["outputs"]["report_temporal_lora"]["text"])
            assert (base / "models" / "loras" / lora).read_bytes() == farm["temporal_lora.safetensors"], label


def _kill_a_training_server(scratch: Path, killed: list, stop: threading.Event) -> None:
    """Wait until some worker's server trains a temporal LoRA (its status.json), then SIGKILL that server."""
    while not stop.is_set():
        for status_file in scratch.glob("*/status.json"):
            try:
                status = json.loads(status_file.read_text())
            except (OSError, ValueError):
                continue
            if "/" in status.get("label", "") and status.get("node") == "ReCaptureMaskedTemporalLoRATrainModel" \
                    and status.get("value", 0) >= 2:
                os.kill(status["comfyui_pid"], signal.SIGKILL)
                killed.append(status)
                return
        time.sleep(0.05)


def test_a_killed_server_is_restarted_and_its_task_retried_with_identical_outputs(local_ray, shot_list, server_base_dir,
                                                                                  tmp_path, two_worker_run):
    from recapture_farm import run

    reference_job, _ = two_worker_run
    job = job_in(shot_list, tmp_path / "out")
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_a_training_server, args=(tmp_path / "scratch", killed, stop), daemon=True)
    killer.start()
    try:
        manifest = run(job, workers=2, worker_spec=worker_spec(tmp_path, server_base_dir / "models"), prepare_graph=tiny,
                       progress=False)
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no server was caught training"
    label = killed[0]["label"]
    shot = manifest.data["shots"][label]
    assert shot["status"] == "done"
    assert len(shot["attempts"]) == 1 and shot["attempts"][0]["retried"]
    assert "died" in shot["attempts"][0]["error"] and "restarted" in shot["attempts"][0]["error"]
    for name in SHOT_LABELS:
        ours, reference = shot_files(job.output, name), shot_files(reference_job.output, name)
        for stem in ("reshot.png", "anchor.png", "holes.png", "temporal_lora.safetensors"):
            assert ours[stem] == reference[stem], (name, stem)


RESUMABLE_DRIVER = """
import signal
import sys
# Ctrl-C as in a terminal: a test run started in the background (cmd &, no job control) hands its children
# SIGINT ignored, and Python then leaves it ignored, so the interrupt below would never arrive.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path[:0] = {paths!r}
import ray
from test_farm import tiny, worker_spec, job_in, SERVER_ENV
from pathlib import Path
from recapture_farm import run, load_job
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
         runtime_env={{"env_vars": {{"PYTHONPATH": {pythonpath!r}}}}})
try:
    run(load_job({shots!r}), workers=1, worker_spec=worker_spec(Path({folder!r}), Path({models!r})), prepare_graph=tiny,
        progress=False)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_leaves_a_resumable_manifest_and_a_rerun_skips_finished_shots(local_ray, shot_list, server_base_dir, tmp_path):
    from recapture_farm import run

    job = job_in(shot_list, tmp_path / "out")
    script = RESUMABLE_DRIVER.format(paths=[str(REPO / "tests"), str(REPO / "scripts"), str(REPO)],
                                     pythonpath=f"{REPO}{os.pathsep}{REPO / 'scripts'}", shots=str(job.source),
                                     folder=str(tmp_path / "first"), models=str(server_base_dir / "models"))
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    manifest_path = job.output / "manifest.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest_path.exists():
            data = json.loads(manifest_path.read_text())
            if any(s.get("status") == "done" for s in data["shots"].values()):
                break
        time.sleep(0.1)
    assert driver.poll() is None, driver.communicate()[0].decode()[-3000:]
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
    out = driver.communicate(timeout=180)[0].decode()
    assert driver.returncode == 130 and "INTERRUPTED" in out, out[-3000:]
    first = json.loads(manifest_path.read_text())
    done = sorted(label for label, shot in first["shots"].items() if shot["status"] == "done")
    assert done and len(done) < len(SHOT_LABELS)
    assert not list((job.output).glob("*/*/.*.partial")) and not (job.output / ".staging").exists()

    manifest = run(job, workers=1, worker_spec=worker_spec(tmp_path / "second", server_base_dir / "models"),
                   prepare_graph=tiny, progress=False)
    assert all(manifest.data["shots"][label]["status"] == "done" for label in SHOT_LABELS)
    sent = [p["task"] for p in prompts(job.output)]
    assert not set(done) & set(sent), sent  # no prompt for a finished shot
    made = [clip for clip, entry in first["clips"].items() if entry["status"] == "done"]
    assert made and not {f"{clip} (spatial LoRA)" for clip in made} & set(sent), sent  # nor for a LoRA made before
    assert sorted(set(SHOT_LABELS) - set(done)) == sorted(t for t in sent if "/" in t)
    for label in done:  # untouched by the second run
        assert manifest.data["shots"][label]["files"] == first["shots"][label]["files"]


def test_a_worker_without_the_checkpoint_is_refused_before_any_prompt(local_ray, shot_list, server_base_dir, tmp_path):
    from recapture_farm import FarmError, run

    models = tmp_path / "models"
    models.mkdir()
    for sub in (server_base_dir / "models").iterdir():
        if sub.name != "clip_vision" and sub.is_dir():
            (models / sub.name).symlink_to(sub, target_is_directory=True)
    job = job_in(shot_list, tmp_path / "out")
    with pytest.raises(FarmError) as caught:
        run(job, workers=1, worker_spec=worker_spec(tmp_path, models), prepare_graph=tiny, progress=False)
    message = str(caught.value)
    assert "worker-0" in message and "'tiny-clip-vision.safetensors'" in message and "clip_name" in message
    assert prompts(job.output) == []
    assert not any(shot.get("status") == "done" for shot in json.loads((job.output / "manifest.json").read_text())["shots"].values())


def test_the_command_line_names_the_line_of_a_bad_shot_list(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"0")
    (tmp_path / "shots.toml").write_text('backbone = "svd"\noutput = "out"\n\n[[clips]]\nname = "a"\nvideo = "clip.mp4"\n'
                                         'depth_model = "d"\n\n  [[clips.paths]]\n  name = "p"\n  preset = "orbit left"\n'
                                         '  ammount = 3.0\n')
    done = subprocess.run([sys.executable, "-m", "recapture_farm", "run", str(tmp_path / "shots.toml")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "line 12" in done.stderr and "ammount" in done.stderr and "amount" in done.stderr


def test_the_pack_never_imports_ray_and_loads_without_it(tmp_path):
    """`import nodes` (as ComfyUI imports the pack) with Ray made unimportable; and no source of the pack names it."""
    for folder in ("nodes", "recapture_core"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "import ray" not in text and "recapture_farm" not in text, path
    code = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'ray' or name.startswith('ray.'):\n            raise ImportError('ray is blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path[:0] = [{str(REPO / 'scripts')!r}]\n"
            "import comfy_host\nsys.path.insert(1, comfy_host.host_paths()['COMFYUI_DIR'])\n"
            "import comfy.cli_args\ncomfy.cli_args.args.cpu = True\n"
            "pack = comfy_host.import_pack('recapture_pack_without_ray')\n"
            "assert len(pack.NODE_CLASS_MAPPINGS) > 20\n"
            f"sys.path.append({str(REPO)!r})\n"
            "import recapture_farm\nfrom recapture_farm import shotlist\n"
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules)\nprint('OK')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def test_a_clip_with_a_depth_model_estimates_its_depth_once_and_ships_the_file(local_ray, server_base_dir, tmp_path):
    """DepthEstimate + Save Depth run in the clip's prompt only; each path loads the file (Load Depth)."""
    from recapture_farm import load_job, run

    shutil.copy(REPO / "assets" / SAMPLE_VIDEO, tmp_path / SAMPLE_VIDEO)
    (tmp_path / "shots.toml").write_text(
        f'backbone = "svd"\noutput = "out"\ntrain_steps = 2\n\n[[clips]]\nname = "estimated"\nvideo = "{SAMPLE_VIDEO}"\n'
        'depth_model = "tiny-depth_anything"\n\n  [[clips.paths]]\n  name = "orbit"\n  preset = "orbit left"\n  amount = 5.0\n\n'
        '  [[clips.paths]]\n  name = "pan"\n  preset = "pan left"\n  amount = 5.0\n')
    job = load_job(tmp_path / "shots.toml")
    manifest = run(job, workers=1, worker_spec=worker_spec(tmp_path, server_base_dir / "models"),
                   prepare_graph=lambda graph: with_tiny_models(graph, steps=1), progress=True)  # the bars' code runs too
    depth_entry = manifest.data["clips"]["estimated"]["files"]["depth"]
    from recapture_core.depth_files import load_depth

    depth = load_depth(job.output / depth_entry["path"])
    assert depth.values.shape == (14, 32, 32)  # the clip's frames at the tiny graphs' size
    ran = prompts(job.output)
    estimating = [p["task"] for p in ran if any(n["class_type"] == "ReCaptureDepthEstimate" for n in p["graph"].values())]
    assert estimating == ["estimated (spatial LoRA)"]
    for label in ("estimated/orbit", "estimated/pan"):
        graph = next(p["graph"] for p in ran if p["task"] == label)
        [loader] = [n for n in graph.values() if n["class_type"] == "ReCaptureDepthLoad"]
        assert loader["inputs"]["file"] == f"farm_{depth_entry['sha256'][:16]}.depth.safetensors"
        assert manifest.data["shots"][label]["status"] == "done"


def test_files_reach_a_worker_with_their_modification_time_to_the_nanosecond(tmp_path):
    """LoadVideo reports a file's time (IS_CHANGED) and SaveVideo writes that into each video: a time that lost
    digits on its way made the same shot's video differ between servers."""
    from recapture_farm.files import atomic_write

    source = tmp_path / "clip.mp4"
    source.write_bytes(b"video")
    os.utime(source, ns=(1_796_246_271_533_658_123, 1_796_246_271_533_658_123))
    target = tmp_path / "input" / "farm_clip.mp4"
    atomic_write(target, source.read_bytes(), source.stat().st_mtime_ns)
    assert target.stat().st_mtime_ns == source.stat().st_mtime_ns
    assert os.path.getmtime(target) == os.path.getmtime(source)
    assert target.read_bytes() == b"video" and not list(target.parent.glob(".*partial"))


def test_a_wan_shot_list_renders_through_workflow_8s_graphs(local_ray, server_base_dir, tmp_path):
    """backbone = "wan": the same split of workflow 8 (Load Diffusion Model, text conditioning, KSampler)."""
    from recapture_farm import load_job, run

    for name in (SAMPLE_VIDEO, SAMPLE_DEPTH):
        shutil.copy(REPO / "assets" / name, tmp_path / name)
    (tmp_path / "shots.toml").write_text(
        f'backbone = "wan"\noutput = "out"\ntrain_steps = 2\nprompt = "a box in front of a wall"\n\n[[clips]]\n'
        f'name = "box"\nvideo = "{SAMPLE_VIDEO}"\ndepth_image = "{SAMPLE_DEPTH}"\ndepth_near = 1.5\ndepth_far = 6.0\n\n'
        '  [[clips.paths]]\n  name = "orbit"\n  preset = "orbit left"\n  amount = 5.0\n')
    job = load_job(tmp_path / "shots.toml")
    manifest = run(job, workers=1, worker_spec=worker_spec(tmp_path, server_base_dir / "models"),
                   prepare_graph=lambda graph: with_tiny_models(graph, steps=1), progress=False)
    assert manifest.data["shots"]["box/orbit"]["status"] == "done"
    graph = json.loads((job.output / "box" / "orbit" / "graph.json").read_text())
    kinds = {node["class_type"] for node in graph.values()}
    assert {"UNETLoader", "LoraLoaderModelOnly", "ReCaptureMaskedTemporalLoRATrainModel", "KSampler"} <= kinds
    assert "ReCaptureSpatialLoRATrainModel" not in kinds
    texts = [node["inputs"]["text"] for node in graph.values() if node["class_type"] == "ReCaptureTestWanText"]
    assert "a box in front of a wall" in texts
    assert (job.output / "box" / "orbit" / "reshot.mp4").read_bytes()[4:8] == b"ftyp"


def test_a_worker_whose_comfyui_cannot_start_stops_the_job_with_a_clear_error(local_ray, shot_list, server_base_dir,
                                                                               tmp_path):
    from dataclasses import replace

    from recapture_farm import FarmError, run

    spec = replace(worker_spec(tmp_path, server_base_dir / "models"), comfy_dir=str(tmp_path / "no-comfyui"))
    job = job_in(shot_list, tmp_path / "out")
    with pytest.raises(FarmError, match="ComfyUI did not start") as caught:
        run(job, workers=1, worker_spec=spec, prepare_graph=tiny, progress=False)
    assert "no-comfyui" in str(caught.value)
    assert ray.is_initialized()  # the test's own Ray is left as it was
