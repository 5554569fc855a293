"""lib.report.outputs: one helper per output kind; deterministic, atomic, validated."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lib.report import outputs


def _figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [1, 0, 1])
    return fig


def test_same_figure_same_bytes_and_no_temporary_left(tmp_path):
    a = outputs.save_figure(_figure(), "nb", "line", root=tmp_path)
    first = a.read_bytes()
    b = outputs.save_figure(_figure(), "nb", "line", root=tmp_path)
    assert b == tmp_path / "nb" / "line.png" and b.read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == ["line.png"]


def test_table_and_headline(tmp_path):
    table = pd.DataFrame({"acc": [50.123456, 20.0]}, index=["a", "b"])
    path = outputs.save_table(table, "nb", "t", root=tmp_path)
    assert "50.12" in path.read_text() and "50.1234" not in path.read_text()
    head = outputs.save_headline({"b": 1.23456, "a": 2}, "nb", root=tmp_path)
    assert json.loads(head.read_text()) == {"a": 2.0, "b": 1.2346}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "12", True])
def test_headline_rejects_non_numbers(tmp_path, bad):
    with pytest.raises(ValueError, match="headline 'x' must be a finite number"):
        outputs.save_headline({"x": bad}, "nb", root=tmp_path)


def test_failed_save_keeps_the_previous_file(tmp_path):
    outputs.save_headline({"x": 1.0}, "nb", root=tmp_path)
    with pytest.raises(ValueError):
        outputs.save_headline({"x": float("nan")}, "nb", root=tmp_path)
    assert json.loads((tmp_path / "nb" / "headline.json").read_text()) == {"x": 1.0}


def test_bad_output_name_is_named(tmp_path):
    with pytest.raises(ValueError, match="output name '../x' must be a plain file name"):
        outputs.save_table(pd.DataFrame(), "nb", "../x", root=tmp_path)


def test_headline_keys_have_one_format():
    """``<table> | <row> | <dataset>``: method names hold "/", so the separator is " | "; NaN is left out."""
    values = pd.Series([1.234, float("nan"), 3.0], index=pd.MultiIndex.from_tuples(
        [("FAIR w/o LAS", "demo-colour"), ("FAIR", "demo-colour"), ("FAIR", "eurosat")]))
    out = outputs.headline_numbers(values, "table3", digits=1)
    assert out == {"table3 | FAIR w/o LAS | demo-colour": 1.2, "table3 | FAIR | eurosat": 3.0}
    assert outputs.headline_key("a", 5, "b") == "a | 5 | b"


def test_headline_numbers_of_real_datasets_go_to_their_own_file(tmp_path):
    """A run without DATA_ROOT writes the demo world's numbers and leaves the real datasets' file as the
    last run with DATA_ROOT left it (issue 16: the main command must not delete committed results)."""
    is_real = {"eurosat", "EuroSAT"}.__contains__
    save = outputs.Saver("nb", tmp_path, is_real=is_real)
    both = {"main | CLIP | demo-clean": 90.0, "main | CLIP | eurosat": 11.5, "localisation | LayerNorm | [CLS]": 0.5}
    paths = save.headline(both)
    assert [p.name for p in paths] == ["headline.json", "headline_real_datasets.json"]
    assert json.loads(paths[0].read_text()) == {"localisation | LayerNorm | [CLS]": 0.5, "main | CLIP | demo-clean": 90.0}
    assert json.loads(paths[1].read_text()) == {"main | CLIP | eurosat": 11.5}
    real_bytes = paths[1].read_bytes()
    again = save.headline({k: v for k, v in both.items() if "eurosat" not in k})  # a run without DATA_ROOT
    assert [p.name for p in again] == ["headline.json"] and paths[1].read_bytes() == real_bytes
    assert json.loads(paths[0].read_text()) == {"localisation | LayerNorm | [CLS]": 0.5, "main | CLIP | demo-clean": 90.0}
    only_real = outputs.Saver("paper", tmp_path, is_real=is_real).headline({"main | CLIP | EuroSAT": 40.0})
    assert [p.name for p in only_real] == ["headline_real_datasets.json"]  # a paper-profile run: no empty headline.json
    assert [p.name for p in outputs.Saver("plain", tmp_path).headline(both)] == ["headline.json"]


def test_tables_of_the_parts_world_stay_beside_the_demo_worlds(tmp_path):
    """The real-data file holds what ``is_real`` calls real, not every name without the demo prefix."""
    save = outputs.Saver("nb", tmp_path, is_real={"eurosat"}.__contains__)
    index = pd.MultiIndex.from_tuples([("demo-colour", "before"), ("parts-colour@colour=0.4", "before"),
                                       ("eurosat", "before")], names=["dataset", "state"])
    paths = save.table(pd.DataFrame({"accuracy": [1.0, 2.0, 3.0]}, index=index), "separation")
    assert [p.name for p in paths] == ["separation.csv", "separation_real_datasets.csv"]
    assert "parts-colour@colour=0.4" in paths[0].read_text() and "parts" not in paths[1].read_text()


def test_plus_minus_rounds_both_sides_alike():
    assert outputs.plus_minus(75.1666, 3.784) == "75.17 ± 3.78"
    assert outputs.plus_minus(93.11, 1.94, 1) == "93.1 ± 1.9"
    assert outputs.plus_minus(-0.026, 0.149) == "-0.03 ± 0.15"
