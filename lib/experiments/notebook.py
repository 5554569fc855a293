"""The preamble every notebook runs: its profile with the notebook's parameters, the model, the cache
and the writer of its outputs, in one call (``start``)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from lib import models
from lib.features.cache import FeatureCache
from lib.report.outputs import Saver
from lib.runtime import profiles


class Session(NamedTuple):
    """What a notebook works with: ``cfg, handle, cache, save, root = notebook.start(...)``."""

    cfg: dict  # the profile's settings with the notebook's parameters applied
    handle: models.ModelHandle
    cache: FeatureCache
    save: Saver
    root: str | None  # the data root (None: $DATA_ROOT)


def start(notebook: str, profile: str, parameters: dict, data_root: str = "",
          figures_root: str | Path = "") -> Session:
    """Resolve ``profile`` with ``parameters`` (empty ones keep the profile's value; ``"fair.focus"``
    names a key inside a block: ``lib.runtime.profiles.apply``), load its model and open the cache and
    the output writer of ``notebook``."""
    cfg = profiles.load(profile, **parameters)
    handle = models.load_model(cfg["model"], cfg["pretrained"], cfg["device"])
    return Session(cfg, handle, FeatureCache(), Saver(notebook, figures_root or None), data_root or None)
