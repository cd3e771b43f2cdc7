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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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

    @classmethod
    def of_metrics(cls, metrics: Mapping[str, Any], key: str) -> Stat:
        """``key`` of a run's metrics file over its seeds (vaemix.seeds.aggregate: the mean,
        ``std.<key>``, ``n_seeds``)."""
        std = (metrics.get("std") or {}).get(key)
        return cls(float(metrics[key]), math.nan if std is None else float(std),
                   int(metrics.get("n_seeds", 1)))

    def text(self, fmt: str = "{:.3f}") -> str:
        if self.n < 2 or math.isnan(self.std):
            return fmt.format(self.mean)
        return f"{fmt.format(self.mean)} ± {fmt.format(self.std)}"


ANSWERS = ("yes", "no", "tie", "unjudged")


def answer(a: Stat, b: Stat, *, a_below_b: bool) -> str:
    """One of :data:`ANSWERS` to "``a`` is below ``b``" (``a_below_b``) or above it: yes /
    no outside the seeds' spread (the larger std), tie inside it, unjudged from one seed."""
    if a.n < 2 or b.n < 2:
        return "unjudged"
    if abs(a.mean - b.mean) <= max(a.std, b.std):
        return "tie"
    return "yes" if (a.mean < b.mean if a_below_b else a.mean > b.mean) else "no"


def compare(runs: tuple[str, str], a: Stat, b: Stat, *, a_below_b: bool,
            fmt: str = "{:.3f}", paper: str = "") -> str:
    """:func:`answer` in words, with the runs' names and numbers."""
    numbers = f"{runs[0]} {a.text(fmt)} vs {runs[1]} {b.text(fmt)}"
    tail = f"{numbers}{'; paper: ' + paper if paper else ''}"
    said = answer(a, b, a_below_b=a_below_b)
    if said == "unjudged":
        return f"cannot be judged from one seed ({tail})"
    if said == "tie":
        return f"tie, the difference is inside the seeds' spread ({tail})"
    return f"{said}, {tail}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of ``header`` and the cells of ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
