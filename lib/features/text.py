"""The text side: templates and descriptor files as data, and the class and description features.

* ``IMAGENET_TEMPLATES``: CLIP's 80 ImageNet templates, as open_clip ships them
  (``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES``, callables turned into format strings).
* ``SINGLE_TEMPLATE``: ``"a photo of a {}."`` (CLIP paper; the D-Trap code's template).
* ``TEMPLATE_SETS``: the profiles' ``templates`` names: ``imagenet80``, ``single`` and ``demo`` (the demo
  world's own caption templates, ``lib.data.demo_world.TEMPLATES``).
* descriptor files: the official CuPL and DCLIP files read unchanged and paired with a class list by
  name or by the official code's key order (``lib.features.descriptors``, re-exported here:
  ``load_descriptors``, ``load_descriptor_file``, ``dclip_sentence``, ``DescriptorError``);
* ``descriptor_entry`` / ``descriptor_file``: the file a profile's ``descriptors`` table names for a
  dataset (``{path, format, period, extra, match}``), found under ``lib/data/descriptors`` or the data
  root; ``descriptor_sentences``: its sentences;
* ``pad_descriptions``: ragged per-class lists of features -> ``(C, M, d)`` plus a ``(C, M)`` mask;
* ``class_embeddings`` (the template-ensemble classifier) and ``description_features`` (``desc``,
  ``mask``), encoded through the feature cache.

Descriptions written for this project (``lib/data/descriptors``): ``demo_digits.json`` (the demo world)
and ``eurosat.json`` (EuroSAT's ten land-cover classes), both in CuPL format.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from lib.data import DESCRIPTOR_DIR, demo_world
from lib.features import cache as feature_cache
from lib.features.descriptors import (  # noqa: F401 -- re-exported: the text side's one entry point
    DescriptorError,
    DescriptorFile,
    DescriptorFileMissing,
    dclip_sentence,
    load_descriptor_file,
    load_descriptors,
)
from lib.models import ModelHandle
from lib.runtime.locations import data_root as resolve_data_root

IMAGENET_TEMPLATES = tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)
SINGLE_TEMPLATE = ("a photo of a {}.",)
TEMPLATE_SETS = {
    "demo": demo_world.TEMPLATES,
    "imagenet80": IMAGENET_TEMPLATES,
    "single": SINGLE_TEMPLATE,
}


def templates(name: str) -> tuple[str, ...]:
    if name not in TEMPLATE_SETS:
        raise KeyError(f"unknown template set {name!r}; known: {sorted(TEMPLATE_SETS)}")
    return TEMPLATE_SETS[name]


def pad_descriptions(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class ``(M_c, d)`` features -> ``desc (C, M, d)`` zero-padded to M = max M_c, ``mask (C, M)``."""
    if not features:
        raise ValueError("pad_descriptions needs at least one class")
    for c, f in enumerate(features):
        if f.ndim != 2 or f.shape[0] == 0:
            raise ValueError(f"class {c}: description features must be (M_c >= 1, d), got {tuple(f.shape)}")
    width = max(f.shape[0] for f in features)
    desc = features[0].new_zeros(len(features), width, features[0].shape[1])
    mask = torch.zeros(len(features), width, dtype=torch.bool)
    for c, f in enumerate(features):
        desc[c, :f.shape[0]] = f
        mask[c, :f.shape[0]] = True
    return desc, mask


def class_embeddings(handle: ModelHandle, classnames: Sequence[str], template_set: Sequence[str],
                     cache: feature_cache.FeatureCache) -> torch.Tensor:
    """(C, d) CLIP ensemble classifier: normalised mean of the normalised template embeddings."""
    texts = [t.format(c) for c in classnames for t in template_set]
    feats = feature_cache.text_features(handle, texts, cache=cache).reshape(len(classnames), len(template_set), -1)
    return F.normalize(feats.mean(dim=1), dim=-1)


ENTRY_KEYS = ("path", "format", "period", "extra", "match")


def descriptor_entry(dataset_name: str, table: dict) -> dict | None:
    """The profile's descriptor entry for a dataset (keys may be glob patterns such as ``demo-*``; the
    first that matches wins); None when none names it."""
    for pattern, entry in table.items():
        if fnmatch.fnmatchcase(dataset_name.lower(), pattern.lower()):
            entry = entry if isinstance(entry, dict) else {"path": entry}
            unknown = sorted(set(entry) - set(ENTRY_KEYS))
            if unknown or not entry.get("path"):
                raise DescriptorError(f"descriptor entry {pattern!r} (for {dataset_name}) must name a path and may set "
                                      f"{list(ENTRY_KEYS[1:])}; got {entry!r}")
            return entry
    return None


def descriptor_path(entry: dict, dataset_name: str, data_root: str | Path | None = None) -> Path:
    """Where an entry's file is: absolute as given, else ``lib/data/descriptors/<path>`` when that exists,
    else ``<data root>/<path>``; ``{name}`` in the path becomes the dataset name."""
    path = Path(str(entry["path"]).format(name=dataset_name)).expanduser()
    if path.is_absolute():
        return path
    candidates = [DESCRIPTOR_DIR / path]
    root = resolve_data_root(data_root)
    if root is not None:
        candidates.append(Path(root) / path)
    return next((p for p in candidates if p.is_file()), candidates[-1])


def descriptor_file(dataset_name: str, classnames: Sequence[str], table: dict, data_root: str | Path | None = None,
                    within: tuple[Sequence[str], Sequence[int]] | None = None) -> DescriptorFile:
    """A dataset's descriptor file as its profile entry names it, paired with ``classnames``
    (``load_descriptor_file``; ``within`` for a class subset of a larger list)."""
    entry = descriptor_entry(dataset_name, table)
    if entry is None:
        raise DescriptorFileMissing(f"the profile names no descriptor file for dataset {dataset_name!r} "
                                    "(its `descriptors` table)")
    return load_descriptor_file(descriptor_path(entry, dataset_name, data_root), classnames,
                                entry.get("format", "cupl"), entry.get("period", False), entry.get("extra", "error"),
                                entry.get("match", "name"), within)


def label_space(dataset) -> tuple[list[str], list[int]] | None:
    """``(parent class names, indices)`` of a dataset whose classes are a subset of a larger list
    (ImageNet-A/R: ``parent_classnames``, ``imagenet_indices``), for ``descriptor_file``'s ``within``."""
    parent = getattr(dataset, "parent_classnames", None)
    return None if parent is None else (list(parent), [int(i) for i in dataset.imagenet_indices])


def descriptor_sentences(dataset_name: str, classnames: Sequence[str], table: dict,
                         data_root: str | Path | None = None,
                         within: tuple[Sequence[str], Sequence[int]] | None = None) -> list[list[str]]:
    """Sentences per class for a dataset, from the descriptor file its profile entry names."""
    return descriptor_file(dataset_name, classnames, table, data_root, within).sentences


def description_features(handle: ModelHandle, sentences: Sequence[Sequence[str]],
                         cache: feature_cache.FeatureCache) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ragged per-class sentences -> ``desc (C, M, d)``, ``mask (C, M)``."""
    flat = [s for per_class in sentences for s in per_class]
    feats = feature_cache.text_features(handle, flat, cache=cache)
    return pad_descriptions(list(feats.split([len(s) for s in sentences])))
