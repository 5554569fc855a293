"""Part-grounded contrastive pretraining of the parts world's tiny CLIP (issue 18, "Pretraining with
part-grounded captions"; CPU, seeded, cached).

The model is open_clip's ``parts-tiny-vit`` (``lib/models/configs``): 64 px images with 8 px patches (an
8x8 patch grid), 3-layer width-128 image and text towers, context length 32. It is trained from
scratch on clean renders of the 12 base classes (``lib.data.parts_world``): never a shifted domain,
never a novel class.

Each step holds full images and *part crops*:

* a full image of class c is positive for c's class captions (``parts_world.TEMPLATES``, weight 1)
  and, with weight ``full_part_weight``, for c's part phrases and c's descriptions (DCLIP and CuPL);
* a part crop is a square around one part's box (the part fills ``1/crop_margin`` of its side,
  centre jittered) cut from the 128 px render; half the crops are instead drawn like LaZSL's test
  crops (square, side U(``random_crop_scale``) of the canvas, anywhere). A crop is positive (weight 1)
  for the phrase of every part it *covers* (``parts_world.COVER``) and for every description, of any
  class, that names such a part value ("pale vorn, which has a blue tail"); with weight
  ``neutral_weight`` (image-to-text only) for every caption about a part it does not cover, so a crop
  prefers no value of a part it cannot see.

Loss: symmetric multi-positive InfoNCE (CLIP's loss with soft targets: an image's target is its
positive weights normalised over the captions, a caption's over the batch's images). AdamW, linear
warm-up then cosine decay; initial logit scale 5 (``lib.models.pretrain``'s lesson: CLIP's 14.3 sits
on a plateau). Two exact speed-ups change no number: the 49,408-row token embedding is trained
through a compact table of the token ids the captions use (``CompactText``), and captions are encoded
up to their longest length (the text tower is causal and pools at the end token).

The recipe was chosen on the measurements of ``lib.experiments.parts_world`` (the first
prototypes: without the test-like random crops and the neutral weight, crops that miss the tail still
ranked "red tail" over "blue tail" by a fixed bias, and 20 such crops outvoted the few that show it).
The checkpoint is cached under ``$COMPANION_CACHE/parts-model/<recipe hash>.pt``; the hash covers the
recipe, the model config, ``parts_images.WORLD_VERSION`` and ``PRETRAIN_VERSION``.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from lib.data import parts_world as world
from lib.data.parts_images import WORLD_VERSION, PartsWorld
from lib.models.architectures import CONFIG_DIR, PARTS_MODEL, untrained
from lib.models.pretrain import cached_checkpoint, checkpoint_record

PRETRAIN_VERSION = 1  # bump when the training loop or the loss changes: part of the recipe hash
RECIPE = {
    "model": PARTS_MODEL,
    "renders_per_class": 200,  # clean train renders of each base class
    "steps": 400,
    "full_per_step": 32,
    "crops_per_step": 64,
    "lr": 2e-3,
    "weight_decay": 0.1,
    "warmup_steps": 50,
    "init_logit_scale": 5.0,  # the digits world's lesson: CLIP's 14.3 sits on a plateau
    "full_part_weight": 0.5,
    "crop_margin": (1.2, 4.0),  # crop side / part side
    "crop_shift": 0.15,  # centre jitter, fraction of the crop side
    # share of crops drawn like the test-time crops instead (square, side U(random_crop_scale) * canvas,
    # anywhere that covers a part): they show parts cut by the crop edge, which are *not* positives
    "random_crop_share": 0.5,
    "random_crop_scale": (0.25, 0.65),
    # random crops may show background only (False) or must cover a part (True: measured worse)
    "random_crop_needs_part": False,
    # i2t weight of every caption naming a part the crop does *not* cover (its phrases and every
    # class's description of it, all values alike): the crop should not prefer any value of a part it
    # cannot see. 0 = off. Without it a crop without the tail still ranks "red tail" over
    # "blue tail" by a fixed bias, and 20 such crops outvote the few that show the tail.
    "neutral_weight": 0.03,
    "seed": 0,
}


# --------------------------------------------------------------------------------------------------
# Captions and their positives


def caption_pool(classes=world.BASE_CLASSES):
    """All captions and, per caption, what makes it true.

    Returns (texts, cls, part_value): ``cls[k]`` the class a caption names (-1 for a part phrase),
    ``part_value[k]`` the (part index, value index) it names, or (-1, -1) for a class caption.
    """
    texts, cls, pv = [], [], []
    for c, cd in enumerate(classes):
        for t in world.TEMPLATES:
            texts.append(t.format(cd.name)); cls.append(c); pv.append((-1, -1))
    for p, part in enumerate(world.PARTS):
        for v, value in enumerate(world.VALUES[part]):
            texts.append(world.PHRASES[(part, value)]); cls.append(-1); pv.append((p, v))
    for fmt in ("dclip", "cupl"):
        for c, sentences in enumerate(world.description_sentences(classes, fmt)):
            for p, s in enumerate(sentences):  # one sentence per part, PARTS order
                texts.append(s); cls.append(c); pv.append((p, classes[c].values[p]))
    return texts, torch.tensor(cls), torch.tensor(pv)


def positive_weights(full_labels, crop_covers, crop_values, cap_cls, cap_pv, full_part_weight, neutral_weight=0.0):
    """(B_full + B_crop, K) positive weights for t2i, and the i2t weights (the same plus neutral ones).

    full_labels (Bf,) class of each full image; crop_covers (Bc, P) bool, the parts a crop covers;
    crop_values (Bc, P) the value index of every part of the crop's object. ``neutral_weight``: i2t
    weight of every caption about a part the crop does not cover (any value, any class).
    """
    is_class_caption = cap_pv[:, 0] < 0
    # full images: class captions 1, the class's part phrases and descriptions full_part_weight
    values = torch.tensor([c.values for c in world.BASE_CLASSES])[full_labels]  # (Bf, P)
    names_value = torch.zeros(len(full_labels), len(cap_cls), dtype=torch.bool)
    for p in range(len(world.PARTS)):
        names_value |= (cap_pv[None, :, 0] == p) & (cap_pv[None, :, 1] == values[:, p:p + 1])
    own = (cap_cls[None, :] == full_labels[:, None])
    w_full = (own & is_class_caption[None]).float() + full_part_weight * (names_value & (own | (cap_cls[None] < 0))).float()
    # crops: phrases and descriptions of every covered part value, weight 1
    hit = torch.zeros(len(crop_covers), len(cap_cls), dtype=torch.bool)
    for p in range(len(world.PARTS)):
        hit |= crop_covers[:, p:p + 1] & (cap_pv[None, :, 0] == p) & (cap_pv[None, :, 1] == crop_values[:, p:p + 1])
    t2i = torch.cat([w_full, hit.float()])
    if not neutral_weight:
        return t2i, t2i
    unseen = torch.zeros_like(hit)
    for p in range(len(world.PARTS)):
        unseen |= ~crop_covers[:, p:p + 1] & (cap_pv[None, :, 0] == p)
    return t2i, torch.cat([w_full, hit.float() + neutral_weight * unseen.float()])


def multi_positive_loss(img, txt, weights, logit_scale, i2t_weights=None):
    """Symmetric InfoNCE with soft multi-positive targets ``weights`` (B, K) >= 0 (``i2t_weights``, if
    given, for the image-to-text direction)."""
    logits = logit_scale * img @ txt.T
    wi = weights if i2t_weights is None else i2t_weights
    rows = wi.sum(1) > 0  # every image has a positive unless a background crop met neutral_weight = 0
    i2t = -(wi[rows] / wi[rows].sum(1, keepdim=True) * F.log_softmax(logits[rows], 1)).sum(1).mean()
    has = weights.sum(0) > 0
    w = weights[:, has] / weights[:, has].sum(0, keepdim=True)
    t2i = -(w * F.log_softmax(logits[:, has], 0)).sum(0).mean()
    return (i2t + t2i) / 2


# --------------------------------------------------------------------------------------------------
# Exact speed-ups of the text tower


class CompactText(torch.nn.Module):
    """Encode a fixed caption set through a compact copy of the token embedding (rows in use only).

    Token ids are remapped in sorted order, so the end token stays the largest id and open_clip's
    argmax pooling still finds it; sequences are cut after the longest caption's end token (the
    causal mask makes the cut exact). ``write_back`` copies the trained rows into the full table.
    """

    def __init__(self, model, tokens: torch.Tensor):
        super().__init__()
        ids = torch.unique(tokens)
        remap = torch.full((model.vocab_size,), -1, dtype=torch.long)
        remap[ids] = torch.arange(len(ids))
        self.length = int(tokens.argmax(-1).max()) + 1
        self.register_buffer("ids", ids)
        self.register_buffer("tokens", remap[tokens][:, :self.length])
        self.weight = torch.nn.Parameter(model.token_embedding.weight.detach()[ids].clone())

    def forward(self, model) -> torch.Tensor:
        L = self.length
        x = F.embedding(self.tokens, self.weight) + model.positional_embedding[:L]
        x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0]), self.tokens.argmax(-1)]
        return x @ model.text_projection

    @torch.no_grad()
    def write_back(self, model) -> None:
        model.token_embedding.weight[self.ids] = self.weight


# --------------------------------------------------------------------------------------------------
# Part crops


def covers(crop, part_boxes) -> np.ndarray:
    """(P,) bool: which part boxes (P, 4) have >= ``parts_world.COVER`` of their area inside ``crop`` (xyxy)."""
    share = world.cover_fraction(torch.tensor([[crop]]), torch.as_tensor(np.asarray(part_boxes))[None])
    return (share[0, 0] >= world.COVER).numpy()


def part_crop_box(part_box, canvas: int, margin, shift: float, rng) -> list[int]:
    """A square around ``part_box`` with side = U(margin) * the part's longer side, centre jittered."""
    x0, y0, x1, y1 = part_box
    side = min(canvas, max(4, int(round(max(x1 - x0, y1 - y0) * rng.uniform(*margin)))))
    cx = (x0 + x1) / 2 + rng.uniform(-shift, shift) * side
    cy = (y0 + y1) / 2 + rng.uniform(-shift, shift) * side
    left = int(np.clip(round(cx - side / 2), 0, canvas - side))
    top = int(np.clip(round(cy - side / 2), 0, canvas - side))
    return [left, top, left + side, top + side]


# --------------------------------------------------------------------------------------------------


def random_crop_box(part_boxes, canvas: int, scale, rng, tries: int = 50, needs_part: bool = True):
    """A test-like random square crop, covering at least one part if ``needs_part`` (None if none found)."""
    for _ in range(tries):
        side = max(4, int(rng.uniform(*scale) * canvas))
        x0, y0 = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
        box = [x0, y0, x0 + side, y0 + side]
        if not needs_part or covers(box, part_boxes).any():
            return box
    return None


def recipe_hash(recipe: dict = RECIPE) -> str:
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    h.update((CONFIG_DIR / f"{recipe['model']}.json").read_bytes())
    h.update(f"world={WORLD_VERSION} pretrain={PRETRAIN_VERSION}".encode())
    return h.hexdigest()[:16]


def pretrain(recipe: dict = RECIPE, progress: bool = True):
    """Train; returns (model, record) with the loss history and timings."""
    t0 = time.perf_counter()
    torch.manual_seed(recipe["seed"])
    rng = np.random.default_rng([recipe["seed"], 17])
    model, preprocess = untrained(recipe["model"])
    tokenizer = open_clip.get_tokenizer(recipe["model"])
    with torch.no_grad():
        model.logit_scale.fill_(math.log(recipe["init_logit_scale"]))

    data = PartsWorld("clean", "train", n_per_class=recipe["renders_per_class"], seed=recipe["seed"])
    full = torch.stack([preprocess(data[i][0]) for i in range(len(data))])
    class_values = torch.tensor([c.values for c in world.BASE_CLASSES])
    texts, cap_cls, cap_pv = caption_pool()
    text = CompactText(model, tokenizer(texts))
    t_data = time.perf_counter() - t0

    model.token_embedding.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad] + [text.weight]
    decay = [p for p in params if p.ndim >= 2 and p is not text.weight]
    no_decay = [p for p in params if p.ndim < 2 or p is text.weight]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=recipe["lr"])
    total, warmup = recipe["steps"], recipe["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))))
    gen = torch.Generator().manual_seed(recipe["seed"])
    canvas = data.spec.canvas
    history = []
    model.train()
    t1, c1 = time.perf_counter(), time.process_time()
    bar = tqdm(total=total, desc="pretrain parts model", disable=None if progress else True)
    for step in range(total):
        fi = torch.randint(len(data), (recipe["full_per_step"],), generator=gen)
        ci = rng.integers(len(data), size=recipe["crops_per_step"])
        cp = rng.integers(len(world.PARTS), size=recipe["crops_per_step"])
        crop_pixels, crop_cov = [], []
        for i, p in zip(ci, cp):
            boxes = data.part_boxes[i].numpy()
            box = None
            if rng.random() < recipe.get("random_crop_share", 0.0):
                box = random_crop_box(boxes, canvas, recipe["random_crop_scale"], rng,
                                      needs_part=recipe.get("random_crop_needs_part", True))
            if box is None:  # a part crop: the chosen part is always a positive
                box = part_crop_box(boxes[p], canvas, recipe["crop_margin"], recipe["crop_shift"], rng)
                cov = covers(box, boxes)
                cov[p] = True
            else:
                cov = covers(box, boxes)
            crop_pixels.append(preprocess(Image.fromarray(data.images[i]).crop(tuple(box))))
            crop_cov.append(cov)
        pixels = torch.cat([full[fi], torch.stack(crop_pixels)])
        weights, i2t_weights = positive_weights(data.labels[fi], torch.from_numpy(np.stack(crop_cov)),
                                                class_values[data.labels[torch.from_numpy(ci)]], cap_cls, cap_pv,
                                                recipe["full_part_weight"], recipe.get("neutral_weight", 0.0))
        img = F.normalize(model.encode_image(pixels), dim=-1)
        txt = F.normalize(text(model), dim=-1)
        loss = multi_positive_loss(img, txt, weights, model.logit_scale.exp().clamp(max=100), i2t_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    text.write_back(model)
    model.eval()
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    record = {"recipe": recipe, "data_seconds": t_data, "train_seconds": t_train,
              "seconds_per_step": t_train / total,
              "cpu_seconds_per_step": c_train / total,  # process CPU time ~ uncontended 1-thread wall time
              "total_seconds": time.perf_counter() - t0,
              "threads": torch.get_num_threads(), "final_loss": float(np.mean(history[-20:])),
              "loss": history, "torch": torch.__version__, "images": len(data)}
    return model, record


def parts_checkpoint(recipe: dict = RECIPE, progress: bool = True) -> Path:
    """Path of the cached parts-world checkpoint, pretraining it first if this recipe has none yet."""
    def train():
        model, record = pretrain(recipe, progress=progress)
        return model, {k: v for k, v in record.items() if k != "loss"} | {"loss_every_10": record["loss"][::10]}

    return cached_checkpoint("parts-model", recipe_hash(recipe), train)


def pretraining_record(recipe: dict = RECIPE) -> dict:
    """What the cached pretraining run recorded (recipe, timings, final loss)."""
    return checkpoint_record("parts-model", recipe_hash(recipe))
