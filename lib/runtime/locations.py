"""Where things live (repository folders, the on-disk cache, the data root) and how files get there.

Every location can be moved with an environment variable, and none names a path of a particular
machine: ``DATA_ROOT`` (datasets in the CoOp layout), ``COMPANION_CACHE`` (features and the demo
model; default ``~/.cache/clip-companion``), ``COMPANION_FIGURES`` (where notebooks save figures;
default the repository's ``figures/``, tests point it at a temporary folder).

Every file the companion writes (figures, tables, cached features, the demo checkpoint) goes through
``atomic_write``: written to a hidden temporary name, flushed to disk, then renamed, so an interrupted
run never leaves a half-written file where a good one was.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def cache_dir() -> Path:
    path = Path(os.environ.get("COMPANION_CACHE") or Path.home() / ".cache" / "clip-companion").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(override: str | os.PathLike | None = None) -> Path:
    """The figures root: an explicit argument, else $COMPANION_FIGURES, else ``<repo>/figures``."""
    return Path(override or os.environ.get("COMPANION_FIGURES") or REPO_ROOT / "figures").expanduser()


def data_root(override: str | os.PathLike | None = None) -> Path | None:
    """The datasets root: an explicit argument, else $DATA_ROOT, else None (demo world only)."""
    value = override or os.environ.get("DATA_ROOT")
    return Path(value).expanduser() if value else None


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a binary file that replaces ``path`` only once it is complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
