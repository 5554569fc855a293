"""The papers' published numbers, as data: anchors shown beside ours in the ``paper`` profile only.

``lib/reference/lazsl.csv`` holds the LaZSL excerpt's tables (``../shared/papers/lazsl_paper-excerpt.txt``):
``main`` (CLIP ViT-B/16, Table 1), ``shift`` (ImageNet variants, LaZSL's row) and ``ablation``. Method
and dataset names follow ``lib.zero_shot``. The ``demo`` profile never shows them: its numbers
measure the demo world, not the papers' benchmarks.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).parent / "reference"


def lazsl(table: str) -> pd.DataFrame:
    """One LaZSL table as method (rows) x dataset (columns), accuracy in %."""
    data = pd.read_csv(REFERENCE_DIR / "lazsl.csv")
    if table not in set(data["table"]):
        raise KeyError(f"LaZSL reference has no table {table!r}; known: {sorted(set(data['table']))}")
    part = data[data["table"] == table]
    wide = part.pivot(index="method", columns="dataset", values="accuracy")
    return wide.loc[list(dict.fromkeys(part["method"])), list(dict.fromkeys(part["dataset"]))]
