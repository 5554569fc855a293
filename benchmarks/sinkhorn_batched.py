"""lib.sinkhorn.sinkhorn_plans (POT's batched log solver) against a loop of per-sample POT solves.

LaZSL-shaped problems: ``batch`` problems of ``n`` crops x ``m`` descriptions, cost = 1 - cosine
similarity of random unit vectors (d = 512), eps = 0.1, uniform marginals, fixed seed. Both sides run
exactly ``n_iter`` iterations (tol = 0, so neither stops early) on the same device and dtype; each side
is timed ``repeats`` times, interleaved, after one warm-up, and medians are reported.

    python -m benchmarks.sinkhorn_batched [--batch 100 --crops 90 --descriptions 50 --repeats 5 --device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import ot
import torch

from lib.sinkhorn import sinkhorn_plans


def _costs(batch: int, n: int, m: int, d: int, seed: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    crops = torch.nn.functional.normalize(torch.randn(batch, n, d, generator=g), dim=-1)
    descs = torch.nn.functional.normalize(torch.randn(batch, m, d, generator=g), dim=-1)
    return (1 - crops @ descs.transpose(1, 2)).to(dtype=dtype, device=device)


def _timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def run(batch: int = 100, n: int = 90, m: int = 50, repeats: int = 5, device: str = "cpu", *,
        d: int = 512, eps: float = 0.1, n_iter: int = 100, dtype: str = "float32", seed: int = 0) -> dict:
    """Median seconds of the batched and the looped solver, their ratio and the max |plan difference|."""
    cost = _costs(batch, n, m, d, seed, getattr(torch, dtype), device)
    a = torch.full((n,), 1.0 / n, dtype=cost.dtype, device=cost.device)
    b = torch.full((m,), 1.0 / m, dtype=cost.dtype, device=cost.device)

    def batched():
        return sinkhorn_plans(cost, eps=eps, n_iter=n_iter, tol=0.0)

    def looped():
        return torch.stack([ot.sinkhorn(a, b, cost[i], reg=eps, method="sinkhorn_log", numItermax=n_iter,
                                        stopThr=0.0, warn=False) for i in range(batch)])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns that tol = 0 was not reached: that is the point
        batched(), looped()  # warm-up
        t_batched, t_looped = [], []
        for _ in range(repeats):
            t, plans_batched = _timed(batched, device)
            t_batched.append(t)
            t, plans_looped = _timed(looped, device)
            t_looped.append(t)
    med_b, med_l = statistics.median(t_batched), statistics.median(t_looped)
    return {
        "batch": batch, "n": n, "m": m, "d": d, "eps": eps, "n_iter": n_iter, "dtype": dtype,
        "device": str(cost.device), "repeats": repeats, "torch_threads": torch.get_num_threads(),
        "median_batched_s": med_b, "median_looped_s": med_l, "speedup": med_l / med_b,
        "max_abs_plan_diff": (plans_batched - plans_looped).abs().max().item(),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--crops", type=int, default=90)
    p.add_argument("--descriptions", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    r = run(args.batch, args.crops, args.descriptions, args.repeats, args.device)
    print(f"{r['batch']} problems of {r['n']} x {r['m']}, eps={r['eps']}, {r['dtype']} on {r['device']} "
          f"({r['torch_threads']} torch threads), {r['n_iter']} iterations each side (tol=0), "
          f"medians of {r['repeats']} interleaved repeats")
    print(f"batched sinkhorn_plans : {r['median_batched_s'] * 1e3:9.2f} ms")
    print(f"per-sample ot.sinkhorn : {r['median_looped_s'] * 1e3:9.2f} ms")
    print(f"speed-up               : {r['speedup']:9.1f}x (goal >= 10x)")
    print(f"max |plan difference|  : {r['max_abs_plan_diff']:.3e}")
    return r


if __name__ == "__main__":
    main()
