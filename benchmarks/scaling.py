"""How LaZSL's scoring time grows with the number of crops N, classes C and images per batch B.

Issue 8, item 7: time of ``lib.methods.scoring.lazsl_logits`` (B images, N crops, C classes x M descriptions,
random unit features) along one axis at a time, the others held at a base point. Every point of the
grid is timed in each repeat, interleaved (the order reversed every other repeat), medians of
``repeats``. The Sinkhorn solver runs a fixed 100 iterations (``tol=0``, the official code's maximum),
so the growth measured is the cost per iteration, not a convergence speed that depends on the random
features.

Fitted growth (numpy): along each axis the slope k of log(time) against log(x) (time ~ x^k, so k = 1 is
linear), and over every point a linear model time = t0 + a * B*N*C*M (the size of the similarity
tensor and of each Sinkhorn iteration's work) with its R^2. The figure ``scaling.png`` draws the
medians on log-log axes with each axis's fitted power law.

    python -m benchmarks.scaling [--repeats 5 --threads 1]
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from benchmarks import timing
from benchmarks.report import Row, seconds
from lib.methods import scoring

BASE = {"B": 4, "N": 90, "C": 10, "M": 50}
GRID = {"N": (10, 20, 45, 90, 180, 360), "C": (10, 30, 100, 300), "B": (1, 4, 16, 64)}
QUICK_BASE = {"B": 2, "N": 8, "C": 4, "M": 5}
QUICK_GRID = {"N": (4, 8, 16), "C": (2, 4, 8), "B": (1, 2, 4)}
AXES = {"N": "crops N", "C": "classes C", "B": "images per batch B"}


def _problem(point: dict, d: int, seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1).to(device)  # noqa: E731
    crops, img, desc = unit(point["B"], point["N"], d), unit(point["B"], d), unit(point["C"], point["M"], d)
    mask = torch.ones(point["C"], point["M"], dtype=torch.bool, device=device)
    return crops, img, desc, mask


def run(repeats: int = 5, base: dict | None = None, grid: dict | None = None, d: int = 512, device: str = "cpu",
        seed: int = 0, n_iter: int = 100) -> dict:
    """Median seconds at every grid point, and the fitted growth along each axis and overall."""
    base, grid = dict(base or BASE), dict(grid or GRID)
    points = {}
    for axis, values in grid.items():
        for v in values:
            point = {**base, axis: int(v)}
            points.setdefault(tuple(point[k] for k in "BNCM"), point)
    problems = {key: _problem(p, d, seed, device) for key, p in points.items()}
    sides = {key: (lambda x=x: scoring.lazsl_logits(*x, n_iter=n_iter, tol=0.0)) for key, x in problems.items()}
    med = timing.medians(timing.interleaved(sides, repeats, device, warmup=1))
    records = []
    for axis, values in grid.items():
        for v in values:
            point = {**base, axis: int(v)}
            records.append({"axis": axis, "x": int(v), **point, "seconds": med[tuple(point[k] for k in "BNCM")]})
    data = pd.DataFrame(records)
    data["elements"] = data["B"] * data["N"] * data["C"] * data["M"]
    return {"base": base, "grid": {k: list(v) for k, v in grid.items()}, "d": d, "device": device, "n_iter": n_iter,
            "repeats": repeats, "torch_threads": torch.get_num_threads(), "data": data, **fit(data)}


def fit(data: pd.DataFrame) -> dict:
    """log-log slope per axis (over all its values, and over its three largest), and
    t = t0 + a * B*N*C*M over the distinct points with its R^2."""
    slopes = {}
    for axis, part in data.groupby("axis", sort=False):
        part = part.sort_values("x")
        slope, intercept = np.polyfit(np.log(part["x"]), np.log(part["seconds"]), 1)
        upper = part.iloc[-3:]  # the three largest values: the growth once fixed overheads are small
        upper_slope = np.polyfit(np.log(upper["x"]), np.log(upper["seconds"]), 1)[0]
        slopes[axis] = {"slope": float(slope), "intercept": float(intercept), "upper_slope": float(upper_slope),
                        "upper_from": int(upper["x"].iloc[0])}
    points = data.drop_duplicates(["B", "N", "C", "M"])
    x, y = points["elements"].to_numpy(float), points["seconds"].to_numpy(float)
    a, t0 = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - (t0 + a * x)) ** 2) / np.sum((y - y.mean()) ** 2)
    return {"slopes": slopes, "linear": {"t0": float(t0), "per_element": float(a), "r2": float(r2)}}


def growth(slope: float) -> str:
    """Words for a log-log slope."""
    if slope < 0.3:
        return "nearly flat (fixed overheads dominate)"
    if slope < 0.8:
        return "sub-linear (fixed overheads still a large share)"
    if slope <= 1.2:
        return "about linear"
    return "super-linear"


def statement(r: dict) -> str:
    """The fitted growth in one sentence, from the measurements."""
    s, lin = r["slopes"], r["linear"]
    parts = "; ".join(f"{AXES[k]}: time ~ {k}^{s[k]['slope']:.2f} over all values ({growth(s[k]['slope'])}), "
                      f"{k}^{s[k]['upper_slope']:.2f} from {k} = {s[k]['upper_from']} on "
                      f"({growth(s[k]['upper_slope'])})" for k in s)
    t0 = f"{'-' if lin['t0'] < 0 else ''}{seconds(abs(lin['t0']))}"
    linear = [k for k, v in s.items() if 0.8 <= v["upper_slope"] <= 1.2]
    below = [k for k, v in s.items() if v["upper_slope"] < 0.8]
    above = [k for k, v in s.items() if v["upper_slope"] > 1.2]
    verdict = []
    if linear:
        verdict.append(f"about linearly in {', '.join(linear)} at the top of the range")
    if below:
        verdict.append(f"sub-linearly in {', '.join(below)}: at this base point a fixed cost per Sinkhorn iteration "
                       "(launching the batched operations on small tensors) is not yet amortised")
    if above:
        verdict.append(f"faster than linearly in {', '.join(above)}")
    return (f"{parts}. Over all points, the linear model time = {t0} + {lin['per_element'] * 1e9:.3g} ns x B*N*C*M "
            f"fits with R^2 = {lin['r2']:.3f} (the largest calls weigh most). In short, time grows {'; '.join(verdict)}")


def rows(r: dict, item: str = "7") -> list[Row]:
    base = ", ".join(f"{k}={v}" for k, v in r["base"].items())
    out = []
    for i, (axis, s) in enumerate(r["slopes"].items()):
        part = r["data"][r["data"]["axis"] == axis]
        out.append(Row(f"{item}{'abc'[i]}", f"LaZSL scoring time against {AXES[axis]} (log-log slope)", s["slope"],
                       None, f"{growth(s['slope'])}; slope {s['upper_slope']:.2f} from {axis} = {s['upper_from']} on "
                             f"({growth(s['upper_slope'])}); {axis} in {list(part['x'])}, others at {base}; "
                             f"{r['n_iter']} Sinkhorn iterations", unit="", goal_text="none (1 = linear)",
                       sides=[(f"lazsl_logits at {axis}={x}", t) for x, t in zip(part["x"], part["seconds"])]))
    return out


def figure(r: dict):
    """Three log-log panels: median time against N, C and B, with each axis's fitted power law."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from lib.report.plots import use_theme

    use_theme()
    axes_keys = list(r["slopes"])
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(3.2 * len(axes_keys), 3), sharey=True)
    for ax, axis in zip(np.atleast_1d(axes), axes_keys):
        part = r["data"][r["data"]["axis"] == axis]
        sns.scatterplot(data=part, x="x", y="seconds", ax=ax, s=40)
        s = r["slopes"][axis]
        xs = np.geomspace(part["x"].min(), part["x"].max(), 50)
        ax.plot(xs, np.exp(s["intercept"]) * xs ** s["slope"], lw=1, color="#e4572e",
                label=f"~ {axis}^{s['slope']:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel("seconds per lazsl_logits call")
        ax.legend(fontsize=8)
    base = ", ".join(f"{k}={v}" for k, v in r["base"].items())
    fig.suptitle(f"LaZSL scoring time ({r['device']}, {r['n_iter']} Sinkhorn iterations; base {base})", fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = timing.parse(timing.add_common_arguments(p, device=True), argv)
    r = run(args.repeats, device=args.device)
    print(r["data"].to_string(index=False))
    print(statement(r))
    return r


if __name__ == "__main__":
    main()
