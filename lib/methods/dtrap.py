"""The Discriminability Trap (Mind the Discriminability Trap in source-free cross-domain few-shot
learning, 2026): the exact split of CE into a visual and a cross-modal part, and the remedy's terms.

With mu_c the mean support feature of class c (detached) every logit splits exactly,
t_c = mu_c + (t_c - mu_c)::

    z_c = f . t_c / tau = f . mu_c / tau  +  f . (t_c - mu_c) / tau  =  z_vis_c + z_cm_c

and since dL_CE/dz = p - y, the CE gradient is the sum of the gradients of the two surrogate parts
``P_vis = sum_c sg(p_c - y_c) z_vis_c`` (visual learning: pull f to its class's visual centre, away
from the others') and ``P_cm`` (cross-modal learning: move f along the class's modality gap). Both are
logged with the two margins they give the true class. ``alignment_loss`` and ``ramp`` are the
abstract-derived remedy (ours): the image's relations to the class texts matched to its class text's
relations, with a weight growing linearly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_centres(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """mu (C, d): the mean (detached) feature of each class in the batch; every class must be present."""
    present = torch.bincount(labels, minlength=n_classes)
    if (present == 0).any():
        missing = torch.nonzero(present == 0).flatten().tolist()
        raise ValueError(f"the CE split needs every class in the batch; classes {missing} are absent")
    sums = torch.zeros(n_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features.detach())
    return sums / present[:, None].to(features)


def ce_parts(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, tau: float) -> dict[str, torch.Tensor]:
    """The CE loss and its exact split (module docstring): ``ce``, ``logits``, the surrogate parts
    ``visual`` and ``cross_modal`` (their gradients sum to CE's) and the true-class margins each part
    gives over the mean of the other classes, ``margin_visual`` + ``margin_cross_modal`` = total."""
    n = text.shape[0]
    mu = class_centres(features, labels, n)
    z_vis = features @ mu.T / tau
    z_cm = features @ (text - mu).T / tau
    logits = z_vis + z_cm
    ce = F.cross_entropy(logits, labels)
    residual = (torch.softmax(logits, dim=1) - F.one_hot(labels, n).to(logits)).detach()
    others = 1 - F.one_hot(labels, n).to(logits)

    def margin(z):
        return (z.gather(1, labels[:, None]).squeeze(1) - (z * others).sum(1) / (n - 1)).mean()

    return {"ce": ce, "logits": logits, "visual": (residual * z_vis).sum(1).mean(),
            "cross_modal": (residual * z_cm).sum(1).mean(),
            "margin_visual": margin(z_vis.detach()), "margin_cross_modal": margin(z_cm.detach())}


def alignment_loss(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(T t_y / tau) || softmax(T f / tau)) averaged over the batch: each image's relations
    to the class texts pulled towards its own class text's relations to them. The target is detached;
    the prediction keeps the text's gradient, so a learned prompt (CoOp) is aligned as well."""
    text_n = F.normalize(text, dim=-1)
    target = torch.softmax(text_n[labels].detach() @ text_n.detach().T / tau, dim=1)
    log_pred = torch.log_softmax(F.normalize(features, dim=-1) @ text_n.T / tau, dim=1)
    return F.kl_div(log_pred, target, reduction="batchmean")


def ramp(step: int, steps: int, final: float) -> float:
    """The alignment weight at ``step`` of ``steps``: linear from 0 to ``final`` (ours)."""
    return final * (step + 1) / max(1, steps)
