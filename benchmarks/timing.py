"""Side-by-side timing shared by every benchmark: synchronised timers and interleaved medians.

Every number a benchmark reports is a ratio of two things timed in the same run, each ``repeats``
times, interleaved (the order of the sides reverses every repeat, so a slow spell of a shared machine
falls on both), after untimed warm-up calls, and summarised by the median.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

MIN_REPEATS = 5  # the written table never rests on fewer


def sync(device) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a timer measures the work, not its launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable, device="cpu"):
    """(seconds, result) of one call of ``fn``, synchronised on ``device``."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def interleaved(sides: dict[str, Callable], repeats: int, device="cpu", warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each side, ``repeats`` times, the order reversed every other repeat, after
    ``warmup`` untimed calls of each."""
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(timed(sides[name], device)[0])
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def pretrained_tag(value: str | None) -> str | None:
    """A command-line weights tag: "none" or "" mean random weights (None)."""
    return None if value is None or value.lower() in ("none", "") else value


def add_common_arguments(parser: argparse.ArgumentParser, device: bool = True) -> argparse.ArgumentParser:
    """``--repeats``, ``--device`` (unless ``device`` is False) and ``--threads``, as every benchmark takes them."""
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS)
    if device:
        parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 steadies timings on a busy shared CPU")
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv`` and apply ``--threads``."""
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args
