"""The main job: execute every notebook with papermill and (re)write its figures.

    python -m lib.regenerate                       # default demo profile, offline, CPU
    python -m lib.regenerate --only 01             # notebooks whose name starts with 01
    python -m lib.regenerate --profile eurosat     # another profile: outputs under runs/eurosat/
    python -m lib.regenerate -f my_params.yaml     # papermill-style parameter file (e.g. the paper profile)

On the default profile the executed notebooks replace the committed ones in ``notebooks/`` (they carry
the default outputs readers see and nbval checks) and figures go to ``figures/``. Any other profile or
parameter file writes executed copies and figures under ``runs/<profile>/`` (ignored by git), so a
GPU run never overwrites the committed demo outputs.

Every output is written to a temporary name and renamed. A failing notebook leaves every other
notebook's outputs, and its own previous outputs, intact; the summary names the failing cell, the
failed executed copy is kept under ``runs/failed/`` for inspection, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import yaml
from tqdm import tqdm

from lib import pretrain, profiles
from lib.locations import NOTEBOOKS_DIR, REPO_ROOT

DEFAULT_PROFILE = "demo"
VOLATILE_METADATA = ("papermill", "execution", "widgets")


@dataclass
class TaskResult:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    output: str
    error: str = ""


def notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks to run, in name order; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise SystemExit(f"--only {','.join(only)} matches no notebook in {folder}")
    return found


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps, durations and widget state, so two runs of a notebook give the same file."""
    for key in VOLATILE_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_METADATA:
            cell.metadata.pop(key, None)
    return nb


def run_notebook(path: Path, output: Path, parameters: dict, cwd: Path) -> TaskResult:
    """Execute one notebook into ``output`` atomically; never raises for a notebook error."""
    start = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp.ipynb")
    try:
        papermill.execute_notebook(
            str(path), str(tmp), parameters=parameters or None, kernel_name="python3", cwd=str(cwd),
            progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as err:
        failed = REPO_ROOT / "runs" / "failed" / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        return TaskResult(path.stem, "failed", time.perf_counter() - start, str(failed),
                          f"cell {err.cell_index} (In [{err.exec_count}]): {err.ename}: {err.evalue}")
    except Exception as err:  # kernel died, unreadable notebook, ...
        tmp.unlink(missing_ok=True)
        return TaskResult(path.stem, "failed", time.perf_counter() - start, "", f"{type(err).__name__}: {err}")
    nb = strip_volatile(nbformat.read(tmp, as_version=4))
    nbformat.write(nb, tmp)
    os.replace(tmp, output)
    return TaskResult(path.stem, "ok", time.perf_counter() - start, str(output))


def summary(results: list[TaskResult]) -> str:
    rows = ["| task | status | time (s) | output |", "|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.notebook} | {r.status} | {r.seconds:.0f} | {r.output} |")
    errors = [f"- {r.notebook}: {r.error}" for r in results if r.error]
    return "\n".join(rows + ([""] + errors if errors else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.regenerate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name (lib/profiles/*.yaml)")
    parser.add_argument("--only", default="", help="comma-separated notebook name prefixes, e.g. 01,03")
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML of notebook parameters (papermill -f)")
    args = parser.parse_args(argv)

    parameters: dict = {}
    if args.parameters_file:
        if not args.parameters_file.is_file():
            parser.error(f"parameter file not found: {args.parameters_file}")
        parameters = yaml.safe_load(args.parameters_file.read_text()) or {}
        if not isinstance(parameters, dict):
            parser.error(f"parameter file {args.parameters_file} must hold a mapping of parameter: value")
    profile = parameters.get("profile", args.profile)
    in_place = profile == DEFAULT_PROFILE and not parameters
    if not in_place:
        run_dir = REPO_ROOT / "runs" / profile
        parameters = {"profile": profile, **parameters, "figures_root": str(run_dir / "figures")}

    settings = profiles.load(profile, **{k: v for k, v in parameters.items() if k in profiles.SCHEMA})
    if settings["pretrained"] == "demo":  # train the demo model here, where its progress bar shows
        pretrain.demo_checkpoint()

    results = []
    todo = notebooks([p for p in args.only.split(",") if p])
    for path in tqdm(todo, desc=f"regenerate ({profile})", unit="notebook"):
        output = path if in_place else REPO_ROOT / "runs" / profile / path.name
        results.append(run_notebook(path, output, parameters, cwd=path.parent))
    print(summary(results))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
