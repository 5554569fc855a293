"""Notebooks 02 and 04: FAIR's experiments as data, the named rows of Tables 3, 4, 5, 7 and 10.

Every row is a ``lib.methods.fair.FairConfig`` switch (``ROWS``); a run is a ``FairJob`` (dataset, row,
protocol, seed, extra overrides) and goes through the feature cache (``run``), so notebooks 02 and 04
and the tests share the trained runs. ``EXPERIMENT.prefetch`` trains many runs in worker processes
(one thread each; ``lib.experiments.protocol``); ``outcome`` then reads them back and scores the test
split. Time and memory of a step and of pseudo-labelling are in ``lib.experiments.fair_cost``.

Protocols (FAIR Sec. 4, Table 4): ``inductive`` adapts on the unlabeled train split (``adapt_size``
images of it) and evaluates on the test split; ``transductive`` adapts and evaluates on the test split.
The profile's ``fair`` block holds the datasets, sizes and ``FairConfig`` overrides (``config``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from lib import models
from lib.data import open_datasets, subset
from lib.experiments.protocol import Experiment, config_from
from lib.features import cache as feature_cache
from lib.features import crops as crop_sampler
from lib.features.text import description_features, descriptor_sentences
from lib.methods import fair, metrics, scoring
from lib.report.outputs import headline_numbers
from lib.runtime import locations

STAR = "(★)"
ROWS: dict[str, dict] = {
    # Table 3, "Ablations on FAIR"
    "FAIR": {},
    "FAIR w/o LAS": {"text": "initial"},  # crops scored against the frozen initial Z* (CuPL), not the learned one
    "FAIR w/o PL weight": {"weight": "none"},
    # Table 3, "Ablations on global visual features for PL"
    "FAIR-g": {"view": "global", "text": "initial", "weight": "none"},  # CuPL pseudo-labels of the weak view
    "FAIR-g + LAS": {"view": "global", "weight": "none"},
    "FAIR-g + LAS + PL weight": {"view": "global"},
    # Table 3, "Ablations on FAIR (w/o PL weight) PL": each line adds one component to (★)
    f"WCA as PL {STAR}": {"text": "descriptions", "crop_weights": "softmax", "top_k": None, "weight": "none"},
    f"{STAR} + crop selection": {"text": "descriptions", "crop_weights": "softmax", "weight": "none"},
    f"{STAR} + [CLS] crop weights": {"text": "descriptions", "top_k": None, "weight": "none"},
    f"{STAR} + interaction w/ CDA (LAS)": {"crop_weights": "softmax", "top_k": None, "weight": "none"},
    # Table 5
    "FAIR, γ = S1 only": {"weight": "score"},
    # Table 7: other pseudo-labellers, each with FAIR's pseudo-label weight
    "FAIR (w/ WCA PL)": {"text": "descriptions", "crop_weights": "softmax", "top_k": None},
    "FAIR-g (CuPL PL)": {"view": "global", "text": "initial"},
    "FAIR (w/ LaZSL PL, ours)": {"text": "descriptions", "scorer": "lazsl", "top_k": None},
    # Table 10
    "FAIR-LoRA": {"tuning": "lora"},
    "FAIR-KAdaptation": {"tuning": "kadaptation"},
    # ours: the fairness term off
    "FAIR w/o fairness term (ours)": {"fairness": False},
}
CUPL_ZERO_SHOT = "Zero-shot (CuPL)"  # the initial anchors on the frozen encoder: where every run starts

# (label shown, row) per table; Table 5 labels its rows by the weight
TABLES: dict[str, list[tuple[str, str]]] = {
    "table3": [(r, r) for r in ["FAIR w/o LAS", "FAIR w/o PL weight", "FAIR-g", "FAIR-g + LAS",
                                "FAIR-g + LAS + PL weight", f"WCA as PL {STAR}", f"{STAR} + crop selection",
                                f"{STAR} + [CLS] crop weights", f"{STAR} + interaction w/ CDA (LAS)", "FAIR"]],
    "table5": [("γ = 1", "FAIR w/o PL weight"), ("γ = S1", "FAIR, γ = S1 only"), ("γ = S1·|S1−S2|", "FAIR")],
    "table7": [(r, r) for r in ["FAIR (w/ WCA PL)", "FAIR-g (CuPL PL)", "FAIR (w/ LaZSL PL, ours)", "FAIR"]],
    "table10": [(r, r) for r in ["FAIR-LoRA", "FAIR-KAdaptation", "FAIR"]],
}
PROTOCOLS = ("inductive", "transductive")


@dataclass(frozen=True)
class FairJob:
    """One FAIR run: a row of ``ROWS`` on a dataset under a protocol, with extra config overrides."""

    dataset: str
    row: str = "FAIR"
    protocol: str = "inductive"
    seed: int | None = None  # None: the profile's FairConfig seed
    extra: tuple = ()  # sorted (field, value) pairs, e.g. (("n_crops", 8),) for Fig. 10

    def __post_init__(self):
        if self.row not in ROWS:
            raise KeyError(f"unknown FAIR row {self.row!r}; known: {sorted(ROWS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol={self.protocol!r} is not one of {PROTOCOLS}")


def config(cfg: dict, job: FairJob) -> fair.FairConfig:
    """The FairConfig of ``job``: the profile's overrides, the row's switches, then the job's extras."""
    settings = dict(EXPERIMENT.block(cfg).get("config", {}))
    lr = EXPERIMENT.block(cfg).get("lr_by_dataset", {}).get(job.dataset)
    if lr is not None:
        settings["lr"] = lr
    settings.update(ROWS[job.row])
    settings.update(dict(job.extra))
    if job.seed is not None:
        settings["seed"] = job.seed
    return config_from(fair.FairConfig, settings, "FAIR")


def splits(cfg: dict, name: str, protocol: str = "inductive", data_root: str | Path | None = None):
    """(unlabeled set the run adapts on, test set it is scored on) of dataset ``name``."""
    opts = EXPERIMENT.block(cfg)
    root = locations.data_root(data_root)  # resolved here, so a changed $DATA_ROOT is a new cache entry
    root = str(root) if root else None
    test = _split(name, "test", root, cfg["seed"], opts.get("test_size"))
    if protocol == "transductive":
        return test, test
    return _split(name, "train", root, cfg["seed"], opts.get("adapt_size")), test


@functools.lru_cache(maxsize=32)
def _split(name: str, split: str, data_root: str | None, seed: int, size: int | None):
    """One split of ``name`` (``size`` images of it, seeded), opened once per process: every table
    row reads the same splits, and a demo split is rendered when opened."""
    found, skipped = open_datasets([name], split, data_root, seed, size if split == "test" else None)
    if name not in found:
        what = "is not available" if split == "test" else "has no train split"
        raise FileNotFoundError(f"FAIR dataset {name!r} {what}: {skipped.get(name, 'not found')}")
    return found[name] if split == "test" else subset(found[name], size, seed)


def text(handle: models.ModelHandle, dataset, cfg: dict, cache: feature_cache.FeatureCache,
         data_root: str | Path | None = None) -> fair.Text:
    """Z*_0 and the descriptions of ``dataset`` (the profile's FAIR descriptors, else its own)."""
    table = EXPERIMENT.block(cfg).get("descriptors") or cfg["descriptors"]
    sentences = descriptor_sentences(dataset.name, dataset.classnames, table, data_root)
    desc, mask = description_features(handle, sentences, cache)
    return fair.Text.from_descriptions(desc, mask)


def run_settings(config: fair.FairConfig, text: fair.Text) -> dict:
    """A run's cache-key settings: every FairConfig field plus the text side's fingerprint."""
    return {**config.settings(), "text_side": text.fingerprint()}


def run(handle: models.ModelHandle, unlabeled, text: fair.Text, config: fair.FairConfig,
        cache: feature_cache.FeatureCache | None = None) -> tuple[fair.Adapted, dict]:
    """``adapt`` through the cache: (the run, its cache key settings). The key holds the model, the
    unlabeled split, the text side and every ``FairConfig`` field."""
    settings = run_settings(config, text)
    result = feature_cache.cached(handle, unlabeled, "fair", settings,
                                  lambda: fair.adapt(handle, unlabeled, text, config), cache=cache)
    return fair.Adapted(handle, result, config), {**settings, "train": feature_cache.dataset_fingerprint(unlabeled)}


@dataclass
class Outcome:
    """A finished run scored on its test split."""

    job: FairJob
    labels: torch.Tensor
    logits: torch.Tensor  # (N, C) adapted features x learned anchors
    adapted: fair.Adapted
    features: torch.Tensor  # (N, d) adapted test features

    @property
    def accuracy(self) -> float:
        return metrics.accuracy(self.logits, self.labels)


def outcome(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, job: FairJob,
            data_root: str | Path | None = None) -> Outcome:
    """Train (or read from the cache) ``job`` and score its test split."""
    unlabeled, test = splits(cfg, job.dataset, job.protocol, data_root)
    adapted, key = run(handle, unlabeled, text(handle, test, cfg, cache, data_root), config(cfg, job), cache)
    feats = feature_cache.cached(handle, test, "fair-eval", key, lambda: adapted.features(test, cfg["batch_size"]),
                                 cache=cache)
    return Outcome(job, test.labels, adapted.logits(feats), adapted, feats)


def zero_shot_logits(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, name: str,
                     data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, labels, features) of the frozen encoder against Z*_0 (CuPL) on the test split."""
    _, test = splits(cfg, name, "transductive", data_root)
    feats = feature_cache.image_features(handle, test, cache=cache, batch_size=cfg["batch_size"])
    return feats @ text(handle, test, cfg, cache, data_root).initial.T, test.labels, feats


EXPERIMENT = Experiment("fair", "FAIR", "FAIR run(s)", outcome)  # block, available, prefetch

def table_jobs(cfg: dict, tables: Sequence[str], datasets: Sequence[str]) -> list[FairJob]:
    """The jobs behind ``tables`` on ``datasets`` (each run once, however many tables show it)."""
    return list(dict.fromkeys(FairJob(name, row) for t in tables for _, row in TABLES[t] for name in datasets))


def table(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, which: str,
          datasets: Sequence[str], data_root: str | Path | None = None, zero_shot_row: bool = True) -> pd.DataFrame:
    """Long table (index method, dataset; column accuracy) of one of ``TABLES`` on ``datasets``."""
    records = []
    for name in datasets:
        if zero_shot_row:
            logits, labels, _ = zero_shot_logits(handle, cfg, cache, name, data_root)
            records.append((CUPL_ZERO_SHOT, name, metrics.accuracy(logits, labels)))
        for label, row in TABLES[which]:
            records.append((label, name, outcome(handle, cfg, cache, FairJob(name, row), data_root).accuracy))
    out = pd.DataFrame(records, columns=["method", "dataset", "accuracy"]).set_index(["method", "dataset"])
    return out


def protocol_table(handle, cfg, cache, datasets, data_root=None) -> pd.DataFrame:
    """Table 4's FAIR rows: inductive vs transductive, with the zero-shot start, long format."""
    records = []
    for name in datasets:
        logits, labels, _ = zero_shot_logits(handle, cfg, cache, name, data_root)
        records.append((CUPL_ZERO_SHOT, name, metrics.accuracy(logits, labels)))
        for protocol in PROTOCOLS:
            result = outcome(handle, cfg, cache, FairJob(name, "FAIR", protocol), data_root)
            records.append((f"FAIR ({protocol})", name, result.accuracy))
    return pd.DataFrame(records, columns=["method", "dataset", "accuracy"]).set_index(["method", "dataset"])


def with_average(long: pd.DataFrame) -> pd.DataFrame:
    """method x dataset, rows and columns in first-seen order, plus the mean over datasets."""
    out = long["accuracy"].unstack("dataset")
    out = out.loc[list(dict.fromkeys(long.index.get_level_values("method"))),
                  list(dict.fromkeys(long.index.get_level_values("dataset")))]
    if out.shape[1] > 1:
        out["Avg"] = out.mean(axis=1)
    return out


# --------------------------------------------------------------------------------------------------
# Figures' data

def sweep_points(n_values, k_values, n_fixed, k_fixed) -> list[tuple[str, int, int, int]]:
    """(parameter, x, n_crops, top_k) of Fig. 10: N varies at k = k_fixed (capped at N), k at N = n_fixed."""
    return ([("N", n, n, min(k_fixed, n)) for n in n_values]
            + [("k", k, n_fixed, k) for k in k_values])


def sweep_jobs(dataset: str, n_values: Sequence[int], k_values: Sequence[int], n_fixed: int = 16,
               k_fixed: int = 4) -> list[FairJob]:
    """Fig. 10's runs (FAIR's row with n_crops/top_k overridden)."""
    return list(dict.fromkeys(FairJob(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k)))
                              for _, _, n, k in sweep_points(n_values, k_values, n_fixed, k_fixed)))


def sweep_table(handle, cfg, cache, dataset: str, n_values: Sequence[int], k_values: Sequence[int],
                n_fixed: int = 16, k_fixed: int = 4, data_root=None) -> pd.DataFrame:
    """Fig. 10's accuracy: columns parameter ("N"/"k"), x, n_crops, top_k, accuracy."""
    records = []
    for param, x, n, k in sweep_points(n_values, k_values, n_fixed, k_fixed):
        job = FairJob(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k)))
        records.append({"parameter": param, "x": x, "n_crops": n, "top_k": k,
                        "accuracy": outcome(handle, cfg, cache, job, data_root).accuracy})
    return pd.DataFrame(records)


def fairness_table(handle, cfg, cache, dataset: str, seeds: Sequence[int], data_root=None) -> pd.DataFrame:
    """FAIR with and without L_reg on ``dataset`` per seed: accuracy, the spread (std) of per-class
    accuracy and the largest share of test images predicted as one class."""
    logits, labels, _ = zero_shot_logits(handle, cfg, cache, dataset, data_root)
    n_classes = logits.shape[1]

    def describe(method, seed, logits_):
        per_class = metrics.per_class_accuracy(logits_, labels, n_classes)
        share = torch.bincount(logits_.argmax(1), minlength=n_classes).max().item() / len(labels)
        return {"method": method, "dataset": dataset, "seed": seed, "accuracy": metrics.accuracy(logits_, labels),
                "per-class std": float(np.nanstd(per_class.numpy())), "largest class share (%)": 100 * share}

    records = [describe(CUPL_ZERO_SHOT, -1, logits)]
    for seed in seeds:
        for row in ("FAIR", "FAIR w/o fairness term (ours)"):
            records.append(describe(row, seed, outcome(handle, cfg, cache, FairJob(dataset, row, seed=seed), data_root).logits))
    return pd.DataFrame(records).set_index(["method", "dataset", "seed"])


def per_class(logits_by_method: dict[str, torch.Tensor], labels: torch.Tensor, classnames: Sequence[str]) -> pd.DataFrame:
    """Long per-class accuracy (method, class, accuracy) for Fig. 1/8."""
    frames = []
    for method, logits in logits_by_method.items():
        acc = metrics.per_class_accuracy(logits, labels, len(classnames)).numpy()
        frames.append(pd.DataFrame({"method": method, "class": list(classnames), "accuracy": acc}))
    return pd.concat(frames, ignore_index=True)


def crop_weight_samples(handle: models.ModelHandle, dataset, n_crops: int = 16, alpha: float = 0.5,
                        beta: float = 0.9, seed: int = 0, cache: feature_cache.FeatureCache | None = None,
                        batch_size: int = 256) -> pd.DataFrame:
    """Figs. 6/7: every crop's weight under WCA's softmax (eq. 8) and FAIR's [CLS] sum-normalised
    weights (eq. 12), and the same [CLS] similarities put through a softmax, long format
    (weights, crop weight). Crops from ``lib.features.crops`` (seeded), N = 16, U(0.5, 0.9) as FAIR."""
    feats = crop_sampler.crop_features(handle, dataset, crop_sampler.CropSpec(n_crops, alpha, beta, seed),
                                       cache=cache, batch_size=batch_size, with_cls=True)
    cls_sim = torch.einsum("bh,bnh->bn", torch.nn.functional.normalize(feats["global_cls"], dim=-1),
                           torch.nn.functional.normalize(feats["crops_cls"], dim=-1))
    parts = {
        "WCA: softmax(e^4 · cos(f, f_i)) (eq. 8)": scoring.softmax_crop_weights(feats["crops"], feats["global"]),
        "FAIR: [CLS] cos / sum (eq. 12)": scoring.cls_crop_weights(feats["global_cls"], feats["crops_cls"]),
        "[CLS] cos through a softmax (Fig. 7)": torch.softmax(cls_sim, dim=1),
    }
    return pd.concat([pd.DataFrame({"weights": name, "crop weight": w.flatten().numpy()}) for name, w in parts.items()],
                     ignore_index=True)


def history(outcome_: Outcome) -> pd.DataFrame:
    """Per-epoch means of a run's training log (losses, gamma, pseudo-label accuracy)."""
    return outcome_.adapted.history.groupby("epoch")[["loss_st", "loss_reg", "pl_accuracy"]].mean()


def headline(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Flat ``<table> | <method> | <dataset>`` accuracies (headline.json; real-dataset keys need DATA_ROOT)."""
    return {k: v for name, long in tables.items() for k, v in headline_numbers(long["accuracy"], name, digits=2).items()}

