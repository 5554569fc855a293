"""Batched entropic OT plans: a thin wrapper over POT's log-domain batched Sinkhorn.

LaZSL's Sinkhorn step (LaZSL paper, section "OT-based local alignment") computes, per image and
class, the transport plan T between crops and that class's descriptions; the class score is then
<T, S>_F. This module only returns the plans, for many problems at once, through
``ot.batch.solve_batch(..., method="log_sinkhorn", grad="detach")`` (POT's torch backend, so CPU
or GPU). Plans carry no gradient, as in the official code.

Why the log domain: the kernel exp(-cost / eps) underflows for small eps (with eps = 1e-3 and costs
in [0, 2] it reaches exp(-2000) = 0 even in float64), which makes the scaling form divide 0 by 0;
log-sum-exp updates stay finite. Zero-mass rows or columns give log(0) = -inf potentials and exactly
zero plan rows or columns (torch's logsumexp ignores -inf terms), provided every problem keeps at
least one positive-mass row and column, which :func:`sinkhorn_plans` checks.

Why ``col_mask``: classes have different numbers of descriptions, so descriptions are padded to a
common ``m`` (DESIGN.md, "Scoring contract", ``mask``); masked columns get zero mass and a zero plan.
"""
from __future__ import annotations

import torch
from ot.batch import solve_batch


def _marginal(x: torch.Tensor | None, name: str, shape: tuple[int, int], cost: torch.Tensor,
              mask: torch.Tensor | None) -> torch.Tensor:
    """Validate (or build uniformly) a marginal, zero it where masked and renormalise each row to 1."""
    if x is None:
        x = torch.ones(shape, dtype=cost.dtype, device=cost.device)
    else:
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match cost {tuple(cost.shape)}; got {tuple(x.shape)}")
        x = x.to(dtype=cost.dtype, device=cost.device)
        if not torch.isfinite(x).all() or (x < 0).any():
            raise ValueError(f"{name} must be finite and non-negative")
    if mask is not None:
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    total = x.sum(dim=1, keepdim=True)
    empty = (total <= 0).flatten().nonzero().flatten()
    if empty.numel():
        hint = " (all its columns are masked by col_mask?)" if mask is not None else ""
        raise ValueError(f"{name}: problem {int(empty[0])} has no positive mass{hint}")
    return x / total


def sinkhorn_plans(cost: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None, *,
                   eps: float = 0.1, n_iter: int = 100, tol: float = 1e-6,
                   col_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Entropic OT plans ``(P, n, m)`` for ``P`` problems, same dtype and device as ``cost``.

    cost ``(P, n, m)``; a ``(P, n)`` row (crop) marginals or None for uniform; b ``(P, m)`` column
    (description) marginals or None for uniform over unmasked columns; col_mask ``(P, m)`` bool,
    True = real column. Given marginals are zeroed where masked and renormalised to sum to 1;
    a problem whose a or b has no positive mass raises ValueError. Masked columns get a zero plan
    whatever their cost (it is replaced by 0 before solving, so inf or NaN padding is harmless).

    Defaults: ``eps = 0.1`` and at most ``n_iter = 100`` iterations come from the official LaZSL code
    (kernel exp(-cost / 0.1); it stops when the mean |delta r| of its scaling vector is < 1e-2).
    POT's stopping rule differs: every 10 iterations it stops when the largest (over problems) L2
    norm of the row-marginal error is below ``tol``; our default ``tol = 1e-6`` is tighter than
    LaZSL's. All problems run until the slowest one meets the rule or ``n_iter`` is reached.
    """
    if cost.ndim != 3 or not cost.is_floating_point():
        raise ValueError(f"cost must be a floating (P, n, m) tensor; got {cost.dtype} {tuple(cost.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1; got {n_iter}")
    P, n, m = cost.shape
    if col_mask is not None:
        if tuple(col_mask.shape) != (P, m) or col_mask.dtype != torch.bool:
            raise ValueError(f"col_mask must be a bool tensor of shape {(P, m)}; got {col_mask.dtype} {tuple(col_mask.shape)}")
        col_mask = col_mask.to(cost.device)
        cost = torch.where(col_mask[:, None, :], cost, torch.zeros((), dtype=cost.dtype, device=cost.device))
    a = _marginal(a, "a", (P, n), cost, None)
    b = _marginal(b, "b", (P, m), cost, col_mask)
    res = solve_batch(cost.detach(), reg=float(eps), a=a, b=b, max_iter=int(n_iter), tol=float(tol),
                      method="log_sinkhorn", grad="detach")
    return res.plan
