"""Statistics the optimizer may use: per source, its row count, distinct counts of
its columns, the time its timestamp columns span, its event rate and the
distribution of its events' lateness (arrival minus event time).

Declared by the platform (``rp.Statistics({"Transactions": rp.SourceStats(rows=...,
distinct={"cc_num": ...}, spans={"ts": ...})})``) or measured from tables
(``rp.measure_statistics``). Rules that choose between equivalent physical forms
read them through ``RuleContext.config.statistics``; with none, or none for the
columns a choice depends on, such rules keep the plan as it is.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relplan.ir.errors import OptimizerError
from relplan.ir.expr import Column
from relplan.ir.nodes import Node, Project, Source, WindowAggregate


@dataclass(frozen=True)
class SourceStats:
    """One source: its row count, distinct counts of (some of) its columns, the
    time its timestamp columns span (last minus first value, in microseconds), and
    sets of columns known to be unique together (declared, like a primary key: no
    two rows share the values of such a set; e.g. ``unique=[("cc_num", "ts")]``)."""

    rows: int
    distinct: tuple[tuple[str, int], ...] | Mapping[str, int] = ()
    spans: tuple[tuple[str, int], ...] | Mapping[str, int] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    # Events per second of event time, as they arrive in production (default: rows
    # over the event time's span, which a sample of the log gives).
    rate: float | None = None
    # How late events arrive: quantile -> lateness, e.g. {0.9: 0, 0.99: "30s", 1.0: "10m"}
    # (microseconds or durations). An event's lateness is how far its event time lies
    # behind the newest event time that arrived before it: what a watermark sees, so
    # events in order are 0 late whatever their delay. See late_fraction().
    lateness: tuple[tuple[float, int], ...] | Mapping[float, Any] = ()

    def __post_init__(self) -> None:
        # numbers.Integral: counts often come from numpy (len(df), df.k.nunique()).
        if isinstance(self.rows, bool) or not isinstance(self.rows, numbers.Integral) or self.rows < 0:
            raise OptimizerError(f"SourceStats rows must be a non-negative int, got {self.rows!r}")
        object.__setattr__(self, "rows", int(self.rows))
        for what, minimum in (("distinct", 1), ("spans", 0)):
            items = tuple(sorted(dict(getattr(self, what)).items()))
            for name, n in items:
                if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < minimum:
                    label = "distinct count" if what == "distinct" else "time span"
                    raise OptimizerError(f"SourceStats {label} of {name!r} must be an int >= {minimum}, got {n!r}")
            object.__setattr__(self, what, tuple((name, int(n)) for name, n in items))
        if isinstance(self.unique, str) or not all(
            isinstance(u, (tuple, list)) and u and all(isinstance(c, str) for c in u) for u in self.unique
        ):
            raise OptimizerError(f"SourceStats unique takes sets of column names, e.g. [('cc_num', 'ts')], got {self.unique!r}")
        object.__setattr__(self, "unique", tuple(sorted(tuple(sorted(u)) for u in self.unique)))
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, numbers.Real) or not self.rate > 0:
                raise OptimizerError(f"SourceStats rate (events per second) must be a positive number, got {self.rate!r}")
            object.__setattr__(self, "rate", float(self.rate))
        object.__setattr__(self, "lateness", _lateness_quantiles(self.lateness))

    def is_unique(self, columns: tuple[str, ...] | set[str]) -> bool:
        """Whether no two rows share the values of ``columns`` (a declared unique set is among them)."""
        return any(set(u) <= set(columns) for u in self.unique)

    def distinct_of(self, column: str) -> int | None:
        return dict(self.distinct).get(column)  # type: ignore[arg-type]

    def span_of(self, column: str) -> int | None:
        return dict(self.spans).get(column)  # type: ignore[arg-type]

    def rate_of(self, time: str | None) -> float | None:
        """Events per second: declared, or the rows over the span of ``time``."""
        if self.rate is not None:
            return self.rate
        span = None if time is None else self.span_of(time)
        return None if not span else self.rows / (span / 1e6)

    def late_fraction(self, allowed: int) -> float | None:
        """The fraction of events arriving more than ``allowed`` microseconds after
        their event time (what a watermark that far behind drops), from the lateness
        quantiles, linear between them; None where they do not tell (below the
        smallest quantile given, unless that is the 0th)."""
        points = self.lateness  # type: ignore[assignment]
        if not points:
            return None
        (q0, l0), (q_last, l_last) = points[0], points[-1]  # type: ignore[misc]
        # Rounded: 1 - 0.99 is 0.010000000000000009, which would miss a 1% bound.
        if allowed >= l_last:
            return round(1.0 - q_last, 12)
        if allowed < l0:
            return 1.0 if q0 == 0.0 else None
        for (qa, la), (qb, lb) in itertools.pairwise(points):  # type: ignore[arg-type]
            if la <= allowed < lb:
                return round(1.0 - (qa + (qb - qa) * (allowed - la) / (lb - la)), 12)
        return round(1.0 - q_last, 12)  # unreachable: the points cover [l0, l_last)

    def lateness_for(self, max_missed: float) -> int | None:
        """The least allowed lateness (microseconds) at which at most ``max_missed``
        of the events are late; None if the quantiles do not reach that far."""
        points = self.lateness  # type: ignore[assignment]
        want = 1.0 - max_missed
        for (qa, la), (qb, lb) in zip(((0.0, 0), *points), points):  # type: ignore[arg-type]
            if qb >= want:
                if want <= 0:
                    return 0
                if qa == 0.0 and la == 0 and points[0][0] > 0.0:  # type: ignore[index]
                    return int(lb)  # below the smallest quantile given nothing is known: its lateness
                if qb == qa:
                    return int(lb)
                return math.ceil(la + (lb - la) * max(0.0, want - qa) / (qb - qa))
        return None


@dataclass(frozen=True)
class Statistics:
    """Statistics of a plan's sources, by source name (hashable: part of the optimizer config)."""

    sources: tuple[tuple[str, SourceStats], ...] | Mapping[str, SourceStats] = field(default=())

    def __post_init__(self) -> None:
        items = tuple(sorted(dict(self.sources).items()))
        for name, st in items:
            if not isinstance(st, SourceStats):
                raise OptimizerError(f"statistics of source {name!r} must be a SourceStats, got {type(st).__name__}")
        object.__setattr__(self, "sources", items)

    def of(self, source: str) -> SourceStats | None:
        return dict(self.sources).get(source)  # type: ignore[arg-type]

    def rows_per_frame(self, node: Node, keys: tuple[str, ...], order: str, length: int) -> float | None:
        """Estimated rows of one partition in a frame ``length`` microseconds long,
        the partition's rows spread evenly over the time ``order`` spans."""
        source = _source_of(node, (*keys, order))
        st = None if source is None else self.of(source.name)
        if st is None:
            return None
        rows, span = _per_partition(st, keys), st.span_of(order)
        if rows is None or span is None:
            return None
        return rows * min(1.0, length / max(span, 1))


def _lateness_quantiles(value: Any) -> tuple[tuple[float, int], ...]:
    """{quantile: lateness} -> ((q, microseconds), ...) by quantile, checked: a
    quantile in [0, 1], lateness a duration, never smaller at a larger quantile."""
    from relplan.ir.windows import parse_duration

    items = value.items() if isinstance(value, Mapping) else value
    out = []
    for q, late in items:
        if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 <= q <= 1.0:
            raise OptimizerError(f"SourceStats lateness quantiles must be numbers in [0, 1], got {q!r}")
        us = 0 if late in (0, "0") else parse_duration(late, what=f"lateness at quantile {q}")
        out.append((float(q), int(us)))
    out.sort()
    for (qa, la), (qb, lb) in itertools.pairwise(out):
        if qa == qb or lb < la:
            raise OptimizerError(f"SourceStats lateness must grow with the quantile, got {dict(items)!r}")
    return tuple(out)


def _per_partition(st: SourceStats, keys: tuple[str, ...]) -> float | None:
    groups = 1
    for k in keys:
        d = st.distinct_of(k)
        if d is None:
            return None
        groups *= d
    return st.rows / max(1, min(groups, st.rows))


def _source_of(node: Node, columns: tuple[str, ...]) -> Source | None:
    """The source ``node`` reads through window aggregates (which keep every row) and
    projections passing ``columns`` through unchanged; None if there is no such
    source. Not through filters: they thin partitions by a factor nobody measured."""
    while isinstance(node, (Project, WindowAggregate)):
        if isinstance(node, Project):
            exprs = dict(node.exprs)
            if not all(isinstance(exprs.get(c), Column) and exprs[c].name == c for c in columns):  # type: ignore[union-attr]
                return None
        node = node.input
    return node if isinstance(node, Source) else None
