"""The Discriminability Trap (Mind the Discriminability Trap in source-free cross-domain few-shot
learning, CVPR 2026): the remedy as its authors' code computes it, and the exact CE split the
abstract's analysis rests on.

**The remedy** (zhenyuZ-HUST/CVPR26-Mind-the-Discriminability-Trap, ``lora_mind.py``; docs/official_code.md).
At iteration s, with X the normalised features of the augmented support batch (labels y), S0 those
of the un-augmented support images (labels y0) and T the class text features::

    L_vlm = CE(100 X T^T, y)
    L_ad  = CE(100 X W'^T, y)       W': N features drawn at random from X, whatever their class
    A_v   = X S0^T                  A_t[i, j] = t_{y_i} . t_{y0_j}
    R_s   = f_s sg(A_v^(s-1)) + (1 - f_s) A_t,   f_s = 1 - s / floor(0.6 x iterations)
    L_ra  = KLDivLoss(log_target=True)(A_v, R_s) = mean(exp(R_s) (R_s - A_v))   (raw cosines as log-probabilities)

    iteration 0:                 L_vlm + 0.1 L_ad
    1 <= s < 3 floor(iterations / 5):  L_vlm + 3 L_ra + 0.1 L_ad
    afterwards:                  L_vlm

(``random_prototypes``, ``perturbation_loss``, ``relations``, ``relation_target``, ``relation_loss``,
``fuse_weight``, ``schedule``; ``lib.methods.finetune`` runs them.)

**The CE split** (the abstract's analysis; ours: the split through the class centres). With mu_c the
mean (detached) support feature of class c every logit splits exactly, t_c = mu_c + (t_c - mu_c)::

    z_c = f . t_c / tau = f . mu_c / tau  +  f . (t_c - mu_c) / tau  =  z_vis_c + z_cm_c

and since dL_CE/dz = p - y, the CE gradient is the sum of the gradients of the two surrogate parts
``P_vis = sum_c sg(p_c - y_c) z_vis_c`` (visual learning) and ``P_cm`` (cross-modal learning). Both
are logged with the two margins they give the true class (``ce_parts``).

**Ours, from the abstract** (not the authors' D-Trap): ``alignment_loss`` and ``ramp``, the image's
relations to the class texts matched to its class text's relations with a weight growing linearly;
``lib.methods.finetune`` adds them and a rescaled visual part as the abstract-derived remedy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PERTURB_WEIGHT = 0.1  # D-Trap code: --beta 0.1
RELATION_WEIGHT = 3.0  # D-Trap code: --gamma 3
FUSE_FRACTION = 0.6  # D-Trap code: the target reaches the text relations after int(0.6 x iterations)
STOP_FIFTHS = 3  # D-Trap code: L_ad and L_ra end at 3 x int(iterations / 5)
LOGIT_SCALE = 100.0  # D-Trap code: logit_scale = 100 for L_vlm and L_ad


# --------------------------------------------------------------------------------------------------
# the authors' remedy


def random_prototypes(features: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """W' (n, d): ``n`` rows of ``features`` drawn uniformly with replacement, whatever their class,
    normalised (one per class slot; the D-Trap code draws them anew at every iteration). Gradients flow
    through the drawn rows, as there."""
    index = torch.randint(len(features), (n,), generator=generator).to(features.device)
    return F.normalize(features[index], dim=-1)


def perturbation_loss(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor,
                      scale: float = LOGIT_SCALE) -> torch.Tensor:
    """L_ad = CE(scale X W'^T, y): the batch classified against the random prototypes as if slot c were
    class c."""
    return F.cross_entropy(scale * F.normalize(features, dim=-1) @ prototypes.T, labels)


def relations(features: torch.Tensor, labels: torch.Tensor, plain: torch.Tensor, plain_labels: torch.Tensor,
              text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_v, A_t), both (B, B0): the raw cosines of each augmented feature to each un-augmented support
    feature, and the cosines of their class texts t_{y_i} . t_{y0_j}."""
    text = F.normalize(text, dim=-1)
    visual = F.normalize(features, dim=-1) @ F.normalize(plain, dim=-1).T
    return visual, (text @ text.T)[labels[:, None], plain_labels[None, :]]


def relation_target(previous: torch.Tensor, text_relations: torch.Tensor, fuse: float) -> torch.Tensor:
    """R_s = f sg(A_v^(s-1)) + (1 - f) A_t."""
    return fuse * previous.detach() + (1 - fuse) * text_relations


def relation_loss(visual: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_ra: PyTorch's ``KLDivLoss(log_target=True)`` (mean reduction) of the cosines ``visual`` against
    ``target``, both read as log-probabilities: the mean over every entry of exp(R) (R - A_v). Written
    out, because PyTorch announces that its 'mean' will change to 'batchmean' (a sum over each row)."""
    return (target.exp() * (target - visual)).mean()


def fuse_weight(step: int, iterations: int, fraction: float = FUSE_FRACTION) -> float:
    """f_s: 1 at iteration 0, minus 1 / floor(fraction x iterations) per iteration (D-Trap code), held at
    0 once it gets there (ours; the code's own schedule stops the alignment before it does)."""
    span = int(iterations * fraction)
    return 1.0 if span < 1 else max(0.0, 1.0 - step / span)


def schedule(step: int, iterations: int, stop_fifths: int = STOP_FIFTHS) -> tuple[str, ...]:
    """The terms of iteration ``step``: ("vlm", "perturb") at iteration 0 (no previous relations yet),
    ("vlm", "relation", "perturb") while step < stop_fifths x int(iterations / 5), ("vlm",) afterwards."""
    if step == 0:
        return ("vlm", "perturb")
    if step < stop_fifths * (iterations // 5):
        return ("vlm", "relation", "perturb")
    return ("vlm",)


def checkpoint_steps(iterations: int, checkpoints: int) -> list[int]:
    """The iteration counts after which the queries are scored: k x int(iterations / checkpoints) for
    k < checkpoints (the D-Trap code: 1/5 ... 4/5 with 5) and the last; 0 where an interval rounds to
    no iteration (that checkpoint is not scored)."""
    return [k * (iterations // checkpoints) for k in range(1, checkpoints)] + [iterations]


# --------------------------------------------------------------------------------------------------
# the CE split (the abstract's analysis)


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


# --------------------------------------------------------------------------------------------------
# ours, from the abstract (not the authors' D-Trap)


def alignment_loss(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(T t_y / tau) || softmax(T f / tau)) averaged over the batch: each image's relations
    to the class texts pulled towards its own class text's relations to them. The target is detached;
    the prediction keeps the text's gradient, so a learned prompt (CoOp) is aligned as well (ours)."""
    text_n = F.normalize(text, dim=-1)
    target = torch.softmax(text_n[labels].detach() @ text_n.detach().T / tau, dim=1)
    log_pred = torch.log_softmax(F.normalize(features, dim=-1) @ text_n.T / tau, dim=1)
    return F.kl_div(log_pred, target, reduction="batchmean")


def ramp(step: int, steps: int, final: float) -> float:
    """The abstract-derived alignment weight at ``step`` of ``steps``: linear from 0 to ``final`` (ours)."""
    return final * (step + 1) / max(1, steps)
