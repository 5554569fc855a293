"""Fine-tuning CLIP on a few-shot episode: the CDFSL baselines, CC-CDFSL and the D-Trap remedy as switches.

**Fine-tuning** (the baselines of every table): cross-entropy on the support set with the classifier
``softmax(cos(f(x), t_c) / tau)``, ``t_c`` the class-name prompt features (template ensemble), and one
trainable part: CoOp context vectors (``lib.models.prompt_learning``), LayerNorm affine parameters,
LoRA on the attention, or the whole image encoder (``lib.models.tuning``). ``CdfslConfig`` switches on
CC-CDFSL's cycle losses and Semantic Anchor (``lib.methods.cc_cdfsl``) and the D-Trap terms
(``lib.methods.dtrap``): ``perturb`` rescales the visual part's gradient by xi ~ U(perturb_range) each
step (ours: zero mean, so the shortcut carries no signal on average), ``L = L_CE + (xi - 1) P_vis``;
``align`` adds ``w(s) KL(softmax(T t_y / tau_r) || softmax(T f / tau_r))`` with w growing linearly from
0 to ``align_weight`` (ours: the abstract says "gradually").

``evaluate`` scores an episode's queries: accuracy and, where the dataset has object boxes, where the
[CLS] attention and patch-text maps look (``lib.methods.localisation``).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T

from lib import models
from lib.methods import localisation, metrics
from lib.methods.cc_cdfsl import (
    ANCHOR_PATCHES,
    CYCLE_IMAGE_WEIGHT,
    CYCLE_TAU,
    CYCLE_TEXT_WEIGHT,
    anchor_corpus,
    anchor_patches,
    cycle_loss,
    translate,
)
from lib.methods.dtrap import alignment_loss, ce_parts, ramp
from lib.methods.episodes import Episode
from lib.models import prompt_learning, tuning

TUNINGS = ("coop",) + tuning.TRAINABLE
# learning rates per trainable part (Adam); each is ours for the demo scale unless cited
LEARNING_RATES = {
    "coop": 2e-3,  # CoOp's SGD lr 0.002 (here with AdamW)
    "ln": 1e-3,  # ours
    "lora": 1e-3,  # ours (CLIP-LoRA uses 2e-4 for ViT-B/16 over 500 x K iterations)
    "kadaptation": 1e-3,  # ours
    "full": 1e-5,  # ours: a full fine-tune of a pretrained CLIP at 1e-5 is the common setting
}
CDFSL_VERSION = 1  # bump when the training loop changes: part of every cached run's key


@dataclass(frozen=True)
class CdfslConfig:
    """One fine-tuning run on an episode's support set. ``steps=0`` is zero-shot (nothing trains)."""

    tuning: str = "lora"
    steps: int = 50  # ours: full-batch steps on the support set
    lr: float | None = None  # None: LEARNING_RATES[tuning]
    weight_decay: float = 0.0  # ours
    tau: float = 0.01  # CLIP's logit scale 100
    augment: bool = True  # RandomResizedCrop (+ flip) of the support images each step
    rrc_scale: tuple[float, float] = (0.5, 1.0)  # ours
    flip: bool = True
    n_ctx: int = prompt_learning.N_CTX  # CoOp's context length
    # CC-CDFSL
    cycle: bool = False
    cycle_tau: float = CYCLE_TAU
    cycle_text_weight: float = CYCLE_TEXT_WEIGHT
    cycle_image_weight: float = CYCLE_IMAGE_WEIGHT
    anchor_augment: bool = False
    augment_factor: int = 1  # ours: one mixture per patch doubles the corpus
    anchor_shrink: bool = False
    anchor_patches: int = ANCHOR_PATCHES
    # D-Trap
    perturb: bool = False
    perturb_range: tuple[float, float] = (-1.0, 1.0)  # ours: xi ~ U(-1, 1), zero mean
    align: bool = False
    align_weight: float = 1.0  # ours: the final weight of the growing alignment term
    align_tau: float = 0.05  # ours: softer than the classifier, so the class texts' relations show
    seed: int = 0

    def __post_init__(self):
        if self.tuning not in TUNINGS:
            raise ValueError(f"CDFSL parameter tuning={self.tuning!r} is not one of {TUNINGS}")
        if self.steps < 0:
            raise ValueError(f"CDFSL parameter steps={self.steps} must be >= 0")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"CDFSL parameter lr={self.lr} must be > 0")
        for name in ("tau", "cycle_tau", "align_tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be > 0")
        low, high = self.rrc_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"CDFSL parameter rrc_scale={self.rrc_scale} must satisfy 0 < low <= high <= 1")
        if self.perturb_range[0] > self.perturb_range[1]:
            raise ValueError(f"CDFSL parameter perturb_range={self.perturb_range} must be (low, high) with low <= high")
        for name in ("anchor_patches", "augment_factor", "n_ctx"):
            if getattr(self, name) < 1:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be >= 1")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else LEARNING_RATES[self.tuning]

    def settings(self) -> dict:
        detail = {} if self.tuning == "coop" else tuning.settings(self.tuning)
        return {**dataclasses.asdict(self), "learning_rate": self.learning_rate, "tuning_detail": detail,
                "version": CDFSL_VERSION}


STEP_LOG = ("step", "loss", "ce", "visual_part", "cross_modal_part", "margin_visual", "margin_cross_modal",
           "cycle_image", "cycle_text", "align", "align_weight", "visual_scale")


def train_transform(preprocess, size: int, config: CdfslConfig) -> Callable:
    """PIL -> normalised tensor: RandomResizedCrop (+ flip) with the model's own normalisation; the
    model's preprocessing itself when ``augment`` is off."""
    if not config.augment:
        return preprocess
    flip = [T.RandomHorizontalFlip()] if config.flip else []
    return T.Compose([T.RGB(), T.RandomResizedCrop(size, scale=config.rrc_scale, antialias=True), *flip,
                      *models.tensor_tail(preprocess, "augmented views")])


class Tuned:
    """A copy of the image encoder and the text head as fine-tuned on one episode (or untouched)."""

    def __init__(self, handle: models.ModelHandle, classnames: Sequence[str], text: torch.Tensor,
                 config: CdfslConfig):
        self.handle, self.config = handle, config
        self.visual = copy.deepcopy(handle.model.visual).to(handle.device)
        if config.tuning == "coop":
            self.prompts = prompt_learning.PromptLearner(handle.model, handle.tokenizer, classnames,
                                                         n_ctx=config.n_ctx, seed=config.seed).to(handle.device)
            tuning.train_only(self.visual, [])
            self.params = [self.prompts.ctx]
        else:
            self.prompts = None
            self.fixed_text = text.to(handle.device)
            self.params = tuning.prepare(self.visual, config.tuning)

    def text(self) -> torch.Tensor:
        """(C, d) normalised class features of the episode."""
        return self.prompts() if self.prompts is not None else F.normalize(self.fixed_text, dim=-1)

    def tokens(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        visual_trains = self.prompts is None
        with torch.set_grad_enabled(torch.is_grad_enabled() and visual_trains):
            return models.encoder_tokens(self.visual, pixels.to(self.handle.device))


def losses(tuned: Tuned, pixels: torch.Tensor, labels: torch.Tensor, step: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one step and what it logs (``STEP_LOG``)."""
    config = tuned.config
    labels = labels.to(tuned.handle.device)
    tokens = tuned.tokens(pixels)
    text = tuned.text()
    parts = ce_parts(tokens["features"], labels, text, config.tau)
    loss = parts["ce"]
    log = {"ce": parts["ce"].item(), "visual_part": parts["visual"].item(),
           "cross_modal_part": parts["cross_modal"].item(), "margin_visual": parts["margin_visual"].item(),
           "margin_cross_modal": parts["margin_cross_modal"].item(), "visual_scale": 1.0,
           "cycle_image": 0.0, "cycle_text": 0.0, "align": 0.0, "align_weight": 0.0}
    if config.perturb:
        low, high = config.perturb_range
        xi = low + (high - low) * torch.rand((), generator=generator).item()
        loss = loss + (xi - 1) * parts["visual"]
        log["visual_scale"] = xi
    if config.align:
        weight = ramp(step, config.steps, config.align_weight)
        term = alignment_loss(tokens["features"], labels, text, config.align_tau)
        loss = loss + weight * term
        log["align"], log["align_weight"] = term.item(), weight
    if config.cycle:
        patches = localisation.patch_features(tuned.visual, tokens["patches"])
        flat = patches.reshape(-1, patches.shape[-1])
        corpus = (anchor_corpus(patches, labels.cpu(), config.augment_factor, generator) if config.anchor_augment
                  else flat)
        queries = anchor_patches(patches, labels, text, config.anchor_patches) if config.anchor_shrink else flat
        to_text = lambda v: translate(v, text, config.cycle_tau)  # noqa: E731
        to_image = lambda t: translate(t, corpus, config.cycle_tau)  # noqa: E731
        cyc_img = cycle_loss(queries, to_text, to_image)
        cyc_txt = cycle_loss(text, to_image, to_text)
        loss = loss + config.cycle_image_weight * cyc_img + config.cycle_text_weight * cyc_txt
        log["cycle_image"], log["cycle_text"] = cyc_img.item(), cyc_txt.item()
    log["loss"] = loss.item()
    return loss, log


def finetune(handle: models.ModelHandle, images: Sequence, labels: torch.Tensor, classnames: Sequence[str],
             text: torch.Tensor, config: CdfslConfig) -> tuple[Tuned, pd.DataFrame]:
    """Fine-tune on a support set: ``images`` (PIL), episode ``labels`` 0..N-1, the N ``classnames``
    and their prompt features ``text`` (N, d). Full-batch AdamW steps; seeded (torch's global RNG is
    restored afterwards). Returns the tuned model and one history row per step."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} support images but {len(labels)} labels")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        tuned = Tuned(handle, classnames, text, config)
        if config.steps == 0:
            return tuned, pd.DataFrame(columns=list(STEP_LOG))
        transform = train_transform(handle.preprocess, handle.image_size, config)
        optimizer = torch.optim.AdamW(tuned.params, lr=config.learning_rate, weight_decay=config.weight_decay)
        tuned.visual.train()
        rows = []
        for step in range(config.steps):
            pixels = torch.stack([transform(image) for image in images])
            loss, log = losses(tuned, pixels, labels, step, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            rows.append({"step": step, **log})
        tuned.visual.eval()
    return tuned, pd.DataFrame(rows, columns=list(STEP_LOG))


# --------------------------------------------------------------------------------------------------
# Scoring an episode's queries: accuracy and, where boxes are known, where the maps look


@torch.no_grad()
def query_maps(tuned: Tuned, pixels: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """``logits`` (Q, N) of the queries and their two maps (Q, gh, gw): ``cls`` the [CLS]->patch
    attention averaged over heads, ``text`` the patch-to-true-class-text similarity map."""
    tokens = tuned.tokens(pixels)
    text = tuned.text()
    grid = tuple(tuned.visual.grid_size)
    patches = localisation.patch_features(tuned.visual, tokens["patches"])
    return {"logits": (tokens["features"] @ text.T).cpu(),
            "cls": models.attention_maps(tuned.handle, pixels, tuned.visual).mean(1),
            "text": localisation.patch_text_maps(patches, text[labels.to(text.device)], grid).cpu()}


def query_boxes(dataset, indices: Sequence[int], view: int, grid: tuple[int, int]) -> torch.Tensor | None:
    """(Q, gh, gw) box coverage of the query images in the model's view, or None when the dataset has
    no boxes (``lib.data.demo_world.DemoDataset`` has them)."""
    boxes = getattr(dataset, "boxes", None)
    if boxes is None:
        return None
    size = dataset[indices[0]][0].size
    in_view = localisation.box_in_view(boxes[list(indices)], size, view)
    return localisation.box_coverage(in_view, grid, view)


def evaluate(tuned: Tuned, dataset, episode: Episode) -> dict[str, torch.Tensor]:
    """Query accuracy (%) and, with boxes, the localisation scores of both maps and their chance level."""
    pixels = torch.stack([tuned.handle.preprocess(dataset[i][0]) for i in episode.query])
    labels = episode.query_labels
    out = query_maps(tuned, pixels, labels)
    result = {"accuracy": torch.tensor(metrics.accuracy(out["logits"], labels)),
              "predictions": out["logits"].argmax(1)}
    coverage = query_boxes(dataset, episode.query, tuned.handle.image_size, tuple(tuned.visual.grid_size))
    if coverage is not None:
        result["localisation_cls"] = localisation.localisation_score(out["cls"], coverage)
        result["localisation_text"] = localisation.localisation_score(out["text"], coverage)
        result["localisation_chance"] = localisation.chance_score(coverage)
    return result


def finetune_episode(handle: models.ModelHandle, dataset, episode: Episode, text: torch.Tensor,
                     config: CdfslConfig) -> tuple[Tuned, pd.DataFrame]:
    """``finetune`` on ``episode``'s support images of ``dataset``; ``text`` (N, d) its classes' features."""
    images = [dataset[i][0] for i in episode.support]
    names = [dataset.classnames[c] for c in episode.classes]
    return finetune(handle, images, episode.support_labels, names, text, config)


def episode_settings(episode: Episode, config: CdfslConfig, text: torch.Tensor) -> dict:
    """A run's cache-key settings: the episode, every config field and the text head's fingerprint."""
    digest = hashlib.sha256(text.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {**config.settings(), "episode": dataclasses.asdict(episode), "text_head": digest}
