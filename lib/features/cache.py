"""On-disk cache of encoded features, keyed by content.

Why: feature extraction is the expensive step of the data flow (docs/design.md, "Data flow": images ->
crops -> ``models.encode`` -> features -> scoring). Every scoring method, ablation row and notebook
re-reads the same image and text features, so they are encoded once and cached on disk.

What the key covers: a SHA-256 hash of a canonical JSON document of the *content* that determines
the features -- the model name, the checkpoint bytes (``ModelHandle.fingerprint`` hashes the
architecture config, every weight and the preprocessing), the preprocessing again explicitly
(``repr(handle.preprocess)``, so swapping the transform on a handle whose cached fingerprint is
already computed still changes the key), the crop sampler settings, and the split
(``dataset.fingerprint``, a hash of what determines the images) -- never a file name alone. WCA's
authors once published numbers from a stale crop cache that hid a hard-coded crop count; keying by
content makes that failure impossible: change anything that changes the features and the key
changes with it. Conversely, the same content reached through another path, file location or
handle object shares one entry.

Not in the key: ``batch_size`` and the device (they change results only at float rounding level),
and the dataset's display name or location.

Layout: ``<root>/<key[:2]>/<key>.pt`` holds the value (a tensor or a dict of tensors, always on the
CPU), ``<key>.json`` next to it the key parts for debugging. Writes are atomic (a temporary
``lib.runtime.locations.atomic_write``), so a crash never leaves a half-written entry; an
unreadable entry is reported with a warning and recomputed.

No module-level default instance: callers pass a ``FeatureCache`` or get a fresh one, rooted at
``lib.runtime.locations.cache_dir() / "features"`` (``$COMPANION_CACHE`` moves it).
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence, TypeVar

import torch

from lib import models
from lib.runtime.locations import atomic_write, cache_dir

# Part of every key: bump when the stored format or the meaning of a cached kind changes.
CACHE_FORMAT = 1

T = TypeVar("T", torch.Tensor, dict)


def _check_json(value: Any, path: str) -> None:
    """Raise TypeError naming ``path`` unless ``value`` is plain, finite JSON data."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"feature cache key part {path!r} is {value!r}, which has no canonical JSON form")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise TypeError(f"feature cache key part {path!r} has a non-string key {k!r}")
            _check_json(item, f"{path}.{k}")
        return
    raise TypeError(
        f"feature cache key part {path!r} is a {type(value).__name__}, which is not JSON-serialisable; "
        "pass plain data (str, int, float, bool, None, lists, dicts)"
    )


def _to_storable(value: Any) -> torch.Tensor | dict[str, torch.Tensor]:
    """Detached CPU copy of a tensor or dict of tensors; anything else is a TypeError."""
    def one(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        # a view would save its whole storage: keep only what it shows
        if t.untyped_storage().nbytes() != t.numel() * t.element_size() or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        return t

    if isinstance(value, torch.Tensor):
        return one(value)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        return {k: one(v) for k, v in value.items()}
    raise TypeError(
        f"feature cache values must be a tensor or a dict of str -> tensor, got {type(value).__name__}"
    )


def _is_storable(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or (
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


class FeatureCache:
    """Content-keyed store of tensors (or dicts of tensors) under ``root``.

    ``hits`` and ``misses`` count ``get_or_compute`` outcomes (an unreadable entry counts as a miss).
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "features"
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FeatureCache(root={str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    # -- keys and paths ----------------------------------------------------------------------------

    @staticmethod
    def canonical(parts: dict) -> str:
        """The canonical JSON text of ``parts`` (sorted keys, no whitespace); TypeError names a bad key."""
        if not isinstance(parts, Mapping):
            raise TypeError(f"feature cache key parts must be a dict, got {type(parts).__name__}")
        for k, v in parts.items():
            if not isinstance(k, str):
                raise TypeError(f"feature cache key parts must have string keys, got {k!r}")
            _check_json(v, k)
        return json.dumps({"cache_format": CACHE_FORMAT, "parts": parts}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    @classmethod
    def key(cls, parts: dict) -> str:
        """SHA-256 hex digest of the canonical JSON of ``parts``."""
        return hashlib.sha256(cls.canonical(parts).encode()).hexdigest()

    def path(self, key: str) -> Path:
        """Where the value of ``key`` lives: ``<root>/<key[:2]>/<key>.pt``."""
        return self.root / key[:2] / f"{key}.pt"

    def __contains__(self, parts: dict) -> bool:
        return self.path(self.key(parts)).is_file()

    # -- get / compute -----------------------------------------------------------------------------

    def get_or_compute(self, parts: dict, compute: Callable[[], T]) -> T:
        """The cached value for ``parts``, else ``compute()`` stored atomically and returned.

        Values come back as CPU tensors (or a dict of them) on both paths. If ``compute`` raises,
        nothing is written and the exception propagates.
        """
        key = self.key(parts)
        path = self.path(key)
        value = self._stored(path)
        if value is not None:
            return value
        value = _to_storable(compute())
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(value, f))
        # debugging aid only: the .pt above is the entry
        atomic_write(path.with_suffix(".json"), lambda f: f.write(
            json.dumps({"key": key, "cache_format": CACHE_FORMAT, "parts": parts}, sort_keys=True, indent=1).encode()
        ))
        return value

    def _stored(self, path: Path):
        """The readable entry at ``path`` (counted as a hit), or None (counted as a miss)."""
        value = self._load(path) if path.is_file() else None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _load(self, path: Path):
        """The stored value, or None (with a warning naming the file) when it cannot be read."""
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 -- any unreadable entry is recomputed
            warnings.warn(f"feature cache entry {path} is unreadable ({type(err).__name__}: {err}); recomputing",
                          stacklevel=3)
            return None
        if not _is_storable(value):
            warnings.warn(f"feature cache entry {path} holds a {type(value).__name__}, not tensors; recomputing",
                          stacklevel=3)
            return None
        return value



class CacheMiss(LookupError):
    """A ``ReadOnlyCache`` has no (readable) entry for the key parts it was asked for."""


class ReadOnlyCache(FeatureCache):
    """A ``FeatureCache`` that never computes: a missing entry raises ``CacheMiss``. Running a job
    against it tells, without training anything, whether every entry the job needs is stored
    (``lib.experiments.job_pool`` starts worker processes only for the jobs that are not)."""

    def get_or_compute(self, parts: dict, compute: Callable[[], T]) -> T:
        path = self.path(self.key(parts))
        value = self._stored(path)
        if value is None:
            raise CacheMiss(f"no entry {path.name} for kind {parts.get('kind')!r} under {self.root}")
        return value


# --------------------------------------------------------------------------------------------------
# Feature helpers


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and values: the key part of a result computed from it."""
    t = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}:{tuple(t.shape)}:".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def source_digest(modules: Sequence[ModuleType]) -> str:
    """SHA-256 of the source files of ``modules``: the key part that makes a result cached by their code go
    stale when that code changes (the stale-cache failure this module's docstring recalls)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.__name__.encode() + b"\0" + Path(module.__file__).read_bytes() + b"\0")
    return digest.hexdigest()


def cached_result(cache: FeatureCache | None, kind: str, inputs: Mapping[str, torch.Tensor], settings: dict,
                  code: Sequence[ModuleType], compute: Callable[[], T]) -> T:
    """Cache ``compute()``, a result derived from already computed tensors (a t-SNE map, a sweep's
    accuracies), keyed by the digests of its ``inputs``, its JSON ``settings`` (library versions among them
    where a library computes it) and the source of the modules in ``code``; ``cache=None`` computes it."""
    if cache is None:
        return compute()
    parts = {"kind": kind, "inputs": {name: tensor_digest(t) for name, t in inputs.items()},
             "settings": settings, "code": source_digest(code)}
    return cache.get_or_compute(parts, compute)


def dataset_fingerprint(dataset) -> str:
    fingerprint = getattr(dataset, "fingerprint", None)
    if not isinstance(fingerprint, str) or not fingerprint:
        raise TypeError(
            f"dataset {getattr(dataset, 'name', type(dataset).__name__)!r} has no content `fingerprint`; "
            "the feature cache keys splits by content, never by file name"
        )
    return fingerprint


def image_parts(handle: models.ModelHandle, dataset, kind: str, settings: dict | None) -> dict:
    """The key parts of image-side features of ``kind`` for ``dataset`` under ``handle``."""
    return {
        "kind": kind,
        "model": handle.name,
        "weights": handle.fingerprint,
        "preprocess": repr(handle.preprocess),
        "dataset": dataset_fingerprint(dataset),
        "crops": settings,
    }


def cached(handle: models.ModelHandle, dataset, kind: str, settings: dict | None, compute: Callable[[], T],
           *, cache: FeatureCache | None = None) -> T:
    """Cache ``compute()`` (any image-side features of ``dataset``) under the handle/dataset/kind key.

    The entry point for feature kinds other than global ones (crop features, [CLS] and patch
    tokens): ``settings`` is the JSON dict of everything the computation depends on beyond the
    model and the split (crop sampler seed, count, scale range, ...).
    """
    cache = cache if cache is not None else FeatureCache()
    return cache.get_or_compute(image_parts(handle, dataset, kind, settings), compute)


def image_features(handle: models.ModelHandle, dataset, *, cache: FeatureCache | None = None,
                   batch_size: int = 256, crop_settings: dict | None = None,
                   kind: str = "global") -> torch.Tensor:
    """(N, d) L2-normalised global image features of ``dataset``, cached by content.

    Only ``kind="global"`` is computed here (``models.encode_dataset``); other kinds go through
    ``cached`` with their own ``compute``.
    """
    if kind != "global":
        raise ValueError(
            f"image_features computes kind='global' only, got {kind!r}; "
            "use lib.features.cache.cached(handle, dataset, kind, settings, compute) for other kinds"
        )
    return cached(handle, dataset, kind, crop_settings,
                  lambda: models.encode_dataset(handle, dataset, batch_size=batch_size), cache=cache)


def text_parts(handle: models.ModelHandle, texts: Sequence[str]) -> dict:
    """The key parts of text features: weights fingerprint, tokenizer type and a hash of the texts."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a str")
    tokenizer = handle.tokenizer
    return {
        "kind": "text",
        "model": handle.name,
        "weights": handle.fingerprint,
        "tokenizer": {"type": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
                      "context_length": getattr(tokenizer, "context_length", None)},
        "texts": hashlib.sha256(json.dumps(texts, ensure_ascii=True).encode()).hexdigest(),
        "n_texts": len(texts),
    }


def text_features(handle: models.ModelHandle, texts: Sequence[str], *,
                  cache: FeatureCache | None = None) -> torch.Tensor:
    """(T, d) L2-normalised text features of ``texts`` (order matters), cached by content."""
    cache = cache if cache is not None else FeatureCache()
    texts = list(texts) if not isinstance(texts, str) else texts
    return cache.get_or_compute(text_parts(handle, texts), lambda: models.encode_texts(handle, texts))
