"""The cost of FAIR's pieces: seconds and peak memory of a training step and of pseudo-labelling.

Shown in notebook 02 (Fig. 10's cost, Fig. 2's pseudo-labelling cost), never recorded: wall-clock
times vary between runs and machines; ``benchmarks/`` measures ratios side by side. Each side is
timed on the same first batch, interleaved over ``repeats`` (median time, max memory).
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from lib import models
from lib.data import subset
from lib.experiments import fair_ablations as fa
from lib.methods import fair
from lib.runtime.memory import BlockPeak


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def step_cost(handle: models.ModelHandle, dataset, text_side: fair.Text, configs: dict[str, fair.FairConfig],
              repeats: int = 3) -> pd.DataFrame:
    """Seconds and peak memory (MB) of one training step per config, on the same first batch,
    interleaved over ``repeats`` (median time, max memory)."""
    records = {name: {"seconds": [], "peak MB": []} for name in configs}
    batches = {name: next(iter(fair.loader(handle, dataset, cfg))) for name, cfg in configs.items()}
    trainers = {name: fair.Trainer(handle, text_side, cfg, steps=repeats + 1) for name, cfg in configs.items()}
    for _ in range(repeats):
        for name in configs:
            weak, strong, idx, _ = batches[name]
            with BlockPeak(handle.device) as mem:
                start = time.perf_counter()
                trainers[name].step(weak, strong, idx)
                _sync(handle.device)
                elapsed = time.perf_counter() - start
            records[name]["seconds"].append(elapsed)
            records[name]["peak MB"].append(mem.peak_mb)
    return pd.DataFrame({name: {"seconds per step": float(np.median(r["seconds"])), "peak MB": max(r["peak MB"])}
                         for name, r in records.items()}).T


def pseudo_label_cost(handle: models.ModelHandle, dataset, text_side: fair.Text, configs: dict[str, fair.FairConfig],
                      repeats: int = 3) -> pd.DataFrame:
    """Seconds per image of pseudo-labelling one weak batch (crops, encoding, scoring; no gradient)
    per config, interleaved over ``repeats`` (median), with the encoder views per image."""
    text_side = text_side.to(handle.device)
    visual = handle.model.visual
    anchors = text_side.initial
    timings = {name: [] for name in configs}
    batches = {name: next(iter(fair.loader(handle, dataset, cfg))) for name, cfg in configs.items()}
    for _ in range(repeats):
        for name, cfg in configs.items():
            weak, _, idx, _ = batches[name]
            start = time.perf_counter()
            fair.weak_pseudo_labels(visual, weak.to(handle.device), idx, cfg, anchors, text_side)
            _sync(handle.device)
            timings[name].append((time.perf_counter() - start) / len(weak))
    return pd.DataFrame({name: {"seconds per image": float(np.median(t)),
                                "views per image": 1 + (cfg.n_crops if cfg.view == "crops" else 0)}
                         for (name, t), cfg in zip(timings.items(), configs.values())}).T


def sweep_cost(handle, cfg, cache, dataset: str, n_values: Sequence[int], k_values: Sequence[int],
               n_fixed: int = 16, k_fixed: int = 4, data_root=None, repeats: int = 3,
               images: int | None = None) -> pd.DataFrame:
    """Fig. 10's cost: seconds and peak memory of one training step at each (N, k), on a batch of at
    most ``images`` unlabeled images (None: one training batch)."""
    unlabeled, test = fa.splits(cfg, dataset, "inductive", data_root)
    points = fa.sweep_points(n_values, k_values, n_fixed, k_fixed)
    configs = {(n, k): fa.config(cfg, fa.FairJob(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k))))
               for _, _, n, k in points}
    cost = step_cost(handle, subset(unlabeled, images, cfg["seed"]), fa.text(handle, test, cfg, cache, data_root),
                     configs, repeats)
    rows = [{"parameter": p, "x": x, **cost.loc[[(n, k)]].iloc[0].to_dict()} for p, x, n, k in points]
    return pd.DataFrame(rows)
