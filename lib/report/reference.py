"""The papers' published numbers, as data: anchors shown beside ours in the ``paper`` profile only.

``lib/report/reference/fair.csv`` holds FAIR's ablations (FAIR, Tables 3-10; ViT-B/32):
``table3`` (components, with zero-shot CLIP), ``table4`` (inductive vs transductive, FAIR's rows),
``table5`` (pseudo-label weight, six-dataset average only), ``table7`` (pseudo-labellers) and
``table10`` (LN vs LoRA vs K-Adaptation). Row names follow ``lib.experiments.fair_ablations``.

``lib/report/reference/lazsl.csv`` holds LaZSL's tables (the paper's excerpt, docs/papers.md):
``main`` (CLIP ViT-B/16, Table 1), ``shift`` (ImageNet variants, LaZSL's row) and ``ablation``. Method
and dataset names follow ``lib.experiments.zero_shot``. The ``demo`` profile never shows them: its numbers
measure the demo world, not the papers' benchmarks.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).parent / "reference"


def lazsl(table: str) -> pd.DataFrame:
    """One LaZSL table as method (rows) x dataset (columns), accuracy in %."""
    return _table("lazsl", "LaZSL", table)


def fair(table: str) -> pd.DataFrame:
    """One FAIR table as method (rows) x dataset (columns), accuracy in %."""
    return _table("fair", "FAIR", table)


def _table(stem: str, paper: str, table: str) -> pd.DataFrame:
    data = pd.read_csv(REFERENCE_DIR / f"{stem}.csv")
    if table not in set(data["table"]):
        raise KeyError(f"{paper} reference has no table {table!r}; known: {sorted(set(data['table']))}")
    part = data[data["table"] == table]
    wide = part.pivot(index="method", columns="dataset", values="accuracy")
    return wide.loc[list(dict.fromkeys(part["method"])), list(dict.fromkeys(part["dataset"]))]
