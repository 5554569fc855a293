"""Profiles: the same code at three scales, as data (``lib/runtime/profiles/<name>.yaml``).

``demo`` (default: any CPU, offline), ``eurosat`` (CPU, the EuroSAT subset as a real target) and
``paper`` (GPU, the papers' backbones and datasets). A notebook's parameters override its profile by
one rule (``apply``): an empty parameter (None, "", [] or {}) keeps the profile's value, anything else
replaces it; a dotted name (``fair.focus``, ``fair.config.epochs``) sets a key inside a block. A
profile is never a code branch: code reads the resolved values, never the profile's name. A profile
may also be a YAML file of your own, named by its path (``profile="/path/mine.yaml"``): the same keys,
checked the same way (the paper-profile smoke runs write the paper profile at a smaller size so).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"

# every key a profile may hold, with the type its value must have
SCHEMA: dict[str, tuple[type, ...]] = {
    "profile": (str,),
    "model": (str,),
    "pretrained": (str, type(None)),
    "device": (str,),
    # torch CPU threads of every kernel (lib.runtime.numerics.CPU_THREADS: the committed demo outputs'); null: torch's default
    "cpu_threads": (int, type(None)),
    "batch_size": (int,),
    "seed": (int,),
    "templates": (str,),
    "datasets": (list,),
    "demo_test_size": (int, type(None)),
    # zero-shot scoring (notebook 01)
    "class_prompt": (str,),  # the single template: CLIP (single) and WCA's description weights
    "descriptors": (dict,),  # dataset name or glob -> descriptor file, or {path, format, period}
    "n_crops": (int,),
    "alpha": (float, int),
    "beta": (float, int),
    "theta": (float, int),
    "eps": (float, int),
    "crop_seeds": (list,),
    "timing_images": (int,),  # images per method in notebook 01's wall-clock timing
    "sweep_dataset": (str,),  # one of `datasets`: sensitivity sweeps, timing, interpretability
    "sweep_size": (int, type(None)),  # images per sweep set (theta, alpha, seeds); null: all
    "shift_datasets": (list,),  # distribution-shift table (LaZSL Table 2 / demo shifted domains)
    "paper_reference": (bool,),  # show the papers' numbers beside ours (paper profile only)
    # FAIR (notebooks 02 and 04): lib.fair.FairConfig fields plus the datasets and split sizes
    "fair": (dict,),
    # cross-domain few-shot (notebook 03): targets, shots, episodes, lib.cdfsl.CdfslConfig overrides
    "cdfsl": (dict,),
    # the parts world (notebook 05 and a section of 01-04): its model, domains, seeds and crop settings (demo profile only)
    "parts": (dict,),
}


class ProfileError(ValueError):
    """An unknown profile, key or a value of the wrong type; the message names it."""


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _check(key: str, value, source: str) -> None:
    if key not in SCHEMA:
        raise ProfileError(f"{source}: unknown parameter {key!r}; known: {sorted(SCHEMA)}")
    allowed = SCHEMA[key]
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise ProfileError(f"{source}: parameter {key!r} must be {names}, got {type(value).__name__} {value!r}")


def is_empty(value) -> bool:
    """Whether a notebook parameter is left empty (None, "", [] or {}): the profile's value stays."""
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def apply(settings: dict, parameters: dict, source: str = "notebook parameter") -> dict:
    """A copy of ``settings`` with every non-empty parameter set. ``"fair.focus"`` sets ``focus`` in the
    ``fair`` block (``"fair.config.epochs"`` one level deeper); top-level keys are checked against
    ``SCHEMA``, block keys where the block is read (its config dataclass names unknown ones)."""
    out = copy.deepcopy(settings)
    for name, value in parameters.items():
        if is_empty(value):
            continue
        *path, key = name.split(".")
        if not path:
            _check(key, value, source)
        target = out
        for i, part in enumerate(path):
            if not i:
                _check(part, target.get(part, {}), source)  # a known block
            inner = target.get(part)
            if inner is None:
                inner = target[part] = {}
            elif not isinstance(inner, dict):
                raise ProfileError(f"{source} {name!r}: {'.'.join(path[:i + 1])} is not a block of settings")
            target = inner
        target[key] = value
    return out


def path_of(name: str) -> Path:
    """The YAML file of profile ``name``: ``profiles/<name>.yaml``, or ``name`` itself when it is a path
    to a ``.yaml`` file."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ProfileError(f"profile file not found: {path}")
        return path
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ProfileError(f"unknown profile {name!r}; available: {available()} (or the path of a .yaml file)")
    return path


def load(name: str = "demo", **overrides) -> dict:
    """The resolved settings of profile ``name`` with ``overrides`` applied (``apply``'s rule)."""
    path = path_of(name)
    settings = yaml.safe_load(path.read_text())
    for key, value in settings.items():
        _check(key, value, str(path))
    return apply(settings, overrides)


def dataclass_from_settings(cls, settings: dict, what: str):
    """A config dataclass ``cls`` from a profile block's settings: an unknown key raises an error naming
    it (``what`` names the block, e.g. "FAIR"), and lists become tuples for tuple fields (YAML has no
    tuples)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ValueError(f"unknown {what} parameter(s) {unknown}; known: {sorted(fields)}")
    values = {k: tuple(v) if str(fields[k].type).startswith("tuple") and isinstance(v, list) else v
              for k, v in settings.items()}
    return cls(**values)
