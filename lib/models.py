"""Model loading and encoding over open_clip: one handle for every profile.

``load_model(name, pretrained, device)`` accepts
* any open_clip architecture with an open_clip pretrained tag (``"ViT-B-32", "openai"``): the real
  download path, for users with a network;
* a local checkpoint path (``.pt`` / ``.bin`` / ``.safetensors``), loaded through open_clip;
* ``None``: random weights (timings, tests);
* ``"demo"``: the tiny demo-world model that ``lib.pretrain`` trains on CPU and caches.

The demo architecture ``demo-tiny-vit`` ships as an open_clip config in ``lib/model_configs`` and is
registered on import. Besides global features the handle gives the pre-projection [CLS] token (FAIR's
f_CLS), the patch tokens (CC-CDFSL's local features) and the last block's per-head [CLS]->patch
attention (the attention maps of notebook 03).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import open_clip
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from tqdm import tqdm

CONFIG_DIR = Path(__file__).parent / "model_configs"
DEMO_MODEL = "demo-tiny-vit"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")

open_clip.add_model_config(CONFIG_DIR)


class ModelLoadError(RuntimeError):
    """A model name, tag or checkpoint that cannot be loaded; the message names the culprit."""


@dataclass
class ModelHandle:
    """A loaded open_clip model with its preprocessing and tokenizer.

    ``encode_calls`` counts batches sent through either encoder; the feature-cache tests use it to
    show that a warm run encodes nothing.
    """

    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    name: str
    pretrained: str | None
    device: torch.device
    encode_calls: int = field(default=0)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the architecture config, every weight and the preprocessing."""
        h = hashlib.sha256()
        h.update(json.dumps(open_clip.get_model_config(self.name), sort_keys=True).encode())
        h.update(repr(self.preprocess).encode())
        for key, tensor in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    @property
    def patch_grid(self) -> tuple[int, int]:
        return tuple(self.model.visual.grid_size)


def _check_name(name: str) -> None:
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5)
        hint = f"; did you mean {close}?" if close else ""
        raise ModelLoadError(f"unknown open_clip model name {name!r}{hint} (open_clip.list_models() lists all)")


def _resolve_pretrained(name: str, pretrained: str | None) -> str | None:
    """Map the project's tags to what open_clip accepts, with errors that name the culprit."""
    if pretrained is None or pretrained == "":
        return None
    if pretrained == "demo":
        if name != DEMO_MODEL:
            raise ModelLoadError(f"pretrained='demo' exists only for {DEMO_MODEL!r}, not {name!r}")
        from lib.pretrain import demo_checkpoint  # local import: pretrain imports this module

        return str(demo_checkpoint())
    looks_like_path = pretrained.endswith(CHECKPOINT_SUFFIXES) or "/" in pretrained or "\\" in pretrained
    if looks_like_path:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"checkpoint file not found: {path} (for model {name!r})")
        return str(path)
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        raise ModelLoadError(
            f"model {name!r} has no open_clip pretrained tag {pretrained!r}; known tags: {sorted(tags)}"
        )
    return pretrained


def load_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> ModelHandle:
    """Load an open_clip model (architecture ``name``) with weights ``pretrained``; see the module doc."""
    _check_name(name)
    weights = _resolve_pretrained(name, pretrained)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=weights, device=device)
    except Exception as err:
        if weights is None or not Path(weights).is_file() or isinstance(err, torch.OutOfMemoryError):
            raise
        lines = str(err).strip().splitlines() or [""]
        misfit = ("size mismatch", "Missing key", "Unexpected key")  # load_state_dict's words
        detail = next((line.strip() for line in lines if any(word in line for word in misfit)), None)
        if detail is not None:
            detail = detail.rstrip(".") if len(detail) <= 300 else detail[:300] + " ..."
            raise ModelLoadError(
                f"checkpoint {weights} does not fit architecture {name!r}: {detail}; load it with the architecture "
                "it was saved from"
            ) from err
        # not a state dict at all (a truncated or foreign file): torch.load's own error names no file
        first = lines[0].split(". ")[0][:200]
        raise ModelLoadError(f"checkpoint {weights} cannot be read as open_clip weights for {name!r} "
                             f"({type(err).__name__}: {first}); expected a state dict saved from an open_clip "
                             "model (a truncated download?)") from err
    model.eval()
    return ModelHandle(model, preprocess, open_clip.get_tokenizer(name), name, pretrained, torch.device(device))


# --------------------------------------------------------------------------------------------------
# Encoding: tensors in, L2-normalised tensors out


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
    f_CLS, eq. 11 of fair_paper.txt) and ``patches`` (B, L, h) the patch tokens. Project patches with
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

