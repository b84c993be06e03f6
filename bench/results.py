"""The run's measurements; one module object shared by the suites and the summary hook."""

from __future__ import annotations

from typing import Any

# comparison name -> {label: median seconds}; the label "baseline" is the reference.
RESULTS: dict[str, dict[str, float]] = {}


def record(comparison: str, label: str, benchmark: Any, per: int = 1) -> float:
    """Record the median seconds (divided by ``per``, e.g. per feature) of a benchmark."""
    if benchmark.stats is None:  # --benchmark-disable: the suite ran as plain tests
        return float("nan")
    median = float(benchmark.stats.stats.median) / per
    RESULTS.setdefault(comparison, {})[label] = median
    return median
