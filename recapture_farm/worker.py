"""A farm worker: one headless ComfyUI server with this pack, owned by one Ray actor (one per GPU).

The driver wraps :class:`ComfyWorker` with ``ray.remote``; nothing here imports Ray, so the class runs and
is tested as plain Python too. The worker talks to its server only through ComfyUI's HTTP API (``POST
/prompt``, ``GET /history``, ``GET /view``, ``POST /interrupt``) and its websocket (progress), as any client
does; it never imports ComfyUI. Files arrive as bytes (from Ray's object store) and are written into the
server's own folders, their hashes checked first.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import comfy_host  # noqa: E402  (standard library only: starts and talks to a ComfyUI server)

from .files import atomic_write, file_sha256, sha256_bytes  # noqa: E402

#: A server that does not answer /system_stats within this many seconds is taken for hung.
HEALTH_TIMEOUT_S = 20.0


@dataclass
class WorkerSpec:
    """How a worker makes its server. Paths are as seen on the worker's machine.

    ``models_dir``: a ComfyUI ``models/`` folder; every subfolder but ``loras`` is linked into the server's
    base directory (loras/ is the worker's own: the farm's uploads and the trainers' output land there).
    ``scratch_dir``: where each worker makes its base directory (``<scratch_dir>/<worker name>/``).
    ``custom_nodes``: more custom node folders to link (e.g. test-only nodes). ``gpu``: run on the GPU Ray
    gave this actor (CUDA_VISIBLE_DEVICES), else ``--cpu``. ``env``: extra environment for the server.
    """

    comfy_dir: str
    models_dir: str
    scratch_dir: str
    python: str = sys.executable
    custom_nodes: tuple[str, ...] = ()
    gpu: bool = False
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 300.0
    task_timeout_s: float = 6 * 3600.0


class ComfyWorker:
    """Owns one ComfyUI server: starts it, health-checks it, restarts it, runs prompts on it."""

    def __init__(self, name: str, spec: WorkerSpec):
        self.name, self.spec = name, spec
        self.base = Path(spec.scratch_dir) / name
        self.server: comfy_host.ComfyServer | None = None
        self.restarts = 0
        self._progress: dict = {}
        self._lock = threading.Lock()
        self._make_base_directory()
        self._start()

    # --- the server -----------------------------------------------------------------------
    def _make_base_directory(self) -> None:
        comfy_host.make_base_directory(self.base)
        for folder in self.spec.custom_nodes:
            link = self.base / "custom_nodes" / Path(folder).name
            if not link.exists():
                link.symlink_to(Path(folder).resolve(), target_is_directory=True)
        models = self.base / "models"
        for source in sorted(Path(self.spec.models_dir).iterdir()) if Path(self.spec.models_dir).is_dir() else []:
            target = models / source.name
            if source.name == "loras" or not source.is_dir():
                continue
            if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
                target.rmdir()  # an empty folder make_base_directory made: the shared models replace it
            if not target.exists():
                target.symlink_to(source.resolve(), target_is_directory=True)

    def _start(self) -> None:
        args = () if self.spec.gpu else ("--cpu",)
        self.server = comfy_host.ComfyServer(comfy_dir=Path(self.spec.comfy_dir), base_dir=self.base, python=self.spec.python,
                                             extra_args=args, env=dict(self.spec.env),
                                             log_path=self.base / f"comfyui-{self.restarts}.log")
        self.server.start(timeout_s=self.spec.startup_timeout_s)
        (self.base / "comfyui.pid").write_text(str(self.server.process.pid))

    def _restart(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.restarts += 1
        self._start()

    def _healthy(self) -> bool:
        if self.server is None or self.server.process.poll() is not None:
            return False
        try:
            self.server.get_json("/system_stats", timeout_s=HEALTH_TIMEOUT_S)
            return True
        except Exception:  # noqa: BLE001 - any failure to answer is unhealthy
            return False

    def _exit_code(self, within_s: float) -> int | None:
        """The server process's exit code if it ends within ``within_s``, else None (it lives)."""
        try:
            return self.server.process.wait(timeout=within_s)
        except Exception:  # noqa: BLE001 - TimeoutExpired: still running
            return None

    def describe(self) -> dict:
        """Who this worker is and what its server offers (node types with their inputs, versions)."""
        stats = self.server.get_json("/system_stats")
        return {"name": self.name, "host": socket.gethostname(), "url": self.server.url, "pid": self.server.process.pid,
                "comfyui_version": stats.get("system", {}).get("comfyui_version", "?"),
                "python_version": stats.get("system", {}).get("python_version", "?"),
                "devices": [d.get("name") for d in stats.get("devices", [])],
                "object_info": self.server.object_info(), "ready_after_s": self.server.ready_after_s}

    # --- files ----------------------------------------------------------------------------
    def _folder(self, folder: str) -> Path:
        return {"input": self.base / "input", "loras": self.base / "models" / "loras"}[folder]

    def has_file(self, folder: str, name: str, sha256: str) -> bool:
        path = self._folder(folder) / name
        return path.is_file() and file_sha256(path) == sha256

    def put_file(self, folder: str, name: str, sha256: str, data: bytes, mtime_ns: int = 0) -> None:
        """Write ``data`` to ``<folder>/<name>`` after checking it is what the driver hashed (atomically), with the
        driver's modification time: ComfyUI's loaders report it (IS_CHANGED) and SaveVideo writes that into each
        video's metadata, so the same file must look the same on every worker for outputs to be identical."""
        found = sha256_bytes(data)
        if found != sha256:
            raise ValueError(f"{self.name}: {name} arrived damaged (sha256 {found[:16]}, expected {sha256[:16]})")
        root = self._folder(folder).resolve()
        target = (root / name).resolve()
        if root not in target.parents:
            raise ValueError(f"{self.name}: {name!r} lies outside {folder}/")
        if target.is_file() and file_sha256(target) == sha256:
            os.utime(target, ns=(mtime_ns, mtime_ns))
        else:
            atomic_write(target, data, mtime_ns)

    def read_file(self, folder: str, name: str) -> bytes:
        """A file the server wrote: ``output`` (via GET /view, as any client) or ``loras`` (the worker's own folder)."""
        if folder == "output":
            subfolder, _, filename = name.rpartition("/")
            query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": "output"})
            with urllib.request.urlopen(f"{self.server.url}/view?{query}", timeout=300) as response:
                return response.read()
        return (self._folder(folder) / name).read_bytes()

    # --- prompts --------------------------------------------------------------------------
    def run(self, label: str, graph: dict, uploads: list[dict], *blobs: bytes) -> dict:
        """Write the uploads (``blobs[i]`` is the data of the i-th upload without ``present: True``), run the
        graph, wait. Returns ``{"ok", "retryable", "error", "outputs", "prompt_id", "seconds", "worker"}``:
        ``retryable`` when the server died or hung (it has been restarted), not when a node refused its input."""
        started = time.perf_counter()
        result = {"worker": self.name, "label": label, "ok": False, "retryable": False, "error": "", "outputs": {}}
        try:
            missing = iter(blobs)
            for upload in uploads:
                if not upload.get("present"):
                    self.put_file(upload["folder"], upload["name"], upload["sha256"], next(missing), upload["mtime_ns"])
            if not self._healthy():
                self._restart()
            client_id = uuid.uuid4().hex
            with _ProgressListener(self.server.url, client_id, graph, self._set_progress):
                prompt_id = self.server.submit(graph, client_id=client_id, extra_data={"recapture_farm": {"task": label}})
                self._set_progress({"label": label, "prompt_id": prompt_id, "done": 0, "total": len(graph)})
                entry = self.server.wait(prompt_id, timeout_s=self.spec.task_timeout_s)
            result.update(ok=True, prompt_id=prompt_id, outputs=entry.get("outputs", {}))
        except comfy_host.PromptRejected as err:
            result["error"] = f"ComfyUI refused the graph: {err}"
        except comfy_host.PromptFailed as err:
            result["error"] = str(err)
        except Exception as err:  # noqa: BLE001 - the server died or hung: restart it, let the driver retry
            code = self._exit_code(within_s=5.0)  # a dropped connection comes before the process is reaped
            what = (f"its ComfyUI died (exit code {code}) during the prompt" if code is not None
                    else f"its ComfyUI stopped answering ({type(err).__name__}: {err})")
            try:
                self._restart()
                what += "; ComfyUI restarted"
            except Exception as restart_err:  # noqa: BLE001
                what += f"; restarting ComfyUI failed: {restart_err}"
            result.update(retryable=True, error=what, traceback=traceback.format_exc(limit=3))
        finally:
            self._set_progress({})
        result["seconds"] = time.perf_counter() - started
        return result

    def _set_progress(self, update: dict) -> None:
        with self._lock:
            self._progress = {**self._progress, **update} if update else {}
            # For people (and tests) looking at a worker from outside: what it runs, on which ComfyUI process.
            status = {**self._progress, "comfyui_pid": self.server.process.pid if self.server else None}
            partial = self.base / f".status.{threading.get_ident()}.partial"
            partial.write_text(json.dumps(status))
            os.replace(partial, self.base / "status.json")

    def progress(self) -> dict:
        """What the server is doing: ``label``, nodes ``done`` of ``total``, and the running node's ``value``/``max``."""
        with self._lock:
            return dict(self._progress)

    def interrupt(self) -> None:
        """Stop the running prompt (ComfyUI's own /interrupt) and forget queued ones."""
        if self._healthy():
            self.server.post_json("/queue", {"clear": True})
            self.server.post_json("/interrupt", {})

    def comfyui_pid(self) -> int:
        return self.server.process.pid

    def shutdown(self) -> dict:
        """Stop the server; returns its history and log for the driver's log folder."""
        history = {}
        try:
            if self._healthy():
                history = self.server.get_json("/history?max_items=100000")
        finally:
            if self.server is not None:
                self.server.stop()
        logs = "".join(path.read_text(errors="replace") for path in sorted(self.base.glob("comfyui-*.log")))
        return {"name": self.name, "history": history, "log": logs, "restarts": self.restarts}

    def remove_base_directory(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)



class _ProgressListener:
    """ComfyUI's websocket for one client id, read in a thread: nodes executed and the running node's progress.

    Progress is a nicety: when aiohttp (a ComfyUI dependency) is missing or the socket fails, the prompt
    still runs and finishes through /history; only the bar stays still.
    """

    def __init__(self, url: str, client_id: str, graph: dict, report):
        self.url = url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
        self.graph, self.report = graph, report
        self.done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._connected = threading.Event()

    def __enter__(self):
        self._thread.start()
        self._connected.wait(timeout=10)  # so the first messages of the prompt are not missed
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            import asyncio

            import aiohttp
        except ImportError:
            self._connected.set()
            return

        async def listen():
            async with aiohttp.ClientSession() as session, session.ws_connect(self.url, heartbeat=30) as socket_:
                self._connected.set()
                while not self._stop.is_set():
                    try:
                        message = await socket_.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if message.type != aiohttp.WSMsgType.TEXT:
                        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            return
                        continue
                    self._handle(json.loads(message.data))

        try:
            asyncio.run(listen())
        except Exception:  # noqa: BLE001 - progress only
            pass
        finally:
            self._connected.set()

    def _handle(self, message: dict) -> None:
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "execution_cached":
            self.done.update(data.get("nodes", []))
        elif kind == "executing" and data.get("node"):
            self.done.add(data["node"])
            node = self.graph.get(data["node"], {})
            self.report({"done": len(self.done) - 1, "node": node.get("class_type", "?"), "value": 0, "max": 0})
        elif kind == "progress":
            self.report({"value": data.get("value", 0), "max": data.get("max", 0)})
