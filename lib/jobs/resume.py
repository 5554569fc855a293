"""Resume: a finished task records the hash of its inputs; a re-run skips it while they are unchanged.

The input key hashes the notebook's cell types and sources (not its outputs), its parameters, every
source, profile, model config and descriptor file under ``lib/``, the split and label files under
``DATA_ROOT`` and the kernel's environment. The state lives in ``runs/state/`` with the list of output
files; a task is skipped when the key is unchanged and every file is still there. Temporaries of a
killed run (``.<name>.<pid>.tmp[.ipynb]`` whose writer is gone) are removed at the next start.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path

import nbformat

from lib.jobs.tasks import Task, TaskResult
from lib.runtime.locations import atomic_write

LIB_DIR = Path(__file__).resolve().parents[1]
# files under DATA_ROOT (at most two levels down) that define splits and labels: hashed for resume
SPLIT_FILE = re.compile(r".*\.(json|txt|csv)$", re.IGNORECASE)
TMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(\.ipynb)?$")


def _hash_files(files, root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def lib_version() -> str:
    """Hash of every source, profile, model config and descriptor file in ``lib/``."""
    files = [p for p in LIB_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and p.suffix in {".py", ".yaml", ".json", ".csv"}]
    return _hash_files(files, LIB_DIR)


def split_hash(root: str | os.PathLike | None) -> str:
    """Hash of the split and label files (json/txt/csv, at most two folders down) under ``root``;
    "none" without a data root. Images are not read: a split names the images a run uses."""
    if not root or not Path(root).is_dir():
        return "none"
    root = Path(root)
    files = [p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern)
             if p.is_file() and SPLIT_FILE.match(p.name)]
    return _hash_files(files, root)


def notebook_code_hash(path: Path) -> str:
    """Hash of the notebook's cell types and sources (not its outputs, which the run rewrites)."""
    nb = nbformat.read(path, as_version=4)
    text = json.dumps([(c.cell_type, c.source) for c in nb.cells])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_key(task: Task, lib: str, splits: str) -> str:
    """What a task's outputs depend on: notebook code, parameters, lib version, data splits."""
    text = json.dumps({"notebook": notebook_code_hash(task.notebook), "parameters": task.parameters,
                       "lib": lib, "splits": splits, "env": task.env}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _state_file(state_dir: Path, task: Task) -> Path:
    ident = hashlib.sha256(str(task.output.resolve()).encode()).hexdigest()[:12]
    return state_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', task.name)}-{ident}.json"


def _output_files(task: Task) -> list[Path]:
    """The executed notebook and every file under the notebook's figures folder."""
    files = [task.output]
    if task.figures is not None and (task.figures / task.notebook.stem).is_dir():
        files += sorted(p for p in (task.figures / task.notebook.stem).iterdir()
                        if p.is_file() and not p.name.startswith("."))
    return files


def finished(task: Task, key: str, state_dir: Path) -> bool:
    """Whether a previous run finished ``task`` with the same input key and its outputs are all there."""
    path = _state_file(state_dir, task)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return state.get("key") == key and all(Path(f).is_file() for f in state.get("files", []))


def record_finished(task: Task, key: str, state_dir: Path, result: TaskResult) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"task": task.name, "key": key, "files": [str(f) for f in _output_files(task)],
                       "seconds": round(result.seconds, 1),
                       "finished": datetime.datetime.now().isoformat(timespec="seconds")}, indent=1)
    atomic_write(_state_file(state_dir, task), lambda f: f.write(text.encode()))


def output_folders(tasks: list[Task]) -> set[Path]:
    """Where the tasks write: their executed notebooks' folders and their figures roots."""
    return {t.output.parent for t in tasks} | {t.figures for t in tasks if t.figures}


def remove_stale_temporaries(folders) -> list[Path]:
    """Delete temporary files (``.<name>.<pid>.tmp[.ipynb]``) whose writing process is gone."""
    import psutil

    removed = []
    for folder in {Path(f) for f in folders}:
        if not folder.is_dir():
            continue
        for path in folder.rglob(".*.tmp*"):
            match = TMP_FILE.match(path.name)
            if match and path.is_file() and not psutil.pid_exists(int(match["pid"])):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
