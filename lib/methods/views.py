"""The views a few-shot run trains and scores on: per-step augmentation, or D-Trap's five fixed views.

* ``train_transform``: RandomResizedCrop (+ flip) of every support image at every step, or the model's
  preprocessing when augmentation is off (the project's baselines; ours).
* ``dtrap_views``: the five views of the D-Trap code's episode loaders (``fslcd_datasets_aug2``,
  from StepSPT's ``*_few_shot_da.py``): 0 resize to size x size; 1 resize + random rotation 45 +
  colour jitter 0.4 + horizontal flip; 2 resize + rotation; 3 resize + jitter; 4 resize + flip. The
  loader draws them once per episode, so every iteration sees the same 5 x N x K images; the
  queries are scored in view 0. Jitter 0.4 is brightness, contrast and colour (saturation) 0.4 each,
  the loaders' ``ImageJitter`` (torchvision's ColorJitter here, which applies the three in a random
  order). Each view ends with the model's own normalisation (ours: the loaders' normalisation is not
  in the stored code).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torchvision.transforms.v2 as T

from lib import models

ROTATION = 45  # D-Trap loaders: RandomRotation(45)
JITTER = 0.4  # D-Trap loaders: ImageJitter(Brightness=0.4, Contrast=0.4, Color=0.4)
N_VIEWS = 5


def train_transform(preprocess, size: int, augment: bool, rrc_scale: tuple[float, float], flip: bool) -> Callable:
    """PIL -> normalised tensor: RandomResizedCrop (+ flip) with the model's own normalisation; the
    model's preprocessing itself when ``augment`` is off."""
    if not augment:
        return preprocess
    flips = [T.RandomHorizontalFlip()] if flip else []
    return T.Compose([T.RGB(), T.RandomResizedCrop(size, scale=rrc_scale, antialias=True), *flips,
                      *models.tensor_tail(preprocess, "augmented views")])


def dtrap_views(preprocess, size: int) -> list[Callable]:
    """The five view transforms (module docstring), each PIL -> normalised (3, size, size) tensor."""
    tail = models.tensor_tail(preprocess, "D-Trap's views")
    resize = [T.RGB(), T.Resize((size, size), antialias=True)]
    rotate, jitter, flip = T.RandomRotation(ROTATION), T.ColorJitter(JITTER, JITTER, JITTER), T.RandomHorizontalFlip()
    return [T.Compose([*resize, *extra, *tail]) for extra in ([], [rotate, jitter, flip], [rotate], [jitter], [flip])]


def query_transform(preprocess, size: int, five_views: bool) -> Callable:
    """How queries are seen: view 0 of ``dtrap_views`` with ``five_views``, else the model's preprocessing."""
    return dtrap_views(preprocess, size)[0] if five_views else preprocess


def five_view_batch(images: Sequence, labels: torch.Tensor, preprocess, size: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(5 x B, 3, size, size) pixels view-major (all images in view 0, then view 1, ...), as the D-Trap
    code stacks them, and their labels; random views draw from torch's global RNG (seed it)."""
    views = dtrap_views(preprocess, size)
    pixels = torch.stack([view(image) for view in views for image in images])
    return pixels, labels.repeat(len(views))
