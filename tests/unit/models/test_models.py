"""lib.models: loading (names, tags, local checkpoints, errors), encoding, tokens, attention maps."""
from __future__ import annotations

import json
import logging

import open_clip
import pytest
import torch
import torch.nn.functional as F

from lib import models
from lib.models.architectures import untrained


@pytest.fixture(scope="module")
def handle():
    torch.manual_seed(0)
    return models.load_model(models.DEMO_MODEL, None)


@pytest.fixture
def pixels(handle):
    torch.manual_seed(1)
    return torch.randn(3, 3, handle.image_size, handle.image_size)


def test_unknown_model_name_is_named_with_suggestions():
    with pytest.raises(models.ModelLoadError, match=r"unknown open_clip model name 'ViT-B-33'.*ViT-B-32"):
        models.load_model("ViT-B-33", None)


def test_unknown_pretrained_tag_is_named():
    with pytest.raises(models.ModelLoadError, match=r"no open_clip pretrained tag 'opneai'.*openai"):
        models.load_model("ViT-B-32", "opneai")


def test_missing_checkpoint_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(models.ModelLoadError, match="checkpoint file not found: .*nowhere/weights.pt"):
        models.load_model(models.DEMO_MODEL, str(missing))


def test_demo_tag_only_for_the_demo_model():
    with pytest.raises(models.ModelLoadError, match="pretrained='demo' exists only for"):
        models.load_model("ViT-B-32", "demo")


def test_local_checkpoint_round_trip(handle, pixels, tmp_path):
    path = tmp_path / "demo.pt"
    torch.save(handle.model.state_dict(), path)
    loaded = models.load_model(models.DEMO_MODEL, str(path))
    assert loaded.fingerprint == handle.fingerprint
    assert torch.equal(models.encode_images(loaded, pixels), models.encode_images(handle, pixels))


def test_checkpoint_of_another_architecture_is_named(tmp_path):
    cfg = open_clip.get_model_config(models.DEMO_MODEL)
    cfg["vision_cfg"]["width"] = 64
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "demo-narrow-vit.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_dir)
    other = open_clip.create_model("demo-narrow-vit")
    path = tmp_path / "narrow.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(models.ModelLoadError, match=r"narrow.pt does not fit architecture 'demo-tiny-vit'"):
        models.load_model(models.DEMO_MODEL, str(path))


def test_fingerprint_follows_weights(handle):
    other = models.load_model(models.DEMO_MODEL, None)  # another random init
    assert other.fingerprint != handle.fingerprint


def test_encode_images_is_normalised_and_counts_calls(handle, pixels):
    before = handle.encode_calls
    feats = models.encode_images(handle, pixels)
    assert feats.shape == (3, handle.model.visual.output_dim)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert handle.encode_calls == before + 1


def test_encode_texts_matches_open_clip(handle):
    texts = ["a handwritten seven.", "a handwritten one."]
    ours = models.encode_texts(handle, texts, batch_size=1)
    with torch.no_grad():
        ref = F.normalize(handle.model.encode_text(handle.tokenizer(texts)), dim=-1)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_image_tokens_shapes_and_projection(handle, pixels):
    out = models.image_tokens(handle, pixels)
    width = handle.model.visual.transformer.width
    gh, gw = handle.patch_grid
    assert out["cls"].shape == (3, width)
    assert out["patches"].shape == (3, gh * gw, width)
    # the pre-projection [CLS] token, projected and normalised, is the global feature
    assert torch.allclose(F.normalize(out["cls"] @ handle.model.visual.proj, dim=-1), out["features"], atol=1e-5)
    assert torch.allclose(out["features"], models.encode_images(handle, pixels), atol=1e-5)


def test_attention_maps_are_distributions_over_the_patch_grid(handle, pixels):
    maps = models.attention_maps(handle, pixels)
    heads = handle.model.visual.transformer.resblocks[-1].attn.num_heads
    assert maps.shape == (3, heads, *handle.patch_grid)
    assert (maps >= 0).all()
    assert torch.allclose(maps.flatten(2).sum(-1), torch.ones(3, heads), atol=1e-5)


def test_attention_maps_match_torch_attention_weights(handle, pixels):
    """The recomputed weights equal nn.MultiheadAttention's own per-head weights on the same input."""
    attn = handle.model.visual.transformer.resblocks[-1].attn
    captured = {}
    def hook(module, args, kwargs):
        captured["x"] = args[0] if args else kwargs["query"]

    remove = attn.register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        handle.model.visual(pixels)
    remove.remove()
    x = captured["x"]
    with torch.no_grad():
        _, weights = attn(x, x, x, need_weights=True, average_attn_weights=False)
    cls_row = weights[:, :, 0, 1:]
    expected = cls_row / cls_row.sum(-1, keepdim=True)
    ours = models.attention_maps(handle, pixels).flatten(2)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_pretraining_starts_from_random_weights_without_open_clips_warning(caplog):
    # a cold main job pretrains inside notebook 01's kernel: open_clip's "No pretrained weights loaded"
    # warning would be stored there, and a warm run (the cached checkpoint, no warning) fails nbval
    with caplog.at_level("WARNING"):
        open_clip.create_model_and_transforms(models.DEMO_MODEL, pretrained=None)
    assert any("No pretrained weights" in r.getMessage() for r in caplog.records)  # what untrained holds back
    caplog.clear()
    with caplog.at_level("WARNING"):
        torch.manual_seed(0)
        model, preprocess = untrained(models.DEMO_MODEL)
    assert not caplog.records
    torch.manual_seed(0)
    reference, _, _ = open_clip.create_model_and_transforms(models.DEMO_MODEL, pretrained=None)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert callable(preprocess)
    assert not logging.root.filters  # logging is as it was
