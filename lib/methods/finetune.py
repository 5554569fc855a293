"""Fine-tuning CLIP on a few-shot episode: the CDFSL baselines, CC-CDFSL and D-Trap as switches.

**Fine-tuning** (the baselines of every table): cross-entropy on the support set with the classifier
``softmax(cos(f(x), t_c) / tau)``, ``t_c`` the class prompt features, and one trainable part: CoOp
context vectors (``lib.models.prompt_learning``), LayerNorm affine parameters, LoRA on the attention,
CLIP-LoRA's q/k/v adapters, or the whole image encoder (``lib.models.tuning``).

**The D-Trap code's set-up** (zhenyuZ-HUST/CVPR26-Mind-the-Discriminability-Trap, ``lora_mind.py`` and
``lora_base.py``; docs/official_code.md): ``five_views`` trains on the five fixed views of every
support image (``lib.methods.views``) in one batch per iteration and scores the queries in view 0;
``steps_per_shot`` sets the iterations to ``steps_per_shot x K`` (there 250 x K); ``cosine_tmax``
anneals the lr with T_max = cosine_tmax x iterations (there 8) to ``eta_min``; ``checkpoints`` scores
the queries after each fifth of training as the code logs them. ``perturb`` adds the random-prototype
loss and ``align`` the relation alignment, on the schedule of ``lib.methods.dtrap.schedule``.

**CC-CDFSL** (``cycle``, ``anchor_augment``, ``anchor_shrink``: ``lib.methods.cc_cdfsl``). **Ours, from
the D-Trap abstract** (not the authors' method): ``ours_perturb`` rescales the CE split's visual part
by xi ~ U(ours_perturb_range) each step, ``L = L_CE + (xi - 1) P_vis``; ``ours_align`` adds
``w(s) KL(softmax(T t_y / tau_r) || softmax(T f / tau_r))``, w growing linearly to ``ours_align_weight``.

Every run logs the exact CE split (``lib.methods.dtrap.ce_parts``) at every step (``STEP_LOG``);
``lib.methods.episode_runs`` trains on an episode and scores its queries.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from lib import models
from lib.methods import dtrap, localisation, views
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
from lib.models import prompt_learning, tuning

TUNINGS = ("coop",) + tuning.TRAINABLE
# learning rates per trainable part (AdamW); each is ours for the demo scale unless cited
LEARNING_RATES = {
    "coop": 2e-3,  # CoOp's SGD lr 0.002 (here with AdamW)
    "ln": 1e-3,  # ours
    "lora": 1e-3,  # ours (CLIP-LoRA uses 2e-4 for ViT-B/16 over 500 x K iterations)
    "kadaptation": 1e-3,  # ours
    "full": 1e-5,  # ours: a full fine-tune of a pretrained CLIP at 1e-5 is the common setting
    "clip-lora": 2e-4,  # D-Trap code (run_utils.py --lr 2e-4)
}
CDFSL_VERSION = 2  # bump when the training loop changes: part of every cached run's key


@dataclass(frozen=True)
class CdfslConfig:
    """One fine-tuning run on an episode's support set. ``steps=0`` is zero-shot (nothing trains)."""

    tuning: str = "lora"
    steps: int = 50  # ours: full-batch steps on the support set
    steps_per_shot: int = 0  # > 0: steps_per_shot x K iterations instead of ``steps`` (D-Trap code: 250)
    lr: float | None = None  # None: LEARNING_RATES[tuning]
    weight_decay: float = 0.0  # ours (D-Trap code: 1e-2)
    cosine_tmax: int = 0  # > 0: cosine annealing, T_max = cosine_tmax x iterations (D-Trap code: 8); 0: constant lr (ours)
    eta_min: float = 1e-6  # D-Trap code: the cosine schedule's floor
    tau: float = 0.01  # CLIP's logit scale 100 (D-Trap code: logit_scale = 100)
    augment: bool = True  # RandomResizedCrop (+ flip) of the support images each step
    rrc_scale: tuple[float, float] = (0.5, 1.0)  # ours
    flip: bool = True
    five_views: bool = False  # D-Trap code: five fixed views per support image, queries in view 0 (replaces augment)
    checkpoints: int = 1  # the queries scored after each 1/checkpoints of training (D-Trap code: 5)
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
    # D-Trap, as its authors' code computes it (lib.methods.dtrap)
    perturb: bool = False  # random-prototype perturbation L_ad
    perturb_weight: float = dtrap.PERTURB_WEIGHT
    align: bool = False  # relation alignment L_ra
    align_weight: float = dtrap.RELATION_WEIGHT
    fuse_fraction: float = dtrap.FUSE_FRACTION
    stop_fifths: int = dtrap.STOP_FIFTHS
    # ours, from the D-Trap abstract
    ours_perturb: bool = False
    ours_perturb_range: tuple[float, float] = (-1.0, 1.0)  # ours: xi ~ U(-1, 1), zero mean
    ours_align: bool = False
    ours_align_weight: float = 1.0  # ours: the final weight of the growing alignment term
    ours_align_tau: float = 0.05  # ours: softer than the classifier, so the class texts' relations show
    seed: int = 0

    def __post_init__(self):
        if self.tuning not in TUNINGS:
            raise ValueError(f"CDFSL parameter tuning={self.tuning!r} is not one of {TUNINGS}")
        for name in ("steps", "steps_per_shot", "cosine_tmax"):
            if getattr(self, name) < 0:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be >= 0")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"CDFSL parameter lr={self.lr} must be > 0")
        for name in ("tau", "cycle_tau", "ours_align_tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be > 0")
        for name in ("eta_min", "weight_decay", "perturb_weight", "align_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be >= 0")
        if not 0 < self.fuse_fraction <= 1:
            raise ValueError(f"CDFSL parameter fuse_fraction={self.fuse_fraction} must lie in (0, 1]")
        if not 0 <= self.stop_fifths <= 5:
            raise ValueError(f"CDFSL parameter stop_fifths={self.stop_fifths} must lie in 0..5")
        low, high = self.rrc_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"CDFSL parameter rrc_scale={self.rrc_scale} must satisfy 0 < low <= high <= 1")
        if self.ours_perturb_range[0] > self.ours_perturb_range[1]:
            raise ValueError(f"CDFSL parameter ours_perturb_range={self.ours_perturb_range} must be (low, high) "
                             "with low <= high")
        for name in ("anchor_patches", "augment_factor", "n_ctx", "checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"CDFSL parameter {name}={getattr(self, name)} must be >= 1")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else LEARNING_RATES[self.tuning]

    def iterations(self, shots: int) -> int:
        """Training iterations on a K-shot support set: ``steps_per_shot x K``, else ``steps``."""
        return self.steps_per_shot * shots if self.steps_per_shot else self.steps

    def settings(self) -> dict:
        detail = {} if self.tuning == "coop" else tuning.settings(self.tuning)
        return {**dataclasses.asdict(self), "learning_rate": self.learning_rate, "tuning_detail": detail,
                "version": CDFSL_VERSION}


STEP_LOG = ("step", "loss", "ce", "visual_part", "cross_modal_part", "margin_visual", "margin_cross_modal",
            "perturb", "align", "fuse", "lr", "cycle_image", "cycle_text", "ours_align", "ours_align_weight",
            "ours_visual_scale")


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

    def query_transform(self) -> Callable:
        """PIL -> pixels of a query image (view 0 of the five views, or the model's preprocessing)."""
        return views.query_transform(self.handle.preprocess, self.handle.image_size, self.config.five_views)


def losses(tuned: Tuned, pixels: torch.Tensor, labels: torch.Tensor, step: int, generator: torch.Generator,
           iterations: int | None = None, plain: tuple[torch.Tensor, torch.Tensor] | None = None,
           memory: dict | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of iteration ``step`` of ``iterations`` (default ``config.steps``) and what it
    logs (``STEP_LOG`` less step and lr). ``plain``: (pixels, labels) of the un-augmented support
    images, needed by ``align``; ``memory`` carries the previous iteration's visual relations."""
    config = tuned.config
    iterations = config.steps if iterations is None else iterations
    memory = {} if memory is None else memory
    labels = labels.to(tuned.handle.device)
    tokens = tuned.tokens(pixels)
    features = tokens["features"]
    text = tuned.text()
    parts = dtrap.ce_parts(features, labels, text, config.tau)
    loss = parts["ce"]
    log = {"ce": parts["ce"].item(), "visual_part": parts["visual"].item(),
           "cross_modal_part": parts["cross_modal"].item(), "margin_visual": parts["margin_visual"].item(),
           "margin_cross_modal": parts["margin_cross_modal"].item(), "perturb": 0.0, "align": 0.0, "fuse": 0.0,
           "cycle_image": 0.0, "cycle_text": 0.0, "ours_align": 0.0, "ours_align_weight": 0.0,
           "ours_visual_scale": 1.0}
    terms = dtrap.schedule(step, iterations, config.stop_fifths)
    if config.perturb and "perturb" in terms:
        prototypes = dtrap.random_prototypes(features, len(text), generator)
        term = dtrap.perturbation_loss(features, labels, prototypes, 1 / config.tau)
        loss = loss + config.perturb_weight * term
        log["perturb"] = term.item()
    if config.align and ("relation" in terms or step == 0):
        if plain is None:
            raise ValueError("CDFSL parameter align=True needs the un-augmented support images (plain)")
        plain_features = tuned.tokens(plain[0])["features"]
        visual, text_relations = dtrap.relations(features, labels, plain_features, plain[1].to(labels.device), text)
        if "relation" in terms and "relations" in memory:
            log["fuse"] = dtrap.fuse_weight(step, iterations, config.fuse_fraction)
            term = dtrap.relation_loss(visual, dtrap.relation_target(memory["relations"], text_relations, log["fuse"]))
            loss = loss + config.align_weight * term
            log["align"] = term.item()
        memory["relations"] = visual.detach()
    if config.ours_perturb:
        low, high = config.ours_perturb_range
        xi = low + (high - low) * torch.rand((), generator=generator).item()
        loss = loss + (xi - 1) * parts["visual"]
        log["ours_visual_scale"] = xi
    if config.ours_align:
        weight = dtrap.ramp(step, iterations, config.ours_align_weight)
        term = dtrap.alignment_loss(features, labels, text, config.ours_align_tau)
        loss = loss + weight * term
        log["ours_align"], log["ours_align_weight"] = term.item(), weight
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


Monitor = Callable[[int, Tuned], None]


def finetune(handle: models.ModelHandle, images: Sequence, labels: torch.Tensor, classnames: Sequence[str],
             text: torch.Tensor, config: CdfslConfig, monitor: Monitor | None = None
             ) -> tuple[Tuned, pd.DataFrame]:
    """Fine-tune on a support set: ``images`` (PIL), episode ``labels`` 0..N-1, the N ``classnames``
    and their prompt features ``text`` (N, d). Full-batch AdamW iterations; seeded (torch's global RNG
    is restored afterwards). ``monitor(done, tuned)`` is called, the encoder in eval mode, after each
    checkpoint but the last (``dtrap.checkpoint_steps``). Returns the tuned model and one history row
    per iteration."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} support images but {len(labels)} labels")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        tuned = Tuned(handle, classnames, text, config)
        shots = len(labels) // max(1, len(set(labels.tolist())))
        iterations = config.iterations(shots)
        if iterations == 0:
            return tuned, pd.DataFrame(columns=list(STEP_LOG))
        query = tuned.query_transform()
        plain_pixels = torch.stack([query(image) for image in images])
        transform = None
        if config.five_views:
            batch = views.five_view_batch(images, labels, handle.preprocess, handle.image_size)
        else:
            transform = views.train_transform(handle.preprocess, handle.image_size, config.augment, config.rrc_scale,
                                              config.flip)
            if transform is query:  # un-augmented: the plain view's pixels, the same every iteration
                batch, transform = (plain_pixels, labels), None
        optimizer = torch.optim.AdamW(tuned.params, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.cosine_tmax * iterations,
                                                                eta_min=config.eta_min)
                     if config.cosine_tmax else None)
        watch = set(dtrap.checkpoint_steps(iterations, config.checkpoints)[:-1]) - {0} if monitor else set()
        memory: dict = {}
        tuned.visual.train()
        rows = []
        for step in range(iterations):
            if transform is not None:  # augmented: new random views each iteration
                batch = torch.stack([transform(image) for image in images]), labels
            lr = optimizer.param_groups[0]["lr"]
            loss, log = losses(tuned, *batch, step, generator, iterations, (plain_pixels, labels), memory)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            rows.append({"step": step, "lr": lr, **log})
            if step + 1 in watch:
                tuned.visual.eval()
                monitor(step + 1, tuned)
                tuned.visual.train()
        tuned.visual.eval()
    return tuned, pd.DataFrame(rows, columns=list(STEP_LOG))
