"""lib.regenerate and lib.jobs: papermill tasks on Dask, atomic outputs, failures isolated and named,
resume after a kill, parameter checks, grids gathered into one table.

Fixture notebooks (a few lines each) stand in for the real ones, so these tests take seconds; the
real notebooks run in tests/test_notebook_outputs.py and under nbval.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lib.jobs import grid as grids
from lib.jobs.cluster import dask_client, execute
from lib.jobs.record import summary
from lib.jobs.resume import input_key, remove_stale_temporaries, split_hash
from lib.jobs.tasks import ParameterError, Task, check_parameters, declared_parameters, notebooks, run_notebook
from lib.runtime import machine
from lib.runtime.locations import REPO_ROOT

PARAMS = 'x: int = 1\nfigures_root: str = ""'


def _notebook(path, sources):
    cells = [nbformat.v4.new_code_cell(src) for src in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _cli(*args, env=None, **kwargs):
    """``python -m lib.regenerate`` in a subprocess (it installs a SIGTERM handler and owns a cluster)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lib.regenerate", *map(str, args)], cwd=REPO_ROOT,
                          env=full_env, capture_output=True, text=True, timeout=300, **kwargs)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nbs")
    good = _notebook(folder / "01_good.ipynb", ["x: int = 1", "print(x * 2)"])
    bad = _notebook(folder / "02_bad.ipynb", ["x: int = 1", "y = 3", "raise ValueError('bad input x')"])
    previous = folder / "out" / "02_bad.ipynb"
    previous.parent.mkdir()
    previous.write_text("previous good output")
    return {
        "good": run_notebook(good, folder / "out" / "01_good.ipynb", {"x": 21}, folder),
        "bad": run_notebook(bad, previous, {}, folder, folder / "failed"),
        "folder": folder,
    }


def test_good_notebook_runs_with_parameters_and_no_volatile_metadata(runs):
    assert runs["good"].status == "ok"
    nb = nbformat.read(runs["good"].output, as_version=4)
    assert "42" in nb.cells[-1].outputs[0]["text"]
    assert "papermill" not in nb.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in nb.cells)


def test_executed_notebook_records_the_machine_and_nbval_compares_only_there(runs, tmp_path):
    """The machine stamp is what tests/nbval_machine.py reads to decide whether nbval compares stored outputs."""
    import nbval_machine

    nb = nbformat.read(runs["good"].output, as_version=4)
    assert nb.metadata["companion"]["machine"] == machine.fingerprint()
    assert nbval_machine.other_machine(runs["good"].output) is None
    other = {**machine.fingerprint(), "cpu": {"model name": "another processor"}}
    nb.metadata["companion"]["machine"] = other
    nbformat.write(nb, tmp_path / "elsewhere.ipynb")
    assert "another processor" in nbval_machine.other_machine(tmp_path / "elsewhere.ipynb")
    del nb.metadata["companion"]
    nbformat.write(nb, tmp_path / "unstamped.ipynb")
    assert "records no machine" in nbval_machine.other_machine(tmp_path / "unstamped.ipynb")


def test_failure_names_the_cell_and_keeps_previous_output(runs):
    bad = runs["bad"]
    assert bad.status == "failed"
    assert "02_bad.ipynb cell 2 (`raise ValueError('bad input x')`)" in bad.error and "ValueError: bad input x" in bad.error
    assert (runs["folder"] / "out" / "02_bad.ipynb").read_text() == "previous good output"
    assert (runs["folder"] / "failed" / "02_bad.ipynb").is_file()  # kept for inspection
    assert not _temporaries(runs["folder"] / "out")


def test_summary_lists_every_task(runs):
    text = summary([runs["good"], runs["bad"]])
    assert "| 01_good | ok |" in text and "| 02_bad | failed |" in text and "bad input x" in text


def test_only_filters_and_unknown_prefix_is_an_error(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", ["x = 1"])
    _notebook(tmp_path / "03_b.ipynb", ["x = 1"])
    assert [p.name for p in notebooks(["03"], tmp_path)] == ["03_b.ipynb"]
    with pytest.raises(SystemExit, match="--only 09 matches no notebook"):
        notebooks(["09"], tmp_path)


# ---------------------------------------------------------------- Dask

def test_local_cluster_with_two_workers_runs_two_notebooks_in_parallel(tmp_path):
    """Each notebook announces itself, then waits for the other: run one after the other, the first
    would time out and fail. Two different worker processes run them."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    wait = (f"import os, time\nfrom pathlib import Path\nbarrier = Path({str(barrier)!r})\n"
            "(barrier / me).write_text(str(os.getpid()))\n"
            "deadline = time.time() + 90\n"
            "while not (barrier / other).exists():\n"
            "    assert time.time() < deadline, 'the other notebook never started: not run in parallel'\n"
            "    time.sleep(0.1)\n")
    tasks = []
    for me, other in (("01_left", "02_right"), ("02_right", "01_left")):
        path = _notebook(tmp_path / f"{me}.ipynb", [PARAMS, f"me, other = {me!r}, {other!r}", wait])
        tasks.append(Task(me, path, tmp_path / "out" / path.name))
    results = execute(tasks, workers=2, runs_dir=tmp_path / "runs")
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    pids = {(barrier / name).read_text() for name in ("01_left", "02_right")}
    assert len(pids) == 2  # two kernels at once


def test_failing_task_leaves_the_others_and_the_summary_names_the_cell(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    out.mkdir()
    _notebook(nbs / "01_first.ipynb", [PARAMS, "print('first', x)"])
    _notebook(nbs / "02_raises.ipynb", [PARAMS, "y = x + 1", "raise RuntimeError(f'broken at y={y}')"])
    _notebook(nbs / "03_last.ipynb", [PARAMS, "print('last', x)"])
    (out / "02_raises.ipynb").write_text("the previous good run")
    proc = _cli("--notebooks", nbs, "--out", out, "--runs", tmp_path / "runs", "--workers", 2)
    assert proc.returncode == 1, proc.stderr
    assert "| 01_first | ok |" in proc.stdout and "| 03_last | ok |" in proc.stdout
    assert "| 02_raises | failed |" in proc.stdout
    assert "02_raises.ipynb cell 2 (`raise RuntimeError(f'broken at y={y}')`): RuntimeError: broken at y=2" \
        in proc.stdout
    assert (out / "01_first.ipynb").is_file() and (out / "03_last.ipynb").is_file()
    assert (out / "02_raises.ipynb").read_text() == "the previous good run"
    assert not _temporaries(out)
    record = json.loads((tmp_path / "runs" / "main_job.json").read_text())
    assert [t["status"] for t in record["tasks"]] == ["ok", "failed", "ok"] and record["peak_rss_mb"] > 0


def test_killed_run_resumes_skipping_finished_tasks_without_partial_files(tmp_path):
    nbs, out, runs = tmp_path / "nbs", tmp_path / "out", tmp_path / "runs"
    nbs.mkdir()
    hold = tmp_path / "hold"
    hold.write_text("the slow notebook waits while this file exists")
    _notebook(nbs / "01_fast.ipynb", [PARAMS, "print('fast', x)"])
    _notebook(nbs / "02_slow.ipynb", [PARAMS, "import time\nfrom pathlib import Path\n"
              f"hold = Path({str(hold)!r})\ndeadline = time.time() + 240\n"
              "while hold.exists() and time.time() < deadline:\n    time.sleep(0.2)\nprint('slow done')"])
    args = ["--notebooks", nbs, "--out", out, "--runs", runs, "--workers", 1]
    proc = subprocess.Popen([sys.executable, "-m", "lib.regenerate", *map(str, args)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list((runs / "state").glob("01_fast-*.json")) or not list(out.glob(".02_slow*")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "01_fast never finished"
        time.sleep(0.2)
    fast_bytes = (out / "01_fast.ipynb").read_bytes()
    fast_mtime = (out / "01_fast.ipynb").stat().st_mtime_ns
    proc.send_signal(signal.SIGTERM)  # mid-way: 02_slow is running
    proc.communicate(timeout=120)
    assert not (out / "02_slow.ipynb").exists()  # no half-written notebook where the output goes

    hold.unlink()
    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "| 01_fast | skipped |" in rerun.stdout and "| 02_slow | ok |" in rerun.stdout
    assert (out / "01_fast.ipynb").read_bytes() == fast_bytes
    assert (out / "01_fast.ipynb").stat().st_mtime_ns == fast_mtime
    assert "slow done" in (out / "02_slow.ipynb").read_text()
    assert not _temporaries(out)

    forced = _cli(*args, "--force", "--only", "01")
    assert forced.returncode == 0 and "| 01_fast | ok |" in forced.stdout


def test_resume_key_follows_code_parameters_lib_and_splits_not_outputs(tmp_path):
    path = _notebook(tmp_path / "01_a.ipynb", [PARAMS, "print(x)"])
    task = Task("01_a", path, tmp_path / "out.ipynb", {"x": 1})
    base = input_key(task, "lib1", "splits1")
    assert input_key(Task("01_a", path, task.output, {"x": 2}), "lib1", "splits1") != base
    assert input_key(task, "lib2", "splits1") != base
    assert input_key(task, "lib1", "splits2") != base
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]  # a run's outputs: same key
    nbformat.write(nb, path)
    assert input_key(task, "lib1", "splits1") == base
    nb.cells[1].source = "print(x + 1)"  # its code: another key
    nbformat.write(nb, path)
    assert input_key(task, "lib1", "splits1") != base


def test_split_hash_reads_split_files_only(tmp_path):
    (tmp_path / "eurosat" / "2750" / "Forest").mkdir(parents=True)
    split = tmp_path / "eurosat" / "split_zhou_EuroSAT.json"
    split.write_text('{"train": []}')
    image = tmp_path / "eurosat" / "2750" / "Forest" / "Forest_1.jpg"
    image.write_bytes(b"jpeg")
    first = split_hash(tmp_path)
    image.write_bytes(b"another jpeg")
    assert split_hash(tmp_path) == first
    split.write_text('{"train": [["Forest/Forest_1.jpg", 0, "Forest"]]}')
    assert split_hash(tmp_path) != first
    assert split_hash(None) == split_hash(tmp_path / "missing") == "none"


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".table.csv.{dead}.tmp"
    stale.write_text("half")
    live = tmp_path / f".table.csv.{os.getpid()}.tmp"  # a writer still running: left alone
    live.write_text("being written")
    assert remove_stale_temporaries([tmp_path]) == [stale]
    assert live.exists() and not stale.exists()


# ---------------------------------------------------------------- parameters

def test_wrong_parameter_type_names_notebook_and_parameter_and_runs_nothing(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    out.mkdir()
    _notebook(nbs / "01_a.ipynb", [PARAMS, "print(x)"])
    (out / "01_a.ipynb").write_text("earlier output")
    params = tmp_path / "params.yaml"
    params.write_text("x: three\n")
    proc = _cli("--notebooks", nbs, "--out", out, "--runs", tmp_path / "runs", "-f", params)
    assert proc.returncode == 2
    assert "notebook 01_a.ipynb: parameter 'x' must be int (its parameters cell), got str 'three'" in proc.stderr
    assert (out / "01_a.ipynb").read_text() == "earlier output"

    params.write_text("y: 3\n")
    proc = _cli("--notebooks", nbs, "--out", out, "--runs", tmp_path / "runs", "-f", params)
    assert proc.returncode == 2 and "parameter 'y' is not a parameter of any notebook" in proc.stderr


def test_check_parameters_accepts_ints_for_floats_but_not_bools_for_ints(tmp_path):
    path = _notebook(tmp_path / "01_a.ipynb", ["x: int = 1\nalpha: float = 0.5\nnames: list = []", "1"])
    declared = {path.name: declared_parameters(path)}
    check_parameters(declared, {"x": 2, "alpha": 1, "names": ["a"]})
    with pytest.raises(ParameterError, match="parameter 'x' must be int.*got bool True"):
        check_parameters(declared, {"x": True})
    with pytest.raises(ParameterError, match="parameter 'names' must be list.*got str"):
        check_parameters(declared, {"names": "a"})


def test_real_notebooks_declare_their_parameters():
    """The notebooks' parameters cells parse (papermill's own parser trips on some comments)."""
    for path in notebooks():
        declared = declared_parameters(path)
        assert {"profile", "model", "pretrained", "seed", "figures_root"} <= set(declared), path.name
        assert {"datasets", "targets"} & set(declared), path.name


def test_slurm_without_dask_jobqueue_says_what_to_install():
    pytest.importorskip("distributed")
    try:
        import dask_jobqueue  # noqa: F401
        pytest.skip("dask-jobqueue is installed here")
    except ImportError:
        pass
    with pytest.raises(SystemExit, match="pip install dask-jobqueue"):
        with dask_client("slurm", 1):
            pass


# ---------------------------------------------------------------- grids

HEADLINE = ('from lib.report import outputs\n'
            'outputs.save_headline({f"score/{datasets[0]}": 10 * seed + len(datasets[0])}, "01_scores", figures_root)')


def test_grid_runs_every_cell_and_gathers_one_table(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "01_scores.ipynb", ['profile: str = "demo"\nseed: int = 0\ndatasets: list = []\n'
                                        'figures_root: str = ""', HEADLINE])
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: toy\ndatasets: [ab, abcd]\nseeds: [1, 2]\n")
    out = tmp_path / "grid"
    proc = _cli("--notebooks", nbs, "--grid", spec, "--out", out, "--runs", tmp_path / "runs", "--workers", 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("| ok |") == 4
    import pandas as pd
    table = pd.read_csv(out / "results.csv")
    got = {(r.dataset, r.seed): r.value for r in table.itertuples()}
    assert got == {("ab", 1): 12, ("ab", 2): 22, ("abcd", 1): 14, ("abcd", 2): 24}
    md = (out / "results.md").read_text()
    assert "score/ab" in md and "17.00 ± 7.07 (n=2)" in md  # mean and std over the two seeds
    assert (out / "ab_seed1" / "01_scores.ipynb").is_file()


@pytest.mark.parametrize("text,message", [
    ("datasets: eurosat\n", "'datasets' must be a non-empty list"),
    ("backbones: [ViT-B-32]\n", "backbones[0] must be a mapping with a 'model'"),
    ("seeds: [1, two]\n", "seeds must be integers, got 'two'"),
    ("dataset: [eurosat]\n", "unknown entry ['dataset']"),
])
def test_bad_grid_files_name_the_entry(tmp_path, text, message):
    spec = tmp_path / "grid.yaml"
    spec.write_text(text)
    with pytest.raises(grids.GridError) as err:
        grids.load(spec)
    assert str(spec) in str(err.value) and message in str(err.value)


def test_grid_cells_put_datasets_where_each_notebook_takes_them(tmp_path):
    a = _notebook(tmp_path / "01_a.ipynb", ['profile: str = "demo"\ndatasets: list = []\nseed: int = 0', "1"])
    b = _notebook(tmp_path / "03_b.ipynb", ['profile: str = "demo"\ntargets: list = []\nmodel: str = ""\n'
                                            'pretrained: str = ""', "1"])
    grid = grids.Grid("g", "demo", datasets=["eurosat"], backbones=[{"model": "ViT-B-32", "pretrained": "openai"}])
    ta, tb = grids.tasks(grid, [a, b], tmp_path / "out")
    assert ta.parameters["datasets"] == ["eurosat"] and tb.parameters["targets"] == ["eurosat"]
    assert tb.parameters["model"] == "ViT-B-32" and ta.name == "01_a[eurosat_ViT-B-32-openai]"


@pytest.mark.parametrize("data_root", ["", "set"])
def test_default_run_without_data_root_leaves_the_committed_notebooks(tmp_path, data_root):
    """The committed notebooks hold the cells of a run with DATA_ROOT: a default run without it writes its
    notebooks under runs/demo-without-data/ (git status stays clean); with it, they are replaced in place."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    committed = _notebook(folder / "01_data.ipynb", [PARAMS, "print('executed')"])
    before = committed.read_bytes()
    root = str(tmp_path) if data_root else ""
    result = _cli("--notebooks", folder, "--runs", tmp_path / "runs", env={"DATA_ROOT": root})
    assert result.returncode == 0, result.stderr
    moved = tmp_path / "runs" / "demo-without-data" / "01_data.ipynb"
    if data_root:
        assert committed.read_bytes() != before and "executed" in committed.read_text() and not moved.exists()
    else:
        assert committed.read_bytes() == before and "executed" in moved.read_text()
        assert "DATA_ROOT is not set: the committed notebooks" in result.stderr


def test_the_demo_model_child_runs_once_per_lib_version(monkeypatch, tmp_path):
    from lib import regenerate

    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    calls = []

    def child(argv, **kwargs):
        calls.append(argv)
        (tmp_path / "demo-model").mkdir(exist_ok=True)
        (tmp_path / "demo-model" / "abc.pt").write_bytes(b"weights")
        return subprocess.CompletedProcess(argv, 0, stdout="abc.pt\n")

    monkeypatch.setattr(regenerate.subprocess, "run", child)
    regenerate.ensure_demo_model()
    assert len(calls) == 1 and "demo_checkpoint" in calls[0][-1]
    notes = list((tmp_path / "demo-model").glob("lib-*.checked"))
    assert len(notes) == 1 and notes[0].read_text() == "abc.pt"
    regenerate.ensure_demo_model()  # the same sources: the note names an existing checkpoint
    assert len(calls) == 1
    (tmp_path / "demo-model" / "abc.pt").unlink()  # the checkpoint gone: the child looks (and trains) again
    regenerate.ensure_demo_model()
    assert len(calls) == 2
