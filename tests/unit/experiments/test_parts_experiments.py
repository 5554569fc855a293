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
