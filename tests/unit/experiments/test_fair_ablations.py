"""lib.experiments.fair_ablations (the named rows of FAIR's tables) and lib.methods.feature_space (notebook 04's numbers)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.experiments import fair_ablations as fa
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
