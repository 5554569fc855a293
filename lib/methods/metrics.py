"""Metrics on logits and labels (tensors in, numbers out)."""
from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} logits but {len(labels)} labels")
    return 100.0 * (logits.argmax(dim=1).cpu() == labels.cpu()).float().mean().item()


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) accuracy in percent of each class (NaN for a class without samples)."""
    pred = logits.argmax(dim=1)
    out = torch.full((num_classes,), float("nan"))
    for c in range(num_classes):
        members = labels == c
        if members.any():
            out[c] = 100.0 * (pred[members] == c).float().mean()
    return out


def sibling_error_share(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> tuple[float, float, int]:
    """Of the misclassified samples, the share (%) predicted as a class of the true class's group (its
    siblings: ``groups[c]`` is class c's group id), the share a uniformly wrong prediction would give
    (the mean over those errors of siblings / (C - 1)), and the number of errors. Ours (the parts world's
    sibling classes, notebook 04): FAIR's Fig. 5 reads confusions between similar classes off a matrix."""
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} logits but {len(labels)} labels")
    if len(groups) != logits.shape[1]:
        raise ValueError(f"groups has {len(groups)} entries for {logits.shape[1]} classes")
    pred, labels, groups = logits.argmax(dim=1).cpu(), labels.cpu(), groups.cpu()
    wrong = pred != labels
    if not wrong.any():
        return float("nan"), float("nan"), 0
    truth = labels[wrong]
    siblings = (groups[None, :] == groups[truth][:, None]).sum(dim=1) - 1  # other classes of each true group
    share = 100.0 * (groups[pred[wrong]] == groups[truth]).float().mean().item()
    chance = 100.0 * (siblings.float() / (logits.shape[1] - 1)).mean().item()
    return share, chance, int(wrong.sum())
