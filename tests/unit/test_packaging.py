"""Packaging: one pinned dependency list, the README's two commands, and .ci/run running them."""
from __future__ import annotations

import re
import tomllib

import yaml

from lib.runtime.locations import REPO_ROOT


def _pyproject_pins() -> list[str]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_every_dependency_is_pinned():
    for requirement in _pyproject_pins():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.]*", requirement), requirement


def test_environment_yml_installs_the_same_pins():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert conda_python == ["python=3.11"]
    assert sorted(p for p in pip_section if p != "-e .") == sorted(_pyproject_pins())


def _readme_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_ci_runs_exactly_the_readme_commands():
    setup, test = _readme_commands()[:2]
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert setup in ci, "the README's set-up command is not a line of .ci/run"
    assert any(line.strip().startswith(test) for line in ci), "the README's test command is not in .ci/run"
    assert "DATA_ROOT" in "\n".join(ci)


def test_ci_fails_when_no_test_ran():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert '"$status" -eq 5' in ci and "exit 1" in ci


def test_no_machine_paths_in_the_package():
    for path in (REPO_ROOT / "lib").rglob("*.py"):
        text = path.read_text()
        assert "/work/" not in text and "/root/" not in text and "/home/" not in text, path
