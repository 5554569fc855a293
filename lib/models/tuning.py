"""Which parameters of an image encoder train: LayerNorm affine parameters, LoRA, Kronecker adapters.

FAIR trains the image encoder's LayerNorm affine parameters (FAIR, Sec. 4 and 6.1, after
[4, 49]); its Table 10 swaps them for LoRA [20] and K-Adaptation [18]. The adapters come from
``peft`` (a well-kept library), injected into any open_clip vision tower:

* ``"ln"``: every ``nn.LayerNorm``'s weight and bias; nothing else changes.
* ``"lora"``: peft's LoRA on every ``nn.MultiheadAttention`` (its q/k/v input projection and its
  output projection), rank ``LORA_RANK``; on timm towers (PE-Core) on the fused ``qkv`` layers. LoRA's
  paper adapts the attention projections.
* ``"kadaptation"``: peft's LoKr (a low-rank Kronecker-product update, the K-Adaptation idea of [18])
  on both MLP layers of every block. peft's LoKr cannot wrap ``nn.MultiheadAttention``, and a LoKr on
  its ``out_proj`` would be dead (the attention reads ``out_proj.weight`` directly and never calls the
  wrapped layer), so attention stays frozen: our choice, recorded in notebook 02.
* ``"full"``: every parameter (the few-shot baselines of the CDFSL issue).

``prepare`` freezes everything else and returns the trainable parameters; ``trainable_state`` /
``load_trainable`` save and restore just those, so a trained run is small enough to cache.
"""
from __future__ import annotations

import torch

TRAINABLE = ("ln", "lora", "kadaptation", "full")
LORA_RANK = 4  # ours: small, for the demo model's 128-wide blocks (the FAIR paper gives no rank)
LORA_ALPHA = 8  # ours: peft's usual 2 x rank
LOKR_RANK = 4  # ours, the same budget as LoRA
LOKR_TARGETS = ("c_fc", "c_proj")  # open_clip's MLP Linear layers (see the module docstring)


def layernorm_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The affine parameters of every LayerNorm in ``module`` (FAIR trains these and Z* only)."""
    return [p for m in module.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()]


def train_only(model: torch.nn.Module, params: list[torch.nn.Parameter]) -> None:
    """Freeze every parameter of ``model`` except ``params``."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def prepare(module: torch.nn.Module, method: str = "ln") -> list[torch.nn.Parameter]:
    """Make ``module`` (changed in place: adapters are injected) train only ``method``'s parameters."""
    if method not in TRAINABLE:
        raise ValueError(f"tuning method {method!r} is not one of {TRAINABLE}")
    if method == "ln":
        params = layernorm_parameters(module)
    elif method == "full":
        params = list(module.parameters())
    else:
        from peft import LoKrConfig, LoraConfig, inject_adapter_in_model

        if method == "lora":
            config = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, target_modules=lora_targets(module))
            tag = "lora_"
        else:
            present = {name.rsplit(".", 1)[-1] for name, _ in module.named_modules()}
            if not present & set(LOKR_TARGETS):
                raise ValueError(f"tuning method 'kadaptation' needs Linear layers named {LOKR_TARGETS}; none found")
            config = LoKrConfig(r=LOKR_RANK, target_modules=list(LOKR_TARGETS))
            tag = "lokr_"
        inject_adapter_in_model(config, module)
        params = [p for name, p in module.named_parameters() if tag in name]
    if not params:
        raise ValueError(f"tuning method {method!r} found no parameters to train in {type(module).__name__}")
    train_only(module, params)
    return params


def lora_targets(module: torch.nn.Module) -> list[str]:
    """Where LoRA goes: open_clip's ``nn.MultiheadAttention`` blocks (``attn``), else the fused q/k/v
    ``Linear`` layers of timm towers (``qkv``: PE-Core and other TimmModel backbones)."""
    if any(isinstance(m, torch.nn.MultiheadAttention) for m in module.modules()):
        return ["attn"]
    if any(name.rsplit(".", 1)[-1] == "qkv" and isinstance(m, torch.nn.Linear) for name, m in module.named_modules()):
        return ["qkv"]
    raise ValueError("tuning method 'lora' needs nn.MultiheadAttention layers or Linear layers named 'qkv'; "
                     f"{type(module).__name__} has neither")


def settings(method: str) -> dict:
    """What ``prepare(module, method)`` injects, for cache keys (a change here retrains)."""
    return {"ln": {}, "full": {}, "lora": {"rank": LORA_RANK, "alpha": LORA_ALPHA, "targets": ["attn"]},  # "qkv" on timm towers: the model is in every key too
            "kadaptation": {"rank": LOKR_RANK, "targets": list(LOKR_TARGETS)}}[method]


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train (``requires_grad``), by name, detached on the CPU."""
    return {name: p.detach().cpu().clone() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (from ``trainable_state``) into ``module``; every name must exist."""
    params = dict(module.named_parameters())
    missing = sorted(set(state) - set(params))
    if missing:
        raise KeyError(f"trained state names parameters this encoder lacks: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def count(params: list[torch.nn.Parameter]) -> int:
    """Number of scalars in ``params``."""
    return sum(p.numel() for p in params)
