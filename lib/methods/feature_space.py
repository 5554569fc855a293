"""Image features before and after adaptation: 2-D maps, confusion and class separation.

FAIR draws t-SNE maps of image embeddings with the Class Description Anchors as stars (Figs. 4 and 12
of FAIR) and confusion matrices before and after adaptation (Fig. 5). These functions take
feature and logit tensors and return arrays or numbers; notebook 04 plots them (``lib.report.plots``).

t-SNE is scikit-learn's (Barnes-Hut, PCA initialisation, seeded), fitted on the image features and
the anchors together so the anchors land in the same map; features and anchors are L2-normalised
first, as CLIP compares them by cosine.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.manifold import TSNE
from sklearn.metrics import confusion_matrix, silhouette_score

PERPLEXITY = 30.0  # scikit-learn's default (the paper gives none)


def tsne_with_anchors(features: torch.Tensor, anchors: torch.Tensor, seed: int = 0,
                      perplexity: float = PERPLEXITY) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 2), anchor points (C, 2)): one t-SNE map of N image features and C anchors."""
    if features.ndim != 2 or anchors.ndim != 2 or features.shape[1] != anchors.shape[1]:
        raise ValueError(f"features (N, d) and anchors (C, d) must share d, got {tuple(features.shape)} "
                         f"and {tuple(anchors.shape)}")
    n = len(features)
    if n + len(anchors) <= perplexity:
        raise ValueError(f"perplexity={perplexity} needs more than {perplexity:g} points, got {n + len(anchors)}")
    both = F.normalize(torch.cat([features, anchors]).double(), dim=-1).numpy()
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(both)
    return points[:n], points[n:]


def confusion_percent(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(C, C) confusion matrix, row-normalised to percent of each true class."""
    n_classes = logits.shape[1]
    pred = logits.argmax(dim=1).cpu().numpy()
    matrix = confusion_matrix(labels.cpu().numpy(), pred, labels=list(range(n_classes)), normalize="true")
    return 100.0 * matrix


def class_separation(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Silhouette score of the features grouped by true class (cosine distance; -1..1, higher =
    tighter, better separated classes): the number behind "the clusters separate" in Figs. 4/12."""
    return float(silhouette_score(F.normalize(features.double(), dim=-1).numpy(), labels.cpu().numpy(),
                                  metric="cosine"))


def anchor_alignment(features: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor) -> float:
    """Mean cosine between each image feature and its true class's anchor."""
    sims = F.normalize(features, dim=-1) @ F.normalize(anchors, dim=-1).T
    return float(sims.gather(1, labels[:, None].to(sims.device)).mean())
