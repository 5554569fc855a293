"""FAIR's two views of an unlabeled image and the loader that pairs them (FAIR, Alg. 1 lines 15-18, Sec. 6.1).

* The weak view: the model's own centre crop for FAIR, a RandomResizedCrop for FAIR-g (Sec. 6.1), and
  the N square crops of side U(alpha, beta) x the short side cut from it for pseudo-labelling (Alg. 1
  line 18; seeded by seed, epoch and image index, so a run is reproducible whatever the batch order).
* The strong view A(x): RandomResizedCrop, flip and RandAugment (Sec. 6.1 [11]). The paper gives no
  strength; its authors' previous code (DPA, Externalhappy/DPA, on MUST's ``build_dataset``) builds it
  with timm's ``create_transform``: RandomResizedCrop of scale (0.3, 1), bicubic, flip and timm's
  RandAugment ``rand-m9-mstd0.5-inc1`` (2 ops, magnitude 9 with std 0.5, the "increasing" op set),
  colour jitter off. This module composes the same pieces (torchvision's RandomResizedCrop, timm's
  ``rand_augment_transform`` with timm's own hyper-parameters) before the model's normalisation.

timm's RandAugment draws from Python's ``random`` and NumPy's global generators, not torch's, so
``seeded`` seeds all three for a block and restores them afterwards (DataLoader workers seed their own).
"""
from __future__ import annotations

import contextlib
import random
from typing import Callable

import numpy as np
import torch
import torchvision.transforms.v2 as T
from PIL import Image, ImageOps
from timm.data.auto_augment import rand_augment_transform
from timm.data.transforms import str_to_pil_interp
from torchvision.ops import roi_align

from lib import models
from lib.features import crops

RANDAUGMENT = "rand-m9-mstd0.5-inc1"  # DPA's --aa default (timm's config string)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")  # DPA: --train_interpolation bicubic


@contextlib.contextmanager
def seeded(seed: int):
    """torch's, Python's and NumPy's global generators seeded with ``seed`` inside the block and restored
    after it (torchvision's transforms draw from torch, timm's RandAugment from ``random`` and NumPy)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def randaugment(config: str, size: int, mean, interpolation: str = "bicubic") -> Callable:
    """timm's RandAugment from its config string, with the hyper-parameters timm's ``create_transform``
    gives it: translations of 0.45 x the image side, the normalisation mean as fill, the view's resampling."""
    hparams = {"translate_const": int(size * 0.45), "img_mean": tuple(min(255, round(255 * m)) for m in mean),
               "interpolation": str_to_pil_interp(interpolation)}
    try:
        augment = rand_augment_transform(config, hparams)
    except (AssertionError, ValueError, KeyError, IndexError) as err:
        raise ValueError(f"FAIR parameter randaugment={config!r} is not a timm RandAugment config string "
                         f"such as {RANDAUGMENT!r}: {err or 'unknown section'}") from None
    for op in augment.ops:
        if op.name.startswith("Posterize"):
            op.aug_fn = _posterize
    return augment


def _posterize(img: Image.Image, bits: int, **_) -> Image.Image:
    """timm's posterize, also at 0 bits: timm's PosterizeIncreasing keeps 0 bits at magnitude 10 (m9's
    std-0.5 noise clipped at 10), which Pillow >= 13 rejects; older Pillow (DPA's) gave a black image."""
    if bits >= 8:
        return img
    return ImageOps.posterize(img, bits) if bits >= 1 else img.point(lambda _: 0)


def check(config) -> None:
    """The view settings of a ``FairConfig``: named errors for a bad RandAugment string or interpolation."""
    if config.interpolation not in INTERPOLATIONS:
        raise ValueError(f"FAIR parameter interpolation={config.interpolation!r} is not one of {INTERPOLATIONS}")
    if config.randaugment:
        randaugment(config.randaugment, 224, (0.5, 0.5, 0.5))


def crop_boxes(indices: torch.Tensor, size: int, config, epoch: int) -> torch.Tensor:
    """(B * N, 5) roi_align boxes (batch row, x0, y0, x1, y1) of the weak view's crops: seeded by
    (seed, epoch, image index), side U(alpha, beta) x the short side (Alg. 1 line 18)."""
    spec = crops.CropSpec(config.n_crops, config.alpha, config.beta, seed=config.seed * 1_000_003 + epoch)
    rows = []
    for row, index in enumerate(indices.tolist()):
        boxes = torch.from_numpy(crops.sample_boxes(size, size, spec, index)).float()
        rows.append(torch.cat([torch.full((len(boxes), 1), float(row)), boxes], dim=1))
    return torch.cat(rows)


def cut_crops(weak: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The crops (B * N, 3, S, S) of the weak views (B, 3, S, S), resized bilinearly to S: one bilinear
    sample at each output pixel's centre (``sampling_ratio=1``, ``aligned=True``), so the whole-image box
    gives the image back exactly, as cropping the image and resizing the crop does (WCA's code crops the
    PIL image); two samples a side blurred every crop and took three times as long (benchmark 5b)."""
    size = weak.shape[-1]
    return roi_align(weak, boxes.to(weak), output_size=size, spatial_scale=1.0, sampling_ratio=1, aligned=True)


def transforms_for(preprocess, size: int, config) -> tuple[Callable, Callable]:
    """(weak, strong) PIL -> normalised tensor. Weak: the model's own centre crop (FAIR), or a
    RandomResizedCrop (FAIR-g, Sec. 6.1). Strong: RandomResizedCrop, flip and RandAugment (Sec. 6.1,
    at DPA's strength: see the module docstring)."""
    tail = models.tensor_tail(preprocess, "the strong view")
    interpolation = T.InterpolationMode(config.interpolation)
    rrc = T.RandomResizedCrop(size, scale=config.rrc_scale, interpolation=interpolation, antialias=True)
    head = [T.RGB(), rrc] + ([T.RandomHorizontalFlip()] if config.flip else [])
    augment = [randaugment(config.randaugment, size, tail[-1].mean, config.interpolation)] if config.randaugment else []
    strong = T.Compose(head + augment + tail)
    weak = T.Compose([T.RGB(), rrc] + tail) if config.view == "global" else preprocess
    return weak, strong


class TrainViews(torch.utils.data.Dataset):
    """Item i of the unlabeled set: (weak view, strong view, i, label). The label is only logged
    (pseudo-label accuracy); it never enters a loss."""

    def __init__(self, dataset, weak, strong):
        self.dataset, self.weak, self.strong = dataset, weak, strong

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        image, label = self.dataset[i]
        return self.weak(image), self.strong(image), i, label


def loader(handle: models.ModelHandle, dataset, config) -> torch.utils.data.DataLoader:
    """Shuffled (seeded) batches of (weak view, strong view, index, label) of the unlabeled set."""
    weak_tf, strong_tf = transforms_for(handle.preprocess, handle.image_size, config)
    return torch.utils.data.DataLoader(
        TrainViews(dataset, weak_tf, strong_tf), batch_size=config.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(config.seed), num_workers=config.num_workers)
