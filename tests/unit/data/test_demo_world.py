"""lib.data.demo_world: a deterministic world with boxes, disjoint digit pools and validated knobs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.data import demo_world


def test_rendering_is_deterministic(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))  # each split rendered here, not read from a store
    a = demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=20)
    b = demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=20)
    assert a.fingerprint == b.fingerprint
    drawn = [demo_world.render(a.spec, a.digit_indices, seed=1) for _ in range(2)]
    assert np.array_equal(drawn[0][0], drawn[1][0]) and np.array_equal(a.images, drawn[0][0])


def test_images_are_rendered_once_and_only_when_read(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    calls = []
    render = demo_world.render
    monkeypatch.setattr(demo_world, "render", lambda *a, **k: calls.append(a) or render(*a, **k))
    ds = demo_world.DemoDataset(demo_world.DOMAINS["colour"], "test", n=20)
    # what a run with cached features reads: the size, the labels, the fingerprint
    assert len(ds) == 20 and ds.fingerprint and ds.labels.shape == (20,)
    assert calls == []
    images, boxes = ds.images, ds.boxes
    image, label = ds[3]
    assert len(calls) == 1 and images.shape == (20, 32, 32, 3) and boxes.shape == (20, 4)
    # the labels read without rendering are the rendered ones
    assert np.array_equal(ds.labels.numpy(), render(*calls[0][:2], seed=1)[1])
    # a later process reads the stored renders instead of drawing them again
    assert ds.render_path().is_file() and ds.render_path().parent == tmp_path / "demo-renders"
    again = demo_world.DemoDataset(demo_world.DOMAINS["colour"], "test", n=20)
    assert np.array_equal(again.images, images) and torch.equal(again.boxes, boxes) and len(calls) == 1


def test_bad_stored_renders_are_rendered_again(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    first = demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=6)
    images = first.images
    first.render_path().write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match=r"stored digits-world renders .* are unreadable .*rendering again"):
        assert np.array_equal(demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=6).images, images)
    smaller = demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=6)
    np.savez(smaller.render_path(), images=images[:3], boxes=first.boxes.numpy()[:3])
    with pytest.warns(UserWarning, match="have the wrong shape"):
        assert np.array_equal(smaller.images, images)


def test_pools_are_disjoint_and_cover_the_digits():
    train, held_out = demo_world.digit_pools(0)
    assert not set(train) & set(held_out)
    assert len(train) + len(held_out) == 1797


def test_train_and_test_splits_use_different_digits():
    train = demo_world.DemoDataset(demo_world.DOMAINS["clean"], "train", n=50)
    test = demo_world.DemoDataset(demo_world.DOMAINS["clean"], "test", n=50)
    assert not set(train.digit_indices) & set(test.digit_indices)


@pytest.mark.parametrize("domain", sorted(demo_world.DOMAINS))
def test_boxes_hold_the_digit(domain):
    ds = demo_world.DemoDataset(demo_world.DOMAINS[domain], "test", n=30)
    canvas = ds.spec.canvas
    for i in range(len(ds)):
        x0, y0, x1, y1 = ds.boxes[i].tolist()
        assert 0 <= x0 < x1 <= canvas and 0 <= y0 < y1 <= canvas
    if domain == "clean":  # nothing but the digit: every lit pixel lies in its box
        for i in range(len(ds)):
            x0, y0, x1, y1 = ds.boxes[i].tolist()
            outside = ds.images[i].copy()
            outside[y0:y1, x0:x1] = 0
            assert outside.max() == 0


def test_knobs_change_the_images_and_the_fingerprint():
    mild = demo_world.DemoDataset(demo_world.domain_spec("colour", colour=0.2), "test", n=10)
    strong = demo_world.DemoDataset(demo_world.domain_spec("colour", colour=0.9), "test", n=10)
    assert mild.fingerprint != strong.fingerprint
    assert not np.array_equal(mild.images, strong.images)


def test_bad_knob_names_the_domain_and_knob():
    with pytest.raises(ValueError, match=r"domain 'colour': colour=1.5 is outside \[0, 1\]"):
        demo_world.domain_spec("colour", colour=1.5)
    with pytest.raises(KeyError, match="unknown demo domain 'fog'"):
        demo_world.domain_spec("fog")


def test_too_many_images_is_an_error():
    with pytest.raises(ValueError, match="n=5000 exceeds"):
        demo_world.DemoDataset(demo_world.DOMAINS["clean"], "test", n=5000)


def test_items_are_rgb_images_with_labels():
    ds = demo_world.DemoDataset(demo_world.DOMAINS["clutter"], "test", n=5)
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (64, 64)
    assert ds.classnames[label] in demo_world.CLASSNAMES
