"""Batched entropic OT plans: a thin wrapper over POT's log-domain batched Sinkhorn.

LaZSL's Sinkhorn step (LaZSL paper, section "OT-based local alignment") computes, per image and
class, the transport plan T between crops and that class's descriptions; the class score is then
<T, S>_F. This module only returns the plans, for many problems at once, through
``ot.batch.solve_batch(..., method="log_sinkhorn", grad="detach")`` (POT's torch backend, so CPU
or GPU). Plans carry no gradient, as in the official code.

Why the log domain: the kernel exp(-cost / eps) underflows for small eps (with eps = 1e-3 and costs
in [0, 2] it reaches exp(-2000) = 0 even in float64), which makes the scaling form divide 0 by 0;
log-sum-exp updates stay finite. The scaling form (POT's ``method="sinkhorn"``: batched matrix-vector
products) is about 7x faster, though, and exact whenever the kernel cannot underflow: ``method="auto"``
(default) shifts each problem's cost to start at 0 (the plan does not change) and uses the scaling form
when every problem's cost range / eps is at most ``SCALING_MAX_RANGE`` for the dtype, the log domain
otherwise. LaZSL's costs (1 - cosine, a range of a few tenths, eps = 0.1) take the scaling form; eps =
1e-3 takes the log domain. Zero-mass rows or columns give log(0) = -inf potentials and exactly
zero plan rows or columns (torch's logsumexp ignores -inf terms), provided every problem keeps at
least one positive-mass row and column, which :func:`sinkhorn_plans` checks.

Why ``col_mask``: classes have different numbers of descriptions, so descriptions are padded to a
common ``m`` (docs/design.md, "Scoring contract", ``mask``); masked columns get zero mass and a zero plan.
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from ot.batch import solve_batch

# largest cost range / eps for the scaling form: the kernel's smallest entry exp(-range/eps) and the
# scalings (up to exp(range/eps)) stay far inside the dtype's range (float32 ~ 1e38, float64 ~ 1e308)
SCALING_MAX_RANGE = {torch.float16: 5.0, torch.bfloat16: 5.0, torch.float32: 30.0, torch.float64: 300.0}
# mass (L1, out of 1) a returned plan may put on the wrong rows before sinkhorn_plans warns: LaZSL's
# defaults leave ~1e-6; eps = 1e-4 after 100 iterations leaves ~0.5 (its plans are then no coupling)
MAX_MARGINAL_ERROR = 1e-2


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
                   col_mask: torch.Tensor | None = None,
                   method: Literal["auto", "log", "scaling"] = "auto") -> torch.Tensor:
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

    ``method``: "log" (log-domain, always finite), "scaling" (faster; only where the kernel cannot
    underflow) or "auto" (the scaling form when it is safe, see the module docstring).

    A plan that still misses a marginal by more than ``MAX_MARGINAL_ERROR`` of the mass after
    ``n_iter`` iterations (small eps converges slowly: eps = 1e-4 needs thousands) is returned with a
    RuntimeWarning naming eps and n_iter; so is a plan holding NaN or inf.
    """
    if method not in ("auto", "log", "scaling"):
        raise ValueError(f"method must be 'auto', 'log' or 'scaling'; got {method!r}")
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
    a = _marginal(a, "a", (P, n), cost, None)
    b = _marginal(b, "b", (P, m), cost, col_mask)
    cost = cost.detach()
    real = col_mask[:, None, :].expand(P, n, m) if col_mask is not None else torch.ones_like(cost, dtype=torch.bool)
    inf = torch.tensor(float("inf"), dtype=cost.dtype, device=cost.device)
    low = torch.where(real, cost, inf).amin(dim=(1, 2), keepdim=True)
    high = torch.where(real, cost, -inf).amax(dim=(1, 2), keepdim=True)
    # shift each problem to start at 0 (same plan); masked columns get cost 0 and carry no mass
    cost = torch.where(real, cost - low, torch.zeros((), dtype=cost.dtype, device=cost.device))
    if method == "auto":
        limit = SCALING_MAX_RANGE.get(cost.dtype, 30.0)
        method = "scaling" if float((high - low).max()) / eps <= limit else "log"
    res = solve_batch(cost, reg=float(eps), a=a, b=b, max_iter=int(n_iter), tol=float(tol),
                      method="sinkhorn" if method == "scaling" else "log_sinkhorn", grad="detach")
    plan = res.plan
    off = float(max((plan.sum(2) - a).abs().sum(1).max(), (plan.sum(1) - b).abs().sum(1).max()))
    if not math.isfinite(off):  # a plan holds NaN or inf
        warnings.warn(f"sinkhorn_plans returned NaN or inf plans ({method} form, eps={eps}): the cost holds NaN "
                      "or inf, or the scaling form's kernel underflowed (use method='auto' or 'log')",
                      RuntimeWarning, stacklevel=2)
    elif off > MAX_MARGINAL_ERROR:
        warnings.warn(f"sinkhorn_plans did not converge: after n_iter={n_iter} iterations at eps={eps} "
                      f"({method} form) the plans miss their marginals by up to {off:.3g} of the mass; raise "
                      "n_iter (a small eps needs about cost range / eps iterations) or eps", RuntimeWarning,
                      stacklevel=2)
    return plan
