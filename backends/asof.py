"""Lowerings of the point-in-time join (AsOfJoin), shared by the SQL engines.

Three lowerings compute the same rows (``AsOfJoin``'s docstring has the meaning):

- ``union`` (every engine): the spine rows are sorted in among the events by key
  and time, and window functions over event-time frames compute each aggregate at
  every row; the spine rows are kept. Written as an IR subplan (Union,
  WindowAggregate, Filter, Project), so every engine lowers it with the window
  semantics it already has. Cost: a sort of spine + events, whatever the keys.
- ``range_join`` (every engine): each spine row joins its key's events within the
  widest frame, and a GROUP BY per spine row computes the aggregates, each over its
  own frame. Cost: the pairs of a spine row and an event of its key, cheap when
  keys are many and their histories short, ruinous on dense keys.
- ``asof`` (DuckDB, in backends/duckdb.py): last() over frames ending at t is the
  newest event of the key at or before t: DuckDB's ASOF JOIN, one per column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Case, Cast, Column, Expr, Literal, Unary, and_all
from relplan.ir.nodes import Aggregate, AsOfJoin, Filter, Join, Node, Project, Union, WindowAggregate
from relplan.ir.windows import Frame

if TYPE_CHECKING:
    from relplan.backends.sql import SqlLowering

# Internal column names; a user's column cannot start with this prefix (pitc checks it).
PREFIX = "__pitc_"
EVENT = PREFIX + "event"  # TRUE on event rows of the union, FALSE on spine rows
TIME = PREFIX + "time"
ROW = PREFIX + "row"
DELTA = PREFIX + "delta"  # spine time minus event time, microseconds
VALUE = PREFIX + "value"


def newest_event_only(n: AsOfJoin) -> bool:
    """Every aggregate is last() over a frame ending at t (inclusive or not): each is
    the newest event's value, so the ``asof`` lowering applies."""
    return all(a.func == "last" and f.upper == 0 for f, a in n.calls)


def key_name(i: int) -> str:
    return f"{PREFIX}key{i}"


def event_name(column: str) -> str:
    return f"{PREFIX}e_{column}"


def event_columns(n: AsOfJoin) -> list[str]:
    """The event columns the aggregates read, in the events' order."""
    read: set[str] = set()
    for a in n.aggs:
        for e in a.expressions():
            read |= e.columns()
    return [f.name for f in n.events.schema if f.name in read]


def renamed(a: AggCall, extra: Expr | None = None) -> AggCall:
    """``a`` reading the renamed event columns, its filter ANDed with ``extra``."""

    def rename(e: Expr) -> Expr | None:
        return Column(event_name(e.name), e.dtype) if isinstance(e, Column) else None

    arg = a.arg.replace(rename) if a.arg is not None else None
    order = a.order.replace(rename) if a.order is not None else None
    own = a.filter.replace(rename) if a.filter is not None else None
    filt = and_all([p for p in (extra, own) if p is not None])
    return AggCall(a.func, arg, a.name, filt, order)  # type: ignore[arg-type]


def key_types(n: AsOfJoin) -> list[T.DataType]:
    return [T.common_type(n.spine.schema.dtype(s), n.events.schema.dtype(e)) for s, e in n.on]  # type: ignore[misc]


def _as(e: Expr, t: T.DataType) -> Expr:
    return e if e.dtype == t else Cast(e, t)


def no_point(n: AsOfJoin) -> Expr:
    """A spine row with a NULL key or time: every aggregate is NULL."""
    checks: Expr | None = None
    for name in [s for s, _ in n.on] + [n.spine_time]:
        c: Expr = Unary("IS NULL", Column(name, n.spine.schema.dtype(name)))
        checks = c if checks is None else Binary("OR", checks, c)
    assert checks is not None
    return checks


def union_subplan(n: AsOfJoin, spine: Node, events: Node) -> Node:
    """The union lowering as an IR subplan over ``spine`` and ``events`` (nodes with
    the schemas of ``n``'s inputs); its output is ``n``'s schema."""
    types = key_types(n)
    needed = event_columns(n)
    ss, es = n.spine.schema, n.events.schema

    def null(t: T.DataType) -> Expr:
        return Literal(None, t)

    spine_side: list[tuple[str, Expr]] = [(f.name, Column(f.name, f.dtype)) for f in ss]
    spine_side += [(key_name(i), _as(Column(s, ss.dtype(s)), t)) for i, ((s, _), t) in enumerate(zip(n.on, types))]
    spine_side += [(TIME, Column(n.spine_time, T.Timestamp))]
    spine_side += [(event_name(c), null(es.dtype(c))) for c in needed]
    spine_side += [(EVENT, Literal(False))]
    event_side: list[tuple[str, Expr]] = [(f.name, null(f.dtype)) for f in ss]
    event_side += [(key_name(i), _as(Column(e, es.dtype(e)), t)) for i, ((_, e), t) in enumerate(zip(n.on, types))]
    event_side += [(TIME, Column(n.event_time, T.Timestamp))]
    event_side += [(event_name(c), Column(c, es.dtype(c))) for c in needed]
    event_side += [(EVENT, Literal(True))]
    rows = Union((Project(spine, tuple(spine_side)), Project(events, tuple(event_side))))
    is_event = Column(EVENT, T.Bool)
    windows = tuple((frame, tuple(renamed(a, is_event) for a in aggs)) for frame, aggs in n.windows)
    computed = WindowAggregate(rows, tuple(key_name(i) for i in range(len(n.on))), TIME, windows)
    spine_rows = Filter(computed, Unary("NOT", is_event))
    guard = no_point(n)
    out: list[tuple[str, Expr]] = [(f.name, Column(f.name, f.dtype)) for f in ss]
    out += [(a.name, Case(((guard, null(a.dtype)),), Column(a.name, a.dtype))) for a in n.aggs]
    return Project(spine_rows, tuple(out))


def frame_condition(frame: Frame, delta: Expr) -> Expr | None:
    """``delta`` (t minus the event's time) within ``frame``: ``upper <(=) delta <(=) lower``."""
    conds: list[Expr] = [Binary(">=" if frame.upper_inclusive else ">", delta, Literal(frame.upper))]
    if frame.lower is not None:
        conds.append(Binary("<=" if frame.lower_inclusive else "<", delta, Literal(frame.lower)))
    return and_all(conds)


def range_join_ctes(low: SqlLowering, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
    """The range-join lowering: pairs of a spine row and an event of its key in the
    widest frame, aggregates per spine row (each over its own frame), then the spine
    LEFT JOIN the aggregates (a spine row without pairs gets each aggregate's value
    over no rows)."""
    from relplan.backends.sql import all_of, col, ident, lit

    assert n.row_id is not None
    ss = n.spine.schema
    delta = exp.Sub(this=low.epoch_us(col(n.spine_time, "s")), expression=low.epoch_us(col(n.event_time, "e")))
    on = [
        exp.EQ(this=low.group_key(s, t, "s"), expression=low.group_key(e, t, "e"))
        for (s, e), t in zip(n.on, key_types(n))
    ]
    frames = [f for f, _ in n.windows]
    upper = min(f.upper if f.upper_inclusive else f.upper + 1 for f in frames)
    on.append(exp.GTE(this=delta.copy(), expression=lit(upper)))
    if all(f.lower is not None for f in frames):
        lower = max(f.lower if f.lower_inclusive else f.lower - 1 for f in frames)  # type: ignore[operator]
        on.append(exp.LTE(this=delta.copy(), expression=lit(lower)))
    pairs = exp.select(
        exp.alias_(col(n.row_id, "s"), ident(ROW), copy=False),
        exp.alias_(delta, ident(DELTA), copy=False),
        *[exp.alias_(col(c, "e"), ident(event_name(c)), copy=False) for c in event_columns(n)],
    ).from_(exp.Table(this=ident(spine)).as_(ident("s")), copy=False).join(
        exp.Table(this=ident(events)).as_(ident("e")), on=all_of(on), join_type="inner", copy=False
    )
    d = Column(DELTA, T.Int64)
    calls = [renamed(a, frame_condition(f, d)) for f, a in n.calls]
    grouped = exp.select(
        col(ROW), *[exp.alias_(low.typed_agg(a, low.agg(a)), ident(a.name), copy=False) for a in calls]
    ).from_(ident(f"t{k}"), copy=False).group_by(col(ROW), copy=False)
    guard = low.expr(no_point(n))
    out: list[exp.Expression] = [col(f.name, "s") for f in ss]
    for a in n.aggs:
        value: exp.Expression = col(a.name, "a")
        if a.func in ("count", "count_distinct"):
            value = exp.Coalesce(this=value, expressions=[lit(0)])
        value = exp.Case().when(guard.copy(), low.cast(exp.Null(), a.dtype), copy=False).else_(value, copy=False)
        out.append(exp.alias_(value, ident(a.name), copy=False))
    joined = exp.select(*out).from_(exp.Table(this=ident(spine)).as_(ident("s")), copy=False).join(
        exp.Table(this=ident(f"t{k + 1}")).as_(ident("a")),
        on=exp.EQ(this=col(n.row_id, "s"), expression=col(ROW, "a")),
        join_type="left",
        copy=False,
    )
    return [(f"t{k}", pairs), (f"t{k + 1}", grouped), (f"t{k + 2}", joined)]


def extremes_by_join(n: AsOfJoin, spine: Node, events: Node) -> Node:
    """``n`` with first()/last() computed from plain aggregates, for engines without
    ARG_MIN/ARG_MAX (Flink): the time of the key's earliest/latest event with a
    value in the frame (min/max of the event time, itself a point-in-time
    aggregate), then an equi-join on key and that time to the events reduced to
    one row per key and time, holding the smallest/largest value there (the
    tie rule of first/last). A TTL is the frame: no event in it, no time, no match."""
    picks = [(f, a) for f, a in n.calls if a.func in ("first", "last")]
    windows: dict[Frame, list[AggCall]] = {}
    for f, a in n.calls:
        if a.func not in ("first", "last"):
            windows.setdefault(f, []).append(a)
    es = n.events.schema
    for i, (f, a) in enumerate(picks):
        assert a.arg is not None
        present = and_all([p for p in (Unary("IS NOT NULL", a.arg), a.filter) if p is not None])
        at = AggCall("max" if a.func == "last" else "min", Column(n.event_time, T.Timestamp), f"{PREFIX}at{i}", present)
        windows.setdefault(f, []).append(at)
    lowering = None if n.lowering == "asof" else n.lowering
    node: Node = AsOfJoin(
        spine, events, n.on, n.spine_time, n.event_time, tuple((f, tuple(c)) for f, c in windows.items()), n.row_id, lowering
    )
    types = key_types(n)
    for i, (f, a) in enumerate(picks):
        assert a.arg is not None
        present = and_all([p for p in (Unary("IS NOT NULL", a.arg), a.filter) if p is not None])
        keys = [(f"{PREFIX}j{i}_{j}", _as(Column(e, es.dtype(e)), t)) for j, ((_, e), t) in enumerate(zip(n.on, types))]
        time = f"{PREFIX}jt{i}"
        # Booleans have no MIN/MAX in the IR: FALSE < TRUE as 0 < 1, and back.
        boolean = a.dtype == T.Bool
        x: Expr = Cast(a.arg, T.Int64) if boolean else a.arg
        rows = Project(Filter(events, present), (*keys, (time, Column(n.event_time, T.Timestamp)), (f"{PREFIX}x{i}", x)))  # type: ignore[arg-type]
        value = AggCall("max" if a.func == "last" else "min", Column(f"{PREFIX}x{i}", x.dtype), f"{PREFIX}v{i}")
        at_time = Aggregate(rows, (*(k for k, _ in keys), time), (value,))
        on = tuple((s, k) for (s, _), (k, _) in zip(n.on, keys)) + ((f"{PREFIX}at{i}", time),)
        node = Join(node, at_time, "left", on)
    out: list[tuple[str, Expr]] = [(c.name, Column(c.name, c.dtype)) for c in n.spine.schema]
    pick_names = {a.name: i for i, (_, a) in enumerate(picks)}
    for a in n.aggs:
        if a.name not in pick_names:
            out.append((a.name, Column(a.name, a.dtype)))
            continue
        picked = Column(f"{PREFIX}v{pick_names[a.name]}", T.Int64 if a.dtype == T.Bool else a.dtype)
        out.append((a.name, Binary("=", picked, Literal(1)) if a.dtype == T.Bool else picked))
    return Project(node, tuple(out))
