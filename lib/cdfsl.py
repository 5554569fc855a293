"""Cross-domain few-shot learning with CLIP: episodes, fine-tuning, CC-CDFSL and the D-Trap remedy.

Both papers are read from their abstracts only (``cc-cdfsl_abstract.txt``,
``discriminability-trap_abstract.txt``); notebook 03 quotes each sentence beside the equation derived
from it. Every choice the abstracts leave open is marked "ours" here.

**Episodes** (the BSCD-FSL protocol): N classes drawn from the target set, K support and Q query
images per class, disjoint; accuracy as the mean over episodes +- 1.96 std / sqrt(E) (``mean_ci``).

**Fine-tuning** (the baselines of every table): cross-entropy on the support set with the classifier
``softmax(cos(f(x), t_c) / tau)``, ``t_c`` the class-name prompt features (template ensemble), and one
trainable part: CoOp context vectors (``lib.prompt_learning``), LayerNorm affine parameters, LoRA on
the attention, or the whole image encoder (``lib.tuning``).

**CC-CDFSL** (switch ``cycle``): patch tokens v (projected to the joint space) are translated into
the text space and back, and class texts t into the visual space and back; translation is attention
over a corpus (ours: parameter-free, so only the encoder can lower the loss)::

    g(v) = softmax(v T^T / tau_c) T            image -> text, corpus T (the episode's class texts)
    h(t) = softmax(t V^T / tau_c) V            text -> image, corpus V (the batch's patch features)
    L_cyc_img = mean_v 1 - cos(v, h(g(v)))     L_cyc_txt = mean_c 1 - cos(t_c, g(h(t_c)))
    L = L_CE + 3 L_cyc_txt + 2 L_cyc_img       (weights: DESIGN.md's secondary summary, unverified)

Semantic Anchor: ``anchor_augment`` enlarges V with within-class mixtures of patch features (ours:
feature mixup) for h; ``anchor_shrink`` keeps only each class's ``anchor_patches`` patches closest to
its text as the inputs of g (10 per class: the same summary).

**D-Trap remedy** (switches ``perturb`` and ``align``): with mu_c the mean support feature of class c
(detached) every logit splits exactly, t_c = mu_c + (t_c - mu_c)::

    z_c = f . t_c / tau = f . mu_c / tau  +  f . (t_c - mu_c) / tau  =  z_vis_c + z_cm_c

and since dL_CE/dz = p - y, the CE gradient is the sum of the gradients of the two surrogate parts
``P_vis = sum_c sg(p_c - y_c) z_vis_c`` (visual learning: pull f to its class's visual centre, away
from the others') and ``P_cm`` (cross-modal learning: move f along the class's modality gap). Both are
logged with the two margins they give the true class. ``perturb`` rescales the visual part's gradient
by xi ~ U(perturb_range) each step (ours: zero mean, so the shortcut carries no signal on average):
``L = L_CE + (xi - 1) P_vis``. ``align`` adds ``w(s) KL(softmax(T t_y / tau_r) || softmax(T f / tau_r))``,
the image's relations to the class texts matched to its class text's relations, with w growing
linearly from 0 to ``align_weight`` over the steps (ours: the abstract says "gradually").
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from tqdm import tqdm

from lib import feature_cache, localisation, metrics, models, profiles, prompt_learning, tuning

# --------------------------------------------------------------------------------------------------
# Episodes


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode: dataset labels of its classes and dataset indices, class-major."""

    classes: tuple[int, ...]
    support: tuple[int, ...]
    query: tuple[int, ...]

    @property
    def n_way(self) -> int:
        return len(self.classes)

    @property
    def support_labels(self) -> torch.Tensor:
        """Episode labels 0..N-1 of the support images (class-major)."""
        return torch.arange(self.n_way).repeat_interleave(len(self.support) // self.n_way)

    @property
    def query_labels(self) -> torch.Tensor:
        return torch.arange(self.n_way).repeat_interleave(len(self.query) // self.n_way)


def sample_episodes(labels: torch.Tensor | Sequence[int], n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                    n_episodes: int = 1, seed: int = 0, classnames: Sequence[str] | None = None,
                    dataset: str = "dataset") -> list[Episode]:
    """``n_episodes`` episodes from a labelled pool (defaults: BSCD-FSL's 5-way, 15 queries per class).

    Episode i draws from its own stream (seed, i), so the first E episodes do not depend on how many
    are asked for. Every class must hold k_shot + n_query images: a class that does not is an error
    naming it, checked before any episode is drawn.
    """
    labels = np.asarray(labels, dtype=np.int64)
    for name, value, low in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("n_query", n_query, 1),
                             ("n_episodes", n_episodes, 1)):
        if int(value) < low:
            raise ValueError(f"episode parameter {name}={value} must be >= {low}")
    classes = np.unique(labels)
    if n_way > len(classes):
        raise ValueError(f"{dataset}: a {n_way}-way episode needs {n_way} classes, the pool has {len(classes)}")
    need = k_shot + n_query
    counts = {int(c): int((labels == c).sum()) for c in classes}
    for c, count in counts.items():
        if count < need:
            name = f"{classnames[c]!r} (label {c})" if classnames is not None else f"label {c}"
            raise ValueError(f"{dataset}: class {name} has {count} images; a {k_shot}-shot episode with "
                             f"{n_query} queries per class needs {need} (k_shot + n_query): lower k_shot or "
                             "n_query, or sample from a larger split")
    by_class = {c: np.flatnonzero(labels == c) for c in counts}
    episodes = []
    for i in range(n_episodes):
        rng = np.random.default_rng([seed, i])
        chosen = rng.choice(classes, size=n_way, replace=False)
        support, query = [], []
        for c in chosen:
            picked = rng.choice(by_class[int(c)], size=need, replace=False)
            support.extend(int(j) for j in picked[:k_shot])
            query.extend(int(j) for j in picked[k_shot:])
        episodes.append(Episode(tuple(int(c) for c in chosen), tuple(support), tuple(query)))
    return episodes


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, 95% half-width) over episodes: 1.96 * std / sqrt(E), the CDFSL convention (BSCD-FSL's
    code uses numpy's std, ddof = 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_ci needs at least one episode")
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(values.size))


# --------------------------------------------------------------------------------------------------
# CC-CDFSL: translation by attention over a corpus, the cycle loss and the Semantic Anchor

CYCLE_TAU = 0.01  # ours: CLIP's logit scale, the sharpness the classifier already uses
CYCLE_TEXT_WEIGHT = 3.0  # DESIGN.md, "CC-CDFSL: ... CE + 3 * L_cyc_txt + 2 * L_cyc_img" (unverified summary)
CYCLE_IMAGE_WEIGHT = 2.0
ANCHOR_PATCHES = 10  # same summary: "10 anchor patches per class"


def translate(queries: torch.Tensor, corpus: torch.Tensor, tau: float = CYCLE_TAU) -> torch.Tensor:
    """(M, d) queries -> (M, d): each an attention-weighted mix of the (K, d) corpus, L2-normalised."""
    weights = torch.softmax(F.normalize(queries, dim=-1) @ F.normalize(corpus, dim=-1).T / tau, dim=-1)
    return F.normalize(weights @ corpus, dim=-1)


def cycle_loss(x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor],
               backward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """mean over rows of 1 - cos(x, backward(forward(x))): zero when ``backward`` inverts ``forward``
    (up to scale) on ``x``, positive otherwise."""
    return (1 - F.cosine_similarity(x, backward(forward(x)), dim=-1)).mean()


def anchor_corpus(patches: torch.Tensor, labels: torch.Tensor, factor: int, generator: torch.Generator) -> torch.Tensor:
    """Semantic Anchor, augment (ours: within-class feature mixup): the (B * L, d) patch corpus plus
    ``factor`` x B * L mixtures lam * v_a + (1 - lam) * v_b of two patches of the same class,
    lam ~ U(0, 1)."""
    b, length, d = patches.shape
    flat = patches.reshape(b * length, d)
    owner = labels.repeat_interleave(length)
    extra = []
    for _ in range(factor):
        partner = torch.empty(b * length, dtype=torch.long)
        for c in owner.unique():  # a random partner of the same class for each patch
            members = torch.nonzero(owner == c).flatten()
            partner[members] = members[torch.randperm(len(members), generator=generator)]
        lam = torch.rand(b * length, 1, generator=generator).to(flat)
        extra.append(F.normalize(lam * flat + (1 - lam) * flat[partner.to(flat.device)], dim=-1))
    return torch.cat([flat, *extra])


def anchor_patches(patches: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, k: int) -> torch.Tensor:
    """Semantic Anchor, shrink: for each class, the ``k`` patches of its images closest to its text
    (cosine), (sum_c min(k, patches of c), d). Patches far from every class text do not enter g."""
    b, length, d = patches.shape
    kept = []
    for c in labels.unique():
        own = patches[labels == c].reshape(-1, d)
        sims = F.normalize(own, dim=-1) @ F.normalize(text[c], dim=-1)
        kept.append(own[sims.topk(min(k, len(own))).indices])
    return torch.cat(kept)


# --------------------------------------------------------------------------------------------------
# D-Trap: the CE split, the perturbation and the growing alignment term


def class_centres(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """mu (C, d): the mean (detached) feature of each class in the batch; every class must be present."""
    present = torch.bincount(labels, minlength=n_classes)
    if (present == 0).any():
        missing = torch.nonzero(present == 0).flatten().tolist()
        raise ValueError(f"the CE split needs every class in the batch; classes {missing} are absent")
    sums = torch.zeros(n_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features.detach())
    return sums / present[:, None].to(features)


def ce_parts(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, tau: float) -> dict[str, torch.Tensor]:
    """The CE loss and its exact split (module docstring): ``ce``, ``logits``, the surrogate parts
    ``visual`` and ``cross_modal`` (their gradients sum to CE's) and the true-class margins each part
    gives over the mean of the other classes, ``margin_visual`` + ``margin_cross_modal`` = total."""
    n = text.shape[0]
    mu = class_centres(features, labels, n)
    z_vis = features @ mu.T / tau
    z_cm = features @ (text - mu).T / tau
    logits = z_vis + z_cm
    ce = F.cross_entropy(logits, labels)
    residual = (torch.softmax(logits, dim=1) - F.one_hot(labels, n).to(logits)).detach()
    others = 1 - F.one_hot(labels, n).to(logits)

    def margin(z):
        return (z.gather(1, labels[:, None]).squeeze(1) - (z * others).sum(1) / (n - 1)).mean()

    return {"ce": ce, "logits": logits, "visual": (residual * z_vis).sum(1).mean(),
            "cross_modal": (residual * z_cm).sum(1).mean(),
            "margin_visual": margin(z_vis.detach()), "margin_cross_modal": margin(z_cm.detach())}


def alignment_loss(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(T t_y / tau) || softmax(T f / tau)) averaged over the batch: each image's relations
    to the class texts pulled towards its own class text's relations to them. The target is detached;
    the prediction keeps the text's gradient, so a learned prompt (CoOp) is aligned as well."""
    text_n = F.normalize(text, dim=-1)
    target = torch.softmax(text_n[labels].detach() @ text_n.detach().T / tau, dim=1)
    log_pred = torch.log_softmax(F.normalize(features, dim=-1) @ text_n.T / tau, dim=1)
    return F.kl_div(log_pred, target, reduction="batchmean")


def ramp(step: int, steps: int, final: float) -> float:
    """The alignment weight at ``step`` of ``steps``: linear from 0 to ``final`` (ours)."""
    return final * (step + 1) / max(1, steps)


# --------------------------------------------------------------------------------------------------
# One fine-tuning run

TUNINGS = ("coop",) + tuning.METHODS
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

    @classmethod
    def from_settings(cls, settings: dict, **overrides) -> "CdfslConfig":
        """A config from a profile's ``cdfsl`` block / a row's switches; unknown keys are named."""
        return profiles.dataclass_from_settings(cls, {**settings, **overrides}, "CDFSL")

    def settings(self) -> dict:
        detail = {} if self.tuning == "coop" else tuning.settings(self.tuning)
        return {**dataclasses.asdict(self), "learning_rate": self.learning_rate, "tuning_detail": detail,
                "version": CDFSL_VERSION}


HISTORY = ("step", "loss", "ce", "visual_part", "cross_modal_part", "margin_visual", "margin_cross_modal",
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
    """The training loss of one step and what it logs (``HISTORY``)."""
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
            return tuned, pd.DataFrame(columns=list(HISTORY))
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
    return tuned, pd.DataFrame(rows, columns=list(HISTORY))


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
    no boxes (``lib.demo.DemoDataset`` has them)."""
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


def run_episode(handle: models.ModelHandle, dataset, episode: Episode, class_text: torch.Tensor,
                config: CdfslConfig, cache: feature_cache.FeatureCache | None = None) -> dict[str, torch.Tensor]:
    """Fine-tune on ``episode``'s support set and score its queries, through the cache.

    ``class_text`` (C, d): the prompt features of every class of ``dataset``; the episode reads its
    rows. Returns ``accuracy``, ``predictions``, ``history`` (steps x ``HISTORY``) and, with boxes,
    ``localisation_cls`` / ``localisation_text`` / ``localisation_chance`` per query.
    """
    text = class_text[list(episode.classes)]

    def compute():
        tuned, history = finetune_episode(handle, dataset, episode, text, config)
        result = evaluate(tuned, dataset, episode)
        result["history"] = torch.tensor(history.to_numpy(dtype=np.float64)).reshape(len(history), len(HISTORY))
        return result

    return feature_cache.cached(handle, dataset, "cdfsl", episode_settings(episode, config, text), compute, cache=cache)


def history_frame(result: dict[str, torch.Tensor]) -> pd.DataFrame:
    """A cached run's ``history`` tensor as a DataFrame with ``HISTORY`` columns."""
    return pd.DataFrame(result["history"].numpy(), columns=list(HISTORY))


def run_episodes(handle: models.ModelHandle, dataset, episodes: Sequence[Episode], class_text: torch.Tensor,
                 config: CdfslConfig, cache: feature_cache.FeatureCache | None = None,
                 desc: str | None = None) -> list[dict[str, torch.Tensor]]:
    """``run_episode`` over ``episodes`` with a progress bar."""
    return [run_episode(handle, dataset, e, class_text, config, cache)
            for e in tqdm(episodes, desc=desc or "episodes", disable=None, leave=False)]
