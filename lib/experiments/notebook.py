"""The preamble every notebook runs: its profile with the notebook's parameters, the model, the cache
and the writer of its outputs, in one call (``start``); and the datasets it works on.

* ``start``: the settings, the model (each notebook's paper's backbone: ``backbone``), the feature cache
  and the output writer (headline numbers of real datasets apart: ``is_real_dataset``).
* ``open_setting``: the datasets a setting lists that open; none opening is an error naming the
  setting, ``DATA_ROOT`` and each dataset's reason (its expected layout).
* ``pick``: the dataset a per-profile setting names (``sweep_dataset``, ``fair.focus``, ...) when it is
  among those present, else the first present, with the reason printed: a user's own data need not
  hold the datasets the profile's settings name.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from lib import models
from lib.data import DatasetError, canonical_name
from lib.data import open_datasets as _open
from lib.features.cache import FeatureCache
from lib.report.outputs import Saver
from lib.runtime import profiles
from lib.runtime.locations import data_root as resolve_data_root

# the profile block whose `model` / `pretrained` a notebook runs (its paper's backbone); others: the top level
BACKBONE_BLOCKS = {"02_fair_ablations": "fair", "03_cdfsl_attention_maps": "cdfsl", "04_tsne_confusion": "fair",
                   "05_parts_world": "parts"}


class Session(NamedTuple):
    """What a notebook works with: ``cfg, handle, cache, save, root = notebook.start(...)``."""

    cfg: dict  # the profile's settings with the notebook's parameters applied
    handle: models.ModelHandle
    cache: FeatureCache
    save: Saver
    root: str | None  # the data root (None: $DATA_ROOT)


class NoDatasetError(DatasetError):
    """None of the datasets a setting names opens; the message names the setting, the root and why."""


def backbone(cfg: dict, block: str | None, parameters: dict) -> dict:
    """``cfg`` with the notebook's backbone: its ``model`` / ``pretrained`` parameter where given, else its
    profile block's (``fair.model``: FAIR's ViT-B/32 in the paper profile), else the profile's own."""
    settings = cfg.get(block) or {} if block else {}
    for key in ("model", "pretrained"):
        if profiles.is_empty(parameters.get(key)) and key in settings:
            cfg[key] = settings[key]
    return cfg


def is_real_dataset(name: str) -> bool:
    """Whether ``name`` is a dataset read from the data root (``lib.data``'s registry, any case)."""
    try:
        canonical_name(name)
        return True
    except DatasetError:
        return False


def start(notebook: str, profile: str, parameters: dict, data_root: str = "",
          figures_root: str | Path = "", block: str | None = None) -> Session:
    """Resolve ``profile`` with ``parameters`` (empty ones keep the profile's value; ``"fair.focus"``
    names a key inside a block: ``lib.runtime.profiles.apply``), load the notebook's model (``backbone``;
    ``block`` defaults to ``BACKBONE_BLOCKS``) and open the cache and the output writer of ``notebook``; the
    kernel computes with the profile's ``cpu_threads`` torch threads (``lib.runtime.numerics.CPU_THREADS``)."""
    cfg = backbone(profiles.load(profile, **parameters), block or BACKBONE_BLOCKS.get(notebook), parameters)
    if cfg.get("cpu_threads"):  # the kernel's torch threads: the same numbers under the main job, nbval or by hand
        torch.set_num_threads(cfg["cpu_threads"])
    handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
    save = Saver(notebook, figures_root or None, is_real=is_real_dataset)
    return Session(cfg, handle, FeatureCache(), save, data_root or None)


def setting(cfg: dict, name: str):
    """The value of a profile setting by its dotted name (``"sweep_dataset"``, ``"fair.focus"``)."""
    value = cfg
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"profile {cfg.get('profile')!r} has no setting {name!r}")
        value = value[part]
    return value


def open_setting(cfg: dict, name: str, data_root: str | Path | None = None, split: str = "test",
                 demo_size: int | None = None) -> tuple[dict, dict]:
    """(datasets by name, {name: why not} for the others) of the datasets the setting ``name`` lists
    (``"datasets"``, ``"fair.datasets"``); an error naming the setting, ``DATA_ROOT`` and each dataset's
    reason (its expected layout) when none opens."""
    names = list(setting(cfg, name))
    opened, skipped = _open(names, split, data_root, cfg["seed"], demo_size)
    if not opened:
        root = resolve_data_root(data_root)
        where = f"DATA_ROOT={root}" if root is not None else "DATA_ROOT is not set"
        reasons = "; ".join(f"{n}: {why}" for n, why in skipped.items()) or "the list is empty"
        raise NoDatasetError(f"none of the datasets of `{name}` ({names}) opens ({where}): {reasons}. Point DATA_ROOT "
                             f"at the folder that holds them in the layouts named, or set `{name}` to datasets you have")
    return opened, skipped


def pick(cfg: dict, name: str, present: Sequence[str]) -> str | None:
    """The dataset the setting ``name`` names (``"sweep_dataset"``, ``"fair.focus"``) when it is among
    ``present``, else the first of ``present``, with a printed note; None, with a note, when nothing is
    present (the cells that need it then say so and skip)."""
    wanted = setting(cfg, name)
    if wanted in present:
        return wanted
    if not present:
        print(f"`{name}` is {wanted!r}, and no dataset it could stand for is present: its cells are skipped")
        return None
    print(f"`{name}` is {wanted!r}, which is not among the datasets present ({list(present)}): using {present[0]!r}")
    return present[0]
