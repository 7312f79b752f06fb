"""Importing the pack stays cheap, and the core never touches ComfyUI.

Both run in a fresh interpreter so that nothing this test session imported leaks in.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ["diffusers", "peft", "transformers"]
HOST_MODULES = ["comfy", "folder_paths", "server", "nodes", "execution"]


def run_python(code: str, *, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_core_never_imports_comfyui_or_heavy_libraries():
    # Every module of recapture_core, not just the package: a stray import anywhere is caught.
    code = f"""
import json, pkgutil, importlib, sys
sys.path.insert(0, {str(REPO)!r})
import recapture_core
names = [m.name for m in pkgutil.walk_packages(recapture_core.__path__, "recapture_core.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HOST_MODULES + HEAVY!r})
print(json.dumps({{"modules": names, "loaded": loaded}}))
"""
    result = run_python(code, cwd=REPO.parent)
    assert len(result["modules"]) >= 3, result["modules"]
    assert result["loaded"] == [], f"recapture_core imported {result['loaded']}"


def test_pack_import_leaves_heavy_libraries_unloaded(comfyui_dir):
    # Import the pack exactly as ComfyUI does (spec_from_file_location on the folder), after the
    # ComfyUI modules our nodes use; none of those may have pulled in the heavy libraries either,
    # or the check would prove nothing.
    code = f"""
import json, sys, importlib.util
sys.path.insert(0, {str(comfyui_dir)!r})
import comfy.cli_args
comfy.cli_args.args.cpu = True  # as `main.py --cpu`: no GPU on the test machines
import folder_paths, comfy.model_management, comfy.utils
before = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
spec = importlib.util.spec_from_file_location("recapture_import_check", {str(REPO / "__init__.py")!r})
module = importlib.util.module_from_spec(spec)
sys.modules["recapture_import_check"] = module
spec.loader.exec_module(module)
after = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"before": before, "after": after, "nodes": sorted(module.NODE_CLASS_MAPPINGS)}}))
"""
    result = run_python(code, cwd=comfyui_dir)
    assert result["before"] == [], f"precondition: ComfyUI itself loaded {result['before']}"
    assert result["nodes"], "the pack registered no nodes"
    assert result["after"] == [], f"importing the pack loaded {result['after']}"
