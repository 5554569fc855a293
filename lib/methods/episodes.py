"""Few-shot episodes, the BSCD-FSL protocol (Guo et al. 2020): N-way K-shot with Q queries per class.

N classes drawn from the target pool, K support and Q query images per class, disjoint, each episode
seeded by (seed, episode index); accuracy is the mean over episodes +- 1.96 std / sqrt(E) (``mean_ci``,
as BSCD-FSL's code computes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode: dataset labels of its classes and dataset indices, class-major."""

    classes: tuple[int, ...]
    support: tuple[int, ...]
    query: tuple[int, ...]

    @property
    def n_way(self) -> int:
        return len(self.classes)

    @property
    def support_labels(self) -> torch.Tensor:
        """Episode labels 0..N-1 of the support images (class-major)."""
        return torch.arange(self.n_way).repeat_interleave(len(self.support) // self.n_way)

    @property
    def query_labels(self) -> torch.Tensor:
        return torch.arange(self.n_way).repeat_interleave(len(self.query) // self.n_way)


def sample_episodes(labels: torch.Tensor | Sequence[int], n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                    n_episodes: int = 1, seed: int = 0, classnames: Sequence[str] | None = None,
                    dataset: str = "dataset") -> list[Episode]:
    """``n_episodes`` episodes from a labelled pool (defaults: BSCD-FSL's 5-way, 15 queries per class).

    Episode i draws from its own stream (seed, i), so the first E episodes do not depend on how many
    are asked for. Every class must hold k_shot + n_query images: a class that does not is an error
    naming it, checked before any episode is drawn.
    """
    labels = np.asarray(labels, dtype=np.int64)
    for name, value, low in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("n_query", n_query, 1),
                             ("n_episodes", n_episodes, 1)):
        if int(value) < low:
            raise ValueError(f"episode parameter {name}={value} must be >= {low}")
    classes = np.unique(labels)
    if n_way > len(classes):
        raise ValueError(f"{dataset}: a {n_way}-way episode needs {n_way} classes, the pool has {len(classes)}")
    need = k_shot + n_query
    counts = {int(c): int((labels == c).sum()) for c in classes}
    for c, count in counts.items():
        if count < need:
            name = f"{classnames[c]!r} (label {c})" if classnames is not None else f"label {c}"
            raise ValueError(f"{dataset}: class {name} has {count} images; a {k_shot}-shot episode with "
                             f"{n_query} queries per class needs {need} (k_shot + n_query): lower k_shot or "
                             "n_query, or sample from a larger split")
    by_class = {c: np.flatnonzero(labels == c) for c in counts}
    episodes = []
    for i in range(n_episodes):
        rng = np.random.default_rng([seed, i])
        chosen = rng.choice(classes, size=n_way, replace=False)
        support, query = [], []
        for c in chosen:
            picked = rng.choice(by_class[int(c)], size=need, replace=False)
            support.extend(int(j) for j in picked[:k_shot])
            query.extend(int(j) for j in picked[k_shot:])
        episodes.append(Episode(tuple(int(c) for c in chosen), tuple(support), tuple(query)))
    return episodes


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, 95% half-width) over episodes: 1.96 * std / sqrt(E), the CDFSL convention (BSCD-FSL's
    code uses numpy's std, ddof = 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_ci needs at least one episode")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))
