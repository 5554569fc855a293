"""Encoding: tensors in, L2-normalised tensors out, for any open_clip model a ``ModelHandle`` holds.

Besides global features: the pre-projection [CLS] token (FAIR's f_CLS), the patch tokens (CC-CDFSL's
local features), the last block's per-head [CLS]->patch attention (notebook 03's maps), whole
datasets in batches, and the normalisation tail an augmented view ends with.
"""
from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from tqdm import tqdm

from lib.models.loading import ModelHandle


@torch.no_grad()
def encode_images(handle: ModelHandle, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) preprocessed pixels -> (B, d) L2-normalised image features."""
    handle.encode_calls += 1
    return F.normalize(handle.model.encode_image(pixels.to(handle.device)).float(), dim=-1)


@torch.no_grad()
def encode_texts(handle: ModelHandle, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """List of strings -> (T, d) L2-normalised text features."""
    out = []
    for start in range(0, len(texts), batch_size):
        handle.encode_calls += 1
        tokens = handle.tokenizer(list(texts[start:start + batch_size])).to(handle.device)
        out.append(F.normalize(handle.model.encode_text(tokens).float(), dim=-1))
    return torch.cat(out).cpu()


@torch.no_grad()
def image_tokens(handle: ModelHandle, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Global features plus pre-projection tokens of the last layer (after the final LayerNorm).

    Returns ``features`` (B, d) normalised, ``cls`` (B, h) the pre-projection [CLS] token (FAIR's
    f_CLS, FAIR eq. 11) and ``patches`` (B, L, h) the patch tokens. Project patches with
    ``handle.model.visual.proj`` to compare them with text.
    """
    handle.encode_calls += 1
    return encoder_tokens(handle.model.visual, pixels.to(handle.device))


def encoder_tokens(visual: torch.nn.Module, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """``image_tokens`` of any open_clip vision tower (an adapted copy too), with autograd left on."""
    out = visual.forward_intermediates(
        pixels, indices=1, normalize_intermediates=True, output_fmt="NLC", output_extra_tokens=True,
    )
    return {
        "features": F.normalize(out["image_features"].float(), dim=-1),
        "cls": out["image_intermediates_prefix"][-1][:, 0].float(),
        "patches": out["image_intermediates"][-1].float(),
    }


def attention_maps(handle: ModelHandle, pixels: torch.Tensor, visual: torch.nn.Module | None = None) -> torch.Tensor:
    """Last block's per-head [CLS]->patch attention, renormalised over patches: (B, heads, gh, gw).

    open_clip calls ``nn.MultiheadAttention`` with ``need_weights=False``, so a forward pre-hook on
    the last block's ``attn`` captures its (already LayerNorm-ed) input and the weights are recomputed
    from ``in_proj_weight``: softmax(q k^T / sqrt(d_head)). The [CLS] row drops its self-attention
    entry and is renormalised so each map sums to 1 over the patch grid. ``visual``: a fine-tuned
    copy of the handle's image encoder (a peft LoRA on the attention is merged into a copy first).
    """
    visual = handle.model.visual if visual is None else visual
    if not hasattr(visual, "transformer"):
        raise NotImplementedError(f"attention maps need open_clip's VisionTransformer tower (CLIP-style); "
                                  f"{handle.name} has {type(visual).__name__}")
    blocks = visual.transformer.resblocks
    attn = _plain_attention(blocks[-1].attn, handle.name)
    captured = {}

    def hook(module, args, kwargs):
        captured["x"] = args[0] if args else kwargs["query"]

    remove = blocks[-1].attn.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            visual(pixels.to(handle.device))
    finally:
        remove.remove()
    handle.encode_calls += 1
    x = captured["x"]
    if not attn.batch_first and not visual.transformer.batch_first:
        x = x.transpose(0, 1)
    b, length, width = x.shape
    heads = attn.num_heads
    with torch.no_grad():
        q, k, _ = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q = q.reshape(b, length, heads, -1).transpose(1, 2)
    k = k.reshape(b, length, heads, -1).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    cls_to_patch = weights[:, :, 0, 1:]
    cls_to_patch = cls_to_patch / cls_to_patch.sum(-1, keepdim=True)
    gh, gw = tuple(visual.grid_size)
    return cls_to_patch.reshape(b, heads, gh, gw).float().cpu()


def _plain_attention(attn: torch.nn.Module, name: str) -> torch.nn.MultiheadAttention:
    """``attn`` itself, or for a peft adapter around one, a copy of its base layer with the adapter merged."""
    if isinstance(attn, torch.nn.MultiheadAttention):
        return attn
    base = attn.get_base_layer() if hasattr(attn, "get_base_layer") else None
    if isinstance(base, torch.nn.MultiheadAttention):
        merged = copy.deepcopy(attn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            merged.merge()
        return merged.get_base_layer()
    raise NotImplementedError(f"attention maps need nn.MultiheadAttention blocks; {name} has {type(attn).__name__}")


def encode_dataset(handle: ModelHandle, dataset, batch_size: int = 256, desc: str | None = None,
                   num_workers: int = 0, visual: torch.nn.Module | None = None) -> torch.Tensor:
    """Every image of ``dataset`` (items ``(PIL image, label)``) -> (N, d) normalised features.

    ``visual``: encode with this vision tower (an adapted copy of the handle's) instead of the handle's.
    """
    loader = torch.utils.data.DataLoader(
        _Preprocessed(dataset, handle.preprocess), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    feats = []
    for pixels in tqdm(loader, desc=desc or f"encode {getattr(dataset, 'name', 'images')}", disable=None):
        if visual is None:
            feats.append(encode_images(handle, pixels).cpu())
        else:
            with torch.no_grad():
                feats.append(F.normalize(visual(pixels.to(handle.device)).float(), dim=-1).cpu())
    return torch.cat(feats) if feats else torch.empty(0, handle.model.visual.output_dim)


def tensor_tail(preprocess, what: str) -> list:
    """[ToImage, ToDtype, Normalize] with the model's own normalisation, to end an augmented view's
    transform (``what`` names the view in the error when the preprocessing has no Normalize step)."""
    normalize = next((t for t in getattr(preprocess, "transforms", []) if type(t).__name__ == "Normalize"), None)
    if normalize is None:
        raise ValueError(f"the model's preprocessing has no Normalize step to reuse for {what}")
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(normalize.mean, normalize.std)]


class _Preprocessed(torch.utils.data.Dataset):
    """Applies a model's preprocessing to a dataset of (PIL image, label) items; yields pixels only."""

    def __init__(self, dataset, preprocess):
        self.dataset, self.preprocess = dataset, preprocess

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.preprocess(self.dataset[i][0])
