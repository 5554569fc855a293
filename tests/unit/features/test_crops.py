"""lib.features.crops: seeded square crops inside the image, encoded through the cache like the full view."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib import models
from lib.data.demo_world import DemoDataset, domain_spec
from lib.features import cache as feature_cache
from lib.features import crops


@pytest.fixture(scope="module")
def scenes():
    return DemoDataset(domain_spec("clutter"), "test", n=5, seed=0)


@pytest.mark.parametrize("width,height", [(64, 64), (100, 37), (37, 100)])
def test_boxes_are_squares_of_the_drawn_scale_inside_the_image(width, height):
    spec = crops.CropSpec(n=500, alpha=0.5, beta=0.9, seed=3)
    boxes = crops.sample_boxes(width, height, spec, index=7)
    assert boxes.shape == (500, 4)
    x0, y0, x1, y1 = boxes.T
    side = x1 - x0
    assert np.array_equal(side, y1 - y0)
    short = min(width, height)
    assert side.min() >= np.floor(0.5 * short) and side.max() <= np.floor(0.9 * short)
    assert side.max() - side.min() >= 0.3 * short  # the scales really spread over U(alpha, beta)
    assert x0.min() >= 0 and y0.min() >= 0 and x1.max() <= width and y1.max() <= height
    # positions cover the free range, not just one corner
    assert x0.max() > 0.5 * (width - np.floor(0.9 * short)) or width == short


def test_same_seed_same_boxes_different_seed_or_image_different():
    spec = crops.CropSpec(n=10, seed=1)
    a = crops.sample_boxes(64, 64, spec, 4)
    assert np.array_equal(a, crops.sample_boxes(64, 64, crops.CropSpec(n=10, seed=1), 4))
    assert not np.array_equal(a, crops.sample_boxes(64, 64, crops.CropSpec(n=10, seed=2), 4))
    assert not np.array_equal(a, crops.sample_boxes(64, 64, spec, 5))


@pytest.mark.parametrize("kwargs,match", [
    ({"n": 0}, "crop count n=0"),
    ({"alpha": 0.0}, "alpha=0.0"),
    ({"alpha": 0.9, "beta": 0.5}, "alpha=0.9, beta=0.5"),
    ({"beta": 1.5}, "beta=1.5"),
])
def test_bad_crop_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        crops.CropSpec(**kwargs)


def test_crop_features_match_encoding_each_crop_by_hand(handle, scenes, tmp_path):
    spec = crops.CropSpec(n=6, seed=0)
    feats = crops.crop_features(handle, scenes, spec, cache=feature_cache.FeatureCache(tmp_path))
    assert feats["crops"].shape == (5, 6, handle.model.visual.output_dim)
    assert feats["global"].shape == (5, handle.model.visual.output_dim)
    image, _ = scenes[3]
    box = feats["boxes"][3, 2].tolist()
    assert box == crops.sample_boxes(image.width, image.height, spec, 3)[2].tolist()
    by_hand = models.encode_images(handle, handle.preprocess(image.crop(tuple(box)))[None])[0]
    torch.testing.assert_close(feats["crops"][3, 2], by_hand, atol=1e-5, rtol=0)
    glob = feature_cache.image_features(handle, scenes, cache=feature_cache.FeatureCache(tmp_path / "g"))
    torch.testing.assert_close(feats["global"], glob, atol=1e-5, rtol=0)
    assert torch.allclose(feats["crops"].norm(dim=-1), torch.ones(5, 6), atol=1e-5)


def test_crop_features_are_cached_and_keyed_by_every_setting(handle, scenes, tmp_path):
    cache = feature_cache.FeatureCache(tmp_path)
    first = crops.crop_features(handle, scenes, crops.CropSpec(n=4, seed=0), cache=cache)
    calls = handle.encode_calls
    again = crops.crop_features(handle, scenes, crops.CropSpec(n=4, seed=0), cache=cache)
    assert handle.encode_calls == calls and torch.equal(first["crops"], again["crops"])
    for other in (crops.CropSpec(n=4, seed=1), crops.CropSpec(n=4, alpha=0.3, seed=0), crops.CropSpec(n=5, seed=0)):
        changed = crops.crop_features(handle, scenes, other, cache=cache)
        assert handle.encode_calls > calls
        calls = handle.encode_calls
        assert not torch.equal(changed["boxes"][:, :4], first["boxes"])


def test_chunks_and_batch_size_change_nothing(handle, scenes, tmp_path):
    spec = crops.CropSpec(n=4, seed=0)
    whole = crops.crop_features(handle, scenes, spec, cache=feature_cache.FeatureCache(tmp_path / "a"))
    chunked = crops.crop_features(handle, scenes, spec, cache=feature_cache.FeatureCache(tmp_path / "b"),
                                  chunk=2, batch_size=3)
    for key in whole:
        torch.testing.assert_close(whole[key], chunked[key], atol=1e-5, rtol=0)
    parts = list(crops.crop_feature_chunks(handle, scenes, spec, cache=feature_cache.FeatureCache(tmp_path / "b"), chunk=2))
    assert [list(r) for r, _ in parts] == [[0, 1], [2, 3], [4]]


def test_cls_tokens_come_with_the_crops(handle, scenes, tmp_path):
    feats = crops.crop_features(handle, scenes, crops.CropSpec(n=3), cache=feature_cache.FeatureCache(tmp_path),
                                with_cls=True)
    width = handle.model.visual.transformer.width
    assert feats["global_cls"].shape == (5, width) and feats["crops_cls"].shape == (5, 3, width)
    image, _ = scenes[0]
    tokens = models.image_tokens(handle, handle.preprocess(image)[None])
    torch.testing.assert_close(feats["global_cls"][0], tokens["cls"][0], atol=1e-5, rtol=0)
