"""Many cached training runs at once: spawned worker processes with one torch thread each.

FAIR's ablation rows (``lib.experiments.fair_ablations``) and the CDFSL episode jobs
(``lib.experiments.cdfsl_episodes``) are
independent and cached by content, so a notebook first fills the cache with ``run_jobs`` and then
reads every result back in its own order. ``run(handle, cfg, cache, job, data_root)`` is the module's
own "compute or read one job" function; each worker loads the model once per job from the profile.
Jobs whose every cache entry is already stored are read here against a ``ReadOnlyCache`` and never
reach a worker: a warm run starts no process (each would pay the imports, about 10 s).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Callable, Hashable, Sequence

import torch
from tqdm import tqdm

from lib import models
from lib.features import cache as feature_cache

Run = Callable[[models.ModelHandle, dict, feature_cache.FeatureCache, Hashable, "str | None"], object]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_one(run: Run, cfg: dict, job: Hashable, data_root: str | None, cache_root: str | None) -> str | None:
    try:
        handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
        run(handle, cfg, feature_cache.FeatureCache(cache_root), job, data_root)
        return None
    except Exception as err:  # noqa: BLE001 -- reported with the job that failed
        return f"{type(err).__name__}: {err}"


def still_to_run(run: Run, cfg: dict, jobs: Sequence[Hashable], data_root: str | None,
                 cache: feature_cache.FeatureCache | None = None) -> list[Hashable]:
    """The jobs of ``jobs`` that need computing: each is run here against a read-only view of the cache
    (nothing is trained or stored); one that misses an entry, or fails, is left for a worker, which
    computes it (or reports its error) as before."""
    probe = feature_cache.ReadOnlyCache(cache.root if cache is not None else None)
    handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
    todo = []
    for job in jobs:
        try:
            run(handle, cfg, probe, job, data_root)
        except Exception:  # noqa: BLE001 -- CacheMiss, or an error the worker will report with its job
            todo.append(job)
    return todo


def run_jobs(run: Run, cfg: dict, jobs: Sequence[Hashable], data_root: str | Path | None = None,
             workers: int = 1, cache: feature_cache.FeatureCache | None = None, what: str = "run(s)") -> None:
    """``run`` every distinct job, ``workers`` at a time in spawned processes with one torch thread
    each (1: here, in order). Failing jobs raise one RuntimeError naming each after the others finish."""
    jobs = list(dict.fromkeys(jobs))
    data_root = str(data_root) if data_root else None
    if workers <= 1 or len(jobs) <= 1:
        handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
        for job in tqdm(jobs, desc=what, disable=None):
            run(handle, cfg, cache or feature_cache.FeatureCache(), job, data_root)
        return
    jobs = still_to_run(run, cfg, jobs, data_root, cache)
    if not jobs:
        return
    failures = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                initargs=(1,)) as pool:
        root = str(cache.root) if cache is not None else None  # the workers store where the caller reads
        futures = {pool.submit(_run_one, run, cfg, job, data_root, root): job for job in jobs}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc=what, disable=None):
            error = future.result()
            if error:
                failures[futures[future]] = error
    if failures:
        lines = "\n".join(f"  {job}: {err}" for job, err in failures.items())
        raise RuntimeError(f"{len(failures)} {what} failed:\n{lines}")
