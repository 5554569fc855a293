"""Contrastive pretraining of the tiny demo CLIP on the demo world's clean domain (CPU, seeded, cached).

The model is open_clip's ``demo-tiny-vit`` (``lib/models/configs``): a 3-layer, width-128 ViT on 32 px
images with 8 px patches (a 4x4 patch grid), and a 3-layer, width-128 text transformer. It is trained
from scratch on clean renders of the pretraining pool of digits, never on a held-out digit or a
shifted domain, within the 3 minutes on 2 cores the foundation issue allows. 4 px patches (an 8x8 grid)
cost about 4x more per step (measured) and do not fit that budget.

Captions are the four demo templates and the class descriptions (``lib/data/descriptors/demo_digits.json``)
for every class. Each step encodes a seeded sample of each class's captions and uses a multi-positive
CLIP loss: the target of an
image is the uniform distribution over the captions of its class, and the target of a caption the
uniform distribution over the batch's images of its class (the symmetric InfoNCE of CLIP, with the
class-level positives a labelled world allows). AdamW with a one-epoch linear warm-up then cosine
decay. The decisive setting is the initial logit scale: with CLIP's 14.3 the image features of
different images start at a mean cosine of 0.99 and the loss sat on a plateau for 150-250 steps
(an earlier design note saw 6 epochs); starting at 5 it leaves the plateau within the first epoch.

The checkpoint is cached under ``$COMPANION_CACHE/demo-model/<recipe hash>.pt``; the hash covers the
recipe, the model config, the descriptors, ``lib.data.demo_world.WORLD_VERSION`` and ``PRETRAIN_VERSION`` (bump it
when the training code changes), so a changed recipe or world retrains and a stale model is never
reused.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from lib.data import demo_world as demo
from lib.models.architectures import CONFIG_DIR, DEMO_MODEL, untrained
from lib.runtime import numerics
from lib.runtime.locations import atomic_write, cache_dir

PRETRAIN_VERSION = 5  # bump when the training loop or the loss changes: part of the recipe hash
RECIPE = {
    "model": DEMO_MODEL,
    "renders_per_digit": 6,  # clean renders of each pretraining digit (new size and position each)
    "epochs": 9,
    "batch_size": 128,
    "lr": 2e-3,
    "weight_decay": 0.1,
    "warmup_epochs": 1,
    "seed": 0,
    "captions_per_class_per_step": 8,  # sampled each step from the class's caption pool
    # CLIP starts at 1/0.07 = 14.3 (open_clip's default); measured here, that start kept the loss on a
    # plateau for 150-250 steps, while 5 (or 2.5) leaves it within the first epoch. Still learned.
    "init_logit_scale": 5.0,
}


def captions_per_class() -> list[list[str]]:
    """The caption pool of each class: the demo templates and the class descriptions."""
    descriptions = demo.descriptions()
    return [[t.format(c) for t in demo.TEMPLATES] + descriptions[i] for i, c in enumerate(demo.CLASSNAMES)]


def recipe_hash(recipe: dict = RECIPE) -> str:
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    h.update((CONFIG_DIR / f"{recipe['model']}.json").read_bytes())
    h.update(demo.DESCRIPTIONS.read_bytes())
    h.update(f"world={demo.WORLD_VERSION} pretrain={PRETRAIN_VERSION}".encode())
    return h.hexdigest()[:16]


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, img_labels: torch.Tensor,
                             txt_labels: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss where every (image, caption) pair of the same class is a positive."""
    logits = logit_scale * img @ txt.T  # (B, K)
    same = (img_labels[:, None] == txt_labels[None, :]).float()
    i2t = -(same / same.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    has_image = same.sum(0) > 0
    t2i_targets = same[:, has_image] / same[:, has_image].sum(0, keepdim=True)
    t2i = -(t2i_targets * F.log_softmax(logits[:, has_image], dim=0)).sum(0).mean()
    return (i2t + t2i) / 2


def _sample_captions(caption_labels: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``per_class`` random captions of every class (seeded)."""
    picks = []
    for c in caption_labels.unique():
        members = torch.nonzero(caption_labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


def pretrain(recipe: dict = RECIPE, progress: bool = True):
    """Train the demo model; returns (model, history) with history holding losses and the wall time."""
    torch.manual_seed(recipe["seed"])
    model, preprocess = untrained(recipe["model"])
    tokenizer = open_clip.get_tokenizer(recipe["model"])
    if recipe.get("init_logit_scale"):
        with torch.no_grad():
            model.logit_scale.fill_(math.log(recipe["init_logit_scale"]))
    pool, _ = demo.digit_pools(recipe["seed"])
    renders = [demo.render(demo.DOMAINS["clean"], pool, seed=1000 + r) for r in range(recipe["renders_per_digit"])]
    images = np.concatenate([r[0] for r in renders])
    labels = torch.from_numpy(np.concatenate([r[1] for r in renders]))
    pixels = torch.stack([preprocess(Image.fromarray(im)) for im in images])
    caption_pool = captions_per_class()
    captions = [c for per_class in caption_pool for c in per_class]
    caption_labels = torch.tensor([i for i, per_class in enumerate(caption_pool) for _ in per_class])
    tokens = tokenizer(captions)

    steps_per_epoch = math.ceil(len(pixels) / recipe["batch_size"])
    total = steps_per_epoch * recipe["epochs"]
    warmup = steps_per_epoch * recipe["warmup_epochs"]
    # Measured: freezing the (49,408-row) token embedding would save 40% of a step but leaves the
    # text features collapsed on the initial plateau; it stays trainable.
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
    )
    generator = torch.Generator().manual_seed(recipe["seed"])
    history, start = [], time.perf_counter()
    model.train()
    bar = tqdm(total=total, desc="pretrain demo model", disable=None if progress else True)
    for epoch in range(recipe["epochs"]):
        order = torch.randperm(len(pixels), generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * recipe["batch_size"]:(step + 1) * recipe["batch_size"]]
            img = F.normalize(model.encode_image(pixels[idx]), dim=-1)
            pick = _sample_captions(caption_labels, recipe["captions_per_class_per_step"], generator)
            txt = F.normalize(model.encode_text(tokens[pick]), dim=-1)
            loss = multi_positive_clip_loss(img, txt, labels[idx], caption_labels[pick], model.logit_scale.exp().clamp(max=100))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            history.append(loss.item())
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model, {"loss": history, "seconds": time.perf_counter() - start, "images": len(pixels)}


def cached_checkpoint(folder: str, key: str, train: Callable[[], tuple[torch.nn.Module, dict]]) -> Path:
    """``<cache>/<folder>/<key>.pt``, trained first by ``train() -> (model, record)`` when absent: the record
    is written beside it as JSON, the checkpoint last (its presence marks a finished run). Training runs with
    ``numerics.CPU_THREADS`` torch threads wherever it is called from, so a checkpoint is the same bytes
    whether the main job, a notebook's kernel or a test trains it first."""
    directory = cache_dir() / folder
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.pt"
    if path.is_file():
        return path
    with numerics.threads(numerics.CPU_THREADS):
        model, record = train()
    record = {**record, "torch_threads": numerics.CPU_THREADS}
    atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(record, indent=1).encode()))
    atomic_write(path, lambda f: torch.save(model.state_dict(), f))
    return path


def checkpoint_record(folder: str, key: str) -> dict:
    """The record ``cached_checkpoint`` wrote beside checkpoint ``key``."""
    return json.loads((cache_dir() / folder / f"{key}.json").read_text())


def demo_checkpoint(recipe: dict = RECIPE, progress: bool = True) -> Path:
    """Path of the cached demo checkpoint, pretraining it first if this recipe has none yet."""
    def train():
        model, history = pretrain(recipe, progress=progress)
        return model, {"recipe": recipe, "seconds": history["seconds"], "images": history["images"],
                       "final_loss": history["loss"][-1], "torch": torch.__version__}

    return cached_checkpoint("demo-model", recipe_hash(recipe), train)


def pretraining_record(recipe: dict = RECIPE) -> dict:
    """What the cached pretraining run recorded (recipe, wall time, final loss)."""
    return checkpoint_record("demo-model", recipe_hash(recipe))
