"""How a "does it hold?" line answers: from the seeds' spread, never from one number.

A claim compares two runs' means over seeds. It holds (``yes``) or fails (``no``) only
when the difference is larger than the seeds' spread (the larger of the two runs' std);
inside it, the line says the two tie. With a single seed there is no spread: the line says
the claim cannot be judged, and shows the numbers. Every line names the runs it rests on,
and so their protocol (``<method>_paper``: vaemix.protocols).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """A run's mean over seeds, their std (NaN for one seed) and the number of seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        values = [float(v) for v in values]
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(statistics.fmean(values), std, len(values))

    def text(self, fmt: str = "{:.3f}") -> str:
        if self.n < 2 or math.isnan(self.std):
            return fmt.format(self.mean)
        return f"{fmt.format(self.mean)} ± {fmt.format(self.std)}"


def compare(runs: tuple[str, str], a: Stat, b: Stat, *, a_below_b: bool,
            fmt: str = "{:.3f}", paper: str = "") -> str:
    """The answer to "``a`` is below ``b``" (``a_below_b``) or above it: yes / no outside
    the seeds' spread, a tie inside it, "cannot be judged" from one seed; with the runs'
    names and numbers."""
    numbers = f"{runs[0]} {a.text(fmt)} vs {runs[1]} {b.text(fmt)}"
    tail = f"{numbers}{'; paper: ' + paper if paper else ''}"
    if a.n < 2 or b.n < 2:
        return f"cannot be judged from one seed ({tail})"
    spread = max(a.std, b.std)
    if abs(a.mean - b.mean) <= spread:
        return f"tie, the difference is inside the seeds' spread ({tail})"
    holds = a.mean < b.mean if a_below_b else a.mean > b.mean
    return f"{'yes' if holds else 'no'}, {tail}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of ``header`` and the cells of ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
