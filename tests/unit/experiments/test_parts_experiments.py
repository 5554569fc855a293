"""Notebook 05's experiment wiring: the episode pool's part boxes and FAIR's settings on the parts world."""
from __future__ import annotations

import torch

from lib.data import parts_world as world
from lib.data.parts_images import PartsWorld
from lib.experiments import parts_world as pw
from lib.runtime import profiles


def test_distinguishing_part_boxes_are_the_varying_parts():
    from lib.experiments.parts_episodes import DistinguishingPart
    data = PartsWorld("novel", "test", n_per_class=1)
    wrapped = DistinguishingPart(data)
    for i, y in enumerate(data.labels.tolist()):
        p = world.PARTS.index(data.class_defs[y].varies)
        assert torch.equal(wrapped.boxes[i], data.part_boxes[i, p])
    assert wrapped.fingerprint != data.fingerprint and wrapped[0][1] == data[0][1]


def test_fair_profile_overrides_only_what_parts_fair_names():
    cfg = profiles.load("demo")
    fcfg = pw.fair_profile(cfg)
    opts = cfg["parts"]["fair"]
    assert fcfg["fair"]["datasets"] == [opts["dataset"]]
    assert fcfg["fair"]["adapt_size"] == opts["adapt_size"]
    for key, value in cfg["fair"]["config"].items():
        assert fcfg["fair"]["config"][key] == opts["config"].get(key, value)
    assert fcfg["fair"]["config"]["randaugment"] is None
    assert cfg["fair"]["config"].get("randaugment", "unset") != None  # noqa: E711 (the digits' block is untouched)
    assert pw.block(profiles.load("paper")) is None


def test_fair_table3_runs_table3_on_the_parts_dataset_with_fairs_seed(monkeypatch):
    import pandas as pd

    from lib.experiments import fair_ablations as fa

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
    out = pw.fair_table3(None, cfg, None)
    assert seen["which"] == "table3" and seen["datasets"] == [opts["dataset"]]
    # FAIR's row has the very config notebook 05's FAIR run trains (the cached run is reused)
    fair_cfg = fa.config(pw.fair_profile(cfg), fa.FairJob(opts["dataset"], "FAIR", seed=opts["seeds"][0]))
    assert seen["configs"]["FAIR"] == fair_cfg
    assert seen["configs"]["FAIR w/o LAS"].text == "initial" and seen["configs"]["FAIR w/o LAS"].seed == fair_cfg.seed
    fair_final = out.loc["FAIR", fa.FINAL]
    assert (out["FAIR minus row"] == fair_final - out[fa.FINAL]).all() and out.loc["FAIR", "FAIR minus row"] == 0
