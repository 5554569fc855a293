"""One few-shot episode: fine-tune on its support set (``lib.methods.finetune``), score its queries.

``train_and_score`` trains, scores the queries with the text classifier alone after each checkpoint
(the D-Trap code logs 1/5 ... 5/5 of training) and at the end, and, where the dataset has object
boxes, measures where the [CLS] attention and patch-text maps look (``lib.methods.localisation``).
``episode_settings`` is a run's content key (every config field, the episode, the text head).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Sequence

import pandas as pd
import torch

from lib import models
from lib.methods import dtrap, localisation, metrics
from lib.methods.episodes import Episode
from lib.methods.finetune import CdfslConfig, Monitor, Tuned, finetune


@torch.no_grad()
def query_maps(tuned: Tuned, pixels: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """``logits`` (Q, N) of the queries and their two maps (Q, gh, gw): ``cls`` the [CLS]->patch
    attention averaged over heads, ``text`` the patch-to-true-class-text similarity map."""
    tokens = tuned.tokens(pixels)
    text = tuned.text()
    grid = tuple(tuned.visual.grid_size)
    patches = localisation.patch_features(tuned.visual, tokens["patches"])
    return {"logits": query_logits(tokens, text),
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


def query_pixels(tuned: Tuned, dataset, episode: Episode) -> torch.Tensor:
    """(Q, 3, H, W) the episode's query images as the run sees them (``Tuned.query_transform``)."""
    transform = tuned.query_transform()
    return torch.stack([transform(dataset[i][0]) for i in episode.query])


@torch.no_grad()
def query_logits(tokens: dict[str, torch.Tensor], text: torch.Tensor) -> torch.Tensor:
    """(Q, N) logits of the text classifier ``text`` (``Tuned.text``) alone on the queries' ``tokens``
    (``Tuned.tokens``)."""
    return (tokens["features"] @ text.T).cpu()


@torch.no_grad()
def query_accuracy(tuned: Tuned, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (%) of the text classifier alone on the query ``pixels`` (as the D-Trap code scores)."""
    return metrics.accuracy(query_logits(tuned.tokens(pixels), tuned.text()), labels)


@torch.no_grad()
def evaluate(tuned: Tuned, dataset, episode: Episode) -> dict[str, torch.Tensor]:
    """Query accuracy (%) and, with boxes, the localisation scores of both maps and their chance level.
    Boxes are mapped through the model's preprocessing (resize + centre crop), which is also view 0
    for the square images of the demo world. Without boxes (every target of the paper profile) the maps
    would go unused, so only the logits are computed: one forward pass of the queries instead of two."""
    pixels = query_pixels(tuned, dataset, episode)
    labels = episode.query_labels
    coverage = query_boxes(dataset, episode.query, tuned.handle.image_size, tuple(tuned.visual.grid_size))
    out = query_maps(tuned, pixels, labels) if coverage is not None else {
        "logits": query_logits(tuned.tokens(pixels), tuned.text())}
    result = {"accuracy": torch.tensor(metrics.accuracy(out["logits"], labels)),
              "predictions": out["logits"].argmax(1)}
    if coverage is not None:
        result["localisation_cls"] = localisation.localisation_score(out["cls"], coverage)
        result["localisation_text"] = localisation.localisation_score(out["text"], coverage)
        result["localisation_chance"] = localisation.chance_score(coverage)
    return result


def finetune_episode(handle: models.ModelHandle, dataset, episode: Episode, text: torch.Tensor,
                     config: CdfslConfig, monitor: Monitor | None = None) -> tuple[Tuned, pd.DataFrame]:
    """``finetune`` on ``episode``'s support images of ``dataset``; ``text`` (N, d) its classes' features."""
    images = [dataset[i][0] for i in episode.support]
    names = [dataset.classnames[c] for c in episode.classes]
    return finetune(handle, images, episode.support_labels, names, text, config, monitor)


def train_and_score(handle: models.ModelHandle, dataset, episode: Episode, text: torch.Tensor,
                    config: CdfslConfig) -> tuple[Tuned, pd.DataFrame, dict[str, torch.Tensor]]:
    """Fine-tune on ``episode`` and ``evaluate`` it; the result also holds ``checkpoints``, the query
    accuracy after each of ``config.checkpoints`` equal parts of training (NaN where a part rounds to
    no iteration; the last is ``accuracy``), and ``checkpoint_steps``, the iterations done at each."""
    scored: dict[int, float] = {}
    pixels: list[torch.Tensor] = []

    def monitor(done: int, tuned: Tuned) -> None:
        if not pixels:
            pixels.append(query_pixels(tuned, dataset, episode))
        scored[done] = query_accuracy(tuned, pixels[0], episode.query_labels)

    tuned, history = finetune_episode(handle, dataset, episode, text, config,
                                      monitor if config.checkpoints > 1 else None)
    result = evaluate(tuned, dataset, episode)
    steps = dtrap.checkpoint_steps(config.iterations(len(episode.support) // episode.n_way), config.checkpoints)
    result["checkpoints"] = torch.tensor([scored.get(s, math.nan) if s else math.nan for s in steps[:-1]]
                                         + [result["accuracy"].item()], dtype=torch.float64)
    result["checkpoint_steps"] = torch.tensor(steps)
    return tuned, history, result


def episode_settings(episode: Episode, config: CdfslConfig, text: torch.Tensor) -> dict:
    """A run's cache-key settings: the episode, every config field and the text head's fingerprint."""
    digest = hashlib.sha256(text.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {**config.settings(), "episode": dataclasses.asdict(episode), "text_head": digest}
