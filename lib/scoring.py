"""Scoring: pure tensor functions from L2-normalised features to logits ``(B, C)``.

No I/O and no model calls (DESIGN.md, "Scoring contract"). This module starts with CLIP's global
score; CuPL, DCLIP, WCA, FAIR's LAS and LaZSL join it with the zero-shot issue.
"""
from __future__ import annotations

import torch


def clip_logits(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """CLIP zero-shot (Radford et al. 2021; eq. 1 of fair_paper.txt): cosine similarity.

    img ``(B, d)`` and txt ``(C, d)``, both L2-normalised -> logits ``(B, C)``.
    """
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
        raise ValueError(f"clip_logits needs img (B, d) and txt (C, d); got {tuple(img.shape)} and {tuple(txt.shape)}")
    return img @ txt.T
