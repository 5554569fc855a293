"""Notebook 04: image features before and after FAIR, as numbers behind the t-SNE maps and confusions.

For each dataset, ``states`` holds the frozen encoder with Z*_0 ("before") and the FAIR run's adapted
encoder with the learned Z* ("after"): features, logits and anchors of the test split;
``separation`` gives accuracy, silhouette and the cosine to the own anchor of both; ``tsne_panels``
the two maps of a seeded sample (``lib.methods.feature_space``); on a dataset whose classes come in
sibling groups (the parts world), ``sibling_errors`` the share of errors that stay inside the true class's group.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import sklearn
import torch

from lib.experiments import fair_ablations as fa
from lib.features import cache as feature_cache
from lib.methods import feature_space, metrics
from lib.report.outputs import headline_numbers

STATES = ("before", "after")
PANEL_TITLES = {"before": "before (Z*₀, frozen encoder)", "after": "after (learned Z*, adapted encoder)"}


def states(handle, cfg: dict, cache, names: Sequence[str], data_root=None, seed: int | None = None) -> dict[str, dict]:
    """{dataset: {"classes", "labels", "groups", "before": (features, logits, anchors), "after": (...)}}:
    FAIR's run with training ``seed`` (None: the profile's); ``groups`` is (C,) sibling-group ids where the
    dataset's classes have groups (the parts world's ``class_defs``), else None."""
    out = {}
    for name in names:
        logits0, labels, feats0 = fa.zero_shot_logits(handle, cfg, cache, name, data_root)
        test = fa.splits(cfg, name, "transductive", data_root)[1]
        run = fa.outcome(handle, cfg, cache, fa.FairJob(name, "FAIR", seed=seed), data_root)
        initial = fa.text(handle, test, cfg, cache, data_root).initial
        out[name] = {"classes": test.classnames, "labels": labels, "groups": sibling_groups(test),
                     "before": (feats0, logits0, initial), "after": (run.features, run.logits, run.adapted.anchors)}
    return out


def sibling_groups(dataset) -> torch.Tensor | None:
    """(C,) group ids of ``dataset``'s classes in class order (``class_defs[c].group``), or None without them."""
    defs = getattr(dataset, "class_defs", None)
    if not defs:
        return None
    ids = {g: i for i, g in enumerate(dict.fromkeys(c.group for c in defs))}
    return torch.tensor([ids[c.group] for c in defs])


def sibling_errors(by_dataset: dict[str, dict]) -> pd.DataFrame:
    """(dataset, state) x errors, % of them on a sibling class, % a uniformly wrong prediction would put
    there; datasets without groups are left out."""
    rows = []
    for name, s in by_dataset.items():
        if s.get("groups") is None:
            continue
        for state in STATES:
            share, chance, errors = metrics.sibling_error_share(s[state][1], s["labels"], s["groups"])
            rows.append({"dataset": name, "state": state, "errors": errors, "on a sibling (%)": share,
                         "uniform errors (%)": chance})
    return pd.DataFrame(rows).set_index(["dataset", "state"]) if rows else pd.DataFrame()


def separation(by_dataset: dict[str, dict]) -> pd.DataFrame:
    """(dataset, state) x accuracy, silhouette, cosine to own anchor."""
    return pd.DataFrame([
        {"dataset": name, "state": state, "accuracy": metrics.accuracy(logits, s["labels"]),
         "silhouette": feature_space.class_separation(feats, s["labels"]),
         "cos to own anchor": feature_space.anchor_alignment(feats, s["labels"], anchors)}
        for name, s in by_dataset.items() for state, (feats, logits, anchors) in [(st, s[st]) for st in STATES]
    ]).set_index(["dataset", "state"])


def tsne_panels(state: dict, size: int, seed: int, cache=None) -> dict[str, tuple]:
    """{panel title: (points, labels, anchor points)} of ``size`` seeded test images, before and after.
    With fewer points than scikit-learn's perplexity of 30 needs (a tiny test split), the perplexity
    drops to a third of the points (ours: t-SNE's usual rule of thumb, so a smoke run still draws).
    With a ``cache``, each map is stored keyed by its inputs (a warm rerun reads it: about 3 s a map on
    2 cores)."""
    idx = torch.randperm(len(state["labels"]), generator=torch.Generator().manual_seed(seed))[:size].sort().values
    points_in_map = len(idx) + len(state["before"][2])
    perplexity = min(feature_space.PERPLEXITY, max(1.0, (points_in_map - 1) / 3))
    panels = {}
    for name in STATES:
        feats, _, anchors = state[name]
        points, stars = tsne_map(feats[idx], anchors, seed, perplexity, cache)
        panels[PANEL_TITLES[name]] = (points, state["labels"][idx], stars)
    return panels


def tsne_map(features: torch.Tensor, anchors: torch.Tensor, seed: int, perplexity: float,
             cache=None) -> tuple[np.ndarray, np.ndarray]:
    """``feature_space.tsne_with_anchors``, through ``cache`` when one is given (keyed by the features,
    anchors, seed, perplexity, scikit-learn's version and ``feature_space``'s source)."""
    def fit() -> dict[str, torch.Tensor]:
        points, stars = feature_space.tsne_with_anchors(features, anchors, seed, perplexity)
        return {"points": torch.from_numpy(points), "anchors": torch.from_numpy(stars)}

    out = feature_cache.cached_result(cache, "tsne", {"features": features, "anchors": anchors},
                                      {"seed": seed, "perplexity": perplexity, "sklearn": sklearn.__version__},
                                      [feature_space], fit)
    return out["points"].numpy(), out["anchors"].numpy()


def shown(summary: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The rows of ``separation``'s table for ``names`` (the datasets a cell displays)."""
    return summary[summary.index.get_level_values("dataset").isin(list(names))]


def confusions(state: dict) -> dict[str, object]:
    """{"<state>: <accuracy>%": confusion matrix (% of each true class)} before and after."""
    return {f"{name}: {metrics.accuracy(state[name][1], state['labels']):.1f}%":
            feature_space.confusion_percent(state[name][1], state["labels"]) for name in STATES}


def headline(summary: pd.DataFrame) -> dict[str, float]:
    """``<metric> | <state> | <dataset>`` for accuracy and silhouette (``separation``'s table)."""
    by_state = summary.reorder_levels(["state", "dataset"])
    return {k: v for metric in ("accuracy", "silhouette")
            for k, v in headline_numbers(by_state[metric], metric, digits=3).items()}
