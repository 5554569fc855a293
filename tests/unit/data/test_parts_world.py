"""The parts world's structure: sibling classes, part descriptions, seeded renders with part boxes."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from lib.data import parts_world as world
from lib.data.base import DESCRIPTOR_DIR
from lib.data.parts_images import PartsWorld
from lib.features.descriptors import dclip_sentence


def test_siblings_share_all_but_their_distinguishing_part():
    for classes in (world.BASE_CLASSES, world.NOVEL_CLASSES):
        groups = {}
        for c in classes:
            groups.setdefault(c.group, []).append(c)
        for members in groups.values():
            assert len(members) == 3
            varies = {c.varies for c in members}
            assert len(varies) == 1
            p = world.PARTS.index(varies.pop())
            for a, b in itertools.combinations(members, 2):
                differ = [i for i in range(3) if a.values[i] != b.values[i]]
                assert differ == [p], (a, b)


def test_novel_classes_are_new_combinations_and_families():
    base = {c.values for c in world.BASE_CLASSES}
    assert not base & {c.values for c in world.NOVEL_CLASSES}
    assert not {c.group for c in world.BASE_CLASSES} & {c.group for c in world.NOVEL_CLASSES}


@pytest.mark.parametrize("fmt", ["dclip", "cupl"])
def test_one_description_per_part_naming_its_value(fmt):
    table = world.descriptions(world.BASE_CLASSES, fmt)
    for c in world.BASE_CLASSES:
        assert len(table[c.name]) == len(world.PARTS)
        for part, text in zip(world.PARTS, table[c.name]):
            assert part in text and c.value(part) in text


def test_world_dclip_sentence_is_dclips_rule():
    for classes in (world.BASE_CLASSES, world.NOVEL_CLASSES):
        for name, descriptors in world.descriptions(classes, "dclip").items():
            for d in descriptors:
                assert world.dclip_sentence(name, d) == dclip_sentence(name, d)
    with pytest.raises(ValueError, match="must start with 'has '"):
        world.dclip_sentence("pale vorn", "a blue tail")


def test_committed_descriptor_files_are_what_the_world_writes(tmp_path):
    for path in world.write_descriptor_files(tmp_path):
        committed = DESCRIPTOR_DIR / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: rerun write_descriptor_files()"
        assert isinstance(json.loads(committed.read_text()), dict)


def test_renders_are_seeded_and_splits_disjoint(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "a"))
    a = PartsWorld("fine", "test", n_per_class=1, seed=3)
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "b"))  # rendered again, not read from a's store
    b = PartsWorld("fine", "test", n_per_class=1, seed=3)
    assert np.array_equal(a.images, b.images) and torch.equal(a.part_boxes, b.part_boxes)
    assert a.fingerprint == b.fingerprint
    train = PartsWorld("fine", "train", n_per_class=1, seed=3)
    assert not np.array_equal(a.images, train.images) and a.fingerprint != train.fingerprint
    assert PartsWorld("fine", "test", n_per_class=1, seed=4).fingerprint != a.fingerprint


@pytest.mark.parametrize("domain", sorted(world.DOMAINS))
def test_part_boxes_lie_inside_the_canvas_left_to_right(domain):
    data = PartsWorld(domain, "test", n_per_class=2)
    boxes = data.part_boxes
    assert data.images.shape[1:] == (128, 128, 3)
    assert (boxes[..., 0] >= 0).all() and (boxes[..., 2] <= 128).all()
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()
    centres = (boxes[..., 0] + boxes[..., 2]) / 2
    assert (centres[:, 0] < centres[:, 1]).all() and (centres[:, 1] < centres[:, 2]).all()


def test_fine_domain_shrinks_the_distinguishing_part_only():
    clean = PartsWorld("clean", "test", n_per_class=4)
    fine = PartsWorld("fine", "test", n_per_class=4)
    area = lambda b: ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).float()  # noqa: E731
    varies = torch.tensor([world.PARTS.index(fine.class_defs[int(y)].varies) for y in fine.labels])
    rel = area(fine.part_boxes) / area(fine.part_boxes).sum(1, keepdim=True)
    rel_clean = area(clean.part_boxes) / area(clean.part_boxes).sum(1, keepdim=True)
    own = rel[torch.arange(len(varies)), varies]
    own_clean = rel_clean[torch.arange(len(varies)), varies]
    assert (own < 0.5 * own_clean).all()


def test_bad_domain_settings_name_the_knob():
    with pytest.raises(ValueError, match="fine=1.5"):
        world.domain_spec("fine", fine=1.5)
    with pytest.raises(KeyError, match="unknown parts-world domain 'blurry'"):
        world.domain_spec("blurry")
    with pytest.raises(ValueError, match="n_per_class=0"):
        PartsWorld("clean", "test", n_per_class=0)


def test_cover_fraction_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    views = torch.from_numpy(np.sort(rng.integers(0, 128, size=(2, 5, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(2, 5, 4))
    parts = torch.from_numpy(np.sort(rng.integers(0, 128, size=(2, 3, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(2, 3, 4))
    got = world.cover_fraction(views, parts)
    for b in range(2):
        for n in range(5):
            for p in range(3):
                vx0, vy0, vx1, vy1 = views[b, n].tolist()
                px0, py0, px1, py1 = parts[b, p].tolist()
                inter = max(0, min(vx1, px1) - max(vx0, px0)) * max(0, min(vy1, py1) - max(vy0, py0))
                assert got[b, n, p].item() == pytest.approx(inter / max(1, (px1 - px0) * (py1 - py0)))


def test_parts_domains_open_by_name_with_knobs():
    from lib.data import open_datasets

    opened, skipped = open_datasets(["parts-colour@colour=0.4", "parts-novel"], "train", seed=2, demo_size=20)
    assert not skipped
    colour, novel = opened["parts-colour@colour=0.4"], opened["parts-novel"]
    assert colour.name == "parts-colour@colour=0.4" and colour.spec.colour == 0.4 and colour.split == "train"
    assert len(colour) == 24 and len(novel) == 27  # 20 images rounded up to whole classes (12 and 9 classes)
    assert novel.classnames == [c.name for c in world.NOVEL_CLASSES]
    with pytest.raises(ValueError, match="write knobs as <knob>=<value>"):
        open_datasets(["parts-colour@colour"])



def test_stored_renders_are_read_back_equal_and_bad_files_rendered_again(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    first = PartsWorld("fine", "test", n_per_class=2, seed=3)
    path = first.render_path()
    assert path.is_file() and path.parent == tmp_path / "parts-renders"
    again = PartsWorld("fine", "test", n_per_class=2, seed=3)  # read from the file, not rendered
    assert np.array_equal(again.images, first.images)
    assert torch.equal(again.part_boxes, first.part_boxes) and torch.equal(again.boxes, first.boxes)
    assert np.array_equal(again.images[5], first.render(5, int(first.labels[5]))[0])  # equal to a fresh render
    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="are unreadable .*rendering again"):
        redone = PartsWorld("fine", "test", n_per_class=2, seed=3)
    assert np.array_equal(redone.images, first.images)
    assert PartsWorld("fine", "test", n_per_class=2, seed=4).render_path() != path  # the seed is in the name
