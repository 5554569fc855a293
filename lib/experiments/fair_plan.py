"""Notebooks 02 and 04: which datasets each table and figure runs on, and the splits beside each table.

A profile's ``fair`` block names datasets by role (``ROLES``): ``datasets`` (Tables 3 and 5),
``protocol_datasets`` (Table 4), ``ablation_datasets`` (Tables 7 and 10), ``focus`` (Figs. 1/8, 6/7
and 10, the cost cells, the training curves), ``fairness_dataset`` (the fairness check) and
``feature_datasets`` (notebook 04). ``plan`` keeps the names whose test split opens under the data
root and whose descriptor file reads (where the profile names none or the file is not there, FAIR's
text side falls back to the templates: ``Plan.templated`` says so and which rows are left out,
``fair_ablations.text_sentences``); a role left without a dataset falls back to the focus, the
focus to the first dataset that opens, and every skip and fallback is a line of ``Plan.notes`` that
the notebook prints. With no dataset at all every role is empty and the notes say why, so the
notebook still finishes.

``split_table`` sets the paper's splits (FAIR Table 6: VISSL's, Sec. 6.1) beside ours (CoOp's split
files; ``train_splits`` joins train and val where that equals the paper's train set: Pets, Cars, UCF101).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from lib.data import DEMO_PREFIX
from lib.experiments import fair_ablations as fa

ROLES = {  # role -> the block key naming it (a list or one name); missing keys fall back to the focus
    "tables": "datasets", "protocol": "protocol_datasets", "ablation": "ablation_datasets",
    "focus": "focus", "fairness": "fairness_dataset", "features": "feature_datasets",
}
# FAIR Table 6 (train, test images; VISSL's splits, Sec. 6.1) of the datasets the ablations use and a few more
PAPER_SPLITS = {
    "DTD": (3760, 1880), "EuroSAT": (10000, 5000), "Flowers102": (4093, 2463), "OxfordPets": (3680, 3669),
    "StanfordCars": (8144, 8041), "UCF101": (9537, 3783), "Caltech101": (4403, 6645), "Food101": (75750, 25250),
    "SUN397": (76129, 21758), "CUB": (5994, 5794),
}
FIG10_GRID = {"n": [8, 16, 32], "k": [1, 4, 16]}  # FAIR Fig. 10's axes around (N, k) = (16, 4)


@dataclass
class Plan:
    """The datasets of each role after availability checks, and what was skipped or replaced."""

    tables: list[str]
    protocol: list[str]
    ablation: list[str]
    focus: str | None
    fairness: str | None
    features: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    templated: dict[str, str] = field(default_factory=dict)  # dataset -> why its Z*_0 is the templates

    @staticmethod
    def shown_of(names: Sequence[str]) -> list[str]:
        """Of ``names``, those a table cell displays: the demo world's when there are any (the real ones
        go to ``*_real_datasets.csv`` and the notebook's last table cell), else all."""
        return [n for n in names if n.startswith(DEMO_PREFIX)] or list(names)

    @classmethod
    def real_of(cls, names: Sequence[str]) -> list[str]:
        """Of ``names``, those left for the last table cell (real datasets beside demo ones)."""
        shown = cls.shown_of(names)
        return [n for n in names if n not in shown]

    @property
    def shown(self) -> list[str]:
        return self.shown_of(self.tables)

    def has(self, role: str) -> bool:
        """Whether ``role`` (a field: "focus", "fairness", "features", ...) has a dataset; prints why
        the cell is skipped when it has none."""
        if getattr(self, role):
            return True
        print(f"skipped: no dataset for fair.{ROLES[role]} on this machine (the first cell says why)")
        return False

    def report(self, roles: Sequence[str] = tuple(ROLES)) -> str:
        """The datasets of ``roles``, then every skipped dataset and every fallback, one per line."""
        labels = {"tables": "Tables 3, 5", "protocol": "Table 4", "ablation": "Tables 7, 10", "focus": "focus",
                  "fairness": "fairness check", "features": "t-SNE and confusion (notebook 04)"}
        lines = [f"{labels[r]}: {getattr(self, r) or 'none'}" for r in roles]
        lines += [f"skipped {name}: {why}" for name, why in self.skipped.items()]
        lines += [f"{name}: {why}" for name, why in self.templated.items()] + self.notes
        return "\n".join(lines)


def _names(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _why_not(cfg: dict, name: str, data_root) -> tuple[str | None, str | None]:
    """(why FAIR cannot run on ``name``: its test split or a descriptor file that does not fit, or None;
    why its text side is the templates, or None)."""
    try:
        test = fa.splits(cfg, name, "transductive", data_root)[1]
        return None, fa.text_sentences(cfg, test.name, test.classnames, data_root)[1]
    except (OSError, ValueError) as err:  # DatasetError and DescriptorError are ValueErrors
        return str(err).splitlines()[0], None


def plan(cfg: dict, data_root: str | Path | None = None) -> Plan:
    """Resolve every role of the profile's ``fair`` block against the datasets on this machine."""
    block = fa.EXPERIMENT.block(cfg)
    wanted = {role: _names(block.get(key)) for role, key in ROLES.items()}
    every = list(dict.fromkeys(n for names in wanted.values() for n in names))
    skipped, templated = {}, {}
    for name in every:
        try:
            found, why = fa.EXPERIMENT.available(cfg, [name], data_root)
        except (KeyError, ValueError) as err:  # an unknown demo domain or knob
            found, why = [], {name: str(err).strip('"')}
        if not found:
            skipped[name] = why.get(name, "not found")
            continue
        reason, templates_why = _why_not(cfg, name, data_root)
        if reason:
            skipped[name] = f"no FAIR text side: {reason}"
        elif templates_why:
            templated[name] = templates_why
    ok = [n for n in every if n not in skipped]
    kept = {role: [n for n in names if n in ok] for role, names in wanted.items()}
    notes = []
    focus = (kept["focus"] or kept["tables"] or ok or [None])[0]
    if wanted["focus"] and focus != wanted["focus"][0]:
        notes.append(f"fair.focus {wanted['focus'][0]!r} is not available: "
                     + (f"using {focus!r} instead" if focus else "the focus cells are skipped"))
    elif not wanted["focus"] and focus:
        notes.append(f"the profile names no fair.focus: using {focus!r}")
    for role in ("tables", "protocol", "ablation", "features", "fairness"):
        if not kept[role] and focus:
            if wanted[role]:
                notes.append(f"fair.{ROLES[role]} {wanted[role]} are not available: using the focus {focus!r}")
            kept[role] = [focus]
    if not ok:
        notes.append(f"no FAIR dataset is available (asked for {every}): every table and figure is left "
                     "empty; point DATA_ROOT (or the data_root parameter) at the datasets")
    fairness = kept["fairness"][0] if kept["fairness"] else None
    return Plan(kept["tables"], kept["protocol"], kept["ablation"], focus, fairness, kept["features"],
                {n: skipped[n] for n in every if n in skipped}, notes, templated)


def cost_images(cfg: dict) -> int:
    """Images per batch in the cost cells (the block's ``cost_images``; 64 without it)."""
    return int(fa.EXPERIMENT.block(cfg).get("cost_images") or 64)


def sweep_grid(cfg: dict) -> tuple[list[int], list[int]]:
    """Fig. 10's N and k values (the block's ``sweep``, else the paper's grid)."""
    grid = {**FIG10_GRID, **(fa.EXPERIMENT.block(cfg).get("sweep") or {})}
    return list(grid["n"]), list(grid["k"])


def fairness_seeds(cfg: dict, p: Plan) -> list[int]:
    """The seeds of the fairness check (the block's ``fairness_seeds``, else the run's own seed)."""
    return list(fa.EXPERIMENT.block(cfg).get("fairness_seeds") or [fa.config(cfg, fa.FairJob(p.fairness)).seed])


def jobs(cfg: dict, p: Plan) -> list[fa.FairJob]:
    """Every distinct run the tables and figures of notebook 02 read (trained in bulk first)."""
    out = fa.table_jobs(cfg, ["table3", "table5"], p.tables, list(p.templated))
    out += [fa.FairJob(n, "FAIR", protocol) for n in p.protocol for protocol in fa.PROTOCOLS]
    out += fa.table_jobs(cfg, ["table7", "table10"], p.ablation, list(p.templated))
    if p.fairness:
        out += [fa.FairJob(p.fairness, row, seed=s) for s in fairness_seeds(cfg, p)
                for row in ("FAIR", "FAIR w/o fairness term (ours)")]
    if p.focus:
        focus = fa.config(cfg, fa.FairJob(p.focus))
        out += fa.sweep_jobs(p.focus, *sweep_grid(cfg), focus.n_crops, focus.top_k)
    return list(dict.fromkeys(out))


def split_table(cfg: dict, names: Sequence[str], data_root: str | Path | None = None,
                protocol: str = "inductive") -> pd.DataFrame:
    """Per dataset: the paper's train/test images (Table 6) beside the splits and images ours use."""
    rows = []
    for name in names:
        unlabeled, test = fa.splits(cfg, name, protocol, data_root)
        paper = PAPER_SPLITS.get(name)
        adapts_on = "test" if protocol == "transductive" else "+".join(fa.train_splits(cfg, name))
        rows.append({"dataset": name, "paper train (Table 6)": paper[0] if paper else None,
                     "paper test": paper[1] if paper else None, "ours: adapts on": adapts_on,
                     "ours: images": len(unlabeled), "ours: test": len(test),
                     "same as paper": None if paper is None else (len(unlabeled), len(test)) == paper
                     if protocol == "inductive" else len(test) == paper[1]})
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()
