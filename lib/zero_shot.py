"""Zero-shot evaluation runs: which datasets a profile names, their class embeddings, accuracy tables.

Features come through the on-disk cache (``lib.feature_cache``), scores through ``lib.scoring``; this
module only wires them together for the notebooks. The zero-shot issue adds the descriptor-based
methods (CuPL, DCLIP, WCA, LaZSL) to the same tables.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from lib import demo, feature_cache, metrics, prompts, scoring
from lib.data import DatasetError, load_dataset
from lib.models import ModelHandle

TEMPLATE_SETS = {
    "demo": prompts.DEMO_TEMPLATES,
    "imagenet80": prompts.IMAGENET_TEMPLATES,
    "single": prompts.SINGLE_TEMPLATE,
}
DEMO_PREFIX = "demo-"


def templates(name: str) -> tuple[str, ...]:
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; known: {sorted(TEMPLATE_SETS)}")
    return TEMPLATE_SETS[name]


def open_datasets(names: Sequence[str], split: str = "test", data_root: str | Path | None = None,
                  seed: int = 0, demo_size: int | None = None):
    """Open each named dataset; returns (datasets by name, reasons for those skipped).

    ``demo-<domain>`` names a demo-world domain; any other name is read from ``data_root``
    (``$DATA_ROOT``) through ``lib.data``. A real dataset that is not on disk is skipped with its
    reason, so the default profile runs without ``DATA_ROOT``.
    """
    opened, skipped = {}, {}
    for name in names:
        if name.startswith(DEMO_PREFIX):
            opened[name] = demo.DemoDataset(demo.domain_spec(name[len(DEMO_PREFIX):]), split, n=demo_size, seed=seed)
            continue
        try:
            opened[name] = load_dataset(name, split, root=data_root)
        except DatasetError as err:
            skipped[name] = str(err).splitlines()[0]
    return opened, skipped


def class_embeddings(handle: ModelHandle, classnames: Sequence[str], template_set: Sequence[str],
                     cache: feature_cache.FeatureCache) -> torch.Tensor:
    """(C, d) CLIP ensemble classifier: normalised mean of the normalised template embeddings."""
    texts = [t.format(c) for c in classnames for t in template_set]
    feats = feature_cache.text_features(handle, texts, cache=cache).reshape(len(classnames), len(template_set), -1)
    return F.normalize(feats.mean(dim=1), dim=-1)


def accuracy_table(handle: ModelHandle, datasets: dict, template_set: Sequence[str],
                   cache: feature_cache.FeatureCache, batch_size: int = 256) -> pd.DataFrame:
    """CLIP zero-shot accuracy (%) of every dataset: one row each."""
    rows = []
    for name, ds in datasets.items():
        img = feature_cache.image_features(handle, ds, cache=cache, batch_size=batch_size)
        txt = class_embeddings(handle, ds.classnames, template_set, cache)
        rows.append({"dataset": name, "images": len(ds), "classes": len(ds.classnames),
                     "chance": 100.0 / len(ds.classnames),
                     "CLIP zero-shot": metrics.accuracy(scoring.clip_logits(img, txt), ds.labels)})
    return pd.DataFrame(rows).set_index("dataset")


def shift_curve(handle: ModelHandle, domain: str, knob: str, values: Sequence[float], template_set: Sequence[str],
                cache: feature_cache.FeatureCache, seed: int = 0, demo_size: int | None = None,
                batch_size: int = 256) -> pd.DataFrame:
    """Zero-shot accuracy (%) on a demo domain as one shift knob goes through ``values``."""
    txt = class_embeddings(handle, demo.CLASSNAMES, template_set, cache)
    rows = []
    for value in values:
        ds = demo.DemoDataset(demo.domain_spec(domain, **{knob: float(value)}), "test", n=demo_size, seed=seed)
        img = feature_cache.image_features(handle, ds, cache=cache, batch_size=batch_size)
        rows.append({"domain": domain, "knob": knob, "strength": float(value),
                     "accuracy": metrics.accuracy(scoring.clip_logits(img, txt), ds.labels)})
    return pd.DataFrame(rows)
