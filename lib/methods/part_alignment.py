"""Local alignment measured against ground truth: the parts world's part boxes (issue 18, item 4).

LaZSL (Sec. 3 and its interpretability figure) argues that optimal transport sends each description
to the crops that show what it describes; CC-CDFSL (its abstract) that fine-tuned CLIP attends away
from the fine-grained cues. Where every description names one part and every part has a box
(``lib.data.parts_world``), both claims become numbers:

* ``within_class_cosine``: how distinct a class's descriptions are to the text tower (the mean cosine
  between different descriptions of one class; 1 means they are one point and DCLIP = CLIP);
* ``covering``: which crops *cover* which parts (at least ``parts_world.COVER`` of the part's box
  inside the crop);
* ``part_retrieval``: for each part description of an image's own class, does the crop most similar to
  it cover that part? Chance is the share of the image's crops that cover it (a crop drawn at random);
* ``plan_part_share``: the share of each description's transported mass on crops that cover its part,
  beside the same share under the independent coupling (the plan with LaZSL's crop marginal and no
  transport: what "no OT" spreads);
* patch maps: ``lib.methods.localisation``'s mass inside a box, applied to the described part's box.

All of them are ours (none of the papers reports one); each returns per-image, per-part values so a
caller can average them over images, parts or seeds.
"""
from __future__ import annotations

import torch

from lib.data.parts_world import COVER, cover_fraction


def within_class_cosine(desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(C, M, d) L2-normalised description features with (C, M) mask -> (C,) the mean cosine between the
    different real descriptions of each class (NaN for a class with fewer than two)."""
    sim = torch.einsum("cmd,cnd->cmn", desc, desc)
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(desc.shape[1], dtype=torch.bool)[None]
    return (sim * pair).sum((1, 2)) / pair.sum((1, 2))


def covering(view_boxes: torch.Tensor, part_boxes: torch.Tensor, threshold: float = COVER) -> torch.Tensor:
    """(B, N, 4) crop boxes and (B, P, 4) part boxes (xyxy, image pixels) -> (B, N, P) bool: crop n of
    image b covers part p (at least ``threshold`` of the part's box inside the crop)."""
    return cover_fraction(view_boxes, part_boxes) >= threshold


def part_retrieval(crops: torch.Tensor, part_desc: torch.Tensor, covers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Does the best-matching crop of each part description cover that part?

    crops (B, N, d) and part_desc (B, P, d) L2-normalised (description p of image b's own class names
    part p); covers (B, N, P) from ``covering``. Returns (hit (B, P) bool, chance (B, P): the share of
    the image's crops that cover the part)."""
    best = torch.einsum("bnd,bpd->bnp", crops, part_desc).argmax(1)  # (B, P)
    hit = torch.gather(covers, 1, best[:, None, :]).squeeze(1)
    return hit, covers.float().mean(1)


def plan_part_share(plan: torch.Tensor, covers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The share of each description's transported mass on crops that cover its part.

    plan (B, N, P): one class's transport plan per image (``scoring.lazsl_logits(..., return_plans=True)``
    at the true class), description p naming part p; covers (B, N, P). Returns (share (B, P), and the
    independent coupling's share (B, P): the plan's crop marginal a, spread as a b^T)."""
    share = (plan * covers).sum(1) / plan.sum(1).clamp(min=1e-12)
    a = plan.sum(2, keepdim=True)  # (B, N, 1) the crop marginal
    independent = (a * covers).sum(1) / a.sum(1).clamp(min=1e-12)
    return share, independent
