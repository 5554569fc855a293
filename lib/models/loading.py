"""Model loading over open_clip: one handle for every profile.

``load_model(name, pretrained, device)`` accepts
* any open_clip architecture with an open_clip pretrained tag (``"ViT-B-32", "openai"``): the real
  download path, for users with a network;
* a local checkpoint path (``.pt`` / ``.bin`` / ``.safetensors``), loaded through open_clip;
* ``None``: random weights (timings, tests);
* ``"demo"``: the tiny demo-world model that ``lib.models.pretrain`` trains on CPU and caches;
* ``"parts"``: the parts world's tiny model that ``lib.models.parts_pretrain`` trains on CPU and caches.

The activation follows the weights: a pretrained tag whose open_clip registry entry says
``quick_gelu`` (every ``openai`` tag, and e.g. MetaCLIP's and DFN's) builds the architecture with
QuickGELU, the activation those weights were trained with. open_clip's ``ViT-B-32`` config uses
``nn.GELU`` and only warns about the mismatch ("QuickGELU mismatch", ``open_clip.factory``);
``quick_gelu_for`` reads the registry offline. A local checkpoint carries no such record: load OpenAI
weights saved to a file under the ``-quickgelu`` architecture name (``ViT-B-32-quickgelu``).

The demo architecture ``demo-tiny-vit`` ships as an open_clip config (``lib.models.architectures``).
``lib.models.encoding`` turns a handle's model into features.
"""

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import open_clip
import torch

from lib.models import parts_pretrain, pretrain
from lib.models.architectures import DEMO_MODEL, PARTS_MODEL

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


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
    quick_gelu: bool = False  # forced by the pretrained tag (``quick_gelu_for``) over the architecture's config

    @property
    def config(self) -> dict:
        """The open_clip architecture config the model was built from (QuickGELU forced where it was)."""
        config = dict(open_clip.get_model_config(self.name) or {})
        if self.quick_gelu:
            config["quick_gelu"] = True
        return config

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of the architecture config (activation included), every weight and the preprocessing."""
        h = hashlib.sha256()
        h.update(json.dumps(self.config, sort_keys=True).encode())
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
        return str(pretrain.demo_checkpoint())
    if pretrained == "parts":
        if name != PARTS_MODEL:
            raise ModelLoadError(f"pretrained='parts' exists only for {PARTS_MODEL!r}, not {name!r}")
        return str(parts_pretrain.parts_checkpoint())
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


def quick_gelu_for(name: str, pretrained: str | None) -> bool:
    """Whether open_clip's pretrained registry says the weights of tag ``pretrained`` need QuickGELU
    (``open_clip.get_pretrained_cfg(name, tag)["quick_gelu"]``; offline). False for random weights,
    the demo model and local checkpoints (see the module doc)."""
    if not pretrained or not open_clip.is_pretrained_cfg(name, pretrained):
        return False
    return bool(open_clip.get_pretrained_cfg(name, pretrained).get("quick_gelu", False))


def load_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> ModelHandle:
    """Load an open_clip model (architecture ``name``) with weights ``pretrained``; see the module doc."""
    _check_name(name)
    weights = _resolve_pretrained(name, pretrained)
    quick = quick_gelu_for(name, weights) and not (open_clip.get_model_config(name) or {}).get("quick_gelu", False)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=weights, device=device,
                                                                     force_quick_gelu=quick)
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
    return ModelHandle(model, preprocess, open_clip.get_tokenizer(name), name, pretrained, torch.device(device),
                       quick_gelu=quick)


# --------------------------------------------------------------------------------------------------
# Encoding: tensors in, L2-normalised tensors out
