"""The parts model's pretraining: the exact text speed-up, the part-grounded positives, seeded runs."""
from __future__ import annotations

import open_clip
import pytest
import torch

from lib.data import parts_world as world
from lib.models import parts_pretrain as pp
from lib.models.architectures import PARTS_MODEL


def test_compact_text_encodes_as_open_clip_does():
    torch.manual_seed(0)
    model = open_clip.create_model(PARTS_MODEL, pretrained=None).eval()
    texts, _, _ = pp.caption_pool()
    tokens = open_clip.get_tokenizer(PARTS_MODEL)(texts)
    compact = pp.CompactText(model, tokens)
    with torch.no_grad():
        assert torch.allclose(compact(model), model.encode_text(tokens), atol=1e-5)
        compact.weight.add_(1.0)
        compact.write_back(model)
        assert torch.allclose(compact(model), model.encode_text(tokens), atol=1e-5)


def test_a_crop_is_positive_for_every_caption_naming_a_part_it_covers():
    texts, cap_cls, cap_pv = pp.caption_pool()
    tail = world.PARTS.index("tail")
    values = torch.tensor([world.BASE_CLASSES[0].values])  # crested vorn: round head, striped body, red tail
    covers = torch.tensor([[False, False, True]])
    t2i, i2t = pp.positive_weights(torch.tensor([0]), covers, values, cap_cls, cap_pv, 0.5, neutral_weight=0.03)
    crop = t2i[1]
    red = world.VALUES["tail"].index("red")
    for k, text in enumerate(texts):
        names_red_tail = bool(cap_pv[k, 0] == tail and cap_pv[k, 1] == red)
        assert (crop[k] == 1.0) == names_red_tail, text
        if cap_pv[k, 0] >= 0 and cap_pv[k, 0] != tail:  # a part the crop does not show: neutral, i2t only
            assert i2t[1, k] == pytest.approx(0.03), text
    full = t2i[0]
    own_class = [k for k, t in enumerate(texts) if t == world.TEMPLATES[0].format("crested vorn")]
    assert full[own_class].tolist() == [1.0]


def test_recipe_hash_follows_the_recipe():
    assert pp.recipe_hash(pp.RECIPE) == pp.recipe_hash(dict(pp.RECIPE))
    assert pp.recipe_hash({**pp.RECIPE, "steps": 399}) != pp.recipe_hash(pp.RECIPE)


def test_a_short_run_is_seeded():
    recipe = {**pp.RECIPE, "renders_per_class": 2, "steps": 2, "warmup_steps": 1, "full_per_step": 4, "crops_per_step": 4}
    model_a, record_a = pp.pretrain(recipe, progress=False)
    model_b, record_b = pp.pretrain(recipe, progress=False)
    assert record_a["loss"] == record_b["loss"]
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name


def test_parts_weights_exist_only_for_the_parts_architecture():
    from lib.models import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match="pretrained='parts' exists only for 'parts-tiny-vit'"):
        load_model("demo-tiny-vit", "parts")


def test_a_cached_checkpoint_is_the_same_bytes_whatever_the_callers_thread_count(tmp_path, monkeypatch):
    """A main job's kernel has one torch thread (Dask's OMP_NUM_THREADS=1), a test process the machine's
    count; the pretraining inside ``cached_checkpoint`` runs with ``numerics.CPU_THREADS`` either way."""
    from lib.runtime import numerics

    recipe = {**pp.RECIPE, "renders_per_class": 4, "steps": 3, "warmup_steps": 1, "full_per_step": 8, "crops_per_step": 16}
    before = torch.get_num_threads()
    weights = []
    for caller_threads in (1, 3):
        monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / str(caller_threads)))
        torch.set_num_threads(caller_threads)
        try:
            path = pp.parts_checkpoint(recipe, progress=False)
        finally:
            torch.set_num_threads(before)
        weights.append(torch.load(path, weights_only=True))
        assert pp.pretraining_record(recipe)["torch_threads"] == numerics.CPU_THREADS
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
