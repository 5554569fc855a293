"""FAIR (Ali et al., fair_paper.txt): the pieces of Algorithm 1 as tensor functions.

* Class Description Anchors Z* (Sec. 3.4, Alg. 1 INITCDA): the mean of each class's description
  embeddings (CuPL's classifier), then learned; the text encoder is not used afterwards.
* LAS pseudo-labels from the weak view's crops, without gradients (eqs. 11-14, Alg. 1 lines 17-23):
  ``lib.scoring.las_logits`` with [CLS] crop weights and the top-k crops (N = 16, k = 4).
* Adaptive pseudo-label weight gamma = S1 * |S1 - S2| from the top-2 LAS scores (eq. 16); the rows
  of Table 5 drop either factor.
* Strong-view predictions p = softmax(sim(E_v(A(x)), Z*) / tau) (Alg. 1 line 26), the gamma-weighted
  self-training cross-entropy (eq. 17) and the fairness regulariser L_reg = -(1/C) sum_j log pbar_j
  with pbar a moving average of the predictions (after eq. 15, from [32]).
* The trainable set: the image encoder's LayerNorm affine parameters and Z* (Alg. 1 "Require").

The training loop and notebooks 02/04 build on these (the FAIR issue); each function here is a
pure tensor function, so every ablation row is a switch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lib import scoring

# Table 5's rows: which factors of eq. 16 the pseudo-label weight keeps
WEIGHTS = ("none", "score", "margin", "score*margin")
TAU = 0.01  # CLIP's logit scale 100 (the paper gives no tau; its predecessor DPA scores with CLIP's scale)
PBAR_MOMENTUM = 0.9  # not given in the paper; ours (an exponential moving average over batches)


def init_anchors(desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Z* (C, d): the normalised mean of each class's real description embeddings (Alg. 1 INITCDA),
    i.e. CuPL's classifier."""
    return scoring.cupl_weights(desc, mask)


def adaptive_weight(scores: torch.Tensor, mode: str = "score*margin") -> torch.Tensor:
    """gamma (B,) from LAS scores (B, C): S1 * |S1 - S2| (eq. 16) or one factor of it (Table 5)."""
    if mode not in WEIGHTS:
        raise ValueError(f"pseudo-label weight {mode!r} is not one of {WEIGHTS}")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (B, C) with C >= 2, got {tuple(scores.shape)}")
    top2 = scores.topk(2, dim=1).values
    s1, margin = top2[:, 0], (top2[:, 0] - top2[:, 1]).abs()
    return {"none": torch.ones_like(s1), "score": s1, "margin": margin, "score*margin": s1 * margin}[mode]


@torch.no_grad()
def pseudo_labels(crops: torch.Tensor, crop_cls: torch.Tensor, img_cls: torch.Tensor, anchors: torch.Tensor,
                  k: int | None = 4, weight: str = "score*margin") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LAS pseudo-labels of a weak-view batch: (labels (B,), gamma (B,), LAS scores (B, C)), no gradient.

    ``crops`` (B, N, d) normalised crop features, ``crop_cls``/``img_cls`` their pre-projection [CLS]
    tokens, ``anchors`` Z* (normalised here: eq. 11 is a cosine). Defaults k = 4 of N = 16 (FAIR Sec. 4).
    """
    scores = scoring.las_logits(crops, crop_cls, img_cls, F.normalize(anchors.detach(), dim=-1), k)
    return scores.argmax(dim=1), adaptive_weight(scores, weight), scores


def predictions(features: torch.Tensor, anchors: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """p (B, C) = softmax(cos(E_v(A(x)), Z*) / tau) of strong-view features (Alg. 1 line 26)."""
    return torch.softmax(F.normalize(features, dim=-1) @ F.normalize(anchors, dim=-1).T / tau, dim=1)


def self_training_loss(probs: torch.Tensor, labels: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 17: mean over the batch of gamma * cross-entropy(p, pseudo-label)."""
    picked = probs.gather(1, labels[:, None]).squeeze(1)
    return (gamma.detach() * -torch.log(picked.clamp_min(1e-12))).mean()


class PredictionAverage:
    """pbar: a moving average of the batch-mean predictions; the current batch keeps its gradient."""

    def __init__(self, n_classes: int, momentum: float = PBAR_MOMENTUM):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must lie in [0, 1)")
        self.momentum = momentum
        self.value = torch.full((n_classes,), 1.0 / n_classes)

    def update(self, probs: torch.Tensor) -> torch.Tensor:
        """Fold in a batch of predictions (B, C); returns pbar with gradient through this batch only."""
        pbar = self.momentum * self.value.to(probs) + (1 - self.momentum) * probs.mean(0)
        self.value = pbar.detach()
        return pbar


def fairness_loss(pbar: torch.Tensor) -> torch.Tensor:
    """L_reg = -(1/C) sum_j log pbar_j: smallest when predictions are spread evenly over the classes."""
    return -torch.log(pbar.clamp_min(1e-12)).mean()


def layernorm_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The affine parameters of every LayerNorm in ``module`` (FAIR trains these and Z* only)."""
    return [p for m in module.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()]


def train_only(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> None:
    """Freeze every parameter of ``model`` except ``params``."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
