"""Notebook 03's tables and maps from the CDFSL jobs of ``lib.experiments.cdfsl_episodes``.

Accuracy (mean +- 95% CI over episodes, the BSCD-FSL convention), the D-Trap code's accuracy after
each fifth of training (``checkpoint_table``), the remedy's table of accuracy and CE-split margins
(``remedy_table``), the logged loss terms per iteration (``loss_split``), the localisation score,
the attention maps of one episode, and the headline numbers.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from lib.data import DEMO_PREFIX
from lib.experiments.cdfsl_episodes import (
    CHECKPOINT_ROWS,
    DTRAP_ROWS,
    EXPERIMENT,
    MAIN,
    EpisodeJob,
    config,
    episodes,
    history_frame,
    method_text,
    pool,
    results,
    table_jobs,
)
from lib.features import cache as feature_cache
from lib.methods import episode_runs
from lib.methods import episodes as episode_sampler
from lib.report.outputs import headline_numbers, plus_minus



def accuracy_table(handle, cfg, cache, targets: Sequence[str], methods: Sequence[str] = MAIN,
                   shots: Sequence[int] | None = None, data_root=None) -> pd.DataFrame:
    """Long table (index method, dataset, shots; columns accuracy, ci95, episodes): mean +- 95% CI."""
    records = []
    for job in table_jobs(cfg, targets, methods, shots):
        accs = [r["accuracy"].item() for r in results(handle, cfg, cache, job, data_root)]
        mean, ci = episode_sampler.mean_ci(accs)
        records.append((job.method, job.target, job.shots, mean, ci, len(accs)))
    return pd.DataFrame(records, columns=["method", "dataset", "shots", "accuracy", "ci95", "episodes"]
                        ).set_index(["method", "dataset", "shots"])


def ci_cells(long: pd.DataFrame) -> pd.DataFrame:
    """Methods x (dataset, shots) cells "mean ± ci", in the methods' order."""
    cells = long.apply(lambda r: plus_minus(r["accuracy"], r["ci95"]), axis=1).rename("cell")
    out = cells.reset_index().pivot(index="method", columns=["dataset", "shots"], values="cell")
    order = list(dict.fromkeys(long.index.get_level_values("method")))
    out = out.loc[order]
    out.columns = [f"{d} {k}-shot" for d, k in out.columns]
    return out


def localisation_table(handle, cfg, cache, target: str, methods: Sequence[str], shots: int,
                       seeds: Sequence[int], data_root=None) -> pd.DataFrame:
    """Long table (index method, seed; columns [CLS] map, text map, chance): the mean localisation
    score over every query image of every episode of one episode stream (seed)."""
    records = []
    for seed in seeds:
        for method in methods:
            runs = results(handle, cfg, cache, EpisodeJob(target, method, shots, seed), data_root)
            if "localisation_cls" not in runs[0]:
                raise ValueError(f"CDFSL target {target!r} has no object boxes: no localisation score")
            mean = lambda key: float(torch.cat([r[key] for r in runs]).mean())  # noqa: E731
            records.append((method, seed, mean("localisation_cls"), mean("localisation_text"),
                            mean("localisation_chance")))
    return pd.DataFrame(records, columns=["method", "seed", "[CLS] attention", "patch-text map", "chance"]
                        ).set_index(["method", "seed"])


FIFTHS = ["1/5", "2/5", "3/5", "4/5", "5/5"]


def checkpoint_table(handle, cfg, cache, targets: Sequence[str], methods: Sequence[str] = CHECKPOINT_ROWS,
                     shots: Sequence[int] | None = None, data_root=None) -> pd.DataFrame:
    """Long table (index method, dataset, shots, checkpoint; columns accuracy, ci95, episodes): the
    query accuracy after each fifth of training (the D-Trap code's log), mean +- 95% CI over episodes
    (NaN where the fifth rounds to no iteration)."""
    records = []
    for job in table_jobs(cfg, targets, methods, shots):
        scored = torch.stack([r["checkpoints"] for r in results(handle, cfg, cache, job, data_root)]).numpy()
        names = FIFTHS if scored.shape[1] == len(FIFTHS) else [f"{k + 1}/{scored.shape[1]}" for k in range(scored.shape[1])]
        for name, column in zip(names, scored.T):
            mean, ci = episode_sampler.mean_ci(column) if np.isfinite(column).all() else (np.nan, np.nan)
            records.append((job.method, job.target, job.shots, name, mean, ci, len(column)))
    return pd.DataFrame(records, columns=["method", "dataset", "shots", "checkpoint", "accuracy", "ci95", "episodes"]
                        ).set_index(["method", "dataset", "shots", "checkpoint"])


def checkpoint_cells(long: pd.DataFrame) -> pd.DataFrame:
    """(method, dataset, shots) x checkpoints cells "mean ± ci" ("n/a" where not scored)."""
    cells = long.apply(lambda r: "n/a" if np.isnan(r["accuracy"]) else plus_minus(r["accuracy"], r["ci95"]),
                       axis=1).rename("cell")
    out = cells.reset_index().pivot(index=["method", "dataset", "shots"], columns="checkpoint", values="cell")
    order = list(dict.fromkeys(long.index.droplevel("checkpoint")))
    return out.loc[order, list(dict.fromkeys(long.index.get_level_values("checkpoint")))]


REMEDY_PARTS = {"margin_visual": "visual margin", "margin_cross_modal": "cross-modal margin"}


def remedy_table(handle, cfg, cache, target: str, methods: Sequence[str] = DTRAP_ROWS, shots: int | None = None,
                 data_root=None) -> pd.DataFrame:
    """Long table (index method, dataset, shots): query accuracy and, from the CE split of the training
    batch, each margin at the last iteration and its change over training, each mean with its 95% CI
    over episodes (columns ``<quantity>`` and ``<quantity> ci95``)."""
    shots = shots if shots is not None else max(EXPERIMENT.block(cfg)["shots"])
    records = []
    for method in methods:
        runs = results(handle, cfg, cache, EpisodeJob(target, method, shots), data_root)
        row = {"method": method, "dataset": target, "shots": shots, "episodes": len(runs)}
        values = {"accuracy": [r["accuracy"].item() for r in runs]}
        for column, label in REMEDY_PARTS.items():
            frames = [history_frame(r)[column] for r in runs]
            values[label] = [f.iloc[-1] for f in frames]
            values[f"{label} change"] = [f.iloc[-1] - f.iloc[0] for f in frames]
        for name, column in values.items():
            row[name], row[f"{name} ci95"] = episode_sampler.mean_ci(column)
        records.append(row)
    return pd.DataFrame(records).set_index(["method", "dataset", "shots"])


def remedy_cells(long: pd.DataFrame) -> pd.DataFrame:
    """A ``remedy_table`` as "mean ± ci" cells, one column per quantity."""
    names = [c for c in long.columns if not c.endswith(" ci95") and c != "episodes"]
    return pd.DataFrame({n: [plus_minus(m, c) for m, c in zip(long[n], long[f"{n} ci95"])] for n in names},
                        index=long.index.get_level_values("method"))


SPLIT_PARTS = {"margin_visual": "visual margin", "margin_cross_modal": "cross-modal margin", "ce": "CE loss"}
CYCLE_PARTS = {"cycle_image": "L_cyc_img", "cycle_text": "L_cyc_txt", "ce": "CE loss"}


def loss_split(handle, cfg, cache, target: str, methods: Sequence[str], shots: int, seed: int = 0,
               data_root=None, parts: dict[str, str] = SPLIT_PARTS) -> pd.DataFrame:
    """Logged quantities (``parts``: history column -> label; default the CE split's two margins and
    the CE loss) averaged over the episodes: long (method, step, part, value)."""
    frames = []
    for method in methods:
        runs = results(handle, cfg, cache, EpisodeJob(target, method, shots, seed), data_root)
        mean = sum(history_frame(r) for r in runs) / len(runs)
        mean["method"] = method
        frames.append(mean)
    long = pd.concat(frames).melt(id_vars=["method", "step"], value_vars=list(parts), var_name="part")
    long["part"] = long["part"].map(parts)
    return long


def first_last(long: pd.DataFrame) -> pd.DataFrame:
    """A ``loss_split`` table's first and last value per (method, part) and the change."""
    ends = long.groupby(["method", "part"], sort=False)["value"].agg(first="first", last="last")
    ends["change"] = ends["last"] - ends["first"]
    return ends


def episode_maps(handle, cfg, cache, target: str, method: str, shots: int, n_images: int = 4,
                 seed: int = 0, data_root=None) -> dict[str, torch.Tensor]:
    """The maps of episode 0's first query image of each of its first ``n_images`` classes, after
    fine-tuning with ``method``: ``index`` (dataset indices), ``labels``, ``cls`` and ``text`` maps
    (n, gh, gw), ``predictions``. Cached (kind ``cdfsl-maps``)."""
    dataset = pool(cfg, target, data_root)
    episode = episodes(cfg, dataset, shots, seed)[0]
    per_class = len(episode.query) // episode.n_way
    picks = [c * per_class for c in range(min(n_images, episode.n_way))]
    text = method_text(handle, cfg, dataset, cache, method)[list(episode.classes)]
    conf = config(cfg, method, seed, target)

    def compute():
        tuned, _ = episode_runs.finetune_episode(handle, dataset, episode, text, conf)
        index = [episode.query[p] for p in picks]
        labels = episode.query_labels[picks]
        transform = tuned.query_transform()
        pixels = torch.stack([transform(dataset[i][0]) for i in index])
        out = episode_runs.query_maps(tuned, pixels, labels)
        return {"index": torch.tensor(index), "labels": labels, "cls": out["cls"], "text": out["text"],
                "predictions": out["logits"].argmax(1)}

    settings = {**episode_runs.episode_settings(episode, conf, text), "picks": picks}
    return feature_cache.cached(handle, dataset, "cdfsl-maps", settings, compute, cache=cache)


def final_accuracy(checkpoints: pd.DataFrame) -> pd.DataFrame:
    """The last checkpoint of a ``checkpoint_table`` (the end of training) as an accuracy table."""
    last = checkpoints.index.get_level_values("checkpoint")[-1]
    return checkpoints.xs(last, level="checkpoint")


def headline(accuracy: pd.DataFrame, localisation: pd.DataFrame | None,
             remedy: pd.DataFrame | None = None) -> dict[str, float]:
    """The numbers pytest compares with the committed ones: each demo cell's mean accuracy
    (``accuracy | <method> | <dataset> | <k>-shot``, once per cell), the mean localisation score of each
    method (``localisation | <method> | <map>``) and, on a demo target, each ``remedy_table`` quantity
    (``remedy | <method> | <quantity>``)."""
    accuracy = accuracy[~accuracy.index.duplicated()]
    demo = accuracy["accuracy"][accuracy.index.get_level_values("dataset").str.startswith(DEMO_PREFIX)]
    out = headline_numbers(demo.rename(lambda k: f"{k}-shot", level="shots"), "accuracy", digits=2)
    if localisation is not None:
        means = localisation.groupby(level="method", sort=False)[["[CLS] attention", "patch-text map"]].mean()
        out.update(headline_numbers(means.stack(), "localisation", digits=4))
    if remedy is not None:
        demo_rows = remedy[remedy.index.get_level_values("dataset").str.startswith(DEMO_PREFIX)]
        values = demo_rows.drop(columns=[c for c in demo_rows.columns if c.endswith("ci95") or c == "episodes"])
        values = values.droplevel(["dataset", "shots"]).drop(columns="accuracy")
        out.update(headline_numbers(values.stack(), "remedy", digits=3))
    return out


def overlay_inputs(cfg, target: str, maps: dict[str, dict[str, torch.Tensor]], data_root=None):
    """(images as arrays, boxes in view pixels or None, class names) of the pictured queries."""
    dataset = pool(cfg, target, data_root)
    first = next(iter(maps.values()))
    index = first["index"].tolist()
    images = [np.asarray(dataset[i][0].convert("RGB")) for i in index]
    names = [dataset.classnames[int(dataset.labels[i])] for i in index]
    boxes = getattr(dataset, "boxes", None)
    return images, (boxes[index].float() if boxes is not None else None), names
