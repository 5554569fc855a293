"""The run's summary table and record (``runs/main_job.json``, read by ``python -m benchmarks``)."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from lib.jobs.tasks import TaskResult
from lib.runtime import locations
from lib.runtime.locations import atomic_write


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
