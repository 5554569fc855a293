"""The main job: execute the notebooks with papermill, as tasks on Dask, and (re)write their outputs.

    python -m lib.regenerate                       # default demo profile, offline, CPU
    python -m lib.regenerate --only 01,03          # notebooks whose name starts with 01 or 03
    python -m lib.regenerate --profile eurosat     # another profile: outputs under runs/eurosat/
    python -m lib.regenerate -f my_params.yaml     # papermill-style parameter file (e.g. the paper profile)
    python -m lib.regenerate --grid grid.yaml      # datasets x backbones x seeds: one table (lib.grid)
    python -m lib.regenerate --scheduler tcp://host:8786   # an existing Dask cluster
    python -m lib.regenerate --scheduler slurm     # a dask-jobqueue SLURMCluster (its jobqueue.yaml)

Each notebook (or each cell of a grid) is one task. Tasks run on a Dask ``LocalCluster`` started here
(``--workers`` processes, one thread each; no set-up) or on the cluster ``--scheduler`` names. A tqdm
bar counts finished tasks; a summary table (task, status, time, output) ends the run, and the run's
record (wall time, peak memory of this machine's process tree, every task) goes to
``runs/main_job.json``.

On the default profile the executed notebooks replace the committed ones in ``notebooks/`` (they carry
the default outputs readers see and nbval checks) and figures go to ``figures/``. Any other profile,
parameter file or grid writes under ``runs/`` (ignored by git), and ``--out`` moves the outputs
anywhere, so a GPU run never overwrites the committed demo outputs.

* Failure isolation: a failing task leaves every other task's outputs, and its own previous outputs,
  intact; the summary names the notebook, the failing cell and its error; the failed executed copy is
  kept under ``runs/failed/``; the exit code is 1.
* Atomic outputs: executed notebooks go to a hidden temporary name and are renamed when complete;
  figures and tables do the same (``lib.locations.atomic_write``). Temporary files left by a killed
  run (their writer's process is gone) are removed at the next start.
* Resume: a finished task records the hash of its inputs (the notebook's code cells, its parameters,
  the ``lib/`` sources, the data splits under ``DATA_ROOT``) in ``runs/state/``; a re-run skips a task
  whose inputs did not change and whose outputs are still there. ``--force`` redoes every task.
* Bad parameters (unknown to every notebook, or of the wrong type for a notebook's parameter cell)
  stop the run before any task starts, naming the notebook and the parameter.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill
import yaml
from tqdm import tqdm

from lib import locations
from lib.locations import NOTEBOOKS_DIR, REPO_ROOT, atomic_write

DEFAULT_PROFILE = "demo"
VOLATILE_METADATA = ("papermill", "execution", "widgets")
LIB_DIR = Path(__file__).resolve().parent
# files under DATA_ROOT (at most two levels down) that define splits and labels: hashed for resume
SPLIT_FILE = re.compile(r".*\.(json|txt|csv)$", re.IGNORECASE)
TMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(\.ipynb)?$")


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


# ---------------------------------------------------------------- notebooks and their parameters

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


# ---------------------------------------------------------------- one task

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
    nb = strip_volatile(nbformat.read(tmp, as_version=4))
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


# ---------------------------------------------------------------- resume

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


# ---------------------------------------------------------------- the cluster

@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A Dask client: a LocalCluster of ``workers`` processes (one thread each, no memory limit: a
    notebook's kernel is a child process the nanny does not see), an existing scheduler
    (``tcp://host:port``), or ``slurm``: a dask-jobqueue SLURMCluster configured by the user's
    jobqueue.yaml, scaled to ``workers`` jobs."""
    from dask.distributed import Client, LocalCluster

    if scheduler and scheduler != "slurm":
        with Client(scheduler) as client:
            yield client
        return
    if scheduler == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as err:
            raise SystemExit("--scheduler slurm needs dask-jobqueue: pip install dask-jobqueue "
                             "(and a jobqueue.yaml; see the README)") from err
        cluster = SLURMCluster()
        cluster.scale(jobs=workers)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                               dashboard_address=None)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


class PeakMemory:
    """Peak summed resident memory of this process and its descendants (Dask workers, kernels and
    their job pools), sampled every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def execute(tasks: list[Task], scheduler: str | None = None, workers: int = 1, force: bool = False,
            runs_dir: Path = REPO_ROOT / "runs", desc: str = "regenerate") -> list[TaskResult]:
    """Run ``tasks`` on Dask, skipping the finished ones (unless ``force``); results in task order."""
    from dask.distributed import as_completed

    state_dir, failed_dir = runs_dir / "state", runs_dir / "failed"
    remove_stale_temporaries(output_folders(tasks))
    lib, results, todo, keys = lib_version(), {}, [], {}
    splits = {root: split_hash(root) for root in {t.env.get("DATA_ROOT") for t in tasks}}  # read once per root
    for task in tasks:
        keys[task.name] = input_key(task, lib, splits[task.env.get("DATA_ROOT")])
        if not force and finished(task, keys[task.name], state_dir):
            results[task.name] = TaskResult(task.name, "skipped", 0.0, str(task.output), "")
        else:
            todo.append(task)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, unit="task")
    if todo:
        with dask_client(scheduler, min(workers, len(todo))) as client:
            futures = {client.submit(run_task, t, str(failed_dir), key=f"{t.name}-{keys[t.name]}", pure=False): t
                       for t in todo}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 -- the worker died: reported, others go on
                    result = TaskResult(task.name, "failed", 0.0, "", f"{task.notebook.name}: "
                                        f"{type(err).__name__}: {err}")
                if result.status == "ok":
                    record_finished(task, keys[task.name], state_dir, result)
                results[task.name] = result
                bar.update()
    bar.close()
    return [results[t.name] for t in tasks]


# ---------------------------------------------------------------- reporting

def summary(results: list[TaskResult]) -> str:
    rows = ["| task | status | time (s) | output |", "|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.notebook} | {r.status} | {r.seconds:.0f} | {r.output} |")
    errors = [f"- {r.notebook}: {r.error}" for r in results if r.error]
    return "\n".join(rows + ([""] + errors if errors else []))


def cache_state() -> str:
    """"cold" (no cached features, no demo model) or what this machine's cache already holds."""
    root = locations.cache_dir()
    features = sum(1 for _ in (root / "features").rglob("*") if _.is_file()) if (root / "features").is_dir() else 0
    model = any((root / "demo-model").glob("*.pt"))
    if not features and not model:
        return "cold"
    return f"warm: {features} cached feature/run files" + (", demo model cached" if model else "")


def write_record(path: Path, profile: str, started: datetime.datetime, wall: float, peak: int, workers: int,
                 results: list[TaskResult], cache: str = "") -> Path:
    """The run's record (read by ``python -m benchmarks``): wall time, peak memory, cache state at the
    start, every task."""
    record = {"profile": profile, "started": started.isoformat(timespec="seconds"), "wall_s": round(wall, 1),
              "peak_rss_mb": round(peak / 2**20, 1), "workers": workers, "cache": cache,
              "tasks": [{"task": r.notebook, "status": r.status, "seconds": round(r.seconds, 1)} for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write((json.dumps(record, indent=1) + "\n").encode()))


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
    from lib import grid as grids
    from lib import profiles

    parser = argparse.ArgumentParser(prog="python -m lib.regenerate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name (lib/profiles/*.yaml)")
    parser.add_argument("--only", default="", help="comma-separated notebook name prefixes, e.g. 01,03")
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML of notebook parameters (papermill -f)")
    parser.add_argument("--grid", type=Path, help="YAML grid: datasets x backbones x seeds (see lib.grid)")
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
            out = None if in_place else (args.out or args.runs / profile)
            if not in_place:
                parameters = {**({"profile": profile} if profile != DEFAULT_PROFILE else {}), **parameters,
                              "figures_root": str(out / "figures")}
            tasks = [Task(p.stem, p, p if out is None else out / p.name, dict(parameters),
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
        with PeakMemory() as memory:
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
    torch (its CUDA build alone holds ~0.8 GB resident), so its peak memory is the notebooks' own."""
    subprocess.run([sys.executable, "-c", "from lib import pretrain; pretrain.demo_checkpoint()"], check=True)


def kernel_env() -> dict:
    """The environment a kernel on another machine needs too (LocalCluster workers inherit it)."""
    return {k: os.environ[k] for k in ("DATA_ROOT", "COMPANION_FIGURES", "COMPANION_CACHE") if os.environ.get(k)}


if __name__ == "__main__":
    sys.exit(main())
