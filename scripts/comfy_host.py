"""Start a real ComfyUI server with this pack and run API-format graphs on it.

Used by the demo (scripts/demo.py), the tests (tests/conftest.py) and the benches, so all
three drive ComfyUI the way a user's client does: ``POST /prompt``, then ``GET /history``.
Standard library only: it runs before anything else is importable.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_ENV_FILE = REPO / ".host" / "env"


class HostNotSetUp(RuntimeError):
    """The ComfyUI host is missing: scripts/setup.sh has not run."""


class PromptRejected(AssertionError):
    """ComfyUI refused the graph at validation time (HTTP 400 with node_errors)."""

    def __init__(self, body: dict):
        self.body = body
        self.error = body.get("error", {})
        self.node_errors = body.get("node_errors", {})
        super().__init__(format_rejection(body))


class PromptFailed(AssertionError):
    """A node raised while the graph executed (an execution_error message in the history)."""

    def __init__(self, error: dict):
        self.error = error
        self.node_type = error.get("node_type", "?")
        self.exception_type = error.get("exception_type", "?")
        self.exception_message = error.get("exception_message", "").strip()
        super().__init__(
            f"node {error.get('node_id', '?')} ({self.node_type}) raised "
            f"{self.exception_type}: {self.exception_message}"
        )


def format_rejection(body: dict) -> str:
    lines = [str(body.get("error", {}).get("message", "prompt rejected"))]
    for node_id, info in body.get("node_errors", {}).items():
        for err in info.get("errors", []):
            lines.append(f"  node {node_id} ({info.get('class_type')}): {err.get('message')}: {err.get('details')}")
    return "\n".join(lines)


def import_pack(module_name: str):
    """This repo imported in-process the way ComfyUI imports a custom node folder (a package named
    ``module_name`` rooted at the repo, so the pack's relative imports work); imported once."""
    import importlib.util

    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def host_paths() -> dict[str, str]:
    """Paths written by scripts/setup.sh; COMFYUI_DIR in the environment wins."""
    if not HOST_ENV_FILE.exists():
        raise HostNotSetUp(f"{HOST_ENV_FILE} is missing: run `bash scripts/setup.sh` first")
    paths = dict(
        line.split("=", 1) for line in HOST_ENV_FILE.read_text().splitlines() if "=" in line
    )
    if os.environ.get("COMFYUI_DIR"):
        paths["COMFYUI_DIR"] = os.environ["COMFYUI_DIR"]
    return paths


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies, so a killed test run
    or demo never leaves a server behind (it runs in its own session, out of reach of the parent's signals)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_base_directory(base_dir: Path) -> Path:
    """A ComfyUI base directory whose custom_nodes/ links to this repo, with our model folders."""
    for sub in ("custom_nodes", "input", "output", "user", "models/diffusers", "models/checkpoints",
                "models/depth", "models/loras/recapture"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    link = base_dir / "custom_nodes" / "recapture"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return base_dir


def copy_assets(base_dir: Path) -> list[Path]:
    """Put the bundled sample clip (assets/) into a base directory's input folder (never overwriting)."""
    copied = []
    for asset in sorted((REPO / "assets").glob("*")):
        target = base_dir / "input" / asset.name
        if not target.exists():
            target.write_bytes(asset.read_bytes())
        copied.append(target)
    return copied


@dataclass
class ComfyServer:
    """A ComfyUI process on 127.0.0.1, started headless on the CPU and stopped by its own pid."""

    comfy_dir: Path
    base_dir: Path
    python: str = sys.executable
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ("--cpu",)
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready_after_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> "ComfyServer":
        self.log_path = self.log_path or (self.base_dir / f"comfyui-{self.port}.log")
        log_file = open(self.log_path, "wb")
        cmd = [self.python, "main.py", *self.extra_args, "--base-directory", str(self.base_dir),
               "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **self.env)
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=log_file, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True, preexec_fn=_die_with_parent)
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2):
                    self.ready_after_s = time.perf_counter() - self.started_at
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The server runs in its own session, so its pid is also its process group id.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # --- HTTP API ----------------------------------------------------------------------
    def get_json(self, path: str, timeout_s: float = 30.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, payload: dict, timeout_s: float = 30.0) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def submit(self, graph: dict, client_id: str | None = None, extra_data: dict | None = None) -> str:
        """Queue an API-format graph; raises PromptRejected when ComfyUI's validation refuses it. ``client_id``: the
        websocket client that gets its progress; ``extra_data``: kept with the prompt in the history."""
        payload = {"prompt": graph, "client_id": client_id or uuid.uuid4().hex}
        if extra_data:
            payload["extra_data"] = extra_data
        status, body = self.post_json("/prompt", payload)
        if status != 200:
            raise PromptRejected(body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout_s: float = 600.0) -> dict:
        """Wait for a queued prompt; returns its history entry or raises PromptFailed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                for kind, data in entry.get("status", {}).get("messages", []):
                    if kind == "execution_error":
                        raise PromptFailed(data)
                if entry.get("status", {}).get("completed"):
                    return entry
                if entry.get("status", {}).get("status_str") == "error":
                    raise PromptFailed({"exception_message": "execution failed without an error message"})
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running the prompt:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout_s:.0f} s")

    def run(self, graph: dict, timeout_s: float = 600.0) -> dict:
        """Submit a graph and wait for it: the history entry, or PromptRejected / PromptFailed."""
        return self.wait(self.submit(graph), timeout_s)

    def output_files(self, entry: dict, node_id: str, key: str = "images") -> list[Path]:
        """Paths of the files a node of a finished prompt wrote (e.g. SaveImage's images)."""
        roots = {"output": self.base_dir / "output", "temp": self.base_dir / "temp",
                 "input": self.base_dir / "input"}
        files = []
        for item in entry["outputs"].get(node_id, {}).get(key, []):
            files.append(roots[item.get("type", "output")] / item.get("subfolder", "") / item["filename"])
        return files
