"""The main job: execute the notebooks with papermill, as tasks on Dask, and (re)write their outputs.

    python -m lib.regenerate                       # default demo profile, offline, CPU
    python -m lib.regenerate --only 01,03          # notebooks whose name starts with 01 or 03
    python -m lib.regenerate --profile eurosat     # another profile: outputs under runs/eurosat/
    python -m lib.regenerate -f my_params.yaml     # papermill-style parameter file (e.g. the paper profile)
    python -m lib.regenerate --grid grid.yaml      # datasets x backbones x seeds: one table (lib.jobs.grid)
    python -m lib.regenerate --scheduler tcp://host:8786   # an existing Dask cluster
    python -m lib.regenerate --scheduler slurm     # a dask-jobqueue SLURMCluster (its jobqueue.yaml)

Each notebook (or each cell of a grid) is one task. Tasks run on a Dask ``LocalCluster`` started here
(``--workers`` processes, one thread each; no set-up) or on the cluster ``--scheduler`` names. A tqdm
bar counts finished tasks; a summary table (task, status, time, output) ends the run, and the run's
record (wall time, peak memory of this machine's process tree, every task) goes to
``runs/main_job.json``.

On the default profile the executed notebooks replace the committed ones in ``notebooks/`` (they carry
the default outputs readers see and nbval checks) and figures go to ``figures/``; without ``DATA_ROOT``
the notebooks go to ``runs/demo-without-data/`` instead, since the committed ones hold the EuroSAT
cells of a run with it (the real-data figures are left as they are too). Any other profile,
parameter file or grid writes under ``runs/`` (ignored by git), and ``--out`` moves the outputs
anywhere, so a GPU run never overwrites the committed demo outputs.

* Failure isolation: a failing task leaves every other task's outputs, and its own previous outputs,
  intact; the summary names the notebook, the failing cell and its error; the failed executed copy is
  kept under ``runs/failed/``; the exit code is 1.
* Atomic outputs: executed notebooks go to a hidden temporary name and are renamed when complete;
  figures and tables do the same (``lib.runtime.locations.atomic_write``). Temporary files left by a killed
  run (their writer's process is gone) are removed at the next start.
* Resume: a finished task records the hash of its inputs (the notebook's code cells, its parameters,
  the ``lib/`` sources, the data splits under ``DATA_ROOT``) in ``runs/state/``; a re-run skips a task
  whose inputs did not change and whose outputs are still there. ``--force`` redoes every task.
* Bad parameters (unknown to every notebook, or of the wrong type for a notebook's parameter cell)
  stop the run before any task starts, naming the notebook and the parameter.
"""
from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from lib.jobs import grid as grids
from lib.jobs.cluster import execute, kernel_env
from lib.jobs.record import cache_state, summary, write_record
from lib.jobs.resume import lib_version, output_folders, remove_stale_temporaries
from lib.jobs.tasks import ParameterError, Task, check_parameters, declared_parameters, notebooks
from lib.runtime import locations, machine, profiles
from lib.runtime.locations import NOTEBOOKS_DIR, REPO_ROOT
from lib.runtime.memory import ProcessTreePeak

DEFAULT_PROFILE = "demo"

WITHOUT_DATA = "demo-without-data"  # runs/<this>: the default run's notebooks when DATA_ROOT is not set


def _read_parameters(parser, path: Path | None) -> dict:
    if not path:
        return {}
    if not path.is_file():
        parser.error(f"parameter file not found: {path}")
    try:
        parameters = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        parser.error(f"parameter file {path} is not valid YAML: {err}")
    if not isinstance(parameters, dict):
        parser.error(f"parameter file {path} must hold a mapping of parameter: value")
    return parameters


def _interrupt(signum, frame):  # SIGTERM: unwind like Ctrl-C, so the cluster and temporaries go
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.regenerate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name (lib/runtime/profiles/*.yaml)")
    parser.add_argument("--only", default="", help="comma-separated notebook name prefixes, e.g. 01,03")
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML of notebook parameters (papermill -f)")
    parser.add_argument("--grid", type=Path, help="YAML grid: datasets x backbones x seeds (see lib.jobs.grid)")
    parser.add_argument("--scheduler", help="tcp://host:port of an existing Dask scheduler, or 'slurm'")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) // 2),
                        help="LocalCluster worker processes (SLURM: jobs); default half the CPU cores")
    parser.add_argument("--force", action="store_true", help="rerun tasks whose inputs did not change")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="folder of notebooks to run")
    parser.add_argument("--out", type=Path, help="write executed notebooks and figures here")
    parser.add_argument("--runs", type=Path, default=REPO_ROOT / "runs",
                        help="resume state, failed copies, run record and non-default outputs")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    signal.signal(signal.SIGTERM, _interrupt)

    parameters = _read_parameters(parser, args.parameters_file)
    paths = notebooks([p for p in args.only.split(",") if p], args.notebooks)
    declared = {p: declared_parameters(p) for p in paths}
    try:
        if args.grid:
            spec = grids.load(args.grid, profile=args.profile, base=parameters)
            profile, out = spec.profile, args.out or args.runs / "grid" / spec.name
            tasks = grids.tasks(spec, paths, out, declared)
        else:
            profile = parameters.get("profile", args.profile)
            in_place = profile == DEFAULT_PROFILE and not parameters and args.out is None
            out = None if in_place else (args.out or args.runs / Path(profile).stem)  # a profile file: its name
            if not in_place:
                parameters = {**({"profile": profile} if profile != DEFAULT_PROFILE else {}), **parameters,
                              "figures_root": str(out / "figures")}
            notebooks_out = out
            if in_place and locations.data_root() is None:
                # the committed notebooks hold the EuroSAT cells of a run with DATA_ROOT: a run without it
                # leaves them as they are (as it leaves the real-data figures) and writes its notebooks here
                notebooks_out = args.runs / WITHOUT_DATA
                print(f"DATA_ROOT is not set: the committed notebooks (executed with the EuroSAT subset) are "
                      f"left as they are; this run's notebooks go to {notebooks_out}/, its demo figures to "
                      f"{locations.figures_dir()}/", file=sys.stderr)
            tasks = [Task(p.stem, p, p if notebooks_out is None else notebooks_out / p.name, dict(parameters),
                          locations.figures_dir() if out is None else out / "figures", kernel_env())
                     for p in paths]
        used = {k: v for t in tasks for k, v in t.parameters.items()}
        check_parameters({p.name: declared[p] for p in paths}, used)
        for task in tasks:  # each notebook gets the parameters it declares
            task.parameters = {k: v for k, v in task.parameters.items() if k in declared[task.notebook]}
        settings = profiles.load(profile, **{k: v for k, v in tasks[0].parameters.items() if k in profiles.SCHEMA})
    except (ParameterError, profiles.ProfileError, grids.GridError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started, start, cache = datetime.datetime.now(), time.perf_counter(), cache_state()
    try:
        with ProcessTreePeak() as memory:
            uses_model = any("pretrained" in declared[p] for p in paths)
            if uses_model and settings["pretrained"] == "demo" and not args.scheduler:  # here, where its bar shows
                ensure_demo_model()  # cached after the first run; counted in the run's time and memory
            results = execute(tasks, args.scheduler, args.workers, args.force, args.runs, f"regenerate ({profile})")
    except subprocess.CalledProcessError as err:
        print(f"error: pretraining the demo model failed (exit code {err.returncode}); nothing else ran",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        remove_stale_temporaries(output_folders(tasks))
        print("interrupted: finished tasks are recorded; rerun to resume", file=sys.stderr)
        return 130
    if out is None and any(r.status == "ok" for r in results):  # in place: the default figures (a grid has its own out)
        machine.write(locations.figures_dir())  # the processor behind these figures' last bits
    if any(r.status != "skipped" for r in results):  # a run that only skipped keeps the last record
        write_record(args.runs / "main_job.json", profile, started, time.perf_counter() - start, memory.peak,
                     args.workers, results, cache)
    print(summary(results))
    if args.grid:
        for path in grids.gather(spec, tasks, results, out):
            print(f"grid table: {path}")
    return 0 if all(r.status != "failed" for r in results) else 1


def ensure_demo_model() -> None:
    """Pretrain the demo model, or find it cached, in a child process: the main job itself never imports
    torch (its CUDA build alone holds ~0.8 GB resident), so its peak memory is the notebooks' own.

    The checkpoint's key is a function of ``lib/``'s sources (its recipe, config, descriptions and
    versions all live there), so once a child has found or trained it, a note under the cache
    (``demo-model/lib-<lib_version>.checked``, naming the checkpoint) lets a later run with the same
    sources skip the child, whose imports alone take 8-19 s on 2 cores. Were the note ever wrong, nothing
    would be: every kernel loads the model through ``pretrain.demo_checkpoint`` and pretrains it if absent."""
    note = locations.cache_dir() / "demo-model" / f"lib-{lib_version()}.checked"
    if note.is_file() and (note.parent / note.read_text().strip()).is_file():
        return
    found = subprocess.run([sys.executable, "-c", "from lib.models import pretrain; print(pretrain.demo_checkpoint().name)"],
                           check=True, stdout=subprocess.PIPE, text=True)
    note.parent.mkdir(parents=True, exist_ok=True)
    locations.atomic_write(note, lambda f: f.write(found.stdout.strip().splitlines()[-1].encode()))


if __name__ == "__main__":
    sys.exit(main())
