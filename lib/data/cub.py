"""CUB-200-2011 in its official archive layout (``CUB_LAYOUT``)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from lib.data.base import (
    DatasetError,
    ImageListDataset,
    _check_split,
    _digest,
    _key_rest_lines,
    _read_bytes,
    _require_dir,
    _stratified_parts,
)

CUB_LAYOUT = ("<root>/CUB_200_2011/{images,image_class_labels,train_test_split,classes}.txt and "
              "<root>/CUB_200_2011/images/<class folder>/<image>.jpg")


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
