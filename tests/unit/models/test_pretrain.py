"""lib.models.pretrain: the loss and the recipe hash (the demo model's quality: tests/claims/test_demo_model.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lib.models import pretrain


def test_loss_is_low_for_aligned_features_and_high_for_swapped():
    labels = torch.tensor([0, 1, 0, 1])
    txt = F.normalize(torch.eye(2, 8), dim=-1)
    aligned = txt[labels]
    swapped = txt[1 - labels]
    scale = torch.tensor(20.0)
    low = pretrain.multi_positive_clip_loss(aligned, txt, labels, torch.tensor([0, 1]), scale)
    high = pretrain.multi_positive_clip_loss(swapped, txt, labels, torch.tensor([0, 1]), scale)
    # two images per class: the best a caption can do is split its mass over both, ln(2) / 2 overall
    assert low.item() == pytest.approx(math.log(2) / 2, abs=1e-3)
    assert high > 10


def test_loss_gradient_pulls_images_towards_their_class_captions():
    labels = torch.tensor([0, 1])
    txt = F.normalize(torch.eye(2, 4), dim=-1)
    img = F.normalize(torch.ones(2, 4), dim=-1).requires_grad_()
    pretrain.multi_positive_clip_loss(img, txt, labels, torch.tensor([0, 1]), torch.tensor(10.0)).backward()
    assert img.grad[0, 0] < 0 and img.grad[1, 1] < 0  # descent raises each image's own-class similarity


def test_recipe_hash_follows_the_recipe():
    changed = dict(pretrain.RECIPE, epochs=pretrain.RECIPE["epochs"] + 1)
    assert pretrain.recipe_hash(changed) != pretrain.recipe_hash()
