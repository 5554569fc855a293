"""lib.methods.fair: the loss pieces of FAIR's Algorithm 1 (FAIR, eqs. 11-17)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib import models
from lib.features import text as text_side
from lib.methods import fair, scoring
from lib.models import tuning


def _unit(*shape, gen):
    return F.normalize(torch.randn(*shape, generator=gen), dim=-1)


def test_adaptive_weight_rows_of_table_5():
    scores = torch.tensor([[0.5, 0.2, 0.4], [0.1, 0.9, 0.3]])
    assert torch.allclose(fair.adaptive_weight(scores), torch.tensor([0.5 * 0.1, 0.9 * 0.6]))
    assert torch.allclose(fair.adaptive_weight(scores, "score"), torch.tensor([0.5, 0.9]))
    assert torch.allclose(fair.adaptive_weight(scores, "margin"), torch.tensor([0.1, 0.6]))
    assert torch.equal(fair.adaptive_weight(scores, "none"), torch.ones(2))
    with pytest.raises(ValueError, match="'S\\*M' is not one of"):
        fair.adaptive_weight(scores, "S*M")


def test_anchors_are_the_normalised_cupl_classifier():
    gen = torch.Generator().manual_seed(0)
    desc, mask = text_side.pad_descriptions([_unit(3, 8, gen=gen), _unit(1, 8, gen=gen)])
    desc[1, 1:] = 100.0  # padding must not count
    anchors = fair.init_anchors(desc, mask)
    img = _unit(5, 8, gen=gen)
    torch.testing.assert_close(img @ anchors.T, scoring.cupl_logits(img, desc, mask))


def test_pseudo_labels_are_las_argmax_without_gradient():
    gen = torch.Generator().manual_seed(1)
    crops, crop_cls, img_cls = _unit(4, 16, 8, gen=gen), torch.randn(4, 16, 6, generator=gen), torch.randn(4, 6, generator=gen)
    anchors = torch.randn(5, 8, generator=gen, requires_grad=True)
    labels, gamma, scores = fair.pseudo_labels(crops, crop_cls, img_cls, anchors, k=4)
    expected = scoring.las_logits(crops, crop_cls, img_cls, F.normalize(anchors.detach(), dim=-1), 4)
    torch.testing.assert_close(scores, expected)
    assert torch.equal(labels, expected.argmax(1))
    assert not labels.requires_grad and not gamma.requires_grad and not scores.requires_grad
    top2 = 100.0 * expected.topk(2, 1).values  # eq. 16 on the logits: the scores times CLIP's scale 100
    torch.testing.assert_close(gamma, top2[:, 0] * (top2[:, 0] - top2[:, 1]))
    assert fair.GAMMA_SCALE == 100.0
    unscaled = fair.pseudo_labels(crops, crop_cls, img_cls, anchors, k=4, scale=1.0)[1]
    torch.testing.assert_close(gamma, 1e4 * unscaled)  # S1 * |S1 - S2| grows with the square of the scale


def test_self_training_loss_is_gamma_weighted_cross_entropy():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=gen)
    labels, gamma = torch.tensor([0, 1, 2, 3, 0, 1]), torch.rand(6, generator=gen)
    loss = fair.self_training_loss(torch.softmax(logits, 1), labels, gamma)
    expected = (gamma * F.cross_entropy(logits, labels, reduction="none")).mean()
    torch.testing.assert_close(loss, expected)


def test_fairness_term_raises_the_under_predicted_classes():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(32, 5, generator=gen)
    logits[:, 0] += 3.0  # class 0 over-predicted, the rest rare
    logits.requires_grad_(True)
    average = fair.PredictionAverage(5, momentum=0.0)
    probs = torch.softmax(logits, 1)
    before = probs.mean(0).detach()
    fair.fairness_loss(average.update(probs)).backward()
    with torch.no_grad():
        after = torch.softmax(logits - 0.5 * logits.grad, 1).mean(0)
    rare = before.argsort()[:2]
    assert (after[rare] > before[rare]).all() and after[0] < before[0]
    assert fair.fairness_loss(torch.full((5,), 0.2)) < fair.fairness_loss(before)  # uniform is the minimum


def test_fairness_term_is_on_the_batch_mean_by_default():
    """MUST's and DPA's L_reg: -mean_j log(mean_b p_bj) of the current batch, with its full gradient
    (a moving average with momentum m keeps only (1 - m) of it)."""
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(16, 5, generator=gen, requires_grad=True)
    probs = torch.softmax(logits, 1)
    assert fair.PBAR_MOMENTUM == 0.0 and fair.FairConfig().pbar_momentum == 0.0
    average = fair.PredictionAverage(5)
    average.update(torch.softmax(torch.randn(16, 5, generator=gen), 1))  # an earlier batch does not count
    loss = fair.fairness_loss(average.update(probs))
    torch.testing.assert_close(loss, -torch.log(probs.mean(0)).mean())
    grad_batch = torch.autograd.grad(loss, logits)[0]
    half = fair.PredictionAverage(5, momentum=0.5)
    grad_half = torch.autograd.grad(fair.fairness_loss(half.update(torch.softmax(logits, 1))), logits)[0]
    assert grad_half.abs().sum() < 0.75 * grad_batch.abs().sum()  # the old 0.5 average damped it


def test_prediction_average_keeps_history_without_its_gradient():
    average = fair.PredictionAverage(2, momentum=0.5)
    first = torch.tensor([[1.0, 0.0]], requires_grad=True)
    average.update(first)
    second = torch.tensor([[0.0, 1.0]], requires_grad=True)
    pbar = average.update(second)
    torch.testing.assert_close(pbar, torch.tensor([0.375, 0.625]))  # 0.5 * (0.5 * [.5,.5] + 0.5 * [1,0]) + 0.5 * [0,1]
    pbar.sum().backward()
    assert first.grad is None and second.grad is not None
    with pytest.raises(ValueError, match="momentum=1.0"):
        fair.PredictionAverage(2, momentum=1.0)


def test_only_layernorms_and_anchors_receive_gradients():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        handle = models.load_model(models.DEMO_MODEL, None)
    model = handle.model
    anchors = torch.nn.Parameter(F.normalize(torch.randn(10, model.visual.output_dim), dim=-1))
    trainable = tuning.layernorm_parameters(model.visual)
    tuning.train_only(model, trainable)
    assert len(trainable) == 2 * sum(isinstance(m, torch.nn.LayerNorm) for m in model.visual.modules())
    model.train()
    pixels = torch.randn(4, 3, handle.image_size, handle.image_size)
    probs = fair.predictions(model.encode_image(pixels), anchors)
    loss = fair.self_training_loss(probs, torch.tensor([0, 1, 2, 3]), torch.ones(4)) + \
        fair.fairness_loss(fair.PredictionAverage(10).update(probs))
    loss.backward()
    keep = {id(p) for p in trainable}
    for name, p in model.named_parameters():
        if id(p) in keep:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    assert anchors.grad is not None and anchors.grad.abs().sum() > 0
