"""The papers' published numbers, as data: anchors shown beside ours in the ``paper`` profile only.

Each table names the backbone and weights the paper ran (``backbone``, ``weights``: open_clip's
architecture name and tag), and is shown only beside a run of the same backbone (``mismatch`` says
why not otherwise): a published ViT-B/16 number beside a ViT-B/32 run compares two models.

``lib/report/reference/fair.csv`` holds FAIR's ablations (FAIR, Tables 3-10; ViT-B/32):
``table3`` (components, with zero-shot CLIP), ``table4`` (inductive vs transductive, FAIR's rows),
``table5`` (pseudo-label weight, six-dataset average only), ``table7`` (pseudo-labellers) and
``table10`` (LN vs LoRA vs K-Adaptation). Row names follow ``lib.experiments.fair_ablations``.

``lib/report/reference/lazsl.csv`` holds LaZSL's tables (the paper's excerpt, docs/papers.md):
``main`` (CLIP ViT-B/16, Table 1), ``shift`` (ImageNet variants, LaZSL's row) and ``ablation`` (the
excerpt names the backbone of Table 1 only; the other two are read as ViT-B/16, the official code's
default). Method
and dataset names follow ``lib.experiments.zero_shot``. The ``demo`` profile never shows them: its numbers
measure the demo world, not the papers' benchmarks.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).parent / "reference"


PAPERS = {"lazsl": "LaZSL", "fair": "FAIR"}


def lazsl(table: str) -> pd.DataFrame:
    """One LaZSL table as method (rows) x dataset (columns), accuracy in %."""
    return _table("lazsl", "LaZSL", table)


def fair(table: str) -> pd.DataFrame:
    """One FAIR table as method (rows) x dataset (columns), accuracy in %."""
    return _table("fair", "FAIR", table)


def backbone(paper: str) -> tuple[str, str]:
    """(open_clip architecture, pretrained tag) of a paper's reference tables (``"lazsl"``, ``"fair"``)."""
    data = _data(paper)
    pairs = sorted(set(zip(data["backbone"], data["weights"])))
    if len(pairs) != 1:
        raise ValueError(f"{paper}.csv mixes backbones {pairs}: split it by table")
    return pairs[0]


def label(paper: str) -> str:
    """``"LaZSL paper, ViT-B-16 / openai"``: what a displayed reference table is."""
    arch, weights = backbone(paper)
    return f"{PAPERS[paper]} paper, {arch} / {weights}"


def _same_architecture(a: str, b: str) -> bool:
    strip = lambda name: name.lower().removesuffix("-quickgelu")  # noqa: E731 -- the same weights' two open_clip names
    return strip(a) == strip(b)


def mismatch(paper: str, model: str, pretrained: str | None) -> str | None:
    """None when a run of ``model`` with ``pretrained`` is the backbone the paper's tables report;
    else the reason they are not shown beside it."""
    arch, weights = backbone(paper)
    if _same_architecture(model, arch) and pretrained == weights:
        return None
    return (f"{PAPERS[paper]}'s published numbers are for {arch} / {weights}; this run is {model} / {pretrained}, "
            "so they are not shown beside it")


def _data(stem: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE_DIR / f"{stem}.csv")


def _table(stem: str, paper: str, table: str) -> pd.DataFrame:
    data = _data(stem)
    if table not in set(data["table"]):
        raise KeyError(f"{paper} reference has no table {table!r}; known: {sorted(set(data['table']))}")
    part = data[data["table"] == table]
    wide = part.pivot(index="method", columns="dataset", values="accuracy")
    return wide.loc[list(dict.fromkeys(part["method"])), list(dict.fromkeys(part["dataset"]))]
