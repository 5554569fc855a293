"""The full default main job (``python -m lib.regenerate``): peak resident memory and wall time.

Goals (issue 8, item 6): on 2 CPU cores, peak resident memory <= 4 GB and wall time <= 10 min.

The main job writes a record ``runs/main_job.json`` after every run::

    {"profile": str, "started": iso str, "wall_s": float,
     "peak_rss_mb": float (summed RSS of the process tree, sampled), "workers": int,
     "tasks": [{"task": str, "status": "ok" | "failed" | "skipped", "seconds": float}]}

By default this benchmark reports the last record (which run, when, and how many tasks it skipped: a
run that skipped tasks is not a full run). ``run_cold`` executes a cold run in a subprocess,
``python -m lib.regenerate --force --out <tmp>/out --runs <tmp>/runs`` with ``COMPANION_CACHE=<tmp>/cache``
(it pretrains the demo model and fills the feature cache from nothing), and reads
``<tmp>/runs/main_job.json``; that takes longer than the 10-minute budget of ``python -m benchmarks``,
so the runner does it only with ``--main-job``.

    python -m benchmarks.main_job [--run] [--record runs/main_job.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Goal, Row, fmt, seconds
from lib.runtime.locations import REPO_ROOT

RECORD = REPO_ROOT / "runs" / "main_job.json"
WALL_GOAL = Goal("<=", 10, " min")  # a cold run: empty cache, both demo models pretrained (issue 18)
WARM_WALL_GOAL = Goal("<=", 2, " min")  # a fresh clone on a warm cache (issue 18)
MEMORY_GOAL = Goal("<=", 4, " GB")
# what each notebook of the main job spends its time on (the notebooks' own content, not a measurement)
WORK = {"01": "crop-feature encoding for LaZSL and WCA", "02": "FAIR training runs",
        "03": "CDFSL fine-tuning episodes", "04": "t-SNE of adapted features"}
NOT_MEASURED = "not measured: run `python -m benchmarks --main-job`"


class RecordError(ValueError):
    """A main-job record that does not follow the schema; the message names the field."""


def check(record: dict) -> dict:
    """``record`` if it follows the schema above, else a RecordError naming the first bad field."""
    for key, kinds in (("profile", str), ("started", str), ("wall_s", (int, float)),
                       ("peak_rss_mb", (int, float)), ("workers", int), ("tasks", list)):
        if not isinstance(record.get(key), kinds):
            raise RecordError(f"main-job record: {key!r} is missing or not {kinds}")
    for i, task in enumerate(record["tasks"]):
        if not isinstance(task, dict) or not isinstance(task.get("task"), str) \
                or task.get("status") not in ("ok", "failed", "skipped") \
                or not isinstance(task.get("seconds"), (int, float)):
            raise RecordError(f"main-job record: tasks[{i}] must be {{task: str, status: ok|failed|skipped, "
                              f"seconds: float}}, got {task!r}")
    return record


def read(path: str | os.PathLike = RECORD) -> dict | None:
    """The record at ``path`` (checked), or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return check(json.loads(path.read_text()))


def run_cold(python: str = sys.executable, timeout_s: float | None = None, extra: list[str] | None = None) -> dict:
    """Run the main job cold in a subprocess (fresh cache, outputs in a temporary folder) and return
    its record, with the source, the return code and our own wall clock added."""
    with tempfile.TemporaryDirectory(prefix="benchmark-main-job-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "COMPANION_CACHE": str(tmp / "cache")}
        command = [python, "-m", "lib.regenerate", "--force", "--out", str(tmp / "out"), "--runs", str(tmp / "runs"),
                   *(extra or [])]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=timeout_s)
        outside = time.perf_counter() - start
        record = read(tmp / "runs" / "main_job.json")
    if record is None:
        raise RuntimeError(f"the main job (exit code {done.returncode}) wrote no record runs/main_job.json; "
                           f"command: {' '.join(command)}")
    return {**record, "source": "cold run by `python -m benchmarks --main-job` (fresh COMPANION_CACHE)",
            "returncode": done.returncode, "outside_wall_s": outside}


def _work(task: str) -> str:
    for prefix, what in WORK.items():
        if task.startswith(prefix) or f"/{prefix}" in task or f" {prefix}" in task:
            return what
    return ""


def rows(record: dict | None, item: str = "6", source: str | None = None) -> list[Row]:
    """Two rows (wall time, peak memory) from a record, or one 'not measured' row without one."""
    if record is None:
        return [Row(item, "main job (`python -m lib.regenerate`): wall time and peak RSS", None, None,
                    f"no record {RECORD.relative_to(REPO_ROOT)} (the main job writes one after every run)",
                    ratio_text=NOT_MEASURED, goal_text=f"{WALL_GOAL}; {MEMORY_GOAL}")]
    source = source or record.get("source") or f"the last main job's record ({RECORD.relative_to(REPO_ROOT)})"
    tasks = record["tasks"]
    skipped = [t for t in tasks if t["status"] == "skipped"]
    failed = [t for t in tasks if t["status"] == "failed"]
    full = "a full run" if not skipped and not failed else (
        f"NOT a full run: {len(skipped)} of {len(tasks)} tasks skipped, {len(failed)} failed")
    cache = f"; cache at the start: {record['cache']}" if record.get("cache") else ""
    where = (f"{source}, profile {record['profile']}, started {record['started']}, {record['workers']} worker(s); "
             f"{full}{cache}")
    ran = [t for t in tasks if t["status"] != "skipped"]
    longest = max(ran, key=lambda t: t["seconds"]) if ran else None
    per_task = ", ".join(f"{t['task']} {seconds(t['seconds'])}" + ("" if t["status"] == "ok" else f" ({t['status']})")
                         for t in tasks)
    wall_s = record.get("outside_wall_s", record["wall_s"])  # a cold run: the whole command, pretraining included
    wall_min = wall_s / 60
    wall_notes = f"{where}. Tasks: {per_task}"
    if "outside_wall_s" in record:
        wall_notes += (f". Wall clock of the whole command; the record's task phase took {seconds(record['wall_s'])}, "
                       f"the rest ({seconds(max(wall_s - record['wall_s'], 0.0))}) is start-up")
    if longest is not None:
        what = _work(longest["task"])
        wall_notes += (f". Dominant: {longest['task']} ({seconds(longest['seconds'])}, "
                       f"{longest['seconds'] / max(wall_s, 1e-9):.0%} of the wall time"
                       + (f": {what}" if what else "") + ")")
    warm = str(record.get("cache", "")).startswith("warm")
    goal = WARM_WALL_GOAL if warm else WALL_GOAL
    if goal.met(wall_min) is False:
        wall_notes = f"Missed by {fmt(wall_min / goal.value)}x (goal of a {'warm' if warm else 'cold'} run). " + wall_notes
    rss_gb = record["peak_rss_mb"] / 1024
    mem_notes = f"summed RSS of the job's process tree, sampled; {where}"
    return [Row(f"{item}a", "main job: wall time (minutes)", wall_min, goal, wall_notes, unit=" min",
                sides=[("main job wall time", float(wall_s))]),
            Row(f"{item}b", "main job: peak resident memory (GB)", rss_gb, MEMORY_GOAL, mem_notes, unit=" GB")]


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="run the main job cold first (longer than 10 minutes)")
    p.add_argument("--record", default=str(RECORD), help="the record to read (without --run)")
    args = p.parse_args(argv)
    record = run_cold() if args.run else read(args.record)
    for row in rows(record):
        print(f"{row.benchmark}: {row.shown_ratio()} (goal {row.shown_goal()}, met: {row.verdict()}) {row.notes}")
    return record


if __name__ == "__main__":
    main()
