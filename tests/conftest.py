"""Shared test set-up: no network, figures written to a temporary folder, data-dependent skips."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import lib  # noqa: F401 -- pins the CPU kernels (lib.runtime.numerics) before any test or kernel computes

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
