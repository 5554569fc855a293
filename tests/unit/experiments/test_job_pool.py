"""lib.experiments.job_pool: jobs run in spawned workers; a failing job is named after the others finish."""
from __future__ import annotations

import pytest

from lib.experiments import job_pool
from lib.runtime import profiles


def record(handle, cfg, cache, job, data_root):
    """A job that writes its name into a folder (the job is (folder, name)), or fails on request."""
    folder, name = job
    if name.startswith("bad"):
        raise ValueError(f"job {name} was asked to fail")
    (folder / name).write_text(handle.name)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_job_runs_once(tmp_path, workers):
    cfg = {**profiles.load("demo"), "pretrained": None}  # random weights: nothing to pretrain
    jobs = [(tmp_path, "a"), (tmp_path, "b"), (tmp_path, "a")]
    job_pool.run_jobs(record, cfg, jobs, workers=workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_a_failing_job_is_named_and_the_others_finish(tmp_path):
    cfg = {**profiles.load("demo"), "pretrained": None}  # random weights: nothing to pretrain
    jobs = [(tmp_path, "bad-one"), (tmp_path, "good")]
    with pytest.raises(RuntimeError, match=r"1 test job\(s\) failed:\n.*bad-one.*asked to fail"):
        job_pool.run_jobs(record, cfg, jobs, workers=2, what="test job(s)")
    assert (tmp_path / "good").read_text() == cfg["model"]


def cached_pid(handle, cfg, cache, job, data_root):
    """A job whose result (the id of the process that computed it) lives in the feature cache."""
    import os

    import torch

    cache.get_or_compute({"kind": "job-pool-test", "job": job}, lambda: torch.tensor([os.getpid()]))


def test_jobs_already_cached_start_no_worker(tmp_path, monkeypatch):
    import os

    from lib.features.cache import FeatureCache

    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))  # the workers' default cache root too
    cfg = {**profiles.load("demo"), "pretrained": None}
    cache = FeatureCache()
    job_pool.run_jobs(cached_pid, cfg, ["a", "b"], workers=2, cache=cache)
    pids = {j: int(cache.get_or_compute({"kind": "job-pool-test", "job": j}, lambda: None)) for j in "ab"}
    assert os.getpid() not in pids.values()  # computed in the workers
    assert job_pool.still_to_run(cached_pid, cfg, ["a", "b", "c"], None, cache) == ["c"]

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for jobs that are all cached")

    monkeypatch.setattr(job_pool.concurrent.futures, "ProcessPoolExecutor", no_pool)
    job_pool.run_jobs(cached_pid, cfg, ["a", "b"], workers=2, cache=cache)


def test_workers_store_in_the_callers_cache(tmp_path, monkeypatch):
    """A cache rooted elsewhere than the default: the workers' entries land there, so the caller reads them."""
    import os

    from lib.features.cache import FeatureCache

    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "default"))
    cfg = {**profiles.load("demo"), "pretrained": None}
    cache = FeatureCache(tmp_path / "elsewhere")
    job_pool.run_jobs(cached_pid, cfg, ["a", "b"], workers=2, cache=cache)
    assert job_pool.still_to_run(cached_pid, cfg, ["a", "b"], None, cache) == []
    assert not (tmp_path / "default").exists()
    pid = int(cache.get_or_compute({"kind": "job-pool-test", "job": "a"}, lambda: None))
    assert pid != os.getpid()
