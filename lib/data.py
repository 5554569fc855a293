"""Real image datasets in the CoOp layout, with a torchvision fallback.

Datasets live under one data root: an explicit ``root`` argument, else the ``DATA_ROOT`` environment
variable (resolved by ``lib.locations.data_root``). The layout is CoOp's ``DATASETS.md``::

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

Every dataset has the same protocol as ``lib.demo.DemoDataset``: ``name``, ``split``,
``classnames`` (index = label), ``paths``, ``labels`` (LongTensor), ``fingerprint`` (a content hash
that does not depend on where the root is, so moving the data keeps feature caches valid), and
``ds[i] -> (RGB PIL image, label)``. Every failure is a ``DatasetError`` naming the culprit.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from lib.locations import data_root

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the path, file, row or class at fault."""


@dataclass(frozen=True)
class TorchvisionSource:
    """How ``torchvision.datasets.<cls>`` reads a dataset.

    ``folder`` is what it expects under the root; ``native`` names its own split used for our
    (train, val, test), or is None when it has no split. Splits missing natively are carved out,
    seeded and class-stratified: 60/20/20 of everything when ``native`` is None, 80/20 of the shared
    native split when train and val share one (CoOp's ``split_trainval`` uses 20% for val).
    """

    cls: str
    folder: str
    native: tuple[str, str, str] | None = None
    subdir: str = ""  # torchvision's own root under the data root ("": the data root itself)
    options: tuple[tuple[str, Any], ...] = ()  # further keyword arguments of the class
    rename: Callable[[str], str] | None = None  # its class names -> ours (None: keep them)
    contents: str = "..."  # what the folder holds, for error messages

    def layout(self) -> str:
        return f"<root>/{self.folder}/{self.contents} (torchvision.datasets.{self.cls})"

    def open(self, root: Path, native_split: str | None, download: bool) -> Any:
        import torchvision.datasets

        kwargs: dict[str, Any] = {"download": download, **dict(self.options)}
        if native_split is not None:
            kwargs["split"] = native_split
        return getattr(torchvision.datasets, self.cls)(str(Path(root, self.subdir)), **kwargs)


@dataclass(frozen=True)
class CoOpEntry:
    """Where one CoOp dataset lives under the root: ``<folder>/<image_dir>`` and ``<folder>/<split_file>``."""

    folder: str
    image_dir: str  # "" when the split file's paths start at the folder itself (StanfordCars)
    split_file: str
    torchvision: TorchvisionSource | None = None

    def layout(self) -> str:
        images = "/".join(p for p in ("<root>", self.folder, self.image_dir) if p)
        return f"{images}/... and <root>/{self.folder}/{self.split_file}"


# Folders, image folders and split files as in CoOp's DATASETS.md and datasets/*.py.
COOP_DATASETS: dict[str, CoOpEntry] = {
    "OxfordPets": CoOpEntry("oxford_pets", "images", "split_zhou_OxfordPets.json",
                            TorchvisionSource("OxfordIIITPet", "oxford-iiit-pet", ("trainval", "trainval", "test"))),
    "Flowers102": CoOpEntry("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
                            TorchvisionSource("Flowers102", "flowers-102", ("train", "val", "test"))),
    "Food101": CoOpEntry("food-101", "images", "split_zhou_Food101.json",
                         TorchvisionSource("Food101", "food-101/meta", ("train", "train", "test"))),
    "StanfordCars": CoOpEntry("stanford_cars", "", "split_zhou_StanfordCars.json",
                              TorchvisionSource("StanfordCars", "stanford_cars/devkit", ("train", "train", "test"))),
    "SUN397": CoOpEntry("sun397", "SUN397", "split_zhou_SUN397.json", TorchvisionSource("SUN397", "SUN397")),
    "DTD": CoOpEntry("dtd", "images", "split_zhou_DescribableTextures.json",
                     TorchvisionSource("DTD", "dtd/dtd", ("train", "val", "test"))),
    "EuroSAT": CoOpEntry("eurosat", "2750", "split_zhou_EuroSAT.json", TorchvisionSource("EuroSAT", "eurosat/2750")),
    "UCF101": CoOpEntry("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
    "Caltech101": CoOpEntry("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
                            TorchvisionSource("Caltech101", "caltech101/101_ObjectCategories")),
}
IMAGENET_LAYOUT = "<root>/imagenet/classnames.txt and <root>/imagenet/images/{train,val}/<wnid>/..."
IMAGENET_CLASSES = "<root>/imagenet/classnames.txt"
FGVC_LAYOUT = "<root>/fgvc_aircraft/images_variant_{train,val,test}.txt and <root>/fgvc_aircraft/images/<id>.jpg"
CUB_LAYOUT = ("<root>/CUB_200_2011/{images,image_class_labels,train_test_split,classes}.txt and "
              "<root>/CUB_200_2011/images/<class folder>/<image>.jpg")


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


@dataclass(frozen=True)
class ImageNetVariant:
    """Where a test-only ImageNet variant keeps its images: ``<root>/<folder>/<class folder>/<image>``.

    Class folders are ImageNet class indices 0..999 when ``by_index`` (ImageNetV2), else WordNet ids.
    ``subset``: the dataset covers only the classes whose folders exist (ImageNet-A/R, 200 classes).
    """

    folder: str
    by_index: bool = False
    subset: bool = False

    def layout(self) -> str:
        classes = "<class index 0..999>" if self.by_index else "<wnid>"
        return f"<root>/{self.folder}/{classes}/<image> and {IMAGENET_CLASSES}"


# CoOp's DATASETS.md folders of the ImageNet variants.
IMAGENET_VARIANTS: dict[str, ImageNetVariant] = {
    "ImageNetV2": ImageNetVariant("imagenetv2/imagenetv2-matched-frequency-format-val", by_index=True),
    "ImageNetSketch": ImageNetVariant("imagenet-sketch/images"),
    "ImageNetA": ImageNetVariant("imagenet-adversarial/imagenet-a", subset=True),
    "ImageNetR": ImageNetVariant("imagenet-rendition/imagenet-r", subset=True),
}
VARIANT_SPLITS = ("test",)

# The BSCD-FSL target datasets (IBM/cdfsl-benchmark, datasets/*_few_shot.py), test-only like the variants.
CROPDISEASE_LAYOUT = "<root>/CropDiseases/dataset/train/<class folder>/<image>"
ISIC_CSV = "ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_LAYOUT = (f"<root>/ISIC/{ISIC_CSV} (or <root>/ISIC/ISIC2018_Task3_Training_GroundTruth/{ISIC_CSV}, "
               "as the archive unpacks) and <root>/ISIC/ISIC2018_Task3_Training_Input/<image>.jpg")
CHESTX_LAYOUT = ("<root>/ChestX/Data_Entry_2017.csv (columns 'Image Index', 'Finding Labels') and "
                 "<root>/ChestX/images/<Image Index>")
BSCDFSL_LAYOUTS: dict[str, str] = {"CropDisease": CROPDISEASE_LAYOUT, "ISIC": ISIC_LAYOUT, "ChestX": CHESTX_LAYOUT}
ISIC_DIAGNOSES: dict[str, str] = {  # csv column -> class name, in the csv's (and the label) order
    "MEL": "melanoma", "NV": "melanocytic nevus", "BCC": "basal cell carcinoma", "AKIEC": "actinic keratosis",
    "BKL": "benign keratosis", "DF": "dermatofibroma", "VASC": "vascular lesion",
}
CHESTX_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's


def known_names() -> list[str]:
    """Every dataset name ``load_dataset`` reads, in registry spelling."""
    return [*COOP_DATASETS, "ImageNet", "FGVCAircraft", "CUB", *TORCHVISION_DATASETS, *IMAGENET_VARIANTS,
            *BSCDFSL_LAYOUTS]


def canonical_name(name: str) -> str:
    """The registry spelling of a dataset name, looked up case-insensitively."""
    known = known_names()
    for candidate in known:
        if candidate.lower() == str(name).lower():
            return candidate
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(known, key=str.lower))}")


def layout_of(name: str) -> str:
    """The on-disk layout a dataset is read from (its CoOp layout when it also has a torchvision one)."""
    name = canonical_name(name)
    if name in COOP_DATASETS:
        return COOP_DATASETS[name].layout()
    if name in TORCHVISION_DATASETS:
        return TORCHVISION_DATASETS[name].layout()
    if name in IMAGENET_VARIANTS:
        return IMAGENET_VARIANTS[name].layout()
    if name in BSCDFSL_LAYOUTS:
        return BSCDFSL_LAYOUTS[name]
    return {"ImageNet": IMAGENET_LAYOUT, "FGVCAircraft": FGVC_LAYOUT, "CUB": CUB_LAYOUT}[name]


def _check_split(split: str, name: str | None = None, splits: tuple[str, ...] = SPLITS) -> None:
    if split in splits:
        return
    if name is not None and len(splits) == 1:
        raise DatasetError(f"{name} is test-only: split must be {splits[0]!r}, got {split!r}")
    whose = f"{name}: " if name is not None else ""
    raise DatasetError(f"{whose}split must be one of {splits}, got {split!r}")


def _digest(header: dict, *blobs: bytes) -> str:
    """sha256 over a JSON header and byte blobs (length-prefixed, so blobs cannot run together)."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for blob in blobs:
        h.update(len(blob).to_bytes(8, "little"))
        h.update(blob)
    return h.hexdigest()


def _read_bytes(path: Path, what: str, layout: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"missing {what} {path}; expected {layout}") from None
    except OSError as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from err


def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path} does not exist; expected {layout}")


class ImageListDataset(torch.utils.data.Dataset):
    """The shared protocol: a list of image files with labels, read lazily as RGB PIL images."""

    def __init__(self, name: str, split: str, classnames: Sequence[str], paths: Sequence[Path],
                 labels: Sequence[int], fingerprint: str):
        if len(paths) != len(labels):
            raise DatasetError(f"{name}/{split}: {len(paths)} paths but {len(labels)} labels")
        self.name, self.split = name, split
        self.classnames = list(classnames)
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self._fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        path = self.paths[i]
        try:
            with Image.open(path) as image:
                return image.convert("RGB"), int(self.labels[i])  # convert() decodes: truncation fails here
        except FileNotFoundError:
            raise DatasetError(f"{self.name}/{self.split}: image file not found: {path}") from None
        except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
            raise DatasetError(f"{self.name}/{self.split}: cannot read image {path}: {err}; "
                               "replace the file (or download the dataset again)") from err

    @property
    def fingerprint(self) -> str:
        """Content hash of what defines the split (never the absolute root)."""
        return self._fingerprint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}/{self.split}: {len(self)} images, {len(self.classnames)} classes)"


class CoOpDataset(ImageListDataset):
    """One split of a CoOp dataset read from its ``split_zhou_*.json`` (see ``COOP_DATASETS``).

    ``classnames`` is built from all three splits, so train and test share one label space; the
    fingerprint hashes the dataset name, the split name and the split file's bytes.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str):
        _check_split(split)
        name = canonical_name(name)
        if name not in COOP_DATASETS:
            raise DatasetError(f"{name} has no split_zhou_*.json; read it with load_dataset({name!r}, ...)")
        entry = COOP_DATASETS[name]
        root = Path(root).expanduser()
        layout = entry.layout()
        if not root.is_dir():
            raise DatasetError(f"{name}: data root {root} does not exist; expected {layout}")
        _require_dir(root / entry.folder, f"{name} dataset folder", layout)
        self.split_file = root / entry.folder / entry.split_file
        raw = _read_bytes(self.split_file, f"{name} split file", layout)
        image_dir = root / entry.folder / entry.image_dir if entry.image_dir else root / entry.folder
        _require_dir(image_dir, f"{name} image folder", layout)
        rows, classnames = self._parse(raw)
        super().__init__(
            name, split, classnames,
            paths=[image_dir / relpath for relpath, _, _ in rows[split]],
            labels=[label for _, label, _ in rows[split]],
            fingerprint=_digest({"layout": "coop", "dataset": name, "split": split}, raw),
        )

    def _parse(self, raw: bytes) -> tuple[dict[str, list], list[str]]:
        where = f"split file {self.split_file}"
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"{where} is not valid JSON: {err}") from err
        if not isinstance(data, dict) or set(data) != set(SPLITS):
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DatasetError(f"{where} must be an object with exactly the keys {list(SPLITS)}, found {found}")
        names: dict[int, tuple[str, str]] = {}  # label -> (classname, first row naming it)
        labels_of: dict[str, tuple[int, str]] = {}  # classname -> (label, first row)
        for split in SPLITS:
            if not isinstance(data[split], list):
                raise DatasetError(f"{where}: {split!r} must be a list of rows")
            for i, row in enumerate(data[split]):
                at = f"{split}[{i}]"
                ok = (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and row[0]
                      and not os.path.isabs(row[0]) and isinstance(row[1], int) and not isinstance(row[1], bool)
                      and row[1] >= 0 and isinstance(row[2], str))
                if not ok:
                    raise DatasetError(f"{where}: row {at} = {row!r} is not [relative path, label >= 0, class name]")
                _, label, cname = row
                if label in names and names[label][0] != cname:
                    raise DatasetError(f"{where}: label {label} is class {names[label][0]!r} in row {names[label][1]} "
                                       f"but class {cname!r} in row {at}")
                if cname in labels_of and labels_of[cname][0] != label:
                    raise DatasetError(f"{where}: class {cname!r} has label {labels_of[cname][0]} in row "
                                       f"{labels_of[cname][1]} but label {label} in row {at}")
                names.setdefault(label, (cname, at))
                labels_of.setdefault(cname, (label, at))
        missing = sorted(set(range(len(names))) - set(names))
        if missing:
            raise DatasetError(f"{where}: labels must run 0..{max(names)} but no row has label(s) {missing}")
        return data, [names[label][0] for label in range(len(names))]


def _key_rest_lines(listing: Path, raw: bytes, form: str) -> list[tuple[str, str, int]]:
    """Parse ``<key> <rest with spaces>`` lines (CoOp's ImageNet and FGVCAircraft listings).

    Returns ``(key, rest, line number)`` per non-empty line.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{listing} is not UTF-8 text: {err}") from err
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, _, rest = line.strip().partition(" ")
        if not rest.strip():
            raise DatasetError(f"{listing}: line {n} {line!r} is not '{form}'")
        rows.append((key, rest.strip(), n))
    return rows


def _visible(folder: Path, dirs: bool) -> list[Path]:
    """The sorted sub-folders (``dirs``) or files of ``folder``, hidden entries left out."""
    return sorted(p for p in folder.iterdir() if (p.is_dir() if dirs else p.is_file()) and not p.name.startswith("."))


def _imagenet_classes(root: Path, layout: str) -> tuple[list[str], dict[str, str], bytes, Path]:
    """ImageNet's classes from ``<root>/imagenet/classnames.txt`` (``n01440764 tench`` lines).

    Returns the sorted WordNet ids (label order, as CoOp sorts the class folders), their names, the
    file's bytes and its path.
    """
    listing = root / "imagenet" / "classnames.txt"
    raw = _read_bytes(listing, "ImageNet class list", layout)
    wnid_names: dict[str, str] = {}
    for wnid, cname, n in _key_rest_lines(listing, raw, "<wnid> <class name>"):
        if wnid in wnid_names:
            raise DatasetError(f"{listing}: line {n} repeats the class folder {wnid}")
        wnid_names[wnid] = cname
    return sorted(wnid_names), wnid_names, raw, listing


class ImageNetDataset(ImageListDataset):
    """CoOp's ImageNet: ``imagenet/classnames.txt`` (``n01440764 tench``) and ``imagenet/images/{train,val}``.

    Labels follow the sorted WordNet ids (CoOp sorts the class folders); split "test" reads the
    validation images, and so does "val", as in CoOp. The fingerprint hashes classnames.txt and the
    list of image paths relative to the split folder.
    """

    def __init__(self, root: str | os.PathLike, split: str):
        _check_split(split)
        root = Path(root).expanduser()
        folder = root / "imagenet"
        _require_dir(folder, "ImageNet dataset folder", IMAGENET_LAYOUT)
        wnids, wnid_names, raw, listing = _imagenet_classes(root, IMAGENET_LAYOUT)
        split_dir = folder / "images" / ("train" if split == "train" else "val")
        _require_dir(split_dir, f"ImageNet {split} image folder", IMAGENET_LAYOUT)
        index = {wnid: label for label, wnid in enumerate(wnids)}
        paths, labels = [], []
        for sub in _visible(split_dir, dirs=True):
            if sub.name not in index:
                raise DatasetError(f"ImageNet: class folder {sub} is not listed in {listing}")
            files = _visible(sub, dirs=False)
            paths += files
            labels += [index[sub.name]] * len(files)
        relative = "\n".join(p.relative_to(split_dir).as_posix() for p in paths).encode()
        super().__init__("ImageNet", split, [wnid_names[w] for w in wnids], paths, labels,
                         _digest({"layout": "coop", "dataset": "ImageNet", "split": split}, raw, relative))


class FGVCAircraftDataset(ImageListDataset):
    """CoOp's FGVCAircraft: ``images_variant_<split>.txt`` lines ``<image id> <variant>``, images ``images/<id>.jpg``.

    Classes are the lines of ``variants.txt`` when present (CoOp's order), else the sorted unique
    variants of all three listing files. The fingerprint hashes the listing files that define the split.
    """

    def __init__(self, root: str | os.PathLike, split: str):
        _check_split(split)
        root = Path(root).expanduser()
        folder = root / "fgvc_aircraft"
        _require_dir(folder, "FGVCAircraft dataset folder", FGVC_LAYOUT)
        _require_dir(folder / "images", "FGVCAircraft image folder", FGVC_LAYOUT)
        variants_file = folder / "variants.txt"
        listings = {s: folder / f"images_variant_{s}.txt" for s in SPLITS}
        raws = {s: _read_bytes(listings[s], "FGVCAircraft listing", FGVC_LAYOUT)
                for s in (SPLITS if not variants_file.exists() else (split,))}
        rows = {s: _key_rest_lines(listings[s], raw, "<image id> <variant>") for s, raw in raws.items()}
        if variants_file.exists():
            variants_raw = _read_bytes(variants_file, "FGVCAircraft variant list", FGVC_LAYOUT)
            classnames = [v.strip() for v in variants_raw.decode("utf-8").splitlines() if v.strip()]
            blobs = (variants_raw, raws[split])
        else:
            classnames = sorted({variant for r in rows.values() for _, variant, _ in r})
            blobs = tuple(raws[s] for s in SPLITS)
        index = {cname: label for label, cname in enumerate(classnames)}
        for _, variant, n in rows[split]:
            if variant not in index:
                raise DatasetError(f"FGVCAircraft: {listings[split]} line {n} names variant {variant!r}, "
                                   f"which {variants_file} does not list")
        super().__init__("FGVCAircraft", split, classnames,
                         [folder / "images" / f"{image_id}.jpg" for image_id, _, _ in rows[split]],
                         [index[variant] for _, variant, _ in rows[split]],
                         _digest({"layout": "coop", "dataset": "FGVCAircraft", "split": split}, *blobs))


class ImageNetVariantDataset(ImageListDataset):
    """A test-only ImageNet variant in CoOp's folders (``IMAGENET_VARIANTS``), named from ImageNet's classnames.txt.

    ImageNetV2 and ImageNetSketch keep all ImageNet classes (label = ImageNet class index);
    ImageNetA and ImageNetR keep the classes whose folders are present, in ImageNet's order and
    relabelled 0..K-1 (never a hard-coded 200-class list). ``imagenet_indices`` (LongTensor, K) is
    the ImageNet index of each label: score with a K-way classifier built from ``classnames``, or
    take ``logits_1000[:, ds.imagenet_indices]`` from a 1000-way one. The fingerprint hashes
    classnames.txt and the image paths relative to the variant's folder.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str = "test"):
        name = canonical_name(name)
        if name not in IMAGENET_VARIANTS:
            raise DatasetError(f"{name} is not an ImageNet variant; those are {', '.join(IMAGENET_VARIANTS)}")
        _check_split(split, name, VARIANT_SPLITS)
        variant = IMAGENET_VARIANTS[name]
        layout = variant.layout()
        root = Path(root).expanduser()
        folder = root / variant.folder
        _require_dir(folder, f"{name} image folder", layout)
        wnids, wnid_names, raw, listing = _imagenet_classes(root, layout)
        index = {wnid: label for label, wnid in enumerate(wnids)}
        found: dict[int, Path] = {}  # ImageNet class index -> class folder
        for sub in _visible(folder, dirs=True):
            if variant.by_index:
                if not (sub.name.isascii() and sub.name.isdigit() and int(sub.name) < len(wnids)):
                    raise DatasetError(f"{name}: class folder {sub} is not an ImageNet class index 0..{len(wnids) - 1} "
                                       f"(the {len(wnids)} classes of {listing}); expected {layout}")
                imagenet_index = int(sub.name)
            else:
                if sub.name not in index:
                    raise DatasetError(f"{name}: class folder {sub} is not a WordNet id listed in {listing}")
                imagenet_index = index[sub.name]
            if imagenet_index in found:
                raise DatasetError(f"{name}: class folders {found[imagenet_index]} and {sub} are both "
                                   f"ImageNet class {imagenet_index}")
            found[imagenet_index] = sub
        if not found:
            raise DatasetError(f"{name}: no class folders in {folder}; expected {layout}")
        kept = sorted(found) if variant.subset else list(range(len(wnids)))
        label_of = {imagenet_index: label for label, imagenet_index in enumerate(kept)}
        paths: list[Path] = []
        labels: list[int] = []
        for imagenet_index in sorted(found):
            files = _visible(found[imagenet_index], dirs=False)
            if not files:
                raise DatasetError(f"{name}: class folder {found[imagenet_index]} holds no images")
            paths += files
            labels += [label_of[imagenet_index]] * len(files)
        relative = "\n".join(p.relative_to(folder).as_posix() for p in paths).encode()
        super().__init__(name, split, [wnid_names[wnids[i]] for i in kept], paths, labels,
                         _digest({"layout": "coop", "dataset": name, "split": split}, raw, relative))
        self.imagenet_indices = torch.as_tensor(kept, dtype=torch.long)


CUB_FILES = {  # file -> the form of its lines
    "images.txt": "<image id> <relative image path>",
    "image_class_labels.txt": "<image id> <class id>",
    "train_test_split.txt": "<image id> <1 train | 0 test>",
    "classes.txt": "<class id> <NNN.Class_name>",
}


def _cub_classname(folder_name: str) -> str:
    """CUB's "001.Black_footed_Albatross" -> "Black footed Albatross" (the zero-shot literature's names)."""
    return " ".join(re.sub(r"^\d+\.", "", folder_name).replace("_", " ").split())


class CUBDataset(ImageListDataset):
    """CUB-200-2011 in its official archive layout under ``<root>/CUB_200_2011/`` (see ``CUB_FILES``).

    Labels are the 1-based class ids of ``classes.txt`` minus one; class names drop the "001." prefix
    and underscores. "test" is the official test split; "train" and "val" split the official train
    images 80/20, class-stratified and seeded; ``image_ids`` are the official ids of the split's images.
    The fingerprint hashes the class names and the split's image paths (relative to ``images/``) with
    their labels.
    """

    def __init__(self, root: str | os.PathLike, split: str, seed: int = 0):
        _check_split(split, "CUB")
        root = Path(root).expanduser()
        folder = root / "CUB_200_2011"
        _require_dir(folder, "CUB dataset folder", CUB_LAYOUT)
        _require_dir(folder / "images", "CUB image folder", CUB_LAYOUT)
        tables = {file: self._table(folder / file, form) for file, form in CUB_FILES.items()}

        classes = tables["classes.txt"]
        missing = sorted(set(range(1, len(classes) + 1)) - set(classes))
        if missing:
            raise DatasetError(f"{folder / 'classes.txt'}: class ids must run 1..{len(classes)} "
                               f"but no line has class id(s) {missing}")
        classnames = [_cub_classname(classes[k][0]) for k in range(1, len(classes) + 1)]
        labels_file, split_file = folder / "image_class_labels.txt", folder / "train_test_split.txt"
        images = tables["images.txt"]
        label_of, is_train = {}, {}
        for image_id, (rest, n) in tables["image_class_labels.txt"].items():
            if not (rest.isascii() and rest.isdigit() and int(rest) in classes):
                raise DatasetError(f"{labels_file}: line {n} gives image {image_id} class {rest!r}, "
                                   f"which {folder / 'classes.txt'} does not list")
            label_of[image_id] = int(rest) - 1
        for image_id, (rest, n) in tables["train_test_split.txt"].items():
            if rest not in ("0", "1"):
                raise DatasetError(f"{split_file}: line {n} gives image {image_id} the split {rest!r}, "
                                   f"not 1 (train) or 0 (test)")
            is_train[image_id] = rest == "1"
        for image_id, (relpath, n) in images.items():
            if os.path.isabs(relpath):
                raise DatasetError(f"{folder / 'images.txt'}: line {n} path {relpath!r} is not relative to "
                                   f"{folder / 'images'}")
            for table, file in ((label_of, labels_file), (is_train, split_file)):
                if image_id not in table:
                    raise DatasetError(f"CUB: image id {image_id} ({relpath}, {folder / 'images.txt'} line {n}) "
                                       f"has no line in {file}")
        for table, file in ((tables["image_class_labels.txt"], labels_file),
                            (tables["train_test_split.txt"], split_file)):
            for image_id, (_, n) in table.items():
                if image_id not in images:
                    raise DatasetError(f"{file}: line {n} names image id {image_id}, "
                                       f"which {folder / 'images.txt'} does not list")

        ids = [i for i in sorted(images) if is_train[i] == (split != "test")]
        if split != "test":
            parts = _stratified_parts(np.asarray([label_of[i] for i in ids], dtype=np.int64), (0.8, 0.2), seed)
            ids = [ids[k] for k in parts[("train", "val").index(split)]]
        relpaths = [Path(images[i][0]).as_posix() for i in ids]
        listing = json.dumps([[r, label_of[i]] for r, i in zip(relpaths, ids)]).encode()
        super().__init__("CUB", split, classnames, [folder / "images" / r for r in relpaths],
                         [label_of[i] for i in ids],
                         _digest({"layout": "cub", "dataset": "CUB", "split": split, "classes": classnames},
                                 listing))
        self.image_ids = ids

    @staticmethod
    def _table(listing: Path, form: str) -> dict[int, tuple[str, int]]:
        """``<positive integer id> <rest>`` lines of one CUB file: id -> (rest, line number)."""
        raw = _read_bytes(listing, "CUB file", CUB_LAYOUT)
        table: dict[int, tuple[str, int]] = {}
        for key, rest, n in _key_rest_lines(listing, raw, form):
            if not (key.isascii() and key.isdigit() and int(key) > 0):
                raise DatasetError(f"{listing}: line {n} starts with {key!r}, not a positive integer id: "
                                   f"expected '{form}'")
            if int(key) in table:
                raise DatasetError(f"{listing}: line {n} repeats id {int(key)} of line {table[int(key)][1]}")
            table[int(key)] = (rest, n)
        return table


def _csv_rows(path: Path, raw: bytes, columns: Sequence[str], layout: str) -> list[tuple[int, list[str]]]:
    """The ``columns`` (found by their header names) of each non-blank row of a csv file, with its line number."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text: {err}") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise DatasetError(f"{path} is empty: no header line; expected {layout}")
        names = [cell.strip() for cell in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise DatasetError(f"{path}: the header (line {reader.line_num}) has no column{'s' * (len(missing) > 1)} "
                               f"{', '.join(map(repr, missing))}; expected {layout}")
        at = [names.index(c) for c in columns]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            short = next((c for c, k in zip(columns, at) if k >= len(row)), None)
            if short is not None:
                raise DatasetError(f"{path}: line {reader.line_num} has {len(row)} fields, so no {short!r} "
                                   f"(field {names.index(short) + 1} of the header)")
            rows.append((reader.line_num, [row[k].strip() for k in at]))
    except csv.Error as err:
        raise DatasetError(f"{path}: line {reader.line_num} is not valid csv: {err}") from err
    return rows


def _check_image_name(listing: Path, n: int, image: str, image_dir: Path) -> None:
    if not image or os.path.isabs(image):
        raise DatasetError(f"{listing}: line {n} names image {image!r}, not a file name under {image_dir}")


def _cropdisease_classname(folder_name: str) -> str:
    """CropDisease's "Apple___Black_rot" -> "Apple Black rot": every run of underscores becomes one space."""
    return " ".join(folder_name.replace("_", " ").split())


class CropDiseaseDataset(ImageListDataset):
    """BSCD-FSL's CropDisease (PlantVillage), the ImageFolder ``<root>/CropDiseases/dataset/train/<class>/<image>``.

    Test-only: BSCD-FSL samples its episodes from all images. Classes are the sorted class folders
    (labels 0..K-1, as ImageFolder gives them), named by ``_cropdisease_classname``; a class's images
    are the files directly in its folder with an image suffix (``IMAGE_SUFFIXES``), sorted. The
    fingerprint hashes the class names and the image paths (relative to ``train/``) with their labels.
    """

    def __init__(self, root: str | os.PathLike, split: str = "test"):
        _check_split(split, "CropDisease", VARIANT_SPLITS)
        folder = Path(root).expanduser() / "CropDiseases" / "dataset" / "train"
        _require_dir(folder, "CropDisease image folder", CROPDISEASE_LAYOUT)
        subs = _visible(folder, dirs=True)
        if not subs:
            raise DatasetError(f"CropDisease: no class folders in {folder}; expected {CROPDISEASE_LAYOUT}")
        paths: list[Path] = []
        labels: list[int] = []
        for label, sub in enumerate(subs):
            files = [p for p in _visible(sub, dirs=False) if p.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise DatasetError(f"CropDisease: class folder {sub} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += files
            labels += [label] * len(files)
        classnames = [_cropdisease_classname(sub.name) for sub in subs]
        listing = json.dumps([[p.relative_to(folder).as_posix(), y] for p, y in zip(paths, labels)]).encode()
        super().__init__("CropDisease", split, classnames, paths, labels,
                         _digest({"layout": "bscdfsl", "dataset": "CropDisease", "split": split,
                                  "classes": classnames}, listing))


class ISICDataset(ImageListDataset):
    """BSCD-FSL's ISIC: ISIC 2018 Task 3's training ground truth and images under ``<root>/ISIC/`` (``ISIC_LAYOUT``).

    Test-only (all images). The csv (header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, columns found by
    name) gives each image a one-hot row; the label is the index of its 1 among ``ISIC_DIAGNOSES``
    (the csv's column order), whose values are the class names. The csv is read from ``<root>/ISIC/``,
    else from the archive's ``ISIC2018_Task3_Training_GroundTruth/`` folder; ``csv_file`` is the one
    read. Images ``<image>.jpg`` are listed sorted by name. The fingerprint hashes the csv's bytes.
    """

    def __init__(self, root: str | os.PathLike, split: str = "test"):
        _check_split(split, "ISIC", VARIANT_SPLITS)
        folder = Path(root).expanduser() / "ISIC"
        _require_dir(folder, "ISIC dataset folder", ISIC_LAYOUT)
        listing = folder / ISIC_CSV
        unpacked = folder / Path(ISIC_CSV).stem / ISIC_CSV
        if not listing.exists() and unpacked.is_file():
            listing = unpacked
        raw = _read_bytes(listing, "ISIC ground-truth file", ISIC_LAYOUT)
        image_dir = folder / "ISIC2018_Task3_Training_Input"
        _require_dir(image_dir, "ISIC image folder", ISIC_LAYOUT)
        columns = list(ISIC_DIAGNOSES)
        label_of: dict[str, tuple[int, int]] = {}  # image -> (label, line)
        for n, (image, *cells) in _csv_rows(listing, raw, ["image", *columns], ISIC_LAYOUT):
            _check_image_name(listing, n, image, image_dir)
            try:
                values = [float(cell) for cell in cells]
            except ValueError:
                values = []
            if sorted(values) != [0.0] * (len(columns) - 1) + [1.0]:
                raise DatasetError(f"{listing}: line {n} (image {image}) is not one-hot over "
                                   f"{','.join(columns)}: {','.join(cells)}")
            if image in label_of:
                raise DatasetError(f"{listing}: line {n} repeats image {image} of line {label_of[image][1]}")
            label_of[image] = (values.index(1.0), n)
        if not label_of:
            raise DatasetError(f"{listing} lists no images; expected {ISIC_LAYOUT}")
        images = sorted(label_of)
        classnames = list(ISIC_DIAGNOSES.values())
        super().__init__("ISIC", split, classnames, [image_dir / f"{image}.jpg" for image in images],
                         [label_of[image][0] for image in images],
                         _digest({"layout": "bscdfsl", "dataset": "ISIC", "split": split, "classes": classnames},
                                 raw))
        self.csv_file = listing


class ChestXDataset(ImageListDataset):
    """BSCD-FSL's ChestX: NIH ChestX-ray14's ``<root>/ChestX/Data_Entry_2017.csv`` and ``images/`` (``CHESTX_LAYOUT``).

    Test-only (all images kept). As in BSCD-FSL, an image is kept only when its "Finding Labels"
    (findings joined by "|") is exactly one of ``CHESTX_FINDINGS``, whose index is its label; rows
    with several findings or another one ("No Finding", "Pneumonia", ...) are skipped. Class names
    are the findings in lower case; images (grayscale PNGs, returned as RGB) are listed sorted by
    "Image Index". Columns are found by header name. The fingerprint hashes the csv's bytes.
    """

    def __init__(self, root: str | os.PathLike, split: str = "test"):
        _check_split(split, "ChestX", VARIANT_SPLITS)
        folder = Path(root).expanduser() / "ChestX"
        _require_dir(folder, "ChestX dataset folder", CHESTX_LAYOUT)
        listing = folder / "Data_Entry_2017.csv"
        raw = _read_bytes(listing, "ChestX data entry file", CHESTX_LAYOUT)
        image_dir = folder / "images"
        _require_dir(image_dir, "ChestX image folder", CHESTX_LAYOUT)
        index = {finding: label for label, finding in enumerate(CHESTX_FINDINGS)}
        line_of: dict[str, int] = {}
        label_of: dict[str, int] = {}
        for n, (image, findings) in _csv_rows(listing, raw, ["Image Index", "Finding Labels"], CHESTX_LAYOUT):
            _check_image_name(listing, n, image, image_dir)
            if image in line_of:
                raise DatasetError(f"{listing}: line {n} repeats image {image} of line {line_of[image]}")
            line_of[image] = n
            found = [finding.strip() for finding in findings.split("|")]
            if len(found) == 1 and found[0] in index:
                label_of[image] = index[found[0]]
        if not label_of:
            raise DatasetError(f"{listing}: no image has exactly one finding among {', '.join(CHESTX_FINDINGS)}")
        images = sorted(label_of)
        classnames = [finding.lower() for finding in CHESTX_FINDINGS]
        super().__init__("ChestX", split, classnames, [image_dir / image for image in images],
                         [label_of[image] for image in images],
                         _digest({"layout": "bscdfsl", "dataset": "ChestX", "split": split, "classes": classnames},
                                 raw))


def _stratified_parts(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices class by class into len(fractions) seeded parts (sizes rounded per class)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions) / np.sum(fractions)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(bounds * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts[:-1])):
            parts[k] += chunk.tolist()
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


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
        name = canonical_name(name)
        _check_split(split, name)
        source = _torchvision_source(name)
        if source is None:
            raise DatasetError(f"{name} has no torchvision dataset; it is read from {layout_of(name)}")
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
    test_only = name in IMAGENET_VARIANTS or name in BSCDFSL_LAYOUTS
    _check_split(split, name, VARIANT_SPLITS if test_only else SPLITS)
    resolved = data_root(root)
    if resolved is None:
        raise DatasetError(f"DATA_ROOT is not set and no root was given: point DATA_ROOT at the folder "
                           f"holding the datasets; {name} expects {layout_of(name)}")
    if layout not in ("auto", "coop", "torchvision"):
        raise DatasetError(f"layout must be 'auto', 'coop' or 'torchvision', got {layout!r}")
    if layout != "torchvision":
        if name == "ImageNet":
            return ImageNetDataset(resolved, split)
        if name == "FGVCAircraft":
            return FGVCAircraftDataset(resolved, split)
        if name == "CUB":
            return CUBDataset(resolved, split, seed=seed)
        if name in IMAGENET_VARIANTS:
            return ImageNetVariantDataset(resolved, name, split)
        if name in BSCDFSL_LAYOUTS:
            reader = {"CropDisease": CropDiseaseDataset, "ISIC": ISICDataset, "ChestX": ChestXDataset}[name]
            return reader(resolved, split)
    if name in TORCHVISION_DATASETS:
        if layout == "coop":
            raise DatasetError(f"{name} has no CoOp layout; it is read from {layout_of(name)}")
        return TorchvisionDataset(resolved, name, split, download=download, seed=seed)
    entry = COOP_DATASETS.get(name)
    if layout == "torchvision" or (layout == "auto" and entry is not None and entry.torchvision is not None
                                   and not (resolved / entry.folder / entry.split_file).is_file()):
        if layout == "auto" and not download and not (resolved / entry.torchvision.folder).exists():
            absent = "" if resolved.is_dir() else " (no such folder)"
            raise DatasetError(f"{name} not found under {resolved}{absent}: expected the CoOp layout "
                               f"{layout_of(name)}, or the torchvision layout <root>/{entry.torchvision.folder}/... "
                               f"(torchvision.datasets.{entry.torchvision.cls}; download=True fetches it)")
        return TorchvisionDataset(resolved, name, split, download=download, seed=seed)
    return CoOpDataset(resolved, name, split)
