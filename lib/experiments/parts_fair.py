"""FAIR on the parts world's colour shift (notebook 02's parts section; notebook 04 draws its states).

FAIR (Algorithm 1 of ``../shared/papers/fair_paper.txt``) runs through ``lib.experiments.fair_ablations``
unchanged: the profile's ``fair`` block with the keys ``parts.fair`` overrides (``fair_profile``: the
dataset, split sizes and ``config`` keys, each default's reason in ``lib/runtime/profiles/demo.yaml``), on
the parts model (``parts_world.model``). Runs go through the feature cache, so notebook 04 reuses
notebook 02's FAIR run.
"""
from __future__ import annotations

import pandas as pd

from lib.experiments import fair_ablations, parts_world, tsne_confusion
from lib.features import cache as feature_cache
from lib.methods import metrics
from lib.models import ModelHandle
from lib.report.outputs import headline_numbers


def fair_profile(cfg: dict) -> dict:
    """``cfg`` with its ``fair`` block overridden by ``parts.fair`` (the dataset, split sizes and ``config``
    keys), for ``lib.experiments.fair_ablations`` to run FAIR on the parts world with the parts model."""
    opts = parts_world.block(cfg)["fair"]
    fair = {**cfg["fair"], **{k: v for k, v in opts.items() if k not in ("config", "dataset", "seeds", "table3")}}
    fair["config"] = {**cfg["fair"].get("config", {}), **opts.get("config", {})}
    fair["datasets"] = [opts["dataset"]]
    return {**cfg, "fair": fair}


def fair_rows(handle: ModelHandle, cfg: dict, cache: feature_cache.FeatureCache) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy table: zero-shot (CuPL, FAIR's starting point) and FAIR per seed, final and best epoch;
    the pseudo-label accuracy per epoch of each run) on ``parts.fair.dataset``."""
    fcfg, opts = fair_profile(cfg), parts_world.block(cfg)["fair"]
    name = opts["dataset"]
    logits, labels, _ = fair_ablations.zero_shot_logits(handle, fcfg, cache, name)
    rows = [{"method": fair_ablations.CUPL_ZERO_SHOT, "seed": "-", "accuracy": metrics.accuracy(logits, labels)}]
    curves = {}
    for seed in opts["seeds"]:
        result = fair_ablations.outcome(handle, fcfg, cache, fair_ablations.FairJob(name, "FAIR", seed=seed))
        rows.append({"method": "FAIR", "seed": str(seed), "accuracy": result.accuracy,
                     fair_ablations.BEST: result.best_accuracy})
        curves[f"seed {seed}"] = 100 * fair_ablations.history(result)["pl_accuracy"]
    return pd.DataFrame(rows).set_index(["method", "seed"]), pd.DataFrame(curves)


def gain_over_zero_shot(table: pd.DataFrame) -> pd.Series:
    """FAIR's final accuracy minus zero-shot's (points) per training seed of ``fair_rows``'s table, then
    their mean and sample std (NaN with one seed): how much of a gain is the seed's and how much FAIR's."""
    zero_shot = table.loc[(fair_ablations.CUPL_ZERO_SHOT, "-"), "accuracy"]
    gains = table.xs("FAIR", level="method")["accuracy"] - zero_shot
    return pd.concat([gains.rename(lambda seed: f"seed {seed}"),
                      pd.Series({"mean": gains.mean(), "std": gains.std(ddof=1)})]).rename("FAIR minus zero-shot")


def headline(table: pd.DataFrame) -> dict[str, float]:
    """``fair_parts_colour | FAIR minus zero-shot | seed <s>`` (and ``| mean``, ``| std``) of ``fair_rows``'s
    table, for notebook 02's headline.json."""
    return headline_numbers(gain_over_zero_shot(table), "fair_parts_colour", "FAIR minus zero-shot", digits=2)


def fair_table3(handle: ModelHandle, cfg: dict, cache: feature_cache.FeatureCache) -> pd.DataFrame:
    """FAIR's Table 3 (``fair_ablations.TABLES["table3"]``: its ablations, then FAIR) on ``parts.fair.dataset``
    with the block's settings and its first training seed, trained here one after another as ``fair_rows``
    trains FAIR (whose run it reuses): rows (zero-shot first), columns final and best-epoch accuracy and
    FAIR's final accuracy minus the row's."""
    fcfg, opts = fair_profile(cfg), parts_world.block(cfg)["fair"]
    fcfg = {**fcfg, "fair": {**fcfg["fair"], "config": {**fcfg["fair"]["config"], "seed": opts["seeds"][0]}}}
    long = fair_ablations.table(handle, fcfg, cache, "table3", [opts["dataset"]]).droplevel("dataset")
    long["FAIR minus row"] = long.loc["FAIR", fair_ablations.FINAL] - long[fair_ablations.FINAL]
    return long


def fair_states(handle: ModelHandle, cfg: dict, cache: feature_cache.FeatureCache) -> dict[str, dict]:
    """Notebook 04's before / after states (``tsne_confusion.states``) on ``parts.fair.dataset``: the frozen
    parts model with CuPL's anchors, and FAIR's run of ``fair_rows`` (its first training seed; reused
    from the cache when notebook 02 trained it)."""
    fcfg, opts = fair_profile(cfg), parts_world.block(cfg)["fair"]
    return tsne_confusion.states(handle, fcfg, cache, [opts["dataset"]], seed=opts["seeds"][0])
