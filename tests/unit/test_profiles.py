"""lib.profiles: profiles are data; notebook parameters override them with type checks."""
from __future__ import annotations

import pytest

from lib import profiles


@pytest.mark.parametrize("name", ["demo", "eurosat", "paper"])
def test_every_profile_loads(name):
    cfg = profiles.load(name)
    assert cfg["profile"] == name and set(cfg) <= set(profiles.SCHEMA)


def test_overrides_apply_and_empty_values_keep_the_profile():
    cfg = profiles.load("demo", model="ViT-B-32", pretrained="", batch_size=None)
    assert cfg["model"] == "ViT-B-32"
    assert cfg["pretrained"] == "demo" and cfg["batch_size"] == 256


def test_parameter_of_the_wrong_type_is_named():
    with pytest.raises(profiles.ProfileError, match=r"parameter 'batch_size' must be int, got str '64'"):
        profiles.load("demo", batch_size="64")
    with pytest.raises(profiles.ProfileError, match=r"parameter 'seed' must be int, got bool"):
        profiles.load("demo", seed=True)


def test_unknown_parameter_and_profile_are_named():
    with pytest.raises(profiles.ProfileError, match="unknown parameter 'n_crop'"):
        profiles.load("demo", n_crop=3)
    with pytest.raises(profiles.ProfileError, match=r"unknown profile 'gpu'.*demo"):
        profiles.load("gpu")
