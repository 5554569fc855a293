"""The BSCD-FSL cross-domain few-shot targets (Guo et al. 2020, IBM/cdfsl-benchmark): test-only pools.

Each is one split ("test") of all its images, the pool episodes are drawn from: CropDisease (an
ImageFolder), ISIC 2018 Task 3 (a one-hot csv) and ChestX-ray14 (a findings csv). EuroSAT, the fourth
target, is read from its CoOp folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from lib.data.base import (
    IMAGE_SUFFIXES,
    VARIANT_SPLITS,
    DatasetError,
    ImageListDataset,
    _check_image_name,
    _check_split,
    _csv_rows,
    _digest,
    _read_bytes,
    _require_dir,
    _visible,
)

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
