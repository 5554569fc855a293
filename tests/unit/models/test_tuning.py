"""lib.models.tuning: which parameters of the image encoder train (FAIR Sec. 4 and Table 10)."""
from __future__ import annotations

import copy

import pytest
import torch

from lib import models
from lib.models import tuning


@pytest.fixture(scope="module")
def handle():
    """The demo architecture with seeded random weights (no checkpoint, no network)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return models.load_model(models.DEMO_MODEL, None)


@pytest.fixture
def visual(handle):
    """A fresh copy of the demo image encoder: ``prepare`` changes its module in place."""
    return copy.deepcopy(handle.model.visual).eval()


@pytest.fixture(scope="module")
def pixels(handle):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, handle.image_size, handle.image_size, generator=gen)


def _trainable_names(module: torch.nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


def _prepare_seeded(module: torch.nn.Module, method: str) -> list[torch.nn.Parameter]:
    """``prepare`` draws the adapters' random initialisation from torch's global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return tuning.prepare(module, method)


def test_ln_trains_exactly_the_layernorm_affine_parameters(visual):
    expected = {f"{mname}.{pname}" for mname, m in visual.named_modules() if isinstance(m, torch.nn.LayerNorm)
                for pname in ("weight", "bias")}
    n_norms = sum(isinstance(m, torch.nn.LayerNorm) for m in visual.modules())
    assert n_norms == 2 + 2 * len(visual.transformer.resblocks)  # ln_pre, ln_post, ln_1/ln_2 per block
    params = tuning.prepare(visual, "ln")
    assert len(expected) == len(params) == 2 * n_norms
    by_name = dict(visual.named_parameters())
    assert {id(p) for p in params} == {id(by_name[name]) for name in expected}
    assert _trainable_names(visual) == expected
    frozen = [name for name, p in visual.named_parameters() if not p.requires_grad]
    assert "conv1.weight" in frozen and "proj" in frozen and "transformer.resblocks.0.attn.in_proj_weight" in frozen
    assert len(frozen) + len(expected) == len(by_name)


@pytest.mark.parametrize("method, tag", [("lora", "lora_"), ("kadaptation", "lokr_")])
def test_adapters_are_injected_train_alone_and_start_at_zero_effect(visual, pixels, method, tag):
    n_before = len(dict(visual.named_parameters()))
    with torch.no_grad():
        before = visual(pixels)
    params = _prepare_seeded(visual, method)
    with torch.no_grad():
        after = visual(pixels)

    adapter_names = {name for name, _ in visual.named_parameters() if tag in name}
    assert adapter_names, f"{method} injected no {tag} parameters"
    assert len(dict(visual.named_parameters())) == n_before + len(adapter_names)  # added, nothing lost
    assert _trainable_names(visual) == adapter_names
    by_name = dict(visual.named_parameters())
    assert {id(p) for p in params} == {id(by_name[name]) for name in adapter_names}
    # LoRA: every attention layer got an adapter; LoKr: both MLP layers of every block (none on attention)
    for i in range(len(visual.transformer.resblocks)):
        block = f"transformer.resblocks.{i}."
        on_attention = any(name.startswith(block + "attn.") for name in adapter_names)
        assert on_attention == (method == "lora"), block
        if method == "kadaptation":
            assert any(name.startswith(block + "mlp.c_fc.") for name in adapter_names), block
            assert any(name.startswith(block + "mlp.c_proj.") for name in adapter_names), block
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert tuning.count(params) > 0


@pytest.mark.parametrize("method", [
    "lora",
    "kadaptation",
])
def test_every_injected_adapter_reaches_the_encoder_output(visual, pixels, method):
    """Perturb the adapters of one target layer at a time: each must change the encoder's output."""
    params = _prepare_seeded(visual, method)
    assert params
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, p in visual.named_parameters():
        if p.requires_grad:
            layer = name.split(".lora_")[0].split(".lokr_")[0]
            groups.setdefault(layer, []).append(p)
    with torch.no_grad():
        base = visual(pixels)
    dead = []
    gen = torch.Generator().manual_seed(1)
    for layer, group in groups.items():
        saved = [p.detach().clone() for p in group]
        with torch.no_grad():
            for p in group:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            out = visual(pixels)
            for p, value in zip(group, saved):
                p.copy_(value)
        if (out - base).abs().max() < 1e-6:
            dead.append(layer)
    assert not dead, f"{method} adapters with no effect on the output: {dead}"


def test_full_trains_every_parameter(visual):
    n_params = len(list(visual.parameters()))
    params = tuning.prepare(visual, "full")
    assert len(params) == n_params
    assert all(p.requires_grad for p in visual.parameters())
    assert tuning.count(params) == sum(p.numel() for p in visual.parameters())


def test_full_unfreezes_a_previously_frozen_encoder(visual):
    tuning.prepare(visual, "ln")
    assert not all(p.requires_grad for p in visual.parameters())
    tuning.prepare(visual, "full")
    assert all(p.requires_grad for p in visual.parameters())


def test_unknown_method_raises_naming_it(visual):
    with pytest.raises(ValueError, match="'bitfit'"):
        tuning.prepare(visual, "bitfit")
    assert all(p.requires_grad for p in visual.parameters())  # nothing frozen on the way out


@pytest.mark.parametrize("method", ["lora", "kadaptation", "ln"])
def test_methods_that_find_nothing_to_train_raise(method):
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=method):
        tuning.prepare(module, method)


def test_trainable_state_round_trip_restores_a_modified_parameter(visual):
    tuning.prepare(visual, "ln")
    state = tuning.trainable_state(visual)
    assert set(state) == _trainable_names(visual)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in state.values())
    original = visual.ln_post.weight.detach().clone()
    with torch.no_grad():
        visual.ln_post.weight.add_(1.0)
        visual.transformer.resblocks[0].ln_1.bias.mul_(3.0).add_(0.5)
    assert torch.equal(state["ln_post.weight"], original)  # the state is a copy, not a view
    tuning.load_trainable(visual, state)
    assert torch.equal(visual.ln_post.weight, original)
    assert torch.equal(visual.transformer.resblocks[0].ln_1.bias, state["transformer.resblocks.0.ln_1.bias"])
    assert visual.ln_post.weight.requires_grad  # loading keeps the parameter training


@pytest.mark.parametrize("method", ["lora", "kadaptation"])
def test_adapter_state_loads_into_a_fresh_prepared_copy(handle, visual, pixels, method):
    tuning.prepare(visual, method)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in visual.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        trained = visual(pixels)
    state = tuning.trainable_state(visual)
    fresh = copy.deepcopy(handle.model.visual).eval()
    tuning.prepare(fresh, method)
    with torch.no_grad():
        assert (fresh(pixels) - trained).abs().max() > 1e-4  # differs before loading
        tuning.load_trainable(fresh, state)
        torch.testing.assert_close(fresh(pixels), trained, atol=1e-5, rtol=0)


def test_load_trainable_with_an_unknown_name_raises_naming_it(visual):
    tuning.prepare(visual, "ln")
    state = tuning.trainable_state(visual)
    before = visual.ln_post.weight.detach().clone()
    bad = {**state, "ln_post.weight": before + 1, "head.no_such_weight": torch.zeros(3)}
    with pytest.raises(KeyError, match="head.no_such_weight"):
        tuning.load_trainable(visual, bad)
    assert torch.equal(visual.ln_post.weight, before)  # checked before anything is copied


class _TimmStyleBlock(torch.nn.Module):
    """A timm-style attention block: a fused q/k/v Linear named ``qkv``, no nn.MultiheadAttention."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24)
        self.proj = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, x):
        return self.proj(self.qkv(self.norm(x))[..., :8])


def test_lora_on_timm_style_towers_targets_qkv():
    module = torch.nn.Sequential(_TimmStyleBlock(), _TimmStyleBlock())
    assert tuning.lora_targets(module) == ["qkv"]
    params = tuning.prepare(module, "lora")
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert params and all("lora_" in n and ".qkv." in n for n in names)


def test_lora_without_attention_names_the_module():
    with pytest.raises(ValueError, match="Linear layers named 'qkv'; Sequential has neither"):
        tuning.prepare(torch.nn.Sequential(torch.nn.Linear(4, 4)), "lora")
