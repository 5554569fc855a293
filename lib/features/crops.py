"""Seeded multi-scale random crops: the "visual set" of LaZSL and WCA.

LaZSL (Sec. 3, "Semantic and visual set construction") and WCA (FAIR, eq. 6) both score an image through N random square crops of side gamma * min(W, H),
gamma ~ U(alpha, beta), cut from the original image and put through the model's own preprocessing.

Defaults (``CropSpec``): N = 90, U(0.6, 0.9) -- the official LaZSL code (91 views: the full image plus
90 crops; its paper reports N = 60-90 and alpha = 0.6 as best). WCA/FAIR use alpha = 0.5, beta = 0.9
(FAIR, Sec. 4) and FAIR N = 16 crops; pass those as a ``CropSpec``.

Reproducible where the papers are not: LaZSL lists crop randomness as a limitation. Here the crops of
image ``i`` come from a generator seeded with ``(spec.seed, i)``, so the same seed gives the same
crops in any batch order, and the notebooks report the spread over several seeds instead.

Encoding goes through the feature cache (``lib.features.cache.cached``): the key holds the model
weights, the split and every ``CropSpec`` field, and features are cached in chunks of images so a
paper-scale dataset never needs all its crop features in memory at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from lib import models
from lib.features import cache as feature_cache

CROPS_VERSION = 1  # bump when the sampler changes: part of every cache key
CHUNK = 2048  # images per cache entry


@dataclass(frozen=True)
class CropSpec:
    """How many crops per image and their scale range; ``seed`` fixes every crop."""

    n: int = 90  # official LaZSL code: 90 crops + the full image (paper: N = 60-90)
    alpha: float = 0.6  # official LaZSL code and paper's best alpha
    beta: float = 0.9  # official LaZSL code; WCA/FAIR also use 0.9
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"crop count n={self.n!r} must be a positive integer")
        if not 0.0 < self.alpha <= self.beta <= 1.0:
            raise ValueError(f"crop scales need 0 < alpha <= beta <= 1, got alpha={self.alpha}, beta={self.beta}")

    def settings(self) -> dict:
        """The JSON part of the feature-cache key."""
        return {**dataclasses.asdict(self), "version": CROPS_VERSION}


def sample_boxes(width: int, height: int, spec: CropSpec, index: int) -> np.ndarray:
    """(n, 4) integer xyxy boxes of image ``index``: square, side = gamma * min(W, H), inside the image."""
    rng = np.random.default_rng([spec.seed, int(index), CROPS_VERSION])
    gamma = rng.uniform(spec.alpha, spec.beta, size=spec.n)
    sides = np.maximum(1, np.floor(gamma * min(width, height))).astype(np.int64)
    x0 = np.floor(rng.uniform(0, 1, size=spec.n) * (width - sides + 1)).astype(np.int64)
    y0 = np.floor(rng.uniform(0, 1, size=spec.n) * (height - sides + 1)).astype(np.int64)
    return np.stack([x0, y0, x0 + sides, y0 + sides], axis=1)


def views(image, spec: CropSpec, index: int, preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    """The full image and its crops, each put through ``preprocess``: ((1 + n, 3, S, S), boxes (n, 4))."""
    boxes = sample_boxes(image.width, image.height, spec, index)
    pixels = [preprocess(image)] + [preprocess(image.crop(tuple(int(v) for v in b))) for b in boxes]
    return torch.stack(pixels), torch.from_numpy(boxes)


class _Views(torch.utils.data.Dataset):
    """Item i: (the full image and its n crops, preprocessed: (1 + n, 3, S, S), boxes (n, 4))."""

    def __init__(self, dataset, indices: range, spec: CropSpec, preprocess):
        self.dataset, self.indices, self.spec, self.preprocess = dataset, indices, spec, preprocess

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        i = self.indices[j]
        return views(self.dataset[i][0], self.spec, i, self.preprocess)


def _encode_chunk(handle: models.ModelHandle, dataset, indices: range, spec: CropSpec, batch_size: int,
                  with_cls: bool, num_workers: int) -> dict[str, torch.Tensor]:
    per_batch = max(1, batch_size // (spec.n + 1))  # batch_size counts views, not images
    loader = torch.utils.data.DataLoader(_Views(dataset, indices, spec, handle.preprocess),
                                         batch_size=per_batch, num_workers=num_workers)
    out: dict[str, list] = {"global": [], "crops": [], "boxes": []}
    if with_cls:
        out.update(global_cls=[], crops_cls=[])
    name = getattr(dataset, "name", "images")
    for views, boxes in tqdm(loader, desc=f"crops {name} [{indices.start}:{indices.stop}]", disable=None):
        b, v = views.shape[:2]
        flat = views.flatten(0, 1)
        if with_cls:
            tokens = models.image_tokens(handle, flat)
            feats, cls = tokens["features"].cpu(), tokens["cls"].cpu().reshape(b, v, -1)
            out["global_cls"].append(cls[:, 0])
            out["crops_cls"].append(cls[:, 1:])
        else:
            feats = models.encode_images(handle, flat).cpu()
        feats = feats.reshape(b, v, -1)
        out["global"].append(feats[:, 0])
        out["crops"].append(feats[:, 1:])
        out["boxes"].append(boxes)
    return {k: torch.cat(parts) for k, parts in out.items()}


def crop_feature_chunks(handle: models.ModelHandle, dataset, spec: CropSpec = CropSpec(), *,
                        cache: feature_cache.FeatureCache | None = None, batch_size: int = 256,
                        with_cls: bool = False, chunk: int = CHUNK,
                        num_workers: int = 0) -> Iterator[tuple[range, dict[str, torch.Tensor]]]:
    """Yield ``(image indices, features)`` chunk by chunk, each chunk cached by content.

    ``features``: ``global`` (B, d) and ``crops`` (B, N, d) L2-normalised, ``boxes`` (B, N, 4) xyxy in
    the original image; with ``with_cls`` also the pre-projection [CLS] tokens ``global_cls`` (B, h)
    and ``crops_cls`` (B, N, h) that FAIR's crop weights use (FAIR, eq. 12).
    """
    kind = "crops+cls" if with_cls else "crops"
    for start in range(0, len(dataset), chunk):
        indices = range(start, min(start + chunk, len(dataset)))
        settings = {**spec.settings(), "images": [indices.start, indices.stop]}
        yield indices, feature_cache.cached(
            handle, dataset, kind, settings,
            lambda: _encode_chunk(handle, dataset, indices, spec, batch_size, with_cls, num_workers), cache=cache)


def crop_features(handle: models.ModelHandle, dataset, spec: CropSpec = CropSpec(), **kwargs) -> dict[str, torch.Tensor]:
    """All chunks of ``crop_feature_chunks`` concatenated: fine for small datasets (the demo world)."""
    parts = [feats for _, feats in crop_feature_chunks(handle, dataset, spec, **kwargs)]
    if not parts:
        raise ValueError(f"dataset {getattr(dataset, 'name', '?')!r} is empty: no crops to encode")
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
