"""Every real dataset by name: one reader per layout, dispatched from one table (``READERS``).

Datasets live under one data root: an explicit ``root`` argument, else the ``DATA_ROOT`` environment
variable (resolved by ``lib.runtime.locations.data_root``). The layout is CoOp's ``DATASETS.md``::

    <root>/eurosat/2750/<Class>/<image>.jpg          the image folder
    <root>/eurosat/split_zhou_EuroSAT.json           {"train": [[relpath, label, classname], ...],
                                                      "val": [...], "test": [...]}

Split-file paths are relative to the image folder and labels are 0-based; ``COOP_DATASETS`` lists
the nine datasets read this way. ImageNet (``classnames.txt`` + ``images/{train,val}``) and
FGVCAircraft (``images_variant_<split>.txt``) have their own readers. When a dataset's CoOp files are
absent, ``load_dataset`` falls back to the matching ``torchvision.datasets`` class, which can also
download it (``download=True``; never at test time).

The LaZSL tables add (one reader each, same protocol):

* CUB-200-2011 (``CUBDataset``) in its official archive layout, ``<root>/CUB_200_2011/`` with
  ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt`` and ``images/``;
  class names lose the "001." prefix and their underscores. "test" is the official test split;
  "train" and "val" are a seeded, class-stratified 80/20 split of the official train split.
* Places365 through ``torchvision.datasets.Places365`` only (``TORCHVISION_DATASETS``; small images
  under ``<root>/places365/``): "test" is its "val" split, "train"/"val" are carved 80/20 from
  "train-standard"; class names "/a/apartment_building/outdoor" read "apartment building outdoor".
* The test-only ImageNet variants (``IMAGENET_VARIANTS``: ImageNetV2, ImageNetSketch, ImageNetA,
  ImageNetR) in CoOp's folders, named with ImageNet's ``<root>/imagenet/classnames.txt``. ImageNetA and
  ImageNetR keep only the classes whose folders exist (200 in the real data), in ImageNet's order and
  relabelled 0..K-1; every variant's ``imagenet_indices`` maps its labels to ImageNet class indices.

The BSCD-FSL cross-domain few-shot targets (``BSCDFSL_LAYOUTS``; Guo et al. 2020, IBM/cdfsl-benchmark) are
whole-dataset pools that episodes are sampled from, so each is one test-only split of all its images:

* CropDisease (``CropDiseaseDataset``): the ImageFolder ``<root>/CropDiseases/dataset/train/<class>/``;
  classes are the sorted folders, "Apple___Black_rot" reads "Apple Black rot" (underscores become spaces).
* ISIC (``ISICDataset``): ISIC 2018 Task 3's one-hot ``ISIC2018_Task3_Training_GroundTruth.csv`` (directly
  in ``<root>/ISIC/`` or in the archive's folder of that name) and ``ISIC2018_Task3_Training_Input/``;
  the 7 diagnoses in the csv's column order, spelled out ("melanoma", ..., "vascular lesion").
* ChestX (``ChestXDataset``): NIH ChestX-ray14's ``<root>/ChestX/Data_Entry_2017.csv`` and ``images/``;
  only images with exactly one finding among BSCD-FSL's 7 ("atelectasis", ..., "pneumothorax").

Every dataset has the same protocol (``lib.data.base``) as ``lib.data.demo_world.DemoDataset``: ``name``, ``split``,
``classnames`` (index = label), ``paths``, ``labels`` (LongTensor), ``fingerprint`` (a content hash
that does not depend on where the root is, so moving the data keeps feature caches valid), and
``ds[i] -> (RGB PIL image, label)``. Every failure is a ``DatasetError`` naming the culprit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from lib.data.base import SPLITS, VARIANT_SPLITS, DatasetError, ImageListDataset, _check_split, spelled
from lib.data.bscdfsl import BSCDFSL_LAYOUTS, ChestXDataset, CropDiseaseDataset, ISICDataset
from lib.data.coop import COOP_DATASETS, CoOpDataset
from lib.data.cub import CUB_LAYOUT, CUBDataset
from lib.data.imagenet import (
    FGVC_LAYOUT,
    IMAGENET_LAYOUT,
    IMAGENET_VARIANTS,
    FGVCAircraftDataset,
    ImageNetDataset,
    ImageNetVariantDataset,
)
from lib.data.torchvision_source import TORCHVISION_DATASETS, TorchvisionDataset
from lib.runtime.locations import data_root


@dataclass(frozen=True)
class Reader:
    """How one named dataset is read: its own reader (None: torchvision only), its layout for error
    messages, and whether it has only a test split."""

    read: Callable[[Path, str, str, int], ImageListDataset] | None
    layout: str
    test_only: bool = False


def _coop(root, name, split, seed):
    return CoOpDataset(root, name, split)


def _variant(root, name, split, seed):
    return ImageNetVariantDataset(root, name, split)


READERS: dict[str, Reader] = {
    **{name: Reader(_coop, entry.layout()) for name, entry in COOP_DATASETS.items()},
    "ImageNet": Reader(lambda root, name, split, seed: ImageNetDataset(root, split), IMAGENET_LAYOUT),
    "FGVCAircraft": Reader(lambda root, name, split, seed: FGVCAircraftDataset(root, split), FGVC_LAYOUT),
    "CUB": Reader(lambda root, name, split, seed: CUBDataset(root, split, seed=seed), CUB_LAYOUT),
    **{name: Reader(None, source.layout()) for name, source in TORCHVISION_DATASETS.items()},
    **{name: Reader(_variant, variant.layout(), test_only=True) for name, variant in IMAGENET_VARIANTS.items()},
    **{name: Reader(lambda root, name, split, seed, cls=cls: cls(root, split), BSCDFSL_LAYOUTS[name], test_only=True)
       for name, cls in (("CropDisease", CropDiseaseDataset), ("ISIC", ISICDataset), ("ChestX", ChestXDataset))},
}


def known_names() -> list[str]:
    """Every dataset name ``load_dataset`` reads, in registry spelling."""
    return list(READERS)


def canonical_name(name: str) -> str:
    """The registry spelling of a dataset name, looked up case-insensitively."""
    found = spelled(name, READERS)
    if found is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(READERS, key=str.lower))}")
    return found


def layout_of(name: str) -> str:
    """The on-disk layout a dataset is read from (its CoOp layout when it also has a torchvision one)."""
    return READERS[canonical_name(name)].layout


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False, *,
                 seed: int = 0, layout: Literal["auto", "coop", "torchvision"] = "auto") -> ImageListDataset:
    """One split of a named dataset (case-insensitive; ``known_names()``) under ``root`` (default ``$DATA_ROOT``).

    ``layout="auto"`` reads the CoOp layout when its split file exists, else the torchvision layout
    when the dataset has one (``download=True`` lets torchvision fetch it; ``seed`` picks the carved
    splits); "coop" and "torchvision" force one reader. ImageNet, FGVCAircraft, CUB, the ImageNet
    variants and the BSCD-FSL targets (CropDisease, ISIC, ChestX) have only their own reader ("coop");
    Places365 only the torchvision one. The ImageNet variants and the BSCD-FSL targets are test-only.
    """
    name = canonical_name(name)
    reader = READERS[name]
    _check_split(split, name, VARIANT_SPLITS if reader.test_only else SPLITS)
    resolved = data_root(root)
    if resolved is None:
        raise DatasetError(f"DATA_ROOT is not set and no root was given: point DATA_ROOT at the folder "
                           f"holding the datasets; {name} expects {reader.layout}")
    if layout not in ("auto", "coop", "torchvision"):
        raise DatasetError(f"layout must be 'auto', 'coop' or 'torchvision', got {layout!r}")
    entry = COOP_DATASETS.get(name)
    if reader.read is not None and entry is None and layout != "torchvision":
        return reader.read(resolved, name, split, seed)  # a layout of its own
    if reader.read is None:  # torchvision only
        if layout == "coop":
            raise DatasetError(f"{name} has no CoOp layout; it is read from {reader.layout}")
        return TorchvisionDataset(resolved, name, split, download=download, seed=seed)
    if layout == "torchvision" or (layout == "auto" and entry is not None and entry.torchvision is not None
                                   and not (resolved / entry.folder / entry.split_file).is_file()):
        if layout == "auto" and not download and not (resolved / entry.torchvision.folder).exists():
            absent = "" if resolved.is_dir() else " (no such folder)"
            raise DatasetError(f"{name} not found under {resolved}{absent}: expected the CoOp layout "
                               f"{reader.layout}, or the torchvision layout <root>/{entry.torchvision.folder}/... "
                               f"(torchvision.datasets.{entry.torchvision.cls}; download=True fetches it)")
        return TorchvisionDataset(resolved, name, split, download=download, seed=seed)
    return reader.read(resolved, name, split, seed)
