"""lib.experiments.zero_shot: the wiring of notebook 01 (its demo-world claim: tests/claims/test_zero_shot_demo.py)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from lib import models
from lib.data.demo_world import DemoDataset, domain_spec
from lib.data.resolve import Subset, demo_dataset, subset
from lib.experiments import zero_shot
from lib.features import cache as feature_cache
from lib.features import text as text_side
from lib.methods import metrics, scoring
from lib.report import outputs
from lib.runtime import profiles


@pytest.fixture(scope="module")
def demo_cfg():
    return profiles.load("demo")


@pytest.fixture(scope="module")
def demo_model():
    return models.load_model(models.DEMO_MODEL, "demo")


@pytest.fixture(scope="module")
def clutter_inputs(demo_model, demo_cfg, tmp_path_factory):
    ds = demo_dataset("demo-clutter", n=200)
    cache = feature_cache.FeatureCache(tmp_path_factory.mktemp("cache"))
    return ds, zero_shot.gather_inputs(demo_model, ds, demo_cfg, cache, seeds=[0])


def test_fixed_crop_seed_gives_identical_scores_twice(clutter_inputs, demo_model, demo_cfg, tmp_path):
    ds, inputs = clutter_inputs
    fresh = zero_shot.gather_inputs(demo_model, ds, demo_cfg, feature_cache.FeatureCache(tmp_path), seeds=[0])
    for method in ("WCA", "LaZSL"):
        assert torch.equal(zero_shot.method_logits(method, inputs, demo_cfg, 0),
                           zero_shot.method_logits(method, fresh, demo_cfg, 0))
    other = zero_shot.gather_inputs(demo_model, ds, demo_cfg, feature_cache.FeatureCache(tmp_path), seeds=[1])
    assert not torch.equal(zero_shot.method_logits("LaZSL", inputs, demo_cfg, 0),
                           zero_shot.method_logits("LaZSL", other, demo_cfg, 1))


def test_score_table_rows_are_single_scoring_calls(clutter_inputs, demo_cfg):
    _, inputs = clutter_inputs
    table = zero_shot.score_table({"demo-clutter": inputs}, list(zero_shot.LAZSL_ABLATION), demo_cfg)
    c = inputs.crops[0]
    vs_only = scoring.lazsl_logits(c["crops"], c["global"], inputs.desc, inputs.mask, select=True, hybrid=False)
    assert table.loc[("+ OT + VS", "demo-clutter"), "accuracy"] == pytest.approx(metrics.accuracy(vs_only, inputs.labels))
    dclip = scoring.dclip_logits(inputs.img, inputs.desc, inputs.mask)
    assert table.loc[("Baseline (DCLIP)", "demo-clutter"), "accuracy"] == pytest.approx(metrics.accuracy(dclip, inputs.labels))
    assert (table["std"] == 0).all()  # one crop seed


def test_spread_over_seeds_and_missing_inputs():
    labels = torch.tensor([0, 1, 1, 0])
    gen = torch.Generator().manual_seed(0)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=gen), dim=-1)  # noqa: E731
    desc, mask = text_side.pad_descriptions([unit(2, 8), unit(3, 8)])
    crops = {s: {"crops": unit(4, 5, 8), "global": unit(4, 8)} for s in (0, 1, 2)}
    inputs = zero_shot.Inputs(labels, unit(4, 8), unit(2, 8), unit(2, 8), desc, mask, crops)
    bare = zero_shot.Inputs(labels, unit(4, 8), unit(2, 8), unit(2, 8))
    cfg = {"theta": 0.8, "eps": 0.1}
    table = zero_shot.score_table({"a": inputs, "b": bare}, ["CLIP (templates)", "LaZSL"], cfg)
    per_seed = [metrics.accuracy(zero_shot.method_logits("LaZSL", inputs, cfg, s), labels) for s in (0, 1, 2)]
    assert table.loc[("LaZSL", "a"), "accuracy"] == pytest.approx(sum(per_seed) / 3)
    assert table.loc[("LaZSL", "a"), "std"] == pytest.approx(float(torch.tensor(per_seed).std(unbiased=False)))
    assert pd.isna(table.loc[("LaZSL", "b"), "accuracy"])
    shown = zero_shot.with_spread(table)
    assert shown.loc["LaZSL", "b"] == "—" and shown.columns.tolist() == ["a", "b"]
    heads = zero_shot.headline(table, table)
    assert "main | LaZSL | a" in heads and "ablation | LaZSL | a" in heads and "main | LaZSL | b" not in heads


def test_demo_dataset_names_carry_knobs():
    ds = demo_dataset("demo-colour@colour=1.0", n=4)
    assert ds.name == "demo-colour@colour=1.0" and ds.spec.colour == 1.0
    assert ds.fingerprint != demo_dataset("demo-colour", n=4).fingerprint
    with pytest.raises(ValueError, match="knob"):
        demo_dataset("demo-colour@colour", n=4)
    with pytest.raises(KeyError, match="unknown demo domain 'fog'"):
        demo_dataset("demo-fog", n=4)


def test_subset_is_seeded_and_keyed_by_content():
    base = DemoDataset(domain_spec("clean"), "test", n=20)
    base.name = "demo-clean"
    a, b = Subset(base, 5, seed=0), Subset(base, 5, seed=0)
    assert a.fingerprint == b.fingerprint and a.fingerprint != Subset(base, 5, seed=1).fingerprint
    assert torch.equal(a.labels, base.labels[torch.from_numpy(a.indices)])
    assert a[2][1] == int(base.labels[a.indices[2]])
    assert subset(base, None) is base


def test_descriptor_entries_resolve_globs_names_and_roots(tmp_path):
    table = {"demo-*": "demo_digits.json", "*": {"path": "desc/{name}.json", "format": "dclip"}}
    assert text_side.descriptor_entry("demo-clutter@clutter=1.0", table) == {"path": "demo_digits.json"}
    (tmp_path / "desc").mkdir()
    (tmp_path / "desc" / "Pets.json").write_text(json.dumps({"cat": ["whiskers"]}))
    assert text_side.descriptor_sentences("Pets", ["cat"], table, tmp_path) == [["cat, which has whiskers"]]
    with pytest.raises(text_side.DescriptorError, match="Food.json"):
        text_side.descriptor_sentences("Food", ["pizza"], table, tmp_path)
    with pytest.raises(text_side.DescriptorError, match="no descriptor file for dataset 'x'"):
        text_side.descriptor_sentences("x", ["a"], {"demo-*": "demo_digits.json"})


def test_saver_keeps_demo_and_real_rows_apart(tmp_path):
    table = pd.DataFrame({"method": ["m", "m"], "dataset": ["demo-clean", "eurosat"], "accuracy": [1.0, 2.0]})
    saver = outputs.Saver("nb", tmp_path)
    paths = saver.table(table.set_index(["method", "dataset"]), "t")
    assert [p.name for p in paths] == ["t.csv", "t_real_datasets.csv"]
    assert "eurosat" not in paths[0].read_text() and "demo-clean" not in paths[1].read_text()
    only_demo = saver.table(table.iloc[:1].set_index(["method", "dataset"]), "u")
    assert [p.name for p in only_demo] == ["u.csv"]
