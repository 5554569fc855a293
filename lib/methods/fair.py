"""FAIR (Ali et al., Towards Fine-Grained Adaptation of CLIP via a Self-Trained Alignment Score): Algorithm 1.

* Class Description Anchors Z* (Sec. 3.4, Alg. 1 INITCDA): the mean of each class's description
  embeddings (CuPL's classifier), then learned; the text encoder is not used afterwards.
* LAS pseudo-labels from the weak view's crops, without gradients (eqs. 11-14, Alg. 1 lines 17-23):
  ``lib.methods.scoring.las_logits`` with [CLS] crop weights and the top-k crops (N = 16, k = 4).
* Adaptive pseudo-label weight gamma = S1 * |S1 - S2| from the top-2 LAS *logits* (eq. 16; Alg. 1
  ADAPTIVEWEIGHT takes "the top-2 logits"): the scores times CLIP's logit scale 100, the scale DPA, the
  authors' previous code, puts on every score; the rows of Table 5 drop either factor.
* Strong-view predictions p = softmax(sim(E_v(A(x)), Z*) / tau) (Alg. 1 line 26), the gamma-weighted
  self-training cross-entropy (eq. 17) and the fairness regulariser L_reg = -(1/C) sum_j log pbar_j
  (after eq. 15, from [32] = MUST). The paper calls pbar "a moving average of the predictions ...
  across the batch"; MUST's and DPA's code take the batch mean of the strong view's predictions, which
  is the default here (``pbar_momentum = 0``; a momentum m > 0 keeps (1 - m) of the gradient).
* The trainable set: the image encoder's LayerNorm affine parameters and Z* (Alg. 1 "Require").

Algorithm 1 itself is ``adapt`` (cached by ``lib.experiments.fair_ablations.run``): a copy of the
image encoder and Z* train with AdamW and a cosine schedule; each step pseudo-labels the weak view's
crops with the *current* encoder and anchors (no gradient), then takes the gamma-weighted
cross-entropy of the strong view plus L_reg. With an evaluation set, ``adapt`` also scores it after
every epoch: the final epoch is what this project reports, the best epoch is what DPA's code reports
(model selection on the test split), so both can be set beside the paper's numbers. The views (weak
crops, the strong view at DPA's RandAugment strength) are ``lib.methods.fair_views``.

``FairConfig`` holds every switch of Tables 3, 5, 7 and 10 (``lib.experiments.fair_ablations`` names
the rows) and cites each default: the paper's where it gives one, else DPA's code, else "ours" with
the reason. ``gamma_norm`` (ours, off by default) divides gamma by its batch mean (``batch_gamma``).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lib import models
from lib.features import crops
from lib.methods import fair_views, metrics, scoring
from lib.methods.fair_views import RANDAUGMENT, crop_boxes, cut_crops, loader, transforms_for  # noqa: F401
from lib.models import tuning

# Table 5's rows: which factors of eq. 16 the pseudo-label weight keeps
WEIGHTS = ("none", "score", "margin", "score*margin")
TAU = 0.01  # CLIP's logit scale 100 (the paper gives no tau; its predecessor DPA scores with CLIP's scale)
GAMMA_SCALE = 100.0  # eq. 16 on logits (Alg. 1: "top-2 logits"): CLIP's scale 100, as DPA's `100. * feat @ classifier`
PBAR_MOMENTUM = 0.0  # pbar = the batch mean of the predictions, as MUST [32] and DPA compute L_reg


def init_anchors(desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Z* (C, d): the normalised mean of each class's real description embeddings (Alg. 1 INITCDA),
    i.e. CuPL's classifier."""
    return scoring.cupl_weights(desc, mask)


def adaptive_weight(scores: torch.Tensor, mode: str = "score*margin") -> torch.Tensor:
    """gamma (B,) from LAS scores (B, C): S1 * |S1 - S2| (eq. 16) or one factor of it (Table 5)."""
    if mode not in WEIGHTS:
        raise ValueError(f"pseudo-label weight {mode!r} is not one of {WEIGHTS}")
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (B, C) with C >= 2, got {tuple(scores.shape)}")
    top2 = scores.topk(2, dim=1).values
    s1, margin = top2[:, 0], (top2[:, 0] - top2[:, 1]).abs()
    return {"none": torch.ones_like(s1), "score": s1, "margin": margin, "score*margin": s1 * margin}[mode]


@torch.no_grad()
def pseudo_labels(crops: torch.Tensor, crop_cls: torch.Tensor, img_cls: torch.Tensor, anchors: torch.Tensor,
                  k: int | None = 4, weight: str = "score*margin", scale: float = GAMMA_SCALE
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LAS pseudo-labels of a weak-view batch: (labels (B,), gamma (B,), LAS scores (B, C)), no gradient.

    ``crops`` (B, N, d) normalised crop features, ``crop_cls``/``img_cls`` their pre-projection [CLS]
    tokens, ``anchors`` Z* (normalised here: eq. 11 is a cosine). Defaults k = 4 of N = 16 (FAIR Sec. 4);
    gamma from the scores times ``scale`` (eq. 16 on logits, ``GAMMA_SCALE``).
    """
    scores = scoring.las_logits(crops, crop_cls, img_cls, F.normalize(anchors.detach(), dim=-1), k)
    return scores.argmax(dim=1), adaptive_weight(scale * scores, weight), scores


def predictions(features: torch.Tensor, anchors: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """p (B, C) = softmax(cos(E_v(A(x)), Z*) / tau) of strong-view features (Alg. 1 line 26)."""
    return torch.softmax(F.normalize(features, dim=-1) @ F.normalize(anchors, dim=-1).T / tau, dim=1)


def self_training_loss(probs: torch.Tensor, labels: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 17: mean over the batch of gamma * cross-entropy(p, pseudo-label)."""
    picked = probs.gather(1, labels[:, None]).squeeze(1)
    return (gamma.detach() * -torch.log(picked.clamp_min(1e-12))).mean()


class PredictionAverage:
    """pbar: a moving average of the batch-mean predictions; the current batch keeps its gradient.
    Momentum 0 (the default) is the batch mean itself (MUST's and DPA's L_reg)."""

    def __init__(self, n_classes: int, momentum: float = PBAR_MOMENTUM):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must lie in [0, 1)")
        self.momentum = momentum
        self.value = torch.full((n_classes,), 1.0 / n_classes)

    def update(self, probs: torch.Tensor) -> torch.Tensor:
        """Fold in a batch of predictions (B, C); returns pbar with gradient through this batch only."""
        pbar = self.momentum * self.value.to(probs) + (1 - self.momentum) * probs.mean(0)
        self.value = pbar.detach()
        return pbar


def fairness_loss(pbar: torch.Tensor) -> torch.Tensor:
    """L_reg = -(1/C) sum_j log pbar_j: smallest when predictions are spread evenly over the classes."""
    return -torch.log(pbar.clamp_min(1e-12)).mean()


# --------------------------------------------------------------------------------------------------
# Algorithm 1: the configuration of one run and the self-training loop

VIEWS = ("crops", "global")  # pseudo-labels from N crops of the weak view, or the weak view alone (FAIR-g)
TEXTS = ("anchors", "initial", "descriptions")  # learned Z* (LAS) | frozen initial Z* (CuPL) | descriptions (WCA)
CROP_WEIGHTS = ("cls", "softmax")  # eq. 12 ([CLS], no softmax) | eq. 8 (WCA's softmax)
SCORERS = ("mean", "lazsl")  # weighted crop scores (eqs. 10/14) | LaZSL's transport score (Table 7, ours)
FAIR_VERSION = 3  # bump when the training loop changes: part of every cached run's key (3: one-sample crops)


@dataclass(frozen=True)
class FairConfig:
    """One FAIR run. Defaults are the paper's (FAIR, Sec. 4 and 6.1) unless marked ours."""

    # pseudo-labelling (Tables 3, 5, 7)
    view: str = "crops"
    text: str = "anchors"
    crop_weights: str = "cls"
    top_k: int | None = 4  # Sec. 4: (N, k) = (16, 4)
    scorer: str = "mean"
    weight: str = "score*margin"  # eq. 16
    gamma_scale: float = GAMMA_SCALE  # Alg. 1 ADAPTIVEWEIGHT: "the top-2 logits" (scores x CLIP's 100)
    gamma_norm: bool = False  # ours, off: gamma / its batch mean (``batch_gamma``); Alg. 1 uses gamma as it is
    fairness: bool = True  # L_reg (Alg. 1 line 28)
    pbar_momentum: float = PBAR_MOMENTUM  # MUST's and DPA's batch mean (the paper: "a moving average")
    # crops of the weak view (Sec. 6.1: alpha = 0.5, beta = 0.9 as in WCA; N = 16)
    n_crops: int = 16
    alpha: float = 0.5
    beta: float = 0.9
    # what trains (Table 10) and how (Sec. 6.1)
    tuning: str = "ln"
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-4  # 1e-6 for Food101 and SUN397
    weight_decay: float = 0.1  # not given in the paper; DPA's (its predecessor, same first author)
    tau: float = TAU
    rrc_scale: tuple[float, float] = (0.3, 1.0)  # not given in the paper; DPA's strong-view scale
    flip: bool = True  # Sec. 6.1 (the demo profile turns it off: a mirrored digit is another glyph)
    randaugment: str | None = RANDAUGMENT  # Sec. 6.1 [11] at DPA's strength (timm config string; None: off)
    interpolation: str = "bicubic"  # DPA's strong view (--train_interpolation)
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self):
        for field, allowed in (("view", VIEWS), ("text", TEXTS), ("crop_weights", CROP_WEIGHTS),
                               ("scorer", SCORERS), ("weight", WEIGHTS), ("tuning", tuning.TRAINABLE)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"FAIR parameter {field}={getattr(self, field)!r} is not one of {allowed}")
        if self.n_crops < 1:
            raise ValueError(f"FAIR parameter n_crops={self.n_crops} must be >= 1")
        if self.top_k is not None and not 1 <= self.top_k <= self.n_crops:
            raise ValueError(f"FAIR parameter top_k={self.top_k} must lie in 1..n_crops={self.n_crops}")
        if self.scorer == "lazsl" and (self.view != "crops" or self.text != "descriptions"):
            raise ValueError("FAIR parameter scorer='lazsl' scores crops against descriptions: "
                             "set view='crops' and text='descriptions'")
        for field in ("epochs", "batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"FAIR parameter {field}={getattr(self, field)} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"FAIR parameter lr={self.lr} must be > 0")
        if not 0.0 <= self.pbar_momentum < 1.0:
            raise ValueError(f"FAIR parameter pbar_momentum={self.pbar_momentum} must lie in [0, 1)")
        if not self.gamma_scale > 0:
            raise ValueError(f"FAIR parameter gamma_scale={self.gamma_scale} must be > 0")
        crops.CropSpec(self.n_crops, self.alpha, self.beta)  # checks the scale range
        fair_views.check(self)

    def settings(self) -> dict:
        """The JSON part of a cached run's key."""
        return {**dataclasses.asdict(self), "tuning_detail": tuning.settings(self.tuning), "version": FAIR_VERSION}


@dataclass
class Text:
    """The text side of a run, computed once before training (the text encoder is not used after):
    ``initial`` Z*_0 (C, d), the descriptions ``desc`` (C, M, d) with their ``mask`` (C, M), and
    ``class_txt`` (C, d), the class prompt's features ("a photo of a {c}."), which WCA weighs the
    descriptions by (eq. 9) in the WCA-as-pseudo-labeller rows; None weighs them uniformly."""

    initial: torch.Tensor
    desc: torch.Tensor
    mask: torch.Tensor
    class_txt: torch.Tensor | None = None

    @classmethod
    def from_descriptions(cls, desc: torch.Tensor, mask: torch.Tensor, class_txt: torch.Tensor | None = None) -> "Text":
        return cls(init_anchors(desc, mask), desc, mask, class_txt)

    def to(self, device) -> "Text":
        class_txt = None if self.class_txt is None else self.class_txt.to(device)
        return Text(self.initial.to(device), self.desc.to(device), self.mask.to(device), class_txt)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for t in (self.initial, self.desc, self.mask) + (() if self.class_txt is None else (self.class_txt,)):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def batch_gamma(gamma: torch.Tensor) -> torch.Tensor:
    """gamma / mean(gamma) over the batch (ours; ``FairConfig.gamma_norm``, off by default). It keeps
    the ratios between images that eq. 16 expresses and puts L_st and L_reg at 1 : 1 for every row,
    whatever the scorer's scale; it also makes Table 5's "gamma = S1" row nearly "no weight", since S1
    varies little within a batch."""
    return gamma / gamma.mean().clamp_min(1e-12)


def pseudo_label_scores(config: FairConfig, tokens: dict[str, torch.Tensor], batch: int,
                        anchors: torch.Tensor, text: Text) -> torch.Tensor:
    """(B, C) pseudo-labelling scores of one weak batch under ``config`` (the rows of Tables 3 and 7).

    ``tokens``: ``features`` and ``cls`` of the B weak views followed by their B * N crops
    (``models.encoder_tokens``); ``anchors`` the current Z*.
    """
    feats, cls = tokens["features"], tokens["cls"]
    img, img_cls = feats[:batch], cls[:batch]
    classifier = {"anchors": F.normalize(anchors.detach(), dim=-1), "initial": text.initial,
                  "descriptions": text.initial}[config.text]
    if config.view == "global":  # FAIR-g: CuPL (initial) or learned anchors against the weak view
        return img @ classifier.T
    crop_feats = feats[batch:].reshape(batch, config.n_crops, -1)
    crop_cls = cls[batch:].reshape(batch, config.n_crops, -1)
    if config.scorer == "lazsl":
        return scoring.lazsl_logits(crop_feats, img, text.desc, text.mask)
    cc, ic = (crop_cls, img_cls) if config.crop_weights == "cls" else (None, None)
    if config.text == "descriptions":  # WCA's eq. 10, its description weights v_j from the class prompt (eq. 9)
        return scoring.wca_logits(crop_feats, img, text.desc, text.mask, text.class_txt, top_k=config.top_k,
                                  crop_cls=cc, img_cls=ic, normalize=False)
    if config.crop_weights == "cls":  # LAS, eqs. 11-14
        return scoring.las_logits(crop_feats, crop_cls, img_cls, classifier, config.top_k)
    ones = torch.ones(classifier.shape[0], 1, dtype=torch.bool, device=classifier.device)
    return scoring.wca_logits(crop_feats, img, classifier[:, None], ones, top_k=config.top_k, normalize=False)


@torch.no_grad()
def weak_pseudo_labels(visual: torch.nn.Module, weak: torch.Tensor, indices: torch.Tensor, config: FairConfig,
                       anchors: torch.Tensor, text: Text, epoch: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alg. 1 lines 17-25 without gradients: (pseudo-labels (B,), gamma (B,), scores (B, C))."""
    views = weak
    if config.view == "crops":
        views = torch.cat([weak, cut_crops(weak, crop_boxes(indices, weak.shape[-1], config, epoch))])
    tokens = models.encoder_tokens(visual, views)
    scores = pseudo_label_scores(config, tokens, len(weak), anchors, text)
    gamma = adaptive_weight(config.gamma_scale * scores, config.weight)
    if config.gamma_norm:
        gamma = batch_gamma(gamma)
    return scores.argmax(dim=1), gamma, scores


TRAINING_LOG = ("epoch", "loss_st", "loss_reg", "gamma_mean", "pl_accuracy", "lr")


class Trainer:
    """The state of one run (a copy of the image encoder, Z*, AdamW, the cosine schedule, pbar) and
    its training step; ``adapt`` loops it over the data, the benchmarks time one step."""

    def __init__(self, handle: models.ModelHandle, text: Text, config: FairConfig, steps: int):
        self.config, self.device = config, handle.device
        self.text = text.to(handle.device)
        self.visual = copy.deepcopy(handle.model.visual).to(handle.device).train()
        self.params = tuning.prepare(self.visual, config.tuning)
        self.anchors = torch.nn.Parameter(self.text.initial.clone())
        self.optimizer = torch.optim.AdamW([{"params": self.params}, {"params": [self.anchors]}], lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, steps))
        self.average = PredictionAverage(self.text.initial.shape[0], config.pbar_momentum)

    def step(self, weak: torch.Tensor, strong: torch.Tensor, indices: torch.Tensor, epoch: int = 0) -> dict:
        """One step of Alg. 1 (lines 15-31): pseudo-labels without gradient, then the loss and update."""
        weak, strong = weak.to(self.device), strong.to(self.device)
        pl, gamma, _ = weak_pseudo_labels(self.visual, weak, indices, self.config, self.anchors, self.text, epoch)
        probs = predictions(self.visual(strong), self.anchors, self.config.tau)
        loss_st = self_training_loss(probs, pl, gamma)
        loss_reg = (fairness_loss(self.average.update(probs)) if self.config.fairness
                    else torch.zeros((), device=self.device))
        self.optimizer.zero_grad(set_to_none=True)
        (loss_st + loss_reg).backward()
        self.optimizer.step()
        lr = self.schedule.get_last_lr()[0]
        self.schedule.step()
        return {"pseudo_labels": pl.cpu(), "loss_st": loss_st.item(), "loss_reg": loss_reg.item(),
                "gamma_mean": gamma.mean().item(), "lr": lr}


def evaluate(handle: models.ModelHandle, visual: torch.nn.Module, anchors: torch.Tensor, dataset,
             batch_size: int = 256) -> tuple[float, torch.Tensor]:
    """(accuracy (%), features (N, d)) of ``visual``'s centre views of ``dataset`` against ``anchors``;
    the encoder is put in eval mode for it and back after, torch's RNG is left as it was."""
    was_training = visual.training
    with torch.random.fork_rng(devices=[]):
        feats = models.encode_dataset(handle, dataset, batch_size, visual=visual.eval(),
                                      desc=f"evaluate {getattr(dataset, 'name', '')} (FAIR)")
    visual.train(was_training)
    return metrics.accuracy(feats @ F.normalize(anchors.detach().cpu(), dim=-1).T, dataset.labels), feats


def adapt(handle: models.ModelHandle, dataset, text: Text, config: FairConfig = FairConfig(),
          eval_set=None, eval_batch_size: int = 256) -> dict:
    """Algorithm 1 on the unlabeled ``dataset``: returns ``state/<name>`` for each trained parameter,
    ``anchors`` (the learned Z*, C x d), ``history`` (one row per step, columns ``TRAINING_LOG``) and
    ``epoch_accuracy`` (E,): the accuracy on ``eval_set`` after each epoch (empty without one); its
    maximum is DPA's reported number (model selection on the test split), its last entry the final one,
    whose features are ``eval_features`` (N, d), so the final epoch is not encoded twice.

    The image encoder is a copy (the handle's model is untouched); the text encoder is never called.
    Seeded: the same config gives the same result, with or without ``eval_set`` (torch's, Python's and
    NumPy's global generators are restored afterwards: ``fair_views.seeded``).
    """
    if len(dataset) == 0:
        raise ValueError(f"dataset {getattr(dataset, 'name', '?')!r} is empty: nothing to adapt on")
    with fair_views.seeded(config.seed):
        batches = loader(handle, dataset, config)
        trainer = Trainer(handle, text, config, config.epochs * len(batches))
        history, epoch_accuracy, eval_features = [], [], None
        bar = tqdm(total=config.epochs * len(batches), desc=f"FAIR {getattr(dataset, 'name', '')}",
                   disable=None, leave=False)
        for epoch in range(config.epochs):
            for weak, strong, indices, labels in batches:
                out = trainer.step(weak, strong, indices, epoch)
                history.append([epoch, out["loss_st"], out["loss_reg"], out["gamma_mean"],
                                (out["pseudo_labels"] == labels).float().mean().item(), out["lr"]])
                bar.update()
            if eval_set is not None:
                accuracy, eval_features = evaluate(handle, trainer.visual, trainer.anchors, eval_set, eval_batch_size)
                epoch_accuracy.append(accuracy)
        bar.close()
    state = {f"state/{name}": value for name, value in tuning.trainable_state(trainer.visual).items()}
    extra = {} if eval_features is None else {"eval_features": eval_features}
    return {**state, "anchors": trainer.anchors.detach().cpu(), "history": torch.tensor(history, dtype=torch.float64),
            "epoch_accuracy": torch.tensor(epoch_accuracy, dtype=torch.float64), **extra}


class Adapted:
    """A finished run: rebuilds the adapted image encoder and scores images against the learned Z*."""

    def __init__(self, handle: models.ModelHandle, result: dict, config: FairConfig):
        self.handle, self.config = handle, config
        self.anchors = result["anchors"]
        self.state = {k[len("state/"):]: v for k, v in result.items() if k.startswith("state/")}
        self.history = pd.DataFrame(result["history"].numpy(), columns=list(TRAINING_LOG))
        self.history["step"] = range(len(self.history))
        self.epoch_accuracy = result.get("epoch_accuracy", torch.empty(0, dtype=torch.float64))
        self.eval_features = result.get("eval_features")  # the final epoch's features of the evaluation set

    @property
    def best_accuracy(self) -> float:
        """The best accuracy over the epochs on the evaluation set (test-set model selection, as DPA's
        code reports); NaN when the run was not evaluated per epoch."""
        return float(self.epoch_accuracy.max()) if len(self.epoch_accuracy) else float("nan")

    def visual(self) -> torch.nn.Module:
        """A fresh copy of the handle's image encoder with the trained parameters loaded."""
        visual = copy.deepcopy(self.handle.model.visual).to(self.handle.device).eval()
        tuning.prepare(visual, self.config.tuning)
        tuning.load_trainable(visual, self.state)
        return visual

    def features(self, dataset, batch_size: int = 256) -> torch.Tensor:
        """(N, d) normalised centre-view features of ``dataset`` under the adapted encoder."""
        return models.encode_dataset(self.handle, dataset, batch_size, visual=self.visual(),
                                     desc=f"encode {getattr(dataset, 'name', '')} (FAIR)")

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine logits (N, C) of adapted features against the learned anchors."""
        return features @ F.normalize(self.anchors, dim=-1).T
