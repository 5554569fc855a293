"""Parameter grids for the main job: datasets x backbones x seeds, one notebook run per cell, one table.

A grid file (``python -m lib.regenerate --grid grid.yaml``)::

    name: backbones-eurosat          # outputs under runs/grid/<name>/ (default: the file's name)
    profile: eurosat                 # default: --profile
    notebooks: ["01"]                # name prefixes (default: --only, else every notebook)
    parameters: {n_crops: 10}        # the same in every cell
    datasets: [demo-clutter, eurosat]
    backbones:
      - {model: demo-tiny-vit, pretrained: demo}
      - {model: ViT-B-32, pretrained: openai}
    seeds: [0, 1, 2]

Every axis is optional (left out: the profile's value, not varied). A cell's dataset goes to the
notebook's ``datasets`` parameter (``targets`` for the few-shot notebook), a backbone's keys to the
notebook's parameters of those names (``model``, ``pretrained``, ...), a seed to ``seed``. Each cell
writes ``<out>/<cell>/<notebook>.ipynb`` and ``<out>/<cell>/figures/``; ``gather`` reads every cell's
``headline.json`` and ``headline_real_datasets.json`` into ``<out>/results.csv`` (one row per cell and headline number) and
``<out>/results.md`` (mean ± std over seeds, one column per dataset and backbone).
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from lib.jobs.cluster import kernel_env
from lib.jobs.tasks import Task, TaskResult, declared_parameters
from lib.runtime.locations import atomic_write

HEADLINES = ("headline", "headline_real_datasets")  # lib.report.outputs: the demo world's and real datasets' numbers
DATASET_PARAMETERS = ("datasets", "targets")  # where a notebook takes its datasets, in order of preference
KNOWN_KEYS = {"name", "profile", "notebooks", "parameters", "datasets", "backbones", "seeds"}


class GridError(ValueError):
    """A grid file that cannot be run; the message names the file and the entry."""


@dataclass
class Grid:
    name: str
    profile: str
    notebooks: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    datasets: list = field(default_factory=lambda: [None])
    backbones: list = field(default_factory=lambda: [None])
    seeds: list = field(default_factory=lambda: [None])


def load(path: Path, profile: str = "demo", base: dict | None = None) -> Grid:
    """Read and check a grid file; ``base`` parameters (from ``-f``) sit under the grid's own."""
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise GridError(f"grid file {path} is not valid YAML: {err}") from err
    if not isinstance(spec, dict):
        raise GridError(f"grid file {path} must hold a mapping (datasets, backbones, seeds, ...)")
    unknown = sorted(set(spec) - KNOWN_KEYS)
    if unknown:
        raise GridError(f"grid file {path}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                        f"known: {sorted(KNOWN_KEYS)}")
    for key in ("notebooks", "datasets", "backbones", "seeds"):
        if key in spec and (not isinstance(spec[key], list) or not spec[key]):
            raise GridError(f"grid file {path}: {key!r} must be a non-empty list, got {spec[key]!r}")
    backbones = spec.get("backbones", [None])
    for i, backbone in enumerate(backbones):
        if backbone is not None and (not isinstance(backbone, dict) or "model" not in backbone):
            raise GridError(f"grid file {path}: backbones[{i}] must be a mapping with a 'model' "
                            f"(and usually 'pretrained'), got {backbone!r}")
    for seed in spec.get("seeds", []):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise GridError(f"grid file {path}: seeds must be integers, got {seed!r}")
    parameters = {**(base or {}), **(spec.get("parameters") or {})}
    return Grid(name=str(spec.get("name") or path.stem), profile=str(spec.get("profile") or profile),
                notebooks=[str(n) for n in spec.get("notebooks", [])], parameters=parameters,
                datasets=spec.get("datasets", [None]), backbones=backbones, seeds=spec.get("seeds", [None]))


def cell_name(dataset, backbone, seed) -> str:
    parts = [str(dataset) if dataset is not None else None,
             "-".join(str(backbone.get(k)) for k in ("model", "pretrained") if backbone.get(k))
             if backbone else None,
             f"seed{seed}" if seed is not None else None]
    return re.sub(r"[^A-Za-z0-9_.@=-]", "_", "_".join(p for p in parts if p) or "default")


def cells(grid: Grid):
    """(cell name, dataset, backbone, seed) for every combination."""
    for dataset, backbone, seed in itertools.product(grid.datasets, grid.backbones, grid.seeds):
        yield cell_name(dataset, backbone, seed), dataset, backbone, seed


def tasks(grid: Grid, paths: list[Path], out: Path, declared: dict[Path, dict[str, str]] | None = None) -> list[Task]:
    """One task per (cell, notebook); the notebooks are ``paths`` filtered by the grid's prefixes;
    ``declared``: each notebook's ``declared_parameters`` (read here when not given)."""
    if grid.notebooks:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in grid.notebooks)]
        if not paths:
            raise GridError(f"grid {grid.name}: notebooks {grid.notebooks} match none of the notebooks to run")
    out, result = Path(out), []
    declared = declared or {p: declared_parameters(p) for p in paths}
    for name, dataset, backbone, seed in cells(grid):
        for path in paths:
            params = {"profile": grid.profile, **grid.parameters, **(backbone or {}),
                      "figures_root": str(out / name / "figures")}
            if seed is not None:
                params["seed"] = seed
            if dataset is not None:
                key = next((k for k in DATASET_PARAMETERS if k in declared[path]), None)
                if key is None:
                    raise GridError(f"grid {grid.name}: notebook {path.name} takes no dataset parameter "
                                    f"({' or '.join(DATASET_PARAMETERS)})")
                params[key] = [dataset]
            result.append(Task(f"{path.stem}[{name}]", path, out / name / path.name, params,
                               out / name / "figures", kernel_env()))
    return result


def gather(grid: Grid, grid_tasks: list[Task], results: list[TaskResult], out: Path) -> list[Path]:
    """Every cell's headline numbers in one long csv and a markdown table (mean ± std over seeds)."""
    rows, failed = [], []
    lookup = {cell: (dataset, backbone, seed) for cell, dataset, backbone, seed in cells(grid)}
    for task, result in zip(grid_tasks, results):
        cell = task.output.parent.name
        dataset, backbone, seed = lookup[cell]
        if result.status == "failed":
            failed.append(f"- {task.name}: {result.error}")
            continue
        folder = task.figures / task.notebook.stem
        headlines = [folder / f"{name}.json" for name in HEADLINES if (folder / f"{name}.json").is_file()]
        if not headlines:
            failed.append(f"- {task.name}: wrote no headline.json")
            continue
        numbers = {k: v for path in headlines for k, v in json.loads(path.read_text()).items()}
        for metric, value in numbers.items():
            rows.append({"notebook": task.notebook.stem, "dataset": dataset or "(profile)",
                         "backbone": cell_name(None, backbone, None) if backbone else "(profile)",
                         "seed": seed if seed is not None else "(profile)", "metric": metric, "value": value})
    long = pd.DataFrame(rows, columns=["notebook", "dataset", "backbone", "seed", "metric", "value"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv = atomic_write(out / "results.csv", lambda f: f.write(long.to_csv(index=False).encode()))
    md = atomic_write(out / "results.md", lambda f: f.write(markdown(long, grid, failed).encode()))
    return [csv, md]


def markdown(long: pd.DataFrame, grid: Grid, failed: list[str]) -> str:
    lines = [f"# Grid {grid.name} (profile {grid.profile})", ""]
    if long.empty:
        lines.append("No cell finished.")
    else:
        stats = long.groupby(["notebook", "metric", "dataset", "backbone"])["value"].agg(["mean", "std", "count"])
        text = stats.apply(lambda r: f"{r['mean']:.2f}" + (f" ± {r['std']:.2f} (n={int(r['count'])})"
                                                          if r["count"] > 1 else ""), axis=1)
        table = text.unstack(["dataset", "backbone"]).fillna("")
        table.columns = [f"{d} / {b}" for d, b in table.columns]
        lines.append(table.to_markdown())
    if failed:
        lines += ["", "Failed cells:", *failed]
    return "\n".join(lines) + "\n"
