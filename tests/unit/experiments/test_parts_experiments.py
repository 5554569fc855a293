"""The parts world's experiment wiring: the episode pool's part boxes (notebook 03) and FAIR's settings on
the parts world (notebooks 02 and 04)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lib.data import parts_world as world
from lib.data.parts_images import PartsWorld
from lib.experiments import fair_ablations as fa
from lib.experiments import parts_fair as pf
from lib.experiments import parts_world as pw
from lib.experiments.parts_episodes import DistinguishingPart
from lib.experiments import tsne_confusion
from lib.features.cache import FeatureCache
from lib.methods import metrics, scoring
from lib.runtime import profiles


def test_distinguishing_part_boxes_are_the_varying_parts():
    data = PartsWorld("novel", "test", n_per_class=1)
    wrapped = DistinguishingPart(data)
    for i, y in enumerate(data.labels.tolist()):
        p = world.PARTS.index(data.class_defs[y].varies)
        assert torch.equal(wrapped.boxes[i], data.part_boxes[i, p])
    assert wrapped.fingerprint != data.fingerprint and wrapped[0][1] == data[0][1]


def test_fair_profile_overrides_only_what_parts_fair_names():
    cfg = profiles.load("demo")
    fcfg = pf.fair_profile(cfg)
    opts = cfg["parts"]["fair"]
    assert fcfg["fair"]["datasets"] == [opts["dataset"]]
    assert fcfg["fair"]["adapt_size"] == opts["adapt_size"]
    for key, value in cfg["fair"]["config"].items():
        assert fcfg["fair"]["config"][key] == opts["config"].get(key, value)
    assert fcfg["fair"]["config"]["randaugment"] is None
    assert cfg["fair"]["config"].get("randaugment", "unset") != None  # noqa: E711 (the digits' block is untouched)
    assert pw.block(profiles.load("paper")) is None


def test_fair_table3_runs_table3_on_the_parts_dataset_with_fairs_seed(monkeypatch):
    cfg = profiles.load("demo")
    opts = cfg["parts"]["fair"]
    assert opts["table3"] is False  # off by default: nine more FAIR runs
    seen = {}

    def fake_table(handle, fcfg, cache, which, datasets, *args, **kwargs):
        seen.update(which=which, datasets=datasets, config=fcfg["fair"]["config"])
        jobs = [fa.FairJob(datasets[0], row) for _, row in fa.rows_for(which)]
        seen["configs"] = {job.row: fa.config(fcfg, job) for job in jobs}
        rows = [fa.CUPL_ZERO_SHOT] + [label for label, _ in fa.rows_for(which)]
        index = pd.MultiIndex.from_tuples([(r, datasets[0]) for r in rows], names=["method", "dataset"])
        return pd.DataFrame({fa.FINAL: [float(i) for i in range(len(rows))], fa.BEST: 0.0}, index=index)

    monkeypatch.setattr(fa, "table", fake_table)
    out = pf.fair_table3(None, cfg, None)
    assert seen["which"] == "table3" and seen["datasets"] == [opts["dataset"]]
    # FAIR's row has the very config notebook 02's FAIR run trains (the cached run is reused)
    fair_cfg = fa.config(pf.fair_profile(cfg), fa.FairJob(opts["dataset"], "FAIR", seed=opts["seeds"][0]))
    assert seen["configs"]["FAIR"] == fair_cfg
    assert seen["configs"]["FAIR w/o LAS"].text == "initial" and seen["configs"]["FAIR w/o LAS"].seed == fair_cfg.seed
    fair_final = out.loc["FAIR", fa.FINAL]
    assert (out["FAIR minus row"] == fair_final - out[fa.FINAL]).all() and out.loc["FAIR", "FAIR minus row"] == 0


def test_fair_states_use_fairs_run_of_notebook_02_and_the_sibling_groups(monkeypatch):
    cfg = profiles.load("demo")
    opts = cfg["parts"]["fair"]
    seen = {}
    test = PartsWorld(world.domain_spec("colour"), "test", n_per_class=1, seed=0)
    labels = test.labels
    logits = torch.nn.functional.one_hot(labels, len(test.classnames)).float()
    monkeypatch.setattr(fa, "zero_shot_logits", lambda *a, **k: (logits, labels, torch.zeros(len(labels), 4)))
    monkeypatch.setattr(fa, "splits", lambda *a, **k: (None, test))
    monkeypatch.setattr(fa, "text", lambda *a, **k: type("T", (), {"initial": torch.zeros(len(test.classnames), 4)}))

    run = type("Run", (), {"features": torch.zeros(len(labels), 4), "logits": logits,
                           "adapted": type("A", (), {"anchors": None})})

    def fake_outcome(handle, fcfg, cache, job, data_root=None):
        seen["config"] = fa.config(fcfg, job)
        return run

    monkeypatch.setattr(fa, "outcome", fake_outcome)
    states = pf.fair_states(None, cfg, None)
    assert list(states) == [opts["dataset"]]
    assert seen["config"] == fa.config(pf.fair_profile(cfg), fa.FairJob(opts["dataset"], "FAIR", seed=opts["seeds"][0]))
    groups = states[opts["dataset"]]["groups"]
    assert len(groups) == len(test.classnames) and len(set(groups.tolist())) == len(test.classnames) // 3
    for c, d in enumerate(test.class_defs):  # one id per family, the same for every sibling
        assert all((groups[c] == groups[e]) == (d.group == f.group) for e, f in enumerate(test.class_defs))
    table = tsne_confusion.sibling_errors(states)
    assert (table["errors"] == 0).all()  # perfect logits: no errors to share out


def test_gain_over_zero_shot_is_each_seeds_final_minus_zero_shot_with_mean_and_std():
    table = pd.DataFrame([{"method": fa.CUPL_ZERO_SHOT, "seed": "-", "accuracy": 60.0},
                          {"method": "FAIR", "seed": "0", "accuracy": 64.0, fa.BEST: 65.0},
                          {"method": "FAIR", "seed": "1", "accuracy": 61.0, fa.BEST: 62.0}]).set_index(["method", "seed"])
    gain = pf.gain_over_zero_shot(table)
    assert gain.to_dict() == {"seed 0": 4.0, "seed 1": 1.0, "mean": 2.5, "std": pytest.approx(2.1213, abs=1e-4)}
    assert pf.headline(table)["fair_parts_colour | FAIR minus zero-shot | mean"] == 2.5
    assert pd.isna(pf.gain_over_zero_shot(table.drop(("FAIR", "1")))["std"])  # one seed: no spread


def test_tsne_maps_and_theta_accuracies_read_back_from_the_cache_equal(tmp_path):
    cache, g = FeatureCache(tmp_path), torch.Generator().manual_seed(0)
    feats, anchors = torch.randn(40, 8, generator=g), torch.randn(4, 8, generator=g)
    fresh = tsne_confusion.tsne_map(feats, anchors, 0, 10.0)
    stored = tsne_confusion.tsne_map(feats, anchors, 0, 10.0, cache)
    read = tsne_confusion.tsne_map(feats, anchors, 0, 10.0, cache)
    assert cache.hits == 1 and all(np.array_equal(a, b) for a, b in zip(fresh + stored, read + read))
    split = {"crops": torch.nn.functional.normalize(torch.randn(12, 5, 8, generator=g), dim=-1),
             "global": torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=-1)}
    text = {"dclip": torch.nn.functional.normalize(torch.randn(3, 2, 8, generator=g), dim=-1),
            "mask": torch.ones(3, 2, dtype=torch.bool)}
    labels = torch.arange(12) % 3
    fresh = pw.theta_accuracies(split, text, labels, [0.0, 0.5, 1.0], 0.1)
    stored = pw.theta_accuracies(split, text, labels, [0.0, 0.5, 1.0], 0.1, cache)
    assert fresh.shape == (len(pw.THETA_ROWS), 3) and torch.equal(fresh, stored)
    assert torch.equal(pw.theta_accuracies(split, text, labels, [0.0, 0.5, 1.0], 0.1, cache), fresh) and cache.hits == 2


def test_crop_rows_read_back_from_the_cache_equal_in_order(tmp_path):
    cache, g = FeatureCache(tmp_path), torch.Generator().manual_seed(1)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    n, crops = 9, 6
    corner = torch.randint(0, 40, (n, crops, 2), generator=g)
    feats = {"global": unit(n, 8), "crops": unit(n, crops, 8), "boxes": torch.cat([corner, corner + 24], -1)}
    text = {"cupl": unit(3, len(world.PARTS), 8), "dclip": unit(3, len(world.PARTS), 8), "single": unit(3, 8),
            "mask": torch.ones(3, len(world.PARTS), dtype=torch.bool)}
    part_corner = torch.randint(0, 48, (n, len(world.PARTS), 2), generator=g)
    part_boxes = torch.cat([part_corner, part_corner + 16], -1)
    labels = torch.arange(n) % 3
    fresh = pw.crop_rows(feats, text, labels, part_boxes, 0.8, 0.1)
    stored = pw.crop_rows(feats, text, labels, part_boxes, 0.8, 0.1, cache)
    read = pw.crop_rows(feats, text, labels, part_boxes, 0.8, 0.1, cache)
    assert list(fresh) == list(read) and fresh == stored == read and cache.hits == 1
    assert list(fresh)[0] == "WCA" and list(fresh)[-2:] == ["part retrieval", "part retrieval: chance"]
    assert [r for r in fresh if r in pw.LAZSL_ROWS] == list(pw.LAZSL_ROWS)
    pw.crop_rows(feats, text, labels, part_boxes, 0.5, 0.1, cache)  # another theta: another entry
    assert cache.hits == 1 and cache.misses == 2


def test_theta_rows_give_each_method_and_theta_its_own_scoring(monkeypatch):
    g = torch.Generator().manual_seed(2)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    feats = {"global": unit(12, 8), "crops": unit(12, 5, 8)}
    text = {"dclip": unit(3, 2, 8), "mask": torch.ones(3, 2, dtype=torch.bool)}
    data = type("Split", (), {"labels": torch.arange(12) % 3})()
    monkeypatch.setattr(pw, "split_inputs", lambda *a, **k: (data, text, feats))
    settings = {"crop_domains": ["fine"], "seeds": [0], "eps": 0.1}
    rows = pw.theta_rows(None, settings, None, [0.0, 0.5, 1.0])
    assert len(rows) == len(pw.THETA_ROWS) * 3
    for row in rows.itertuples():
        logits = scoring.lazsl_logits(feats["crops"], feats["global"], text["dclip"], text["mask"], theta=row.value,
                                      eps=0.1, select=pw.THETA_ROWS[row.method])
        assert row.accuracy == metrics.accuracy(logits, data.labels)
