"""The papers' methods as tensor functions and training loops: no profile settings, no file I/O.

``scoring`` (CLIP, CuPL, DCLIP, WCA, FAIR's LAS, LaZSL) over ``sinkhorn``; ``metrics``; ``fair`` (FAIR's
Algorithm 1) with ``fair_views``; ``episodes``, ``finetune``, ``cc_cdfsl``, ``dtrap`` (cross-domain few-shot);
``localisation`` (where maps look); ``feature_space`` (notebook 04's maps and matrices).
"""
from lib.methods import (
                         cc_cdfsl,
                         dtrap,
                         episodes,
                         fair,
                         fair_views,
                         feature_space,
                         finetune,
                         localisation,
                         metrics,
                         scoring,
                         sinkhorn,
)
