"""Datasets by name, for every notebook: a demo-world domain or a real dataset under the data root.

``demo-<domain>`` or ``demo-<domain>@<knob>=<value>`` names a demo-world domain (``lib.data.demo_world``),
``parts-<domain>`` (same knob syntax) a parts-world domain (``lib.data.parts_world``); any other name is read from the data root (``$DATA_ROOT``) through ``lib.data.registry``. A real dataset
that is not on disk is skipped with its reason, so the default profile runs without ``DATA_ROOT``.
``subset`` draws the seeded, smaller evaluation sets of the sweeps.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lib.data import demo_world
from lib.data.base import DatasetError
from lib.data.parts_images import PartsWorld
from lib.data.parts_world import domain_spec as parts_domain
from lib.data.registry import load_dataset

DEMO_PREFIX = "demo-"
PARTS_PREFIX = "parts-"
PARTS_PER_CLASS = 50  # renders per class of a parts-world split opened by name (600 images of the base classes)


def _knobs(name: str, prefix: str) -> tuple[str, dict]:
    base, _, knobs = name[len(prefix):].partition("@")
    overrides = {}
    for item in filter(None, knobs.split(",")):
        knob, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{prefix[:-1]} dataset {name!r}: write knobs as <knob>=<value>, got {item!r}")
        overrides[knob] = float(value)
    return base, overrides


def parts_dataset(name: str, split: str = "test", seed: int = 0, n: int | None = None) -> PartsWorld:
    """``parts-<domain>`` or ``parts-<domain>@<knob>=<value>``: ``PARTS_PER_CLASS`` renders per class, or
    enough for ``n`` images (class-balanced)."""
    base, overrides = _knobs(name, PARTS_PREFIX)
    spec = parts_domain(base, **overrides)
    per_class = PARTS_PER_CLASS if n is None else max(1, -(-n // len(spec.class_defs)))
    ds = PartsWorld(spec, split, n_per_class=per_class, seed=seed)
    ds.name = name
    return ds


def demo_dataset(name: str, split: str = "test", seed: int = 0, n: int | None = None) -> demo_world.DemoDataset:
    """``demo-<domain>`` or ``demo-<domain>@<knob>=<value>`` (e.g. ``demo-colour@colour=1.0``)."""
    base, overrides = _knobs(name, DEMO_PREFIX)
    ds = demo_world.DemoDataset(demo_world.domain_spec(base, **overrides), split, n=n, seed=seed)
    ds.name = name
    return ds


def open_datasets(names: Sequence[str], split: str = "test", data_root: str | Path | None = None,
                  seed: int = 0, demo_size: int | None = None):
    """Open each named dataset; returns (datasets by name, reasons for those skipped)."""
    opened, skipped = {}, {}
    for name in names:
        if name.startswith(DEMO_PREFIX):
            opened[name] = demo_dataset(name, split, seed, demo_size)
            continue
        if name.startswith(PARTS_PREFIX):
            opened[name] = parts_dataset(name, split, seed, demo_size)
            continue
        try:
            opened[name] = load_dataset(name, split, root=data_root)
        except DatasetError as err:
            skipped[name] = str(err).splitlines()[0]
    return opened, skipped


def available(names: Sequence[str], data_root: str | Path | None = None, seed: int = 0) -> tuple[list[str], dict]:
    """(the datasets of ``names`` whose test split opens, in order; {name: why not} for the others)."""
    found, skipped = open_datasets(list(names), "test", data_root, seed, 1)
    return [n for n in names if n in found], skipped


class Subset(torch.utils.data.Dataset):
    """A seeded, class-agnostic subset of a dataset with the same protocol (name, classnames, labels,
    fingerprint): the smaller evaluation sets of the sweeps."""

    def __init__(self, dataset, n: int, seed: int = 0):
        self.dataset = dataset
        self.indices = np.sort(np.random.default_rng([seed, 11]).choice(len(dataset), size=n, replace=False))
        self.name, self.classnames = dataset.name, dataset.classnames
        self.labels = dataset.labels[torch.from_numpy(self.indices)]
        if hasattr(dataset, "boxes"):
            self.boxes = dataset.boxes[torch.from_numpy(self.indices)]
        for same in ("imagenet_indices", "parent_classnames"):  # the label space, for descriptor files by order
            if hasattr(dataset, same):
                setattr(self, same, getattr(dataset, same))
        self.fingerprint = hashlib.sha256(
            f"{dataset.fingerprint}:{self.indices.tolist()}".encode()).hexdigest()

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]


def subset(dataset, n: int | None, seed: int = 0):
    """A seeded subset of ``n`` images of ``dataset`` (all of it when n is None or too large)."""
    if n is None or n >= len(dataset):
        return dataset
    if isinstance(dataset, demo_world.DemoDataset):  # the demo world draws its own subsets
        return demo_dataset(dataset.name, dataset.split, dataset.seed, n)
    return Subset(dataset, n, seed)


class Concat(torch.utils.data.Dataset):
    """Splits of one dataset joined in order (e.g. CoOp's train + val), with the same protocol: the
    first part's name, ``split`` "train+val", the shared class list, labels and a fingerprint of the parts."""

    def __init__(self, parts: Sequence):
        if not parts:
            raise ValueError("concat needs at least one dataset")
        first = parts[0]
        for part in parts[1:]:
            if list(part.classnames) != list(first.classnames):
                raise DatasetError(f"cannot join {first.name}/{first.split} and {part.name}/{part.split}: "
                                   "their class lists differ")
        self.parts = list(parts)
        self.name, self.classnames = first.name, list(first.classnames)
        self.split = "+".join(str(p.split) for p in parts)
        self.labels = torch.cat([p.labels for p in parts])
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.fingerprint = hashlib.sha256(":".join(p.fingerprint for p in parts).encode()).hexdigest()

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {self.name}/{self.split} ({len(self)} images)")
        part = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.parts[part][int(i - self.offsets[part])]


def concat(parts: Sequence):
    """``parts`` (splits of one dataset) joined in order; one part is returned as it is."""
    return parts[0] if len(parts) == 1 else Concat(parts)
