"""The one place notebooks write results: figures, tables and headline numbers (``Saver``).

``lib.report.plots`` draws; this module saves. Everything goes to
``<figures root>/<notebook>/<name>.{png,csv,json}`` (root from ``lib.runtime.locations.figures_dir``)
through ``lib.runtime.locations.atomic_write``, so an interrupted run never
leaves a half-written file where a good one was. PNGs are saved at a modest dpi with fixed metadata,
so the same figure gives the same bytes twice.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd

from lib.runtime.locations import atomic_write, figures_dir

DPI = 100

def _target(notebook: str, name: str, suffix: str, root=None) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"output name {name!r} must be a plain file name")
    folder = figures_dir(root) / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{suffix}"


def save_figure(fig, notebook: str, name: str, root=None) -> Path:
    """Save ``fig`` as ``<root>/<notebook>/<name>.png`` (deterministic bytes)."""
    path = _target(notebook, name, ".png", root)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight",
                                                    metadata={"Software": None}))


def save_table(table: pd.DataFrame, notebook: str, name: str, root=None, float_format: str = "%.2f") -> Path:
    """Save a table as csv (rounded with ``float_format``, so reruns compare byte for byte)."""
    path = _target(notebook, name, ".csv", root)
    return atomic_write(path, lambda f: f.write(table.to_csv(float_format=float_format).encode()))


KEY_SEPARATOR = " | "  # method names hold "/" ("FAIR w/o LAS"), so "/" cannot separate a key's parts


def plus_minus(mean: float, spread: float, digits: int = 2) -> str:
    """"mean ± spread" at ``digits`` decimals: the cell of every displayed mean ± std or ± 95% CI table."""
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def headline_key(*parts) -> str:
    """The one format of a headline number's name: ``<table> | <row> | <dataset>[ | <setting>]``."""
    return KEY_SEPARATOR.join(str(p) for p in parts)


def headline_numbers(values: pd.Series, *prefix, digits: int | None = None) -> dict[str, float]:
    """``{headline_key(*prefix, *index): value}`` for every non-NaN entry of ``values`` (any index)."""
    out = {}
    for index, value in values.items():
        if pd.isna(value):
            continue
        parts = index if isinstance(index, tuple) else (index,)
        out[headline_key(*prefix, *parts)] = round(float(value), digits) if digits is not None else float(value)
    return out


HEADLINE = "headline"  # <name>.json: the demo world's numbers (or all of them, where nothing tells them apart)
REAL_HEADLINE = "headline_real_datasets"  # <name>.json: the numbers of datasets that need DATA_ROOT


def save_headline(numbers: dict, notebook: str, root=None, name: str = HEADLINE) -> Path:
    """The notebook's headline numbers (``headline.json``), asserted by tests against the committed copy."""
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"headline {key!r} must be a finite number, got {value!r}")
    path = _target(notebook, name, ".json", root)
    text = json.dumps({k: round(float(v), 4) for k, v in sorted(numbers.items())}, indent=1) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def close(fig) -> None:
    plt.close(fig)


class Saver:
    """``save_*`` bound to one notebook and root; tables and headline numbers are split by dataset.

    Demo-world rows (datasets named ``demo-...``) go to ``<name>.csv``, the rest (real datasets, present
    only where ``DATA_ROOT`` has them) to ``<name>_real_datasets.csv``, so the committed demo outputs
    are the same with and without ``DATA_ROOT``. Headline numbers split the same way: a key with a
    part that ``is_real`` calls a real dataset goes to ``headline_real_datasets.json``, the others to
    ``headline.json``; a file with no numbers this run is left as it is (a run without ``DATA_ROOT``
    keeps the real-data numbers of the last run with it). Without ``is_real`` every number goes to
    ``headline.json``.
    """

    def __init__(self, notebook: str, root=None, demo_prefix: str = "demo-", is_real: Callable[[str], bool] | None = None):
        self.notebook, self.root, self.demo_prefix, self.is_real = notebook, root, demo_prefix, is_real

    def figure(self, fig, name: str) -> Path:
        path = save_figure(fig, self.notebook, name, self.root)
        close(fig)
        return path

    def table(self, table: pd.DataFrame, name: str, float_format: str = "%.2f") -> list[Path]:
        if "dataset" not in (table.index.names or []):
            return [save_table(table, self.notebook, name, self.root, float_format)]
        names = table.index.get_level_values("dataset")
        # real datasets apart: by ``is_real`` where given (so the parts world's names stay with the demo's)
        is_demo = ~names.map(self.is_real).to_numpy(bool) if self.is_real else names.str.startswith(self.demo_prefix)
        paths = []
        for part, suffix in ((table[is_demo], ""), (table[~is_demo], "_real_datasets")):
            if len(part):
                paths.append(save_table(part, self.notebook, name + suffix, self.root, float_format))
        return paths

    def headline(self, numbers: dict) -> list[Path]:
        real = {k: v for k, v in numbers.items()
                if self.is_real is not None and any(self.is_real(part) for part in k.split(KEY_SEPARATOR))}
        demo = {k: v for k, v in numbers.items() if k not in real}
        paths = []
        for part, name in ((demo, HEADLINE), (real, REAL_HEADLINE)):
            if part or (name == HEADLINE and not real):
                paths.append(save_headline(part, self.notebook, self.root, name))
        return paths
