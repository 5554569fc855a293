"""The benchmark runner (``python -m benchmarks``, issue 8) end to end in its ``--quick`` configuration.

Checks what the runner writes (every row of BENCHMARKS.md, the figures, finite positive ratios, the
main job's record read to the schema) and one correctness number: the batched Sinkhorn plans equal
the per-sample POT plans. Never a timing or a ratio goal: those vary with the machine and its load.
"""
from __future__ import annotations

import json
import math
import re
import time

import pytest
import torch

from benchmarks import __main__ as runner
from benchmarks import gpu, main_job, report

ITEMS = ["1", "2a", "2b", "3a", "3b", "3c", "3d", "3e", "3f", "4", "5a", "5b", "6", "7a", "7b", "7c", "8"]


def _table_rows(text: str) -> dict[str, list[str]]:
    """item -> cells of the Results table."""
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 6 and cells[0] not in ("#", "---"):
            rows[cells[0]] = cells
    return rows



@pytest.fixture(scope="module")
def quick(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("benchmarks")
    path = runner.main(["--quick", "--threads", "1", "--out", str(out), "--figures-root", str(out / "figures"),
                        "--main-job-record", str(out / "no-such-record.json")])
    return out, path.read_text()


def test_every_row_is_written(quick):
    out, text = quick
    assert (out / "BENCHMARKS.md").is_file()
    assert list(_table_rows(text)) == ITEMS
    for heading in ("## Results", "## Absolute medians", "## Scaling of LaZSL's scoring", "- machine:",
                    "- total runtime of the benchmarks:", "- command: `python -m benchmarks --quick --threads 1"):
        assert heading in text
    assert "Quick smoke configuration" in text


def test_ratios_are_finite_and_positive(quick):
    _, text = quick
    rows = _table_rows(text)
    measured = {item: cells[2] for item, cells in rows.items() if item not in ("6", "8")}
    for item, shown in measured.items():
        value = float(shown.rstrip("x").replace(",", ""))
        # 7a-c are log-log slopes, not ratios: a flat tiny grid may give a slope just below 0
        assert math.isfinite(value) and (value > 0 or item.startswith("7")), (item, shown)
        assert rows[item][4] in ("yes", "**no**", "—")


def test_figures_are_written(quick):
    out, _ = quick
    for name in ("ratios", "scaling", "zero_shot_methods"):
        png = out / "figures" / "benchmarks" / f"{name}.png"
        assert png.is_file() and png.stat().st_size > 1000, png


def test_batched_sinkhorn_equals_the_per_sample_loop(quick):
    _, text = quick
    notes = _table_rows(text)["1"][5]
    diff = float(re.search(r"max plan difference ([0-9.e+-]+)", notes).group(1))
    assert diff < 1e-5


def test_missing_main_job_record_says_how_to_measure_it(quick):
    _, text = quick
    assert "not measured: run `python -m benchmarks --main-job`" in _table_rows(text)["6"][2]


def test_main_job_record_rows(tmp_path):
    record = {"profile": "demo", "started": "2026-01-01T00:00:00", "wall_s": 900.0, "peak_rss_mb": 2048.0,
              "workers": 2, "tasks": [{"task": "01_zero_shot_tables", "status": "ok", "seconds": 100.0},
                                      {"task": "02_fair_ablations", "status": "ok", "seconds": 700.0},
                                      {"task": "03_cdfsl_attention_maps", "status": "skipped", "seconds": 0.0}]}
    path = tmp_path / "main_job.json"
    path.write_text(json.dumps(record))
    wall, memory = main_job.rows(main_job.read(path))
    assert wall.ratio == pytest.approx(15.0) and memory.ratio == pytest.approx(2.0)
    assert wall.met is False and memory.met is True  # the record's made-up numbers, not a measurement
    assert "02_fair_ablations" in wall.notes and "FAIR training runs" in wall.notes
    assert "NOT a full run: 1 of 3 tasks skipped" in wall.notes
    bad = dict(record, tasks=[{"task": "01", "status": "done", "seconds": 1.0}])
    path.write_text(json.dumps(bad))
    with pytest.raises(main_job.RecordError, match="tasks\\[0\\]"):
        main_job.read(path)
    assert main_job.read(tmp_path / "absent.json") is None


def test_repeats_below_five_are_refused():
    with pytest.raises(SystemExit):
        runner.parse(["--repeats", "3"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the path taken without a GPU")
def test_cuda_without_a_gpu_is_skipped_not_failed(tmp_path):
    assert runner.main(["--device", "cuda", "--out", str(tmp_path)]) is None
    assert not list(tmp_path.iterdir())


def test_gpu_items_run_at_smoke_scale_on_the_cpu(one_thread):
    r = gpu.run("cpu", repeats=5, quick=True)
    rows = gpu.rows(r)
    assert {row.item for row in rows} >= {"8.2", "8.3f", "8.5a", "8.5b"}
    assert all(math.isfinite(row.ratio) and row.ratio > 0 for row in rows)
    table = gpu.absolute_table(gpu.absolute(r))
    assert "70.0 ms" in table and "15.0 ms" in table and "no number in the text" in table  # the papers' figures
    assert report.table(rows).count("\n") == len(rows) + 1


def test_cold_main_job_runs_regenerate_and_reads_its_record(tmp_path):
    """``--main-job``'s subprocess on a one-cell notebook: the flags and the record are lib.regenerate's."""
    import nbformat

    cell = nbformat.v4.new_code_cell('x: int = 1  # a parameter\nfigures_root: str = ""  # outputs')
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("print(x + 1)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_tiny.ipynb")
    record = main_job.run_cold(extra=["--notebooks", str(tmp_path), "--workers", "1"])
    assert record["returncode"] == 0 and [t["task"] for t in record["tasks"]] == ["01_tiny"]
    wall, memory = main_job.rows(record)
    assert wall.ratio > 0 and memory.ratio > 0 and "cold run" in wall.notes


def test_the_gpu_check_runs_timings_and_the_paper_smoke_run(tmp_path, monkeypatch, one_thread):
    """``python -m benchmarks --device cuda`` at smoke scale on the CPU (``--paper-check``): the timings,
    then the paper-profile smoke run in what is left of the 10 minutes (stubbed here: the real one is
    tests/test_paper_profile.py), both in the report."""
    from benchmarks import paper_smoke
    from lib.jobs.tasks import TaskResult

    calls = []

    def fake_run(out, data_root, size, budget_s=None):
        calls.append((size, budget_s))
        return [TaskResult("01_zero_shot_tables", "ok", 12.0, str(out)),
                TaskResult("02_fair_ablations", "failed", 3.0, "", "cell 4 (names, skipped = ...): KeyError: 'x'")]

    monkeypatch.setattr(paper_smoke, "run", fake_run)
    path = runner.main(["--device", "cpu", "--paper-check", "--quick", "--out", str(tmp_path)])
    text = path.read_text()
    assert path.name == "BENCHMARKS-cpu-check.md" and "## Ratios" in text and "## Paper-profile smoke run" in text
    assert "1 of 2 notebooks ran without error" in text and "| 02_fair_ablations | failed | 3 | — | cell 4" in text
    assert calls[0][0] == "cpu" and 0 < calls[0][1] < runner.GPU_BUDGET_S - runner.SMOKE_MARGIN_S


def test_the_smoke_run_without_data_says_it_was_not_run(tmp_path, monkeypatch):
    from benchmarks import paper_smoke

    monkeypatch.delenv("DATA_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="needs the EuroSAT subset and the descriptor files under DATA_ROOT"):
        paper_smoke.run(tmp_path, None, "cpu")
    args = runner.parse(["--device", "cpu", "--paper-check", "--smoke-out", str(tmp_path)])
    assert "Not run: the paper smoke run needs" in runner.smoke_section(args, time.perf_counter())


def test_a_warm_main_job_is_held_to_the_warm_goal(tmp_path):
    record = {"profile": "demo", "started": "s", "wall_s": 150.0, "peak_rss_mb": 900.0, "workers": 1,
              "cache": "warm: 10 cached feature/run files", "tasks": [{"task": "01", "status": "ok", "seconds": 150.0}]}
    wall, _ = main_job.rows(record)
    assert wall.goal is main_job.WARM_WALL_GOAL and wall.met is False and "warm run" in wall.notes
    cold, _ = main_job.rows({**record, "cache": "cold"})
    assert cold.goal is main_job.WALL_GOAL and cold.met is True
