"""The parts world's measures of local alignment against plain loops and constructed cases."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.methods import part_alignment


def test_within_class_cosine_equals_a_loop_over_real_pairs():
    g = torch.Generator().manual_seed(0)
    desc = F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    got = part_alignment.within_class_cosine(desc, mask)
    for c in range(3):
        real = desc[c, mask[c]]
        pairs = [float(real[i] @ real[j]) for i in range(len(real)) for j in range(len(real)) if i != j]
        assert got[c].item() == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)
    one = part_alignment.within_class_cosine(desc[:1], torch.tensor([[1, 0, 0, 0]], dtype=torch.bool))
    assert torch.isnan(one).all()


def test_covering_uses_the_threshold_on_the_parts_share():
    views = torch.tensor([[[0, 0, 10, 10], [0, 0, 6, 10], [0, 0, 5, 10]]])
    part = torch.tensor([[[0, 0, 10, 10]]])
    assert part_alignment.covering(views, part).flatten().tolist() == [True, True, False]
    assert part_alignment.covering(views, part, threshold=0.5).flatten().tolist() == [True, True, True]


def test_part_retrieval_hits_where_the_best_crop_covers_the_part():
    crops = torch.eye(3)[None]  # crop n points along axis n
    part_desc = torch.eye(3)[[2, 0]][None]  # part 0's description matches crop 2, part 1's crop 0
    covers = torch.tensor([[[False, True], [True, True], [True, False]]])  # (1, N=3, P=2)
    hit, chance = part_alignment.part_retrieval(crops, part_desc, covers)
    assert hit.tolist() == [[True, True]]
    assert chance.tolist() == [[pytest.approx(2 / 3), pytest.approx(2 / 3)]]
    hit, _ = part_alignment.part_retrieval(crops, torch.eye(3)[[0, 2]][None], covers)
    assert hit.tolist() == [[False, False]]


def test_plan_part_share_against_the_independent_coupling():
    covers = torch.tensor([[[True, False], [False, True], [False, False]]])
    plan = torch.tensor([[[0.3, 0.0], [0.0, 0.3], [0.2, 0.2]]])  # each description on its own crop
    share, independent = part_alignment.plan_part_share(plan, covers)
    assert share.tolist() == [[pytest.approx(0.6), pytest.approx(0.6)]]
    assert independent.tolist() == [[pytest.approx(0.3), pytest.approx(0.3)]]  # the crop marginal's share
    a = plan.sum(2, keepdim=True)
    flat = a * torch.tensor([[[0.5, 0.5]]])  # the independent coupling itself has share = its marginal's
    s2, i2 = part_alignment.plan_part_share(flat, covers)
    assert torch.allclose(s2, i2)
