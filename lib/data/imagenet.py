"""ImageNet, its test-only variants (ImageNetV2, -Sketch, -A, -R) and FGVCAircraft in CoOp's folders."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lib.data.base import (
    SPLITS,
    VARIANT_SPLITS,
    DatasetError,
    ImageListDataset,
    _check_split,
    _digest,
    _key_rest_lines,
    _read_bytes,
    _require_dir,
    _visible,
    spelled,
)

IMAGENET_LAYOUT = "<root>/imagenet/classnames.txt and <root>/imagenet/images/{train,val}/<wnid>/..."
IMAGENET_CLASSES = "<root>/imagenet/classnames.txt"
FGVC_LAYOUT = "<root>/fgvc_aircraft/images_variant_{train,val,test}.txt and <root>/fgvc_aircraft/images/<id>.jpg"


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
    take ``logits_1000[:, ds.imagenet_indices]`` from a 1000-way one; ``parent_classnames`` are ImageNet's
    names in label order (what a descriptor file read by key order follows). The fingerprint hashes
    classnames.txt and the image paths relative to the variant's folder.
    """

    def __init__(self, root: str | os.PathLike, name: str, split: str = "test"):
        name = spelled(name, IMAGENET_VARIANTS) or name
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
        self.parent_classnames = [wnid_names[w] for w in wnids]
