"""The rows of BENCHMARKS.md: a measured ratio beside its goal, and the medians it comes from.

A benchmark module turns its measurements into ``Row`` objects (``rows(result)``); the runner
(``python -m benchmarks``) collects them and renders the file with ``markdown``. Every number in the
file comes from a measurement of the run that wrote it; goals are the issue's and the papers'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Goal:
    """``ratio <op> value``: op one of ">=", "<=", "<"; ``unit`` is appended when shown ("x")."""

    op: str
    value: float
    unit: str = ""

    def met(self, ratio: float | None) -> bool | None:
        if ratio is None or not math.isfinite(ratio):
            return None
        return {">=": ratio >= self.value, "<=": ratio <= self.value, "<": ratio < self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}{self.unit}"


@dataclass
class Row:
    """One line of the table: ``ratio`` (None: not measured) against ``goal`` (None: no goal)."""

    item: str
    benchmark: str
    ratio: float | None
    goal: Goal | None = None
    notes: str = ""
    unit: str = "x"
    goal_text: str = ""  # shown when there is no Goal (e.g. the paper's figure to compare with)
    sides: list[tuple[str, float]] = field(default_factory=list)  # (what was timed, median seconds)
    ratio_text: str = ""  # shown instead of the formatted ratio (e.g. "not measured")

    @property
    def met(self) -> bool | None:
        return self.goal.met(self.ratio) if self.goal else None

    def shown_ratio(self) -> str:
        if self.ratio_text:
            return self.ratio_text
        if self.ratio is None:
            return "not measured"
        return f"{fmt(self.ratio)}{self.unit}"

    def shown_goal(self) -> str:
        return str(self.goal) if self.goal else (self.goal_text or "—")

    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "—"}[self.met]


def fmt(x: float) -> str:
    """Three significant figures, without scientific notation for ordinary sizes."""
    if x is None or not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1e-3:
        return f"{x:#.3g}".rstrip(".")  # keeps trailing zeros: 1.00, 10.0
    return f"{x:.2e}"


def seconds(s: float) -> str:
    """A duration with a readable unit."""
    if s >= 60:
        return f"{s / 60:.1f} min"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    lines = ["| # | benchmark | measured ratio | goal | met? | notes (what dominates) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(c) for c in (r.item, r.benchmark, r.shown_ratio(), r.shown_goal(),
                                                             r.verdict(), r.notes)) + " |")
    return "\n".join(lines)


def sides_table(rows: list[Row]) -> str:
    lines = ["| # | benchmark | what was timed | median |", "|---|---|---|---|"]
    for r in rows:
        for what, s in r.sides:
            lines.append("| " + " | ".join(_cell(c) for c in (r.item, r.benchmark, what, seconds(s))) + " |")
    return "\n".join(lines)


def misses(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.met is False]
