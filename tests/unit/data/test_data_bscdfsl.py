"""lib.data: the BSCD-FSL target readers (CropDisease, ISIC, ChestX), test-only whole-dataset pools.

Tiny layouts are built in tmp_path from generated 8x8 images (JPEGs; grayscale PNGs for ChestX).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib.data import DatasetError, canonical_name, known_names, layout_of, load_dataset
from lib.data.bscdfsl import (
    BSCDFSL_LAYOUTS,
    CHESTX_FINDINGS,
    ISIC_DIAGNOSES,
    ChestXDataset,
    CropDiseaseDataset,
    ISICDataset,
)

READERS = {"CropDisease": CropDiseaseDataset, "ISIC": ISICDataset, "ChestX": ChestXDataset}


def write_image(path: Path, seed: int, mode: str = "RGB", fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (8, 8, 3) if mode == "RGB" else (8, 8)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(path, format=fmt)


# ---------------------------------------------------------------- tiny layouts

CROP_FOLDERS = ["Tomato___healthy", "Apple___Black_rot", "Corn_(maize)___Common_rust_"]  # not sorted
CROP_NAMES = ["Apple Black rot", "Corn (maize) Common rust", "Tomato healthy"]  # sorted folders' names
CROP_PER_CLASS = {"Apple___Black_rot": 2, "Corn_(maize)___Common_rust_": 1, "Tomato___healthy": 3}


def make_cropdisease(root: Path) -> Path:
    n = 0
    for folder in CROP_FOLDERS:
        for k in range(CROP_PER_CLASS[folder]):
            n += 1
            suffix = ".JPG" if k == 1 else ".jpg"  # PlantVillage mixes suffix cases
            write_image(root / "CropDiseases" / "dataset" / "train" / folder / f"img_{n}{suffix}", seed=n)
    (root / "CropDiseases" / "dataset" / "train" / "Tomato___healthy" / "notes.txt").write_text("not an image\n")
    return root


ISIC_ROWS = [  # (image, label); the csv is not in name order
    ("ISIC_0000003", 1), ("ISIC_0000001", 0), ("ISIC_0000002", 6), ("ISIC_0000000", 3), ("ISIC_0000004", 1),
]
ISIC_HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"


def isic_row(image: str, label: int) -> str:
    return ",".join([image] + ["1.0" if k == label else "0.0" for k in range(7)])


def make_isic(root: Path) -> Path:
    folder = root / "ISIC"
    for n, (image, _) in enumerate(ISIC_ROWS):
        write_image(folder / "ISIC2018_Task3_Training_Input" / f"{image}.jpg", seed=100 + n)
    (folder / "ISIC2018_Task3_Training_Input" / "ATTRIBUTION.txt").write_text("not listed\n")
    lines = [ISIC_HEADER] + [isic_row(image, label) for image, label in ISIC_ROWS]
    (folder / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("\n".join(lines) + "\n")
    return root


CHESTX_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                 "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
CHESTX_ROWS = [  # (image, finding labels); None: skipped by BSCD-FSL, else the label
    ("00000005_000.png", "Pneumothorax", 6),
    ("00000001_000.png", "Cardiomegaly", 1),
    ("00000001_001.png", "Cardiomegaly|Emphysema", None),  # several findings
    ("00000002_000.png", "No Finding", None),
    ("00000003_000.png", "Pneumonia", None),  # not among the 7
    ("00000003_001.png", "Atelectasis", 0),
    ("00000004_000.png", "Effusion|Mass", None),  # several findings, both among the 7
    ("00000004_001.png", "Mass", 4),
    ("00000006_000.png", "Hernia", None),
]
CHESTX_KEPT = sorted((image, label) for image, _, label in CHESTX_ROWS if label is not None)


def make_chestx(root: Path) -> Path:
    folder = root / "ChestX"
    for n, (image, _, _) in enumerate(CHESTX_ROWS):
        write_image(folder / "images" / image, seed=200 + n, mode="L", fmt="PNG")
    lines = [CHESTX_HEADER] + [f"{image},{findings},0,{n},058Y,M,PA,2682,2749,0.143,0.143"
                               for n, (image, findings, _) in enumerate(CHESTX_ROWS)]
    (folder / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    return root


MAKERS = {"CropDisease": make_cropdisease, "ISIC": make_isic, "ChestX": make_chestx}
CSV_FILES = {"ISIC": "ISIC/ISIC2018_Task3_Training_GroundTruth.csv", "ChestX": "ChestX/Data_Entry_2017.csv"}


@pytest.fixture
def bscdfsl_root(tmp_path) -> Path:
    root = tmp_path / "data"
    for make in MAKERS.values():
        make(root)
    return root


# ---------------------------------------------------------------- registry


def test_registry_names_and_layouts():
    assert list(BSCDFSL_LAYOUTS) == ["CropDisease", "ISIC", "ChestX"]
    assert set(BSCDFSL_LAYOUTS) <= set(known_names())
    assert "<root>/CropDiseases/dataset/train/<class folder>/<image>" in layout_of("cropdisease")
    assert "<root>/ISIC/ISIC2018_Task3_Training_GroundTruth.csv" in layout_of("isic")
    assert "<root>/ISIC/ISIC2018_Task3_Training_Input/<image>.jpg" in layout_of("ISIC")
    assert "<root>/ChestX/Data_Entry_2017.csv" in layout_of("chestx")
    assert "<root>/ChestX/images/<Image Index>" in layout_of("CHESTX")
    assert list(ISIC_DIAGNOSES) == ISIC_HEADER.split(",")[1:]
    assert list(ISIC_DIAGNOSES.values()) == ["melanoma", "melanocytic nevus", "basal cell carcinoma",
                                             "actinic keratosis", "benign keratosis", "dermatofibroma",
                                             "vascular lesion"]
    assert CHESTX_FINDINGS == ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
                               "Pneumothorax")


@pytest.mark.parametrize("name", sorted(READERS))
@pytest.mark.parametrize("case", [str.lower, str.upper, str])
def test_names_are_case_insensitive(bscdfsl_root, name, case):
    assert canonical_name(case(name)) == name
    ds = load_dataset(case(name), "test", root=bscdfsl_root)
    assert isinstance(ds, READERS[name]) and (ds.name, ds.split) == (name, "test")


@pytest.mark.parametrize("name", sorted(READERS))
@pytest.mark.parametrize("split", ["train", "val", "trainval"])
def test_test_only(bscdfsl_root, name, split):
    for opener in (lambda: load_dataset(name, split, root=bscdfsl_root),
                   lambda: READERS[name](bscdfsl_root, split)):
        with pytest.raises(DatasetError) as err:
            opener()
        assert name in str(err.value) and repr(split) in str(err.value) and "test-only" in str(err.value)


@pytest.mark.parametrize("name", sorted(READERS))
def test_no_torchvision_reader(bscdfsl_root, name):
    with pytest.raises(DatasetError, match=f"{name} has no torchvision dataset"):
        load_dataset(name, "test", root=bscdfsl_root, layout="torchvision")


def test_data_root_unset_names_the_layout(monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    for name, fragment in (("CropDisease", "<root>/CropDiseases/dataset/train/"), ("ISIC", "<root>/ISIC/"),
                           ("ChestX", "<root>/ChestX/")):
        with pytest.raises(DatasetError) as err:
            load_dataset(name, "test")
        assert "DATA_ROOT is not set" in str(err.value) and fragment in str(err.value)


# ---------------------------------------------------------------- round trips


def check_item(ds, i: int) -> None:
    image, label = ds[i]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
    assert isinstance(label, int) and label == int(ds.labels[i])


def test_cropdisease_round_trip(bscdfsl_root):
    ds = load_dataset("CropDisease", "test", root=bscdfsl_root)
    assert isinstance(ds, CropDiseaseDataset)
    assert ds.classnames == CROP_NAMES
    assert len(ds) == 6 and ds.labels.dtype == torch.long
    assert ds.labels.tolist() == [0, 0, 1, 2, 2, 2]
    folder = bscdfsl_root / "CropDiseases" / "dataset" / "train"
    assert [p.relative_to(folder).parts[0] for p in ds.paths] == [
        "Apple___Black_rot", "Apple___Black_rot", "Corn_(maize)___Common_rust_",
        "Tomato___healthy", "Tomato___healthy", "Tomato___healthy"]
    assert all(p.suffix.lower() == ".jpg" for p in ds.paths)  # notes.txt is not an image
    assert ds.paths == sorted(ds.paths)
    for i in range(len(ds)):
        check_item(ds, i)


def test_isic_round_trip(bscdfsl_root):
    ds = load_dataset("ISIC", "test", root=bscdfsl_root)
    assert isinstance(ds, ISICDataset)
    assert ds.classnames == list(ISIC_DIAGNOSES.values())
    expected = sorted(ISIC_ROWS)
    assert len(ds) == len(ISIC_ROWS) and ds.labels.dtype == torch.long
    assert [p.name for p in ds.paths] == [f"{image}.jpg" for image, _ in expected]
    assert ds.labels.tolist() == [label for _, label in expected]
    assert all(p.parent == bscdfsl_root / "ISIC" / "ISIC2018_Task3_Training_Input" for p in ds.paths)
    assert ds.csv_file == bscdfsl_root / "ISIC" / "ISIC2018_Task3_Training_GroundTruth.csv"
    for i in range(len(ds)):
        check_item(ds, i)
    k = [p.stem for p in ds.paths].index("ISIC_0000002")
    assert ds[k][1] == 6 and ds.classnames[6] == "vascular lesion"


def test_isic_csv_in_the_archive_folder(bscdfsl_root, tmp_path):
    """The ground-truth archive unpacks to ISIC2018_Task3_Training_GroundTruth/<csv>: read it there too."""
    flat = ISICDataset(bscdfsl_root)
    folder = bscdfsl_root / "ISIC"
    unpacked = folder / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    unpacked.parent.mkdir()
    shutil.move(str(folder / "ISIC2018_Task3_Training_GroundTruth.csv"), str(unpacked))
    ds = load_dataset("isic", "test", root=bscdfsl_root)
    assert ds.csv_file == unpacked
    assert ds.paths == flat.paths and ds.labels.tolist() == flat.labels.tolist()
    assert ds.fingerprint == flat.fingerprint


def test_chestx_round_trip_skips_other_rows(bscdfsl_root):
    ds = load_dataset("ChestX", "test", root=bscdfsl_root)
    assert isinstance(ds, ChestXDataset)
    assert ds.classnames == ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
                             "pneumothorax"]
    assert len(ds) == len(CHESTX_KEPT) == 4
    assert [p.name for p in ds.paths] == [image for image, _ in CHESTX_KEPT]
    assert ds.labels.tolist() == [label for _, label in CHESTX_KEPT] == [1, 0, 4, 6]
    skipped = {image for image, _, label in CHESTX_ROWS if label is None}
    assert not skipped & {p.name for p in ds.paths}
    assert all(p.parent == bscdfsl_root / "ChestX" / "images" for p in ds.paths)
    with Image.open(ds.paths[0]) as raw:
        assert raw.mode == "L" and raw.format == "PNG"  # stored grayscale, returned RGB
    for i in range(len(ds)):
        check_item(ds, i)


def test_chestx_columns_found_by_name(tmp_path):
    root = make_chestx(tmp_path)
    listing = root / "ChestX" / "Data_Entry_2017.csv"
    lines = listing.read_text().splitlines()
    swapped = []
    for line in lines:  # swap the first two columns
        first, second, rest = line.split(",", 2)
        swapped.append(",".join([second, first, rest]))
    listing.write_text("\n".join(swapped) + "\n")
    ds = ChestXDataset(root)
    assert [p.name for p in ds.paths] == [image for image, _ in CHESTX_KEPT]
    assert ds.labels.tolist() == [label for _, label in CHESTX_KEPT]


# ---------------------------------------------------------------- fingerprints


@pytest.mark.parametrize("name", sorted(READERS))
def test_fingerprint_ignores_where_the_root_is(bscdfsl_root, tmp_path, name):
    before = load_dataset(name, "test", root=bscdfsl_root)
    again = load_dataset(name, "test", root=bscdfsl_root)
    assert again.fingerprint == before.fingerprint  # deterministic
    copied = shutil.copytree(bscdfsl_root, tmp_path / "elsewhere" / "copy")
    moved = load_dataset(name, "test", root=copied)
    assert moved.fingerprint == before.fingerprint
    assert moved.paths[0].is_relative_to(copied) and moved.labels.tolist() == before.labels.tolist()


def test_fingerprints_follow_the_content(bscdfsl_root):
    prints = {name: load_dataset(name, "test", root=bscdfsl_root).fingerprint for name in READERS}
    assert len(set(prints.values())) == 3
    write_image(bscdfsl_root / "CropDiseases" / "dataset" / "train" / "Apple___Black_rot" / "extra.jpg", seed=9)
    isic = bscdfsl_root / "ISIC" / "ISIC2018_Task3_Training_GroundTruth.csv"
    isic.write_text(isic.read_text() + isic_row("ISIC_0000009", 2) + "\n")
    chestx = bscdfsl_root / "ChestX" / "Data_Entry_2017.csv"
    chestx.write_text(chestx.read_text() + "00000009_000.png,Nodule,0,9,040Y,F,PA,1,1,0.1,0.1\n")
    for name in READERS:
        assert load_dataset(name, "test", root=bscdfsl_root).fingerprint != prints[name]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name, missing", [
    ("CropDisease", "CropDiseases/dataset/train"),
    ("ISIC", "ISIC"),
    ("ChestX", "ChestX"),
])
def test_missing_dataset_folder_names_path_and_layout(tmp_path, name, missing):
    with pytest.raises(DatasetError) as err:
        load_dataset(name, "test", root=tmp_path)
    assert str(tmp_path / missing) in str(err.value) and BSCDFSL_LAYOUTS[name] in str(err.value)


@pytest.mark.parametrize("name, csv_file", sorted(CSV_FILES.items()))
def test_missing_csv_names_path_and_layout(tmp_path, name, csv_file):
    root = MAKERS[name](tmp_path)
    (root / csv_file).unlink()
    with pytest.raises(DatasetError) as err:
        load_dataset(name, "test", root=root)
    assert str(root / csv_file) in str(err.value) and BSCDFSL_LAYOUTS[name] in str(err.value)


@pytest.mark.parametrize("name, image_dir", [("CropDisease", "CropDiseases/dataset/train"),
                                             ("ISIC", "ISIC/ISIC2018_Task3_Training_Input"),
                                             ("ChestX", "ChestX/images")])
def test_missing_image_folder_names_path_and_layout(tmp_path, name, image_dir):
    root = MAKERS[name](tmp_path)
    shutil.rmtree(root / image_dir)
    with pytest.raises(DatasetError, match="image folder") as err:
        load_dataset(name, "test", root=root)
    assert str(root / image_dir) in str(err.value) and BSCDFSL_LAYOUTS[name] in str(err.value)


@pytest.mark.parametrize("row", [
    "ISIC_0000009,1.0,0.0,0.0,1.0,0.0,0.0,0.0",  # two ones
    "ISIC_0000009,0.0,0.0,0.0,0.0,0.0,0.0,0.0",  # no one
    "ISIC_0000009,0.5,0.5,0.0,0.0,0.0,0.0,0.0",  # soft
    "ISIC_0000009,yes,0.0,0.0,0.0,0.0,0.0,0.0",  # not a number
    "ISIC_0000009,1.0,0.0,0.0,0.0,0.0,0.0,",  # an empty cell
])
def test_isic_row_that_is_not_one_hot(tmp_path, row):
    root = make_isic(tmp_path)
    listing = root / "ISIC" / "ISIC2018_Task3_Training_GroundTruth.csv"
    lines = listing.read_text().splitlines()
    lines.insert(3, row)
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="not one-hot") as err:
        ISICDataset(root)
    message = str(err.value)
    assert str(listing) in message and "line 4" in message and "ISIC_0000009" in message


def test_isic_short_row_and_repeated_image(tmp_path):
    root = make_isic(tmp_path)
    listing = root / "ISIC" / "ISIC2018_Task3_Training_GroundTruth.csv"
    text = listing.read_text()
    listing.write_text(text + "ISIC_0000009,1.0,0.0\n")
    with pytest.raises(DatasetError) as err:
        ISICDataset(root)
    assert str(listing) in str(err.value) and "line 7" in str(err.value) and "'BCC'" in str(err.value)
    listing.write_text(text + isic_row("ISIC_0000001", 2) + "\n")
    with pytest.raises(DatasetError, match="repeats image ISIC_0000001 of line 3") as err:
        ISICDataset(root)
    assert "line 7" in str(err.value)


@pytest.mark.parametrize("name, column", [("ISIC", "image"), ("ISIC", "DF"), ("ChestX", "Image Index"),
                                          ("ChestX", "Finding Labels")])
def test_missing_csv_column_is_named(tmp_path, name, column):
    root = MAKERS[name](tmp_path)
    listing = root / CSV_FILES[name]
    header, rest = listing.read_text().split("\n", 1)
    listing.write_text(",".join("Other" if cell == column else cell for cell in header.split(",")) + "\n" + rest)
    with pytest.raises(DatasetError, match="no column") as err:
        load_dataset(name, "test", root=root)
    assert str(listing) in str(err.value) and repr(column) in str(err.value)


@pytest.mark.parametrize("name, csv_file", sorted(CSV_FILES.items()))
def test_empty_csv_is_named(tmp_path, name, csv_file):
    root = MAKERS[name](tmp_path)
    (root / csv_file).write_text("\n")
    with pytest.raises(DatasetError, match="empty") as err:
        load_dataset(name, "test", root=root)
    assert str(root / csv_file) in str(err.value)
    (root / csv_file).write_text((ISIC_HEADER if name == "ISIC" else CHESTX_HEADER) + "\n")
    with pytest.raises(DatasetError) as err:  # a header alone: no image
        load_dataset(name, "test", root=root)
    assert str(root / csv_file) in str(err.value)


def test_chestx_without_kept_rows(tmp_path):
    root = make_chestx(tmp_path)
    listing = root / "ChestX" / "Data_Entry_2017.csv"
    listing.write_text(CHESTX_HEADER + "\n00000001_000.png,No Finding,0,1,058Y,M,PA,1,1,0.1,0.1\n")
    with pytest.raises(DatasetError, match="exactly one finding") as err:
        ChestXDataset(root)
    assert str(listing) in str(err.value)


def test_chestx_repeated_image(tmp_path):
    root = make_chestx(tmp_path)
    listing = root / "ChestX" / "Data_Entry_2017.csv"
    listing.write_text(listing.read_text() + "00000002_000.png,Mass,0,1,058Y,M,PA,1,1,0.1,0.1\n")
    with pytest.raises(DatasetError, match="repeats image 00000002_000.png of line 5") as err:
        ChestXDataset(root)
    assert str(listing) in str(err.value) and f"line {len(CHESTX_ROWS) + 2}" in str(err.value)


def test_cropdisease_empty_class_folder_and_no_classes(tmp_path):
    root = make_cropdisease(tmp_path)
    train = root / "CropDiseases" / "dataset" / "train"
    empty = train / "Grape___healthy"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images\n")
    with pytest.raises(DatasetError, match="holds no images") as err:
        CropDiseaseDataset(root)
    assert str(empty) in str(err.value)
    for sub in list(train.iterdir()):
        shutil.rmtree(sub)
    with pytest.raises(DatasetError, match="no class folders") as err:
        CropDiseaseDataset(root)
    assert str(train) in str(err.value)


@pytest.mark.parametrize("name", sorted(READERS))
def test_missing_image_is_named_when_read(bscdfsl_root, name):
    ds = load_dataset(name, "test", root=bscdfsl_root)
    ds.paths[1].unlink()
    check_item(ds, 0)
    with pytest.raises(DatasetError, match="not found") as err:
        ds[1]
    assert str(ds.paths[1]) in str(err.value)
