"""Notebooks 02 and 04: FAIR's experiments as data, the named rows of Tables 3, 4, 5, 7 and 10.

Every row is a ``lib.methods.fair.FairConfig`` switch (``ROWS``); a run is a ``FairJob`` (dataset, row,
protocol, seed, extra overrides) and goes through the feature cache (``run``), so notebooks 02 and 04
and the tests share the trained runs. ``EXPERIMENT.prefetch`` trains many runs in worker processes
(one thread each; ``lib.experiments.protocol``); ``outcome`` then reads them back and scores the test
split. Time and memory of a step and of pseudo-labelling are in ``lib.experiments.fair_cost``.

Protocols (FAIR Sec. 4, Table 4): ``inductive`` adapts on the unlabeled train split (``adapt_size``
images of it; the splits named in ``train_splits``, e.g. CoOp's train + val where that is the paper's
train set) and evaluates on the test split (``test_size`` images of it); ``transductive`` adapts and
evaluates on the test split. Every run is scored on its test split after each epoch: tables give the
final epoch (``accuracy``) and the best epoch (``BEST``: model selection on the test split, what DPA's
code reports). The profile's ``fair`` block holds the datasets, sizes and ``FairConfig`` overrides
(``config``); ``lib.experiments.fair_plan`` resolves which datasets each table runs on.
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
from lib.data.resolve import concat
from lib.experiments.protocol import Experiment, config_from
from lib.features import cache as feature_cache
from lib.features import crops as crop_sampler
from lib.features.descriptors import DescriptorFileMissing
from lib.features.text import description_features, descriptor_sentences, templates
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
BEST = "best epoch (test-set selection)"  # DPA's reported number: the best test accuracy over the epochs
FINAL = "accuracy"  # the final epoch's test accuracy: what this project reports

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


def train_splits(cfg: dict, name: str) -> tuple[str, ...]:
    """The splits an inductive run of ``name`` adapts on (the block's ``train_splits``; default train)."""
    table = {k.lower(): v for k, v in (EXPERIMENT.block(cfg).get("train_splits") or {}).items()}
    return tuple(table.get(name.lower(), ["train"]))


def splits(cfg: dict, name: str, protocol: str = "inductive", data_root: str | Path | None = None):
    """(unlabeled set the run adapts on, test set it is scored on) of dataset ``name``."""
    opts = EXPERIMENT.block(cfg)
    root = locations.data_root(data_root)  # resolved here, so a changed $DATA_ROOT is a new cache entry
    root = str(root) if root else None
    test = _split(name, ("test",), root, cfg["seed"], opts.get("test_size"))
    if protocol == "transductive":
        return test, test
    return _split(name, train_splits(cfg, name), root, cfg["seed"], opts.get("adapt_size")), test


@functools.lru_cache(maxsize=32)
def _split(name: str, parts: tuple[str, ...], data_root: str | None, seed: int, size: int | None):
    """``size`` seeded images of the splits ``parts`` of ``name`` joined, opened once per process:
    every table row reads the same splits, and a demo split is rendered when opened."""
    opened = []
    for split in parts:
        found, skipped = open_datasets([name], split, data_root, seed, size if split == "test" else None)
        if name not in found:
            what = "is not available" if split == "test" else f"has no {split!r} split"
            raise FileNotFoundError(f"FAIR dataset {name!r} {what}: {skipped.get(name, 'not found')}")
        opened.append(found[name])
    return subset(opened[0] if len(opened) == 1 else concat(opened), size, seed)


def descriptors(cfg: dict) -> dict:
    """The descriptor table FAIR reads (the block's ``descriptors``, else the profile's)."""
    return EXPERIMENT.block(cfg).get("descriptors") or cfg["descriptors"]


def needs_descriptions(row: str) -> bool:
    """Whether ``row`` scores crops against the descriptions themselves (WCA's or LaZSL's pseudo-labels),
    so it is left out where the text side falls back to the templates (``text_sentences``)."""
    return ROWS[row].get("text") == "descriptions" or "scorer" in ROWS[row]


def text_sentences(cfg: dict, name: str, classnames: Sequence[str],
                   data_root: str | Path | None = None) -> tuple[list[list[str]], str | None]:
    """(sentences per class that initialise Z*, why they are not descriptions or None). Where the profile
    names no descriptor file for ``name`` or the file is not there (CuPL released none for a user's own
    dataset), Z*_0 is the class names in the profile's ``templates`` (CLIP's prompt ensemble; ours: what
    zero-shot CLIP would use) and the rows that need descriptions are left out; a file that does not fit
    the classes stays an error (``lib.features.descriptors``)."""
    try:
        return descriptor_sentences(name, classnames, descriptors(cfg), data_root), None
    except DescriptorFileMissing as missing:
        prompts = templates(cfg["templates"])
        return ([[t.format(c) for t in prompts] for c in classnames],
                f"{str(missing).splitlines()[0]}: FAIR's Z* starts from the {cfg['templates']!r} templates "
                f"instead of descriptions, and the rows that need descriptions are left out "
                f"({', '.join(r for r in ROWS if needs_descriptions(r))})")


def rows_for(which: str, templated: bool = False) -> list[tuple[str, str]]:
    """(label, row) of table ``which``: all, less those needing descriptions on a dataset whose text side
    is the templates (``text_sentences``)."""
    return [(label, row) for label, row in TABLES[which] if not (templated and needs_descriptions(row))]


def text(handle: models.ModelHandle, dataset, cfg: dict, cache: feature_cache.FeatureCache,
         data_root: str | Path | None = None) -> fair.Text:
    """Z*_0, the descriptions of ``dataset`` and its class prompt's features (``class_prompt``: WCA's
    description weights, eq. 9); the templates where it has no descriptor file (``text_sentences``)."""
    sentences, _ = text_sentences(cfg, dataset.name, dataset.classnames, data_root)
    desc, mask = description_features(handle, sentences, cache)
    prompts = [cfg["class_prompt"].format(c) for c in dataset.classnames]
    return fair.Text.from_descriptions(desc, mask, feature_cache.text_features(handle, prompts, cache=cache))


def run_settings(config: fair.FairConfig, text: fair.Text) -> dict:
    """A run's cache-key settings: every FairConfig field plus the text side's fingerprint."""
    return {**config.settings(), "text_side": text.fingerprint()}


def run(handle: models.ModelHandle, unlabeled, text: fair.Text, config: fair.FairConfig,
        cache: feature_cache.FeatureCache | None = None, eval_set=None, batch_size: int = 256
        ) -> tuple[fair.Adapted, dict]:
    """``adapt`` through the cache: (the run, its cache key settings). The key holds the model, the
    unlabeled split, the text side, every ``FairConfig`` field and the set scored after each epoch."""
    settings = run_settings(config, text)
    if eval_set is not None:
        settings["eval_set"] = feature_cache.dataset_fingerprint(eval_set)
    result = feature_cache.cached(handle, unlabeled, "fair", settings,
                                  lambda: fair.adapt(handle, unlabeled, text, config, eval_set, batch_size),
                                  cache=cache)
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
        """The final epoch's test accuracy."""
        return metrics.accuracy(self.logits, self.labels)

    @property
    def best_accuracy(self) -> float:
        """The best test accuracy over the epochs (test-set model selection, DPA's reported number)."""
        return self.adapted.best_accuracy


def outcome(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, job: FairJob,
            data_root: str | Path | None = None) -> Outcome:
    """Train (or read from the cache) ``job`` and score its test split."""
    unlabeled, test = splits(cfg, job.dataset, job.protocol, data_root)
    adapted, key = run(handle, unlabeled, text(handle, test, cfg, cache, data_root), config(cfg, job), cache,
                       test, cfg["batch_size"])
    feats = adapted.eval_features  # scored after the last epoch, inside the cached run
    if feats is None:
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

def table_jobs(cfg: dict, tables: Sequence[str], datasets: Sequence[str], templated: Sequence[str] = ()) -> list[FairJob]:
    """The jobs behind ``tables`` on ``datasets`` (each run once, however many tables show it), less the
    rows needing descriptions on the ``templated`` datasets."""
    return list(dict.fromkeys(FairJob(name, row) for t in tables for name in datasets
                              for _, row in rows_for(t, name in templated)))


def _long(records: list) -> pd.DataFrame:
    return pd.DataFrame(records, columns=["method", "dataset", FINAL, BEST]).set_index(["method", "dataset"])


def _zero_shot_record(handle, cfg, cache, name, data_root) -> tuple:
    logits, labels, _ = zero_shot_logits(handle, cfg, cache, name, data_root)
    return (CUPL_ZERO_SHOT, name, metrics.accuracy(logits, labels), float("nan"))  # no epochs to select from


def table(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, which: str,
          datasets: Sequence[str], data_root: str | Path | None = None, zero_shot_row: bool = True) -> pd.DataFrame:
    """Long table (index method, dataset; columns ``FINAL`` and ``BEST``) of one of ``TABLES`` on ``datasets``."""
    records = []
    for name in datasets:
        if zero_shot_row:
            records.append(_zero_shot_record(handle, cfg, cache, name, data_root))
        test = splits(cfg, name, "transductive", data_root)[1]
        for label, row in rows_for(which, text_sentences(cfg, test.name, test.classnames, data_root)[1] is not None):
            result = outcome(handle, cfg, cache, FairJob(name, row), data_root)
            records.append((label, name, result.accuracy, result.best_accuracy))
    return _long(records)


def protocol_table(handle, cfg, cache, datasets, data_root=None) -> pd.DataFrame:
    """Table 4's FAIR rows: inductive vs transductive, with the zero-shot start, long format."""
    records = []
    for name in datasets:
        records.append(_zero_shot_record(handle, cfg, cache, name, data_root))
        for protocol in PROTOCOLS:
            result = outcome(handle, cfg, cache, FairJob(name, "FAIR", protocol), data_root)
            records.append((f"FAIR ({protocol})", name, result.accuracy, result.best_accuracy))
    return _long(records)


def with_average(long: pd.DataFrame, column: str = FINAL) -> pd.DataFrame:
    """method x dataset of ``column``, rows and columns in first-seen order, plus the mean over datasets."""
    out = long[column].unstack("dataset")
    out = out.loc[list(dict.fromkeys(long.index.get_level_values("method"))),
                  list(dict.fromkeys(long.index.get_level_values("dataset")))]
    if out.shape[1] > 1:
        out["Avg"] = out.mean(axis=1, skipna=False)  # a row left out on one dataset has no average
    return out


def shown(long: pd.DataFrame, datasets: Sequence[str], digits: int = 1) -> pd.DataFrame:
    """What a notebook displays of a long table on ``datasets``: the final epoch beside the best epoch
    (test-set model selection), each method x dataset with the average, rounded."""
    part = long[long.index.get_level_values("dataset").isin(list(datasets))]
    if part.empty:
        return pd.DataFrame()
    columns = [c for c in (FINAL, BEST) if c in part and part[c].notna().any()]
    names = {FINAL: "final epoch", BEST: BEST}
    return pd.concat({names[c]: with_average(part, c) for c in columns}, axis=1).round(digits)


# --------------------------------------------------------------------------------------------------
# Figures' data

def sweep_points(n_values, k_values, n_fixed, k_fixed) -> list[tuple[str, int, int, int]]:
    """(parameter, x, n_crops, top_k) of Fig. 10: N varies at k = k_fixed (capped at N), k at N = n_fixed
    (values of k above n_fixed are left out: they would keep more crops than there are)."""
    return ([("N", n, n, min(k_fixed, n)) for n in n_values]
            + [("k", k, n_fixed, k) for k in k_values if k <= n_fixed])


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
    """Flat ``<table> | <method> | <dataset>`` final-epoch accuracies (headline.json; real-dataset keys
    need DATA_ROOT)."""
    return {k: v for name, long in tables.items() for k, v in headline_numbers(long[FINAL], name, digits=2).items()}

