"""A task of the main job: one notebook executed with papermill, its parameters checked first.

``run_notebook`` never raises for a notebook error: a failing notebook gives a ``TaskResult`` naming
the cell (counted as in the source notebook) and its error, keeps the failed executed copy under
``runs/failed/``, and leaves the previous output where it was. Executed notebooks are written to a
hidden temporary name and renamed when complete. ``check_parameters`` refuses a parameter no notebook
declares, or a value of the wrong type for a notebook's ``parameters`` cell, before any task starts.
Each executed notebook records the machine that computed its outputs in its metadata (``stamp_machine``).
"""
from __future__ import annotations

import ast
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill

from lib.runtime import machine
from lib.runtime.locations import NOTEBOOKS_DIR, REPO_ROOT

VOLATILE_METADATA = ("papermill", "execution", "widgets")


@dataclass
class Task:
    """One papermill run: ``notebook`` executed with ``parameters`` into ``output``."""
    name: str
    notebook: Path
    output: Path
    parameters: dict = field(default_factory=dict)
    figures: Path | None = None  # the figures root the notebook writes under (its own folder inside)
    env: dict = field(default_factory=dict)  # environment the kernel needs (DATA_ROOT, ...)


@dataclass
class TaskResult:
    notebook: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float
    output: str
    error: str = ""


class ParameterError(ValueError):
    """A parameter no notebook declares, or a value of the wrong type; the message names both."""

def notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks to run, in name order; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise SystemExit(f"--only {','.join(only)} matches no notebook in {folder}")
    return found


def declared_parameters(path: Path) -> dict[str, str]:
    """``name -> annotated type`` of the notebook's ``parameters`` cell (``x: int = 0`` lines)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return {node.target.id: ast.unparse(node.annotation) for node in tree.body
                    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    return {}


_TYPES = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,), "list": (list,),
          "dict": (dict,)}


def check_parameters(declared: dict[str, dict[str, str]], parameters: dict) -> None:
    """Raise ``ParameterError`` for a parameter that none of the notebooks in ``declared`` (name ->
    ``declared_parameters``) declares, or whose value does not have the type a notebook's parameter cell
    gives it (bool is not an int here)."""
    for key, value in parameters.items():
        owners = {name: params[key] for name, params in declared.items() if key in params}
        if not owners:
            raise ParameterError(f"parameter {key!r} is not a parameter of any notebook in this run "
                                 f"({', '.join(declared)})")
        if value is None:  # empty: the profile's value (lib.runtime.profiles.apply)
            continue
        for name, annotation in owners.items():
            allowed = _TYPES.get(annotation)
            if allowed is None:
                continue
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ParameterError(f"notebook {name}: parameter {key!r} must be {annotation} "
                                     f"(its parameters cell), got {type(value).__name__} {value!r}")


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps, durations and widget state, so two runs of a notebook give the same file."""
    for key in VOLATILE_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_METADATA:
            cell.metadata.pop(key, None)
    return nb


def stamp_machine(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Record in ``nb.metadata["companion"]["machine"]`` the processor and torch build that computed its
    outputs (``lib.runtime.machine.fingerprint``): nbval compares stored outputs only on that machine
    (tests/nbval_machine.py), as the committed-outputs test does with ``figures/machine.json``."""
    nb.metadata.setdefault("companion", {})["machine"] = machine.fingerprint()
    return nb


def run_notebook(path: Path, output: Path, parameters: dict, cwd: Path, failed_dir: Path | None = None,
                 env: dict | None = None) -> TaskResult:
    """Execute one notebook into ``output`` atomically; never raises for a notebook error."""
    start = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp.ipynb")
    failed_dir = Path(failed_dir) if failed_dir else REPO_ROOT / "runs" / "failed"
    with _environment(env or {}):
        try:
            papermill.execute_notebook(
                str(path), str(tmp), parameters=parameters or None, kernel_name="python3", cwd=str(cwd),
                progress_bar=False, log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            failed = failed_dir / output.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                os.replace(tmp, failed)
            return TaskResult(path.stem, "failed", time.perf_counter() - start, str(failed),
                              f"{path.name} {_failing_cell(failed, err.cell_index)}: {err.ename}: {err.evalue}")
        except Exception as err:  # noqa: BLE001 -- kernel died, unreadable notebook, ...
            tmp.unlink(missing_ok=True)
            return TaskResult(path.stem, "failed", time.perf_counter() - start, "",
                              f"{path.name}: {type(err).__name__}: {err}")
        except BaseException:  # interrupted: no partial file where the output goes
            tmp.unlink(missing_ok=True)
            raise
    nb = stamp_machine(strip_volatile(nbformat.read(tmp, as_version=4)))
    nbformat.write(nb, tmp)
    os.replace(tmp, output)
    return TaskResult(path.stem, "ok", time.perf_counter() - start, str(output))


PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill adds


def _failing_cell(executed: Path, index: int) -> str:
    """"cell <i> (`first line`)": the cell with the error output in the failed executed copy, ``i``
    counted in the source notebook (without the cells papermill adds: parameters, error banner)."""
    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # noqa: BLE001 -- unreadable copy: the executed index is all there is
        return f"cell {index} of the executed copy"
    own = [c for c in cells if not PAPERMILL_TAGS & set(c.metadata.get("tags", []))]
    for i, cell in enumerate(own):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            return f"cell {i} (`{first[:60]}`)"
    return f"cell {index} of the executed copy"


@contextlib.contextmanager
def _environment(env: dict):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_task(task: Task, failed_dir: str) -> TaskResult:
    """The Dask task: one notebook run, named ``task.name`` in the summary."""
    result = run_notebook(task.notebook, task.output, task.parameters, task.notebook.parent,
                          Path(failed_dir), task.env)
    result.notebook = task.name
    return result
