"""CC-CDFSL (Interpretable cross-domain few-shot learning with rectified target-domain local alignment,
CVPR 2026): cycle-consistent translation between local visual tokens and text, and the Semantic Anchor.

Read from the abstract only (no public code): every choice it leaves open is marked "ours", and
notebook 03 quotes each sentence beside the equation it became. Translation is attention over a
corpus (ours: parameter-free, so only the encoder can lower the loss)::

    g(v) = softmax(v T^T / tau_c) T            image -> text, corpus T (the episode's class texts)
    h(t) = softmax(t V^T / tau_c) V            text -> image, corpus V (the batch's patch features)
    L_cyc_img = mean_v 1 - cos(v, h(g(v)))     L_cyc_txt = mean_c 1 - cos(t_c, g(h(t_c)))
    L = L_CE + 3 L_cyc_txt + 2 L_cyc_img       (weights: a secondary summary, unverified; docs/official_code.md)

Semantic Anchor: ``anchor_corpus`` enlarges V with within-class mixtures of patch features (ours:
feature mixup) for h; ``anchor_patches`` keeps only each class's patches closest to its text as the
inputs of g (10 per class: the same summary).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

CYCLE_TAU = 0.01  # ours: CLIP's logit scale, the sharpness the classifier already uses
CYCLE_TEXT_WEIGHT = 3.0  # secondary summary (docs/official_code.md): CE + 3 * L_cyc_txt + 2 * L_cyc_img, unverified
CYCLE_IMAGE_WEIGHT = 2.0
ANCHOR_PATCHES = 10  # same summary: "10 anchor patches per class"


def translate(queries: torch.Tensor, corpus: torch.Tensor, tau: float = CYCLE_TAU) -> torch.Tensor:
    """(M, d) queries -> (M, d): each an attention-weighted mix of the (K, d) corpus, L2-normalised."""
    weights = torch.softmax(F.normalize(queries, dim=-1) @ F.normalize(corpus, dim=-1).T / tau, dim=-1)
    return F.normalize(weights @ corpus, dim=-1)


def cycle_loss(x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor],
               backward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """mean over rows of 1 - cos(x, backward(forward(x))): zero when ``backward`` inverts ``forward``
    (up to scale) on ``x``, positive otherwise."""
    return (1 - F.cosine_similarity(x, backward(forward(x)), dim=-1)).mean()


def anchor_corpus(patches: torch.Tensor, labels: torch.Tensor, factor: int, generator: torch.Generator) -> torch.Tensor:
    """Semantic Anchor, augment (ours: within-class feature mixup): the (B * L, d) patch corpus plus
    ``factor`` x B * L mixtures lam * v_a + (1 - lam) * v_b of two patches of the same class,
    lam ~ U(0, 1)."""
    b, length, d = patches.shape
    flat = patches.reshape(b * length, d)
    owner = labels.repeat_interleave(length)
    extra = []
    for _ in range(factor):
        partner = torch.empty(b * length, dtype=torch.long)
        for c in owner.unique():  # a random partner of the same class for each patch
            members = torch.nonzero(owner == c).flatten()
            partner[members] = members[torch.randperm(len(members), generator=generator)]
        lam = torch.rand(b * length, 1, generator=generator).to(flat)
        extra.append(F.normalize(lam * flat + (1 - lam) * flat[partner.to(flat.device)], dim=-1))
    return torch.cat([flat, *extra])


def anchor_patches(patches: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, k: int) -> torch.Tensor:
    """Semantic Anchor, shrink: for each class, the ``k`` patches of its images closest to its text
    (cosine), (sum_c min(k, patches of c), d). Patches far from every class text do not enter g."""
    b, length, d = patches.shape
    kept = []
    for c in labels.unique():
        own = patches[labels == c].reshape(-1, d)
        sims = F.normalize(own, dim=-1) @ F.normalize(text[c], dim=-1)
        kept.append(own[sims.topk(min(k, len(own))).indices])
    return torch.cat(kept)
