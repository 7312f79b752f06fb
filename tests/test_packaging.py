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
    assert {"torch", "diffusers", "peft", "safetensors", "kornia", "einops", "transformers"} <= names


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
