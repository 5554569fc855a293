"""lib.regenerate: papermill runs, atomic outputs, failures isolated and named."""
from __future__ import annotations

import nbformat
import pytest

from lib import regenerate


def _notebook(path, sources, tags=None):
    cells = [nbformat.v4.new_code_cell(src) for src in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nbs")
    good = _notebook(folder / "01_good.ipynb", ["x: int = 1", "print(x * 2)"])
    bad = _notebook(folder / "02_bad.ipynb", ["x: int = 1", "y = 3", "raise ValueError('bad input x')"])
    previous = folder / "out" / "02_bad.ipynb"
    previous.parent.mkdir()
    previous.write_text("previous good output")
    return {
        "good": regenerate.run_notebook(good, folder / "out" / "01_good.ipynb", {"x": 21}, folder),
        "bad": regenerate.run_notebook(bad, previous, {}, folder),
        "folder": folder,
    }


def test_good_notebook_runs_with_parameters_and_no_volatile_metadata(runs):
    assert runs["good"].status == "ok"
    nb = nbformat.read(runs["good"].output, as_version=4)
    assert "42" in nb.cells[-1].outputs[0]["text"]
    assert "papermill" not in nb.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in nb.cells)


def test_failure_names_the_cell_and_keeps_previous_output(runs):
    bad = runs["bad"]
    assert bad.status == "failed"
    assert "ValueError: bad input x" in bad.error and "cell" in bad.error
    assert (runs["folder"] / "out" / "02_bad.ipynb").read_text() == "previous good output"
    assert not list((runs["folder"] / "out").glob(".*tmp*"))


def test_summary_lists_every_task(runs):
    text = regenerate.summary([runs["good"], runs["bad"]])
    assert "| 01_good | ok |" in text and "| 02_bad | failed |" in text and "bad input x" in text


def test_only_filters_and_unknown_prefix_is_an_error(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", ["x = 1"])
    _notebook(tmp_path / "03_b.ipynb", ["x = 1"])
    assert [p.name for p in regenerate.notebooks(["03"], tmp_path)] == ["03_b.ipynb"]
    with pytest.raises(SystemExit, match="--only 09 matches no notebook"):
        regenerate.notebooks(["09"], tmp_path)
