"""OpenAI's weights were trained with QuickGELU: every tag whose open_clip registry entry says so loads
into a QuickGELU model (offline: the model is built on the meta device, no weights are fetched)."""
from __future__ import annotations

import warnings

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from lib import models
from lib.models import loading

QUICK_TAGS = [(name, tag) for name, tag in open_clip.list_pretrained()
              if tag == "openai" or open_clip.get_pretrained_cfg(name, tag).get("quick_gelu")]


@pytest.fixture
def offline_build(monkeypatch):
    """load_model with a tag, minus the download: no checkpoint path, so open_clip keeps its random init."""
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, cache_dir=None: "")
    monkeypatch.setattr(open_clip, "get_tokenizer", lambda name: None)  # some need the HF hub

    def build(name: str, tag: str) -> models.ModelHandle:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # open_clip's "QuickGELU mismatch" warning fails here
            return models.load_model(name, tag, device="meta")

    return build


def _activations(model: torch.nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, (QuickGELU, torch.nn.GELU))}


def test_every_openai_tag_is_listed():
    openai = [(n, t) for n, t in QUICK_TAGS if t == "openai"]
    assert {"ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50"} <= {n for n, _ in openai}
    assert all(loading.quick_gelu_for(n, t) for n, t in QUICK_TAGS)


@pytest.mark.parametrize("name,tag", QUICK_TAGS, ids=[f"{n}:{t}" for n, t in QUICK_TAGS])
def test_quick_gelu_tags_build_quick_gelu_models(offline_build, name, tag):
    handle = offline_build(name, tag)
    assert _activations(handle.model) == {QuickGELU}, f"{name} / {tag}"
    assert handle.config["quick_gelu"] is True


@pytest.mark.parametrize("name,tag", [("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-16", "laion2b_s34b_b88k")])
def test_other_tags_keep_gelu(offline_build, name, tag):
    assert not loading.quick_gelu_for(name, tag)
    assert _activations(offline_build(name, tag).model) == {torch.nn.GELU}


def test_activation_is_part_of_the_fingerprint():
    """Features cached from a GELU build of the same weights must not be read for a QuickGELU one."""
    torch.manual_seed(0)
    gelu = models.load_model(models.DEMO_MODEL, None)
    quick = models.ModelHandle(gelu.model, gelu.preprocess, gelu.tokenizer, gelu.name, None, gelu.device,
                               quick_gelu=True)
    assert quick.fingerprint != gelu.fingerprint
