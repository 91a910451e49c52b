"""The results table: medians per figure, the imdsmock / nginx ratio and the target."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Samples = Mapping[str, Mapping[str, Sequence[float]]]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    figure: str
    unit: str
    imdsmock: float | None
    nginx: float | None
    ratio: float | None
    target: str
    met: bool | None


def median(values: Sequence[float] | None) -> float | None:
    """The median, or None when nothing was measured."""
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b when both exist."""
    return a / b if a is not None and b else None


Check = Callable[[Mapping[str, float | None]], tuple[str, bool | None]]


def fmt(value: float | None, unit: str) -> str:
    """A number in the table's style."""
    if value is None:
        return "-"
    if unit == "req/s":
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def render(rows: Sequence[Row]) -> str:
    """A Markdown table (it pastes into docs/performance.md as is)."""
    head = ["figure", "unit", "imdsmock", "nginx", "imdsmock/nginx", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        cells = [r.figure, r.unit, fmt(r.imdsmock, r.unit), fmt(r.nginx, r.unit)]
        cells += [fmt(r.ratio, "x"), r.target or "", met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
