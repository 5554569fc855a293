"""Datasets read through ``torchvision.datasets``: the fallback of the CoOp datasets, and Places365.

Class names are torchvision's (EuroSAT: folder names such as "AnnualCrop") unless the source renames
them (Places365); splits torchvision lacks are carved out, seeded and class-stratified, as
``TorchvisionSource`` describes. ``download=True`` lets torchvision fetch a dataset (never at test time).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from lib.data.base import (
    SPLITS,
    DatasetError,
    ImageListDataset,
    TorchvisionSource,
    _check_split,
    _digest,
    _stratified_parts,
    spelled,
)
from lib.data.coop import COOP_DATASETS


def _places365_classname(category: str) -> str:
    """Places365's "/a/apartment_building/outdoor" -> "apartment building outdoor" (the usual zero-shot name)."""
    parts = category.strip("/").split("/")
    if len(parts) > 1 and len(parts[0]) == 1:  # the initial-letter folder
        parts = parts[1:]
    return " ".join(part.replace("_", " ") for part in parts)

# Datasets read only through torchvision (no CoOp split file).
TORCHVISION_DATASETS: dict[str, TorchvisionSource] = {
    "Places365": TorchvisionSource(
        "Places365", "places365", ("train-standard", "train-standard", "val"), subdir="places365",
        options=(("small", True),), rename=_places365_classname,
        contents="{categories_places365.txt, places365_train_standard.txt, places365_val.txt, "
                 "data_256_standard/, val_256/}"),
}


def _torchvision_samples(tv: Any) -> list[tuple[Path, int]]:
    """(file, label) pairs of a torchvision dataset, read from its attributes (no image is opened)."""
    if hasattr(tv, "samples"):  # ImageFolder: EuroSAT
        pairs = tv.samples
    elif hasattr(tv, "_samples"):  # StanfordCars
        pairs = tv._samples
    elif hasattr(tv, "_image_files") or hasattr(tv, "_images"):  # DTD, Flowers102, Food101, SUN397, OxfordIIITPet
        files = tv._image_files if hasattr(tv, "_image_files") else tv._images
        pairs = list(zip(files, tv._labels))
    elif hasattr(tv, "imgs"):  # Places365
        pairs = tv.imgs
    elif hasattr(tv, "categories"):  # Caltech101
        pairs = [(Path(tv.root, "101_ObjectCategories", tv.categories[y], f"image_{i:04d}.jpg"), y)
                 for i, y in zip(tv.index, tv.y)]
    else:
        raise DatasetError(f"torchvision.datasets.{type(tv).__name__}: cannot list its image files")
    return sorted((Path(p), int(y)) for p, y in pairs)

def _torchvision_classes(tv: Any) -> list[str]:
    """A torchvision dataset's class names in label order."""
    if hasattr(tv, "categories"):  # Caltech101
        return list(tv.categories)
    to_index = getattr(tv, "class_to_idx", None)  # Places365 labels follow its category file's indices
    if isinstance(to_index, dict) and sorted(to_index.values()) == list(range(len(to_index))):
        return sorted(to_index, key=to_index.__getitem__)
    return list(tv.classes)

def _torchvision_source(name: str) -> TorchvisionSource | None:
    if name in TORCHVISION_DATASETS:
        return TORCHVISION_DATASETS[name]
    return COOP_DATASETS[name].torchvision if name in COOP_DATASETS else None

class TorchvisionDataset(ImageListDataset):
    """A ``torchvision.datasets`` dataset behind the same protocol: the fallback for ``COOP_DATASETS``
    and the only reader of ``TORCHVISION_DATASETS`` (Places365).

    Class names are torchvision's (EuroSAT: folder names such as "AnnualCrop") unless the source
    renames them (Places365); splits torchvision lacks are carved out as ``TorchvisionSource``
    describes, with ``seed``. The fingerprint hashes the class list and the files (relative to the
    root) with their labels.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str, download: bool = False, seed: int = 0):
        name = spelled(name, [*TORCHVISION_DATASETS, *COOP_DATASETS]) or name
        _check_split(split, name)
        source = _torchvision_source(name)
        if source is None:
            raise DatasetError(f"{name} has no torchvision dataset; read it with lib.data.load_dataset({name!r}, ...), "
                               "which knows its own layout")
        root = Path(root).expanduser()
        layout = source.layout()
        if not download and not (root / source.folder).exists():  # checked first: some classes mkdir
            raise DatasetError(f"{name}: {root / source.folder} does not exist; expected {layout}, "
                               "or pass download=True to fetch it")
        if source.native is None:
            native, parts, fractions = None, SPLITS, (0.6, 0.2, 0.2)
        else:
            native = source.native[SPLITS.index(split)]
            parts = tuple(s for s, n in zip(SPLITS, source.native) if n == native)
            fractions = (0.8, 0.2) if len(parts) == 2 else (1.0,)
        try:
            tv = source.open(root, native, download)
        except (RuntimeError, OSError, ValueError) as err:  # ValueError: a malformed listing (Places365)
            raise DatasetError(f"{name}: torchvision.datasets.{source.cls} cannot read {root}: {err}; "
                               f"expected {layout}") from err
        images_dir = getattr(tv, "images_dir", None)  # Places365 reads its file lists without the images
        if images_dir is not None and not Path(images_dir).is_dir():
            raise DatasetError(f"{name}: image folder {images_dir} does not exist; expected {layout}, "
                               "or pass download=True to fetch it")
        samples = _torchvision_samples(tv)
        keep = _stratified_parts(np.asarray([y for _, y in samples]), fractions, seed)[parts.index(split)]
        samples = [samples[k] for k in keep]
        classnames = _torchvision_classes(tv)
        bad = next((p for p, y in samples if not 0 <= y < len(classnames)), None)
        if bad is not None:
            raise DatasetError(f"{name}: torchvision.datasets.{source.cls} labels {bad} outside its "
                               f"{len(classnames)} classes; expected {layout}")
        if source.rename is not None:
            classnames = [source.rename(c) for c in classnames]
        listing = json.dumps([[Path(os.path.relpath(p, root)).as_posix(), y] for p, y in samples]).encode()
        super().__init__(name, split, classnames, [p for p, _ in samples], [y for _, y in samples],
                         _digest({"layout": "torchvision", "dataset": name, "split": split,
                                  "classes": classnames}, listing))
