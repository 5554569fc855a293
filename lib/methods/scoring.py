"""Scoring: pure tensor functions from L2-normalised features to logits ``(B, C)``.

No I/O and no model calls (docs/design.md, "Scoring contract"). Shapes: ``img`` (B, d) global image
features, ``crops`` (B, N, d) crop features, ``desc`` (C, M, d) description features padded to M per
class with ``mask`` (C, M) bool marking the real ones, ``txt`` / ``class_txt`` / ``anchors`` (C, d),
``img_cls`` (B, h) and ``crop_cls`` (B, N, h) pre-projection [CLS] tokens. Feature inputs are checked
where they come in: NaN or inf, or a zero-norm vector (padded descriptions excepted), is a ValueError
naming the argument and the rows, never a silent NaN or an all-zero row of logits.

| function | paper, equation |
|---|---|
| ``clip_logits`` | CLIP; FAIR, eq. 1 |
| ``cupl_logits`` | CuPL; normalised mean description embedding (official CuPL code) |
| ``dclip_logits`` | DCLIP; mean of description similarities (FAIR, eq. 5; official DCLIP code) |
| ``wca_logits`` | WCA; FAIR, eqs. 7-10; official WCA code by default |
| ``las_logits`` | FAIR's Learned Alignment Score; FAIR, eqs. 11-14 |
| ``lazsl_logits`` | LaZSL; vision selection, hybrid cost, Sinkhorn plan, Frobenius score (LaZSL Sec. 3) |

Every ablation switch of LaZSL's table (OT, vision selection, hybrid cost) and of FAIR's Table 3
scoring rows (crop selection, [CLS]-based crop weights, LAS) is a keyword argument, so an ablation
row is one call. Where a paper and its official code differ, the default follows the code (it
produced the published numbers) and the paper's variant is a keyword.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lib.methods import sinkhorn

ZERO_NORM = 1e-12  # F.normalize's floor: a shorter feature vector has no direction


def _where(bad: torch.Tensor, spec: str) -> str:
    """``B = [1, 3]`` or ``(B, N) = [(0, 2)]``: the leading indices where ``bad`` holds, axes named by ``spec``."""
    axes = [a.strip() for a in spec.strip("()").split(",")][:bad.ndim]
    found = bad.nonzero().tolist()
    listed = [tuple(i) if len(i) > 1 else i[0] for i in found[:8]]
    more = f" ... ({len(found)} in all)" if len(found) > 8 else ""
    label = axes[0] if len(axes) == 1 else f"({', '.join(axes)})"
    return f"{label} = {listed}{more}"


def _check_values(name: str, tensor: torch.Tensor, spec: str, real: torch.Tensor | None = None) -> None:
    """NaN or inf anywhere, or a zero feature vector (last axis) where ``real`` holds, is a ValueError naming
    the argument and the rows. Zero vectors are refused rather than scored: they cannot be L2-normalised, give
    a similarity of 0 to every class, and argmax would then silently pick class 0."""
    with torch.no_grad():
        values = tensor.detach()
        broken = ~torch.isfinite(values).all(-1)
        if broken.any():
            raise ValueError(f"{name} contains NaN or inf at {_where(broken, spec)}: scoring needs finite "
                             "features (re-encode them; a NaN feature comes from NaN weights or inputs)")
        zero = values.norm(dim=-1) <= ZERO_NORM
        if real is not None:
            zero &= real
        if zero.any():
            raise ValueError(f"{name} has zero-norm feature vectors at {_where(zero, spec)}: scoring needs "
                             "L2-normalised features, and a zero vector would score 0 against every class")


def _check(name: str, tensor: torch.Tensor, ndim: int, spec: str, values: bool = True) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must be {spec}, got {shape}")
    if values:
        _check_values(name, tensor, spec)


def _check_desc(desc: torch.Tensor, mask: torch.Tensor, d: int) -> None:
    _check("desc", desc, 3, "(C, M, d)", values=False)
    _check("mask", mask, 2, "(C, M) bool", values=False)
    if mask.dtype != torch.bool or mask.shape != desc.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(desc.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
    _check_values("desc", desc, "(C, M, d)", real=mask.to(desc.device))  # padding is zero by design
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"classes {empty} have no description (mask all False); give them at least [''] (DCLIP)")
    if desc.shape[2] != d:
        raise ValueError(f"desc has feature size {desc.shape[2]}, the image features {d}")


def _check_pair(crops: torch.Tensor, img: torch.Tensor, name: str = "img") -> None:
    """img (B, d) must match crops (B, N, d) in images and feature size."""
    _check(name, img, 2, "(B, d)")
    if img.shape[0] != crops.shape[0] or img.shape[1] != crops.shape[2]:
        raise ValueError(f"{name} must be ({crops.shape[0]}, {crops.shape[2]}) to match crops {tuple(crops.shape)}, "
                         f"got {tuple(img.shape)}")


def _crop_cls_pair(crops: torch.Tensor, crop_cls: torch.Tensor | None, img_cls: torch.Tensor | None) -> bool:
    """True when [CLS] tokens are given (both, with matching shapes); an error when only one is."""
    if (crop_cls is None) != (img_cls is None):
        raise ValueError("pass both crop_cls and img_cls for [CLS]-based crop weights, or neither")
    if crop_cls is None:
        return False
    _check("crop_cls", crop_cls, 3, "(B, N, h)")
    _check("img_cls", img_cls, 2, "(B, h)")
    if crop_cls.shape[:2] != crops.shape[:2]:
        raise ValueError(f"crop_cls must hold {tuple(crops.shape[:2])} crops like crops, got {tuple(crop_cls.shape)}")
    if img_cls.shape != (crop_cls.shape[0], crop_cls.shape[2]):
        raise ValueError(f"img_cls must be {(crop_cls.shape[0], crop_cls.shape[2])} to match crop_cls, got {tuple(img_cls.shape)}")
    return True


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of ``values`` (..., C, M) counting only ``mask`` (C, M)."""
    m = mask.to(values.dtype)
    return (values * m).sum(-1) / m.sum(-1)


def clip_logits(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """CLIP zero-shot (Radford et al. 2021; FAIR, eq. 1): cosine similarity.

    img ``(B, d)`` and txt ``(C, d)``, both L2-normalised -> logits ``(B, C)``.
    """
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
        raise ValueError(f"clip_logits needs img (B, d) and txt (C, d); got {tuple(img.shape)} and {tuple(txt.shape)}")
    _check_values("img", img, "(B, d)")
    _check_values("txt", txt, "(C, d)")
    return img @ txt.T


def cupl_weights(desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CuPL's classifier (C, d): normalise(mean of each class's real description features). FAIR
    initialises its Class Description Anchors with it (Alg. 1, INITCDA)."""
    m = mask.to(desc.dtype)[..., None]
    return F.normalize((desc * m).sum(1) / m.sum(1), dim=-1)


def cupl_logits(img: torch.Tensor, desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CuPL (Pratt et al. 2023): cosine similarity to normalise(mean of the class's description features).

    The official CuPL code builds each class weight as the normalised mean of its normalised sentence
    embeddings; FAIR's eq. 5 writes the mean of similarities instead, which is DCLIP's rule
    (``dclip_logits``): the two differ only by the norm of the mean.
    """
    _check("img", img, 2, "(B, d)")
    _check_desc(desc, mask, img.shape[1])
    return img @ cupl_weights(desc, mask).T


def dclip_logits(img: torch.Tensor, desc: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DCLIP (Menon & Vondrick 2023; FAIR, eq. 5): mean over a class's descriptions of the
    cosine similarity, padded descriptions excluded."""
    _check("img", img, 2, "(B, d)")
    _check_desc(desc, mask, img.shape[1])
    return _masked_mean(torch.einsum("bd,cmd->bcm", img, desc), mask)


def cls_crop_weights(img_cls: torch.Tensor, crop_cls: torch.Tensor) -> torch.Tensor:
    """FAIR eq. 12: w~_i = sim(f_CLS, f_i_CLS) / sum_l sim(f_CLS, f_l_CLS) (no softmax)."""
    _check("img_cls", img_cls, 2, "(B, h)")
    _check("crop_cls", crop_cls, 3, "(B, N, h)")
    sim = torch.einsum("bh,bnh->bn", F.normalize(img_cls, dim=-1), F.normalize(crop_cls, dim=-1))
    return sim / sim.sum(1, keepdim=True)


def softmax_crop_weights(crops: torch.Tensor, img: torch.Tensor, crop_scale: float = math.exp(4)) -> torch.Tensor:
    """WCA eq. 8: w_i = softmax_i(crop_scale * sim(f, f_i)) over the crops (B, N)."""
    return torch.softmax(crop_scale * torch.einsum("bnd,bd->bn", crops, img), dim=1)


def _top_k_mask(weights: torch.Tensor, k: int | None, name: str = "top_k") -> torch.Tensor:
    """FAIR eq. 13: True for the ``k`` largest weights of each row (all when ``k`` is None)."""
    if k is None:
        return torch.ones_like(weights, dtype=torch.bool)
    if not 1 <= k <= weights.shape[1]:
        raise ValueError(f"{name}={k} must lie in 1..{weights.shape[1]} (the number of crops)")
    keep = torch.zeros_like(weights, dtype=torch.bool)
    return keep.scatter(1, weights.topk(k, dim=1).indices, True)


def wca_logits(crops: torch.Tensor, img: torch.Tensor, desc: torch.Tensor, mask: torch.Tensor,
               class_txt: torch.Tensor | None = None, *, crop_scale: float = math.exp(4),
               text_scale: float = math.exp(2), top_k: int | None = None,
               crop_cls: torch.Tensor | None = None, img_cls: torch.Tensor | None = None,
               normalize: bool = True) -> torch.Tensor:
    """WCA (Li et al. 2024; FAIR, eqs. 7-10): weighted crop x description alignment.

    * crop weights w_i = softmax_i(crop_scale * sim(f, f_i)) (eq. 8); ``crop_scale`` = e^4 and the
      unpooled full image f follow the official WCA code (the paper's eq. 8 has scale 1);
    * description weights v_j = softmax_j(text_scale * sim(Z_j, class_txt)) over the real
      descriptions (eq. 9), class_txt = the class's "a photo of a {c}." feature; ``text_scale`` = e^2
      from the official code; ``class_txt=None`` gives uniform v (FAIR sets v_j = 1);
    * score: ``normalize=True`` (official code) = <normalise(sum_i w_i f_i), normalise(sum_j v_j Z_j)>;
      ``normalize=False`` = the paper's eq. 10, sum_i sum_j w_i v_j Theta_ij.

    FAIR's Table 3 rows on top of WCA: ``top_k`` keeps the k largest crop weights (eq. 13) and
    renormalises them; ``crop_cls``/``img_cls`` replace eq. 8 by FAIR's [CLS]-based weights (eq. 12).
    """
    _check("crops", crops, 3, "(B, N, d)")
    _check_pair(crops, img)
    _check_desc(desc, mask, crops.shape[2])
    if _crop_cls_pair(crops, crop_cls, img_cls):
        w = cls_crop_weights(img_cls, crop_cls)
    else:
        w = softmax_crop_weights(crops, img, crop_scale)
    keep = _top_k_mask(w, top_k)
    w = torch.where(keep, w, torch.zeros_like(w))
    w = w / w.sum(1, keepdim=True)
    if class_txt is not None:
        _check("class_txt", class_txt, 2, "(C, d)")
        if class_txt.shape != (desc.shape[0], desc.shape[2]):
            raise ValueError(f"class_txt must be {(desc.shape[0], desc.shape[2])} (one per class), got {tuple(class_txt.shape)}")
        rel = text_scale * torch.einsum("cmd,cd->cm", desc, class_txt)
        v = torch.softmax(rel.masked_fill(~mask, float("-inf")), dim=1)
    else:
        v = mask.to(desc.dtype) / mask.sum(1, keepdim=True)
    image_side = torch.einsum("bn,bnd->bd", w, crops)
    text_side = torch.einsum("cm,cmd->cd", v, desc)
    if normalize:
        image_side, text_side = F.normalize(image_side, dim=-1), F.normalize(text_side, dim=-1)
    return image_side @ text_side.T


def las_logits(crops: torch.Tensor, crop_cls: torch.Tensor | None, img_cls: torch.Tensor | None,
               anchors: torch.Tensor, k: int | None = 4, *, img: torch.Tensor | None = None) -> torch.Tensor:
    """FAIR's Learned Alignment Score (FAIR, eqs. 11-14).

    Theta~ = crops x anchors (eq. 11, anchors = the Class Description Anchors Z*, initialised as the
    CuPL mean); crop weights w~ from the [CLS] tokens, sum-normalised without softmax (eq. 12); the
    top-``k`` crops by w~ (eq. 13); psi_c = sum_{i in top-k} w~_i Theta~_ic (eq. 14, not renormalised
    after the top-k, as written). Default k = 4 of N = 16 crops (FAIR, Sec. 4).

    Ablation (FAIR Table 3, "[CLS]-based crop weights" off): pass ``crop_cls=img_cls=None`` and the
    global feature ``img``; the weights then use the projected features, sum-normalised the same way.
    ``k=None`` keeps every crop ("crop selection" off).
    """
    _check("crops", crops, 3, "(B, N, d)")
    _check("anchors", anchors, 2, "(C, d)")
    if anchors.shape[1] != crops.shape[2]:
        raise ValueError(f"anchors have feature size {anchors.shape[1]}, the crops {crops.shape[2]}")
    if _crop_cls_pair(crops, crop_cls, img_cls):
        w = cls_crop_weights(img_cls, crop_cls)
    elif img is not None:
        _check_pair(crops, img)
        sim = torch.einsum("bnd,bd->bn", crops, img)
        w = sim / sim.sum(1, keepdim=True)
    else:
        raise ValueError("las_logits needs crop_cls and img_cls ([CLS] weights, eq. 12) or img (projected weights)")
    w = torch.where(_top_k_mask(w, k, "k"), w, torch.zeros_like(w))
    theta = torch.einsum("bnd,cd->bnc", crops, anchors)
    return torch.einsum("bn,bnc->bc", w, theta)


def lazsl_logits(crops: torch.Tensor, img: torch.Tensor, desc: torch.Tensor, mask: torch.Tensor, *,
                 theta: float = 0.8, eps: float = 0.1, n_iter: int = 100, tol: float = 1e-6,
                 select: bool = True, hybrid: bool = True, ot: bool = True, chunk: int = 2 ** 24,
                 return_plans: bool = False):
    """LaZSL (Chen et al., ICCV 2025): optimal-transport alignment of crops and descriptions.

    For each image and class (LaZSL Sec. 3, "OT-based local alignment"; official code):

    * R = crops x descriptions, g = full image x descriptions; the region-global hybrid similarity
      S = (1 - theta) g + theta R with ``theta`` = 0.8 (paper's best and official default;
      ``hybrid=False`` gives S = R);
    * vision selection (``select``): crops whose similarity to the full image is below the mean over
      the image's crops get zero mass, the rest share it uniformly; otherwise every crop gets 1/N;
    * descriptions: uniform mass over the class's real descriptions (``mask``);
    * plan T = entropic OT with cost 1 - S (``lib.methods.sinkhorn``; ``eps`` = 0.1 and at most 100 iterations
      from the official code), computed without gradients as in the official code;
    * score = <T, S>_F, the Frobenius product with the hybrid similarity (the official code scores
      S, not R). ``ot=False`` replaces T by the independent coupling a b^T (a weighted mean of S): the
      "no OT" row.

    ``chunk`` bounds B x C x N x M elements per step. ``return_plans`` also returns T (B, C, N, M).
    """
    _check("crops", crops, 3, "(B, N, d)")
    _check_pair(crops, img)
    _check_desc(desc, mask, crops.shape[2])
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta={theta} must lie in [0, 1]")
    b_total, n, _ = crops.shape
    c, m = mask.shape
    if select:
        sim = torch.einsum("bnd,bd->bn", crops, img)
        a = (sim >= sim.mean(1, keepdim=True)).to(crops.dtype)
    else:
        a = torch.ones(b_total, n, dtype=crops.dtype, device=crops.device)
    a = a / a.sum(1, keepdim=True)
    b = mask.to(crops.dtype) / mask.sum(1, keepdim=True)
    step = max(1, chunk // max(1, c * n * m))
    logits, plans = [], []
    for s in range(0, b_total, step):
        cr, im, aa = crops[s:s + step], img[s:s + step], a[s:s + step]
        bs = cr.shape[0]
        sim = torch.einsum("bnd,cmd->bcnm", cr, desc)
        if hybrid:
            sim = (1 - theta) * torch.einsum("bd,cmd->bcm", im, desc)[:, :, None, :] + theta * sim
        if ot:
            with torch.no_grad():
                plan = sinkhorn.sinkhorn_plans(
                    (1 - sim).reshape(bs * c, n, m),
                    aa[:, None, :].expand(bs, c, n).reshape(bs * c, n),
                    b[None].expand(bs, c, m).reshape(bs * c, m),
                    eps=eps, n_iter=n_iter, tol=tol,
                    col_mask=mask[None].expand(bs, c, m).reshape(bs * c, m),
                ).reshape(bs, c, n, m)
        else:
            plan = aa[:, None, :, None] * b[None, :, None, :]
        logits.append((plan * sim).sum((-1, -2)))
        if return_plans:
            plans.append(plan.expand(bs, c, n, m))
    out = torch.cat(logits)
    return (out, torch.cat(plans)) if return_plans else out
