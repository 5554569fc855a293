"""Where a model looks: patch-to-text similarity maps and the localisation score (notebook 03).

CC-CDFSL (its abstract) argues that fine-tuned CLIP "can hardly focus on" the fine-grained
cues of a target domain and shows it with patch maps. Two maps per image, each a distribution over
the patch grid (non-negative, sums to 1):

* ``models.attention_maps``: the last block's [CLS]->patch attention (averaged over heads here);
* ``patch_text_maps``: softmax over patches of the cosine between each projected patch token and the
  class text feature, at CLIP's logit scale (the same temperature as the classifier; ours).

The **localisation score** (ours; none of the papers reports one) turns "the maps look better" into
a number where the object's box is known (the demo world): the map's mass inside the box, each
patch counted by the fraction of its area the box covers. A uniform map scores the box's area
fraction, reported beside it as the chance level.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MAP_TAU = 0.01  # CLIP's logit scale 100 (ours: the classifier's own temperature)


def patch_features(visual: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """Patch tokens (B, L, width) from ``models.encoder_tokens`` -> (B, L, d) L2-normalised, in the
    joint space: projected with the encoder's own ``proj`` (the [CLS] token's projection)."""
    proj = getattr(visual, "proj", None)
    if proj is None:
        raise NotImplementedError(f"{type(visual).__name__} has no `proj`: patch tokens cannot be compared with text")
    return F.normalize(patches @ proj if isinstance(proj, torch.Tensor) else proj(patches), dim=-1)


def patch_text_maps(patch_feats: torch.Tensor, text: torch.Tensor, grid: tuple[int, int],
                    tau: float = MAP_TAU) -> torch.Tensor:
    """(B, L, d) projected patch features x (B, d) one text feature per image -> (B, gh, gw) maps,
    softmax(cos(patch, text) / tau) over the patches."""
    if patch_feats.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"{patch_feats.shape[1]} patches do not fill a {grid[0]}x{grid[1]} grid")
    sims = torch.einsum("bld,bd->bl", patch_feats, F.normalize(text, dim=-1))
    return torch.softmax(sims / tau, dim=1).reshape(-1, *grid)


def box_in_view(box: torch.Tensor, image_size: tuple[int, int], view: int) -> torch.Tensor:
    """Boxes (..., 4) xyxy in image pixels -> the same boxes in the model's view of ``view`` pixels
    (open_clip's preprocessing: resize the shorter side to ``view``, then centre crop), clipped."""
    width, height = image_size
    scale = view / min(width, height)
    off_x, off_y = (width * scale - view) / 2, (height * scale - view) / 2
    box = box.float() * scale - torch.tensor([off_x, off_y, off_x, off_y])
    return box.clamp(0, view)


def box_coverage(box: torch.Tensor, grid: tuple[int, int], view: int) -> torch.Tensor:
    """(B, 4) boxes in view pixels -> (B, gh, gw): the fraction of each patch's area inside the box."""
    gh, gw = grid
    ys, xs = torch.linspace(0, view, gh + 1), torch.linspace(0, view, gw + 1)
    x0, y0, x1, y1 = box.float().unbind(-1)
    over_x = (torch.minimum(xs[1:], x1[:, None]) - torch.maximum(xs[:-1], x0[:, None])).clamp_min(0) / (view / gw)
    over_y = (torch.minimum(ys[1:], y1[:, None]) - torch.maximum(ys[:-1], y0[:, None])).clamp_min(0) / (view / gh)
    return over_y[:, :, None] * over_x[:, None, :]


def localisation_score(maps: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """(B, gh, gw) maps (each sums to 1) and box coverage -> (B,) the map's mass inside the box."""
    if maps.shape != coverage.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and box coverage {tuple(coverage.shape)} differ in shape")
    return (maps * coverage).flatten(1).sum(1)


def chance_score(coverage: torch.Tensor) -> torch.Tensor:
    """(B,) the localisation score of a uniform map: the box's share of the patch grid."""
    return coverage.flatten(1).mean(1)
