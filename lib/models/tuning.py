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
* ``"clip-lora"``: CLIP-LoRA as the D-Trap code sets it up (``run_utils.py``, ``loralib``): peft's LoRA
  on the q, k and v projections of every vision block, each its own rank-16 adapter (alpha 8, so a
  scale of 0.5, dropout 0.25 on the adapter's input), the output projection frozen. peft's LoRA on an
  ``nn.MultiheadAttention`` adapts the fused in_proj with one rank-r update and the out_proj, so each
  block's attention is first rewritten as ``SplitAttention`` (q, k, v as separate ``nn.Linear``
  layers, the same function: the idea of CLIP-LoRA's ``PlainMultiheadAttentionLoRA``) and peft then
  wraps those Linear layers. Needs open_clip's VisionTransformer (``transformer.resblocks[*].attn``).
* ``"full"``: every parameter (the few-shot baselines of the CDFSL issue).

``prepare`` freezes everything else and returns the trainable parameters; ``trainable_state`` /
``load_trainable`` save and restore just those, so a trained run is small enough to cache.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

TRAINABLE = ("ln", "lora", "kadaptation", "full", "clip-lora")
LORA_RANK = 4  # ours: small, for the demo model's 128-wide blocks (the FAIR paper gives no rank)
LORA_ALPHA = 8  # ours: peft's usual 2 x rank
LOKR_RANK = 4  # ours, the same budget as LoRA
LOKR_TARGETS = ("c_fc", "c_proj")  # open_clip's MLP Linear layers (see the module docstring)
CLIP_LORA_RANK = 16  # D-Trap code (run_utils.py --r 16, its README's commands)
CLIP_LORA_ALPHA = 8  # D-Trap code (--alpha 8): scale alpha / r = 0.5
CLIP_LORA_DROPOUT = 0.25  # D-Trap code (--dropout_rate 0.25), on the adapter's input
CLIP_LORA_TARGETS = ("q_proj", "k_proj", "v_proj")  # D-Trap code (--params q k v, --position all)


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

        if method == "clip-lora":
            split_attention(module)
            config = LoraConfig(r=CLIP_LORA_RANK, lora_alpha=CLIP_LORA_ALPHA, lora_dropout=CLIP_LORA_DROPOUT,
                                target_modules=list(CLIP_LORA_TARGETS))
            tag = "lora_"
        elif method == "lora":
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
            "kadaptation": {"rank": LOKR_RANK, "targets": list(LOKR_TARGETS)},
            "clip-lora": {"rank": CLIP_LORA_RANK, "alpha": CLIP_LORA_ALPHA, "dropout": CLIP_LORA_DROPOUT,
                          "targets": list(CLIP_LORA_TARGETS), "blocks": "all", "attention": "split"}}[method]


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


# --------------------------------------------------------------------------------------------------
# CLIP-LoRA's attention: q, k, v as separate Linear layers


class SplitAttention(torch.nn.Module):
    """An ``nn.MultiheadAttention`` (self-attention, one embedding size, no bias_k/v, no zero attention)
    rewritten with q, k, v and the output as separate ``nn.Linear`` layers computing the same function,
    so that an adapter can wrap each projection on its own. Called like the module it replaces
    (open_clip: ``attn(q, k, v, need_weights=False, attn_mask=mask)``); ``merge`` folds peft adapters
    into the projections and ``get_base_layer`` rebuilds the equivalent ``nn.MultiheadAttention``
    (``lib.models.encoding.attention_maps`` recomputes the weights from it)."""

    def __init__(self, attn: torch.nn.MultiheadAttention):
        super().__init__()
        if not attn._qkv_same_embed_dim or attn.bias_k is not None or attn.add_zero_attn:
            raise ValueError("SplitAttention needs an nn.MultiheadAttention with one embedding size, no bias_k/bias_v "
                             "and no zero attention (open_clip's vision blocks)")
        width, bias = attn.embed_dim, attn.in_proj_bias is not None
        self.num_heads, self.batch_first, self.dropout = attn.num_heads, attn.batch_first, attn.dropout
        weights = attn.in_proj_weight.detach().chunk(3)
        biases = attn.in_proj_bias.detach().chunk(3) if bias else (None,) * 3
        for name, w, b in zip(CLIP_LORA_TARGETS, weights, biases):
            layer = torch.nn.Linear(width, width, bias=bias, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                layer.weight.copy_(w)
                if bias:
                    layer.bias.copy_(b)
            setattr(self, name, layer)
        self.out_proj = copy.deepcopy(attn.out_proj)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if need_weights or key_padding_mask is not None:
            raise NotImplementedError("SplitAttention computes no attention weights and takes no key_padding_mask")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, length, width = query.shape
        heads = lambda t: t.reshape(b, t.shape[1], self.num_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:  # nn.MultiheadAttention: True = not allowed
                attn_mask = torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill(attn_mask, float("-inf"))
            if attn_mask.dim() == 3:  # (B * heads, L, S)
                attn_mask = attn_mask.reshape(b, self.num_heads, *attn_mask.shape[-2:])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = self.out_proj(out.transpose(1, 2).reshape(b, length, width))
        return (out if self.batch_first else out.transpose(0, 1)), None

    def merge(self) -> None:
        """Fold each projection's peft adapter into its weight (peft's ``merge``)."""
        for name in CLIP_LORA_TARGETS:
            layer = getattr(self, name)
            if hasattr(layer, "merge"):
                layer.merge()

    def get_base_layer(self) -> torch.nn.MultiheadAttention:
        """The equivalent ``nn.MultiheadAttention`` of the projections' base weights (after ``merge``:
        the adapted ones)."""
        base = [getattr(self, name) for name in CLIP_LORA_TARGETS]
        base = [layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer for layer in base]
        width = base[0].in_features
        attn = torch.nn.MultiheadAttention(width, self.num_heads, dropout=self.dropout, bias=base[0].bias is not None,
                                           batch_first=self.batch_first, device=base[0].weight.device,
                                           dtype=base[0].weight.dtype)
        with torch.no_grad():
            attn.in_proj_weight.copy_(torch.cat([layer.weight for layer in base]))
            if base[0].bias is not None:
                attn.in_proj_bias.copy_(torch.cat([layer.bias for layer in base]))
            out = self.out_proj.get_base_layer() if hasattr(self.out_proj, "get_base_layer") else self.out_proj
            attn.out_proj.weight.copy_(out.weight)
            if out.bias is not None:
                attn.out_proj.bias.copy_(out.bias)
        return attn


def split_attention(module: torch.nn.Module) -> int:
    """Replace the ``attn`` of every block of an open_clip VisionTransformer (``transformer.resblocks``)
    by its ``SplitAttention``, in place; returns how many were replaced."""
    blocks = getattr(getattr(module, "transformer", None), "resblocks", None)
    if blocks is None or not all(isinstance(getattr(b, "attn", None), torch.nn.MultiheadAttention) for b in blocks):
        raise ValueError("tuning method 'clip-lora' needs open_clip's VisionTransformer (transformer.resblocks with "
                         f"nn.MultiheadAttention); {type(module).__name__} has none")
    for block in blocks:
        block.attn = SplitAttention(block.attn)
    return len(blocks)
