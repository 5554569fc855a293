"""Notebook 01's experiments: zero-shot method x dataset tables, LaZSL's ablation, sweeps and timing.

Features come through the on-disk cache (``lib.features``), scores through ``lib.methods.scoring``;
this module only wires them together for the notebook. ``ZERO_SHOT_METHODS`` maps each row name of
the LaZSL tables to one scoring call, ``LAZSL_ABLATION`` each ablation row to the keyword arguments of
``scoring.lazsl_logits``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from lib.data import DEMO_PREFIX, demo_world
from lib.features import cache as feature_cache
from lib.features import crops as crop_sampler
from lib.features.text import (
    DescriptorFile,
    DescriptorFileMissing,
    class_embeddings,
    description_features,
    descriptor_file,
    label_space,
    templates,
)
from lib.methods import metrics, scoring
from lib.models import ModelHandle, encode_images
from lib.report.outputs import headline_numbers, plus_minus

# --------------------------------------------------------------------------------------------------
# Everything one dataset's scores need


@dataclass
class Inputs:
    """The features of one dataset that every method's scoring call takes (all L2-normalised)."""

    labels: torch.Tensor
    img: torch.Tensor  # (B, d) global image features
    txt: torch.Tensor  # (C, d) template-ensemble classifier
    single: torch.Tensor  # (C, d) single-template classifier (class_prompt)
    desc: torch.Tensor | None = None  # (C, M, d)
    mask: torch.Tensor | None = None  # (C, M)
    crops: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # crop seed -> crop features
    descriptors: DescriptorFile | None = None  # the file desc was read from, paired with the classes
    left_out: str | None = None  # why there are no descriptions (the descriptor methods are left out)

    def to(self, device: str | torch.device) -> "Inputs":
        """The same features on ``device`` (scoring runs where the profile's model runs; the cache
        keeps them on the CPU)."""
        move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return Inputs(self.labels, move(self.img), move(self.txt), move(self.single), move(self.desc),
                      move(self.mask), {s: {k: move(v) for k, v in c.items()} for s, c in self.crops.items()},
                      self.descriptors, self.left_out)


def gather_inputs(handle: ModelHandle, dataset, cfg: dict, cache: feature_cache.FeatureCache, *,
                  seeds: Sequence[int] = (), spec: crop_sampler.CropSpec | None = None,
                  data_root: str | Path | None = None) -> Inputs:
    """Global, text, description and (for each crop seed) crop features of ``dataset`` under ``cfg``.

    Descriptions come from the file the profile's ``descriptors`` entry names; where it names none, or
    the file is not there, the descriptor methods are left out and ``left_out`` says why. A file that
    does not fit the classes is an error (``lib.features.descriptors``)."""
    inputs = Inputs(
        labels=dataset.labels,
        img=feature_cache.image_features(handle, dataset, cache=cache, batch_size=cfg["batch_size"]),
        txt=class_embeddings(handle, dataset.classnames, templates(cfg["templates"]), cache),
        single=class_embeddings(handle, dataset.classnames, (cfg["class_prompt"],), cache),
    )
    try:
        inputs.descriptors = descriptor_file(dataset.name, dataset.classnames, cfg.get("descriptors") or {}, data_root,
                                             label_space(dataset))
        inputs.desc, inputs.mask = description_features(handle, inputs.descriptors.sentences, cache)
    except DescriptorFileMissing as missing:
        inputs.left_out = f"{missing}: CuPL, DCLIP, WCA and LaZSL are left out"
    spec = spec or crop_spec(cfg)
    for seed in seeds:
        inputs.crops[seed] = crop_sampler.crop_features(
            handle, dataset, dataclasses.replace(spec, seed=seed),
            cache=cache, batch_size=cfg["batch_size"])
    return inputs.to(cfg["device"])


def crop_spec(cfg: dict, seed: int = 0, **overrides) -> crop_sampler.CropSpec:
    settings = {"n": cfg["n_crops"], "alpha": cfg["alpha"], "beta": cfg["beta"], "seed": seed, **overrides}
    return crop_sampler.CropSpec(**settings)


# --------------------------------------------------------------------------------------------------
# Methods: one scoring call each


def _lazsl(**switches) -> Callable:
    def score(x: Inputs, c: dict, cfg: dict) -> torch.Tensor:
        kwargs = {"theta": cfg["theta"], "eps": cfg["eps"], **switches}
        return scoring.lazsl_logits(c["crops"], c["global"], x.desc, x.mask, **kwargs)
    return score


# name -> (needs descriptions, needs crops, scoring call(inputs, crop features or None, cfg))
ZERO_SHOT_METHODS: dict[str, tuple[bool, bool, Callable]] = {
    "CLIP (templates)": (False, False, lambda x, c, cfg: scoring.clip_logits(x.img, x.txt)),
    "CLIP (single)": (False, False, lambda x, c, cfg: scoring.clip_logits(x.img, x.single)),
    "CuPL": (True, False, lambda x, c, cfg: scoring.cupl_logits(x.img, x.desc, x.mask)),
    "DCLIP": (True, False, lambda x, c, cfg: scoring.dclip_logits(x.img, x.desc, x.mask)),
    "WCA": (True, True, lambda x, c, cfg: scoring.wca_logits(c["crops"], c["global"], x.desc, x.mask, x.single)),
    "LaZSL": (True, True, _lazsl()),
}

# LaZSL's ablation table (rows in the paper's order; "crops, no OT" is ours: the same crops and
# hybrid similarity averaged with the independent coupling a b^T, to isolate what the plan adds)
LAZSL_ABLATION: dict[str, dict | None] = {
    "Baseline (DCLIP)": None,
    "crops, no OT (ours)": {"ot": False, "select": False, "hybrid": False},
    "+ OT": {"select": False, "hybrid": False},
    "+ OT + VS": {"select": True, "hybrid": False},
    "+ OT + Hybrid": {"select": False, "hybrid": True},
    "LaZSL (full)": {"select": True, "hybrid": True},
}


def _resolve(name: str) -> tuple[bool, bool, Callable]:
    """(needs descriptions, needs crops, scoring call) of a ``ZERO_SHOT_METHODS`` or ``LAZSL_ABLATION`` row."""
    if name in ZERO_SHOT_METHODS:
        return ZERO_SHOT_METHODS[name]
    if name not in LAZSL_ABLATION:
        raise KeyError(f"unknown method {name!r}; known: {list(ZERO_SHOT_METHODS) + list(LAZSL_ABLATION)}")
    switches = LAZSL_ABLATION[name]
    if switches is None:  # the ablation's baseline: DCLIP
        return ZERO_SHOT_METHODS["DCLIP"]
    return True, True, _lazsl(**switches)


def method_logits(name: str, inputs: Inputs, cfg: dict, seed: int | None = None) -> torch.Tensor | None:
    """Logits of one method (``ZERO_SHOT_METHODS`` or ``LAZSL_ABLATION`` row); None when its inputs are missing."""
    needs_desc, needs_crops, score = _resolve(name)
    if (needs_desc and inputs.desc is None) or (needs_crops and not inputs.crops):
        return None
    crops = inputs.crops[seed if seed is not None else next(iter(inputs.crops))] if needs_crops else None
    return score(inputs, crops, cfg)


def score_table(inputs_by_dataset: dict[str, Inputs], methods: Sequence[str], cfg: dict) -> pd.DataFrame:
    """Accuracy (%) per (method, dataset): ``accuracy`` = mean over the crop seeds in the inputs, ``std``
    over them (0 for methods without crops; NaN where a method's inputs are missing)."""
    rows = []
    for ds_name, inputs in inputs_by_dataset.items():
        seeds = list(inputs.crops) or [None]
        for method in methods:
            accs = []
            for seed in seeds if _resolve(method)[1] else seeds[:1]:
                logits = method_logits(method, inputs, cfg, seed)
                if logits is None:
                    break
                accs.append(metrics.accuracy(logits, inputs.labels))
            rows.append({"method": method, "dataset": ds_name,
                         "accuracy": float(np.mean(accs)) if accs else float("nan"),
                         "std": float(np.std(accs)) if accs else float("nan")})
    return pd.DataFrame(rows, columns=["method", "dataset", "accuracy", "std"]).set_index(["method", "dataset"])


def by_dataset(scores: pd.DataFrame, column: str = "accuracy", datasets: Sequence[str] | None = None) -> pd.DataFrame:
    """A ``score_table`` as method (rows) x dataset (columns), in the order they were scored."""
    table = scores[column].unstack("dataset")
    table = table.loc[list(dict.fromkeys(scores.index.get_level_values("method")))]
    order = list(dict.fromkeys(scores.index.get_level_values("dataset")))
    return table[[d for d in order if datasets is None or d in datasets]]


def with_spread(scores: pd.DataFrame, datasets: Sequence[str] | None = None) -> pd.DataFrame:
    """``mean ± std`` strings of a ``score_table`` for display (std shown only where it is non-zero)."""
    mean, std = by_dataset(scores, "accuracy", datasets), by_dataset(scores, "std", datasets)

    def cell(m, s):
        if np.isnan(m):
            return "—"
        return plus_minus(m, s, 1) if s > 0 else f"{m:.1f}"

    return pd.DataFrame({c: [cell(m, s) for m, s in zip(mean[c], std[c])] for c in mean.columns}, index=mean.index)


# --------------------------------------------------------------------------------------------------
# Sweeps, timing, interpretability


def theta_curve(inputs: Inputs, thetas: Sequence[float], cfg: dict) -> pd.DataFrame:
    """LaZSL accuracy (%) against theta, one row per (theta, crop seed)."""
    rows = []
    for seed, c in inputs.crops.items():
        for theta in thetas:
            logits = _lazsl(theta=float(theta))(inputs, c, cfg)
            rows.append({"parameter": "theta", "value": float(theta), "seed": seed,
                         "accuracy": metrics.accuracy(logits, inputs.labels)})
    return pd.DataFrame(rows)


def alpha_curve(handle: ModelHandle, dataset, inputs: Inputs, alphas: Sequence[float], seeds: Sequence[int],
                cfg: dict, cache: feature_cache.FeatureCache) -> pd.DataFrame:
    """LaZSL and WCA accuracy (%) against the crop scale alpha (beta fixed), one row per (alpha, seed)."""
    rows = []
    for alpha in alphas:
        for seed in seeds:
            c = crop_sampler.crop_features(handle, dataset, crop_spec(cfg, seed, alpha=float(alpha)),
                                           cache=cache, batch_size=cfg["batch_size"])
            for method in ("WCA", "LaZSL"):
                logits = ZERO_SHOT_METHODS[method][2](inputs, c, cfg)
                rows.append({"parameter": "alpha", "method": method, "value": float(alpha), "seed": seed,
                             "accuracy": metrics.accuracy(logits, inputs.labels)})
    return pd.DataFrame(rows)


def descriptor_notes(inputs_by_dataset: dict[str, Inputs]) -> list[str]:
    """For each dataset: how its descriptor file was paired with its classes (the pairs read by key
    order, or renamed, listed), or why its descriptor methods are left out."""
    notes = []
    for name, inputs in inputs_by_dataset.items():
        if inputs.left_out is not None:
            notes.append(f"{name}: {inputs.left_out}")
        elif inputs.descriptors is not None and (inputs.descriptors.match == "order"
                                                 or any(h != "case" for h in inputs.descriptors.how)):
            notes.append(f"{name}: {inputs.descriptors.describe()}")
    return notes


def with_descriptions(inputs_by_dataset: dict[str, Inputs]) -> list[str]:
    """The datasets whose descriptions are present (what the sweeps and the transport figure need)."""
    return [name for name, inputs in inputs_by_dataset.items() if inputs.desc is not None]


def inference_cost(cfg: dict, n_classes: int, n_descriptions: int | None) -> pd.DataFrame:
    """What each method computes per image: encoder views, image-text similarities, OT problems.

    Text-side work (template and description embeddings, WCA's description weights) is done once per
    class, not per image, and is left out. WCA pools its weighted crops before comparing with text
    (official code), so it needs C image-text similarities; LaZSL compares every view with every
    description and solves one N x M transport problem per class.
    """
    n, m = cfg["n_crops"], n_descriptions or 0
    rows = {
        "CLIP (templates)": (1, n_classes, 0),
        "CLIP (single)": (1, n_classes, 0),
        "CuPL": (1, n_classes, 0),
        "DCLIP": (1, n_classes * m, 0),
        "WCA": (n + 1, n_classes, 0),
        "LaZSL": (n + 1, (n + 1) * n_classes * m, n_classes),
    }
    if n_descriptions is None:  # no descriptions: only the methods that need none
        rows = {m: r for m, r in rows.items() if not ZERO_SHOT_METHODS[m][0]}
    table = pd.DataFrame(rows, index=["encoder views", "image-text similarities", "OT problems"]).T
    table.index.name = "method"
    return table


def text_sizes(inputs: Inputs) -> tuple[int, int | None]:
    """(classes, descriptions per class or None) of a dataset's inputs, for ``inference_cost``."""
    return len(inputs.txt), (inputs.desc.shape[1] if inputs.desc is not None else None)


def time_methods(handle: ModelHandle, dataset, inputs: Inputs, cfg: dict, n_images: int = 32,
                 repeats: int = 3) -> pd.DataFrame:
    """Seconds per image of each method, encoding included (nothing cached), median of ``repeats``.

    Wall-clock times vary between runs and machines: the notebook shows them without recording
    them; ``benchmarks/`` measures ratios side by side.
    """
    sample = [dataset[i][0] for i in range(min(n_images, len(dataset)))]
    spec = crop_spec(cfg)
    pixels = torch.stack([handle.preprocess(im) for im in sample])
    views = torch.stack([crop_sampler.views(im, spec, i, handle.preprocess)[0] for i, im in enumerate(sample)])
    small = Inputs(labels=inputs.labels[:len(sample)], img=inputs.img[:len(sample)], txt=inputs.txt,
                   single=inputs.single, desc=inputs.desc, mask=inputs.mask)

    def run(method: str) -> None:
        needs_crops = ZERO_SHOT_METHODS[method][1]
        if needs_crops:
            feats = encode_images(handle, views.flatten(0, 1)).reshape(len(sample), spec.n + 1, -1)
            c = {"global": feats[:, 0], "crops": feats[:, 1:]}
            ZERO_SHOT_METHODS[method][2](small, c, cfg)
        else:
            small.img = encode_images(handle, pixels)
            ZERO_SHOT_METHODS[method][2](small, None, cfg)

    rows = []
    for method in ZERO_SHOT_METHODS:
        if ZERO_SHOT_METHODS[method][0] and inputs.desc is None:
            continue
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(method)
            times.append((time.perf_counter() - start) / len(sample))
        rows.append({"method": method, "seconds per image": float(np.median(times))})
    table = pd.DataFrame(rows).set_index("method")
    table["ratio to CLIP"] = table["seconds per image"] / table.loc["CLIP (templates)", "seconds per image"]
    return table


def transport_examples(inputs: Inputs, cfg: dict, indices: Sequence[int], seed: int | None = None,
                       top_descriptions: int = 3) -> list[dict]:
    """For each image: its predicted class, the class's top descriptions by transported mass, and
    the plan's mass per crop for each of them (what the interpretability figure draws)."""
    c = inputs.crops[seed if seed is not None else next(iter(inputs.crops))]
    idx = torch.as_tensor(list(indices))
    logits, plans = scoring.lazsl_logits(c["crops"][idx], c["global"][idx], inputs.desc, inputs.mask,
                                         theta=cfg["theta"], eps=cfg["eps"], return_plans=True)
    out = []
    for row, i in enumerate(idx.tolist()):
        pred = int(logits[row].argmax())
        plan = plans[row, pred]  # (N, M)
        mass = plan.sum(0).masked_fill(~inputs.mask[pred], -1)
        top = mass.argsort(descending=True)[:min(top_descriptions, int(inputs.mask[pred].sum()))]
        out.append({"index": i, "label": int(inputs.labels[i]), "predicted": pred,
                    "descriptions": top.tolist(), "crop_mass": plan[:, top].T.contiguous(),
                    "boxes": c["boxes"][i]})
    return out


def shift_knobs(names: Sequence[str], prefix: str = DEMO_PREFIX) -> list[tuple[str, str]]:
    """(domain, knob) of each demo-world domain that ``names`` (the profile's ``shift_datasets``) shifts
    with a knob, as in ``demo-clutter@clutter=1.0``, in order: the curves the shift table is read by.
    Real datasets have no knob, so a profile without demo domains draws none."""
    out = []
    for name in names:
        base, _, knobs = name.partition("@")
        if base.startswith(prefix):
            for item in filter(None, knobs.split(",")):
                pair = (base[len(prefix):], item.partition("=")[0])
                if pair not in out:
                    out.append(pair)
    return out


def shift_curves(handle: ModelHandle, cfg: dict, values: Sequence[float], cache: feature_cache.FeatureCache
                 ) -> pd.DataFrame:
    """``shift_curve`` for every (domain, knob) of ``shift_knobs(cfg["shift_datasets"])``; empty (no
    encoding at all) when the profile shifts no demo domain."""
    pairs = shift_knobs(cfg["shift_datasets"])
    if not pairs:
        return pd.DataFrame(columns=["domain", "knob", "strength", "accuracy"])
    return pd.concat([shift_curve(handle, domain, knob, values, templates(cfg["templates"]), cache, cfg["seed"],
                                  cfg["demo_test_size"]) for domain, knob in pairs])


def shift_curve(handle: ModelHandle, domain: str, knob: str, values: Sequence[float], template_set: Sequence[str],
                cache: feature_cache.FeatureCache, seed: int = 0, demo_size: int | None = None,
                batch_size: int = 256) -> pd.DataFrame:
    """CLIP zero-shot accuracy (%) on a demo domain as one shift knob goes through ``values``."""
    txt = class_embeddings(handle, demo_world.CLASSNAMES, template_set, cache)
    rows = []
    for value in values:
        ds = demo_world.DemoDataset(demo_world.domain_spec(domain, **{knob: float(value)}), "test", n=demo_size, seed=seed)
        img = feature_cache.image_features(handle, ds, cache=cache, batch_size=batch_size)
        rows.append({"domain": domain, "knob": knob, "strength": float(value),
                     "accuracy": metrics.accuracy(scoring.clip_logits(img, txt), ds.labels)})
    return pd.DataFrame(rows)


def description_spread(inputs: Inputs) -> pd.Series:
    """Mean cosine between descriptions of the same class and between class means: how much the text
    tower tells a class's descriptions apart (1.0 = not at all)."""
    desc, mask = inputs.desc, inputs.mask
    if desc is None:
        return pd.Series({"within-class cosine": float("nan"), "between-class cosine": float("nan")})
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(mask.shape[1], dtype=torch.bool)
    within = torch.einsum("cmd,cnd->cmn", desc, desc)[pair]
    means = scoring.cupl_weights(desc, mask)
    between = (means @ means.T)[~torch.eye(len(means), dtype=torch.bool)]
    return pd.Series({"within-class cosine": float(within.mean()) if within.numel() else float("nan"),
                      "between-class cosine": float(between.mean())}).round(4)


def headline(main: pd.DataFrame, ablation: pd.DataFrame) -> dict[str, float]:
    """The numbers tests pin: every method and ablation row on every dataset (NaN cells left out),
    ``main | <method> | <dataset>`` and ``ablation | <row> | <dataset>``."""
    return {**headline_numbers(main["accuracy"], "main"), **headline_numbers(ablation["accuracy"], "ablation")}
