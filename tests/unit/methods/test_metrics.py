"""lib.methods.metrics and lib.methods.scoring.clip_logits on hand-checked inputs."""
from __future__ import annotations

import math

import pytest
import torch

from lib.methods import metrics, scoring


def test_accuracy_and_per_class_accuracy():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1, 1, 2])
    assert metrics.accuracy(logits, labels) == pytest.approx(75.0)
    per_class = metrics.per_class_accuracy(logits, labels, num_classes=4)
    assert per_class[:3].tolist() == [100.0, 50.0, 100.0]
    assert math.isnan(per_class[3].item())  # no sample of class 3


def test_accuracy_needs_one_label_per_row():
    with pytest.raises(ValueError, match="3 logits but 2 labels"):
        metrics.accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


def test_clip_logits_is_cosine_similarity_and_checks_shapes():
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    loop = torch.tensor([[float(img[b] @ txt[c]) for c in range(3)] for b in range(4)])
    assert torch.allclose(scoring.clip_logits(img, txt), loop, atol=1e-6)
    with pytest.raises(ValueError, match=r"img \(B, d\) and txt \(C, d\)"):
        scoring.clip_logits(img, txt[:, :4])


def test_sibling_error_share_counts_errors_inside_the_true_class_group():
    groups = torch.tensor([0, 0, 0, 1, 1, 1])  # two groups of three siblings
    labels = torch.tensor([0, 0, 3, 4, 5])
    pred = torch.tensor([0, 1, 0, 5, 5])  # right, sibling error, cross-group error, sibling error, right
    logits = torch.nn.functional.one_hot(pred, 6).float()
    share, chance, errors = metrics.sibling_error_share(logits, labels, groups)
    assert errors == 3
    assert share == pytest.approx(200.0 / 3)  # two of the three errors stay in the group
    assert chance == pytest.approx(40.0)  # 2 siblings of 5 other classes, whatever the class
    no_errors = metrics.sibling_error_share(torch.nn.functional.one_hot(labels, 6).float(), labels, groups)
    assert math.isnan(no_errors[0]) and no_errors[2] == 0
    with pytest.raises(ValueError, match="groups has 5 entries for 6 classes"):
        metrics.sibling_error_share(logits, labels, groups[:5])
