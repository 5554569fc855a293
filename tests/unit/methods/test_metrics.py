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
