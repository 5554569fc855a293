"""lib.fair_tables (the named rows of FAIR's tables) and lib.embeddings (notebook 04's numbers)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib import embeddings, fair, fair_tables as ft, profiles


@pytest.mark.parametrize("profile", ["demo", "eurosat", "paper"])
def test_every_row_is_a_valid_config_on_every_profile(profile):
    cfg = profiles.load(profile)
    for row in ft.ROWS:
        config = ft.config(cfg, ft.Job(ft.block(cfg)["focus"], row))
        assert isinstance(config, fair.FairConfig)
    for table, rows in ft.TABLES.items():
        assert all(row in ft.ROWS for _, row in rows), table


def test_rows_differ_from_fair_only_in_their_switches():
    cfg = profiles.load("demo")
    base = ft.config(cfg, ft.Job("demo-colour", "FAIR"))
    for row, switches in ft.ROWS.items():
        config = ft.config(cfg, ft.Job("demo-colour", row))
        changed = {k for k in switches if getattr(config, k) != getattr(base, k)}
        assert changed == set(switches), row  # each switch really changes something
        for field in ("epochs", "lr", "n_crops", "seed"):
            assert getattr(config, field) == getattr(base, field)


def test_paper_profile_keeps_the_papers_settings():
    cfg = profiles.load("paper")
    config = ft.config(cfg, ft.Job("DTD"))
    assert (config.epochs, config.lr, config.batch_size, config.n_crops, config.top_k) == (15, 1e-4, 32, 16, 4)
    assert (config.alpha, config.beta) == (0.5, 0.9)
    assert ft.config(cfg, ft.Job("Food101")).lr == 1e-6


def test_jobs_name_their_errors_and_deduplicate():
    with pytest.raises(KeyError, match=re.escape("unknown FAIR row 'FAIR++'")):
        ft.Job("demo-colour", "FAIR++")
    with pytest.raises(ValueError, match="protocol='semi'"):
        ft.Job("demo-colour", protocol="semi")
    jobs = ft.table_jobs(profiles.load("demo"), ["table3", "table5", "table7"], ["demo-colour"])
    assert len(jobs) == len(set(jobs))
    assert ft.Job("demo-colour", "FAIR") in jobs
    assert len(ft.sweep_jobs("demo-colour", [8, 16], [4, 16])) == 3  # (16, 4) appears once


def test_with_overrides_ignores_empty_values_and_checks_the_rest():
    cfg = profiles.load("demo")
    out = ft.with_overrides(cfg, datasets=[], focus="", epochs=0, lr=0.0, adapt_size=64, workers=1)
    assert out["fair"]["adapt_size"] == 64 and out["fair"]["workers"] == 1
    assert out["fair"]["datasets"] == cfg["fair"]["datasets"]
    assert cfg["fair"]["adapt_size"] != 64  # the profile itself is untouched
    assert ft.config(ft.with_overrides(cfg, epochs=1), ft.Job("demo-colour")).epochs == 1
    with pytest.raises(ValueError, match="epochs"):
        ft.with_overrides(cfg, epochs=-2)


def test_block_missing_names_the_profile():
    with pytest.raises(KeyError, match="profile 'bare' has no 'fair' block"):
        ft.block({"profile": "bare"})


def _clusters(n_per=40, c=4, d=16, spread=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(c, d, generator=gen), dim=-1)
    labels = torch.arange(c).repeat_interleave(n_per)
    feats = centres[labels] + spread * torch.randn(len(labels), d, generator=gen)
    return feats, labels, centres


def test_separation_and_alignment_rank_tight_clusters_above_loose_ones():
    tight, labels, centres = _clusters(spread=0.05)
    loose, _, _ = _clusters(spread=2.0)
    assert embeddings.class_separation(tight, labels) > embeddings.class_separation(loose, labels) + 0.3
    assert embeddings.anchor_alignment(tight, labels, centres) > 0.9
    assert embeddings.anchor_alignment(tight, labels, centres.roll(1, 0)) < 0.5


def test_confusion_rows_are_percent_of_each_true_class():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    logits = F.one_hot(torch.tensor([0, 1, 1, 1, 0, 2]), 3).float()
    matrix = embeddings.confusion_percent(logits, labels)
    assert np.allclose(matrix.sum(1), 100.0)
    assert np.allclose(matrix[0], [50, 50, 0]) and np.allclose(matrix[1], [100 / 3, 200 / 3, 0])


def test_tsne_places_anchors_and_is_seeded():
    feats, labels, centres = _clusters(n_per=15, c=3)
    points, stars = embeddings.tsne_with_anchors(feats, centres, seed=0, perplexity=10)
    assert points.shape == (45, 2) and stars.shape == (3, 2)
    again, _ = embeddings.tsne_with_anchors(feats, centres, seed=0, perplexity=10)
    assert np.allclose(points, again)
    # each anchor lands nearer its own cluster's centre than the others'
    centroids = np.stack([points[labels.numpy() == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(stars[:, None] - centroids[None], axis=-1).argmin(1)
    assert nearest.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="share d"):
        embeddings.tsne_with_anchors(feats, centres[:, :3])


def test_every_row_has_its_own_cache_key():
    """Two rows sharing a key would silently share one trained run (a bug once: the text side's
    fingerprint overwrote the config's ``text`` field)."""
    cfg = profiles.load("demo")
    text = fair.Text.from_descriptions(F.normalize(torch.randn(3, 2, 8), dim=-1), torch.ones(3, 2, dtype=torch.bool))
    keys = {row: repr(sorted(fair.run_settings(ft.config(cfg, ft.Job("demo-colour", row)), text).items()))
            for row in ft.ROWS}
    assert len(set(keys.values())) == len(ft.ROWS)
