"""Notebook 03's parts-world section: cross-domain few-shot, where fine-tuned maps look on the parts world's novel
classes (CC-CDFSL's "local misalignment", issue 18 item 4, made measurable).

The target is ``parts-novel`` (9 classes never rendered in pretraining, a sketch-like shift): a class
differs from its siblings in one *distinguishing* part, the fine-grained cue CC-CDFSL's abstract says
fine-tuned CLIP "can hardly focus on". Each episode (5-way K-shot, 15 queries per class, BSCD-FSL's
protocol, ``lib.methods.episodes``) is scored three ways on the same support and query images:
zero-shot (nothing trains), the profile's base tuning with cross-entropy (LayerNorm, as the demo's
notebook 03), and the same tuning with CC-CDFSL's cycle consistency and Semantic Anchor
(``lib.methods.finetune``'s switches, as ``cdfsl_episodes.CDFSL_METHODS``). Besides accuracy, each
query's two maps (``episode_runs.evaluate``: the [CLS] attention and the patch-to-class-text map) are
scored by their mass inside the query's distinguishing-part box, against a uniform map's. Differences
between methods are paired over episodes (same episodes, 95% CI as BSCD-FSL: 1.96 std / sqrt(E)).
Each episode's result is cached, so a warm rerun only reads.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lib.data import parts_world as world
from lib.data.parts_images import PartsWorld
from lib.features import cache as feature_cache
from lib.features.text import class_embeddings
from lib.methods import episode_runs
from lib.methods.episodes import mean_ci, sample_episodes
from lib.methods.finetune import CdfslConfig
from lib.models import ModelHandle
from lib.report.outputs import plus_minus

# the rows: CdfslConfig switches (CC-CDFSL as cdfsl_episodes.CDFSL_METHODS builds it on the base tuning)
METHODS: dict[str, dict] = {
    "Zero-shot": {"steps": 0},
    "LayerNorm (CE)": {},
    "LayerNorm + CC-CDFSL": {"cycle": True, "anchor_augment": True, "anchor_shrink": True},
}
MEASURES = {"accuracy": "accuracy (%)", "localisation_text": "text map in part box (%)",
            "localisation_cls": "[CLS] attention in part box (%)", "localisation_chance": "uniform map (%)"}


class DistinguishingPart(torch.utils.data.Dataset):
    """A parts-world split whose ``boxes`` are each image's distinguishing-part box (the box the
    localisation score of ``episode_runs.evaluate`` reads); images, labels and class names unchanged."""

    def __init__(self, data: PartsWorld):
        self.data, self.name, self.classnames, self.labels = data, data.name, data.classnames, data.labels
        varies = torch.tensor([world.PARTS.index(data.class_defs[int(y)].varies) for y in data.labels])
        self.boxes = data.part_boxes[torch.arange(len(varies)), varies]
        self.fingerprint = hashlib.sha256(f"{data.fingerprint}:distinguishing-part".encode()).hexdigest()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def target(settings: dict) -> DistinguishingPart:
    """The few-shot pool: ``episodes.n_per_class`` test renders of each novel class (seed: the block's first)."""
    opts = settings["episodes"]
    return DistinguishingPart(PartsWorld(world.domain_spec(opts["domain"]), "test", n_per_class=opts["n_per_class"],
                                         seed=settings["seeds"][0]))


def config(settings: dict, method: str) -> CdfslConfig:
    opts = settings["episodes"]
    return CdfslConfig(**{"tuning": opts["tuning"], **opts.get("config", {}), **METHODS[method]})


def run(handle: ModelHandle, settings: dict, cache: feature_cache.FeatureCache) -> pd.DataFrame:
    """Every method on every episode: a long table (method, episode, measure, value), values in %."""
    opts = settings["episodes"]
    data = target(settings)
    text = class_embeddings(handle, data.classnames, world.TEMPLATES, cache)
    episodes = sample_episodes(data.labels, opts["ways"], opts["shots"], opts["queries"], opts["n"], seed=0,
                               classnames=data.classnames, dataset=data.name)
    records = []
    jobs = [(m, e) for m in METHODS for e in range(len(episodes))]
    for method, e in tqdm(jobs, desc="parts-novel episodes", disable=None):
        episode, cfg = episodes[e], config(settings, method)
        head = text[list(episode.classes)]
        result = feature_cache.cached(
            handle, data, "parts-episode", episode_runs.episode_settings(episode, cfg, head),
            lambda: {k: v for k, v in episode_runs.train_and_score(handle, data, episode, head, cfg)[2].items()
                     if k in MEASURES}, cache=cache)
        for key in MEASURES:
            value = result[key].float().mean().item() * (1 if key == "accuracy" else 100)
            records.append({"method": method, "episode": e, "measure": MEASURES[key], "value": value})
    return pd.DataFrame.from_records(records)


def summary(long: pd.DataFrame) -> pd.DataFrame:
    """Methods x measures of "mean ± 95% CI half-width" over episodes."""
    cells = {}
    for (method, measure), group in long.groupby(["method", "measure"], sort=False):
        mean, half = mean_ci(group.sort_values("episode").value.to_numpy())
        cells.setdefault(method, {})[measure] = plus_minus(mean, half)
    return pd.DataFrame.from_dict(cells, orient="index")[list(MEASURES.values())]


def paired(long: pd.DataFrame, pairs: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """For each named (a, b) pair of methods: the mean of a - b over the same episodes and its 95% CI
    half-width, per measure (uniform map left out: the same images)."""
    rows = {}
    for name, (a, b) in pairs.items():
        for measure in list(MEASURES.values())[:3]:
            mean, half = mean_ci(differences(long, a, b, measure))
            rows.setdefault(name, {})[f"{measure}: mean"] = mean
            rows[name][f"{measure}: ± 95% CI"] = half
    return pd.DataFrame.from_dict(rows, orient="index")


def differences(long: pd.DataFrame, a: str, b: str, measure: str) -> np.ndarray:
    """Per-episode a - b of one measure (for the tests)."""
    pick = lambda m: long[(long.method == m) & (long.measure == measure)].sort_values("episode").value.to_numpy()  # noqa: E731
    return pick(a) - pick(b)


def example_maps(handle: ModelHandle, settings: dict, cache: feature_cache.FeatureCache, episode: int = 0,
                 n_queries: int = 4) -> dict:
    """For the figure: the first query of each of ``n_queries`` classes of one episode, and each method's
    patch-to-class-text map of them (fine-tuned on that episode's support set, as in ``run``)."""
    opts = settings["episodes"]
    data = target(settings)
    text = class_embeddings(handle, data.classnames, world.TEMPLATES, cache)
    chosen = sample_episodes(data.labels, opts["ways"], opts["shots"], opts["queries"], episode + 1, seed=0)[episode]
    per_class = len(chosen.query) // chosen.n_way
    picks = [c * per_class for c in range(min(n_queries, chosen.n_way))]
    head = text[list(chosen.classes)]

    def tuned_maps(cfg: CdfslConfig) -> torch.Tensor:
        tuned, _ = episode_runs.finetune_episode(handle, data, chosen, head, cfg)
        out = episode_runs.query_maps(tuned, episode_runs.query_pixels(tuned, data, chosen), chosen.query_labels)
        return out["text"][picks]

    maps = {}
    for method in METHODS:  # cached like the episodes: a warm run does not fine-tune again
        cfg = config(settings, method)
        maps[method] = feature_cache.cached(
            handle, data, "parts-episode-maps", {**episode_runs.episode_settings(chosen, cfg, head), "queries": picks},
            lambda: tuned_maps(cfg), cache=cache)
    indices = [chosen.query[i] for i in picks]
    return {"images": np.stack([data.data.images[i] for i in indices]), "boxes": data.boxes[indices],
            "classes": [data.classnames[i] for i in data.labels[indices].tolist()], "maps": maps}
