"""Demo world: what notebook 03's CDFSL runs show, asserted only where a measured margin holds.

The runs are the demo profile's (``lib/runtime/profiles/demo.yaml``, block ``cdfsl``) and come from the
feature cache when notebook 03 ran first (the main job); cold, they train here (about 1.5 s per
5-shot episode on one core).

Measured on notebook 03's runs (demo-clutter, 5-shot, 8 episodes per seed, seeds 0-2):
* every method's maps put far more mass in the digit's box than a uniform map: [CLS] attention
  0.504-0.517 and patch-text 0.389-0.428 against a chance level of 0.177-0.180, on every seed;
* CC-CDFSL does *not* raise the localisation score over its CE baseline (LayerNorm): per seed
  +0.0008 / +0.0007 / -0.0003 ([CLS]) and +0.0004 / -0.0035 / -0.0016 (patch-text). The
  issue asks to report this, and to assert an improvement only if it held: it does not, so the
  differences are recorded (``record_property``) and only the above-chance claim is asserted.
* the discriminability trap, with the abstract-derived perturbation (ours; the D-Trap code's remedy
  is measured in notebook 03's remedy table, whose rows lie within their CIs): plain LayerNorm fine-tuning on demo-colour grows the visual margin by
  6.3 and shrinks the cross-modal margin by 1.3; with the perturbation alone the cross-modal margin
  no longer shrinks (+0.2) and the visual margin grows less (+4.4).
"""
from __future__ import annotations

import pytest

from lib import models
from lib.experiments import cdfsl_episodes as ce
from lib.experiments import cdfsl_tables as ct
from lib.features import cache as feature_cache
from lib.runtime import profiles

ABOVE_CHANCE = 0.15  # measured: the smallest margin over chance is 0.21 (patch-text, seed 1: 0.389 vs 0.177)


@pytest.fixture(scope="module")
def world():
    cfg = profiles.load("demo")
    handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
    return cfg, handle, feature_cache.FeatureCache()


@pytest.fixture(scope="module")
def localisation(world):
    cfg, handle, cache = world
    opts = ce.EXPERIMENT.block(cfg)
    methods = [ce.base_name(cfg), "CC-CDFSL"]
    return ct.localisation_table(handle, cfg, cache, opts["localisation"], methods, max(opts["shots"]),
                                 opts["localisation_seeds"])


def test_maps_localise_the_digit_above_chance_on_every_seed(localisation):
    for column in ("[CLS] attention", "patch-text map"):
        assert (localisation[column] > localisation["chance"] + ABOVE_CHANCE).all(), column


def test_report_cc_cdfsl_localisation_against_its_baseline(world, localisation, record_property):
    cfg = world[0]
    base = localisation.xs(ce.base_name(cfg), level="method")
    cc = localisation.xs("CC-CDFSL", level="method")
    for column in ("[CLS] attention", "patch-text map"):
        diff = cc[column] - base[column]
        record_property(f"CC-CDFSL - baseline, {column}, per seed", [round(float(d), 4) for d in diff])
        # reported, not asserted: the gain did not hold across seeds (module docstring); the scores are
        # distributions' masses, so both lie in [0, 1]
        assert ((cc[column] >= 0) & (cc[column] <= 1)).all()


def test_perturbing_the_visual_part_keeps_the_cross_modal_margin(world):
    cfg, handle, cache = world
    opts = ce.EXPERIMENT.block(cfg)
    split = ct.loss_split(handle, cfg, cache, opts["focus"], [ce.base_name(cfg), "Abstract-derived perturbation (ours)"],
                          max(opts["shots"]))
    change = ct.first_last(split)["change"]
    base, perturbed = ce.base_name(cfg), "Abstract-derived perturbation (ours)"
    assert change[(base, "cross-modal margin")] < 0 < change[(perturbed, "cross-modal margin")]
    assert change[(perturbed, "visual margin")] < change[(base, "visual margin")]
