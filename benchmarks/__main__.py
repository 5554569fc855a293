"""Run every benchmark of issue 8 and write BENCHMARKS.md and figures/benchmarks/*.png.

    python -m benchmarks --threads 1              # the committed table: under 10 minutes on 2 CPU cores
    python -m benchmarks --quick --out /tmp/b     # a tiny smoke configuration (tests); not a measurement
    python -m benchmarks --main-job               # also run the main job cold (longer than 10 minutes)
    python -m benchmarks --device cuda            # the GPU check: items 2, 3, 5 at paper scale + a paper-profile
                                                  # smoke run of every notebook, within 10 minutes -> BENCHMARKS-cuda.md

Items (one module each, also runnable alone as ``python -m benchmarks.<module>``):

1. ``sinkhorn_batched``: batched Sinkhorn vs a per-sample POT loop (goal >= 10x), max plan difference;
2. ``lazsl_overhead``: LaZSL time per image / encoding its 91 views, C = 10 and 1000 (goal <= 1.1);
3. ``zero_shot_methods``: every zero-shot method's time per image / CLIP's (LaZSL paper: 4.7x vs DCLIP);
4. ``feature_cache_warm``: notebook 01's scoring, cold cache / warm cache (goal >= 20x);
5. ``fair_pseudo_labels`` (FAIR / WCA pseudo-labelling, < 1 as FAIR's Fig. 2 claims) and ``fair_step``
   (FAIR step / (plain LayerNorm-tuning step + the no-grad encoding of its N + 1 views), goal <= 1.1;
   FAIR step / plain step is reported beside it, without a goal);
6. ``main_job``: peak RSS and wall time of ``python -m lib.regenerate`` (goals <= 4 GB, <= 10 min),
   from its record ``runs/main_job.json``, or measured cold with ``--main-job``;
7. ``scaling``: LaZSL scoring time against N, C and B, with the fitted growth;
8. ``gpu``: items 2, 3 and 5 at paper scale with ViT-B/32 (``--device cuda``; skipped without a GPU),
   then ``paper_smoke``: every notebook on the paper profile at a small size on the GPU (its
   backbones with random weights, the EuroSAT subset and the official descriptors under ``DATA_ROOT``),
   in what is left of the 10 minutes (``GPU_BUDGET_S``).

Every ratio is two things timed side by side in this run, medians of ``--repeats`` (at least 5)
interleaved repeats. ``--threads 1`` is recommended on a shared CPU: torch's extra threads slow small
operations far more than large ones and distort the ratios. BENCHMARKS.md is written atomically
(``lib.runtime.locations.atomic_write``) into ``--out`` (default: the repository root), the figures through
``lib.report.outputs.save_figure`` under ``--figures-root`` (default: the repository's ``figures/``).
"""
from __future__ import annotations

import time

_PROCESS_START = time.perf_counter()  # before the heavy imports: the total runtime is the command's

import argparse  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import tqdm  # noqa: E402

from benchmarks import (  # noqa: E402
    fair_pseudo_labels,
    fair_step,
    feature_cache_warm,
    gpu,
    lazsl_overhead,
    main_job,
    paper_smoke,
    report,
    scaling,
    sinkhorn_batched,
    timing,
    zero_shot_methods,
)
from benchmarks.report import Row, seconds  # noqa: E402
from lib.report import outputs  # noqa: E402
from lib.report.plots import use_theme
from lib.runtime.locations import REPO_ROOT, atomic_write  # noqa: E402

FIGURES = "benchmarks"  # figures/<this>/<name>.png
BUDGET_S = 600  # the whole default run, on 2 CPU cores
GPU_BUDGET_S = 600  # the GPU check: timings and the paper smoke run together
SMOKE_MARGIN_S = 120  # no notebook of the smoke run starts later than this before the GPU budget ends

# the default (committed) configuration and the tiny smoke one; the FAIR and cache items use the demo
# architecture with random weights (timing does not depend on the values, and no run waits for pretraining)
SETTINGS = {
    "full": {
        "sinkhorn": {"batch": 100, "n": 90, "m": 50},
        "lazsl": {"model": "ViT-B-32", "n_crops": 90, "descriptions": 50, "classes": (10, 1000)},
        "methods": {"model": "ViT-B-32", "n_crops": 90, "descriptions": 50, "classes": 10, "images": 1},
        "cache": {"images": None, "seeds": None},
        "fair": {"model": "demo-tiny-vit", "batch": 32, "classes": 10, "descriptions": 8},
        "scaling": {"base": scaling.BASE, "grid": scaling.GRID},
    },
    "quick": {
        "sinkhorn": {"batch": 8, "n": 12, "m": 6},
        "lazsl": {"model": "demo-tiny-vit", "n_crops": 8, "descriptions": 5, "classes": (3, 30)},
        "methods": {"model": "demo-tiny-vit", "n_crops": 8, "descriptions": 5, "classes": 3, "images": 1},
        "cache": {"images": 8, "seeds": [0]},
        "fair": {"model": "demo-tiny-vit", "batch": 4, "classes": 3, "descriptions": 4},
        "scaling": {"base": scaling.QUICK_BASE, "grid": scaling.QUICK_GRID},
    },
}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=timing.MIN_REPEATS,
                   help=f"interleaved repeats per side (at least {timing.MIN_REPEATS})")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 recommended on a shared CPU)")
    p.add_argument("--device", default="cpu", help="cpu (every item) or cuda (items 2, 3, 5 at paper scale)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke configuration (tests); not a measurement")
    p.add_argument("--out", default=str(REPO_ROOT), help="folder of BENCHMARKS.md (default: the repository root)")
    p.add_argument("--figures-root", default=None,
                   help="figures root (default: $COMPANION_FIGURES or the repository's figures/)")
    p.add_argument("--main-job", action="store_true",
                   help="also run the main job cold (fresh cache; longer than the 10-minute budget)")
    p.add_argument("--main-job-record", default=str(main_job.RECORD),
                   help="the main job's record to report without --main-job")
    p.add_argument("--paper-check", action="store_true",
                   help="run the GPU check (timings + paper smoke run) on --device even if it is not cuda (tests)")
    p.add_argument("--no-smoke", action="store_true", help="the GPU check without the paper-profile smoke run")
    p.add_argument("--smoke-out", default=None, help="where the smoke run's outputs go (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.repeats < timing.MIN_REPEATS:
        p.error(f"--repeats must be at least {timing.MIN_REPEATS}: the table rests on medians of 5 or more")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def command_line(argv) -> str:
    return " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])


def machine(device: str) -> str:
    gpu_name = f", {torch.cuda.get_device_name(0)}" if torch.device(device).type == "cuda" else ""
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()}), torch {torch.__version__} "
            f"with {torch.get_num_threads()} CPU thread(s), device {device}{gpu_name}, Python {platform.python_version()}")


# --------------------------------------------------------------------------------------------------
# The CPU run: every item


def cpu_plan(s: dict, args) -> list[tuple[str, callable]]:
    """(name, function returning (rows, {figure name: figure}, extra)) for every item, in order."""
    r, dev = args.repeats, args.device

    def sinkhorn_item():
        res = sinkhorn_batched.run(s["sinkhorn"]["batch"], s["sinkhorn"]["n"], s["sinkhorn"]["m"], r, dev)
        return sinkhorn_batched.rows(res), {}, {"sinkhorn": res}

    def lazsl_item():
        c = s["lazsl"]
        res = lazsl_overhead.run(c["model"], c["n_crops"], c["descriptions"], c["classes"], r, dev)
        return lazsl_overhead.rows(res), {}, {}

    def methods_item():
        c = s["methods"]
        res = zero_shot_methods.run(c["model"], None, c["n_crops"], c["descriptions"], c["classes"], c["images"], r, dev)
        return zero_shot_methods.rows(res), {"zero_shot_methods": zero_shot_methods.figure(res)}, {}

    def cache_item():
        res = feature_cache_warm.run("demo", None, s["cache"]["images"], s["cache"]["seeds"], r, dev)
        return feature_cache_warm.rows(res), {}, {}

    def fair_item():
        c = s["fair"]
        kw = {"classes": c["classes"], "descriptions": c["descriptions"]}
        pseudo = fair_pseudo_labels.run(c["model"], None, c["batch"], r, dev, **kw)
        step = fair_step.run(c["model"], None, c["batch"], r, dev, **kw)
        return fair_pseudo_labels.rows(pseudo) + fair_step.rows(step), {}, {}

    def scaling_item():
        res = scaling.run(r, s["scaling"]["base"], s["scaling"]["grid"], device=dev)
        return scaling.rows(res), {"scaling": scaling.figure(res)}, {"scaling": res}

    return [("1 batched Sinkhorn", sinkhorn_item), ("2 LaZSL overhead", lazsl_item),
            ("3 zero-shot methods", methods_item), ("4 feature cache", cache_item),
            ("5 FAIR pseudo-labels and step", fair_item), ("7 scaling", scaling_item)]


def ratio_figure(rows: list[Row]):
    """Each ratio against its goal: measured / goal turned so that >= 1 means met, on a log axis."""
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    use_theme()
    judged = [r for r in rows if r.goal is not None and r.ratio is not None]
    headroom = np.array([(r.ratio / r.goal.value) if r.goal.op == ">=" else (r.goal.value / r.ratio) for r in judged])
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(judged) + 1.2))
    colours = ["#4c9f70" if r.met else "#e4572e" for r in judged]
    labels = [textwrap.fill(f"{r.item}: {r.benchmark}", 42) for r in judged]
    ax.barh(np.arange(len(judged)), headroom, color=colours)
    ax.set_yticks(np.arange(len(judged)), labels, fontsize=8)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    low, high = min(headroom.min(), 1.0) / 2, max(headroom.max(), 1.0) * 8
    ax.set_xlim(low, high)
    ticks = [10.0 ** k for k in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlim(low, high)
    ax.invert_yaxis()
    ax.set_xlabel("headroom against the goal: ratio / goal for lower bounds, goal / ratio for upper bounds (>= 1: met)",
                  fontsize=8)
    for y, (h, r) in enumerate(zip(headroom, judged)):
        ax.text(h, y, f" {r.shown_ratio()} (goal {r.goal})", va="center", fontsize=7)
    fig.tight_layout()
    return fig


def markdown(rows: list[Row], args, argv, elapsed: float, extra: dict, main_job_s: float | None) -> str:
    quick = " **Quick smoke configuration (`--quick`): tiny sizes, not a measurement.**" if args.quick else ""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` (issue 8); do not edit by hand: rerun the command." + quick,
        "",
        f"- command: `{command_line(argv)}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine(args.device)}",
        f"- total runtime of the benchmarks: {seconds(elapsed)} (budget {seconds(BUDGET_S)} on 2 CPU cores: "
        f"{'met' if elapsed <= BUDGET_S else '**missed**'})"
        + (f"; the cold main job (`--main-job`) took {seconds(main_job_s)} more" if main_job_s is not None else ""),
        f"- every ratio is two things timed side by side in this run: medians of {args.repeats} interleaved "
        "repeats (the order reversed every other repeat) after untimed warm-ups. Models with random weights "
        "(timing does not depend on the values).",
        "",
        "## Results",
        "",
        report.table(rows),
        "",
    ]
    missed = report.misses(rows)
    lines += ["## Goals missed", ""]
    if missed:
        for r in missed:
            lines.append(f"- **{r.item} {r.benchmark}**: measured {r.shown_ratio()}, goal {r.goal}. {r.notes}.")
    else:
        lines.append("None of the measured goals is missed.")
    unmeasured = [r for r in rows if r.ratio is None]
    if unmeasured:
        lines += ["", "## Not measured in this run", ""]
        lines += [f"- {r.item} {r.benchmark}: {r.shown_ratio()}." for r in unmeasured]
    if "scaling" in extra:
        sc = extra["scaling"]
        lines += ["", "## Scaling of LaZSL's scoring (item 7)", "",
                  f"Fitted growth: {scaling.statement(sc)}. Figure: `figures/{FIGURES}/scaling.png`.", ""]
    lines += ["", "## Absolute medians", "", report.sides_table(rows), "",
              f"Figures: `figures/{FIGURES}/ratios.png` (every ratio against its goal), "
              f"`figures/{FIGURES}/zero_shot_methods.png` (time per image by method), "
              f"`figures/{FIGURES}/scaling.png`.", ""]
    return "\n".join(lines)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(text.encode()))


def run_cpu(args, argv, start: float) -> Path:
    s = SETTINGS["quick" if args.quick else "full"]
    rows: list[Row] = []
    figs, extra = {}, {}
    plan = cpu_plan(s, args)
    bar = tqdm.tqdm(plan, desc="benchmarks", unit="item")
    for name, fn in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        item_rows, item_figs, item_extra = fn()
        rows += item_rows
        figs.update(item_figs)
        extra.update(item_extra)
        tqdm.tqdm.write(f"{name}: {seconds(time.perf_counter() - t0)}")
        for r in item_rows:
            tqdm.tqdm.write(f"  {r.item} {r.benchmark}: {r.shown_ratio()} (goal {r.shown_goal()}, met: {r.verdict()})")

    main_job_s = None
    if args.main_job:
        tqdm.tqdm.write("6 main job: running `python -m lib.regenerate` cold (fresh cache); this takes a while")
        t0 = time.perf_counter()
        record = main_job.run_cold()
        main_job_s = time.perf_counter() - t0
    else:
        record = main_job.read(args.main_job_record)
    job_rows = main_job.rows(record)
    gpu_row = Row("8", "items 2, 3, 5 at paper scale on a GPU (ViT-B/32)", None, None,
                  "absolute per-sample times beside the papers' (0.07 s LaZSL, 0.015 s DCLIP)",
                  ratio_text="not measured here (this run is on the CPU): run `python -m benchmarks --device cuda` "
                             "where a GPU is present", goal_text="—")
    rows = sorted(rows + job_rows, key=lambda r: r.item) + [gpu_row]
    for r in job_rows:
        tqdm.tqdm.write(f"  {r.item} {r.benchmark}: {r.shown_ratio()} (goal {r.shown_goal()}, met: {r.verdict()})")

    figs["ratios"] = ratio_figure(rows)
    for name, fig in figs.items():
        outputs.save_figure(fig, FIGURES, name, args.figures_root)
        outputs.close(fig)
    elapsed = time.perf_counter() - start - (main_job_s or 0.0)
    path = write_text(Path(args.out) / "BENCHMARKS.md", markdown(rows, args, argv, elapsed, extra, main_job_s))
    print(f"total runtime: {seconds(elapsed)} (budget {seconds(BUDGET_S)})"
          + (f", plus the cold main job {seconds(main_job_s)}" if main_job_s is not None else ""))
    missed = report.misses(rows)
    print(f"goals missed: {', '.join(f'{r.item} ({r.shown_ratio()}, goal {r.goal})' for r in missed) or 'none'}")
    print(f"wrote {path}")
    return path


# --------------------------------------------------------------------------------------------------
# The GPU run: items 2, 3 and 5 at paper scale


def smoke_section(args, start: float) -> str:
    """The paper-profile smoke run in what is left of the GPU budget, as a markdown section."""
    head = ["## Paper-profile smoke run", ""]
    if args.no_smoke:
        return "\n".join(head + ["Not run (`--no-smoke`)."])
    size = "cpu" if args.quick or torch.device(args.device).type != "cuda" else "cuda"
    budget = max(0.0, GPU_BUDGET_S - SMOKE_MARGIN_S - (time.perf_counter() - start))
    out = Path(args.smoke_out) if args.smoke_out else Path(tempfile.mkdtemp(prefix="paper-smoke-"))
    try:
        smoke_start = time.perf_counter()
        results = paper_smoke.run(out, None, size, budget_s=budget)
    except FileNotFoundError as err:
        return "\n".join(head + [f"Not run: {err}"])
    took = time.perf_counter() - smoke_start
    print(paper_smoke.markdown(results, size))
    ok = sum(r.status == "ok" for r in results)
    return "\n".join(head + [f"Every notebook on `lib/runtime/profiles/paper.yaml` changed only in size "
                             f"(`benchmarks.paper_smoke.SIZES[{size!r}]`), random weights, on {args.device}: "
                             f"{ok} of {len(results)} notebooks ran without error in {seconds(took)} "
                             f"(outputs: `{out}`).", "", paper_smoke.markdown(results, size)])


def run_gpu(args, argv, start: float) -> Path | None:
    if not gpu.available(args.device):
        print(f"--device {args.device}: CUDA is not available on this machine (torch.cuda.is_available() is "
              "False); skipping the GPU benchmarks. Run without --device for the CPU table.")
        return None
    bar = tqdm.tqdm(total=4, desc="GPU benchmarks", unit="item")

    def progress(name):  # called as each item finishes
        bar.set_postfix_str(name)
        bar.update(1)

    res = gpu.run(args.device, args.repeats, args.quick, progress)
    bar.close()
    rows, absolute = gpu.rows(res), gpu.absolute(res)
    print("absolute per-sample times beside the papers':")
    gpu.print_absolute(absolute)
    smoke = smoke_section(args, start)
    elapsed = time.perf_counter() - start
    text = "\n".join([
        "# Benchmarks on a GPU (paper scale)", "",
        "Generated by `python -m benchmarks --device cuda` (issue 8, item 8; issue 16, item 6); not committed with "
        "the CPU table.", "",
        f"- command: `{command_line(argv)}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine(args.device)}",
        f"- total runtime: {seconds(elapsed)} (budget {seconds(GPU_BUDGET_S)}); medians of {args.repeats} interleaved "
        "repeats; ViT-B/32 with random weights (timing does not depend on the values); see `benchmarks/gpu.py` "
        "for the scale of each item.", "",
        "## Absolute per-sample times beside the papers'", "", gpu.absolute_table(absolute), "",
        "## Ratios", "", report.table(rows), "", "## Absolute medians", "", report.sides_table(rows), "",
        smoke, "",
    ])
    name = "BENCHMARKS-cuda.md" if torch.device(args.device).type == "cuda" else f"BENCHMARKS-{args.device}-check.md"
    path = write_text(Path(args.out) / name, text)
    print(f"total runtime: {seconds(elapsed)} (budget {seconds(GPU_BUDGET_S)}); wrote {path}")
    return path


def main(argv=None, started: float | None = None) -> Path | None:
    """Run and write the report; ``started``: when the command started (perf_counter), default now."""
    start = started if started is not None else time.perf_counter()
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda" or args.paper_check:
        return run_gpu(args, argv, start)
    return run_cpu(args, argv, start)


if __name__ == "__main__":
    main(started=_PROCESS_START)
