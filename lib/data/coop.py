"""CoOp's ``DATASETS.md`` layout: nine datasets read from an image folder and a ``split_zhou_*.json``.

    <root>/eurosat/2750/<Class>/<image>.jpg          the image folder
    <root>/eurosat/split_zhou_EuroSAT.json           {"train": [[relpath, label, classname], ...],
                                                      "val": [...], "test": [...]}

Split-file paths are relative to the image folder and labels are 0-based. Each entry also names the
``torchvision.datasets`` class that reads the same dataset (``lib.data.torchvision_source``), the
fallback when the CoOp files are absent.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from lib.data.base import (
    SPLITS,
    DatasetError,
    ImageListDataset,
    TorchvisionSource,
    _check_split,
    _digest,
    _read_bytes,
    _require_dir,
    spelled,
)


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


class CoOpDataset(ImageListDataset):
    """One split of a CoOp dataset read from its ``split_zhou_*.json`` (see ``COOP_DATASETS``).

    ``classnames`` is built from all three splits, so train and test share one label space; the
    fingerprint hashes the dataset name, the split name and the split file's bytes.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str):
        _check_split(split)
        name = spelled(name, COOP_DATASETS) or name
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
