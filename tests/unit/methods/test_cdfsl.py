"""lib.methods.episodes, cc_cdfsl, dtrap, finetune and episode_runs: episodes, the CC-CDFSL cycle and Semantic
Anchor, the CE split, the abstract-derived remedy (ours), fine-tuning runs (the authors' D-Trap: test_dtrap.py).

The maths is checked on small hand-built tensors whose answers are known; the training loop on the
random-weight demo model (32 px, 4x4 patches) with one or two full-batch steps on a 2-way 2-shot
support set of the demo world, so the whole file stays fast.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lib import models
from lib.data.resolve import demo_dataset
from lib.experiments.cdfsl_episodes import history_frame, run_episode
from lib.experiments.protocol import config_from
from lib.features import cache as feature_cache
from lib.methods import episode_runs, finetune
from lib.methods.cc_cdfsl import anchor_corpus, anchor_patches, cycle_loss, translate
from lib.methods.dtrap import alignment_loss, ce_parts, class_centres, ramp
from lib.methods.episodes import Episode, mean_ci, sample_episodes
from lib.models import prompt_learning, tuning
from module_state import assert_unchanged, snapshot

# every loss term on (CC-CDFSL cycle with both Semantic Anchor switches, the abstract-derived perturbation
# and alignment, the authors' D-Trap perturbation and alignment); anchor_patches below the 2 x 16
# patches per class so the shrink really drops patches
ALL_ON = dict(cycle=True, ours_perturb=True, ours_align=True, perturb=True, align=True, anchor_augment=True,
              anchor_shrink=True, anchor_patches=3)


def _config(**overrides) -> finetune.CdfslConfig:
    return finetune.CdfslConfig(**{"steps": 1, **ALL_ON, **overrides})


@pytest.fixture(scope="module")
def dataset():
    return demo_dataset("demo-colour", "test", n=60)


@pytest.fixture(scope="module")
def class_text(handle, dataset):
    return models.encode_texts(handle, [f"a photo of a {name}." for name in dataset.classnames])


@pytest.fixture(scope="module")
def support(dataset, class_text):
    """A 2-way 2-shot support set: (images, episode labels, class names, class texts)."""
    episode = sample_episodes(dataset.labels, n_way=2, k_shot=2, n_query=1, seed=0,
                                    classnames=dataset.classnames)[0]
    images = [dataset[i][0] for i in episode.support]
    names = [dataset.classnames[c] for c in episode.classes]
    return images, episode.support_labels, names, class_text[list(episode.classes)]


# --------------------------------------------------------------------------------------------------
# episodes

# 6 classes holding 5..10 images, shuffled so that a class's indices are not contiguous
_ORDER = np.random.default_rng(0).permutation(sum(5 + c for c in range(6)))
POOL = torch.tensor([c for c in range(6) for _ in range(5 + c)])[torch.from_numpy(_ORDER)]


def test_episodes_are_seeded():
    a = sample_episodes(POOL, n_way=3, k_shot=2, n_query=3, n_episodes=4, seed=0)
    b = sample_episodes(POOL, n_way=3, k_shot=2, n_query=3, n_episodes=4, seed=0)
    c = sample_episodes(POOL, n_way=3, k_shot=2, n_query=3, n_episodes=4, seed=1)
    assert a == b
    assert a != c
    assert len({e.support for e in a}) > 1  # the episodes of one call differ too


def test_episode_i_does_not_depend_on_how_many_are_asked_for():
    five = sample_episodes(POOL, n_way=3, k_shot=1, n_query=2, n_episodes=5, seed=7)
    three = sample_episodes(POOL, n_way=3, k_shot=1, n_query=2, n_episodes=3, seed=7)
    assert five[:3] == three


@pytest.mark.parametrize("n_way, k_shot, n_query", [(5, 1, 4), (3, 2, 3), (6, 1, 1), (2, 4, 1)])
def test_episodes_are_balanced_disjoint_and_valid(n_way, k_shot, n_query):
    labels = POOL.numpy()
    episodes = sample_episodes(POOL, n_way=n_way, k_shot=k_shot, n_query=n_query, n_episodes=20, seed=3)
    assert len(episodes) == 20
    for e in episodes:
        assert e.n_way == n_way == len(set(e.classes))
        assert set(e.classes) <= set(labels.tolist())
        assert len(e.support) == n_way * k_shot and len(e.query) == n_way * n_query
        assert len(set(e.support)) == len(e.support) and len(set(e.query)) == len(e.query)
        assert not set(e.support) & set(e.query)
        assert all(0 <= i < len(labels) for i in e.support + e.query)
        # class-major: the dataset labels of the indices follow the episode's class order
        classes = np.asarray(e.classes)
        assert labels[list(e.support)].tolist() == np.repeat(classes, k_shot).tolist()
        assert labels[list(e.query)].tolist() == np.repeat(classes, n_query).tolist()
        assert labels[list(e.support)].tolist() == classes[e.support_labels.numpy()].tolist()
        assert labels[list(e.query)].tolist() == classes[e.query_labels.numpy()].tolist()
    assert len({e.classes for e in episodes}) > 1


def test_episode_labels_are_class_major_0_to_n_minus_1():
    e = Episode(classes=(7, 3, 5), support=tuple(range(6)), query=tuple(range(6, 15)))
    assert e.support_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert e.query_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_a_class_too_small_for_the_episode_raises_naming_it_and_the_counts():
    labels = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError) as err:
        sample_episodes(labels, n_way=2, k_shot=2, n_query=1, classnames=["ant", "bee", "cat"])
    message = str(err.value)
    assert "'bee'" in message and "has 2 images" in message and "needs 3" in message
    assert "'ant'" not in message and "'cat'" not in message
    with pytest.raises(ValueError, match="label 1 has 2 images"):
        sample_episodes(labels, n_way=2, k_shot=2, n_query=1)


def test_more_ways_than_classes_raises():
    with pytest.raises(ValueError, match="4-way.*3"):
        sample_episodes([0, 0, 1, 1, 2, 2], n_way=4, k_shot=1, n_query=1)


@pytest.mark.parametrize("name, value", [("k_shot", 0), ("n_query", 0), ("n_way", 1), ("n_episodes", 0)])
def test_bad_episode_parameters_raise_naming_them(name, value):
    kwargs = {**dict(n_way=2, k_shot=1, n_query=1, n_episodes=1), name: value}
    with pytest.raises(ValueError, match=f"{name}={value}"):
        sample_episodes(POOL, **kwargs)


def test_mean_ci_is_mean_and_196_std_over_sqrt_n():
    values = np.random.default_rng(0).uniform(20, 90, size=17)
    mean, half = mean_ci(values.tolist())
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert half == pytest.approx(1.96 * np.std(values, ddof=0) / np.sqrt(len(values)), rel=1e-12)
    assert mean_ci([42.0]) == (42.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci([])


# --------------------------------------------------------------------------------------------------
# translation and the cycle loss


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q


def _rows(m: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_cycle_loss_is_zero_for_inverse_linear_maps():
    x = _rows(10, 16, 0)
    q = _orthogonal(16, 1)
    assert cycle_loss(x, lambda v: v @ q, lambda t: t @ q.T).item() == pytest.approx(0, abs=1e-6)
    a = _rows(16, 16, 2) + 4 * torch.eye(16, dtype=torch.float64)  # invertible, not orthogonal
    assert (a @ a.T - torch.eye(16, dtype=torch.float64)).abs().max() > 0.5
    a_inv = torch.linalg.inv(a)
    assert cycle_loss(x, lambda v: v @ a, lambda t: t @ a_inv).item() == pytest.approx(0, abs=1e-6)
    # up to scale
    assert cycle_loss(x, lambda v: v @ a, lambda t: 3 * t @ a_inv).item() == pytest.approx(0, abs=1e-6)


def test_cycle_loss_is_positive_for_maps_that_do_not_invert():
    x = _rows(10, 16, 0)
    q = _orthogonal(16, 1)
    assert cycle_loss(x, lambda v: v @ q, lambda t: t @ q).item() > 0.1
    projection = torch.diag(torch.tensor([1.0] * 8 + [0.0] * 8, dtype=torch.float64))
    loss = cycle_loss(x, lambda v: v @ projection, lambda t: t)
    expected = (1 - F.cosine_similarity(x, x @ projection, dim=-1)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-9)
    assert loss.item() > 0.05


def test_translate_is_a_unit_attention_mix_of_the_corpus():
    queries, corpus = _rows(5, 8, 0), _rows(6, 8, 1)
    out = translate(queries, corpus, tau=0.3)
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5, dtype=torch.float64))
    weights = torch.softmax(F.normalize(queries, dim=-1) @ F.normalize(corpus, dim=-1).T / 0.3, dim=-1)
    torch.testing.assert_close(out, F.normalize(weights @ corpus, dim=-1))
    # very soft: the corpus mean; very sharp: the most similar corpus entry
    torch.testing.assert_close(translate(queries, corpus, tau=1e6),
                               F.normalize(corpus.mean(0), dim=-1).expand(5, -1), atol=1e-5, rtol=0)
    nearest = (F.normalize(queries, dim=-1) @ F.normalize(corpus, dim=-1).T).argmax(1)
    torch.testing.assert_close(translate(queries, corpus, tau=1e-4), F.normalize(corpus[nearest], dim=-1),
                               atol=1e-5, rtol=0)


def test_translating_through_a_corpus_that_holds_the_query_reproduces_it():
    x = _rows(6, 32, 0)
    corpus = torch.cat([_rows(10, 32, 1), 2.5 * x, _rows(10, 32, 2)])  # x among others, rescaled
    through = lambda v: translate(v, corpus, tau=1e-3)  # noqa: E731
    torch.testing.assert_close(through(x), F.normalize(x, dim=-1), atol=1e-6, rtol=0)
    assert cycle_loss(x, through, through).item() == pytest.approx(0, abs=1e-6)


def test_a_corpus_of_two_far_vectors_gives_a_positive_cycle_loss():
    x = _rows(6, 16, 0)
    corpus = torch.eye(16, dtype=torch.float64)[:2]  # two orthogonal vectors; x is in neither's direction
    through = lambda v: translate(v, corpus, tau=1e-4)  # noqa: E731
    loss = cycle_loss(x, through, through)
    cos = F.normalize(x, dim=-1) @ corpus.T
    expected = (1 - cos.max(1).values).mean()  # sharp attention snaps each x to its nearest vector
    assert loss.item() > 0.3
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


# --------------------------------------------------------------------------------------------------
# Semantic Anchor


def _class_subspace_patches(labels: list[int], length: int, width: int, seed: int) -> torch.Tensor:
    """Unit patches (B, L, 3 * width): class c's patches live in coordinates [c * width, (c + 1) * width)."""
    gen = torch.Generator().manual_seed(seed)
    patches = torch.zeros(len(labels), length, 3 * width, dtype=torch.float64)
    for b, c in enumerate(labels):
        patches[b, :, c * width:(c + 1) * width] = torch.randn(length, width, generator=gen, dtype=torch.float64)
    return F.normalize(patches, dim=-1)


def test_anchor_corpus_appends_unit_within_class_mixtures():
    labels = torch.tensor([0, 1, 0, 2])
    length, width, factor = 3, 5, 2
    patches = _class_subspace_patches(labels.tolist(), length, width, seed=0)
    out = anchor_corpus(patches, labels, factor, torch.Generator().manual_seed(0))
    n = len(labels) * length
    assert out.shape == (n * (1 + factor), 3 * width)
    torch.testing.assert_close(out[:n], patches.reshape(n, -1), atol=0, rtol=0)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(len(out), dtype=torch.float64))
    flat, owner = patches.reshape(n, -1), labels.repeat_interleave(length)
    per_class = {c: 0 for c in range(3)}
    for m in out[n:]:
        # exactly one class's coordinates are used ...
        used = [c for c in range(3) if m[c * width:(c + 1) * width].abs().max() > 1e-12]
        assert len(used) == 1, used
        c = used[0]
        per_class[c] += 1
        # ... and the mixture is a non-negative combination of two patches of that class
        members = torch.nonzero(owner == c).flatten().tolist()
        found = False
        for i in members:
            for j in members:
                basis = torch.stack([flat[i], flat[j]], dim=1)
                coef = torch.linalg.lstsq(basis, m[:, None]).solution
                if (basis @ coef - m[:, None]).abs().max() < 1e-9 and (coef > -1e-9).all():
                    found = True
                    break
            if found:
                break
        assert found, "a mixture is not lam * v_a + (1 - lam) * v_b of two same-class patches"
    # every patch is mixed ``factor`` times: each class gets factor x its patches
    assert per_class == {c: factor * length * int((labels == c).sum()) for c in range(3)}


def test_anchor_corpus_is_seeded():
    labels = torch.tensor([0, 1, 0, 1])
    patches = _class_subspace_patches(labels.tolist(), 4, 5, seed=1)
    a = anchor_corpus(patches, labels, 1, torch.Generator().manual_seed(3))
    b = anchor_corpus(patches, labels, 1, torch.Generator().manual_seed(3))
    c = anchor_corpus(patches, labels, 1, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _known_similarity_patches(labels: list[int], length: int, d: int, seed: int):
    """Unit patches whose cosine to class text e_c (c = the image's label) is known and distinct."""
    rng = np.random.default_rng(seed)
    cos = rng.permutation(np.linspace(-0.9, 0.95, len(labels) * length)).reshape(len(labels), length)
    patches = torch.zeros(len(labels), length, d, dtype=torch.float64)
    for b, c in enumerate(labels):
        for l in range(length):
            patches[b, l, c] = cos[b, l]
            patches[b, l, d - 1] = math.sqrt(1 - cos[b, l] ** 2)  # an axis no class text uses
    return patches, torch.tensor(cos)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_anchor_patches_keeps_each_class_top_k_by_cosine(k):
    labels = [0, 1, 0, 2]  # class 0 holds 8 patches, classes 1 and 2 hold 4
    length, d = 4, 6
    patches, cos = _known_similarity_patches(labels, length, d, seed=k)
    text = 5 * torch.eye(d, dtype=torch.float64)[:4]  # 4 classes (one absent), not unit norm
    kept = anchor_patches(patches, torch.tensor(labels), text, k)
    expected = []
    for c in sorted(set(labels)):
        own = [(cos[b, l].item(), patches[b, l]) for b in range(len(labels)) if labels[b] == c for l in range(length)]
        own.sort(key=lambda item: -item[0])
        expected.extend(p for _, p in own[:min(k, len(own))])
    assert kept.shape == (sum(min(k, length * labels.count(c)) for c in set(labels)), d)
    as_set = lambda rows: sorted(tuple(np.round(r.tolist(), 9)) for r in rows)  # noqa: E731
    assert as_set(kept) == as_set(expected)


def test_anchor_patches_ranks_by_cosine_not_by_norm():
    # two patches of class 0: a short one pointing at the text, a long one at 60 degrees from it
    patches = torch.tensor([[[1.0, 0.0], [5.0, 5.0 * math.sqrt(3)]]])
    kept = anchor_patches(patches, torch.tensor([0]), torch.tensor([[1.0, 0.0]]), 1)
    torch.testing.assert_close(kept, patches[0, :1])


# --------------------------------------------------------------------------------------------------
# the D-Trap CE split


@pytest.fixture
def split_case():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 2, 1, 0, 1, 2, 2, 0, 1, 1])
    features = F.normalize(torch.randn(len(labels), 8, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(3, 8, generator=gen, dtype=torch.float64), dim=-1)
    return features.requires_grad_(True), labels, text, 0.07


def test_class_centres_are_detached_class_means(split_case):
    features, labels, _, _ = split_case
    mu = class_centres(features, labels, 3)
    assert not mu.requires_grad
    for c in range(3):
        torch.testing.assert_close(mu[c], features.detach()[labels == c].mean(0))


def test_ce_split_is_exact(split_case):
    features, labels, text, tau = split_case
    parts = ce_parts(features, labels, text, tau)
    logits = features @ text.T / tau
    torch.testing.assert_close(parts["logits"], logits)
    torch.testing.assert_close(parts["ce"], F.cross_entropy(logits, labels))
    mu = torch.stack([features.detach()[labels == c].mean(0) for c in range(3)])
    z_vis, z_cm = features @ mu.T / tau, features @ (text - mu).T / tau
    torch.testing.assert_close(z_vis + z_cm, logits)
    # the gradients of the two surrogate parts sum to CE's
    (g_ce,) = torch.autograd.grad(parts["ce"], features, retain_graph=True)
    (g_sum,) = torch.autograd.grad(parts["visual"] + parts["cross_modal"], features, retain_graph=True)
    torch.testing.assert_close(g_sum, g_ce)
    assert g_ce.abs().max() > 0
    # visual part: dL/dz (p - y) times the visual centres, as the docstring derives
    (g_vis,) = torch.autograd.grad(parts["visual"], features)
    residual = torch.softmax(logits, 1).detach() - F.one_hot(labels, 3).to(logits)
    torch.testing.assert_close(g_vis, residual @ mu / tau / len(labels))


def test_ce_split_margins_add_up_to_the_total_margin(split_case):
    features, labels, text, tau = split_case
    parts = ce_parts(features, labels, text, tau)
    logits = (features @ text.T / tau).detach()
    margins = []
    for i, y in enumerate(labels.tolist()):
        others = [logits[i, c] for c in range(3) if c != y]
        margins.append(logits[i, y] - sum(others) / len(others))
    total = torch.stack(margins).mean()
    torch.testing.assert_close(parts["margin_visual"] + parts["margin_cross_modal"], total)
    mu = torch.stack([features.detach()[labels == c].mean(0) for c in range(3)])
    z_vis = (features @ mu.T / tau).detach()
    visual = torch.stack([z_vis[i, y] - (z_vis[i].sum() - z_vis[i, y]) / 2 for i, y in enumerate(labels.tolist())])
    torch.testing.assert_close(parts["margin_visual"], visual.mean())


def test_a_class_absent_from_the_batch_raises_naming_it(split_case):
    features, _, text, tau = split_case
    labels = torch.tensor([0, 2, 0, 0, 2, 2, 2, 0, 0, 0])
    with pytest.raises(ValueError, match=r"\[1\]"):
        ce_parts(features, labels, text, tau)
    with pytest.raises(ValueError, match=r"\[3\]"):
        class_centres(features, torch.tensor([0, 1, 2, 4, 0, 1, 2, 4, 0, 1]), 5)


# --------------------------------------------------------------------------------------------------
# the abstract-derived alignment (ours) and its ramp


def test_alignment_loss_is_zero_when_each_feature_is_its_class_text(split_case):
    _, labels, text, _ = split_case
    features = 2.5 * text[labels]  # the loss normalises the features
    assert alignment_loss(features, labels, text, 0.05).item() == pytest.approx(0, abs=1e-9)


def test_alignment_loss_is_the_kl_of_the_text_relations(split_case):
    features, labels, text, _ = split_case
    tau = 0.05
    loss = alignment_loss(features, labels, text, tau)
    target = torch.softmax(text[labels] @ text.T / tau, dim=1)
    pred = torch.softmax(F.normalize(features, dim=-1) @ text.T / tau, dim=1)
    expected = (target * (target.log() - pred.log())).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    assert loss.item() > 1e-3
    (grad,) = torch.autograd.grad(loss, features)
    assert grad.abs().max() > 0


def test_alignment_target_is_detached_and_the_prediction_keeps_the_text_gradient(split_case):
    """The documented split: the target relations are fixed, the prediction's text keeps its gradient
    (so a learned CoOp prompt is aligned too)."""
    features, labels, text, _ = split_case
    tau = 0.05
    text = text.clone().requires_grad_(True)
    loss = alignment_loss(features, labels, text, tau)
    g_text, g_features = torch.autograd.grad(loss, [text, features])
    assert g_features.abs().max() > 0

    def kl(target_text, pred_text):
        t_target, t_pred = F.normalize(target_text, dim=-1), F.normalize(pred_text, dim=-1)
        target = torch.softmax(t_target[labels] @ t_target.T / tau, dim=1)
        log_pred = torch.log_softmax(F.normalize(features, dim=-1) @ t_pred.T / tau, dim=1)
        return (target * (target.log() - log_pred)).sum(1).mean()

    (expected,) = torch.autograd.grad(kl(text.detach(), text), text)
    (through_both,) = torch.autograd.grad(kl(text, text), text)
    assert expected.abs().max() > 0
    torch.testing.assert_close(g_text, expected)
    assert (through_both - expected).abs().max() > 1e-3  # the target side would have added to it


@pytest.mark.parametrize("steps, final", [(1, 1.0), (5, 2.0), (50, 0.3)])
def test_ramp_grows_linearly_to_its_final_weight(steps, final):
    weights = [ramp(s, steps, final) for s in range(steps)]
    assert all(0 < w <= final for w in weights)
    assert all(b > a for a, b in zip(weights, weights[1:]))
    assert weights[-1] == pytest.approx(final)
    np.testing.assert_allclose(np.diff([0.0, *weights]), final / steps)


# --------------------------------------------------------------------------------------------------
# the config


@pytest.mark.parametrize("kwargs, name", [
    ({"tuning": "x"}, "tuning='x'"), ({"steps": -1}, "steps=-1"), ({"lr": 0}, "lr=0"),
    ({"rrc_scale": (0.9, 0.5)}, "rrc_scale"), ({"tau": 0}, "tau=0"), ({"cycle_tau": -1.0}, "cycle_tau"),
    ({"ours_perturb_range": (1.0, -1.0)}, "ours_perturb_range"), ({"anchor_patches": 0}, "anchor_patches=0"),
    ({"augment_factor": 0}, "augment_factor=0"), ({"n_ctx": 0}, "n_ctx=0"), ({"steps_per_shot": -1}, "steps_per_shot"),
    ({"cosine_tmax": -2}, "cosine_tmax"), ({"checkpoints": 0}, "checkpoints=0"), ({"stop_fifths": 6}, "stop_fifths=6"),
    ({"fuse_fraction": 0.0}, "fuse_fraction"), ({"perturb_weight": -0.1}, "perturb_weight"),
    ({"align_weight": -1.0}, "align_weight"), ({"ours_align_tau": 0}, "ours_align_tau"),
    ({"eta_min": -1e-6}, "eta_min"), ({"weight_decay": -0.01}, "weight_decay"),
])
def test_bad_config_raises_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("(", r"\(")):
        finetune.CdfslConfig(**kwargs)


def test_config_from_settings_names_unknown_keys_and_accepts_lists():
    with pytest.raises(ValueError, match="stepz"):
        config_from(finetune.CdfslConfig, {"steps": 3, "stepz": 4}, "CDFSL")
    config = config_from(finetune.CdfslConfig, {"tuning": "ln", "rrc_scale": [0.3, 0.9], "steps": 3}, "CDFSL")
    assert config == finetune.CdfslConfig(tuning="ln", rrc_scale=(0.3, 0.9), steps=3)
    assert config_from(finetune.CdfslConfig, {}, "CDFSL").learning_rate == finetune.LEARNING_RATES["lora"]
    assert finetune.CdfslConfig(tuning="full", lr=0.5).learning_rate == 0.5


def _changed(value, name):
    if name == "tuning":
        return "ln" if value != "ln" else "lora"
    if name == "stop_fifths":
        return value - 1
    if name == "fuse_fraction":
        return value / 2
    if isinstance(value, bool):
        return not value
    if isinstance(value, tuple):
        return (value[0] / 2, value[1])
    if value is None:
        return 0.123
    return value + 1 if isinstance(value, int) else value + 0.125


def test_settings_change_with_every_field():
    base = finetune.CdfslConfig()
    settings = base.settings()
    feature_cache.FeatureCache.canonical(settings)  # plain JSON: usable in a cache key
    for field in dataclasses.fields(finetune.CdfslConfig):
        other = dataclasses.replace(base, **{field.name: _changed(getattr(base, field.name), field.name)})
        assert other.settings() != settings, field.name
        assert feature_cache.FeatureCache.key(other.settings()) != feature_cache.FeatureCache.key(settings)
    assert finetune.CdfslConfig(tuning="lora").settings()["tuning_detail"] == tuning.settings("lora")
    assert finetune.CdfslConfig(tuning="clip-lora").settings()["tuning_detail"] == tuning.settings("clip-lora")


# --------------------------------------------------------------------------------------------------
# fine-tuning


def _base_name(name: str) -> str:
    return name.replace(".base_layer", "")


@pytest.mark.parametrize("method", ["ln", "lora", "full", "coop"])
def test_finetune_trains_only_the_chosen_parameters(handle, support, method):
    images, labels, names, text = support
    model_before = snapshot(handle.model)
    tuned, history = finetune.finetune(handle, images, labels, names, text, _config(tuning=method))
    assert_unchanged(handle.model, model_before)
    assert all(p.grad is None for p in handle.model.parameters())
    assert len(history) == 1 and list(history.columns) == list(finetune.STEP_LOG)
    assert np.isfinite(history.to_numpy(dtype=float)).all()

    base = dict(handle.model.visual.named_parameters())
    params = dict(tuned.visual.named_parameters())
    trainable = {name for name, p in params.items() if p.requires_grad}
    changed = {name for name, p in params.items()
               if _base_name(name) in base and not torch.equal(p, base[_base_name(name)])}
    if method == "coop":
        assert not trainable and not changed
        assert [id(p) for p in tuned.params] == [id(tuned.prompts.ctx)]
        initial = prompt_learning.PromptLearner(handle.model, handle.tokenizer, names).ctx
        assert (tuned.prompts.ctx - initial).abs().max() > 1e-4
        frozen = tuned.prompts.transformer.state_dict()
        text_tower = handle.model.transformer.state_dict()
        assert all(torch.equal(frozen[k], text_tower[k]) for k in text_tower)
        return
    assert {id(p) for p in tuned.params} == {id(params[name]) for name in trainable}
    if method == "ln":
        layernorms = {f"{m}.{p}" for m, mod in tuned.visual.named_modules() if isinstance(mod, torch.nn.LayerNorm)
                      for p in ("weight", "bias")}
        assert trainable == layernorms
        assert changed == layernorms
    elif method == "full":
        assert trainable == set(base)
        assert changed == set(base)
    else:  # lora: base weights unchanged (peft merges and unmerges around each forward: float rounding)
        lora = {name for name in params if "lora_" in name}
        assert lora and trainable == lora
        assert set(params) - lora == {n for n in params if _base_name(n) in base}
        for name, p in params.items():
            if name not in lora:
                torch.testing.assert_close(p, base[_base_name(name)], atol=1e-6, rtol=0, msg=name)
        untrained, _ = finetune.finetune(handle, images, labels, names, text, _config(tuning=method, steps=0))
        start = dict(untrained.visual.named_parameters())
        lora_changed = {name for name in lora if not torch.equal(params[name], start[name])}
        lora_b = {name for name in lora if "lora_B" in name}
        assert all(start[name].abs().max() == 0 for name in lora_b)  # peft starts B at zero
        assert lora_b <= lora_changed  # every adapter received a gradient


def test_losses_log_every_term_and_add_up(handle, support):
    images, labels, names, text = support
    config = _config(tuning="ln", steps=10, ours_align_weight=0.7, align_weight=2.0, perturb_weight=0.3)
    tuned = finetune.Tuned(handle, names, text, config)
    pixels = torch.stack([handle.preprocess(image) for image in images])
    memory = {}
    finetune.losses(tuned, pixels, labels, 0, torch.Generator().manual_seed(0), 10, (pixels, labels), memory)
    assert "relations" in memory  # iteration 0 keeps its visual relations for iteration 1's target
    loss, log = finetune.losses(tuned, pixels, labels, 1, torch.Generator().manual_seed(0), 10, (pixels, labels), memory)
    assert set(log) | {"step", "lr"} == set(finetune.STEP_LOG)
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in log.values())
    assert loss.item() == pytest.approx(log["loss"], rel=1e-6)
    assert log["cycle_image"] > 0 and log["cycle_text"] > 0 and log["ours_align"] > 0
    assert log["perturb"] > 0 and log["align"] != 0
    assert log["fuse"] == pytest.approx(1 - 1 / 6)  # 1 - s / int(0.6 x 10)
    assert log["ours_align_weight"] == pytest.approx(ramp(1, 10, 0.7))
    low, high = config.ours_perturb_range
    assert low <= log["ours_visual_scale"] <= high
    total = (log["ce"] + (log["ours_visual_scale"] - 1) * log["visual_part"]
             + log["ours_align_weight"] * log["ours_align"] + 0.3 * log["perturb"] + 2.0 * log["align"]
             + config.cycle_image_weight * log["cycle_image"] + config.cycle_text_weight * log["cycle_text"])
    assert log["loss"] == pytest.approx(total, rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in tuned.params)

    plain = finetune.Tuned(handle, names, text, finetune.CdfslConfig(tuning="ln", steps=4))
    loss, log = finetune.losses(plain, pixels, labels, 1, torch.Generator().manual_seed(0))
    assert log["loss"] == pytest.approx(log["ce"], rel=1e-6)
    assert log["cycle_image"] == log["cycle_text"] == log["ours_align"] == log["ours_align_weight"] == 0
    assert log["perturb"] == log["align"] == log["fuse"] == 0
    assert log["ours_visual_scale"] == 1
    with pytest.raises(ValueError, match="align=True"):
        finetune.losses(tuned, pixels, labels, 1, torch.Generator().manual_seed(0), 10)


def test_finetune_is_deterministic_and_leaves_the_global_rng_alone(handle, support):
    images, labels, names, text = support
    config = _config(tuning="ln", steps=2)
    with torch.random.fork_rng():
        torch.manual_seed(11)
        state = torch.get_rng_state()
        first, history = finetune.finetune(handle, images, labels, names, text, config)
        assert torch.equal(torch.get_rng_state(), state)
        torch.manual_seed(99)  # another global state: the run must not care
        second, again = finetune.finetune(handle, images, labels, names, text, config)
    pd.testing.assert_frame_equal(history, again)
    a, b = first.visual.state_dict(), second.visual.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other, other_history = finetune.finetune(handle, images, labels, names, text, dataclasses.replace(config, seed=1))
    assert not history.equals(other_history)


def test_without_augmentation_each_support_image_is_preprocessed_once_not_every_iteration(handle, support):
    """The un-augmented batch is the same pixels every iteration (the model's preprocessing draws no
    randomness) and the same as the plain view's, so each image is preprocessed once, whatever the
    number of iterations."""
    import copy

    images, labels, names, text = support
    calls = []
    counted = copy.copy(handle)
    counted.preprocess = lambda image: calls.append(image) or handle.preprocess(image)
    tuned, history = finetune.finetune(counted, images, labels, names, text, _config(tuning="ln", steps=4, augment=False))
    assert len(history) == 4
    assert len(calls) == len(images)


def test_zero_steps_is_the_untouched_model(handle, support):
    images, labels, names, text = support
    model_before = snapshot(handle.model)
    tuned, history = finetune.finetune(handle, images, labels, names, text, _config(tuning="lora", steps=0))
    assert len(history) == 0 and list(history.columns) == list(finetune.STEP_LOG)
    base = handle.model.visual.state_dict()
    state = tuned.visual.state_dict()
    assert all(torch.equal(v, base[_base_name(k)]) for k, v in state.items() if "lora_" not in k)
    pixels = torch.stack([handle.preprocess(image) for image in images])
    with torch.no_grad():
        torch.testing.assert_close(tuned.visual(pixels), handle.model.visual(pixels), atol=1e-5, rtol=0)
    coop, _ = finetune.finetune(handle, images, labels, names, text, _config(tuning="coop", steps=0))
    expected = models.encode_texts(handle, [f"{prompt_learning.CTX_INIT} {name}." for name in names])
    torch.testing.assert_close(coop.text().detach(), expected, atol=1e-5, rtol=0)
    assert_unchanged(handle.model, model_before)


def test_finetune_with_mismatched_labels_raises(handle, support):
    images, labels, names, text = support
    with pytest.raises(ValueError, match="support images"):
        finetune.finetune(handle, images[:-1], labels, names, text, _config(tuning="ln"))


# --------------------------------------------------------------------------------------------------
# a cached episode run


def test_run_episode_scores_queries_and_is_cached(handle, dataset, class_text, tmp_path, monkeypatch):
    cache = feature_cache.FeatureCache(tmp_path)
    episode = sample_episodes(dataset.labels, n_way=2, k_shot=1, n_query=2, seed=5,
                                    classnames=dataset.classnames)[0]
    config = finetune.CdfslConfig(tuning="ln", steps=1)
    first = run_episode(handle, dataset, episode, class_text, config, cache)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached episode trained again")

    monkeypatch.setattr(episode_runs, "finetune", no_training)
    monkeypatch.setattr(episode_runs, "evaluate", no_training)
    second = run_episode(handle, dataset, episode, class_text, config, cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert set(first) == set(second)
    assert all(torch.equal(first[k], second[k]) for k in first)

    n_query = len(episode.query)
    accuracy = first["accuracy"].item()
    assert 0 <= accuracy <= 100
    assert first["predictions"].shape == (n_query,)
    assert accuracy == pytest.approx(100 * (first["predictions"] == episode.query_labels).float().mean().item())
    assert first["history"].shape == (1, len(finetune.STEP_LOG))
    assert list(history_frame(first).columns) == list(finetune.STEP_LOG)
    assert first["checkpoints"].tolist() == [accuracy]  # one checkpoint: the end
    assert first["checkpoint_steps"].tolist() == [1]

    view = handle.image_size
    assert dataset[episode.query[0]][0].size == (view, view)  # the view is the image: no resize, no crop
    for key in ("localisation_cls", "localisation_text", "localisation_chance"):
        assert first[key].shape == (n_query,), key
        assert (first[key] >= 0).all() and (first[key] <= 1 + 1e-6).all(), key
    boxes = dataset.boxes[list(episode.query)].double().clamp(0, view)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / view ** 2
    torch.testing.assert_close(first["localisation_chance"].double(), area, atol=1e-6, rtol=0)
    assert (area > 0).all() and (area < 1).all()

    # another config is another entry
    third_config = dataclasses.replace(config, steps=0)
    assert episode_runs.episode_settings(episode, third_config, class_text[list(episode.classes)]) != \
        episode_runs.episode_settings(episode, config, class_text[list(episode.classes)])


class _WithoutBoxes(torch.utils.data.Dataset):
    """``dataset`` seen as a dataset without object boxes (every target of the paper profile)."""

    def __init__(self, dataset):
        self.dataset, self.labels, self.classnames = dataset, dataset.labels, dataset.classnames

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]


def test_without_boxes_evaluate_scores_the_queries_with_one_forward_pass_and_no_maps(handle, dataset, monkeypatch):
    episode = sample_episodes(dataset.labels, n_way=2, k_shot=1, n_query=2, seed=2, classnames=dataset.classnames)[0]
    tuned, _ = episode_runs.finetune_episode(handle, dataset, episode, models.encode_texts(
        handle, [f"a photo of a {dataset.classnames[c]}." for c in episode.classes]), finetune.CdfslConfig(tuning="ln", steps=1))
    with_boxes = episode_runs.evaluate(tuned, dataset, episode)
    passes = []
    tokens = tuned.tokens
    monkeypatch.setattr(tuned, "tokens", lambda pixels: passes.append(len(pixels)) or tokens(pixels))
    monkeypatch.setattr(episode_runs.models, "attention_maps", lambda *a, **k: pytest.fail("maps without boxes"))
    without = episode_runs.evaluate(tuned, _WithoutBoxes(dataset), episode)
    assert passes == [len(episode.query)]
    assert set(without) == {"accuracy", "predictions"}
    assert torch.equal(without["predictions"], with_boxes["predictions"])
    assert without["accuracy"].item() == with_boxes["accuracy"].item()
