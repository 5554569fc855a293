"""FAIR's experiments as data: the named rows of Tables 3, 4, 5, 7 and 10, their runs and tables.

Every row is a ``lib.fair.FairConfig`` switch (``ROWS``); a run is (dataset, row, protocol, seed,
extra overrides) and goes through the feature cache, so notebooks 02 and 04 and the tests share the
trained runs. ``prefetch`` trains many runs in worker processes (one thread each); ``outcome`` then
reads them back and scores the test split.

Protocols (FAIR Sec. 4, Table 4): ``inductive`` adapts on the unlabeled train split (``adapt_size``
images of it) and evaluates on the test split; ``transductive`` adapts and evaluates on the test split.
The profile's ``fair`` block holds the datasets, sizes and ``FairConfig`` overrides (``config``).
"""
from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from lib import fair, feature_cache, job_pool, locations, metrics, models, scoring, zero_shot

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
ZERO_SHOT = "Zero-shot (CuPL)"  # the initial anchors on the frozen encoder: where every run starts

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
class Job:
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


def with_overrides(cfg: dict, **overrides) -> dict:
    """``cfg`` with notebook parameters put into its ``fair`` block (None, "", 0 and [] are ignored);
    ``epochs`` and ``lr`` go into the block's FairConfig overrides."""
    out = {**cfg, "fair": {**block(cfg), "config": dict(block(cfg).get("config", {}))}}
    for key, value in overrides.items():
        if value is None or value == "" or value == [] or (value == 0 and not isinstance(value, bool)):
            continue
        if key in ("epochs", "lr"):
            fair.FairConfig.from_settings({**out["fair"]["config"], key: value})  # checks the value
            out["fair"]["config"][key] = value
        else:
            out["fair"][key] = value
    return out


def available(cfg: dict, names: Sequence[str], data_root: str | Path | None = None) -> tuple[list[str], dict]:
    """(the datasets of ``names`` that can be opened, {name: why not} for the others)."""
    return zero_shot.available(names, data_root, cfg["seed"])


def block(cfg: dict) -> dict:
    """The profile's ``fair`` block (an error naming the profile when it has none)."""
    if "fair" not in cfg:
        raise KeyError(f"profile {cfg.get('profile')!r} has no 'fair' block: FAIR's settings live there")
    return cfg["fair"]


def config(cfg: dict, job: Job) -> fair.FairConfig:
    """The FairConfig of ``job``: the profile's overrides, the row's switches, then the job's extras."""
    settings = dict(block(cfg).get("config", {}))
    lr = block(cfg).get("lr_by_dataset", {}).get(job.dataset)
    if lr is not None:
        settings["lr"] = lr
    settings.update(ROWS[job.row])
    settings.update(dict(job.extra))
    if job.seed is not None:
        settings["seed"] = job.seed
    return fair.FairConfig.from_settings(settings)


def splits(cfg: dict, name: str, protocol: str = "inductive", data_root: str | Path | None = None):
    """(unlabeled set the run adapts on, test set it is scored on) of dataset ``name``."""
    opts = block(cfg)
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
    found, skipped = zero_shot.open_datasets([name], split, data_root, seed, size if split == "test" else None)
    if name not in found:
        what = "is not available" if split == "test" else "has no train split"
        raise FileNotFoundError(f"FAIR dataset {name!r} {what}: {skipped.get(name, 'not found')}")
    return found[name] if split == "test" else zero_shot.subset(found[name], size, seed)


def text(handle: models.ModelHandle, dataset, cfg: dict, cache: feature_cache.FeatureCache,
         data_root: str | Path | None = None) -> fair.Text:
    """Z*_0 and the descriptions of ``dataset`` (the profile's FAIR descriptors, else its own)."""
    table = block(cfg).get("descriptors") or cfg["descriptors"]
    sentences = zero_shot.descriptor_sentences(dataset.name, dataset.classnames, table, data_root)
    desc, mask = zero_shot.description_features(handle, sentences, cache)
    return fair.Text.from_descriptions(desc, mask)


@dataclass
class Outcome:
    """A finished run scored on its test split."""

    job: Job
    labels: torch.Tensor
    logits: torch.Tensor  # (N, C) adapted features x learned anchors
    adapted: fair.Adapted
    features: torch.Tensor  # (N, d) adapted test features

    @property
    def accuracy(self) -> float:
        return metrics.accuracy(self.logits, self.labels)


def outcome(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, job: Job,
            data_root: str | Path | None = None) -> Outcome:
    """Train (or read from the cache) ``job`` and score its test split."""
    unlabeled, test = splits(cfg, job.dataset, job.protocol, data_root)
    run, key = fair.run(handle, unlabeled, text(handle, test, cfg, cache, data_root), config(cfg, job), cache)
    feats = run.features(test, cache, cfg["batch_size"], key)
    return Outcome(job, test.labels, run.logits(feats), run, feats)


def zero_shot_logits(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, name: str,
                     data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, labels, features) of the frozen encoder against Z*_0 (CuPL) on the test split."""
    _, test = splits(cfg, name, "transductive", data_root)
    feats = feature_cache.image_features(handle, test, cache=cache, batch_size=cfg["batch_size"])
    return feats @ text(handle, test, cfg, cache, data_root).initial.T, test.labels, feats


# --------------------------------------------------------------------------------------------------
# Running many jobs

def prefetch(cfg: dict, jobs: Sequence[Job], data_root: str | Path | None = None, workers: int | None = None,
             cache: feature_cache.FeatureCache | None = None) -> None:
    """Train every job not yet in the cache, ``workers`` at a time in spawned processes with one
    torch thread each (the profile's ``fair.workers``; 1 runs them here). A failing job raises a
    RuntimeError naming it after the others finish."""
    workers = workers if workers is not None else block(cfg).get("workers", 1)
    job_pool.run_jobs(outcome, cfg, jobs, data_root, workers, cache, "FAIR run(s)")


def table_jobs(cfg: dict, tables: Sequence[str], datasets: Sequence[str]) -> list[Job]:
    """The jobs behind ``tables`` on ``datasets`` (each run once, however many tables show it)."""
    return list(dict.fromkeys(Job(name, row) for t in tables for _, row in TABLES[t] for name in datasets))


def table(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, which: str,
          datasets: Sequence[str], data_root: str | Path | None = None, zero_shot_row: bool = True) -> pd.DataFrame:
    """Long table (index method, dataset; column accuracy) of one of ``TABLES`` on ``datasets``."""
    records = []
    for name in datasets:
        if zero_shot_row:
            logits, labels, _ = zero_shot_logits(handle, cfg, cache, name, data_root)
            records.append((ZERO_SHOT, name, metrics.accuracy(logits, labels)))
        for label, row in TABLES[which]:
            records.append((label, name, outcome(handle, cfg, cache, Job(name, row), data_root).accuracy))
    out = pd.DataFrame(records, columns=["method", "dataset", "accuracy"]).set_index(["method", "dataset"])
    return out


def protocol_table(handle, cfg, cache, datasets, data_root=None) -> pd.DataFrame:
    """Table 4's FAIR rows: inductive vs transductive, with the zero-shot start, long format."""
    records = []
    for name in datasets:
        logits, labels, _ = zero_shot_logits(handle, cfg, cache, name, data_root)
        records.append((ZERO_SHOT, name, metrics.accuracy(logits, labels)))
        for protocol in PROTOCOLS:
            result = outcome(handle, cfg, cache, Job(name, "FAIR", protocol), data_root)
            records.append((f"FAIR ({protocol})", name, result.accuracy))
    return pd.DataFrame(records, columns=["method", "dataset", "accuracy"]).set_index(["method", "dataset"])


def wide(long: pd.DataFrame) -> pd.DataFrame:
    """method x dataset, rows and columns in first-seen order, plus the mean over datasets."""
    out = long["accuracy"].unstack("dataset")
    out = out.loc[list(dict.fromkeys(long.index.get_level_values("method"))),
                  list(dict.fromkeys(long.index.get_level_values("dataset")))]
    if out.shape[1] > 1:
        out["Avg"] = out.mean(axis=1)
    return out


# --------------------------------------------------------------------------------------------------
# Figures' data

def _sweep_points(n_values, k_values, n_fixed, k_fixed) -> list[tuple[str, int, int, int]]:
    """(parameter, x, n_crops, top_k) of Fig. 10: N varies at k = k_fixed (capped at N), k at N = n_fixed."""
    return ([("N", n, n, min(k_fixed, n)) for n in n_values]
            + [("k", k, n_fixed, k) for k in k_values])


def sweep_jobs(dataset: str, n_values: Sequence[int], k_values: Sequence[int], n_fixed: int = 16,
               k_fixed: int = 4) -> list[Job]:
    """Fig. 10's runs (FAIR's row with n_crops/top_k overridden)."""
    return list(dict.fromkeys(Job(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k)))
                              for _, _, n, k in _sweep_points(n_values, k_values, n_fixed, k_fixed)))


def sweep_table(handle, cfg, cache, dataset: str, n_values: Sequence[int], k_values: Sequence[int],
                n_fixed: int = 16, k_fixed: int = 4, data_root=None) -> pd.DataFrame:
    """Fig. 10's accuracy: columns parameter ("N"/"k"), x, n_crops, top_k, accuracy."""
    records = []
    for param, x, n, k in _sweep_points(n_values, k_values, n_fixed, k_fixed):
        job = Job(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k)))
        records.append({"parameter": param, "x": x, "n_crops": n, "top_k": k,
                        "accuracy": outcome(handle, cfg, cache, job, data_root).accuracy})
    return pd.DataFrame(records)


def sweep_cost(handle, cfg, cache, dataset: str, n_values: Sequence[int], k_values: Sequence[int],
               n_fixed: int = 16, k_fixed: int = 4, data_root=None, repeats: int = 3) -> pd.DataFrame:
    """Fig. 10's cost: seconds and peak memory of one training step at each (N, k)."""
    unlabeled, test = splits(cfg, dataset, "inductive", data_root)
    points = _sweep_points(n_values, k_values, n_fixed, k_fixed)
    configs = {(n, k): config(cfg, Job(dataset, "FAIR", extra=(("n_crops", n), ("top_k", k))))
               for _, _, n, k in points}
    cost = step_cost(handle, unlabeled, text(handle, test, cfg, cache, data_root), configs, repeats)
    rows = [{"parameter": p, "x": x, **cost.loc[[(n, k)]].iloc[0].to_dict()} for p, x, n, k in points]
    return pd.DataFrame(rows)


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

    records = [describe(ZERO_SHOT, -1, logits)]
    for seed in seeds:
        for row in ("FAIR", "FAIR w/o fairness term (ours)"):
            records.append(describe(row, seed, outcome(handle, cfg, cache, Job(dataset, row, seed=seed), data_root).logits))
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
    (weights, crop weight). Crops from ``lib.crops`` (seeded), N = 16, U(0.5, 0.9) as FAIR."""
    from lib import crops as crop_sampler

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


# --------------------------------------------------------------------------------------------------
# Cost: time and memory of pseudo-labelling and of a training step (shown, never recorded)

class PeakMemory:
    """Peak memory of a block: CUDA's allocator peak on a GPU; on a CPU the peak resident set size
    sampled every millisecond minus the size at entry (an estimate: short spikes can be missed)."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated() / 2**20
            return self
        self._base = self._peak = self._rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss_mb())
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._peak, self._rss_mb()) - self._base
        return False


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
            with PeakMemory(handle.device) as mem:
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


def history(outcome_: Outcome) -> pd.DataFrame:
    """Per-epoch means of a run's training log (losses, gamma, pseudo-label accuracy)."""
    return outcome_.adapted.history.groupby("epoch")[["loss_st", "loss_reg", "pl_accuracy"]].mean()


def headline(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Flat ``<table>/<method>/<dataset>`` accuracies (headline.json; real-dataset keys need DATA_ROOT)."""
    out = {}
    for name, long in tables.items():
        for (method, dataset), acc in long["accuracy"].items():
            out[f"{name}/{method}/{dataset}"] = round(float(acc), 2)
    return out

