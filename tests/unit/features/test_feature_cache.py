"""The feature cache: warm runs encode nothing, every content change invalidates, writes are atomic."""
from __future__ import annotations

import copy
import dataclasses
import functools
import json

import pytest
import torch
import torchvision.transforms as T

from lib.data import demo_world
from lib.data.demo_world import DemoDataset
from lib.features import cache as feature_cache
from lib.features.cache import FeatureCache, cached, image_features, text_features
from lib.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

TEXTS = ["a photo of a zero.", "a photo of a one.", "a photo of a two."]


def load_seeded(seed: int = 0):
    """A random-weight demo model; the same seed gives the same weights in a new object."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return load_model("demo-tiny-vit", None)


@functools.cache
def _base_handle():
    return load_seeded(0)


def fresh_handle():
    """A new handle with the seed-0 weights: its own model copy, counters and (uncached) fingerprint."""
    base = _base_handle()
    return dataclasses.replace(base, model=copy.deepcopy(base.model), encode_calls=0)



@pytest.fixture(scope="module")
def dataset():
    return DemoDataset(demo_world.DOMAINS["clean"], "test", n=24)


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "features")


def entries(cache: FeatureCache, pattern: str = "*.pt"):
    return sorted(cache.root.rglob(pattern)) if cache.root.exists() else []


def warm_up(cache, dataset, **kwargs):
    """Fill the cache with the seed-0 handle's features; return them."""
    handle = fresh_handle()
    feats = image_features(handle, dataset, cache=cache, **kwargs)
    assert (cache.misses, cache.hits) == (1, 0)
    return feats


def assert_miss(cache, handle, before_calls, misses):
    assert cache.misses == misses and cache.hits == 0
    assert handle.encode_calls > before_calls


# -- cold / warm -----------------------------------------------------------------------------------


def test_cold_run_encodes_warm_run_does_not(cache, dataset):
    handle = fresh_handle()
    cold = image_features(handle, dataset, cache=cache)
    assert handle.encode_calls == 1 and (cache.misses, cache.hits) == (1, 0)
    assert cold.shape == (24, 128)
    assert len(entries(cache)) == 1 and len(entries(cache, "*.json")) == 1

    warm = image_features(handle, dataset, cache=cache)
    assert handle.encode_calls == 1 and (cache.misses, cache.hits) == (1, 1)
    assert torch.equal(cold, warm)


def test_new_handle_with_same_weights_hits(cache, dataset):
    first = load_seeded(0)
    cold = image_features(first, dataset, cache=cache)
    other = load_seeded(0)  # loaded the same way: another object, same content
    assert other is not first and other.model is not first.model
    warm = image_features(other, dataset, cache=cache)
    assert other.encode_calls == 0 and cache.hits == 1
    assert torch.equal(cold, warm)
    # a new FeatureCache object on the same root sees the entry too
    again = FeatureCache(cache.root)
    assert torch.equal(image_features(other, dataset, cache=again), cold) and again.hits == 1


def test_sidecar_json_records_parts(cache, dataset):
    handle = fresh_handle()
    image_features(handle, dataset, cache=cache, crop_settings={"n": 4})
    (meta_path,) = entries(cache, "*.json")
    meta = json.loads(meta_path.read_text())
    assert meta["key"] == meta_path.stem and meta_path.parent.name == meta["key"][:2]
    assert meta["parts"]["weights"] == handle.fingerprint
    assert meta["parts"]["dataset"] == dataset.fingerprint
    assert meta["parts"]["crops"] == {"n": 4}


# -- invalidation ----------------------------------------------------------------------------------


def test_changed_weights_invalidate(cache, dataset):
    cold = warm_up(cache, dataset)
    handle = fresh_handle()
    with torch.no_grad():
        next(handle.model.visual.parameters()).add_(0.5)
    feats = image_features(handle, dataset, cache=cache)
    assert_miss(cache, handle, 0, 2)
    assert not torch.equal(cold, feats)
    assert len(entries(cache)) == 2


def test_changed_preprocessing_invalidates(cache, dataset):
    warm_up(cache, dataset)
    handle = fresh_handle()
    stale_fingerprint = handle.fingerprint  # cached_property computed before the swap ...
    handle.preprocess = T.Compose([
        T.Resize(32, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(32), T.ToTensor(),
        T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    assert handle.fingerprint == stale_fingerprint
    image_features(handle, dataset, cache=cache)  # ... so only the explicit preprocess part tells
    assert_miss(cache, handle, 0, 2)


def test_changed_crop_settings_invalidate(cache, dataset):
    warm_up(cache, dataset, crop_settings={"n": 60, "scale": [0.1, 0.9], "seed": 0})
    handle = fresh_handle()
    image_features(handle, dataset, cache=cache, crop_settings={"n": 5, "scale": [0.1, 0.9], "seed": 0})
    assert_miss(cache, handle, 0, 2)
    image_features(handle, dataset, cache=cache, crop_settings=None)
    assert cache.misses == 3
    # the same settings in another key order hit
    calls = handle.encode_calls
    image_features(handle, dataset, cache=cache, crop_settings={"seed": 0, "scale": [0.1, 0.9], "n": 60})
    assert handle.encode_calls == calls and cache.hits == 1


def test_changed_split_invalidates(cache, dataset):
    warm_up(cache, dataset)
    handle = fresh_handle()
    smaller = DemoDataset(demo_world.DOMAINS["clean"], "test", n=16)
    assert image_features(handle, smaller, cache=cache).shape == (16, 128)
    assert_miss(cache, handle, 0, 2)
    shifted = DemoDataset(demo_world.domain_spec("clean", colour=0.3), "test", n=24)
    calls = handle.encode_calls
    image_features(handle, shifted, cache=cache)
    assert cache.misses == 3 and handle.encode_calls > calls


def test_changed_texts_invalidate(cache):
    handle = fresh_handle()
    first = text_features(handle, TEXTS, cache=cache)
    assert first.shape == (3, 128) and cache.misses == 1
    calls = handle.encode_calls
    again = text_features(fresh_handle(), tuple(TEXTS), cache=cache)
    assert torch.equal(first, again) and cache.hits == 1 and handle.encode_calls == calls
    text_features(handle, TEXTS[:2] + ["a photo of a three."], cache=cache)
    assert cache.misses == 2
    text_features(handle, list(reversed(TEXTS)), cache=cache)  # row order is part of the result
    assert cache.misses == 3 and handle.encode_calls > calls


def test_text_and_image_entries_do_not_collide(cache, dataset):
    handle = fresh_handle()
    image_features(handle, dataset, cache=cache)
    text_features(handle, TEXTS, cache=cache)
    assert cache.misses == 2 and len(entries(cache)) == 2


# -- location does not matter ----------------------------------------------------------------------


class Relocated(torch.utils.data.Dataset):
    """The same images reached through another name and folder: only the fingerprint should count."""

    def __init__(self, inner, root):
        self.inner, self.root, self.name = inner, root, f"copy-at-{root}"

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]

    @property
    def fingerprint(self):
        return self.inner.fingerprint


def test_equal_fingerprints_share_the_entry(cache, dataset, tmp_path):
    cold = warm_up(cache, dataset)
    handle = fresh_handle()
    rebuilt = DemoDataset(demo_world.DOMAINS["clean"], "test", n=24)
    moved = Relocated(rebuilt, tmp_path / "elsewhere")
    assert moved.fingerprint == dataset.fingerprint and moved.name != dataset.name
    assert torch.equal(image_features(handle, moved, cache=cache), cold)
    assert handle.encode_calls == 0 and cache.hits == 1


def test_dataset_without_fingerprint_is_refused(cache):
    handle = fresh_handle()
    with pytest.raises(TypeError, match="fingerprint"):
        image_features(handle, [(None, 0)], cache=cache)


# -- robustness ------------------------------------------------------------------------------------


def test_corrupt_entry_warns_and_recomputes(cache, dataset):
    cold = warm_up(cache, dataset)
    (path,) = entries(cache)
    path.write_bytes(b"not a torch file \x00\xff" * 10)
    handle = fresh_handle()
    with pytest.warns(UserWarning, match=path.name):
        feats = image_features(handle, dataset, cache=cache)
    assert_miss(cache, handle, 0, 2)
    assert torch.equal(feats, cold)
    # the entry was overwritten with a good one
    image_features(handle, dataset, cache=cache)
    assert cache.hits == 1 and handle.encode_calls == 1


def test_entry_of_wrong_type_is_treated_as_corrupt(cache):
    parts = {"kind": "test"}
    path = cache.path(cache.key(parts))
    path.parent.mkdir(parents=True)
    torch.save([1, 2, 3], path)
    with pytest.warns(UserWarning, match=path.name):
        value = cache.get_or_compute(parts, lambda: torch.ones(2))
    assert torch.equal(value, torch.ones(2)) and cache.misses == 1


def test_dict_of_tensors_round_trips(cache):
    value = {"features": torch.randn(4, 8), "cls": torch.randn(4, 16)[:, :8]}
    cold = cache.get_or_compute({"kind": "tokens"}, lambda: value)
    warm = cache.get_or_compute({"kind": "tokens"}, lambda: pytest.fail("recomputed"))
    assert cold.keys() == warm.keys() == value.keys()
    assert all(torch.equal(warm[k], value[k]) for k in value)


def test_save_leaves_no_tmp_file(cache, dataset):
    warm_up(cache, dataset)
    text_features(fresh_handle(), TEXTS, cache=cache)
    assert entries(cache, "*.tmp") == []
    assert len(entries(cache)) == 2


def test_crash_during_compute_writes_nothing(cache):
    def boom():
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        cache.get_or_compute({"kind": "crash"}, boom)
    assert [p for p in entries(cache, "*") if p.is_file()] == []
    # the next call computes normally
    assert torch.equal(cache.get_or_compute({"kind": "crash"}, lambda: torch.zeros(3)), torch.zeros(3))


def test_crash_during_save_leaves_no_entry(cache, monkeypatch):
    def half_save(obj, f):
        f.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(feature_cache.torch, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_compute({"kind": "crash"}, lambda: torch.zeros(3))
    assert [p for p in entries(cache, "*") if p.is_file()] == []


def test_compute_must_return_tensors(cache):
    with pytest.raises(TypeError, match="tensor"):
        cache.get_or_compute({"kind": "bad"}, lambda: [1, 2])
    assert entries(cache) == []


# -- keys ------------------------------------------------------------------------------------------


def test_key_is_canonical():
    a = FeatureCache.key({"model": "m", "crops": {"n": 5, "scale": [0.1, 0.9]}})
    b = FeatureCache.key({"crops": {"scale": (0.1, 0.9), "n": 5}, "model": "m"})
    assert a == b and len(a) == 64
    assert a != FeatureCache.key({"model": "m", "crops": {"n": 6, "scale": [0.1, 0.9]}})


@pytest.mark.parametrize("parts, name", [
    ({"model": "m", "bad": object()}, "bad"),
    ({"crops": {"scale": {0.1, 0.9}}}, "crops.scale"),
    ({"weights": torch.zeros(2)}, "weights"),
    ({"theta": float("nan")}, "theta"),
])
def test_non_serialisable_part_is_a_type_error(parts, name, tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(TypeError, match=name.replace(".", r"\.")):
        FeatureCache.key(parts)
    with pytest.raises(TypeError, match=name.split(".")[0]):
        cache.get_or_compute(parts, lambda: pytest.fail("computed before the key was checked"))


def test_crop_settings_must_be_json(cache, dataset):
    with pytest.raises(TypeError, match="crops"):
        image_features(fresh_handle(), dataset, cache=cache, crop_settings={"sampler": object()})


def test_other_kinds_go_through_cached(cache, dataset):
    handle = fresh_handle()
    with pytest.raises(ValueError, match="cached"):
        image_features(handle, dataset, cache=cache, kind="crops")
    settings = {"n": 3}
    value = cached(handle, dataset, "crops", settings, lambda: torch.arange(6.0).reshape(2, 3), cache=cache)
    again = cached(handle, dataset, "crops", settings, lambda: pytest.fail("recomputed"), cache=cache)
    assert torch.equal(value, again) and (cache.misses, cache.hits) == (1, 1)
    # same settings, another kind: another entry
    cached(handle, dataset, "global", settings, lambda: torch.zeros(1), cache=cache)
    assert cache.misses == 2


def test_default_root_is_under_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c" / "features"


def test_read_only_cache_reads_entries_and_never_computes(tmp_path):
    FeatureCache(tmp_path).get_or_compute({"kind": "stored"}, lambda: torch.ones(2))
    probe = feature_cache.ReadOnlyCache(tmp_path)
    assert torch.equal(probe.get_or_compute({"kind": "stored"}, lambda: torch.zeros(2)), torch.ones(2))
    with pytest.raises(feature_cache.CacheMiss, match="'missing'"):
        probe.get_or_compute({"kind": "missing"}, lambda: torch.zeros(2))
    assert {"kind": "missing"} not in FeatureCache(tmp_path)
    assert (probe.hits, probe.misses) == (1, 1)


def test_tensor_digest_follows_values_dtype_and_shape():
    x = torch.arange(6, dtype=torch.float32)
    digest = feature_cache.tensor_digest(x)
    assert feature_cache.tensor_digest(x.clone()) == digest
    assert feature_cache.tensor_digest(x.reshape(2, 3)[:, 1]) == feature_cache.tensor_digest(torch.tensor([1.0, 4.0]))
    others = [x + 1e-6, x.double(), x.reshape(2, 3), torch.arange(6) > 2]
    assert len({digest, *map(feature_cache.tensor_digest, others)}) == 1 + len(others)


def test_cached_results_are_keyed_by_inputs_settings_and_code(tmp_path):
    cache, calls = FeatureCache(tmp_path), []

    def compute(x):
        calls.append(1)
        return {"sum": x.sum(0)}

    x = torch.ones(3, 2)
    first = feature_cache.cached_result(cache, "demo", {"x": x}, {"k": 1}, [feature_cache], lambda: compute(x))
    again = feature_cache.cached_result(cache, "demo", {"x": x.clone()}, {"k": 1}, [feature_cache], lambda: compute(x))
    assert len(calls) == 1 and torch.equal(first["sum"], again["sum"]) and cache.hits == 1
    for inputs, settings, code in [({"x": 2 * x}, {"k": 1}, [feature_cache]), ({"x": x}, {"k": 2}, [feature_cache]),
                                   ({"x": x}, {"k": 1}, [feature_cache, demo_world])]:
        feature_cache.cached_result(cache, "demo", inputs, settings, code, lambda: compute(x))
    assert len(calls) == 4
    assert feature_cache.cached_result(None, "demo", {"x": x}, {}, [], lambda: compute(x)) and len(calls) == 5
