"""Regenerated notebook outputs equal the committed ones: figures (image comparison), tables, headlines.

Each notebook runs once per session with papermill into ``$COMPANION_FIGURES`` (a temporary folder,
see conftest.py); its outputs are compared with the committed ``figures/<notebook>/`` files as of git
``HEAD`` (the working tree when git is not available), so a fresh checkout proves that the committed
numbers and figures come from the committed code. Outputs that need ``DATA_ROOT`` skip without it.
That comparison holds on the processor and torch build that computed the committed outputs
(``figures/machine.json``, ``lib.runtime.machine``); on another it is skipped with both fingerprints,
and the two-runs test below (this machine against itself) and nbval still run.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import papermill
import pytest
from matplotlib.testing.compare import compare_images

from lib.runtime import machine
from lib.runtime.locations import NOTEBOOKS_DIR, REPO_ROOT

NOTEBOOKS = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9]*.ipynb"))
HEADLINE_ABS_TOL = 0.5  # accuracy points: other CPUs may round a few images differently
IMAGE_TOL = 2.0  # matplotlib RMS tolerance


def _committed(rel: str) -> bytes | None:
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"HEAD:{rel}"], check=True,
                              capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        path = REPO_ROOT / rel
        return path.read_bytes() if path.is_file() else None


def _committed_names(notebook: str) -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-tree", "--name-only", f"HEAD:figures/{notebook}"],
                             check=True, capture_output=True, text=True).stdout
        return sorted(out.split())
    except (OSError, subprocess.CalledProcessError):
        folder = REPO_ROOT / "figures" / notebook
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory):
    root = Path(os.environ["COMPANION_FIGURES"])
    done = {}

    def run(notebook: str) -> Path:
        if notebook not in done:
            out = tmp_path_factory.mktemp("executed") / f"{notebook}.ipynb"
            papermill.execute_notebook(str(NOTEBOOKS_DIR / f"{notebook}.ipynb"), str(out),
                                       parameters={"figures_root": str(root)}, kernel_name="python3",
                                       cwd=str(NOTEBOOKS_DIR), progress_bar=False)
            done[notebook] = root / notebook
        return done[notebook]

    return run


def _cases():
    for nb in NOTEBOOKS:
        for name in _committed_names(nb):
            yield pytest.param(nb, name, id=f"{nb}/{name}")


@pytest.fixture(scope="module")
def other_machine() -> str | None:
    """Why this machine cannot reproduce the committed outputs' last bits (None: it can), read once."""
    text = _committed(f"figures/{machine.FILE}")
    return machine.same_numerics(json.loads(text) if text else None)


@pytest.mark.parametrize("notebook,name", list(_cases()))
def test_output_matches_committed(regenerated, other_machine, notebook, name, tmp_path):
    """On the processor and torch build the committed outputs were computed with (``figures/machine.json``);
    on another, seeded training ends in other weights (``lib.runtime.machine``) and the test says so."""
    if other_machine:
        pytest.skip(other_machine)
    folder = regenerated(notebook)
    fresh = folder / name
    if not fresh.exists():
        if not os.environ.get("DATA_ROOT"):
            pytest.skip(f"{notebook}/{name} needs DATA_ROOT (real-data output)")
        pytest.fail(f"the notebook no longer writes {notebook}/{name}")
    committed = tmp_path / f"committed_{name}"
    committed.write_bytes(_committed(f"figures/{notebook}/{name}"))
    if name.endswith(".png"):
        assert compare_images(str(committed), str(fresh), tol=IMAGE_TOL) is None
    elif name.endswith(".csv"):
        pd.testing.assert_frame_equal(pd.read_csv(fresh), pd.read_csv(committed), check_exact=False, atol=0.05)
    elif name in ("headline.json", "headline_real_datasets.json"):  # lib.report.outputs.Saver.headline
        new, old = json.loads(fresh.read_text()), json.loads(committed.read_text())
        for key, value in old.items():
            if key not in new and not os.environ.get("DATA_ROOT"):
                continue  # a real-data number; checked where DATA_ROOT is set
            assert new[key] == pytest.approx(value, abs=HEADLINE_ABS_TOL), key


@pytest.mark.parametrize("notebook,name", [c for c in _cases() if not c.values[1].endswith(".png")])
def test_two_default_runs_give_identical_tables(regenerated, notebook, name):
    """Byte for byte, this session's tables and headline numbers equal those of the last main job in
    this checkout (``figures/``, which ``.ci/run`` has just regenerated on this machine): seeded crops,
    splits and training, and rounded csvs, leave nothing to chance."""
    fresh, last = regenerated(notebook) / name, REPO_ROOT / "figures" / notebook / name
    if not fresh.exists() or not last.exists():
        pytest.skip(f"{notebook}/{name} is a real-data output and DATA_ROOT is not set")
    assert fresh.read_bytes() == last.read_bytes(), f"{notebook}/{name} differs between two default runs"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_output_is_committed(regenerated, notebook):
    written = sorted(p.name for p in regenerated(notebook).iterdir())
    missing = set(written) - set(_committed_names(notebook))
    assert not missing, f"{notebook} writes outputs that are not committed: {sorted(missing)}"
