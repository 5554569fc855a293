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
