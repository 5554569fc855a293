"""What every dataset reader shares: the item protocol, errors, and the file-reading helpers.

Every dataset (``ImageListDataset`` and ``lib.data.demo_world.DemoDataset``) has ``name``, ``split``,
``classnames`` (index = label), ``labels`` (LongTensor), ``fingerprint`` (a content hash that does not
depend on where the data root is, so moving the data keeps feature caches valid) and
``ds[i] -> (RGB PIL image, label)``. Every failure is a ``DatasetError`` naming the path, file, row or
class at fault.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from lib.runtime.locations import atomic_write

SPLITS = ("train", "val", "test")
VARIANT_SPLITS = ("test",)  # the test-only datasets: ImageNet variants and the BSCD-FSL targets
DESCRIPTOR_DIR = Path(__file__).parent / "descriptors"  # the descriptions written for this project
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's


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


def spelled(name: str, known) -> str | None:
    """The spelling of ``name`` among ``known`` names, matched case-insensitively (None if absent)."""
    return next((k for k in known if k.lower() == str(name).lower()), None)


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

class RenderedImages(torch.utils.data.Dataset):
    """A split rendered into memory (the demo worlds): ``images`` (N, H, W, 3) uint8 and ``labels`` (N,);
    item i is (PIL image, label). ``fingerprint`` hashes ``fingerprint_header()``, the JSON of everything
    that determines the images (``_digest``)."""

    images: np.ndarray
    labels: torch.Tensor

    def fingerprint_header(self) -> dict:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i]), int(self.labels[i])

    @property
    def fingerprint(self) -> str:
        return _digest(self.fingerprint_header())


def read_renders(path: Path, what: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The arrays named in ``shapes`` as an earlier process stored them at ``path`` (``store_renders``), or
    None when the file is absent, unreadable or holds arrays whose leading dimensions differ from
    ``shapes``: the caller renders again (warned, naming the file, unless the file is absent)."""
    if not path.is_file():
        return None
    try:
        with np.load(io.BytesIO(path.read_bytes())) as stored:
            arrays = {k: stored[k] for k in shapes}
    except Exception as err:  # noqa: BLE001 -- any unreadable file is rendered again
        warnings.warn(f"stored {what} renders {path} are unreadable ({type(err).__name__}: {err}); "
                      "rendering again", stacklevel=3)
        return None
    if any(arrays[k].shape[:len(shape)] != tuple(shape) for k, shape in shapes.items()):
        warnings.warn(f"stored {what} renders {path} have the wrong shape; rendering again", stacklevel=3)
        return None
    return arrays


def store_renders(path: Path, what: str, arrays: dict[str, np.ndarray]) -> None:
    """Store a rendered split's ``arrays`` at ``path`` (atomically) for later processes; a read-only cache
    only costs the next process the rendering (warned)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as err:
        warnings.warn(f"{what} renders not stored at {path}: {err}", stacklevel=3)


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
