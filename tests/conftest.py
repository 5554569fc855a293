"""Shared test set-up: no network, figures written to a temporary folder, data-dependent skips."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

import lib  # noqa: F401 -- pins the CPU kernels (lib.runtime.numerics) before any test or kernel computes
import torch
from lib.runtime import numerics
from nbval_machine import other_machine

# What the tests compute (and may store in the feature cache for the notebooks to read) uses the thread
# count of the committed outputs' kernels, whatever the machine's core count.
torch.set_num_threads(numerics.CPU_THREADS)

# Nothing reaches a hub at test time: open_clip and huggingface_hub honour these.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Notebooks executed by nbval save figures here instead of over the committed ones.
os.environ.setdefault("COMPANION_FIGURES", tempfile.mkdtemp(prefix="companion-figures-"))


@pytest.fixture
def eurosat_root() -> Path:
    """DATA_ROOT holding the EuroSAT subset (CoOp layout); skip with a reason when absent."""
    root = os.environ.get("DATA_ROOT")
    if not root:
        pytest.skip("DATA_ROOT is not set: EuroSAT tests need the subset in ../shared/data (CI sets it)")
    if not (Path(root) / "eurosat" / "split_zhou_EuroSAT.json").is_file():
        pytest.skip(f"DATA_ROOT={root} has no eurosat/split_zhou_EuroSAT.json")
    return Path(root)


# The committed notebooks were executed with DATA_ROOT (the EuroSAT subset): without it, the cells whose
# stored outputs show a real dataset print other text. nbval still executes them (an exception fails),
# but compares their outputs only where DATA_ROOT is set, as every other data-dependent test does.
REAL_DATASET_NAMES = re.compile(r"eurosat", re.IGNORECASE)  # the real datasets the committed runs hold


def _stored_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


_NOT_COMPARED: dict[str, str] = {}  # notebook -> why nbval does not compare its outputs here


def pytest_collection_modifyitems(config, items):
    for item in items:
        cell, options = getattr(item, "cell", None), getattr(item, "options", None)
        if cell is None or options is None:
            continue
        why = other_machine(item.path)
        if why:
            _NOT_COMPARED[item.path.name] = why
            options["check"] = False
            item.user_properties.append(("output not compared", why))
        elif not os.environ.get("DATA_ROOT") and REAL_DATASET_NAMES.search(_stored_text(cell)):
            options["check"] = False
            item.user_properties.append(("output not compared", "DATA_ROOT is not set; the stored output shows a real dataset"))


def pytest_terminal_summary(terminalreporter):
    if _NOT_COMPARED:
        terminalreporter.write_line(f"nbval executed but did not compare the outputs of {len(_NOT_COMPARED)} "
                                    f"notebook(s) computed elsewhere: {next(iter(_NOT_COMPARED.values()))}")
