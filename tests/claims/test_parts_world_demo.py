"""The parts world's claims (issue 18), each asserted only where it holds on every seed of the demo
profile's ``parts.seeds`` (3 seeds; measured values in notebooks 01-05 and figures/0*/).

Measured (mean over seeds, min over seeds in brackets): clean CLIP 92.2 (91.3); fine / clutter / colour
/ novel CLIP 39.7 / 31.9 / 37.2 / 29.5; description cosine 0.45; part retrieval on clean 89.0 (88.5)
against a chance of 20.5; on parts-fine + OT over crops without OT +7.0 (+5.7), LaZSL over DCLIP +10.7
(+9.3); the plans' part shares 37-61% against 20-40% for the independent coupling. Vision selection
*lowers* accuracy on parts-fine (-12.2, every seed): the claim of LaZSL's Table 4 that does not hold here.

Two pretrainings are measured: the parts model trained by the same seeded recipe on two processor models
ends in other weights (``lib.runtime.machine``), as another training seed would. Each threshold below holds
on both; where a value moved, the docstring gives both (the earlier machine's first).
"""
from __future__ import annotations

import pytest

from lib import models
from lib.data import parts_world as world
from lib.experiments import parts_fair
from lib.experiments import parts_world as pw
from lib.features.cache import FeatureCache
from lib.runtime import profiles


@pytest.fixture(scope="module")
def settings():
    return pw.block(profiles.load("demo"))


@pytest.fixture(scope="module")
def handle(settings):
    return models.load_model(settings["model"], settings["pretrained"])


@pytest.fixture(scope="module")
def long(handle, settings):
    return pw.measure(handle, settings, FeatureCache())


def values(long, row, domain):
    v = pw.per_seed(long, row, domain)
    assert len(v) == 3, (row, domain, v)
    return v


def test_clean_zero_shot_is_high_and_every_shift_lowers_it_above_chance(long, settings):
    clean = values(long, "CLIP (templates)", "clean")
    assert (clean >= 80).all(), clean
    for domain in ("fine", "clutter", "colour", "novel"):
        shifted = values(long, "CLIP (templates)", domain)
        chance = values(long, "chance", domain)
        assert (shifted <= clean - 20).all() and (shifted >= chance + 10).all(), (domain, shifted)


def test_descriptions_of_a_class_are_distinct(long):
    for domain in ("clean", "novel"):
        for fmt in ("DCLIP", "CuPL"):
            assert (values(long, f"description cosine ({fmt})", domain) <= 0.8).all()


def test_part_descriptions_retrieve_crops_of_their_part(long, settings):
    for domain in settings["crop_domains"]:
        hit, chance = values(long, "part retrieval", domain), values(long, "part retrieval: chance", domain)
        assert (hit >= chance + 40).all(), (domain, hit, chance)
    assert (values(long, "part retrieval", "clean") >= 70).all()


def test_transport_beats_plain_crop_averaging_and_lazsl_beats_dclip_on_fine(long):
    assert (values(long, "+ OT", "fine") - values(long, "crops, no OT", "fine") >= 3).all()
    assert (values(long, "LaZSL (+ hybrid)", "fine") - values(long, "DCLIP", "fine") >= 3).all()


def test_plans_put_descriptions_on_their_parts_more_than_the_independent_coupling(long, settings):
    for domain in settings["crop_domains"]:
        for row in pw.PLAN_ROWS:
            share = values(long, f"plan part share, {row}", domain)
            independent = values(long, f"plan part share, {row}: independent coupling", domain)
            assert (share >= independent + 8).all(), (domain, row, share, independent)


def test_vision_selection_lowers_fine_grained_accuracy_here(long):
    """Recorded because notebook 05 states it: LaZSL's selection keeps the crops most like the full view."""
    assert (values(long, "+ vision selection", "fine") < values(long, "+ OT", "fine")).all()


def test_patch_text_maps_put_more_mass_in_the_described_part_than_a_uniform_map(handle, settings):
    maps = pw.part_maps(handle, settings, "clean", settings["map_size"], FeatureCache())
    table = pw.map_mass_table(maps, world.PARTS)
    assert (table["ratio"] > 1.2).all(), table  # head / body / tail: 1.65 / 2.45 / 2.62, then 1.28 / 2.75 / 1.83


@pytest.fixture(scope="module")
def episodes(handle, settings):
    from lib.experiments import parts_episodes as pe
    return pe, pe.run(handle, settings, FeatureCache())


def test_cross_entropy_fine_tuning_moves_the_class_map_off_the_distinguishing_part(episodes):
    """CC-CDFSL's local misalignment, measured on parts-novel: paired over the same episodes, the 95% CI
    of (LayerNorm CE - zero-shot) in text-map mass inside the distinguishing part lies below zero, while
    accuracy rises."""
    pe, long = episodes
    from lib.methods.episodes import mean_ci
    mass = pe.differences(long, "LayerNorm (CE)", "Zero-shot", pe.MEASURES["localisation_text"])
    mean, half = mean_ci(mass)
    assert mean + half < 0, (mean, half)
    accuracy = pe.differences(long, "LayerNorm (CE)", "Zero-shot", pe.MEASURES["accuracy"])
    mean, half = mean_ci(accuracy)
    assert mean - half > 0, (mean, half)


def test_enough_episodes_for_a_readable_accuracy_interval(episodes):
    pe, long = episodes
    from lib.methods.episodes import mean_ci
    for method in pe.METHODS:
        values = long[(long.method == method) & (long.measure == pe.MEASURES["accuracy"])].value.to_numpy()
        assert mean_ci(values)[1] <= 3.5, method  # measured 2.5-2.9, then 2.6-3.1 (50 episodes)


def test_fair_on_the_colour_shift_does_not_collapse_on_any_training_seed(handle, record_property):
    """FAIR over the profile's three training seeds (zero-shot 61.0): final 64.2 / 61.7 / 62.7, a gain of
    +1.8 +- 1.3 (mean +- std); with the Xeon's pretraining (and the earlier two-sample crops) seed 0 gave
    61.2 -> 61.0. The pseudo-labels' accuracy rises over the epochs with seeds 0 and 2 (62.7 -> 66.3,
    62.5 -> 68.1) and falls with seed 1 (65.6 -> 62.9), so neither a gain nor a rising curve holds on every seed: both are recorded, not
    asserted, and the issue's +5 is not reached. What holds on every seed and both pretrainings: the
    fairness term keeps self-training from collapsing (final accuracy at most 3 points under zero-shot;
    measured at least -0.2) and every epoch's pseudo-labels stay far above chance (62-70% against 8.3%)."""
    table, curves = parts_fair.fair_rows(handle, profiles.load("demo"), FeatureCache())
    gain = parts_fair.gain_over_zero_shot(table)
    record_property("FAIR minus zero-shot", gain.round(2).to_dict())
    record_property("pseudo-label accuracy, first and last epoch", curves.iloc[[0, -1]].round(1).to_dict())
    assert len(curves.columns) >= 3  # issue 18: at least 3 seeds
    assert (gain.drop(["mean", "std"]) > -3.0).all(), gain
    chance = 100.0 / len(world.BASE_CLASSES)
    assert (curves > 4 * chance).all().all(), curves


def test_theta_curves_are_notebook_05s_rows_and_crops_alone_win_where_the_part_is_small(handle, settings, long):
    """Notebook 01's theta on the parts world: theta = 1 without selection is the `+ OT` row and theta = 0.8
    with selection the LaZSL row (the same numbers, per seed); on parts-fine accuracy rises with theta to 1
    (54.4 -> 75.7 without selection), on parts-clean crops alone lose to the hybrid (88.3 against 93.3)."""
    rows = pw.theta_rows(handle, settings, FeatureCache(), [0.8, 1.0])
    pick = lambda d, m, t: rows[(rows.parameter == f"theta on parts-{d}") & (rows.method == m)  # noqa: E731
                                & (rows.value == t)].sort_values("seed").accuracy.to_numpy()
    plain, full = "+ OT + hybrid, no selection", "LaZSL (+ selection + hybrid)"
    for domain in settings["crop_domains"]:
        assert (pick(domain, plain, 1.0) == values(long, "+ OT", domain)).all()
        assert (pick(domain, full, 0.8) == values(long, "LaZSL (+ hybrid)", domain)).all()
    assert (pick("fine", plain, 1.0) >= pick("fine", plain, 0.8) + 10).all()
    assert (pick("clean", plain, 0.8) > pick("clean", plain, 1.0)).all()
