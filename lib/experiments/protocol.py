"""What the table experiments share: a profile block, the datasets that open, cached jobs run in bulk.

FAIR's ablations (``fair_ablations``) and the few-shot episodes (``cdfsl_episodes``) follow one
protocol, written once here as ``Experiment``:

* ``block(cfg)``: the profile's settings block of the experiment (``fair`` or ``cdfsl``), or an error
  naming the profile when it has none;
* ``available(cfg, names, data_root)``: the datasets of ``names`` that open, and why the others do not;
* ``prefetch(cfg, jobs, ...)``: every job not yet cached, trained ``workers`` at a time in spawned
  processes (``lib.experiments.job_pool``), then read back by the tables in their own order.

A job is a frozen dataclass (``FairJob``, ``EpisodeJob``) naming a dataset, a named row and its seed;
``Experiment.run`` computes or reads one. ``config_from`` builds a method's config dataclass from a
profile block, naming unknown keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence

from lib.data import available as datasets_available
from lib.experiments import job_pool
from lib.runtime import profiles


@dataclass(frozen=True)
class Experiment:
    """One table experiment: its profile block, what its jobs are called, and how one job is run
    (``run(handle, cfg, cache, job, data_root)``, cached by content)."""

    block_name: str  # the profile key: "fair" or "cdfsl"
    title: str  # "FAIR" or "CDFSL", in messages
    jobs: str  # what a job is called in the progress bar and errors: "FAIR run(s)", "CDFSL job(s)"
    run: Callable

    def block(self, cfg: dict) -> dict:
        """The profile's settings block of this experiment."""
        if self.block_name not in cfg:
            raise KeyError(f"profile {cfg.get('profile')!r} has no {self.block_name!r} block: "
                           f"the {self.title} settings live there")
        return cfg[self.block_name]

    def available(self, cfg: dict, names: Sequence[str], data_root: str | Path | None = None
                  ) -> tuple[list[str], dict]:
        """(the datasets of ``names`` that can be opened, {name: why not} for the others)."""
        return datasets_available(names, data_root, cfg["seed"])

    def prefetch(self, cfg: dict, jobs: Sequence[Hashable], data_root: str | Path | None = None,
                 workers: int | None = None, cache=None) -> None:
        """Run every job, ``workers`` at a time in spawned processes with one torch thread each (the
        block's ``workers``; 1 runs them here). Failing jobs raise one RuntimeError naming them after
        the others finish."""
        workers = workers if workers is not None else self.block(cfg).get("workers", 1)
        job_pool.run_jobs(self.run, cfg, jobs, data_root, workers, cache, self.jobs)


def config_from(cls, settings: dict, what: str):
    """A method's config dataclass ``cls`` from profile settings (unknown keys named, lists to tuples)."""
    return profiles.dataclass_from_settings(cls, settings, what)
