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

Every dataset has the same protocol as ``lib.demo.DemoDataset``: ``name``, ``split``,
``classnames`` (index = label), ``paths``, ``labels`` (LongTensor), ``fingerprint`` (a content hash
that does not depend on where the root is, so moving the data keeps feature caches valid), and
``ds[i] -> (RGB PIL image, label)``. Every failure is a ``DatasetError`` naming the culprit.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

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

    def open(self, root: Path, native_split: str | None, download: bool) -> Any:
        import torchvision.datasets

        kwargs: dict[str, Any] = {"download": download}
        if native_split is not None:
            kwargs["split"] = native_split
        return getattr(torchvision.datasets, self.cls)(str(root), **kwargs)


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
FGVC_LAYOUT = "<root>/fgvc_aircraft/images_variant_{train,val,test}.txt and <root>/fgvc_aircraft/images/<id>.jpg"


def canonical_name(name: str) -> str:
    """The registry spelling of a dataset name, looked up case-insensitively."""
    known = [*COOP_DATASETS, "ImageNet", "FGVCAircraft"]
    for candidate in known:
        if candidate.lower() == str(name).lower():
            return candidate
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(known, key=str.lower))}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")


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
            raise DatasetError(f"{self.name}/{self.split}: cannot read image {path}: {err}") from err

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
    rows = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, rest = line.strip().partition(" ")
        if not rest.strip():
            raise DatasetError(f"{listing}: line {n} {line!r} is not '{form}'")
        rows.append((key, rest.strip(), n))
    return rows


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
        listing = folder / "classnames.txt"
        raw = _read_bytes(listing, "ImageNet class list", IMAGENET_LAYOUT)
        wnid_names: dict[str, str] = {}
        for wnid, cname, n in _key_rest_lines(listing, raw, "<wnid> <class name>"):
            if wnid in wnid_names:
                raise DatasetError(f"{listing}: line {n} repeats the class folder {wnid}")
            wnid_names[wnid] = cname
        wnids = sorted(wnid_names)
        split_dir = folder / "images" / ("train" if split == "train" else "val")
        _require_dir(split_dir, f"ImageNet {split} image folder", IMAGENET_LAYOUT)
        index = {wnid: label for label, wnid in enumerate(wnids)}
        paths, labels = [], []
        for sub in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name not in index:
                raise DatasetError(f"ImageNet: class folder {sub} is not listed in {listing}")
            files = sorted(f for f in sub.iterdir() if f.is_file() and not f.name.startswith("."))
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
    elif hasattr(tv, "categories"):  # Caltech101
        pairs = [(Path(tv.root, "101_ObjectCategories", tv.categories[y], f"image_{i:04d}.jpg"), y)
                 for i, y in zip(tv.index, tv.y)]
    else:
        raise DatasetError(f"torchvision.datasets.{type(tv).__name__}: cannot list its image files")
    return sorted((Path(p), int(y)) for p, y in pairs)


class TorchvisionDataset(ImageListDataset):
    """A ``torchvision.datasets`` dataset behind the same protocol (the fallback for ``COOP_DATASETS``).

    Class names are torchvision's (EuroSAT: folder names such as "AnnualCrop"); splits torchvision
    lacks are carved out as ``TorchvisionSource`` describes, with ``seed``. The fingerprint hashes the
    class list and the files (relative to the root) with their labels.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str, download: bool = False, seed: int = 0):
        _check_split(split)
        name = canonical_name(name)
        source = COOP_DATASETS[name].torchvision if name in COOP_DATASETS else None
        if source is None:
            raise DatasetError(f"{name} has no torchvision dataset; it needs the CoOp layout")
        root = Path(root).expanduser()
        layout = f"<root>/{source.folder}/... (torchvision.datasets.{source.cls})"
        if not download and not (root / source.folder).exists():  # checked first: some classes mkdir
            raise DatasetError(f"{name}: {root / source.folder} does not exist; expected {layout}, "
                               "or pass download=True")
        if source.native is None:
            native, parts, fractions = None, SPLITS, (0.6, 0.2, 0.2)
        else:
            native = source.native[SPLITS.index(split)]
            parts = tuple(s for s, n in zip(SPLITS, source.native) if n == native)
            fractions = (0.8, 0.2) if len(parts) == 2 else (1.0,)
        try:
            tv = source.open(root, native, download)
        except (RuntimeError, OSError) as err:
            raise DatasetError(f"{name}: torchvision.datasets.{source.cls} cannot read {root}: {err}; "
                               f"expected {layout}") from err
        samples = _torchvision_samples(tv)
        keep = _stratified_parts(np.asarray([y for _, y in samples]), fractions, seed)[parts.index(split)]
        samples = [samples[k] for k in keep]
        classnames = list(tv.categories if hasattr(tv, "categories") else tv.classes)
        listing = json.dumps([[Path(os.path.relpath(p, root)).as_posix(), y] for p, y in samples]).encode()
        super().__init__(name, split, classnames, [p for p, _ in samples], [y for _, y in samples],
                         _digest({"layout": "torchvision", "dataset": name, "split": split,
                                  "classes": classnames}, listing))


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None, download: bool = False, *,
                 seed: int = 0, layout: Literal["auto", "coop", "torchvision"] = "auto") -> ImageListDataset:
    """One split of a named dataset (case-insensitive) under ``root`` (default ``$DATA_ROOT``).

    ``layout="auto"`` reads the CoOp layout when its split file exists, else the torchvision layout
    when the dataset has one (``download=True`` lets torchvision fetch it; ``seed`` picks the carved
    splits); "coop" and "torchvision" force one reader.
    """
    name = canonical_name(name)
    _check_split(split)
    coop_layout = {"ImageNet": IMAGENET_LAYOUT, "FGVCAircraft": FGVC_LAYOUT}.get(name) or COOP_DATASETS[name].layout()
    resolved = data_root(root)
    if resolved is None:
        raise DatasetError(f"DATA_ROOT is not set and no root was given: point DATA_ROOT at the folder "
                           f"holding the datasets; {name} expects {coop_layout}")
    if layout not in ("auto", "coop", "torchvision"):
        raise DatasetError(f"layout must be 'auto', 'coop' or 'torchvision', got {layout!r}")
    if name == "ImageNet" and layout != "torchvision":
        return ImageNetDataset(resolved, split)
    if name == "FGVCAircraft" and layout != "torchvision":
        return FGVCAircraftDataset(resolved, split)
    entry = COOP_DATASETS.get(name)
    if layout == "torchvision" or (layout == "auto" and entry is not None and entry.torchvision is not None
                                   and not (resolved / entry.folder / entry.split_file).is_file()):
        if layout == "auto" and not download and not (resolved / entry.torchvision.folder).exists():
            raise DatasetError(f"{name} not found under {resolved}: expected the CoOp layout {coop_layout}, "
                               f"or the torchvision layout <root>/{entry.torchvision.folder}/... "
                               f"(torchvision.datasets.{entry.torchvision.cls}; download=True fetches it)")
        return TorchvisionDataset(resolved, name, split, download=download, seed=seed)
    return CoOpDataset(resolved, name, split)
