"""Notebook 03: cross-domain few-shot experiments as data: named methods, episode jobs, tables and maps.

A method is a set of ``lib.methods.finetune.CdfslConfig`` switches (``CDFSL_METHODS``). CC-CDFSL and D-Trap build on
the profile's ``base`` tuning (the demo profile: LayerNorm, its best baseline; the paper profile:
LoRA, the CC-CDFSL summary's CLIP-LoRA). A job is (target, method, shots, episode seed); its episodes
go through the feature cache one by one, so notebook 03 and the tests share them, and ``prefetch``
trains jobs in worker processes with one torch thread each (``EXPERIMENT``, ``lib.experiments.protocol``).

Episodes come from each target's test split (the BSCD-FSL targets are test-only pools). The
profile's ``cdfsl`` block holds the targets, shots, episode counts and config overrides.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lib import models
from lib.data import DEMO_PREFIX, open_datasets
from lib.experiments.protocol import Experiment, config_from
from lib.features import cache as feature_cache
from lib.features.text import class_embeddings, templates
from lib.methods import episodes as episode_sampler
from lib.methods import finetune
from lib.methods.episodes import Episode
from lib.report.outputs import headline_numbers
from lib.runtime import locations

BASE = "base"  # in CDFSL_METHODS: replaced by the profile's base tuning
CDFSL_METHODS: dict[str, dict] = {
    "Zero-shot (prompt ensemble)": {"steps": 0, "tuning": "ln"},
    "CoOp (prompt context)": {"tuning": "coop"},
    "LayerNorm": {"tuning": "ln"},
    "LoRA": {"tuning": "lora"},
    "Full fine-tuning": {"tuning": "full"},
    "CC-CDFSL": {"tuning": BASE, "cycle": True, "anchor_augment": True, "anchor_shrink": True},
    "CC-CDFSL w/o Semantic Anchor": {"tuning": BASE, "cycle": True},
    "CC-CDFSL w/o augment": {"tuning": BASE, "cycle": True, "anchor_shrink": True},
    "CC-CDFSL w/o shrink": {"tuning": BASE, "cycle": True, "anchor_augment": True},
    "D-Trap": {"tuning": BASE, "perturb": True, "align": True},
    "D-Trap w/o alignment": {"tuning": BASE, "perturb": True},
    "D-Trap w/o perturbation": {"tuning": BASE, "align": True},
}
PROMPT_ZERO_SHOT = "Zero-shot (prompt ensemble)"
MAIN = [PROMPT_ZERO_SHOT, "CoOp (prompt context)", "LayerNorm", "LoRA", "Full fine-tuning", "CC-CDFSL", "D-Trap"]
ABLATION = ["CC-CDFSL", "CC-CDFSL w/o Semantic Anchor", "CC-CDFSL w/o augment", "CC-CDFSL w/o shrink",
            "D-Trap", "D-Trap w/o alignment", "D-Trap w/o perturbation"]
MAP_METHODS = [PROMPT_ZERO_SHOT, "CC-CDFSL", "D-Trap"]  # plus the base baseline, named in ``map_methods``


def base_name(cfg: dict) -> str:
    """The method row of the profile's base tuning (``LayerNorm`` for ``base: ln``)."""
    base = EXPERIMENT.block(cfg).get("base", "lora")
    names = {"coop": "CoOp (prompt context)", "ln": "LayerNorm", "lora": "LoRA", "full": "Full fine-tuning"}
    if base not in names:
        raise ValueError(f"cdfsl parameter base={base!r} is not one of {sorted(names)}")
    return names[base]


def map_methods(cfg: dict) -> list[str]:
    """The methods whose maps notebook 03 draws: zero-shot, the base baseline, CC-CDFSL, D-Trap."""
    return [PROMPT_ZERO_SHOT, base_name(cfg), "CC-CDFSL", "D-Trap"]


def config(cfg: dict, method: str, seed: int = 0) -> finetune.CdfslConfig:
    """The CdfslConfig of ``method``: the profile's overrides, the method's switches, its learning rate."""
    if method not in CDFSL_METHODS:
        raise KeyError(f"unknown CDFSL method {method!r}; known: {list(CDFSL_METHODS)}")
    opts = EXPERIMENT.block(cfg)
    switches = dict(CDFSL_METHODS[method])
    if switches.get("tuning") == BASE:
        switches["tuning"] = opts.get("base", "lora")
    settings = {**opts.get("config", {}), **switches, "seed": seed}
    lr = opts.get("lr_by_tuning", {}).get(settings["tuning"])
    if lr is not None and "lr" not in opts.get("config", {}):
        settings["lr"] = lr
    return config_from(finetune.CdfslConfig, settings, "CDFSL")


@dataclass(frozen=True)
class EpisodeJob:
    """One table cell: ``episodes`` episodes of ``shots``-shot on ``target`` with ``method``."""

    target: str
    method: str
    shots: int
    seed: int = 0  # the episode stream (also the fine-tuning seed)

    def __post_init__(self):
        if self.method not in CDFSL_METHODS:
            raise KeyError(f"unknown CDFSL method {self.method!r}; known: {list(CDFSL_METHODS)}")


def pool(cfg: dict, name: str, data_root: str | Path | None = None):
    """The labelled pool episodes of ``name`` are drawn from (its test split), opened once per process."""
    root = locations.data_root(data_root)
    return _pool(name, str(root) if root else None, cfg["seed"])


@functools.lru_cache(maxsize=16)
def _pool(name: str, data_root: str | None, seed: int):
    found, skipped = open_datasets([name], "test", data_root, seed)
    if name not in found:
        raise FileNotFoundError(f"CDFSL target {name!r} is not available: {skipped.get(name, 'not found')}")
    return found[name]


def class_text(handle: models.ModelHandle, cfg: dict, dataset, cache: feature_cache.FeatureCache) -> torch.Tensor:
    """(C, d) the prompt-ensemble class features of ``dataset`` (the profile's templates)."""
    return class_embeddings(handle, dataset.classnames, templates(cfg["templates"]), cache)


def episodes(cfg: dict, dataset, shots: int, seed: int = 0) -> list[Episode]:
    opts = EXPERIMENT.block(cfg)
    return episode_sampler.sample_episodes(dataset.labels, opts.get("ways", 5), shots, opts.get("queries", 15),
                                 opts.get("episodes", 600), seed, dataset.classnames, dataset.name)


def run_episode(handle: models.ModelHandle, dataset, episode: Episode, class_text: torch.Tensor,
                config: finetune.CdfslConfig, cache: feature_cache.FeatureCache | None = None) -> dict[str, torch.Tensor]:
    """Fine-tune on ``episode``'s support set and score its queries, through the cache.

    ``class_text`` (C, d): the prompt features of every class of ``dataset``; the episode reads its
    rows. Returns ``accuracy``, ``predictions``, ``history`` (steps x ``finetune.STEP_LOG``) and, with boxes,
    ``localisation_cls`` / ``localisation_text`` / ``localisation_chance`` per query.
    """
    text = class_text[list(episode.classes)]

    def compute():
        tuned, history = finetune.finetune_episode(handle, dataset, episode, text, config)
        result = finetune.evaluate(tuned, dataset, episode)
        result["history"] = torch.tensor(history.to_numpy(dtype=np.float64)).reshape(len(history), len(finetune.STEP_LOG))
        return result

    return feature_cache.cached(handle, dataset, "cdfsl", finetune.episode_settings(episode, config, text), compute, cache=cache)


def history_frame(result: dict[str, torch.Tensor]) -> pd.DataFrame:
    """A cached run's ``history`` tensor as a DataFrame with ``finetune.STEP_LOG`` columns."""
    return pd.DataFrame(result["history"].numpy(), columns=list(finetune.STEP_LOG))


def run_episodes(handle: models.ModelHandle, dataset, episodes: Sequence[Episode], class_text: torch.Tensor,
                 config: finetune.CdfslConfig, cache: feature_cache.FeatureCache | None = None,
                 desc: str | None = None) -> list[dict[str, torch.Tensor]]:
    """``run_episode`` over ``episodes`` with a progress bar."""
    return [run_episode(handle, dataset, e, class_text, config, cache)
            for e in tqdm(episodes, desc=desc or "episodes", disable=None, leave=False)]


def results(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, job: EpisodeJob,
            data_root: str | Path | None = None) -> list[dict[str, torch.Tensor]]:
    """Every episode of ``job``, trained (or read from the cache) and scored."""
    dataset = pool(cfg, job.target, data_root)
    return run_episodes(handle, dataset, episodes(cfg, dataset, job.shots, job.seed),
                              class_text(handle, cfg, dataset, cache), config(cfg, job.method, job.seed), cache,
                              desc=f"{job.method} {job.target} {job.shots}-shot")


EXPERIMENT = Experiment("cdfsl", "CDFSL", "CDFSL job(s)", results)  # block, available, prefetch


def table_jobs(cfg: dict, targets: Sequence[str], methods: Sequence[str] = MAIN,
               shots: Sequence[int] | None = None) -> list[EpisodeJob]:
    shots = shots if shots is not None else EXPERIMENT.block(cfg).get("shots", [1, 5])
    return [EpisodeJob(t, m, k) for t in targets for k in shots for m in methods]


# --------------------------------------------------------------------------------------------------
# Tables


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
    cells = long.apply(lambda r: f"{r['accuracy']:.2f} ± {r['ci95']:.2f}", axis=1).rename("cell")
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
    text = class_text(handle, cfg, dataset, cache)[list(episode.classes)]
    conf = config(cfg, method, seed)

    def compute():
        tuned, _ = finetune.finetune_episode(handle, dataset, episode, text, conf)
        index = [episode.query[p] for p in picks]
        labels = episode.query_labels[picks]
        pixels = torch.stack([handle.preprocess(dataset[i][0]) for i in index])
        out = finetune.query_maps(tuned, pixels, labels)
        return {"index": torch.tensor(index), "labels": labels, "cls": out["cls"], "text": out["text"],
                "predictions": out["logits"].argmax(1)}

    settings = {**finetune.episode_settings(episode, conf, text), "picks": picks}
    return feature_cache.cached(handle, dataset, "cdfsl-maps", settings, compute, cache=cache)


def headline(accuracy: pd.DataFrame, localisation: pd.DataFrame | None) -> dict[str, float]:
    """The numbers pytest compares with the committed ones: each demo cell's mean accuracy
    (``accuracy | <method> | <dataset> | <k>-shot``) and the mean localisation score of each method
    (``localisation | <method> | <map>``)."""
    demo = accuracy["accuracy"][accuracy.index.get_level_values("dataset").str.startswith(DEMO_PREFIX)]
    out = headline_numbers(demo.rename(lambda k: f"{k}-shot", level="shots"), "accuracy", digits=2)
    if localisation is not None:
        means = localisation.groupby(level="method", sort=False)[["[CLS] attention", "patch-text map"]].mean()
        out.update(headline_numbers(means.stack(), "localisation", digits=4))
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
