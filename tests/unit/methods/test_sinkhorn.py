"""lib.methods.sinkhorn: marginals, agreement with POT's per-sample log solver, masking, zero mass, small eps."""
from __future__ import annotations

import warnings

import ot
import pytest
import torch

from lib.methods.sinkhorn import sinkhorn_plans

TIGHT = dict(n_iter=5000, tol=1e-12)  # converge fully in float64


def _problems(P=5, n=9, m=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(P, n, m, generator=g, dtype=torch.float64)
    a = torch.rand(P, n, generator=g, dtype=torch.float64) + 0.05
    b = torch.rand(P, m, generator=g, dtype=torch.float64) + 0.05
    return cost.to(dtype), a.to(dtype), b.to(dtype)


def _normed(x):
    return x / x.sum(dim=1, keepdim=True)


def test_marginals_match_given_a_and_b():
    cost, a, b = _problems()
    plans = sinkhorn_plans(cost, a, b, eps=0.1, **TIGHT)
    assert plans.shape == cost.shape and plans.dtype == torch.float64
    # a and b are not normalised on input: the plans must carry the renormalised marginals.
    torch.testing.assert_close(plans.sum(dim=2), _normed(a), atol=1e-4, rtol=0)
    torch.testing.assert_close(plans.sum(dim=1), _normed(b), atol=1e-4, rtol=0)
    assert (plans >= 0).all()


def test_uniform_marginals_by_default():
    cost, _, _ = _problems(P=3, n=8, m=4, seed=1)
    plans = sinkhorn_plans(cost, **TIGHT)
    torch.testing.assert_close(plans.sum(dim=2), torch.full((3, 8), 1 / 8, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(plans.sum(dim=1), torch.full((3, 4), 1 / 4, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("eps", [0.1, 0.03])
def test_agrees_with_pot_per_sample_log_sinkhorn(eps):
    cost, a, b = _problems(P=4, n=10, m=7, seed=2)
    plans = sinkhorn_plans(cost, a, b, eps=eps, **TIGHT)
    for i in range(cost.shape[0]):
        ref = ot.sinkhorn(_normed(a)[i], _normed(b)[i], cost[i], reg=eps,
                          method="sinkhorn_log", numItermax=5000, stopThr=1e-12)
        torch.testing.assert_close(plans[i], ref, atol=1e-5, rtol=0)


def test_masked_padding_changes_nothing():
    cost, a, b = _problems(P=3, n=8, m=5, seed=3)
    ref = sinkhorn_plans(cost, a, b, **TIGHT)
    pad = 4
    padded_cost = torch.cat([cost, torch.full((3, 8, pad), 1e30, dtype=torch.float64)], dim=2)
    padded_cost[1, :, 5:] = -1e6           # very attractive padding must be ignored too
    padded_cost[2, :, 6] = float("nan")    # so must garbage
    padded_b = torch.cat([b, torch.rand(3, pad, dtype=torch.float64) + 1.0], dim=1)
    mask = torch.zeros(3, 5 + pad, dtype=torch.bool)
    mask[:, :5] = True
    for b_in in (padded_b, None):
        plans = sinkhorn_plans(padded_cost, a, b_in, col_mask=mask, **TIGHT)
        assert torch.isfinite(plans).all()
        assert (plans[:, :, 5:] == 0).all()
        expected = ref if b_in is not None else sinkhorn_plans(cost, a, None, **TIGHT)
        torch.testing.assert_close(plans[:, :, :5], expected, atol=1e-12, rtol=0)


def test_ragged_mask_per_problem():
    cost, a, _ = _problems(P=2, n=6, m=5, seed=4)
    mask = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    plans = sinkhorn_plans(cost, a, None, col_mask=mask, **TIGHT)
    assert (plans[0, :, 3:] == 0).all()
    torch.testing.assert_close(plans[0].sum(0)[:3], torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(plans[0, :, :3], sinkhorn_plans(cost[:1, :, :3], a[:1], **TIGHT)[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(plans[1], sinkhorn_plans(cost[1:], a[1:], **TIGHT)[0], atol=1e-12, rtol=0)


def test_zero_mass_rows_give_zero_plan_rows():
    cost, a, b = _problems(P=2, n=7, m=5, seed=5)
    a = a.clone()
    zero = [1, 4]
    a[0, zero] = 0.0
    plans = sinkhorn_plans(cost, a, b, **TIGHT)
    assert torch.isfinite(plans).all()
    assert (plans[0, zero] == 0).all()
    keep = [i for i in range(7) if i not in zero]
    reduced = sinkhorn_plans(cost[:1, keep], a[:1, keep], b[:1], **TIGHT)[0]
    torch.testing.assert_close(plans[0, keep], reduced, atol=1e-10, rtol=0)
    # the other problem in the batch is untouched by problem 0's zeros
    torch.testing.assert_close(plans[1], sinkhorn_plans(cost[1:], a[1:], b[1:], **TIGHT)[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_small_eps_is_finite_and_converges(dtype):
    # eps = 1e-3 with costs in [0, 2]: exp(-cost / eps) underflows to 0, the log domain does not.
    # Convergence is slow at this eps: the row error is ~1e-2 after 100 iterations, ~1e-5 after 2000.
    g = torch.Generator().manual_seed(6)
    cost = (2 * torch.rand(6, 30, 20, generator=g, dtype=torch.float64)).to(dtype)
    assert (torch.exp(-cost / 1e-3) == 0).any()
    plans = sinkhorn_plans(cost, eps=1e-3, n_iter=2000, tol=1e-7)
    assert plans.dtype == dtype
    assert torch.isfinite(plans).all()
    torch.testing.assert_close(plans.sum(2), torch.full((6, 30), 1 / 30, dtype=dtype), atol=1e-4, rtol=0)
    torch.testing.assert_close(plans.sum(1), torch.full((6, 20), 1 / 20, dtype=dtype), atol=1e-4, rtol=0)


def test_float32_keeps_dtype_and_matches_float64():
    cost, a, b = _problems(P=3, n=9, m=6, seed=7)
    p64 = sinkhorn_plans(cost, a, b, n_iter=1000, tol=1e-6)
    p32 = sinkhorn_plans(cost.float(), a.float(), b.float(), n_iter=1000, tol=1e-6)
    assert p32.dtype == torch.float32 and p32.device == cost.device
    torch.testing.assert_close(p32.double(), p64, atol=1e-6, rtol=0)
    # marginals given in float64 are cast to the cost's dtype
    assert sinkhorn_plans(cost.float(), a, b).dtype == torch.float32


def test_plans_carry_no_gradient():
    cost, _, _ = _problems(P=2, n=4, m=3, seed=8)
    cost.requires_grad_(True)
    assert not sinkhorn_plans(cost).requires_grad


@pytest.mark.parametrize("eps", [0.0, -0.1])
def test_non_positive_eps_is_an_error(eps):
    cost, _, _ = _problems(P=1, n=3, m=2)
    with pytest.raises(ValueError, match="eps"):
        sinkhorn_plans(cost, eps=eps)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(cost=torch.rand(3, 4)), "cost"),
        (dict(a=torch.rand(2, 5)), "a"),
        (dict(a=torch.rand(3, 4)), "a"),
        (dict(b=torch.rand(2, 4)), "b"),
        (dict(col_mask=torch.ones(2, 4, dtype=torch.bool)), "col_mask"),
        (dict(col_mask=torch.ones(2, 3)), "col_mask"),
    ],
)
def test_shape_mismatch_names_the_parameter(kwargs, name):
    args = dict(cost=torch.rand(2, 4, 3, dtype=torch.float64))
    args.update(kwargs)
    cost = args.pop("cost")
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        sinkhorn_plans(cost, **args)


def test_all_masked_problem_names_its_index():
    cost = torch.rand(4, 5, 3, dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[2] = False
    with pytest.raises(ValueError, match=r"b: problem 2 "):
        sinkhorn_plans(cost, col_mask=mask)
    # given b whose only mass sits on masked columns is just as empty
    b = torch.tensor([[1.0, 1.0, 0.0]] * 4, dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[3, :2] = False
    with pytest.raises(ValueError, match=r"b: problem 3 "):
        sinkhorn_plans(cost, b=b, col_mask=mask)


def test_zero_mass_a_names_its_index():
    cost = torch.rand(3, 5, 3, dtype=torch.float64)
    a = torch.ones(3, 5, dtype=torch.float64)
    a[1] = 0
    with pytest.raises(ValueError, match=r"a: problem 1 "):
        sinkhorn_plans(cost, a)
    with pytest.raises(ValueError, match=r"^a\b"):
        sinkhorn_plans(cost, -a)


def test_lazsl_shaped_defaults_give_a_coupling():
    # LaZSL-shaped problem (90 crops x 50 descriptions, cost = 1 - cosine) at the defaults
    # (eps = 0.1, at most 100 iterations, tol = 1e-6): nothing warns and both marginals hold.
    g = torch.Generator().manual_seed(9)
    x = torch.nn.functional.normalize(torch.randn(2, 90, 64, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(2, 50, 64, generator=g), dim=-1)
    cost = 1 - x @ y.transpose(1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plans = sinkhorn_plans(cost)
    assert plans.dtype == torch.float32
    torch.testing.assert_close(plans.sum(dim=2), torch.full((2, 90), 1 / 90), atol=1e-6, rtol=0)
    torch.testing.assert_close(plans.sum(dim=1), torch.full((2, 50), 1 / 50), atol=1e-4, rtol=0)


def test_benchmark_run_smoke():
    # The benchmark's run() works at a tiny size and both sides agree; no timing is asserted.
    from benchmarks.sinkhorn_batched import run

    r = run(batch=3, n=6, m=4, repeats=1)
    assert r["n_iter"] == 100 and r["batch"] == 3
    assert r["max_abs_plan_diff"] < 1e-5
    assert r["median_batched_s"] > 0 and all(t > 0 for t in r["median_looped_s"].values())
    assert len(r["speedup"]) == 2


@pytest.mark.parametrize("eps", [0.1, 0.05])
def test_scaling_form_and_log_domain_give_the_same_plans(eps):
    g = torch.Generator().manual_seed(5)
    cost = torch.rand(4, 9, 6, generator=g, dtype=torch.float64) * 0.8 + 0.3
    a = torch.rand(4, 9, generator=g, dtype=torch.float64)
    a[0, :3] = 0  # vision selection: zero-mass rows
    mask = torch.rand(4, 6, generator=g) > 0.3
    mask[:, 0] = True
    cost[~mask[:, None, :].expand_as(cost)] = 1e6  # padding cost must not matter on either path
    kw = dict(eps=eps, n_iter=3000, tol=1e-13, col_mask=mask)
    log, scaling = sinkhorn_plans(cost, a, **kw, method="log"), sinkhorn_plans(cost, a, **kw, method="scaling")
    torch.testing.assert_close(scaling, log, atol=1e-10, rtol=0)
    assert (scaling[0, :3] == 0).all() and (scaling.transpose(1, 2)[~mask] == 0).all()


def test_auto_takes_the_log_domain_where_the_kernel_would_underflow():
    g = torch.Generator().manual_seed(6)
    cost = torch.rand(3, 8, 5, generator=g) * 2  # float32, range ~2
    fast = sinkhorn_plans(cost, eps=0.1, n_iter=500, tol=1e-9)  # 2 / 0.1 = 20 <= 30: scaling form
    torch.testing.assert_close(fast, sinkhorn_plans(cost, eps=0.1, n_iter=500, tol=1e-9, method="scaling"))
    small = sinkhorn_plans(cost, eps=1e-3, n_iter=50)  # 2 / 1e-3 = 2000: log domain
    assert torch.isfinite(small).all()
    torch.testing.assert_close(small, sinkhorn_plans(cost, eps=1e-3, n_iter=50, method="log"))
    forced = sinkhorn_plans(cost, eps=1e-3, n_iter=50, method="scaling")  # underflowed kernel: wrong plan
    assert not torch.isfinite(forced).all() or not torch.allclose(forced, small, atol=1e-3)
    with pytest.raises(ValueError, match="method must be"):
        sinkhorn_plans(cost, method="exact")
