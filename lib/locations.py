"""Where things live: repository folders, the on-disk cache and the data root.

Every location can be moved with an environment variable, and none names a path of a particular
machine: ``DATA_ROOT`` (datasets in the CoOp layout), ``COMPANION_CACHE`` (features and the demo
model; default ``~/.cache/clip-companion``), ``COMPANION_FIGURES`` (where notebooks save figures;
default the repository's ``figures/``, tests point it at a temporary folder).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
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
