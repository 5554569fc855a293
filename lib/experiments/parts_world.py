"""Notebook 05's experiments: the parts world's zero-shot table, its part measurements and examples
(and notebook 01's theta curves on them). FAIR on the world is ``parts_fair``, the episodes ``parts_episodes``.

Per domain and seed (the seed draws the test renders and the crops), one ``evaluate`` call scores the
zero-shot methods through ``lib.methods.scoring`` and measures local alignment through
``lib.methods.part_alignment`` against the part boxes of ``lib.data.parts_world``. Features come
through the feature cache, so a warm rerun only scores. The settings are the profile's ``parts``
block (``lib/runtime/profiles/demo.yaml``).
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np
import ot
import pandas as pd
import torch
from tqdm import tqdm

from lib.data import parts_world as world
from lib.data.parts_images import PartsWorld
from lib.features import cache as feature_cache
from lib.features import crops as crop_sampler
from lib.features.descriptors import dclip_sentence
from lib.features.text import class_embeddings, description_features
from lib.methods import localisation, metrics, part_alignment, scoring, sinkhorn
from lib.models import ModelHandle, image_tokens, load_model
from lib.report.outputs import headline_key, plus_minus

# LaZSL's ablation rows (LaZSL Table 4's order), each the switches of ``scoring.lazsl_logits``
LAZSL_ROWS: dict[str, dict] = {
    "crops, no OT": {"ot": False, "select": False, "hybrid": False},
    "+ OT": {"ot": True, "select": False, "hybrid": False},
    "+ vision selection": {"ot": True, "select": True, "hybrid": False},
    "LaZSL (+ hybrid)": {"ot": True, "select": True, "hybrid": True},
}
PLAN_ROWS = ("+ OT", "LaZSL (+ hybrid)")  # rows whose plans are scored against the part boxes
ZERO_SHOT_ROWS = ("CLIP (templates)", "CLIP (one template)", "CuPL", "DCLIP", "WCA", *LAZSL_ROWS)


def block(cfg: dict) -> dict | None:
    """The profile's ``parts`` settings, or None where the profile runs no parts world."""
    return cfg.get("parts") or None


def model(cfg: dict) -> ModelHandle:
    """The block's model (``parts.model`` with ``parts.pretrained``) on the profile's device: what notebook
    05 runs on, loaded beside their own backbone by notebooks 01-04 for their parts-world sections."""
    settings = block(cfg)
    return load_model(settings["model"], settings["pretrained"], cfg["device"])


def test_set(domain: str, seed: int, n_per_class: int) -> PartsWorld:
    """The held-out renders of ``domain`` for ``seed`` (disjoint from the pretraining renders: another split)."""
    return PartsWorld(world.domain_spec(domain), "test", n_per_class=n_per_class, seed=seed)


def crop_spec(settings: dict, seed: int) -> crop_sampler.CropSpec:
    return crop_sampler.CropSpec(n=settings["n_crops"], alpha=settings["alpha"], beta=settings["beta"], seed=seed)


def text_side(handle: ModelHandle, classes: Sequence[world.ClassDef], cache: feature_cache.FeatureCache) -> dict:
    """Classifiers and description features of ``classes``: ``txt`` (template ensemble), ``single`` (the
    first template), ``dclip`` / ``cupl`` (C, P, d) one description per part in PARTS order, and the
    (C, P) mask (every description real)."""
    names = [c.name for c in classes]
    dclip = world.descriptions(classes, "dclip")
    cupl = world.descriptions(classes, "cupl")
    d_desc, mask = description_features(handle, [[dclip_sentence(n, d) for d in dclip[n]] for n in names], cache)
    c_desc, _ = description_features(handle, [cupl[n] for n in names], cache)
    return {"txt": class_embeddings(handle, names, world.TEMPLATES, cache),
            "single": class_embeddings(handle, names, world.TEMPLATES[:1], cache),
            "dclip": d_desc, "cupl": c_desc, "mask": mask}


def split_inputs(handle: ModelHandle, settings: dict, domain: str, seed: int, cache: feature_cache.FeatureCache,
                 with_crops: bool = True) -> tuple[PartsWorld, dict, dict | None]:
    """The test renders of ``domain`` and ``seed``, their classes' ``text_side`` and their crop features
    (``global``, ``crops``, ``boxes``; None without crops): what every scoring of a split starts from."""
    data = test_set(domain, seed, settings["n_per_class"])
    text = text_side(handle, data.class_defs, cache)
    feats = crop_sampler.crop_features(handle, data, crop_spec(settings, seed), cache=cache) if with_crops else None
    return data, text, feats


def evaluate(handle: ModelHandle, settings: dict, domain: str, seed: int, cache: feature_cache.FeatureCache,
             with_crops: bool = True) -> dict[str, float]:
    """Every row of notebook 05 for one domain and seed: accuracies (%), description cosines, part
    retrieval and plan part shares (%, with their chance / independent-coupling values)."""
    data, text, feats = split_inputs(handle, settings, domain, seed, cache, with_crops)
    y, mask = data.labels, text["mask"]
    out = {"chance": 100.0 / len(data.class_defs),
           "description cosine (DCLIP)": float(part_alignment.within_class_cosine(text["dclip"], mask).mean()),
           "description cosine (CuPL)": float(part_alignment.within_class_cosine(text["cupl"], mask).mean())}
    img = feats["global"] if with_crops else feature_cache.image_features(handle, data, cache=cache)
    out["CLIP (templates)"] = metrics.accuracy(scoring.clip_logits(img, text["txt"]), y)
    out["CLIP (one template)"] = metrics.accuracy(scoring.clip_logits(img, text["single"]), y)
    out["CuPL"] = metrics.accuracy(scoring.cupl_logits(img, text["cupl"], mask), y)
    out["DCLIP"] = metrics.accuracy(scoring.dclip_logits(img, text["dclip"], mask), y)
    if not with_crops:
        return out
    return out | crop_rows(feats, text, y, data.part_boxes, settings["theta"], settings["eps"], cache)


def crop_rows(feats: dict, text: dict, labels: torch.Tensor, part_boxes: torch.Tensor, theta: float, eps: float,
              cache: feature_cache.FeatureCache | None = None) -> dict[str, float]:
    """``evaluate``'s rows that score crops (WCA, ``LAZSL_ROWS`` with the plan part shares of ``PLAN_ROWS``,
    part retrieval), in that order, for one split's crop features (``global``, ``crops``, ``boxes``), text
    side, labels and part boxes; through ``cache`` when given (a warm rerun reads them instead of solving
    the transport plans again), keyed by those tensors, theta, eps, POT's version and the source of the
    modules that compute them (this one among them: its row definitions)."""
    img, crops, boxes, y, mask = feats["global"], feats["crops"], feats["boxes"], labels, text["mask"]

    def score() -> dict[str, torch.Tensor]:
        out = {"WCA": metrics.accuracy(scoring.wca_logits(crops, img, text["cupl"], mask, class_txt=text["single"]), y)}
        covers = part_alignment.covering(boxes, part_boxes)
        for row, switches in LAZSL_ROWS.items():
            logits, plans = scoring.lazsl_logits(crops, img, text["dclip"], mask, theta=theta, eps=eps,
                                                 return_plans=True, **switches)
            out[row] = metrics.accuracy(logits, y)
            if row in PLAN_ROWS:
                share, independent = part_alignment.plan_part_share(plans[torch.arange(len(y)), y], covers)
                out[f"plan part share, {row}"] = 100.0 * float(share.mean())
                out[f"plan part share, {row}: independent coupling"] = 100.0 * float(independent.mean())
        hit, chance = part_alignment.part_retrieval(crops, text["dclip"][y], covers)
        out["part retrieval"] = 100.0 * float(hit.float().mean())
        out["part retrieval: chance"] = 100.0 * float(chance.mean())
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}

    inputs = {"global": img, "crops": crops, "boxes": boxes, "labels": y, "part_boxes": part_boxes,
              **{f"text {k}": text[k] for k in ("cupl", "dclip", "single", "mask")}}
    values = feature_cache.cached_result(cache, "parts-crop-rows", inputs,
                                         {"theta": theta, "eps": eps, "pot": ot.__version__},
                                         [scoring, sinkhorn, metrics, part_alignment, sys.modules[__name__]], score)
    return {k: float(v) for k, v in values.items()}


THETA_ROWS = {"LaZSL (+ selection + hybrid)": True, "+ OT + hybrid, no selection": False}  # row -> vision selection


def theta_rows(handle: ModelHandle, settings: dict, cache: feature_cache.FeatureCache,
               thetas: Sequence[float]) -> pd.DataFrame:
    """LaZSL's accuracy (%) against its hybrid weight theta (S = (1 - theta) g + theta R; theta = 1: crops
    only) on each of the block's ``crop_domains`` and ``seeds``, with and without vision selection
    (``THETA_ROWS``), on ``evaluate``'s test renders and crops (read from the cache notebook 05 fills):
    rows parameter ("theta on parts-<domain>"), method, value, seed, accuracy."""
    records = []
    jobs = [(d, s) for d in settings["crop_domains"] for s in settings["seeds"]]
    for domain, seed in tqdm(jobs, desc="theta", disable=None):
        data, text, feats = split_inputs(handle, settings, domain, seed, cache)
        accuracy = theta_accuracies(feats, text, data.labels, thetas, settings["eps"], cache)
        for method, row in zip(THETA_ROWS, accuracy.tolist(), strict=True):
            for theta, value in zip(thetas, row, strict=True):
                records.append({"parameter": f"theta on parts-{domain}", "method": method, "value": float(theta),
                                "seed": seed, "accuracy": value})
    return pd.DataFrame.from_records(records)


def theta_accuracies(feats: dict, text: dict, labels: torch.Tensor, thetas: Sequence[float], eps: float,
                     cache: feature_cache.FeatureCache | None = None) -> torch.Tensor:
    """(len(THETA_ROWS), len(thetas)) LaZSL accuracies (%) of one split, each row's vision selection
    at each theta; through ``cache`` when given (a warm rerun reads the 12 scorings instead of solving
    their transport plans: about 6 s of notebook 01 on 2 cores), keyed by the split's features, text and
    labels, the settings, POT's version and the scoring code's source."""
    def score() -> torch.Tensor:
        return torch.tensor([[metrics.accuracy(scoring.lazsl_logits(feats["crops"], feats["global"], text["dclip"],
                                                                    text["mask"], theta=float(theta), eps=eps,
                                                                    select=select), labels)
                              for theta in thetas] for select in THETA_ROWS.values()], dtype=torch.float64)

    inputs = {"crops": feats["crops"], "global": feats["global"], "dclip": text["dclip"], "mask": text["mask"],
              "labels": labels}
    return feature_cache.cached_result(
        cache, "lazsl-theta", inputs,
        {"thetas": [float(t) for t in thetas], "eps": eps, "selection": list(THETA_ROWS.values()), "pot": ot.__version__},
        [scoring, sinkhorn, metrics], score)


def theta_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``theta_rows`` as (parameter, method) x theta of "mean ± std" over seeds."""
    stats = rows.groupby(["parameter", "method", "value"], sort=False).accuracy.agg(["mean", "std"])
    return stats.apply(lambda r: plus_minus(r["mean"], r["std"], 1), axis=1).unstack("value")


def theta_headline(rows: pd.DataFrame) -> dict[str, float]:
    """``theta | <method>, theta=<value> | parts-<domain>``: the mean accuracy over seeds of ``theta_rows``."""
    means = rows.groupby(["parameter", "method", "value"], sort=False).accuracy.mean()
    return {headline_key("theta", f"{method}, theta={value:g}", param.removeprefix("theta on ")): round(float(v), 2)
            for (param, method, value), v in means.items()}


def measure(handle: ModelHandle, settings: dict, cache: feature_cache.FeatureCache) -> pd.DataFrame:
    """``evaluate`` over the block's domains and seeds: a long table (domain, seed, row, value)."""
    records = []
    jobs = [(d, s) for d in settings["domains"] for s in settings["seeds"]]
    for domain, seed in tqdm(jobs, desc="parts world", disable=None):
        values = evaluate(handle, settings, domain, seed, cache, with_crops=domain in settings["crop_domains"])
        records += [{"domain": domain, "seed": seed, "row": k, "value": v} for k, v in values.items()]
    return pd.DataFrame.from_records(records)


def spread(long: pd.DataFrame, rows: Sequence[str], column: str = "domain") -> pd.DataFrame:
    """Rows x ``column`` values (domains) of "mean +- std over seeds" (blank where a row was not measured)."""
    table = long[long.row.isin(rows)].groupby(["row", column], sort=False).value.agg(["mean", "std"])
    cells = table.apply(lambda r: plus_minus(r["mean"], r["std"]), axis=1).unstack(column)
    columns = list(dict.fromkeys(long[column]))
    return cells.reindex(index=[r for r in rows if r in cells.index], columns=columns).fillna("")


def crop_scale_rows(handle: ModelHandle, settings: dict, domain: str, scales: dict[str, tuple[float, float]],
                    cache: feature_cache.FeatureCache) -> pd.DataFrame:
    """DCLIP and LaZSL's rows on ``domain`` with other crop scale ranges (name -> (alpha, beta)), per seed:
    a long table (crops, seed, row, value) of accuracies and plan part shares."""
    keep = ("DCLIP", *LAZSL_ROWS, *(f"plan part share, {r}{x}" for r in PLAN_ROWS for x in ("", ": independent coupling")))
    records = []
    for name, (alpha, beta) in scales.items():
        for seed in settings["seeds"]:
            values = evaluate(handle, {**settings, "alpha": alpha, "beta": beta}, domain, seed, cache)
            records += [{"crops": name, "seed": seed, "row": k, "value": values[k]} for k in keep]
    return pd.DataFrame.from_records(records)


def per_seed(long: pd.DataFrame, row: str, domain: str) -> np.ndarray:
    """The values of one row on one domain, one per seed (in seed order)."""
    sel = long[(long.row == row) & (long.domain == domain)].sort_values("seed")
    return sel.value.to_numpy()


def differences(long: pd.DataFrame, pairs: dict[str, tuple[str, str]], domain: str) -> pd.DataFrame:
    """For each named (a, b) pair: a - b on ``domain`` per seed, with its mean and minimum over seeds."""
    rows = {}
    for name, (a, b) in pairs.items():
        diff = per_seed(long, a, domain) - per_seed(long, b, domain)
        rows[name] = {**{f"seed {s}": d for s, d in zip(sorted(set(long.seed)), diff)},
                      "mean": diff.mean(), "min over seeds": diff.min()}
    return pd.DataFrame.from_dict(rows, orient="index")


def samples(settings: dict, per_domain: int = 6) -> dict:
    """The first test renders of every domain of the block, for ``parts_plots.world_samples``: one image
    of each of ``per_domain`` classes, with part boxes, class names and distinguishing parts."""
    rows = {}
    for domain in settings["domains"]:
        data = test_set(domain, settings["seeds"][0], 1)
        picks = np.linspace(0, len(data) - 1, per_domain).round().astype(int)
        defs = [data.class_defs[int(data.labels[i])] for i in picks]
        rows[f"parts-{domain}"] = ([data.images[i] for i in picks], data.part_boxes[picks], [c.name for c in defs],
                                   [world.PARTS.index(c.varies) for c in defs])
    return rows


def plan_example(handle: ModelHandle, settings: dict, domain: str, index: int,
                 cache: feature_cache.FeatureCache) -> dict:
    """One test image of ``domain`` (seed = the block's first) with its crops, part boxes and the
    true class's LaZSL plan (N, P) for the figure of the plan's crops per description."""
    data, text, feats = split_inputs(handle, settings, domain, settings["seeds"][0], cache)
    label = int(data.labels[index])
    sl = slice(index, index + 1)
    _, plans = scoring.lazsl_logits(feats["crops"][sl], feats["global"][sl], text["dclip"], text["mask"],
                                    theta=settings["theta"], eps=settings["eps"], return_plans=True)
    cls = data.class_defs[label]
    return {"image": data.images[index], "boxes": feats["boxes"][index], "parts": data.part_boxes[index],
            "plan": plans[0, label], "class": cls.name, "distinguishing": world.PARTS.index(cls.varies),
            "descriptions": [dclip_sentence(cls.name, d) for d in world.descriptions([cls], "dclip")[cls.name]],
            "covers": part_alignment.covering(feats["boxes"][sl], data.part_boxes[sl])[0]}


@torch.no_grad()
def part_maps(handle: ModelHandle, settings: dict, domain: str, n_images: int,
              cache: feature_cache.FeatureCache) -> dict:
    """Patch-text maps of each part description of the true class (``localisation.patch_text_maps``) on
    the first ``n_images`` test images, and each map's mass inside its part's box against chance."""
    data = test_set(domain, settings["seeds"][0], settings["n_per_class"])
    text = text_side(handle, data.class_defs, cache)
    n = min(n_images, len(data))
    pixels = torch.stack([handle.preprocess(data[i][0]) for i in range(n)])
    patches = localisation.patch_features(handle.model.visual, image_tokens(handle, pixels)["patches"].cpu())
    grid, view = handle.patch_grid, pixels.shape[-1]
    size = (data.spec.canvas, data.spec.canvas)
    desc = text["dclip"][data.labels[:n]]  # (n, P, d)
    maps = torch.stack([localisation.patch_text_maps(patches, desc[:, p], grid) for p in range(len(world.PARTS))], 1)
    cover = torch.stack([localisation.box_coverage(localisation.box_in_view(data.part_boxes[:n, p], size, view),
                                                   grid, view) for p in range(len(world.PARTS))], 1)
    mass = localisation.localisation_score(maps.flatten(0, 1), cover.flatten(0, 1)).reshape(n, -1)
    chance = localisation.chance_score(cover.flatten(0, 1)).reshape(n, -1)
    return {"images": data.images[:n], "maps": maps, "parts": data.part_boxes[:n], "mass": mass, "chance": chance,
            "classes": [data.class_defs[int(c)].name for c in data.labels[:n]]}


def headline(long: pd.DataFrame) -> dict[str, float]:
    """Mean over seeds of every measured row and domain, keyed ``parts world | <row> | parts-<domain>``."""
    means = long.groupby(["row", "domain"], sort=False).value.mean()
    return {headline_key("parts world", row, f"parts-{domain}"): round(float(v), 2) for (row, domain), v in means.items()}


def map_mass_table(maps: dict, parts: Sequence[str]) -> pd.DataFrame:
    """Per part (rows): the mean mass (%) of its description's patch-text map inside its box over the
    images of ``part_maps``, a uniform map's, and their ratio."""
    mass, chance = 100 * maps["mass"].mean(0), 100 * maps["chance"].mean(0)
    return pd.DataFrame({"mass in the part's box (%)": mass.numpy(), "uniform map (%)": chance.numpy(),
                         "ratio": (mass / chance).numpy()}, index=pd.Index(list(parts), name="part"))
