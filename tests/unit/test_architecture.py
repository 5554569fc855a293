"""The folder tree of ``lib/`` is the architecture: imports point one way, no cycles, small modules,
and README's Layout section lists every module.

Layers, each importing only those before it:

    runtime  <-  data  <-  models  <-  features  <-  methods  <-  experiments (+ report)
    report: runtime only        jobs: runtime only        lib/regenerate.py: jobs and runtime

Only ``experiments`` (and the main job's command line) reads profile settings
(``lib.runtime.profiles``). Every import counts, module-level and local.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lib.runtime.locations import REPO_ROOT

LIB = REPO_ROOT / "lib"
CHAIN = ["runtime", "data", "models", "features", "methods", "experiments"]
ALLOWED = {layer: set(CHAIN[:i + 1]) for i, layer in enumerate(CHAIN)}
ALLOWED["experiments"] |= {"report"}
ALLOWED["report"] = {"runtime", "report"}
ALLOWED["jobs"] = {"runtime", "jobs"}
TOP = {"lib/__init__.py": {"runtime"}, "lib/regenerate.py": {"jobs", "runtime"}}
PROFILE_READERS = {"experiments", "lib/regenerate.py", "runtime"}  # runtime: its own package
MAX_LINES = 400
LONGER = {}  # module -> why it is longer (none today)


def modules() -> dict[str, Path]:
    """``lib.a.b`` -> file, for every Python file of the package."""
    out = {}
    for path in sorted(LIB.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = modules()


def imports(path: Path) -> set[str]:
    """The ``lib`` modules ``path`` imports (``from pkg import sub`` resolves to ``pkg.sub`` when that
    is a module, else to the package itself)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "lib" or a.name.startswith("lib.")}
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module == "lib" or node.module.startswith("lib.")):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (LIB / parts[1]).is_dir() else None


def where(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def test_every_module_sits_in_a_layer_or_is_the_package_entry():
    for name, path in MODULES.items():
        assert layer(name) in ALLOWED or where(path) in TOP or name == "lib", where(path)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_one_way(name):
    path = MODULES[name]
    allowed = TOP.get(where(path)) or ALLOWED.get(layer(name), set())
    bad = sorted(m for m in imports(path) if m != "lib" and layer(m) not in allowed)
    assert not bad, f"{where(path)} (layer {layer(name) or 'top'}) imports {bad}; it may import {sorted(allowed)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_experiments_read_profile_settings(name):
    path = MODULES[name]
    if "lib.runtime.profiles" in imports(path):
        assert layer(name) in PROFILE_READERS or where(path) in PROFILE_READERS, \
            f"{where(path)} reads profile settings: only lib/experiments/ (and the main job's CLI) may"


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle of ``graph`` (node -> the nodes it imports) as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = {name: sorted(m for m in imports(path) if m in MODULES and m != name) for name, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail(tmp_path):
    """Two modules importing each other form a cycle; a local import counts like a module-level one."""
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None
    local = tmp_path / "local.py"
    local.write_text("def f():\n    from lib.methods import scoring\n    from lib import models\n")
    assert imports(local) == {"lib.methods.scoring", "lib.models"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    path = MODULES[name]
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES or where(path) in LONGER, f"{where(path)} has {n} lines (> {MAX_LINES}): split it by concern"


def readme_layout() -> list[str]:
    """The paths README's Layout section lists, rebuilt from its tree's indentation (2 spaces a level)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    paths, stack = [], []
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        entry = line.strip().split()[0]
        stack[depth:] = [entry.rstrip("/")]
        if entry.endswith(".py"):
            paths.append("/".join(stack))
    return paths


def test_readme_layout_lists_every_module_once():
    listed = readme_layout()
    assert len(listed) == len(set(listed)), "README's Layout lists a module twice"
    actual = sorted(where(p) for p in MODULES.values())
    assert sorted(listed) == actual, (f"README's Layout and lib/ differ: only in README {sorted(set(listed) - set(actual))}, "
                                      f"only in lib/ {sorted(set(actual) - set(listed))}")
