"""CoOp-style prompt learning: learned context vectors in front of each class name (Zhou et al. 2022).

The few-shot baseline "prompt" of the CDFSL tables (docs/design.md, "Baselines every table needs"): the
prompt ``[V]_1 ... [V]_M <classname>.`` with M context vectors shared by the classes and learned by
cross-entropy; the text encoder itself stays frozen. ``PromptLearner`` copies the pieces of an
open_clip text tower it needs (so training never touches the handle's model) and returns the class
features (C, d), L2-normalised, with gradient to the context only.

Defaults: M = 4 context vectors initialised from the embeddings of "a photo of a", CoOp's reported
initialisation (CoOp Sec. 4.1, "ctx init"); CoOp's other setting, M = 16 random vectors, is
``PromptLearner(..., n_ctx=16, init=None)``.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool

N_CTX = 4  # CoOp Sec. 4.1 with "a photo of a"
CTX_INIT = "a photo of a"
CTX_STD = 0.02  # CoOp's random initialisation N(0, 0.02^2) when init is None


def _text_tower(model: torch.nn.Module) -> torch.nn.Module:
    """The module holding token_embedding, positional_embedding, transformer and ln_final: the CLIP
    model itself (open_clip's ``CLIP``) or its ``text`` tower (``CustomTextCLIP``)."""
    for candidate in (model, getattr(model, "text", None)):
        if candidate is not None and all(hasattr(candidate, a) for a in
                                         ("token_embedding", "positional_embedding", "transformer", "ln_final")):
            if getattr(candidate, "cls_emb", None) is not None:
                break
            return candidate
    raise NotImplementedError(
        f"prompt learning needs a CLIP-style text transformer (token_embedding, positional_embedding, "
        f"transformer, ln_final, no [CLS] embedding); {type(model).__name__} has none")


class PromptLearner(torch.nn.Module):
    """M shared context vectors + frozen copies of the text encoder's layers -> class features."""

    def __init__(self, model: torch.nn.Module, tokenizer, classnames: Sequence[str], n_ctx: int = N_CTX,
                 init: str | None = CTX_INIT, seed: int = 0):
        super().__init__()
        if n_ctx < 1:
            raise ValueError(f"prompt learning parameter n_ctx={n_ctx} must be >= 1")
        if not classnames:
            raise ValueError("prompt learning needs at least one class name")
        tower = _text_tower(model)
        placeholder = " ".join(["X"] * n_ctx)
        tokens = tokenizer([f"{placeholder} {name}." for name in classnames])
        device = tower.positional_embedding.device
        tokens = tokens.to(device)
        with torch.no_grad():
            embedded = tower.token_embedding(tokens)
            if init:
                init_tokens = tokenizer([init]).to(device)
                n_init = int((init_tokens[0] != 0).sum()) - 2  # without start and end tokens
                if n_init != n_ctx:
                    raise ValueError(f"prompt learning: init {init!r} is {n_init} tokens, n_ctx={n_ctx}; "
                                     f"give an init of n_ctx tokens or init=None")
                ctx = tower.token_embedding(init_tokens)[0, 1:1 + n_ctx].clone()
            else:
                generator = torch.Generator().manual_seed(seed)
                ctx = torch.randn(n_ctx, embedded.shape[-1], generator=generator).to(embedded) * CTX_STD
        self.ctx = torch.nn.Parameter(ctx)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("prefix", embedded[:, :1].clone(), persistent=False)
        self.register_buffer("suffix", embedded[:, 1 + n_ctx:].clone(), persistent=False)
        # frozen copies of what the forward pass reads: training never touches the handle's model
        self.transformer = copy.deepcopy(tower.transformer)
        self.ln_final = copy.deepcopy(tower.ln_final)
        self.register_buffer("positional", tower.positional_embedding.detach().clone(), persistent=False)
        projection = getattr(tower, "text_projection", None)
        self.projection = copy.deepcopy(projection) if isinstance(projection, torch.nn.Module) else None
        if projection is not None and self.projection is None:
            self.register_buffer("projection_matrix", projection.detach().clone(), persistent=False)
        else:
            self.projection_matrix = None
        mask = getattr(tower, "attn_mask", None)
        self.register_buffer("attn_mask", None if mask is None else mask.detach().clone(), persistent=False)
        self.pool_type = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
        self.eos_id = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
        for module in (self.transformer, self.ln_final, self.projection):
            if module is not None:
                module.requires_grad_(False)
        self.n_ctx = n_ctx

    def forward(self) -> torch.Tensor:
        """(C, d) L2-normalised class features; the gradient reaches ``ctx`` only."""
        n = self.prefix.shape[0]
        x = torch.cat([self.prefix, self.ctx[None].expand(n, -1, -1), self.suffix], dim=1)
        x = x + self.positional.to(x.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = text_global_pool(x, self.tokens, self.pool_type, eos_token_id=self.eos_id)
        if self.projection is not None:
            x = self.projection(x)
        elif self.projection_matrix is not None:
            x = x @ self.projection_matrix
        return F.normalize(x.float(), dim=-1)
