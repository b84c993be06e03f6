"""Estimates that flow through a plan: rows, event rate, distinct counts, row width
and the state a streaming engine holds, node by node from the sources' statistics.

The selectivity guesses are Calcite's (RelMdUtil.guessSelectivity), sharpened by
distinct counts where the statistics have them:

    a = literal          1 / distinct(a), else 0.15
    a != literal         1 - that
    a < b, a >= b, ...   0.5
    a IN (v1, ..., vn)   n / distinct(a), else 0.15 n (at most 1)
    a IS NULL            0.1        a IS NOT NULL    0.9
    p AND q              s(p) s(q)  p OR q           s(p) + s(q) - s(p) s(q)
    NOT p                1 - s(p)   anything else    0.25

Rows: a filter scales its input; an Aggregate has one row per distinct key tuple
(the product of the keys' distinct counts, at most its input's rows); a
TimeWindowAggregate one per key and window; a Join l r / max(distinct of the
keys); an interval join l times the right rows of a key within its bounds (the
right side's rate x (before + after) / distinct keys; without a rate, a tenth,
INTERVAL_FRACTION, of the key's right rows); a lookup join l (inner: times the
share of left keys the table holds, min(1, distinct right / distinct left), else
LOOKUP_MATCH_FRACTION); a left join at least l; an AsOfJoin its spine's; a Union
the sum; the rest their input's. An interval or lookup join's rate is its left
side's, scaled as its rows are.

State (rows a streaming job holds for the node, before the watermark's buffer,
which the cost model adds): an OVER window keeps the rows of each of its frames
(rate x frame length; Flink computes each frame in an OVER of its own), or an
accumulator per key for an unbounded one; a window
TVF an accumulator per key and open window; a GROUP BY one per key; a regular
join both inputs; a lookup join its right side (the table); an interval join each
side's events while the other side's could still match them (left: rate x after,
right: rate x before; at most both rates x (before + after)); an AsOfJoin (an
as-of enrichment run by Flink: the dimension's versions in among the events) the
dimension's newest values, one row per key, for a frame reaching back to the start,
or the dimension's rows within a bounded frame (rate x frame length). Training
data's AsOfJoins run in batch, where state is not held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from relplan.ir import types as T
from relplan.ir.expr import Binary, Column, Expr, InList, Literal, Unary
from relplan.ir.graph import walk
from relplan.ir.nodes import (
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.rules.statistics import Statistics

# Bytes a value of each type takes in a row a streaming engine keeps (RocksDB-ish,
# serialized); strings at an average length, plus a per-row overhead.
TYPE_BYTES = {"Int64": 8, "Float64": 8, "Timestamp": 8, "Date": 4, "Bool": 1, "String": 24, "Null": 1}
ROW_OVERHEAD_BYTES = 16
EQ_SELECTIVITY, RANGE_SELECTIVITY, OTHER_SELECTIVITY = 0.15, 0.5, 0.25
# An interval join whose right side has no event rate: the share of a key's right rows
# within the bounds (a guess, as the selectivities above are).
INTERVAL_FRACTION = 0.1
# An inner lookup join without the keys' distinct counts: the share of left rows whose
# key the table holds (a lookup table is usually a dimension most keys are found in).
LOOKUP_MATCH_FRACTION = 0.9


@dataclass(frozen=True)
class NodeEstimate:
    """One node's estimates; None where the statistics do not tell."""

    rows: float | None
    rate: float | None  # rows per second of event time
    width: int  # bytes per row
    state_rows: float | None = 0.0  # rows (or accumulators) a streaming job holds for this node
    distinct: dict[str, float] = field(default_factory=dict, compare=False)
    pairs: float | None = None  # a join: the pairs of rows with equal keys it compares

    @property
    def state_bytes(self) -> float | None:
        return None if self.state_rows is None else self.state_rows * self.width


def row_width(schema_fields: Iterable[object]) -> int:
    return ROW_OVERHEAD_BYTES + sum(TYPE_BYTES.get(f.dtype.name, 8) for f in schema_fields)  # type: ignore[attr-defined]


def estimate(roots: Node | Iterable[Node], stats: Statistics | None) -> dict[Node, NodeEstimate]:
    """Every node's estimates, inputs first (a walk: the traversal written once)."""
    out: dict[Node, NodeEstimate] = {}
    for n in walk(roots):
        out[n] = _estimate(n, [out[i] for i in n.inputs], stats)
    return out


def _scaled(v: float | None, s: float) -> float | None:
    return None if v is None else v * s


def _estimate(n: Node, ins: list[NodeEstimate], stats: Statistics | None) -> NodeEstimate:
    width = row_width(n.schema.fields)
    if isinstance(n, Source):
        st = None if stats is None else stats.of(n.name)
        if st is None:
            return NodeEstimate(None, None, width)
        return NodeEstimate(float(st.rows), st.rate_of(n.event_time), width, 0.0, {c: float(d) for c, d in st.distinct})
    first = ins[0] if ins else NodeEstimate(None, None, width)
    if isinstance(n, Filter):
        s = selectivity(n.predicate, first.distinct)
        rows = _scaled(first.rows, s)
        return NodeEstimate(rows, _scaled(first.rate, s), width, 0.0, _capped(first.distinct, rows))
    if isinstance(n, Project):
        renamed = {name: first.distinct[e.name] for name, e in n.exprs if isinstance(e, Column) and e.name in first.distinct}
        return NodeEstimate(first.rows, first.rate, width, 0.0, renamed)
    if isinstance(n, WindowAggregate):
        state: float | None = 0.0
        for frame, _ in n.windows:
            if frame.lower is None:
                held = key_groups(first, n.keys)
            else:
                # The rate, not the rows: statistics from a sample describe a stream
                # that runs on, whose frames fill up whatever the sample's length.
                held = None if first.rate is None else first.rate * frame.lower / 1e6
            # Summed: Flink computes each frame in an OVER of its own, each holding its rows.
            state = None if state is None or held is None else state + held
        return NodeEstimate(first.rows, first.rate, width, state, dict(first.distinct))
    if isinstance(n, Aggregate):
        groups = key_groups(first, n.keys)
        return NodeEstimate(groups, None, width, groups, {k: first.distinct[k] for k in n.keys if k in first.distinct})
    if isinstance(n, TimeWindowAggregate):
        keys = key_groups(first, n.keys)
        per_key_windows = -(-n.window.size // n.window.slide)
        rows = None
        if first.rows is not None and keys is not None and first.rate:
            span_s = first.rows / first.rate
            rows = min(keys * (span_s * 1e6 / n.window.slide + per_key_windows), first.rows * per_key_windows)
        rate = None if first.rate is None or keys is None else min(keys * 1e6 / n.window.slide, first.rate * per_key_windows)
        open_windows = None if keys is None else keys * per_key_windows
        return NodeEstimate(rows, rate, width, open_windows, {k: first.distinct[k] for k in n.keys if k in first.distinct})
    if isinstance(n, Join):
        return _join(n, ins[0], ins[1], width)
    if isinstance(n, AsOfJoin):
        spine, events = ins
        held: float | None = 0.0
        for frame, _ in n.windows:
            if frame.lower is None:
                kept = key_groups(events, tuple(e for _, e in n.on))
            else:
                kept = None if events.rate is None else events.rate * frame.lower / 1e6
            held = None if held is None or kept is None else held + kept
        return NodeEstimate(spine.rows, spine.rate, width, held, dict(spine.distinct))
    if isinstance(n, Union):
        rows = None if any(i.rows is None for i in ins) else sum(i.rows for i in ins)  # type: ignore[misc]
        rate = None if any(i.rate is None for i in ins) else sum(i.rate for i in ins)  # type: ignore[misc]
        return NodeEstimate(rows, rate, width, 0.0)
    return NodeEstimate(first.rows, first.rate, width, 0.0, dict(first.distinct))  # Sink


def _join(n: Join, left: NodeEstimate, right: NodeEstimate, width: int) -> NodeEstimate:
    distinct = {**right.distinct, **left.distinct}
    d = max((max(left.distinct.get(lk, 1.0), right.distinct.get(rk, 1.0)) for lk, rk in n.on), default=1.0)
    per_key = None if right.rows is None else right.rows / max(d, 1.0)  # right rows of one key
    pairs = None if left.rows is None or per_key is None else left.rows * per_key  # pairs of rows with equal keys
    if not n.interval and not n.lookup:
        rows = pairs
        if n.how == "left" and rows is not None:
            rows = max(rows, left.rows)  # type: ignore[type-var]
        held = None if left.rows is None or right.rows is None else left.rows + right.rows
        return NodeEstimate(rows, None, width, held, distinct, pairs)
    # Matches per left row: the right rows of its key in its interval, at most one for a lookup.
    matches = per_key
    if n.interval:
        span_s = (n.before + n.after) / 1e6
        if right.rate is not None:
            in_bound = right.rate * span_s / max(d, 1.0)
            matches = in_bound if matches is None else min(matches, in_bound)
        elif matches is not None:
            matches *= INTERVAL_FRACTION
    if n.lookup:
        found = key_groups(right, tuple(rk for _, rk in n.on))
        wanted = key_groups(left, tuple(lk for lk, _ in n.on))
        # The share of left keys the table holds, if each side's keys are known; else a guess.
        share = LOOKUP_MATCH_FRACTION if found is None or wanted is None else min(1.0, found / max(wanted, 1.0))
        matches = share if matches is None or not n.interval else min(matches, share)
    per_left = None if matches is None else (max(matches, 1.0) if n.how in ("left", "full") else matches)
    rows = _scaled(left.rows, per_left) if per_left is not None else None
    rate = _scaled(left.rate, per_left) if per_left is not None else None
    if n.interval:
        held = _interval_state(n, left, right)
    else:  # a lookup join: the table, by key
        held = right.rows
    return NodeEstimate(rows, rate, width, held, _capped(distinct, rows), pairs)


def _interval_state(n: Join, left: NodeEstimate, right: NodeEstimate) -> float | None:
    """Rows an interval join holds: each event while an event of the other side could
    still match it (Flink's interval join drops it once the watermark passes): a left
    event at t until t + after, a right event at u until u + before; so each side's
    rate times its part of the bounds (the watermark's own delay the cost model adds)."""
    held = 0.0
    for est, span in ((left, n.after), (right, n.before)):
        if span <= 0:
            continue
        if est.rate is None:
            return None
        held += est.rate * span / 1e6
    return held


def key_groups(est: NodeEstimate, keys: tuple[str, ...]) -> float | None:
    """Distinct key tuples: the product of the keys' distinct counts, at most the rows."""
    product = 1.0
    for k in keys:
        if k not in est.distinct:
            return None
        product *= est.distinct[k]
    return product if est.rows is None else min(product, est.rows)


def _capped(distinct: dict[str, float], rows: float | None) -> dict[str, float]:
    return dict(distinct) if rows is None else {c: min(d, max(rows, 1.0)) for c, d in distinct.items()}


def selectivity(pred: Expr, distinct: dict[str, float]) -> float:
    """The fraction of rows ``pred`` keeps (the table in the module docstring)."""
    if isinstance(pred, Binary):
        if pred.op == "AND":
            return selectivity(pred.left, distinct) * selectivity(pred.right, distinct)
        if pred.op == "OR":
            a, b = selectivity(pred.left, distinct), selectivity(pred.right, distinct)
            return a + b - a * b
        if pred.op in ("=", "!="):
            column = next((e for e in (pred.left, pred.right) if isinstance(e, Column)), None)
            other = pred.right if column is pred.left else pred.left
            eq = EQ_SELECTIVITY
            if column is not None and isinstance(other, Literal) and column.name in distinct:
                eq = 1.0 / max(distinct[column.name], 1.0)
            return eq if pred.op == "=" else 1.0 - eq
        if pred.op in ("<", "<=", ">", ">="):
            return RANGE_SELECTIVITY
    if isinstance(pred, InList):
        if isinstance(pred.operand, Column) and pred.operand.name in distinct:
            return min(1.0, len(pred.values) / max(distinct[pred.operand.name], 1.0))
        return min(1.0, EQ_SELECTIVITY * len(pred.values))
    if isinstance(pred, Unary):
        if pred.op == "NOT":
            return 1.0 - selectivity(pred.operand, distinct)
        if pred.op == "IS NULL":
            return 0.1
        if pred.op == "IS NOT NULL":
            return 0.9
    if isinstance(pred, Literal) and pred.dtype == T.Bool:
        return 1.0 if pred.value else 0.0
    return OTHER_SELECTIVITY
