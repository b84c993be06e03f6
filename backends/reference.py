"""The reference engine: the IR run directly in Python, written to be obviously correct.

It is the tests' oracle and the "pandas engine" for users: no SQL, no engine, each
node computed from its definition in ir/nodes.py over plain Python rows (one dict
per row), so a disagreement with an engine points at the engine's lowering. It is
slow on purpose where speed would cost clarity (per-row frames are found by
scanning the partition), and exact where engines may round in any order (sums,
means and variances are computed exactly and rounded once).

Values inside: Int64 -> int, Float64 -> float, String -> str, Bool -> bool,
Date -> datetime.date, Timestamp -> int microseconds since the Unix epoch (UTC),
so window edges are integer comparisons; NULL -> None.

    backend = ReferenceBackend()
    tables = backend.run(plan.outputs, {"Transactions": arrow_table})
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import pyarrow as pa

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import EngineError, UnsupportedError
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, Expr, InList, Literal, PythonUDF, Unary
from relplan.ir.graph import walk
from relplan.ir.nodes import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame, TimeWindow

Row = dict[str, Any]
Eval = Callable[[Row], Any]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
EPOCH_DATE = EPOCH.date()
DAY_US = 86_400_000_000


# ---- values -----------------------------------------------------------------------


def timestamp_us(t: dt.datetime) -> int:
    """Microseconds since the epoch, exactly (a naive datetime is UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def checked_int(v: int, what: str) -> int:
    """``v`` if it fits Int64; engines raise on overflow, and so does this one."""
    if not INT64_MIN <= v <= INT64_MAX:
        raise EngineError(f"Int64 overflow in {what}: {v} is out of range (the reference engine)")
    return v


def as_type(v: Any, t: T.DataType) -> Any:
    """``v`` as a value of type ``t``: an Int64 widened where the IR's common type is Float64."""
    if v is None:
        return None
    if t == T.Float64 and not isinstance(v, float):
        return float(v)
    if t == T.Int64 and isinstance(v, bool):
        return int(v)
    if t == T.Timestamp and isinstance(v, dt.datetime):
        return timestamp_us(v)
    return v


def to_float(x: Fraction) -> float:
    """An exact value rounded once to Float64; too large is +-inf, as IEEE arithmetic gives."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


# ---- expressions: compiled once per node into functions of a row --------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def arithmetic(op: str, a: Any, b: Any, result: T.DataType, text: str) -> Any:
    """``a op b`` on non-NULL operands already in the operation's type."""
    if op == "/":
        return None if b == 0 else float(a) / float(b)
    if op in ("//", "%"):
        if b == 0:
            return None
        # Python's // floors and % takes the divisor's sign: the IR's definition.
        return checked_int(a // b if op == "//" else a % b, text)
    v = a + b if op == "+" else a - b if op == "-" else a * b
    return checked_int(v, text) if result == T.Int64 else v


def compile_expr(e: Expr) -> Eval:
    """A function computing ``e`` on a row; its value is always of ``e.dtype`` (or None)."""
    if isinstance(e, Column):
        name = e.name
        return lambda row: row[name]  # rows hold values of their schema's types already
    if isinstance(e, Literal):
        value = as_type(e.value, e.dtype)
        return lambda row: value
    if isinstance(e, Binary):
        return _compile_binary(e)
    if isinstance(e, Unary):
        inner = compile_expr(e.operand)
        if e.op == "IS NULL":
            return lambda row: inner(row) is None
        if e.op == "IS NOT NULL":
            return lambda row: inner(row) is not None
        if e.op == "NOT":
            return lambda row: None if (v := inner(row)) is None else not v
        if e.op == "NEG":
            text, t = e.sql(), e.dtype

            def negate(row: Row) -> Any:
                v = inner(row)
                if v is None:
                    return None
                return checked_int(-v, text) if t == T.Int64 else -v

            return negate
    if isinstance(e, InList):
        return _compile_in(e)
    if isinstance(e, Cast):
        return _compile_cast(e)
    if isinstance(e, Coalesce):
        args, t = [compile_expr(a) for a in e.args], e.dtype

        def coalesce(row: Row) -> Any:
            for f in args:  # lazily, as SQL: later arguments are not evaluated
                v = f(row)
                if v is not None:
                    return as_type(v, t)
            return None

        return coalesce
    if isinstance(e, Case):
        whens = [(compile_expr(c), compile_expr(v)) for c, v in e.whens]
        otherwise, t = compile_expr(e.otherwise), e.dtype

        def case(row: Row) -> Any:
            for cond, value in whens:
                if cond(row) is True:  # a NULL condition is not taken
                    return as_type(value(row), t)
            return as_type(otherwise(row), t)

        return case
    if isinstance(e, PythonUDF):
        return _compile_python_udf(e)
    raise UnsupportedError(
        f"expression {type(e).__name__} ({e.sql()}) is not supported by the reference backend"
    )


def _compile_python_udf(e: PythonUDF) -> Eval:
    """The UDF called per row with its Python values (PythonUDF's conventions: a
    Timestamp is a UTC datetime, here as elsewhere integer microseconds inside)."""
    args = [compile_expr(a) for a in e.args]
    stamps = [a.dtype == T.Timestamp for a in e.args]
    stamp_out = e.dtype == T.Timestamp

    def call(row: Row) -> Any:
        values = [f(row) for f in args]
        for i, stamp in enumerate(stamps):
            if stamp and values[i] is not None:
                values[i] = EPOCH + dt.timedelta(microseconds=values[i])
        out = e.call(*values)
        return timestamp_us(out) if stamp_out and out is not None else out

    return call


def _compile_binary(e: Binary) -> Eval:
    left, right, op = compile_expr(e.left), compile_expr(e.right), e.op
    if op == "AND":
        return lambda row: and3(left(row), right(row))
    if op == "OR":
        return lambda row: or3(left(row), right(row))
    # Operands meet in their common type (Int64 with Float64 is Float64), as in SQL.
    common = T.common_type(e.left.dtype, e.right.dtype)
    assert common is not None  # the node was typed at construction

    if op in _COMPARE:
        compare = _COMPARE[op]

        def comparison(row: Row) -> bool | None:
            a, b = as_type(left(row), common), as_type(right(row), common)
            return None if a is None or b is None else compare(a, b)

        return comparison
    operand_type = T.Float64 if op == "/" else common
    result, text = e.dtype, e.sql()

    def arith(row: Row) -> Any:
        a, b = as_type(left(row), operand_type), as_type(right(row), operand_type)
        return None if a is None or b is None else arithmetic(op, a, b, result, text)

    return arith


def _compile_in(e: InList) -> Eval:
    operand = compile_expr(e.operand)
    types = [e.operand.dtype, *(v.dtype for v in e.values)]
    common = types[0]
    for t in types[1:]:
        common = T.common_type(common, t)  # type: ignore[assignment]
    values = [as_type(as_type(v.value, v.dtype), common) for v in e.values]
    present = [v for v in values if v is not None]
    has_null = len(present) < len(values)

    def isin(row: Row) -> bool | None:
        a = as_type(operand(row), common)
        if a is None:
            return None
        if a in present:
            return True
        return None if has_null else False  # x IN (.., NULL) is NULL when nothing matched

    return isin


def _compile_cast(e: Cast) -> Eval:
    inner, src, dst, text = compile_expr(e.operand), e.operand.dtype, e.dtype, e.sql()

    def convert(v: Any) -> Any:
        if src == dst or src == T.Null:
            return v
        if dst == T.Float64:
            return float(v)
        if dst == T.Int64:
            if src == T.Float64:
                if not math.isfinite(v):
                    raise EngineError(f"cannot cast {v} to Int64 in {text} (the reference engine)")
                return checked_int(math.trunc(v), text)  # toward zero, as Python int()
            return int(v)  # Bool
        if dst == T.String:
            return str(v)
        if dst == T.Date:
            return EPOCH_DATE + dt.timedelta(days=v // DAY_US)  # floor: before the epoch too
        if dst == T.Timestamp:
            return (v - EPOCH_DATE).days * DAY_US
        raise UnsupportedError(f"cast {text} is not supported by the reference backend")

    return lambda row: None if (v := inner(row)) is None else convert(v)


# ---- aggregates -------------------------------------------------------------------

# What one row gives an aggregate: (order, value), or None when the row is not
# aggregated (its filter is not TRUE, or its value is NULL). count(*) has value 1.
Item = tuple[Any, Any]


class AggEval:
    """One AggCall: what each row contributes, and the result over a set of rows."""

    def __init__(self, call: AggCall) -> None:
        self.call = call
        self.arg = compile_expr(call.arg) if call.arg is not None else None
        self.filter = compile_expr(call.filter) if call.filter is not None else None
        self.order = compile_expr(call.order) if call.order is not None else None

    def item(self, row: Row) -> Item | None:
        if self.filter is not None and self.filter(row) is not True:
            return None
        value = 1 if self.arg is None else self.arg(row)
        if value is None:
            return None
        order = None
        if self.order is not None:
            order = self.order(row)
            if order is None:  # first/last: a row with no time is neither earliest nor latest
                return None
        return (order, value)

    def over(self, rows: Sequence[Row]) -> Any:
        return self.result([it for r in rows if (it := self.item(r)) is not None])

    def result(self, items: list[Item]) -> Any:
        """The aggregate of the contributing ``items``."""
        func, values = self.call.func, [v for _, v in items]
        if func == "count":
            return len(values)
        if func == "count_distinct":
            return len(set(values))  # -0.0 == 0.0: one value, as SQL equality says
        if not values:
            return None
        if func == "sum":
            if self.call.dtype == T.Int64:
                return checked_int(sum(values), f"{self.call.name} := {self.call.sql()}")
            return float_sum(values)
        if func == "mean":
            return float_mean(values)
        if func in ("var", "std"):
            var = sample_variance(values)
            if var is None or func == "var":
                return var
            return math.sqrt(var)  # the root of the correctly rounded variance (within 1 ulp)
        if func == "min":
            return min(values)
        if func == "max":
            return max(values)
        # first/last: earliest/latest by order; among ties the smallest/largest value.
        if func == "first":
            return min(items)[1]
        if func == "last":
            return max(items)[1]
        raise UnsupportedError(f"aggregate {func!r} is not supported by the reference backend")


def _finite(values: list[Any]) -> bool:
    return all(math.isfinite(v) for v in values)


def float_sum(values: list[float]) -> float:
    if not _finite(values):  # inf and NaN follow IEEE arithmetic
        return sum(values)
    return to_float(sum(map(Fraction, values), Fraction(0)))


def float_mean(values: list[int | float]) -> float:
    if not _finite(values):
        return sum(map(float, values)) / len(values)
    return to_float(sum(map(Fraction, values), Fraction(0)) / len(values))


def sample_variance(values: list[int | float]) -> float | None:
    """Sample variance (ddof=1), computed exactly and rounded once; NULL below 2 values."""
    n = len(values)
    if n < 2:
        return None
    if not _finite(values):
        return math.nan
    exact = [Fraction(v) for v in values]
    mean = sum(exact, Fraction(0)) / n
    return to_float(sum(((v - mean) ** 2 for v in exact), Fraction(0)) / (n - 1))


# ---- nodes --------------------------------------------------------------------------


def key_of(
    row: Row, keys: Sequence[str], types: Sequence[T.DataType] | None = None
) -> tuple[Any, ...] | None:
    """The row's key values (as ``types``, if given), or None when one is NULL: no entity."""
    values = tuple(row[k] for k in keys)
    if types is not None:
        values = tuple(as_type(v, t) for v, t in zip(values, types))
    return None if any(v is None for v in values) else values


def in_frame(frame: Frame, t: int | None, u: int | None) -> bool:
    """Whether a row at time ``u`` lies in the frame of a row at time ``t``.

    The frame holds ``t - lower <(=) u <(=) t - upper`` (Frame's definition); a row
    with no time is in no frame and its own frame is empty.
    """
    if t is None or u is None:
        return False
    if frame.lower is not None:
        start = t - frame.lower
        if u < start or (u == start and not frame.lower_inclusive):
            return False
    end = t - frame.upper
    return u < end or (u == end and frame.upper_inclusive)


def window_starts(t: int, w: TimeWindow) -> list[int]:
    """Starts of the epoch-aligned windows ``[s, s + size)`` holding time ``t``."""
    s = t - t % w.slide  # Python's % floors: right before the epoch too
    starts = []
    while s + w.size > t:
        starts.append(s)
        s -= w.slide
    return starts


def source(n: Source, table: pa.Table) -> list[Row]:
    columns = []
    for f in n.columns:
        c = table.column(f.name)
        # Timestamps as integer microseconds: every window edge is an integer comparison.
        columns.append((c.cast(pa.int64()) if f.dtype == T.Timestamp else c).to_pylist())
    names = n.columns.names
    return [dict(zip(names, values)) for values in zip(*columns)]


def filter_(n: Filter, rows: list[Row]) -> list[Row]:
    predicate = compile_expr(n.predicate)
    return [r for r in rows if predicate(r) is True]  # NULL is not kept


def project(n: Project, rows: list[Row]) -> list[Row]:
    exprs = [(name, compile_expr(e)) for name, e in n.exprs]
    return [{name: f(r) for name, f in exprs} for r in rows]


def aggregate(n: Aggregate, rows: list[Row]) -> list[Row]:
    aggs = [AggEval(a) for a in n.aggs]
    groups: dict[tuple[Any, ...], list[Row]] = {}
    if not n.keys:
        groups[()] = rows  # no keys: one row, even over no rows (SQL's global aggregate)
    else:
        for r in rows:
            k = key_of(r, n.keys)
            if k is not None:
                groups.setdefault(k, []).append(r)
    return [
        {**dict(zip(n.keys, k)), **{a.call.name: a.over(members) for a in aggs}}
        for k, members in groups.items()
    ]


def window_aggregate(n: WindowAggregate, rows: list[Row]) -> list[Row]:
    calls = [(frame, AggEval(a)) for frame, a in n.calls]
    partitions: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        k = key_of(r, n.keys)
        if k is not None:
            partitions.setdefault(k, []).append(r)
    # A frame depends only on the row's time, so rows tied in time share each result.
    done: dict[tuple[tuple[Any, ...], int | None, int], Any] = {}
    out = []
    for r in rows:
        k = key_of(r, n.keys)
        values = {}
        for i, (frame, agg) in enumerate(calls):
            if k is None:  # no entity: NULL, whatever the aggregate (count too)
                values[agg.call.name] = None
                continue
            t = r[n.order]
            if (k, t, i) not in done:
                done[(k, t, i)] = agg.over([u for u in partitions[k] if in_frame(frame, t, u[n.order])])
            values[agg.call.name] = done[(k, t, i)]
        out.append({**r, **values})
    return out


def asof_join(n: AsOfJoin, spine: list[Row], events: list[Row]) -> list[Row]:
    """Each spine row with its aggregates, by the definition: every event of the
    row's key, tested against every frame (no lowering, no shortcut)."""
    types = [T.common_type(n.spine.schema.dtype(s), n.events.schema.dtype(e)) for s, e in n.on]
    by_key: dict[tuple[Any, ...], list[Row]] = {}
    for r in events:
        k = key_of(r, [e for _, e in n.on], types)  # type: ignore[arg-type]
        if k is not None:
            by_key.setdefault(k, []).append(r)
    calls = [(frame, AggEval(a)) for frame, a in n.calls]
    out = []
    for r in spine:
        k = key_of(r, [s for s, _ in n.on], types)  # type: ignore[arg-type]
        t = r[n.spine_time]
        values = {}
        for frame, agg in calls:
            if k is None or t is None:  # no point: NULL, whatever the aggregate
                values[agg.call.name] = None
            else:
                members = [u for u in by_key.get(k, []) if in_frame(frame, t, u[n.event_time])]
                values[agg.call.name] = agg.over(members)
        out.append({**r, **values})
    return out


def time_window_aggregate(n: TimeWindowAggregate, rows: list[Row]) -> list[Row]:
    aggs = [AggEval(a) for a in n.aggs]
    groups: dict[tuple[tuple[Any, ...], int], list[Row]] = {}
    for r in rows:
        k = key_of(r, n.keys)
        t = r[n.time]
        if k is None or t is None:  # no entity, or no time: in no window
            continue
        for s in window_starts(t, n.window):
            groups.setdefault((k, s), []).append(r)
    return [
        {
            **dict(zip(n.keys, k)),
            WINDOW_START: s,
            WINDOW_END: s + n.window.size,
            **{a.call.name: a.over(members) for a in aggs},
        }
        for (k, s), members in groups.items()
    ]


def join(n: Join, left: list[Row], right: list[Row]) -> list[Row]:
    lkeys, rkeys = [lk for lk, _ in n.on], [rk for _, rk in n.on]
    # Keys meet in their common type (Int64 = Float64 compares as Float64); NULL never matches.
    # (Join checked at construction that every pair has one; ``or T.Null`` only satisfies typing.)
    types = [T.common_type(n.left.schema.dtype(lk), n.right.schema.dtype(rk)) or T.Null for lk, rk in n.on]
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for j, r in enumerate(right):
        k = key_of(r, rkeys, types)
        if k is not None:
            by_key.setdefault(k, []).append(j)
    null_left = dict.fromkeys(n.left.schema.names)
    null_right = dict.fromkeys(n.right.schema.names)
    matched_right: set[int] = set()
    out = []
    for lrow in left:
        k = key_of(lrow, lkeys, types)
        partners = by_key.get(k, []) if k is not None else []
        if n.left_time is not None:
            partners = [j for j in partners if within(n, lrow[n.left_time], right[j][n.right_time])]
        for j in partners:
            out.append({**lrow, **right[j]})
            matched_right.add(j)
        if not partners and n.how in ("left", "full"):
            out.append({**lrow, **null_right})
    if n.how in ("right", "full"):
        out += [{**null_left, **r} for j, r in enumerate(right) if j not in matched_right]
    return out


def within(n: Join, t: int | None, u: int | None) -> bool:
    """Whether a right row at time ``u`` lies in the interval of a left row at time ``t``:
    ``t - before <= u <= t + after``, both inclusive; a NULL time matches nothing."""
    if t is None or u is None:
        return False
    return t - n.before <= u <= t + n.after


def to_arrow(rows: list[Row], schema: Schema) -> pa.Table:
    arrays = []
    for f in schema:
        values = [r[f.name] for r in rows]
        if f.dtype == T.Timestamp:
            arrays.append(pa.array(values, pa.int64()).cast(f.dtype.to_arrow()))
        else:
            arrays.append(pa.array(values, f.dtype.to_arrow()))
    return pa.Table.from_arrays(arrays, schema=schema.to_arrow())


class ReferenceBackend:
    """Runs plans in Python, node by node, from the IR's definitions (the tests' oracle)."""

    name = "reference"

    def __init__(self) -> None:
        pass

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        raise UnsupportedError(
            "the reference engine runs the IR directly in Python and has no SQL; "
            "use plan.to_sql('duckdb') or plan.to_sql('spark') for SQL"
        )

    def run(self, sinks: tuple[Sink, ...], tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        results: dict[Node, list[Row]] = {}
        # walk() is iterative and lists each distinct subplan once, inputs first: a
        # shared subplan is computed once and deep plans never recurse.
        for n in walk(sinks):
            ins = [results[i] for i in n.inputs]
            results[n] = self.node(n, ins, tables)
        return {s.name: to_arrow(results[s], s.schema) for s in sinks}

    def node(self, n: Node, ins: list[list[Row]], tables: dict[str, pa.Table]) -> list[Row]:
        """The rows of ``n`` from the rows of its inputs."""
        if isinstance(n, Source):
            return source(n, tables[n.name])
        if isinstance(n, Filter):
            return filter_(n, ins[0])
        if isinstance(n, Project):
            return project(n, ins[0])
        if isinstance(n, Aggregate):
            return aggregate(n, ins[0])
        if isinstance(n, WindowAggregate):
            return window_aggregate(n, ins[0])
        if isinstance(n, TimeWindowAggregate):
            return time_window_aggregate(n, ins[0])
        if isinstance(n, Join):
            return join(n, ins[0], ins[1])
        if isinstance(n, Union):
            return [r for rows in ins for r in rows]
        if isinstance(n, AsOfJoin):
            return asof_join(n, ins[0], ins[1])
        if isinstance(n, Sink):
            return ins[0]
        raise UnsupportedError(
            f"{n.kind} ({type(n).__name__}: {n.details()}) is not supported by the reference backend; "
            "run the plan on engine='duckdb' or engine='spark'"
        )
