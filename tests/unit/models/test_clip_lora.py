"""lib.models.tuning's "clip-lora": the D-Trap code's CLIP-LoRA (q, k, v adapters of rank 16 in every vision
block) over SplitAttention, which computes what nn.MultiheadAttention computes."""
from __future__ import annotations

import copy

import pytest
import torch

from lib import models
from lib.models import tuning


@pytest.fixture
def visual(handle):
    return copy.deepcopy(handle.model.visual).eval()


@pytest.fixture(scope="module")
def pixels(handle):
    return torch.randn(3, 3, handle.image_size, handle.image_size, generator=torch.Generator().manual_seed(0))


def _attention(batch_first: bool) -> torch.nn.MultiheadAttention:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        attn = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first)
        torch.nn.init.normal_(attn.in_proj_bias)
        torch.nn.init.normal_(attn.out_proj.bias)
    return attn.eval()


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_computes_what_multihead_attention_computes(batch_first):
    attn = _attention(batch_first)
    split = tuning.SplitAttention(attn).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 16, generator=gen) if batch_first else torch.randn(5, 2, 16, generator=gen)
    expected = attn(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(split(x, x, x, need_weights=False)[0], expected, atol=1e-6, rtol=1e-5)
    float_mask = torch.randn(5, 5, generator=gen)
    torch.testing.assert_close(split(x, x, x, attn_mask=float_mask)[0], attn(x, x, x, attn_mask=float_mask,
                                                                             need_weights=False)[0], atol=1e-6, rtol=1e-5)
    bool_mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)  # True: not allowed
    torch.testing.assert_close(split(x, x, x, attn_mask=bool_mask)[0], attn(x, x, x, attn_mask=bool_mask,
                                                                            need_weights=False)[0], atol=1e-6, rtol=1e-5)
    rebuilt = split.get_base_layer()
    torch.testing.assert_close(rebuilt(x, x, x, need_weights=False)[0], expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(NotImplementedError):
        split(x, x, x, need_weights=True)


def test_clip_lora_puts_rank_16_adapters_on_q_k_v_of_every_block(visual, pixels):
    before = visual(pixels)
    params = tuning.prepare(visual, "clip-lora")
    blocks = visual.transformer.resblocks
    expected = {f"transformer.resblocks.{i}.attn.{proj}.lora_{ab}.default.weight"
                for i in range(len(blocks)) for proj in ("q_proj", "k_proj", "v_proj") for ab in "AB"}
    trainable = {n for n, p in visual.named_parameters() if p.requires_grad}
    assert trainable == expected and len(params) == len(expected)
    width = blocks[0].attn.q_proj.in_features
    for block in blocks:
        assert isinstance(block.attn, tuning.SplitAttention)
        for proj in ("q_proj", "k_proj", "v_proj"):
            layer = getattr(block.attn, proj)
            assert layer.lora_A["default"].weight.shape == (16, width)
            assert layer.lora_B["default"].weight.shape == (width, 16)
            assert layer.scaling["default"] == pytest.approx(8 / 16)
            assert layer.lora_dropout["default"].p == 0.25
        assert not any(p.requires_grad for p in block.attn.out_proj.parameters())  # the output projection stays
    torch.testing.assert_close(visual(pixels), before, atol=1e-6, rtol=0)  # B starts at zero
    assert tuning.settings("clip-lora") == {"rank": 16, "alpha": 8, "dropout": 0.25,
                                            "targets": ["q_proj", "k_proj", "v_proj"], "blocks": "all",
                                            "attention": "split"}


def test_adapter_dropout_acts_in_training_only(visual, pixels):
    tuning.prepare(visual, "clip-lora")
    with torch.no_grad():
        for name, p in visual.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    visual.eval()
    assert torch.equal(visual(pixels), visual(pixels))
    visual.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a = visual(pixels)
        b = visual(pixels)
    assert not torch.equal(a, b)


def test_attention_maps_see_the_adapted_weights(handle, visual, pixels):
    """The maps of a CLIP-LoRA tower equal those of a plain tower whose in_proj holds W + scale B A."""
    tuning.prepare(visual, "clip-lora")
    with torch.no_grad():
        for name, p in visual.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    visual.eval()
    plain = copy.deepcopy(handle.model.visual).eval()
    with torch.no_grad():
        for block, adapted in zip(plain.transformer.resblocks, visual.transformer.resblocks):
            deltas = []
            for proj in ("q_proj", "k_proj", "v_proj"):
                layer = getattr(adapted.attn, proj)
                deltas.append(layer.scaling["default"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight)
            block.attn.in_proj_weight += torch.cat(deltas)
    torch.testing.assert_close(visual(pixels), plain(pixels), atol=1e-5, rtol=1e-5)
    maps = models.attention_maps(handle, pixels, visual)
    torch.testing.assert_close(maps, models.attention_maps(handle, pixels, plain), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(maps, models.attention_maps(handle, pixels), atol=1e-3)  # the adapters moved them


def test_clip_lora_names_a_tower_without_multihead_attention():
    with pytest.raises(ValueError, match="clip-lora.*Linear"):
        tuning.prepare(torch.nn.Linear(4, 4), "clip-lora")


def test_clip_lora_keeps_the_other_methods_unchanged():
    assert tuning.settings("lora") == {"rank": 4, "alpha": 8, "targets": ["attn"]}
    assert tuning.LORA_RANK == 4 and "clip-lora" in tuning.TRAINABLE
