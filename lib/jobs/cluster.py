"""The cluster the tasks run on: an embedded Dask LocalCluster, an existing scheduler, or SLURM.

``execute`` runs the tasks that resume does not skip, one Dask task per notebook (or grid cell), and
returns their results in task order; a worker that dies is reported and the others go on.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tqdm import tqdm

from lib.jobs.resume import (
    finished,
    input_key,
    lib_version,
    output_folders,
    record_finished,
    remove_stale_temporaries,
    split_hash,
)
from lib.jobs.tasks import Task, TaskResult, run_task
from lib.runtime.locations import REPO_ROOT


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


def kernel_env() -> dict:
    """The environment a kernel on another machine needs too (LocalCluster workers inherit it)."""
    return {k: os.environ[k] for k in ("DATA_ROOT", "COMPANION_FIGURES", "COMPANION_CACHE") if os.environ.get(k)}
