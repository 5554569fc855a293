"""lib.experiments.fair_ablations (the named rows of FAIR's tables) and lib.methods.feature_space (notebook 04's numbers)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lib.data.resolve import concat, demo_dataset
from lib.experiments import fair_ablations as fa
from lib.experiments import fair_plan
from lib.methods import fair, feature_space
from lib.runtime import profiles


@pytest.mark.parametrize("profile", ["demo", "eurosat", "paper"])
def test_every_row_is_a_valid_config_on_every_profile(profile):
    cfg = profiles.load(profile)
    for row in fa.ROWS:
        config = fa.config(cfg, fa.FairJob(fa.EXPERIMENT.block(cfg)["focus"], row))
        assert isinstance(config, fair.FairConfig)
    for table, rows in fa.TABLES.items():
        assert all(row in fa.ROWS for _, row in rows), table


def test_rows_differ_from_fair_only_in_their_switches():
    cfg = profiles.load("demo")
    base = fa.config(cfg, fa.FairJob("demo-colour", "FAIR"))
    for row, switches in fa.ROWS.items():
        config = fa.config(cfg, fa.FairJob("demo-colour", row))
        changed = {k for k in switches if getattr(config, k) != getattr(base, k)}
        assert changed == set(switches), row  # each switch really changes something
        for field in ("epochs", "lr", "n_crops", "seed"):
            assert getattr(config, field) == getattr(base, field)


def test_paper_profile_keeps_the_papers_settings():
    cfg = profiles.load("paper")
    config = fa.config(cfg, fa.FairJob("DTD"))
    assert (config.epochs, config.lr, config.batch_size, config.n_crops, config.top_k) == (15, 1e-4, 32, 16, 4)
    assert (config.alpha, config.beta) == (0.5, 0.9)
    assert fa.config(cfg, fa.FairJob("Food101")).lr == 1e-6
    # where the paper is silent, DPA's code: RandAugment's strength, the batch-mean fairness term;
    # Alg. 1's gamma on the 100-scaled scores, as it is
    assert (config.randaugment, config.interpolation, config.rrc_scale) == ("rand-m9-mstd0.5-inc1", "bicubic", (0.3, 1.0))
    assert (config.pbar_momentum, config.gamma_scale, config.gamma_norm) == (0.0, 100.0, False)
    assert config == fair.FairConfig()  # the paper profile overrides nothing: the defaults are the paper's


def test_paper_profile_runs_tables_4_7_and_10_on_the_six_datasets_with_the_papers_train_sets():
    block = profiles.load("paper")["fair"]
    six = ["DTD", "EuroSAT", "Flowers102", "OxfordPets", "StanfordCars", "UCF101"]
    assert block["datasets"] == block["protocol_datasets"] == block["ablation_datasets"] == six
    cfg = profiles.load("paper")
    # CoOp's train + val = the paper's train set (Table 6) for Pets, Cars and UCF101
    for name in ("OxfordPets", "StanfordCars", "UCF101"):
        assert fa.train_splits(cfg, name) == ("train", "val")
    assert fa.train_splits(cfg, "DTD") == fa.train_splits(cfg, "Flowers102") == ("train",)
    p = fair_plan.Plan(six, six, six, "Flowers102", "DTD", ["EuroSAT"])
    jobs = fair_plan.jobs(cfg, p)
    for name in six:  # Table 4's transductive column on every dataset, Tables 7 and 10 too
        assert fa.FairJob(name, "FAIR", "transductive") in jobs and fa.FairJob(name, "FAIR-LoRA") in jobs
    assert p.shown == six and p.shown_of(p.protocol) == six and p.real_of(p.protocol) == []


def test_demo_profile_overrides_say_why():
    cfg = profiles.load("demo")
    text = (profiles.PROFILE_DIR / "demo.yaml").read_text()
    for key, value in cfg["fair"]["config"].items():
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"the demo profile overrides fair.config.{key} without saying why"


def test_jobs_name_their_errors_and_deduplicate():
    with pytest.raises(KeyError, match=re.escape("unknown FAIR row 'FAIR++'")):
        fa.FairJob("demo-colour", "FAIR++")
    with pytest.raises(ValueError, match="protocol='semi'"):
        fa.FairJob("demo-colour", protocol="semi")
    jobs = fa.table_jobs(profiles.load("demo"), ["table3", "table5", "table7"], ["demo-colour"])
    assert len(jobs) == len(set(jobs))
    assert fa.FairJob("demo-colour", "FAIR") in jobs
    assert len(fa.sweep_jobs("demo-colour", [8, 16], [4, 16])) == 3  # (16, 4) appears once


def test_notebook_parameters_reach_the_fair_block_by_one_rule():
    cfg = profiles.load("demo")
    out = profiles.apply(cfg, {"fair.datasets": [], "fair.focus": "", "fair.config.epochs": None,
                               "fair.config.lr": None, "fair.adapt_size": 64, "fair.workers": 1})
    assert out["fair"]["adapt_size"] == 64 and out["fair"]["workers"] == 1
    assert out["fair"]["datasets"] == cfg["fair"]["datasets"] and out["fair"]["config"] == cfg["fair"]["config"]
    assert cfg["fair"]["adapt_size"] != 64  # the profile itself is untouched
    assert fa.config(profiles.apply(cfg, {"fair.config.epochs": 1}), fa.FairJob("demo-colour")).epochs == 1
    with pytest.raises(ValueError, match="epochs"):
        fa.config(profiles.apply(cfg, {"fair.config.epochs": -2}), fa.FairJob("demo-colour"))


def test_block_missing_names_the_profile():
    with pytest.raises(KeyError, match="profile 'bare' has no 'fair' block"):
        fa.EXPERIMENT.block({"profile": "bare"})


def _clusters(n_per=40, c=4, d=16, spread=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(c, d, generator=gen), dim=-1)
    labels = torch.arange(c).repeat_interleave(n_per)
    feats = centres[labels] + spread * torch.randn(len(labels), d, generator=gen)
    return feats, labels, centres


def test_separation_and_alignment_rank_tight_clusters_above_loose_ones():
    tight, labels, centres = _clusters(spread=0.05)
    loose, _, _ = _clusters(spread=2.0)
    assert feature_space.class_separation(tight, labels) > feature_space.class_separation(loose, labels) + 0.3
    assert feature_space.anchor_alignment(tight, labels, centres) > 0.9
    assert feature_space.anchor_alignment(tight, labels, centres.roll(1, 0)) < 0.5


def test_confusion_rows_are_percent_of_each_true_class():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    logits = F.one_hot(torch.tensor([0, 1, 1, 1, 0, 2]), 3).float()
    matrix = feature_space.confusion_percent(logits, labels)
    assert np.allclose(matrix.sum(1), 100.0)
    assert np.allclose(matrix[0], [50, 50, 0]) and np.allclose(matrix[1], [100 / 3, 200 / 3, 0])


def test_tsne_places_anchors_and_is_seeded():
    feats, labels, centres = _clusters(n_per=15, c=3)
    points, stars = feature_space.tsne_with_anchors(feats, centres, seed=0, perplexity=10)
    assert points.shape == (45, 2) and stars.shape == (3, 2)
    again, _ = feature_space.tsne_with_anchors(feats, centres, seed=0, perplexity=10)
    assert np.allclose(points, again)
    # each anchor lands nearer its own cluster's centre than the others'
    centroids = np.stack([points[labels.numpy() == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(stars[:, None] - centroids[None], axis=-1).argmin(1)
    assert nearest.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="share d"):
        feature_space.tsne_with_anchors(feats, centres[:, :3])


def test_every_row_has_its_own_cache_key():
    """Two rows sharing a key would silently share one trained run (a bug once: the text side's
    fingerprint overwrote the config's ``text`` field)."""
    cfg = profiles.load("demo")
    text = fair.Text.from_descriptions(F.normalize(torch.randn(3, 2, 8), dim=-1), torch.ones(3, 2, dtype=torch.bool))
    keys = {row: repr(sorted(fa.run_settings(fa.config(cfg, fa.FairJob("demo-colour", row)), text).items()))
            for row in fa.ROWS}
    assert len(set(keys.values())) == len(fa.ROWS)


# --------------------------------------------------------------------------------------------------
# splits, tables and the plan of notebooks 02 and 04


def test_concat_joins_splits_with_the_dataset_protocol():
    train, val = demo_dataset("demo-colour", "train", n=6), demo_dataset("demo-colour", "test", n=4)
    joined = concat([train, val])
    assert len(joined) == 10 and joined.split == "train+test" and joined.classnames == train.classnames
    assert torch.equal(joined.labels, torch.cat([train.labels, val.labels]))
    assert np.array_equal(np.asarray(joined[7][0]), np.asarray(val[1][0])) and joined[7][1] == val[1][1]
    assert joined.fingerprint not in (train.fingerprint, val.fingerprint)
    assert concat([train]) is train
    with pytest.raises(IndexError, match="index 10"):
        joined[10]
    other = demo_dataset("demo-colour", "test", n=4)
    other.classnames = list(reversed(other.classnames))
    with pytest.raises(ValueError, match="class lists differ"):
        concat([train, other])


def test_tables_give_the_final_and_the_best_epoch():
    long = pd.DataFrame({"method": [fa.CUPL_ZERO_SHOT, "FAIR", fa.CUPL_ZERO_SHOT, "FAIR"],
                         "dataset": ["a", "a", "b", "b"], fa.FINAL: [50.0, 60.0, 40.0, 44.0],
                         fa.BEST: [np.nan, 61.0, np.nan, 45.0]}).set_index(["method", "dataset"])
    shown = fa.shown(long, ["a", "b"])
    assert list(shown.columns.get_level_values(0).unique()) == ["final epoch", fa.BEST]
    assert shown.loc["FAIR", ("final epoch", "Avg")] == 52.0 and shown.loc["FAIR", (fa.BEST, "Avg")] == 53.0
    assert np.isnan(shown.loc[fa.CUPL_ZERO_SHOT, (fa.BEST, "a")])  # zero-shot has no epochs to select from
    assert fa.shown(long, ["c"]).empty
    assert fa.headline({"table3": long}) == {"table3 | Zero-shot (CuPL) | a": 50.0, "table3 | FAIR | a": 60.0,
                                             "table3 | Zero-shot (CuPL) | b": 40.0, "table3 | FAIR | b": 44.0}


def test_sweep_leaves_out_k_above_n():
    points = fa.sweep_points([2, 4], [1, 4, 16], n_fixed=4, k_fixed=4)
    assert points == [("N", 2, 2, 2), ("N", 4, 4, 4), ("k", 1, 4, 1), ("k", 4, 4, 4)]


def _paper(**overrides):
    return profiles.load("paper", **{"fair.datasets": ["EuroSAT"], **overrides})


def test_plan_paper_profile_on_eurosat_only_falls_back_and_says_so(eurosat_root):
    """A new user's paper profile with one dataset: every role named in the profile but missing here
    (focus, fairness_dataset, Table 4's and Tables 7/10's datasets, notebook 04's) falls back to it."""
    cfg = _paper(**{"fair.descriptors": {"EuroSAT": "eurosat.json"}})
    p = fair_plan.plan(cfg, eurosat_root)
    assert p.tables == p.protocol == p.ablation == p.features == ["EuroSAT"]
    assert p.focus == p.fairness == "EuroSAT"
    notes = "\n".join(p.notes)
    assert "fair.focus 'Flowers102' is not available: using 'EuroSAT'" in notes
    assert "fair.fairness_dataset ['DTD'] are not available: using the focus 'EuroSAT'" in notes
    assert set(p.skipped) == {"DTD", "Flowers102", "OxfordPets", "StanfordCars", "UCF101"}
    report = p.report()
    assert "skipped DTD:" in report and "focus: EuroSAT" in report
    table = fair_plan.split_table(cfg, ["EuroSAT"], eurosat_root)
    row = table.loc["EuroSAT"]
    assert (row["paper train (Table 6)"], row["paper test"]) == (10000, 5000)
    assert (row["ours: adapts on"], row["ours: images"], row["ours: test"], row["same as paper"]) == ("train", 1200, 600, False)
    joined = fair_plan.split_table(profiles.apply(cfg, {"fair.train_splits": {"EuroSAT": ["train", "val"]}}),
                                   ["EuroSAT"], eurosat_root)
    assert (joined.loc["EuroSAT", "ours: adapts on"], joined.loc["EuroSAT", "ours: images"]) == ("train+val", 1400)


DESCRIPTION_ROWS = {f"WCA as PL {fa.STAR}", f"{fa.STAR} + crop selection", f"{fa.STAR} + [CLS] crop weights",
                    "FAIR (w/ WCA PL)", "FAIR (w/ LaZSL PL, ours)"}


def test_plan_falls_back_to_the_templates_where_the_descriptor_file_is_missing(eurosat_root, tmp_path):
    """A user's own dataset with no CuPL file (item 7): FAIR still runs there, Z* starting from the class
    prompt templates, the reason and the rows left out named; a file that does not fit stays a skip."""
    missing = tmp_path / "none.json"
    cfg = _paper(**{"fair.descriptors": {"EuroSAT": str(missing)}})
    p = fair_plan.plan(cfg, eurosat_root)
    assert p.tables == p.protocol == p.ablation == p.features == ["EuroSAT"] and p.focus == "EuroSAT"
    assert "EuroSAT" not in p.skipped and str(missing) in p.templated["EuroSAT"]
    assert "'imagenet80' templates" in p.report() and "(w/ LaZSL PL, ours)" in p.report()
    assert {row for row in fa.ROWS if fa.needs_descriptions(row)} == DESCRIPTION_ROWS
    rows = {job.row for job in fair_plan.jobs(cfg, p)}
    assert rows & DESCRIPTION_ROWS == set() and {"FAIR", "FAIR w/o LAS", f"{fa.STAR} + interaction w/ CDA (LAS)"} <= rows
    assert [r for _, r in fa.rows_for("table7", templated=True)] == ["FAIR-g (CuPL PL)", "FAIR"]
    assert fa.rows_for("table7") == fa.TABLES["table7"]
    # the profile naming no file at all (the '*' rule removed) is the same fallback
    none = profiles.load("paper", **{"fair.datasets": ["EuroSAT"]})
    none["fair"]["descriptors"] = {"DTD": none["fair"]["descriptors"]["DTD"]}
    assert "names no descriptor file" in fair_plan.plan(none, eurosat_root).templated["EuroSAT"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"not a EuroSAT class": ["a sentence"]}')
    p = fair_plan.plan(_paper(**{"fair.descriptors": {"EuroSAT": {"path": str(bad), "format": "cupl"}}}), eurosat_root)
    assert "EuroSAT" in p.skipped and p.skipped["EuroSAT"].startswith("no FAIR text side") and p.focus is None
    assert "no FAIR dataset is available" in p.notes[-1]
    assert not p.has("focus") and not p.has("fairness")


def test_template_text_side_is_the_class_names_in_every_template(tmp_path):
    cfg = profiles.load("demo", **{"fair.descriptors": {"demo-*": str(tmp_path / "none.json")}})
    names = ["zero", "one"]
    sentences, why = fa.text_sentences(cfg, "demo-colour", names)
    templates = fa.templates(cfg["templates"])
    assert len(templates) > 1 and sentences == [[t.format(n) for t in templates] for n in names]
    assert str(tmp_path / "none.json") in why and "rows that need descriptions are left out" in why
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    described, why = fa.text_sentences(profiles.load("demo"), "demo-colour", digits)
    assert why is None and described[0][0].startswith("A handwritten zero")


def test_a_table_on_a_dataset_without_descriptor_file_trains_the_rows_it_can(tmp_path):
    """End to end on the demo world (tiny runs): the table has zero-shot and the rows that need no
    descriptions, and Z*_0 is the template classifier, not the descriptions' one."""
    from lib import models
    from lib.features.cache import FeatureCache

    sizes = {"fair.adapt_size": 16, "fair.test_size": 20, "fair.config.epochs": 1, "fair.config.n_crops": 2,
             "fair.config.top_k": 1, "fair.config.batch_size": 8}
    cfg = profiles.load("demo", **{"fair.descriptors": {"demo-*": str(tmp_path / "none.json")}, **sizes})
    handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
    cache = FeatureCache(tmp_path / "cache")
    long = fa.table(handle, cfg, cache, "table7", ["demo-colour"])
    assert list(long.index.get_level_values("method")) == [fa.CUPL_ZERO_SHOT, "FAIR-g (CuPL PL)", "FAIR"]
    assert long[fa.FINAL].between(0, 100).all()
    test = fa.splits(cfg, "demo-colour", "transductive")[1]
    templated = fa.text(handle, test, cfg, cache).initial
    described = fa.text(handle, test, profiles.load("demo", **sizes), cache).initial
    assert templated.shape == described.shape and not torch.allclose(templated, described)


def test_average_is_missing_where_a_row_is_left_out_on_a_dataset():
    long = pd.DataFrame({"method": ["FAIR", "FAIR", "WCA", fa.CUPL_ZERO_SHOT, fa.CUPL_ZERO_SHOT],
                         "dataset": ["a", "b", "a", "a", "b"], fa.FINAL: [60.0, 40.0, 55.0, 50.0, 30.0],
                         fa.BEST: [61.0, 41.0, 56.0, np.nan, np.nan]}).set_index(["method", "dataset"])
    shown = fa.shown(long, ["a", "b"])
    assert shown.loc["FAIR", ("final epoch", "Avg")] == 50.0
    assert np.isnan(shown.loc["WCA", ("final epoch", "Avg")]) and np.isnan(shown.loc["WCA", ("final epoch", "b")])


def test_plan_with_no_data_root_keeps_the_demo_world_and_names_what_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    p = fair_plan.plan(profiles.load("demo"))
    assert p.tables == ["demo-colour"] and p.protocol == ["demo-colour"]
    assert p.focus == "demo-colour" and p.fairness == "demo-colour@colour=0.8" and "eurosat" in p.skipped
    assert p.has("focus") and capsys.readouterr().out == ""
    empty = fair_plan.plan(_paper())
    assert empty.focus is None and empty.tables == [] and "no FAIR dataset" in empty.notes[-1]
    assert not empty.has("tables") and "skipped: no dataset for fair.datasets" in capsys.readouterr().out


def test_plan_needs_no_role_keys_and_names_a_bad_demo_domain(monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    cfg = profiles.load("demo")
    for key in ("focus", "fairness_dataset", "fairness_seeds", "protocol_datasets", "ablation_datasets",
                "feature_datasets", "sweep", "cost_images"):
        cfg["fair"].pop(key)
    cfg["fair"]["datasets"] = ["demo-nope", "demo-colour"]
    p = fair_plan.plan(cfg)
    assert "unknown demo domain 'nope'" in p.skipped["demo-nope"]
    assert p.focus == "demo-colour" and p.protocol == p.ablation == p.features == ["demo-colour"]
    assert "the profile names no fair.focus: using 'demo-colour'" in p.notes
    assert fair_plan.fairness_seeds(cfg, p) == [0] and fair_plan.sweep_grid(cfg) == ([8, 16, 32], [1, 4, 16])
    assert fair_plan.cost_images(cfg) == 64
    jobs = fair_plan.jobs(cfg, p)
    assert fa.FairJob("demo-colour", "FAIR", "transductive") in jobs
