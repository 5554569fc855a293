"""lib.methods.dtrap and the D-Trap training loop, as the authors' code computes them.

The equations are checked against plain loops written from the code's description on random
tensors: the random-prototype loss for a given W', the relation matrices, the fused target, PyTorch's
KLDivLoss(log_target=True) written out, the fuse weight and the three-regime schedule. The loop runs
CLIP-LoRA on the random-weight demo model (32 px) with a 2-way 2-shot support set of the demo world
for a few iterations: the regimes land on the right iterations, gradients reach only the LoRA
parameters, the learning rate follows the cosine schedule, checkpoints do not disturb training, and
seeded runs repeat.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lib import models
from lib.data.resolve import demo_dataset
from lib.methods import dtrap, episode_runs, finetune, views
from lib.methods.episodes import sample_episodes
from module_state import assert_unchanged, snapshot


def _unit(m: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(m, d, generator=gen, dtype=torch.float64), dim=-1)


@pytest.fixture
def case():
    """An augmented batch (3 classes x 2 images x 2 views), its plain support (3 x 2) and class texts."""
    labels = torch.tensor([0, 0, 1, 1, 2, 2]).repeat(2)
    plain_labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return (_unit(12, 8, 0).requires_grad_(True), labels, _unit(6, 8, 1).requires_grad_(True), plain_labels,
            _unit(3, 8, 2))


# --------------------------------------------------------------------------------------------------
# the equations


def test_perturbation_loss_is_the_ce_against_the_given_prototypes(case):
    features, labels, _, _, _ = case
    prototypes = _unit(3, 8, 5)
    loss = dtrap.perturbation_loss(features, labels, prototypes, 100.0)
    terms = []
    for i, y in enumerate(labels.tolist()):
        logits = [100.0 * float(features[i].detach() @ prototypes[c]) for c in range(3)]
        top = max(logits)
        terms.append(-(logits[y] - top - math.log(sum(math.exp(z - top) for z in logits))))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-10)
    (grad,) = torch.autograd.grad(loss, features)
    assert grad.abs().max() > 0


def test_random_prototypes_are_normalised_batch_rows_of_any_class_and_seeded(case):
    features, labels, _, _, _ = case
    scaled = 3.0 * features  # drawn rows are normalised
    drawn = dtrap.random_prototypes(scaled, 3, torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 8)
    torch.testing.assert_close(drawn.norm(dim=-1), torch.ones(3, dtype=torch.float64))
    rows = F.normalize(features.detach(), dim=-1)
    index = [int((rows - p.detach()).abs().sum(1).argmin()) for p in drawn]
    torch.testing.assert_close(drawn.detach(), rows[index])
    again = dtrap.random_prototypes(scaled, 3, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)
    # drawn regardless of class: over many draws slot c holds images of every class
    gen = torch.Generator().manual_seed(1)
    owners = {c: set() for c in range(3)}
    for _ in range(60):
        for c, p in enumerate(dtrap.random_prototypes(features, 3, gen).detach()):
            owners[c].add(int(labels[int((rows - p).abs().sum(1).argmin())]))
    assert all(found == {0, 1, 2} for found in owners.values())
    # the gradient flows through the drawn rows, as in the code (no detach)
    loss = dtrap.perturbation_loss(features.detach(), labels, dtrap.random_prototypes(features, 3, gen))
    (grad,) = torch.autograd.grad(loss, features)
    assert grad.abs().max() > 0


def test_relations_are_raw_cosines_and_text_cosines_by_label(case):
    features, labels, plain, plain_labels, text = case
    visual, text_rel = dtrap.relations(2 * features, labels, 0.5 * plain, plain_labels, 4 * text)
    assert visual.shape == text_rel.shape == (12, 6)
    for i in range(12):
        for j in range(6):
            x, s = features[i].detach(), plain[j].detach()
            assert visual[i, j].item() == pytest.approx(float(x @ s / (x.norm() * s.norm())), rel=1e-10)
            assert text_rel[i, j].item() == pytest.approx(float(text[labels[i]] @ text[plain_labels[j]]), rel=1e-10)


def test_relation_target_moves_from_the_previous_visual_relations_to_the_text_relations(case):
    features, labels, plain, plain_labels, text = case
    previous = torch.rand(12, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    _, text_rel = dtrap.relations(features, labels, plain, plain_labels, text)
    iterations = 250
    span = int(0.6 * iterations)
    # f starts at 1: the target is the previous iteration's relations, detached
    at_start = dtrap.relation_target(previous, text_rel, dtrap.fuse_weight(0, iterations))
    torch.testing.assert_close(at_start, previous.detach())
    assert not at_start.requires_grad
    # the first aligned iteration (s = 1) has already moved one step of 1 / span towards the text
    first = dtrap.relation_target(previous, text_rel, dtrap.fuse_weight(1, iterations))
    torch.testing.assert_close(first, (1 - 1 / span) * previous.detach() + (1 / span) * text_rel)
    # once f reaches 0 (s = int(0.6 x iterations)) it is the text relations
    assert dtrap.fuse_weight(span, iterations) == 0
    torch.testing.assert_close(dtrap.relation_target(previous, text_rel, dtrap.fuse_weight(span, iterations)), text_rel)


@pytest.mark.parametrize("iterations", [250, 1250, 125, 12, 7])
def test_fuse_weight_falls_as_the_code_subtracts_it(iterations):
    cut = 1 / int(iterations * 0.6)
    expected = [1.0]
    for _ in range(iterations):
        expected.append(expected[-1] - cut)
    for s in range(iterations):
        if expected[s] >= 0:  # the code's list goes negative past the span; it never reads those entries
            assert dtrap.fuse_weight(s, iterations) == pytest.approx(expected[s], abs=1e-9)
        else:
            assert dtrap.fuse_weight(s, iterations) == 0
    # every aligned iteration of the schedule reads a positive weight: the code's schedule ends first
    aligned = [s for s in range(iterations) if "relation" in dtrap.schedule(s, iterations)]
    assert all(dtrap.fuse_weight(s, iterations) > 0 for s in aligned)


def test_relation_loss_is_pytorchs_kl_div_with_log_target_written_out(case):
    features, labels, plain, plain_labels, text = case
    visual, text_rel = dtrap.relations(features, labels, plain, plain_labels, text)
    target = dtrap.relation_target(visual + 0.1, text_rel, 0.4)
    loss = dtrap.relation_loss(visual, target)
    total = 0.0
    for i in range(visual.shape[0]):
        for j in range(visual.shape[1]):
            r, a = float(target[i, j].detach()), float(visual[i, j].detach())
            total += math.exp(r) * (r - a)
    assert loss.item() == pytest.approx(total / visual.numel(), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(loss, torch.nn.KLDivLoss(log_target=True)(visual, target))
    g_loss = torch.autograd.grad(loss, [features, plain])
    assert all(g.abs().max() > 0 for g in g_loss)  # both sides of A_v carry the gradient


@pytest.mark.parametrize("iterations", [250, 1250, 125, 12])
def test_schedule_has_the_three_regimes_at_the_right_iterations(iterations):
    stop = 3 * int(iterations / 5)
    regimes = [dtrap.schedule(s, iterations) for s in range(iterations)]
    assert regimes[0] == ("vlm", "perturb")
    assert all(r == ("vlm", "relation", "perturb") for r in regimes[1:stop])
    assert all(r == ("vlm",) for r in regimes[stop:])
    assert len(regimes[1:stop]) == stop - 1 and len(regimes[stop:]) == iterations - stop
    if iterations == 250:
        assert regimes[149] == ("vlm", "relation", "perturb") and regimes[150] == ("vlm",)
    # the stop is a switch: 5 fifths keep both terms to the end when iterations divide by 5
    assert all("relation" in dtrap.schedule(s, 250, 5) for s in range(1, 250))


def test_checkpoints_are_the_fifths_of_training():
    assert dtrap.checkpoint_steps(250, 5) == [50, 100, 150, 200, 250]
    assert dtrap.checkpoint_steps(12, 5) == [2, 4, 6, 8, 12]
    assert dtrap.checkpoint_steps(3, 5) == [0, 0, 0, 0, 3]
    assert dtrap.checkpoint_steps(30, 1) == [30]


# --------------------------------------------------------------------------------------------------
# the five views


def test_five_views_are_view_major_seeded_and_view_0_is_a_plain_resize(handle):
    dataset = demo_dataset("demo-colour", "test", n=20)
    images = [dataset[i][0] for i in range(3)]
    labels = torch.tensor([0, 1, 2])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        pixels, out_labels = views.five_view_batch(images, labels, handle.preprocess, handle.image_size)
        torch.manual_seed(0)
        again, _ = views.five_view_batch(images, labels, handle.preprocess, handle.image_size)
    assert pixels.shape == (15, 3, handle.image_size, handle.image_size)
    assert out_labels.tolist() == [0, 1, 2] * 5
    assert torch.equal(pixels, again)
    view0 = views.query_transform(handle.preprocess, handle.image_size, True)
    torch.testing.assert_close(pixels[:3], torch.stack([view0(im) for im in images]))
    torch.testing.assert_close(pixels[:3], torch.stack([handle.preprocess(im) for im in images]))  # square images
    assert not torch.equal(pixels[3:6], pixels[:3])  # rotation + jitter + flip move pixels
    names = [[type(t).__name__ for t in v.transforms] for v in views.dtrap_views(handle.preprocess, 32)]
    middle = [n[2:-3] for n in names]  # between RGB, Resize and the normalisation tail
    assert middle == [[], ["RandomRotation", "ColorJitter", "RandomHorizontalFlip"], ["RandomRotation"],
                      ["ColorJitter"], ["RandomHorizontalFlip"]]
    assert views.query_transform(handle.preprocess, 32, False) is handle.preprocess


# --------------------------------------------------------------------------------------------------
# the loop


ITERATIONS = 10  # stop = 6, span = 6: all three regimes in a few iterations


def _dtrap(**overrides) -> finetune.CdfslConfig:
    settings = dict(tuning="clip-lora", five_views=True, steps=ITERATIONS, weight_decay=1e-2, cosine_tmax=8,
                    perturb=True, align=True, checkpoints=5)
    return finetune.CdfslConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def dataset():
    return demo_dataset("demo-colour", "test", n=80)


@pytest.fixture(scope="module")
def episode(dataset):
    return sample_episodes(dataset.labels, n_way=2, k_shot=2, n_query=2, seed=0, classnames=dataset.classnames)[0]


@pytest.fixture(scope="module")
def text(handle, dataset, episode):
    return models.encode_texts(handle, [f"a photo of a {dataset.classnames[c]}." for c in episode.classes])


@pytest.fixture(scope="module")
def run(handle, dataset, episode, text, one_thread):
    before = snapshot(handle.model)
    tuned, history, result = episode_runs.train_and_score(handle, dataset, episode, text, _dtrap())
    assert_unchanged(handle.model, before)
    return tuned, history, result


def test_the_loop_follows_the_three_regimes(run):
    _, history, _ = run
    stop = 3 * (ITERATIONS // 5)
    assert len(history) == ITERATIONS
    assert history["perturb"].iloc[:stop].gt(0).all() and history["perturb"].iloc[stop:].eq(0).all()
    assert history["align"].iloc[0] == 0 and history["align"].iloc[1:stop].ne(0).all()
    assert history["align"].iloc[stop:].eq(0).all()
    np.testing.assert_allclose(history["fuse"].iloc[1:stop], [1 - s / 6 for s in range(1, stop)])
    np.testing.assert_allclose(history["loss"].iloc[stop:], history["ce"].iloc[stop:], rtol=1e-6)
    total = history["ce"] + 0.1 * history["perturb"] + 3 * history["align"]
    np.testing.assert_allclose(history["loss"], total, rtol=1e-5)


def test_the_learning_rate_follows_the_long_cosine(run):
    _, history, _ = run
    t_max = 8 * ITERATIONS
    expected = [1e-6 + (2e-4 - 1e-6) * (1 + math.cos(math.pi * s / t_max)) / 2 for s in range(ITERATIONS)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-9)
    assert history["lr"].iloc[-1] > 0.9 * 2e-4  # T_max = 8 x iterations: the lr barely decays


def test_gradients_reach_only_the_lora_parameters(handle, dataset, episode, text, one_thread):
    config = _dtrap()
    images = [dataset[i][0] for i in episode.support]
    tuned = finetune.Tuned(handle, [dataset.classnames[c] for c in episode.classes], text, config)
    pixels, labels = views.five_view_batch(images, episode.support_labels, handle.preprocess, handle.image_size)
    plain = torch.stack([tuned.query_transform()(im) for im in images]), episode.support_labels
    memory = {}
    for step in range(2):
        for p in tuned.visual.parameters():
            p.grad = None
        loss, log = finetune.losses(tuned, pixels, labels, step, torch.Generator().manual_seed(0), ITERATIONS, plain,
                                    memory)
        loss.backward()
    assert log["align"] != 0 and log["perturb"] > 0
    with_grad = {n for n, p in tuned.visual.named_parameters() if p.grad is not None}
    lora = {n for n, _ in tuned.visual.named_parameters() if "lora_" in n}
    assert with_grad == lora and {id(p) for p in tuned.params} == {id(p) for n, p in tuned.visual.named_parameters()
                                                                    if n in lora}
    assert all(tuned.visual.get_parameter(n).grad.abs().max() > 0 for n in lora if "lora_B" in n)  # A waits for B != 0
    assert not tuned.fixed_text.requires_grad


def test_training_changes_only_the_adapters(handle, dataset, episode, text, run):
    tuned, _, _ = run
    images = [dataset[i][0] for i in episode.support]
    start, _ = finetune.finetune(handle, images, episode.support_labels, ["a", "b"], text, _dtrap(steps=0))
    start = dict(start.visual.named_parameters())
    params = dict(tuned.visual.named_parameters())
    assert set(params) == set(start)
    assert all(torch.equal(p, start[n]) for n, p in params.items() if "lora_" not in n)
    lora = [n for n in params if "lora_" in n]
    assert all(start[n].abs().max() == 0 for n in lora if "lora_B" in n)  # B starts at zero
    assert all(not torch.equal(params[n], start[n]) for n in lora)  # every adapter moved


def test_checkpoints_score_the_fifths_and_do_not_disturb_training(handle, dataset, episode, text, run, one_thread):
    tuned, history, result = run
    assert result["checkpoint_steps"].tolist() == [2, 4, 6, 8, 10]
    checkpoints = result["checkpoints"]
    assert checkpoints.shape == (5,) and ((checkpoints >= 0) & (checkpoints <= 100)).all()
    assert checkpoints[-1].item() == pytest.approx(result["accuracy"].item())
    quiet, quiet_history, quiet_result = episode_runs.train_and_score(handle, dataset, episode, text,
                                                                      _dtrap(checkpoints=1))
    pd.testing.assert_frame_equal(history, quiet_history)
    a, b = tuned.visual.state_dict(), quiet.visual.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert quiet_result["checkpoints"].tolist() == [result["accuracy"].item()]
    # fewer iterations than checkpoints: the parts that round to no iteration are not scored
    short = episode_runs.train_and_score(handle, dataset, episode, text, _dtrap(steps=3))[2]
    assert short["checkpoint_steps"].tolist() == [0, 0, 0, 0, 3]
    assert torch.isnan(short["checkpoints"][:4]).all() and short["checkpoints"][4] == short["accuracy"]


def test_seeded_runs_repeat(handle, dataset, episode, text, run, one_thread):
    tuned, history, result = run
    again_tuned, again, again_result = episode_runs.train_and_score(handle, dataset, episode, text, _dtrap())
    pd.testing.assert_frame_equal(history, again)
    assert torch.equal(result["checkpoints"], again_result["checkpoints"])
    a, b = tuned.visual.state_dict(), again_tuned.visual.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = episode_runs.train_and_score(handle, dataset, episode, text, dataclasses.replace(_dtrap(), seed=1))[1]
    assert not history.equals(other)


def test_the_baseline_is_the_same_set_up_with_l_vlm_alone(handle, dataset, episode, text, run, one_thread):
    _, history, _ = run
    _, base, _ = episode_runs.train_and_score(handle, dataset, episode, text, _dtrap(perturb=False, align=False))
    assert base["perturb"].eq(0).all() and base["align"].eq(0).all()
    np.testing.assert_allclose(base["loss"], base["ce"], rtol=1e-6)
    # iteration 0 sees the same batch and weights: the same L_vlm, and the full remedy adds 0.1 L_ad
    assert base["ce"].iloc[0] == pytest.approx(history["ce"].iloc[0], rel=1e-6)
    assert history["loss"].iloc[0] == pytest.approx(base["ce"].iloc[0] + 0.1 * history["perturb"].iloc[0], rel=1e-6)
    np.testing.assert_allclose(base["lr"], history["lr"])


def test_steps_per_shot_sets_the_iterations():
    config = finetune.CdfslConfig(steps=30, steps_per_shot=250)
    assert config.iterations(1) == 250 and config.iterations(5) == 1250
    assert finetune.CdfslConfig(steps=30).iterations(5) == 30
