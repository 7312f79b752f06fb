"""Packaging metadata as the ComfyUI registry and ComfyUI-Manager read it."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_pyproject_dependencies_match_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == requirement_lines(REPO / "requirements.txt")
    names = {re.split(r"[<>=!~ ]", dep)[0] for dep in project["dependencies"]}
    assert {"diffusers", "peft", "safetensors", "kornia", "einops", "transformers"} <= names
    # Installing the requirements must never replace the torch build a ComfyUI install has chosen.
    assert "torch" not in names and "torchvision" not in names


def test_lock_file_satisfies_the_declared_lower_bounds():
    from packaging.requirements import Requirement
    from packaging.version import Version

    locked = {}
    for line in requirement_lines(REPO / "requirements-lock.txt"):
        name, version = line.split("==")
        locked[name] = Version(version)
    for line in requirement_lines(REPO / "requirements.txt"):
        req = Requirement(line)
        assert req.name in locked, f"{req.name} is not pinned in requirements-lock.txt"
        assert req.specifier.contains(locked[req.name]), (line, locked[req.name])


def test_registry_fields():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["requires-python"] == ">=3.10"
    assert comfy["PublisherId"] and comfy["DisplayName"]


def test_core_version_matches_the_project_version():
    import recapture_core

    assert recapture_core.__version__ == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_readme_lists_every_node(pack):
    readme = (REPO / "README.md").read_text()
    missing = [name for name in pack.NODE_CLASS_MAPPINGS if f"`{name}`" not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/test.sh" in readme and "bash scripts/demo.sh" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert "exec bash scripts/test.sh" in ci


def test_the_torch_floor_is_checked_when_the_pack_loads():
    import pytest

    from recapture_core import MIN_TORCH, check_torch_version

    check_torch_version(f"{MIN_TORCH[0]}.{MIN_TORCH[1]}.0+cu130")
    check_torch_version(f"{MIN_TORCH[0] + 1}.0.0")
    with pytest.raises(ImportError, match=r"needs torch >= 2\.13, but this ComfyUI runs torch 2\.12\.1\+cu121"):
        check_torch_version("2.12.1+cu121")


def publish_file_list() -> list[str]:
    """What `comfy node publish` packs: the files git tracks, minus .comfyignore's patterns (gitignore syntax)."""
    import subprocess

    import pathspec

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    ignore = pathspec.PathSpec.from_lines("gitignore", (REPO / ".comfyignore").read_text().splitlines())
    return [path for path in tracked if not ignore.match_file(path)]


def test_the_published_package_holds_the_pack_and_nothing_for_development():
    files = publish_file_list()
    assert not [f for f in files if f.split("/")[0] in ("tests", "bench", "scripts", ".ci", "recapture_farm")]
    assert not [f for f in files if f.startswith("requirements-")]
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE", "icon.png",
                   "nodes/__init__.py", "nodes/_inputs.py", "recapture_core/warp.py", "recapture_core/svd/configs/svd_xt/unet/config.json",
                   "assets/recapture_sample.mp4", "workflows/6_anchor_preview.json"):
        assert needed in files, needed
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_no_published_python_calls_exec_or_eval():
    """What ruff's S102 (exec) and S307 (eval) flag, and the registry's scanner with them."""
    import ast

    calls = []
    for path in publish_file_list():
        if path.endswith(".py"):
            for node in ast.walk(ast.parse((REPO / path).read_text(), path)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval"):
                    calls.append(f"{path}:{node.lineno} {node.func.id}")
    assert not calls, calls


def test_the_registry_icon_is_a_file_of_the_package():
    from PIL import Image

    icon = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]["Icon"]
    repository = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    owner_repo = repository.split("github.com/", 1)[1]
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    assert icon.startswith(prefix)
    path = icon[len(prefix):]
    assert path in publish_file_list()
    with Image.open(REPO / path) as image:
        assert image.size[0] == image.size[1] >= 128
