"""Notebook 03: cross-domain few-shot experiments as data: named methods, episode jobs, tables and maps.

A method is a set of ``lib.methods.finetune.CdfslConfig`` switches (``CDFSL_METHODS``). CC-CDFSL and the
abstract-derived remedy (ours) build on the profile's ``base`` tuning (the demo profile: LayerNorm,
its best baseline; the paper profile: LoRA). CLIP-LoRA and D-Trap use the D-Trap code's set-up
(``CLIP_LORA``: CLIP-LoRA on q/k/v, five fixed views, 250 x K iterations, AdamW with weight decay 1e-2,
a cosine schedule with T_max = 8 x iterations, scored at each fifth of training) and its text head:
one template with readable label names (the profile's ``clip_lora`` block: ``template``,
``label_names`` (a file beside the profiles), ``config`` overrides and ``steps_scale`` per target,
e.g. the code's halved iterations on ChestX).

A job is (target, method, shots, episode seed); its episodes go through the feature cache one by one,
so notebook 03 and the tests share them, and ``prefetch`` trains jobs in worker processes with one
torch thread each (``EXPERIMENT``, ``lib.experiments.protocol``). Episodes come from each target's test
split (the BSCD-FSL targets are test-only pools). The profile's ``cdfsl`` block holds the targets,
shots, episode counts and config overrides; ``lib.experiments.cdfsl_tables`` turns the jobs into
notebook 03's tables and maps.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm import tqdm

from lib import models
from lib.data import open_datasets
from lib.experiments import notebook
from lib.experiments.protocol import Experiment, config_from
from lib.features import cache as feature_cache
from lib.features.text import class_embeddings, templates
from lib.methods import episodes as episode_sampler
from lib.methods import episode_runs, finetune
from lib.methods.episodes import Episode
from lib.runtime import locations, profiles

BASE = "base"  # in CDFSL_METHODS: replaced by the profile's base tuning
TEXT = "text"  # in CDFSL_METHODS: "single" for the D-Trap code's text head (``clip_lora`` block), else the ensemble
# The D-Trap code's CLIP-LoRA set-up (run_utils.py, main.py, lora_mind.py; docs/official_code.md)
CLIP_LORA = {
    "tuning": "clip-lora",  # q/k/v LoRA r 16, alpha 8, dropout 0.25 on every vision block, lr 2e-4
    "five_views": True,  # the loaders' five views, one batch of the whole support set per iteration
    "steps_per_shot": 250,  # --epochs 250: 250 x K iterations
    "weight_decay": 1e-2,  # AdamW(weight_decay=1e-2)
    "cosine_tmax": 8,  # CosineAnnealingLR(T_max = 8 x iterations, eta_min = 1e-6)
    "checkpoints": 5,  # query accuracy after 1/5 ... 5/5 of training
    TEXT: "single",  # 'a photo of a {}.' with readable label names, the text encoder frozen
}
CDFSL_METHODS: dict[str, dict] = {
    "Zero-shot (prompt ensemble)": {"steps": 0, "tuning": "ln"},
    "CoOp (prompt context)": {"tuning": "coop"},
    "LayerNorm": {"tuning": "ln"},
    "LoRA": {"tuning": "lora"},
    "Full fine-tuning": {"tuning": "full"},
    "CC-CDFSL": {"tuning": BASE, "cycle": True, "anchor_augment": True, "anchor_shrink": True},
    "CC-CDFSL w/o Semantic Anchor": {"tuning": BASE, "cycle": True},
    "CC-CDFSL w/o augment": {"tuning": BASE, "cycle": True, "anchor_shrink": True},
    "CC-CDFSL w/o shrink": {"tuning": BASE, "cycle": True, "anchor_augment": True},
    "CLIP-LoRA": dict(CLIP_LORA),
    "CLIP-LoRA + perturbation": {**CLIP_LORA, "perturb": True},
    "CLIP-LoRA + alignment": {**CLIP_LORA, "align": True},
    "D-Trap": {**CLIP_LORA, "perturb": True, "align": True},
    "Abstract-derived remedy (ours)": {"tuning": BASE, "ours_perturb": True, "ours_align": True},
    "Abstract-derived perturbation (ours)": {"tuning": BASE, "ours_perturb": True},
}
PROMPT_ZERO_SHOT = "Zero-shot (prompt ensemble)"
MAIN = [PROMPT_ZERO_SHOT, "CoOp (prompt context)", "LayerNorm", "LoRA", "Full fine-tuning", "CC-CDFSL"]
ABLATION = ["CC-CDFSL", "CC-CDFSL w/o Semantic Anchor", "CC-CDFSL w/o augment", "CC-CDFSL w/o shrink",
            "Abstract-derived remedy (ours)", "Abstract-derived perturbation (ours)"]
DTRAP_ROWS = ["CLIP-LoRA", "CLIP-LoRA + perturbation", "CLIP-LoRA + alignment", "D-Trap"]  # baseline / + / + / full
CHECKPOINT_ROWS = ["CLIP-LoRA", "D-Trap"]  # on every clip_lora target and shot, scored at each fifth of training


def base_name(cfg: dict) -> str:
    """The method row of the profile's base tuning (``LayerNorm`` for ``base: ln``)."""
    base = EXPERIMENT.block(cfg).get("base", "lora")
    names = {"coop": "CoOp (prompt context)", "ln": "LayerNorm", "lora": "LoRA", "full": "Full fine-tuning"}
    if base not in names:
        raise ValueError(f"cdfsl parameter base={base!r} is not one of {sorted(names)}")
    return names[base]


def map_methods(cfg: dict) -> list[str]:
    """The methods whose maps notebook 03 draws: zero-shot, the base baseline, CC-CDFSL, D-Trap."""
    return [PROMPT_ZERO_SHOT, base_name(cfg), "CC-CDFSL", "D-Trap"]


def localisation_methods(cfg: dict) -> list[str]:
    """The methods of the localisation score (CC-CDFSL's claim): zero-shot, the base baseline, CC-CDFSL
    with and without its Semantic Anchor."""
    return [PROMPT_ZERO_SHOT, base_name(cfg), "CC-CDFSL", "CC-CDFSL w/o Semantic Anchor"]


def config(cfg: dict, method: str, seed: int = 0, target: str | None = None) -> finetune.CdfslConfig:
    """The CdfslConfig of ``method``: the profile's overrides, the method's switches, its learning rate;
    for the CLIP-LoRA rows then the ``clip_lora`` block's ``config`` and, on ``target``, its
    ``steps_scale`` (iterations per shot scaled, rounded down as the D-Trap code does)."""
    if method not in CDFSL_METHODS:
        raise KeyError(f"unknown CDFSL method {method!r}; known: {list(CDFSL_METHODS)}")
    opts = EXPERIMENT.block(cfg)
    switches = {k: v for k, v in CDFSL_METHODS[method].items() if k != TEXT}
    if switches.get("tuning") == BASE:
        switches["tuning"] = opts.get("base", "lora")
    settings = {**opts.get("config", {}), **switches, "seed": seed}
    lr = opts.get("lr_by_tuning", {}).get(settings["tuning"])
    if lr is not None and "lr" not in opts.get("config", {}):
        settings["lr"] = lr
    if uses_single_text(method):
        block = opts.get("clip_lora", {})
        settings.update(block.get("config", {}))
        scale = block.get("steps_scale", {}).get(target, 1) if target is not None else 1
        settings["steps_per_shot"] = int(settings["steps_per_shot"] * scale)
    return config_from(finetune.CdfslConfig, settings, "CDFSL")


def uses_single_text(method: str) -> bool:
    """Whether ``method`` scores with the D-Trap code's text head (one template, label names)."""
    return CDFSL_METHODS[method].get(TEXT) == "single"


@dataclass(frozen=True)
class EpisodeJob:
    """One table cell: ``episodes`` episodes of ``shots``-shot on ``target`` with ``method``."""

    target: str
    method: str
    shots: int
    seed: int = 0  # the episode stream (also the fine-tuning seed)

    def __post_init__(self):
        if self.method not in CDFSL_METHODS:
            raise KeyError(f"unknown CDFSL method {self.method!r}; known: {list(CDFSL_METHODS)}")


def pool(cfg: dict, name: str, data_root: str | Path | None = None):
    """The labelled pool episodes of ``name`` are drawn from (its test split), opened once per process."""
    root = locations.data_root(data_root)
    return _pool(name, str(root) if root else None, cfg["seed"])


@functools.lru_cache(maxsize=16)
def _pool(name: str, data_root: str | None, seed: int):
    found, skipped = open_datasets([name], "test", data_root, seed)
    if name not in found:
        raise FileNotFoundError(f"CDFSL target {name!r} is not available: {skipped.get(name, 'not found')}")
    return found[name]


def class_text(handle: models.ModelHandle, cfg: dict, dataset, cache: feature_cache.FeatureCache) -> torch.Tensor:
    """(C, d) the prompt-ensemble class features of ``dataset`` (the profile's templates)."""
    return class_embeddings(handle, dataset.classnames, templates(cfg["templates"]), cache)


def _name_key(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name).strip().lower()


def label_names(cfg: dict, dataset) -> list[str]:
    """The names the D-Trap code prompts ``dataset``'s classes with: the ``clip_lora.label_names`` file
    (relative paths: beside the profiles), else the class names. A listed dataset missing a class is an
    error naming the file, the dataset and the class."""
    path = EXPERIMENT.block(cfg).get("clip_lora", {}).get("label_names")
    if not path:
        return list(dataset.classnames)
    path = Path(path) if Path(path).is_absolute() else profiles.PROFILE_DIR / path
    if not path.is_file():
        raise FileNotFoundError(f"CDFSL label-name file {path} (profile key cdfsl.clip_lora.label_names) not found")
    table = {k.lower(): v for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
    names = table.get(dataset.name.lower())
    if names is None:
        return list(dataset.classnames)
    names = {_name_key(k): v for k, v in names.items()}
    missing = [c for c in dataset.classnames if _name_key(c) not in names]
    if missing:
        raise ValueError(f"{path}: dataset {dataset.name!r} lists no label name for class(es) {missing}")
    return [names[_name_key(c)] for c in dataset.classnames]


def single_text(handle: models.ModelHandle, cfg: dict, dataset, cache: feature_cache.FeatureCache) -> torch.Tensor:
    """(C, d) the D-Trap code's text head: ``clip_lora.template`` (there 'a photo of a {}.') with each
    class's label name, underscores read as spaces."""
    template = EXPERIMENT.block(cfg).get("clip_lora", {}).get("template", "a photo of a {}.")
    prompts = [name.replace("_", " ") for name in label_names(cfg, dataset)]
    return class_embeddings(handle, prompts, [template], cache)


def method_text(handle: models.ModelHandle, cfg: dict, dataset, cache: feature_cache.FeatureCache,
                method: str) -> torch.Tensor:
    """(C, d) the class features ``method`` scores with (``single_text`` or ``class_text``)."""
    return (single_text if uses_single_text(method) else class_text)(handle, cfg, dataset, cache)


def episodes(cfg: dict, dataset, shots: int, seed: int = 0) -> list[Episode]:
    opts = EXPERIMENT.block(cfg)
    return episode_sampler.sample_episodes(dataset.labels, opts.get("ways", 5), shots, opts.get("queries", 15),
                                 opts.get("episodes", 600), seed, dataset.classnames, dataset.name)


def run_episode(handle: models.ModelHandle, dataset, episode: Episode, class_text: torch.Tensor,
                config: finetune.CdfslConfig, cache: feature_cache.FeatureCache | None = None) -> dict[str, torch.Tensor]:
    """Fine-tune on ``episode``'s support set and score its queries, through the cache.

    ``class_text`` (C, d): the prompt features of every class of ``dataset``; the episode reads its
    rows. Returns ``accuracy``, ``predictions``, ``checkpoints`` (query accuracy after each
    ``config.checkpoints``-th of training), ``history`` (iterations x ``finetune.STEP_LOG``) and, with
    boxes, ``localisation_cls`` / ``localisation_text`` / ``localisation_chance`` per query.
    """
    text = class_text[list(episode.classes)]

    def compute():
        _, history, result = episode_runs.train_and_score(handle, dataset, episode, text, config)
        result["history"] = torch.tensor(history.to_numpy(dtype=np.float64)).reshape(len(history), len(finetune.STEP_LOG))
        return result

    return feature_cache.cached(handle, dataset, "cdfsl", episode_runs.episode_settings(episode, config, text), compute,
                                cache=cache)


def history_frame(result: dict[str, torch.Tensor]) -> pd.DataFrame:
    """A cached run's ``history`` tensor as a DataFrame with ``finetune.STEP_LOG`` columns."""
    return pd.DataFrame(result["history"].numpy(), columns=list(finetune.STEP_LOG))


def run_episodes(handle: models.ModelHandle, dataset, episodes: Sequence[Episode], class_text: torch.Tensor,
                 config: finetune.CdfslConfig, cache: feature_cache.FeatureCache | None = None,
                 desc: str | None = None) -> list[dict[str, torch.Tensor]]:
    """``run_episode`` over ``episodes`` with a progress bar."""
    return [run_episode(handle, dataset, e, class_text, config, cache)
            for e in tqdm(episodes, desc=desc or "episodes", disable=None, leave=False)]


def results(handle: models.ModelHandle, cfg: dict, cache: feature_cache.FeatureCache, job: EpisodeJob,
            data_root: str | Path | None = None) -> list[dict[str, torch.Tensor]]:
    """Every episode of ``job``, trained (or read from the cache) and scored."""
    dataset = pool(cfg, job.target, data_root)
    return run_episodes(handle, dataset, episodes(cfg, dataset, job.shots, job.seed),
                        method_text(handle, cfg, dataset, cache, job.method),
                        config(cfg, job.method, job.seed, job.target), cache,
                        desc=f"{job.method} {job.target} {job.shots}-shot")


EXPERIMENT = Experiment("cdfsl", "CDFSL", "CDFSL job(s)", results)  # block, available, prefetch


def table_jobs(cfg: dict, targets: Sequence[str], methods: Sequence[str] = MAIN,
               shots: Sequence[int] | None = None) -> list[EpisodeJob]:
    shots = shots if shots is not None else EXPERIMENT.block(cfg).get("shots", [1, 5])
    return [EpisodeJob(t, m, k) for t in targets for k in shots for m in methods]


def present_targets(cfg: dict, data_root: str | Path | None = None) -> tuple[list[str], dict, str | None]:
    """(the ``cdfsl.targets`` that open, {name: why not} for the others, the focus target): the focus is
    ``cdfsl.focus`` when present, else the first target present, with a printed note
    (``notebook.pick``). No target opening is an error naming the setting, ``DATA_ROOT`` and each
    target's reason."""
    wanted = list(EXPERIMENT.block(cfg)["targets"])
    names, skipped = EXPERIMENT.available(cfg, wanted, data_root)
    if not names:
        root = locations.data_root(data_root)
        where = f"DATA_ROOT={root}" if root is not None else "DATA_ROOT is not set"
        reasons = "; ".join(f"{n}: {why}" for n, why in skipped.items()) or "the list is empty"
        raise notebook.NoDatasetError(f"none of the CDFSL targets of `cdfsl.targets` ({wanted}) opens ({where}): "
                                      f"{reasons}. Point DATA_ROOT at them or set `targets` to datasets you have")
    return names, skipped, notebook.pick(cfg, "cdfsl.focus", names)


def map_targets(cfg: dict, present: Sequence[str]) -> list[str]:
    """The targets of the attention-map figures: those of ``cdfsl.map_targets`` present, else the first
    target present, with a printed note."""
    wanted = list(EXPERIMENT.block(cfg).get("map_targets") or [])
    chosen = [t for t in wanted if t in present]
    if not chosen and present:
        print(f"`cdfsl.map_targets` is {wanted}, none of them among the targets present ({list(present)}): "
              f"using {present[0]!r}")
        chosen = [present[0]]
    return chosen


def clip_lora_targets(cfg: dict, available: Sequence[str]) -> list[str]:
    """The targets of the CLIP-LoRA / D-Trap rows among ``available``: the ``clip_lora`` block's
    ``targets`` (null: every target)."""
    chosen = EXPERIMENT.block(cfg).get("clip_lora", {}).get("targets")
    return [t for t in available if chosen is None or t in chosen]


def dtrap_jobs(cfg: dict, available: Sequence[str], focus: str | None = None) -> list[EpisodeJob]:
    """The jobs of notebook 03's D-Trap section: ``CHECKPOINT_ROWS`` on every CLIP-LoRA target and
    shot, and ``DTRAP_ROWS`` on the focus target (default ``cdfsl.focus``) at the largest shot."""
    opts = EXPERIMENT.block(cfg)
    focus = opts["focus"] if focus is None else focus
    jobs = table_jobs(cfg, clip_lora_targets(cfg, available), CHECKPOINT_ROWS)
    if focus in available:
        jobs += table_jobs(cfg, [focus], DTRAP_ROWS, [max(opts["shots"])])
    return list(dict.fromkeys(jobs))
