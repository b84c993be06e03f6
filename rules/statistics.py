"""Statistics the optimizer may use: per source, its row count, distinct counts of
its columns and the time its timestamp columns span.

Declared by the platform (``rp.Statistics({"Transactions": rp.SourceStats(rows=...,
distinct={"cc_num": ...}, spans={"ts": ...})})``) or measured from tables
(``rp.measure_statistics``). Rules that choose between equivalent physical forms
read them through ``RuleContext.config.statistics``; with none, or none for the
columns a choice depends on, such rules keep the plan as it is.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

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

    def is_unique(self, columns: tuple[str, ...] | set[str]) -> bool:
        """Whether no two rows share the values of ``columns`` (a declared unique set is among them)."""
        return any(set(u) <= set(columns) for u in self.unique)

    def distinct_of(self, column: str) -> int | None:
        return dict(self.distinct).get(column)  # type: ignore[arg-type]

    def span_of(self, column: str) -> int | None:
        return dict(self.spans).get(column)  # type: ignore[arg-type]


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
