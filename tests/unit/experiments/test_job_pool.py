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
