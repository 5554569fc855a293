"""lib.runtime.profiles: profiles are data; notebook parameters override them with type checks."""
from __future__ import annotations

import pytest

from lib.data.registry import canonical_name
from lib.runtime import profiles


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


def test_paper_profile_lists_the_lazsl_datasets_by_known_names():

    cfg = profiles.load("paper")
    for name in ("ImageNet", "CUB", "OxfordPets", "Food101", "Places365"):
        assert name in cfg["datasets"]
    assert cfg["shift_datasets"] == ["ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR"]
    for name in cfg["datasets"] + cfg["shift_datasets"]:
        assert canonical_name(name) == name


def test_float_parameters_accept_ints_but_not_strings():
    assert profiles.load("demo", theta=1)["theta"] == 1
    with pytest.raises(profiles.ProfileError, match="parameter 'eps' must be float or int"):
        profiles.load("demo", eps="0.1")
