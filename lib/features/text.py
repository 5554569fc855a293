"""The text side: templates and descriptor files as data, and the class and description features.

* ``IMAGENET_TEMPLATES``: CLIP's 80 ImageNet templates, as open_clip ships them
  (``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES``, callables turned into format strings).
* ``SINGLE_TEMPLATE``: ``"a photo of a {}."`` (CLIP paper; the D-Trap code's template).
* ``TEMPLATE_SETS``: the profiles' ``templates`` names: ``imagenet80``, ``single`` and ``demo`` (the demo
  world's own caption templates, ``lib.data.demo_world.TEMPLATES``).
* ``load_descriptors``: a descriptor JSON read unchanged in either official format, checked against
  the class list (a missing or unknown class is an error that names it):
  - ``"cupl"``: ``{"class": ["full sentence.", ...]}`` (CuPL's released files, 50 sentences a class);
  - ``"dclip"``: ``{"class": ["descriptor", ...]}`` short phrases that DCLIP turns into sentences with
    ``dclip_sentence`` (rules of the official DCLIP code, sachit-menon/classify_by_description_release;
    see docs/official_code.md).
  Class keys match the dataset's class names ignoring case, underscores and surrounding spaces, and
  sentences come back in the dataset's class order (never the file's key order: DCLIP's released
  Pets file follows another order, which drops accuracy to about 11% when taken by position).
* ``pad_descriptions``: ragged per-class lists of features -> ``(C, M, d)`` plus a ``(C, M)`` mask.
* ``class_embeddings`` (the template-ensemble classifier), ``descriptor_sentences`` (a dataset's
  sentences from the file its profile entry names) and ``description_features`` (``desc``, ``mask``),
  encoded through the feature cache.

Descriptions written for this project (``lib/data/descriptors``): ``demo_digits.json`` (the demo world)
and ``eurosat.json`` (EuroSAT's ten land-cover classes), both in CuPL format.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from lib.data import DESCRIPTOR_DIR, demo_world
from lib.features import cache as feature_cache
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


class DescriptorError(ValueError):
    """A descriptor file that does not match the class list; the message names file and class."""


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def dclip_sentence(classname: str, descriptor: str, period: bool = False) -> str:
    """DCLIP's sentence for one descriptor: ``"{class}, which {is|has|...} {descriptor}"``.

    Rules of the official DCLIP code: a descriptor starting with "a"/"an" or "used" reads "which is";
    one starting with "has", "often", "typically", "may" or "can" reads "which"; any other "which
    has". An empty descriptor gives the class name alone. DCLIP appends "." for ImageNet only
    (``period``).
    """
    descriptor = descriptor.strip()
    if not descriptor:
        return classname + ("." if period else "")
    first = descriptor.split()[0].lower()
    if first in ("a", "an", "used"):
        link = "which is"
    elif first in ("has", "often", "typically", "may", "can"):
        link = "which"
    else:
        link = "which has"
    return f"{classname}, {link} {descriptor}" + ("." if period else "")


def load_descriptors(path: str | Path, classnames: Sequence[str], format: Literal["cupl", "dclip"] = "cupl",
                     period: bool = False, extra: Literal["error", "ignore"] = "error") -> list[list[str]]:
    """Read a descriptor JSON; return one list of sentences per class, in the dataset's class order.

    ``format="cupl"`` returns the sentences as stored; ``"dclip"`` builds DCLIP sentences
    (``dclip_sentence``, ``period`` for ImageNet). An empty list becomes ``[""]`` (DCLIP's
    convention; CuPL's sentence then is the empty string, DCLIP's the class name). Classes in the
    file but not in the dataset are an error unless ``extra="ignore"`` (ImageNet's file read for the
    200 classes of ImageNet-A or -R).
    """
    if format not in ("cupl", "dclip"):
        raise DescriptorError(f"descriptor format must be 'cupl' or 'dclip', got {format!r} (for {path})")
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise DescriptorError(f"descriptor file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise DescriptorError(f"descriptor file {path} is not valid JSON: {err}") from None
    if not isinstance(table, dict):
        raise DescriptorError(f"descriptor file {path} must hold an object {{class: [sentences]}}")
    by_key: dict[str, str] = {}
    for name in table:
        if _key(name) in by_key:
            raise DescriptorError(f"descriptor file {path} lists class {name!r} twice (as {by_key[_key(name)]!r})")
        by_key[_key(name)] = name
    wanted = {_key(c) for c in classnames}
    missing = [c for c in classnames if _key(c) not in by_key]
    unknown = [name for key, name in by_key.items() if key not in wanted]
    if missing:
        raise DescriptorError(f"descriptor file {path} has no entry for class(es) {missing}: add one list of "
                              "sentences per class (keys match the class names ignoring case and underscores)")
    if unknown and extra == "error":
        raise DescriptorError(f"descriptor file {path} names class(es) not in the dataset: {unknown}; fix the "
                              "spelling, or pass extra='ignore' when the file covers a larger class list")
    out = []
    for c in classnames:
        sentences = table[by_key[_key(c)]]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise DescriptorError(f"descriptor file {path}: class {c!r} must map to a list of strings")
        sentences = sentences or [""]  # DCLIP's convention for an empty list
        if format == "dclip":
            sentences = [dclip_sentence(c, s, period) for s in sentences]
        out.append(sentences)
    return out


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


def descriptor_entry(dataset_name: str, table: dict) -> dict | None:
    """The profile's descriptor entry for a dataset (keys may be glob patterns such as ``demo-*``)."""
    for pattern, entry in table.items():
        if fnmatch.fnmatchcase(dataset_name.lower(), pattern.lower()):
            return entry if isinstance(entry, dict) else {"path": entry}
    return None


def descriptor_sentences(dataset_name: str, classnames: Sequence[str], table: dict,
                         data_root: str | Path | None = None) -> list[list[str]]:
    """Sentences per class for a dataset, from the descriptor file its profile entry names.

    A relative path is looked up in ``lib/data/descriptors`` first, then under the data root; ``{name}``
    in it becomes the dataset name.
    """
    entry = descriptor_entry(dataset_name, table)
    if entry is None:
        raise DescriptorError(f"the profile names no descriptor file for dataset {dataset_name!r}")
    path = Path(str(entry["path"]).format(name=dataset_name)).expanduser()
    if not path.is_absolute():
        candidates = [DESCRIPTOR_DIR / path]
        root = resolve_data_root(data_root)
        if root is not None:
            candidates.append(Path(root) / path)
        path = next((p for p in candidates if p.is_file()), candidates[-1])
    return load_descriptors(path, classnames, entry.get("format", "cupl"), entry.get("period", False),
                            entry.get("extra", "error"))


def description_features(handle: ModelHandle, sentences: Sequence[Sequence[str]],
                         cache: feature_cache.FeatureCache) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode ragged per-class sentences -> ``desc (C, M, d)``, ``mask (C, M)``."""
    flat = [s for per_class in sentences for s in per_class]
    feats = feature_cache.text_features(handle, flat, cache=cache)
    return pad_descriptions(list(feats.split([len(s) for s in sentences])))
