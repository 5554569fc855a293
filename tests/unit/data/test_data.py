"""lib.data: CoOp split files, ImageNet / FGVCAircraft / CUB / ImageNet-variant readers, the torchvision
fallback (and Places365), and errors.

Tiny datasets are built in tmp_path from generated JPEGs; the EuroSAT subset tests need DATA_ROOT
(fixture ``eurosat_root``) and skip without it.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lib.data as data
from lib.data import DatasetError, base, cub, load_dataset
from lib.data.coop import COOP_DATASETS, CoOpDataset
from lib.data.cub import CUB_FILES, CUBDataset
from lib.data.imagenet import IMAGENET_VARIANTS, FGVCAircraftDataset, ImageNetDataset, ImageNetVariantDataset
from lib.data.torchvision_source import TORCHVISION_DATASETS, TorchvisionDataset

CLASSES = ["Annual Crop Land", "Forest", "Sea or Lake"]
FOLDERS = ["AnnualCrop", "Forest", "SeaLake"]
PER_SPLIT = {"train": 2, "val": 1, "test": 1}


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def make_coop(root: Path, name: str = "EuroSAT", per_split: dict[str, int] = PER_SPLIT) -> Path:
    """A tiny CoOp-layout dataset: FOLDERS as class folders, CLASSES as readable names."""
    entry = COOP_DATASETS[name]
    image_dir = root / entry.folder / entry.image_dir
    split: dict[str, list] = {}
    n = 0
    for s, k in per_split.items():
        split[s] = []
        for label, (folder, cname) in enumerate(zip(FOLDERS, CLASSES)):
            for _ in range(k):
                relpath = f"{folder}/{folder}_{n}.jpg"
                write_jpeg(image_dir / relpath, seed=n)
                split[s].append([relpath, label, cname])
                n += 1
    (root / entry.folder / entry.split_file).write_text(json.dumps(split))
    return root


def rewrite_split(root: Path, edit, name: str = "EuroSAT") -> Path:
    entry = COOP_DATASETS[name]
    path = root / entry.folder / entry.split_file
    split = json.loads(path.read_text())
    edit(split)
    path.write_text(json.dumps(split))
    return path


@pytest.fixture
def coop_root(tmp_path) -> Path:
    return make_coop(tmp_path / "data")


# ---------------------------------------------------------------- registry and names


def test_registry_matches_coop_datasets_md():
    layout = {name: (e.folder, e.image_dir, e.split_file) for name, e in COOP_DATASETS.items()}
    assert layout == {
        "OxfordPets": ("oxford_pets", "images", "split_zhou_OxfordPets.json"),
        "Flowers102": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
        "Food101": ("food-101", "images", "split_zhou_Food101.json"),
        "StanfordCars": ("stanford_cars", "", "split_zhou_StanfordCars.json"),
        "SUN397": ("sun397", "SUN397", "split_zhou_SUN397.json"),
        "DTD": ("dtd", "images", "split_zhou_DescribableTextures.json"),
        "EuroSAT": ("eurosat", "2750", "split_zhou_EuroSAT.json"),
        "UCF101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
        "Caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    }
    assert COOP_DATASETS["UCF101"].torchvision is None
    assert {e.torchvision.cls for e in COOP_DATASETS.values() if e.torchvision} == {
        "EuroSAT", "DTD", "Flowers102", "OxfordIIITPet", "Food101", "StanfordCars", "SUN397", "Caltech101"}


@pytest.mark.parametrize("spelling", ["EuroSAT", "eurosat", "EUROSAT", "euroSat"])
def test_names_are_case_insensitive(coop_root, spelling):
    assert CoOpDataset(coop_root, spelling, "train").name == "EuroSAT"
    assert load_dataset(spelling, "test", root=coop_root).name == "EuroSAT"


def test_unknown_name_lists_the_known_ones(coop_root):
    with pytest.raises(DatasetError) as err:
        load_dataset("EuroSAD", "train", root=coop_root)
    message = str(err.value)
    assert "'EuroSAD'" in message
    for known in [*COOP_DATASETS, "ImageNet", "FGVCAircraft", "CUB", "Places365", "ImageNetV2", "ImageNetSketch",
                  "ImageNetA", "ImageNetR"]:
        assert known in message


def test_unknown_split_is_an_error(coop_root):
    with pytest.raises(DatasetError, match="trainval"):
        CoOpDataset(coop_root, "EuroSAT", "trainval")


# ---------------------------------------------------------------- CoOp split files


@pytest.mark.parametrize("name", sorted(COOP_DATASETS))
def test_round_trip(tmp_path, name):
    root = make_coop(tmp_path, name)
    entry = COOP_DATASETS[name]
    image_dir = root / entry.folder / entry.image_dir
    sets = {s: CoOpDataset(root, name, s) for s in PER_SPLIT}
    for split, ds in sets.items():
        assert (ds.name, ds.split) == (name, split)
        assert ds.classnames == CLASSES
        assert len(ds) == len(CLASSES) * PER_SPLIT[split]
        assert ds.labels.dtype == torch.long
        assert ds.labels.tolist() == [c for c in range(len(CLASSES)) for _ in range(PER_SPLIT[split])]
        assert ds.split_file == root / entry.folder / entry.split_file
        assert all(p.is_file() and p.parent.parent == image_dir for p in ds.paths)
        image, label = ds[len(ds) - 1]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
        assert label == len(CLASSES) - 1 and isinstance(label, int)
    assert not set(sets["train"].paths) & set(sets["test"].paths)
    assert len({ds.fingerprint for ds in sets.values()}) == 3


def test_grayscale_image_is_returned_as_rgb(coop_root):
    ds = CoOpDataset(coop_root, "EuroSAT", "train")
    Image.new("L", (5, 7), 128).save(ds.paths[0], format="JPEG")
    image, _ = ds[0]
    assert image.mode == "RGB" and image.size == (5, 7)


def test_classnames_come_from_all_splits(tmp_path):
    root = make_coop(tmp_path)

    def train_without_last_class(split):
        split["train"] = [row for row in split["train"] if row[1] != 2]

    rewrite_split(root, train_without_last_class)
    train = CoOpDataset(root, "EuroSAT", "train")
    assert train.classnames == CLASSES  # "Sea or Lake" is named only by val/test rows
    assert set(train.labels.tolist()) == {0, 1}


def test_fingerprint_follows_the_split_file(coop_root):
    before = CoOpDataset(coop_root, "EuroSAT", "train").fingerprint
    assert CoOpDataset(coop_root, "EuroSAT", "train").fingerprint == before  # deterministic
    rewrite_split(coop_root, lambda split: split["test"].pop())  # another split's rows change
    assert CoOpDataset(coop_root, "EuroSAT", "train").fingerprint != before


def test_fingerprint_ignores_where_the_root_is(coop_root, tmp_path):
    prints = {s: CoOpDataset(coop_root, "EuroSAT", s).fingerprint for s in PER_SPLIT}
    copied = shutil.copytree(coop_root, tmp_path / "elsewhere" / "copy")
    moved = shutil.move(str(coop_root), str(tmp_path / "moved"))
    for root in (copied, moved):
        for s in PER_SPLIT:
            ds = CoOpDataset(root, "EuroSAT", s)
            assert ds.fingerprint == prints[s]
            assert ds.paths[0].is_relative_to(root)


def test_missing_root_names_path_and_layout(tmp_path):
    missing = tmp_path / "no-such-root"
    with pytest.raises(DatasetError) as err:
        CoOpDataset(missing, "EuroSAT", "train")
    assert str(missing) in str(err.value)
    assert "<root>/eurosat/2750/... and <root>/eurosat/split_zhou_EuroSAT.json" in str(err.value)


def test_missing_dataset_folder_names_path_and_layout(tmp_path):
    with pytest.raises(DatasetError) as err:
        CoOpDataset(tmp_path, "DTD", "test")
    assert str(tmp_path / "dtd") in str(err.value)
    assert "<root>/dtd/images/... and <root>/dtd/split_zhou_DescribableTextures.json" in str(err.value)


def test_missing_image_folder_is_named(coop_root):
    shutil.rmtree(coop_root / "eurosat" / "2750")
    with pytest.raises(DatasetError, match="image folder") as err:
        CoOpDataset(coop_root, "EuroSAT", "train")
    assert str(coop_root / "eurosat" / "2750") in str(err.value)


def test_data_root_unset(monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    with pytest.raises(DatasetError) as err:
        load_dataset("EuroSAT", "train")
    assert "DATA_ROOT is not set" in str(err.value)
    assert "<root>/eurosat/split_zhou_EuroSAT.json" in str(err.value)


def test_data_root_from_environment(monkeypatch, coop_root):
    monkeypatch.setenv("DATA_ROOT", str(coop_root))
    ds = load_dataset("EuroSAT", "val")
    assert isinstance(ds, CoOpDataset) and len(ds) == 3 and ds.paths[0].is_relative_to(coop_root)


def test_missing_split_file_is_named(coop_root):
    split_file = coop_root / "eurosat" / "split_zhou_EuroSAT.json"
    split_file.unlink()
    with pytest.raises(DatasetError) as err:
        CoOpDataset(coop_root, "EuroSAT", "train")
    assert str(split_file) in str(err.value)


def test_missing_split_file_without_fallback(tmp_path):
    (tmp_path / "ucf101" / "UCF-101-midframes").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        load_dataset("ucf101", "test", root=tmp_path)
    assert str(tmp_path / "ucf101" / "split_zhou_UCF101.json") in str(err.value)


@pytest.mark.parametrize("edit, culprit", [
    (lambda s: s.pop("val"), "exactly the keys"),
    (lambda s: s.update(trainval=[]), "exactly the keys"),
    (lambda s: s.update(test={}), "'test' must be a list"),
    (lambda s: s["train"].__setitem__(1, ["AnnualCrop/x.jpg", "0", "Annual Crop Land"]), "train[1]"),
    (lambda s: s["val"].__setitem__(2, ["SeaLake/x.jpg", 2]), "val[2]"),
    (lambda s: s["test"].__setitem__(0, ["Forest/x.jpg", -1, "Forest"]), "test[0]"),
    (lambda s: s["test"].__setitem__(1, ["/abs/x.jpg", 1, "Forest"]), "test[1]"),
    (lambda s: s["train"].__setitem__(0, ["AnnualCrop/x.jpg", True, "Annual Crop Land"]), "train[0]"),
])
def test_malformed_split_json_names_file_and_row(coop_root, edit, culprit):
    path = rewrite_split(coop_root, edit)
    with pytest.raises(DatasetError) as err:
        CoOpDataset(coop_root, "EuroSAT", "train")
    assert str(path) in str(err.value) and culprit in str(err.value)


def test_split_file_that_is_not_json(coop_root):
    path = coop_root / "eurosat" / "split_zhou_EuroSAT.json"
    path.write_text('{"train": [')
    with pytest.raises(DatasetError, match="not valid JSON") as err:
        CoOpDataset(coop_root, "EuroSAT", "test")
    assert str(path) in str(err.value)


def test_label_with_two_class_names(coop_root):
    rewrite_split(coop_root, lambda s: s["test"][0].__setitem__(2, "Farmland"))
    with pytest.raises(DatasetError) as err:
        CoOpDataset(coop_root, "EuroSAT", "train")
    message = str(err.value)
    assert "label 0" in message and "'Annual Crop Land'" in message and "'Farmland'" in message
    assert "test[0]" in message


def test_class_name_with_two_labels(coop_root):
    rewrite_split(coop_root, lambda s: s["val"].append(["Forest/extra.jpg", 3, "Forest"]))
    with pytest.raises(DatasetError) as err:
        CoOpDataset(coop_root, "EuroSAT", "train")
    assert "'Forest'" in str(err.value) and "val[3]" in str(err.value)


def test_labels_with_a_gap(coop_root):
    def drop_label_1(split):
        for s in split:
            split[s] = [row for row in split[s] if row[1] != 1]

    rewrite_split(coop_root, drop_label_1)
    with pytest.raises(DatasetError, match=r"label\(s\) \[1\]"):
        CoOpDataset(coop_root, "EuroSAT", "train")


def test_garbage_jpeg_is_named(coop_root):
    ds = CoOpDataset(coop_root, "EuroSAT", "train")
    ds.paths[2].write_bytes(b"this is not a jpeg" * 10)
    ds[1]  # neighbours still load
    with pytest.raises(DatasetError) as err:
        ds[2]
    assert str(ds.paths[2]) in str(err.value)


def test_truncated_jpeg_is_named(coop_root):
    ds = CoOpDataset(coop_root, "EuroSAT", "test")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    ds.paths[0].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with Image.open(ds.paths[0]) as lazy:  # the header alone is fine: only decoding fails
        assert lazy.size == (64, 64)
    with pytest.raises(DatasetError) as err:
        ds[0]
    assert str(ds.paths[0]) in str(err.value)


def test_missing_image_is_named(coop_root):
    ds = CoOpDataset(coop_root, "EuroSAT", "val")
    ds.paths[1].unlink()
    with pytest.raises(DatasetError, match="not found") as err:
        ds[1]
    assert str(ds.paths[1]) in str(err.value)


def test_index_past_the_end_is_an_index_error(coop_root):
    ds = CoOpDataset(coop_root, "EuroSAT", "val")
    with pytest.raises(IndexError):
        ds[len(ds)]


# ---------------------------------------------------------------- ImageNet and FGVCAircraft


@pytest.fixture
def imagenet_root(tmp_path) -> Path:
    folder = tmp_path / "imagenet"
    folder.mkdir()
    # file order differs from the sorted wnid order CoOp uses for labels
    (folder / "classnames.txt").write_text("n02000000 great white shark\nn01000000 tench\nn03000000 goldfish\n")
    n = 0
    for split, k in (("train", 2), ("val", 1)):
        for wnid in ("n01000000", "n02000000", "n03000000"):
            for _ in range(k):
                write_jpeg(folder / "images" / split / wnid / f"{wnid}_{n}.JPEG", seed=n)
                n += 1
    return tmp_path


def test_imagenet_reader(imagenet_root):
    train = load_dataset("imagenet", "train", root=imagenet_root)
    assert isinstance(train, ImageNetDataset) and train.name == "ImageNet"
    assert train.classnames == ["tench", "great white shark", "goldfish"]
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(p.parent.name == "n0%d000000" % (label + 1) for p, label in zip(train.paths, train.labels.tolist()))
    image, label = train[3]
    assert image.mode == "RGB" and label == 1
    test, val = ImageNetDataset(imagenet_root, "test"), ImageNetDataset(imagenet_root, "val")
    assert test.split == "test" and test.paths == val.paths and len(test) == 3  # CoOp: test = val
    assert all("/val/" in p.as_posix() for p in test.paths)
    assert len({train.fingerprint, test.fingerprint}) == 2


def test_imagenet_fingerprint_and_errors(imagenet_root, tmp_path):
    before = ImageNetDataset(imagenet_root, "train").fingerprint
    moved = shutil.copytree(imagenet_root, tmp_path / "moved")
    assert ImageNetDataset(moved, "train").fingerprint == before
    write_jpeg(moved / "imagenet" / "images" / "train" / "n01000000" / "extra.JPEG", seed=99)
    assert ImageNetDataset(moved, "train").fingerprint != before

    stray = imagenet_root / "imagenet" / "images" / "train" / "n09999999"
    stray.mkdir()
    with pytest.raises(DatasetError) as err:
        ImageNetDataset(imagenet_root, "train")
    assert "n09999999" in str(err.value) and "classnames.txt" in str(err.value)

    (imagenet_root / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(DatasetError) as err:
        ImageNetDataset(imagenet_root, "val")
    assert str(imagenet_root / "imagenet" / "classnames.txt") in str(err.value)


VARIANTS = {"train": [("0001", "Boeing 737-700"), ("0002", "A320"), ("0003", "DC-9-30")],
            "val": [("0004", "A320")],
            "test": [("0005", "Boeing 737-700"), ("0006", "DC-9-30")]}


@pytest.fixture
def fgvc_root(tmp_path) -> Path:
    folder = tmp_path / "fgvc_aircraft"
    for n, (split, rows) in enumerate(VARIANTS.items()):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / f"images_variant_{split}.txt").write_text("".join(f"{i} {v}\n" for i, v in rows))
        for image_id, _ in rows:
            write_jpeg(folder / "images" / f"{image_id}.jpg", seed=int(image_id))
    return tmp_path


def test_fgvc_aircraft_reader(fgvc_root):
    train = load_dataset("fgvcaircraft", "train", root=fgvc_root)
    assert isinstance(train, FGVCAircraftDataset) and train.name == "FGVCAircraft"
    assert train.classnames == ["A320", "Boeing 737-700", "DC-9-30"]  # sorted unique over all splits
    assert train.labels.tolist() == [1, 0, 2]
    assert [p.name for p in train.paths] == ["0001.jpg", "0002.jpg", "0003.jpg"]
    image, label = train[0]
    assert image.mode == "RGB" and label == 1
    test = FGVCAircraftDataset(fgvc_root, "test")
    assert test.classnames == train.classnames and test.labels.tolist() == [1, 2]


def test_fgvc_aircraft_variants_file(fgvc_root):
    folder = fgvc_root / "fgvc_aircraft"
    (folder / "variants.txt").write_text("DC-9-30\nBoeing 737-700\nA320\n")
    train = FGVCAircraftDataset(fgvc_root, "train")
    assert train.classnames == ["DC-9-30", "Boeing 737-700", "A320"]
    assert train.labels.tolist() == [1, 2, 0]
    before = train.fingerprint
    (folder / "images_variant_train.txt").write_text("0001 Boeing 737-700\n0002 A320\n")
    assert FGVCAircraftDataset(fgvc_root, "train").fingerprint != before

    (folder / "images_variant_val.txt").write_text("0004 A380\n")
    with pytest.raises(DatasetError) as err:
        FGVCAircraftDataset(fgvc_root, "val")
    assert "'A380'" in str(err.value) and "images_variant_val.txt line 1" in str(err.value)


def test_fgvc_aircraft_errors(fgvc_root):
    folder = fgvc_root / "fgvc_aircraft"
    (folder / "images_variant_val.txt").write_text("0004 A320\n0007\n")
    with pytest.raises(DatasetError, match="line 2") as err:
        FGVCAircraftDataset(fgvc_root, "val")
    assert str(folder / "images_variant_val.txt") in str(err.value)
    (folder / "images_variant_test.txt").unlink()
    with pytest.raises(DatasetError) as err:  # without variants.txt every listing defines the classes
        FGVCAircraftDataset(fgvc_root, "train")
    assert str(folder / "images_variant_test.txt") in str(err.value)


# ---------------------------------------------------------------- torchvision fallback


@pytest.fixture
def torchvision_eurosat(tmp_path) -> Path:
    """Only the torchvision layout: <root>/eurosat/2750/<Class>/*.jpg, no split file; 10 images per class."""
    for c, folder in enumerate(FOLDERS):
        for n in range(10):
            write_jpeg(tmp_path / "eurosat" / "2750" / folder / f"{folder}_{n}.jpg", seed=100 * c + n)
    return tmp_path


def test_torchvision_fallback_is_a_seeded_stratified_split(torchvision_eurosat, tmp_path):
    sets = {s: load_dataset("EuroSAT", s, root=torchvision_eurosat) for s in ("train", "val", "test")}
    assert all(isinstance(ds, TorchvisionDataset) for ds in sets.values())
    for split, per_class in (("train", 6), ("val", 2), ("test", 2)):
        ds = sets[split]
        assert ds.classnames == FOLDERS  # torchvision's class names: the folder names
        assert np.bincount(ds.labels.numpy()).tolist() == [per_class] * 3
        assert all(p.parent.name == FOLDERS[y] for p, y in zip(ds.paths, ds.labels.tolist()))
    paths = [set(ds.paths) for ds in sets.values()]
    assert sum(map(len, paths)) == len(set.union(*paths)) == 30  # disjoint, and every image used
    image, label = sets["val"][0]
    assert image.mode == "RGB" and label == 0

    again = load_dataset("EuroSAT", "train", root=torchvision_eurosat, seed=0)
    assert again.paths == sets["train"].paths and again.fingerprint == sets["train"].fingerprint
    other = load_dataset("EuroSAT", "train", root=torchvision_eurosat, seed=1)
    assert other.paths != sets["train"].paths and other.fingerprint != sets["train"].fingerprint
    moved = shutil.copytree(torchvision_eurosat, tmp_path / "moved")
    assert TorchvisionDataset(moved, "eurosat", "train").fingerprint == sets["train"].fingerprint


def test_torchvision_val_is_carved_from_train(tmp_path):
    """Food101 has only train/test in torchvision: val is a seeded, stratified 20% of train."""
    folder = tmp_path / "food-101"
    meta = {"train": {"apple_pie": [f"apple_pie/{i}" for i in range(10)],
                      "sushi": [f"sushi/{i}" for i in range(5)]},
            "test": {"apple_pie": ["apple_pie/100"], "sushi": ["sushi/100"]}}
    (folder / "meta").mkdir(parents=True)
    for split, classes in meta.items():
        (folder / "meta" / f"{split}.json").write_text(json.dumps(classes))
        for stems in classes.values():
            for n, stem in enumerate(stems):
                write_jpeg(folder / "images" / f"{stem}.jpg", seed=n)
    sets = {s: load_dataset("food101", s, root=tmp_path) for s in ("train", "val", "test")}
    assert all(isinstance(ds, TorchvisionDataset) and ds.classnames == ["apple_pie", "sushi"] for ds in sets.values())
    assert {s: np.bincount(ds.labels.numpy()).tolist() for s, ds in sets.items()} == {
        "train": [8, 4], "val": [2, 1], "test": [1, 1]}
    assert not set(sets["train"].paths) & set(sets["val"].paths)
    assert [p.name for p in sets["test"].paths] == ["100.jpg", "100.jpg"]


def test_coop_layout_wins_over_torchvision(coop_root):
    assert isinstance(load_dataset("EuroSAT", "train", root=coop_root), CoOpDataset)
    forced = load_dataset("EuroSAT", "train", root=coop_root, layout="torchvision")
    assert isinstance(forced, TorchvisionDataset) and forced.classnames == FOLDERS


def test_nothing_on_disk_names_both_layouts(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    for name, tv_folder in (("EuroSAT", "eurosat/2750"), ("Caltech101", "caltech101/101_ObjectCategories")):
        with pytest.raises(DatasetError) as err:
            load_dataset(name, "train", root=root, download=False)
        entry = COOP_DATASETS[name]
        assert entry.split_file in str(err.value) and f"<root>/{tv_folder}" in str(err.value)
        assert str(root) in str(err.value)
    with pytest.raises(DatasetError, match="eurosat/2750"):
        TorchvisionDataset(root, "EuroSAT", "test")
    assert list(root.iterdir()) == []  # nothing was created (torchvision's Caltech101 would mkdir)


def test_torchvision_layout_for_a_dataset_without_one(tmp_path):
    with pytest.raises(DatasetError, match="UCF101 has no torchvision dataset"):
        load_dataset("UCF101", "train", root=tmp_path, layout="torchvision")


def test_stratified_parts_round_per_class():
    labels = np.repeat(np.arange(3), [10, 5, 200])
    parts = base._stratified_parts(labels, (0.6, 0.2, 0.2), seed=0)
    assert [np.bincount(labels[p], minlength=3).tolist() for p in parts] == [[6, 3, 120], [2, 1, 40], [2, 1, 40]]
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))


def test_module_names_no_machine_path():
    for path in Path(data.__file__).parent.glob("*.py"):
        source = path.read_text()
        for fragment in ("/work", "/home/", "/Users/", "/tmp", "C:\\", "shared/data"):
            assert fragment not in source, path


# ---------------------------------------------------------------- CUB-200-2011 (official archive layout)

CUB_FOLDERS = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
CUB_NAMES = ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
CUB_TRAIN, CUB_TEST = 10, 2  # official train / test images per class


def make_cub(root: Path) -> Path:
    """<root>/CUB_200_2011 with 3 classes; image ids interleave the classes, 1 = train, 0 = test."""
    folder = root / "CUB_200_2011"
    images, labels, splits = [], [], []
    image_id = 0
    for k in range(CUB_TRAIN + CUB_TEST):
        for c, cls in enumerate(CUB_FOLDERS):
            image_id += 1
            relpath = f"{cls}/{cls.split('.')[1]}_{image_id:04d}.jpg"
            write_jpeg(folder / "images" / relpath, seed=image_id)
            images.append(f"{image_id} {relpath}")
            labels.append(f"{image_id} {c + 1}")
            splits.append(f"{image_id} {1 if k < CUB_TRAIN else 0}")
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "train_test_split.txt").write_text("\n".join(splits) + "\n")
    (folder / "classes.txt").write_text("".join(f"{c + 1} {cls}\n" for c, cls in enumerate(CUB_FOLDERS)))
    return root


@pytest.fixture
def cub_root(tmp_path) -> Path:
    return make_cub(tmp_path / "data")


def test_cub_reader(cub_root):
    sets = {s: load_dataset("cub", s, root=cub_root) for s in ("train", "val", "test")}
    for split, per_class in (("train", 8), ("val", 2), ("test", CUB_TEST)):
        ds = sets[split]
        assert isinstance(ds, CUBDataset) and (ds.name, ds.split) == ("CUB", split)
        assert ds.classnames == CUB_NAMES
        assert ds.labels.dtype == torch.long
        assert np.bincount(ds.labels.numpy()).tolist() == [per_class] * 3
        assert all(p.parent.name == CUB_FOLDERS[y] and p.is_file() for p, y in zip(ds.paths, ds.labels.tolist()))
    test_ids = set(sets["test"].image_ids)
    assert test_ids == {i for i in range(1, 37) if i > 3 * CUB_TRAIN}  # the official test split
    train, val = set(sets["train"].paths), set(sets["val"].paths)
    assert not train & val and not (train | val) & set(sets["test"].paths)
    assert len(train | val) == 3 * CUB_TRAIN  # the official train split, all of it
    image, label = sets["test"][1]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (8, 8)
    assert label == 1 and isinstance(label, int)
    assert len({ds.fingerprint for ds in sets.values()}) == 3


def test_cub_carving_is_seeded(cub_root):
    first = {s: CUBDataset(cub_root, s, seed=0) for s in ("train", "val", "test")}
    again = {s: CUBDataset(cub_root, s, seed=0) for s in ("train", "val", "test")}
    other = {s: CUBDataset(cub_root, s, seed=1) for s in ("train", "val", "test")}
    for s in ("train", "val", "test"):
        assert again[s].paths == first[s].paths and again[s].fingerprint == first[s].fingerprint
    assert other["val"].paths != first["val"].paths and other["val"].fingerprint != first["val"].fingerprint
    assert set(other["train"].paths) | set(other["val"].paths) == set(first["train"].paths) | set(first["val"].paths)
    assert other["test"].paths == first["test"].paths and other["test"].fingerprint == first["test"].fingerprint


def test_cub_fingerprint_ignores_where_the_root_is(cub_root, tmp_path):
    prints = {s: CUBDataset(cub_root, s).fingerprint for s in ("train", "val", "test")}
    copied = shutil.copytree(cub_root, tmp_path / "elsewhere" / "copy")
    for s in prints:
        ds = CUBDataset(copied, s)
        assert ds.fingerprint == prints[s] and ds.paths[0].is_relative_to(copied)
    labels = copied / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("36 3", "36 2"))  # one test image changes class
    assert CUBDataset(copied, "test").fingerprint != prints["test"]


@pytest.mark.parametrize("file", sorted(CUB_FILES))
def test_cub_missing_file_is_named(cub_root, file):
    path = cub_root / "CUB_200_2011" / file
    path.unlink()
    with pytest.raises(DatasetError) as err:
        CUBDataset(cub_root, "test")
    assert str(path) in str(err.value) and "CUB_200_2011" in str(err.value)


def test_cub_missing_folders_are_named(cub_root, tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("CUB", "test", root=tmp_path / "nothing")
    assert str(tmp_path / "nothing" / "CUB_200_2011") in str(err.value)
    assert cub.CUB_LAYOUT in str(err.value)  # the layout is spelled out
    shutil.rmtree(cub_root / "CUB_200_2011" / "images")
    with pytest.raises(DatasetError, match="image folder") as err:
        CUBDataset(cub_root, "train")
    assert str(cub_root / "CUB_200_2011" / "images") in str(err.value)


def _rewrite_line(path: Path, n: int, text: str | None) -> None:
    """Replace (or with None delete) the 1-based line n of path."""
    lines = path.read_text().splitlines()
    if text is None:
        del lines[n - 1]
    else:
        lines[n - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("file, n, text, culprits", [
    ("images.txt", 4, "4", ["line 4"]),
    ("images.txt", 5, "five 002.Laysan_Albatross/x.jpg", ["line 5", "'five'"]),
    ("images.txt", 6, "5 003.Sooty_Albatross/x.jpg", ["line 6", "repeats id 5", "line 5"]),
    ("images.txt", 2, "2 /abs/x.jpg", ["line 2", "'/abs/x.jpg'"]),
    ("image_class_labels.txt", 3, "3 4", ["line 3", "'4'", "classes.txt"]),
    ("image_class_labels.txt", 3, "3 two", ["line 3", "'two'"]),
    ("image_class_labels.txt", 7, "0 1", ["line 7", "'0'"]),
    ("train_test_split.txt", 8, "8 2", ["line 8", "'2'"]),
    ("classes.txt", 2, "2", ["line 2"]),
    ("classes.txt", 3, "4 003.Sooty_Albatross", ["class id(s) [3]"]),
])
def test_cub_malformed_row_names_file_and_line(cub_root, file, n, text, culprits):
    path = cub_root / "CUB_200_2011" / file
    _rewrite_line(path, n, text)
    with pytest.raises(DatasetError) as err:
        CUBDataset(cub_root, "train")
    message = str(err.value)
    assert str(path) in message
    for culprit in culprits:
        assert culprit in message


@pytest.mark.parametrize("file", ["image_class_labels.txt", "train_test_split.txt"])
def test_cub_image_id_without_label_or_split(cub_root, file):
    _rewrite_line(cub_root / "CUB_200_2011" / file, 10, None)  # the line of image id 10
    with pytest.raises(DatasetError) as err:
        CUBDataset(cub_root, "test")
    message = str(err.value)
    assert "image id 10" in message and "Black_footed_Albatross_0010.jpg" in message and file in message


def test_cub_label_for_an_unlisted_image(cub_root):
    path = cub_root / "CUB_200_2011" / "image_class_labels.txt"
    path.write_text(path.read_text() + "99 1\n")
    with pytest.raises(DatasetError) as err:
        CUBDataset(cub_root, "test")
    assert str(path) in str(err.value) and "line 37" in str(err.value) and "image id 99" in str(err.value)


def test_cub_bad_split(cub_root):
    with pytest.raises(DatasetError) as err:
        load_dataset("CUB", "trainval", root=cub_root)
    assert "CUB" in str(err.value) and "'trainval'" in str(err.value)


def test_cub_classname_cleaning():
    assert cub._cub_classname("001.Black_footed_Albatross") == "Black footed Albatross"
    assert cub._cub_classname("200.Common_Yellowthroat") == "Common Yellowthroat"
    assert cub._cub_classname("Chuck_will_Widow") == "Chuck will Widow"


# ---------------------------------------------------------------- Places365 (torchvision.datasets.Places365)

# The category file's indices are not in sorted order: labels must follow the indices.
PLACES_CATEGORIES = [("/b/bedroom", 0), ("/a/airfield", 1), ("/a/apartment_building/outdoor", 2)]
PLACES_NAMES = ["bedroom", "airfield", "apartment building outdoor"]
PLACES_TRAIN, PLACES_VAL = 5, 2  # per class: train-standard images, val images (our test)


def make_places365(root: Path) -> Path:
    folder = root / "places365"
    folder.mkdir(parents=True)
    (folder / "categories_places365.txt").write_text("".join(f"{c} {i}\n" for c, i in PLACES_CATEGORIES))
    train, val = [], []
    n = 0
    for category, label in PLACES_CATEGORIES:
        for _ in range(PLACES_TRAIN):
            n += 1
            train.append(f"{category}/{n:08d}.jpg {label}")
            write_jpeg(folder / "data_256_standard" / category.strip("/") / f"{n:08d}.jpg", seed=n)
        for _ in range(PLACES_VAL):
            n += 1
            val.append(f"Places365_val_{n:08d}.jpg {label}")
            write_jpeg(folder / "val_256" / f"Places365_val_{n:08d}.jpg", seed=n)
    (folder / "places365_train_standard.txt").write_text("\n".join(train) + "\n")
    (folder / "places365_val.txt").write_text("\n".join(val) + "\n")
    return root


@pytest.fixture
def places_root(tmp_path, monkeypatch) -> Path:
    """Tiny Places365 files; torchvision's md5 check (which tiny files cannot pass) becomes an existence check."""
    import torchvision.datasets.places365 as places365

    monkeypatch.setattr(places365, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    return make_places365(tmp_path / "data")


def test_places365_registry():
    source = TORCHVISION_DATASETS["Places365"]
    assert (source.cls, source.folder, source.subdir) == ("Places365", "places365", "places365")
    assert source.native == ("train-standard", "train-standard", "val") and dict(source.options) == {"small": True}
    assert source.rename("/a/apartment_building/outdoor") == "apartment building outdoor"
    assert source.rename("/s/swimming_pool/indoor") == "swimming pool indoor"
    assert source.rename("/b/bedroom") == "bedroom"


def test_places365_reader(places_root, tmp_path):
    sets = {s: load_dataset("places365", s, root=places_root) for s in ("train", "val", "test")}
    for split, per_class in (("train", 4), ("val", 1), ("test", PLACES_VAL)):
        ds = sets[split]
        assert isinstance(ds, TorchvisionDataset) and (ds.name, ds.split) == ("Places365", split)
        assert ds.classnames == PLACES_NAMES
        assert np.bincount(ds.labels.numpy()).tolist() == [per_class] * 3
    folder = places_root / "places365"
    assert all(p.parent == folder / "val_256" for p in sets["test"].paths)
    for ds in (sets["train"], sets["val"]):  # the label is the category folder's
        assert all(p.parent.relative_to(folder / "data_256_standard").as_posix() == PLACES_CATEGORIES[y][0].strip("/")
                   for p, y in zip(ds.paths, ds.labels.tolist()))
    train, val = set(sets["train"].paths), set(sets["val"].paths)
    assert not train & val and len(train | val) == 3 * PLACES_TRAIN
    image, label = sets["test"][0]
    assert image.mode == "RGB" and image.size == (8, 8) and label == 0

    again = load_dataset("Places365", "val", root=places_root, seed=0)
    assert again.paths == sets["val"].paths and again.fingerprint == sets["val"].fingerprint
    other = load_dataset("Places365", "val", root=places_root, seed=3)
    assert other.paths != sets["val"].paths and other.fingerprint != sets["val"].fingerprint
    copied = shutil.copytree(places_root, tmp_path / "elsewhere")
    for s, ds in sets.items():
        assert TorchvisionDataset(copied, "Places365", s).fingerprint == ds.fingerprint


def test_places365_missing_folder_says_download(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    for split in ("train", "test"):
        with pytest.raises(DatasetError) as err:
            load_dataset("Places365", split, root=root)
        message = str(err.value)
        assert str(root / "places365") in message and "download=True" in message
        assert "categories_places365.txt" in message and "val_256" in message
    assert list(root.iterdir()) == []  # nothing was downloaded or created


@pytest.mark.parametrize("missing, split", [("places365_val.txt", "test"), ("categories_places365.txt", "test"),
                                            ("places365_train_standard.txt", "val")])
def test_places365_missing_file_is_named(places_root, missing, split):
    (places_root / "places365" / missing).unlink()
    with pytest.raises(DatasetError) as err:
        load_dataset("Places365", split, root=places_root)
    assert str(places_root / "places365" / missing) in str(err.value) and "download=True" in str(err.value)


@pytest.mark.parametrize("folder, split", [("val_256", "test"), ("data_256_standard", "train")])
def test_places365_missing_image_folder_is_named(places_root, folder, split):
    shutil.rmtree(places_root / "places365" / folder)
    with pytest.raises(DatasetError, match="image folder") as err:
        load_dataset("Places365", split, root=places_root)
    assert str(places_root / "places365" / folder) in str(err.value) and "download=True" in str(err.value)


def test_places365_malformed_listing(places_root):
    path = places_root / "places365" / "places365_val.txt"
    path.write_text(path.read_text() + "Places365_val_99999999.jpg seven\n")
    with pytest.raises(DatasetError, match="Places365"):
        load_dataset("Places365", "test", root=places_root)
    path.write_text("Places365_val_00000006.jpg 9\n")
    with pytest.raises(DatasetError, match="outside its 3 classes"):
        load_dataset("Places365", "test", root=places_root)


def test_places365_md5_check_still_runs(tmp_path):
    """Without the fixture's patch torchvision checks md5 sums: tiny files fail as 'corrupted', as a DatasetError."""
    root = make_places365(tmp_path)
    with pytest.raises(DatasetError, match="corrupted") as err:
        load_dataset("Places365", "test", root=root)
    assert "categories_places365.txt" in str(err.value)


def test_places365_has_no_coop_layout(places_root):
    with pytest.raises(DatasetError, match="no CoOp layout"):
        load_dataset("Places365", "test", root=places_root, layout="coop")


# ---------------------------------------------------------------- ImageNet variants (test only)

WNIDS = [f"n{k:08d}" for k in range(12)]  # ImageNet order = sorted wnids
WNID_NAMES = [f"class {k}" for k in range(12)]
VARIANT_FOLDERS = {  # the class folders each tiny variant holds
    "ImageNetV2": ["0", "2", "10"],  # class indices: "10" sorts before "2" as text
    "ImageNetSketch": [WNIDS[3], WNIDS[1]],
    "ImageNetA": [WNIDS[11], WNIDS[2], WNIDS[7]],
    "ImageNetR": [WNIDS[5], WNIDS[0]],
}
VARIANT_INDICES = {"ImageNetV2": [0, 2, 10], "ImageNetSketch": [1, 3], "ImageNetA": [2, 7, 11], "ImageNetR": [0, 5]}


def make_variants(root: Path, per_class: int = 2) -> Path:
    (root / "imagenet").mkdir(parents=True)
    order = [7, 0, 11, 3, 5, 1, 9, 2, 10, 4, 8, 6]  # the file is not in wnid order
    (root / "imagenet" / "classnames.txt").write_text("".join(f"{WNIDS[k]} {WNID_NAMES[k]}\n" for k in order))
    n = 0
    for name, folders in VARIANT_FOLDERS.items():
        base = root / IMAGENET_VARIANTS[name].folder
        for sub in folders:
            for _ in range(per_class):
                n += 1
                write_jpeg(base / sub / f"img_{n}.jpeg", seed=n)
        (base / "README.txt").write_text("not a class folder\n")
    return root


@pytest.fixture
def variants_root(tmp_path) -> Path:
    return make_variants(tmp_path / "data")


def test_variant_registry_matches_coop_datasets_md():
    assert {name: v.folder for name, v in IMAGENET_VARIANTS.items()} == {
        "ImageNetV2": "imagenetv2/imagenetv2-matched-frequency-format-val",
        "ImageNetSketch": "imagenet-sketch/images",
        "ImageNetA": "imagenet-adversarial/imagenet-a",
        "ImageNetR": "imagenet-rendition/imagenet-r",
    }
    assert {name for name, v in IMAGENET_VARIANTS.items() if v.subset} == {"ImageNetA", "ImageNetR"}
    assert {name for name, v in IMAGENET_VARIANTS.items() if v.by_index} == {"ImageNetV2"}


@pytest.mark.parametrize("name, spelling", [("ImageNetV2", "imagenetv2"), ("ImageNetSketch", "IMAGENETSKETCH"),
                                            ("ImageNetA", "imageneta"), ("ImageNetR", "ImageNetR")])
def test_variant_reader(variants_root, name, spelling):
    ds = load_dataset(spelling, "test", root=variants_root)
    assert isinstance(ds, ImageNetVariantDataset) and (ds.name, ds.split) == (name, "test")
    indices = VARIANT_INDICES[name]
    if name in ("ImageNetA", "ImageNetR"):  # only the classes present, in ImageNet order, labels 0..K-1
        assert ds.classnames == [WNID_NAMES[i] for i in indices]
        assert ds.labels.tolist() == [k for k in range(len(indices)) for _ in range(2)]
        assert ds.imagenet_indices.tolist() == indices
    else:  # V2 / Sketch: all ImageNet classes, label = ImageNet class index
        assert ds.classnames == WNID_NAMES
        assert ds.labels.tolist() == [i for i in indices for _ in range(2)]
        assert ds.imagenet_indices.tolist() == list(range(12))
    assert ds.imagenet_indices.dtype == torch.long and ds.labels.dtype == torch.long
    assert [WNID_NAMES[i] for i in ds.imagenet_indices.tolist()] == ds.classnames
    imagenet_labels = ds.imagenet_indices[ds.labels]  # 1000-way evaluation: the ImageNet label of each image
    base = variants_root / IMAGENET_VARIANTS[name].folder
    for path, y in zip(ds.paths, imagenet_labels.tolist()):
        folder = path.relative_to(base).parts[0]
        assert folder == (str(y) if name == "ImageNetV2" else WNIDS[y])
    assert len(ds) == 2 * len(indices)
    image, label = ds[len(ds) - 1]
    assert image.mode == "RGB" and image.size == (8, 8) and label == int(ds.labels[-1])


@pytest.mark.parametrize("name", sorted(IMAGENET_VARIANTS))
def test_variant_fingerprint_ignores_where_the_root_is(variants_root, tmp_path, name):
    before = ImageNetVariantDataset(variants_root, name).fingerprint
    copied = shutil.copytree(variants_root, tmp_path / "elsewhere")
    assert ImageNetVariantDataset(copied, name).fingerprint == before
    sub = copied / IMAGENET_VARIANTS[name].folder / VARIANT_FOLDERS[name][0]
    write_jpeg(sub / "extra.jpeg", seed=123)
    assert ImageNetVariantDataset(copied, name).fingerprint != before


def test_variant_fingerprints_differ(variants_root):
    prints = {ImageNetVariantDataset(variants_root, name).fingerprint for name in IMAGENET_VARIANTS}
    assert len(prints) == len(IMAGENET_VARIANTS)


@pytest.mark.parametrize("name", sorted(IMAGENET_VARIANTS))
@pytest.mark.parametrize("split", ["train", "val", "trainval"])
def test_variants_are_test_only(variants_root, name, split):
    for opener in (lambda: load_dataset(name, split, root=variants_root),
                   lambda: ImageNetVariantDataset(variants_root, name, split)):
        with pytest.raises(DatasetError) as err:
            opener()
        assert name in str(err.value) and repr(split) in str(err.value) and "test-only" in str(err.value)


def test_variant_subset_follows_the_folders_present(variants_root):
    """ImageNet-R's classes are the folders on disk (the official code once used a wrong 200-class list)."""
    base = variants_root / IMAGENET_VARIANTS["ImageNetR"].folder
    write_jpeg(base / WNIDS[9] / "new.jpeg", seed=7)
    ds = load_dataset("ImageNetR", "test", root=variants_root)
    assert ds.imagenet_indices.tolist() == [0, 5, 9]
    assert ds.classnames == ["class 0", "class 5", "class 9"] and ds.labels.tolist() == [0, 0, 1, 1, 2]


def test_variant_missing_classnames_is_named(variants_root):
    listing = variants_root / "imagenet" / "classnames.txt"
    listing.unlink()
    for name in IMAGENET_VARIANTS:
        with pytest.raises(DatasetError) as err:
            load_dataset(name, "test", root=variants_root)
        assert str(listing) in str(err.value)


def test_variant_missing_folder_is_named(tmp_path):
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "imagenet" / "classnames.txt").write_text("n00000000 class 0\n")
    for name, variant in IMAGENET_VARIANTS.items():
        with pytest.raises(DatasetError) as err:
            load_dataset(name, "test", root=tmp_path)
        assert str(tmp_path / variant.folder) in str(err.value) and f"<root>/{variant.folder}/" in str(err.value)
    base = tmp_path / IMAGENET_VARIANTS["ImageNetA"].folder
    base.mkdir(parents=True)
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("ImageNetA", "test", root=tmp_path)


@pytest.mark.parametrize("name, folder, culprit", [
    ("ImageNetV2", "12", "not an ImageNet class index 0..11"),
    ("ImageNetV2", "abc", "not an ImageNet class index"),
    ("ImageNetV2", "007", "both ImageNet class 7"),
    ("ImageNetA", "n99999999", "not a WordNet id listed in"),
    ("ImageNetSketch", "n99999999", "not a WordNet id listed in"),
])
def test_variant_stray_class_folder_is_named(variants_root, name, folder, culprit):
    base = variants_root / IMAGENET_VARIANTS[name].folder
    write_jpeg(base / folder / "x.jpeg", seed=1)
    if folder == "007":
        write_jpeg(base / "7" / "y.jpeg", seed=2)
    with pytest.raises(DatasetError) as err:
        load_dataset(name, "test", root=variants_root)
    assert str(base / folder) in str(err.value) and culprit in str(err.value)


def test_variant_empty_class_folder_is_named(variants_root):
    empty = variants_root / IMAGENET_VARIANTS["ImageNetR"].folder / WNIDS[4]
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no images") as err:
        load_dataset("ImageNetR", "test", root=variants_root)
    assert str(empty) in str(err.value)


def test_variants_share_imagenet_classnames_with_imagenet(variants_root):
    for split in ("train", "val"):
        for wnid in WNIDS[:2]:
            write_jpeg(variants_root / "imagenet" / "images" / split / wnid / "a.JPEG", seed=3)
    imagenet = load_dataset("ImageNet", "test", root=variants_root)
    sketch = load_dataset("ImageNetSketch", "test", root=variants_root)
    assert sketch.classnames == imagenet.classnames
    a = load_dataset("ImageNetA", "test", root=variants_root)
    assert a.classnames == [imagenet.classnames[i] for i in a.imagenet_indices.tolist()]


# ---------------------------------------------------------------- names and layouts of the new readers


def test_new_names_have_no_other_reader(tmp_path):
    for name in ("CUB", "ImageNetA"):
        with pytest.raises(DatasetError, match=f"{name} has no torchvision dataset"):
            load_dataset(name, "test", root=tmp_path, layout="torchvision")


def test_data_root_unset_names_the_layout(monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    for name, fragment in (("CUB", "<root>/CUB_200_2011/"), ("Places365", "<root>/places365/"),
                           ("ImageNetR", "<root>/imagenet-rendition/imagenet-r/<wnid>/")):
        with pytest.raises(DatasetError) as err:
            load_dataset(name, "test")
        assert "DATA_ROOT is not set" in str(err.value) and fragment in str(err.value)


# ---------------------------------------------------------------- the EuroSAT subset (DATA_ROOT)

README_CLASSES = ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road",
                  "Industrial Buildings", "Pasture Land", "Permanent Crop Land", "Residential Buildings",
                  "River", "Sea or Lake"]


@pytest.mark.data
def test_eurosat_subset_coop_layout(eurosat_root):
    sets = {s: load_dataset("EuroSAT", s, root=eurosat_root) for s in ("train", "val", "test")}
    assert {s: len(ds) for s, ds in sets.items()} == {"train": 1200, "val": 200, "test": 600}
    for split, per_class in (("train", 120), ("val", 20), ("test", 60)):
        ds = sets[split]
        assert isinstance(ds, CoOpDataset) and ds.classnames == README_CLASSES
        assert np.bincount(ds.labels.numpy()).tolist() == [per_class] * 10
    image, label = sets["train"][0]
    assert image.mode == "RGB" and image.size == (64, 64) and label == 0
    paths = [set(ds.paths) for ds in sets.values()]
    assert len(set.union(*paths)) == 2000


@pytest.mark.data
def test_eurosat_subset_torchvision_layout(eurosat_root):
    sets = {s: TorchvisionDataset(eurosat_root, "EuroSAT", s) for s in ("train", "val", "test")}
    assert sum(len(ds) for ds in sets.values()) == 2000
    assert {s: len(ds) for s, ds in sets.items()} == {"train": 1200, "val": 400, "test": 400}
    assert sets["train"].classnames == ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                                        "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"]
    assert len(set(sets["test"].labels.tolist())) == 10
    image, _ = sets["test"][0]
    assert image.mode == "RGB" and image.size == (64, 64)
    forced = load_dataset("eurosat", "train", root=eurosat_root, layout="torchvision")
    assert forced.fingerprint == sets["train"].fingerprint
