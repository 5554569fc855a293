"""lib.data: CoOp split files, ImageNet / FGVCAircraft readers, the torchvision fallback, and errors.

Tiny datasets are built in tmp_path from generated JPEGs; the EuroSAT subset tests need DATA_ROOT
(fixture ``eurosat_root``) and skip without it.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lib.data as data
from lib.data import (COOP_DATASETS, CoOpDataset, DatasetError, FGVCAircraftDataset, ImageNetDataset,
                      TorchvisionDataset, load_dataset)

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
    for known in [*COOP_DATASETS, "ImageNet", "FGVCAircraft"]:
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
    parts = data._stratified_parts(labels, (0.6, 0.2, 0.2), seed=0)
    assert [np.bincount(labels[p], minlength=3).tolist() for p in parts] == [[6, 3, 120], [2, 1, 40], [2, 1, 40]]
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))


def test_module_names_no_machine_path():
    source = Path(data.__file__).read_text()
    for fragment in ("/work", "/home/", "/Users/", "/tmp", "C:\\", "shared/data"):
        assert fragment not in source


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
