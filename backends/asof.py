"""Lowerings of the point-in-time join (AsOfJoin), shared by the SQL engines.

Four lowerings compute the same rows (``AsOfJoin``'s docstring has the meaning):

- ``union`` (every engine): the spine rows are sorted in among the events by key
  and time, and window functions over event-time frames compute each aggregate at
  every row; the spine rows are kept. Written as an IR subplan (Union,
  WindowAggregate, Filter, Project), so every engine lowers it with the window
  semantics it already has. Cost: a sort of spine + events, whatever the keys.
- ``range_join`` (every engine): each spine row joins its key's events within the
  widest frame, and a GROUP BY per spine row computes the aggregates, each over its
  own frame. Cost: the pairs of a spine row and an event of its key, cheap when
  keys are many and their histories short, ruinous on dense keys.
- ``tiles`` (every engine): partial aggregates per key and tile, the whole tiles of
  each spine row's frame, plus the raw events of its head and tail tiles. Cost: the
  tiles of one window per spine row, and the events of two tiles.
- ``asof`` (DuckDB, in backends/duckdb.py): last() over frames ending at t is the
  newest event of the key at or before t: DuckDB's ASOF JOIN.

Engines without ARG_MIN/ARG_MAX (Flink) get first()/last() from min/max of the
event time and an equi-join (``extremes_by_join``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from sqlglot import exp

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Case, Cast, Column, Expr, Literal, Unary, and_all
from relplan.ir.graph import transform, walk
from relplan.ir.nodes import Aggregate, AsOfJoin, Filter, Join, Node, Project, Sink, Source, Union, WindowAggregate
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


def newest_rows(n: AsOfJoin) -> bool:
    """The newest event of a key at or before t holds every aggregate's answer: each
    is last() of an event column by the event time over a frame ending at t, no two
    events share a key and a time (``unique_times``: no ties), and no argument is
    NULL (``no_nulls``: no column's newest non-NULL value is older than the newest
    event). One ASOF JOIN per filter and edge then gives them all."""
    return n.unique_times and n.no_nulls and all(
        a.func == "last" and f.upper == 0 and isinstance(a.arg, Column)
        and isinstance(a.order, Column) and a.order.name == n.event_time
        for f, a in n.calls
    )


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
    # The rows each pick takes its value from: a value, and its filter passed.
    present = [and_all([p for p in (Unary("IS NOT NULL", a.arg), a.filter) if p is not None]) for _, a in picks]  # type: ignore[arg-type]
    for i, (f, a) in enumerate(picks):
        at = AggCall("max" if a.func == "last" else "min", Column(n.event_time, T.Timestamp), f"{PREFIX}at{i}", present[i])
        windows.setdefault(f, []).append(at)
    lowering = None if n.lowering == "asof" else n.lowering
    node: Node = AsOfJoin(
        spine, events, n.on, n.spine_time, n.event_time, tuple((f, tuple(c)) for f, c in windows.items()),
        n.row_id, lowering, n.tile if lowering == "tiles" else None,
    )
    types = key_types(n)
    for i, (f, a) in enumerate(picks):
        assert a.arg is not None
        keys = [(f"{PREFIX}j{i}_{j}", _as(Column(e, es.dtype(e)), t)) for j, ((_, e), t) in enumerate(zip(n.on, types))]
        time = f"{PREFIX}jt{i}"
        # Booleans have no MIN/MAX in the IR: FALSE < TRUE as 0 < 1, and back.
        boolean = a.dtype == T.Bool
        x: Expr = Cast(a.arg, T.Int64) if boolean else a.arg
        rows = Project(Filter(events, present[i]), (*keys, (time, Column(n.event_time, T.Timestamp)), (f"{PREFIX}x{i}", x)))  # type: ignore[arg-type]
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


# ---- tiles -----------------------------------------------------------------------------

# Aggregates rebuilt from partials over parts of a frame, and their partials:
# c a count, s a sum, m an extreme (min or max).
TILE_PARTS = {"count": ("c",), "sum": ("s",), "min": ("m",), "max": ("m",), "mean": ("s", "c")}
TILE_SIZES_US = (86_400_000_000, 3_600_000_000, 60_000_000, 1_000_000, 1_000, 1)


def half_open(f: Frame) -> tuple[int, int]:
    """(L, U) with the frame at t being ``t - L <= u < t - U`` (integer microseconds)."""
    assert f.lower is not None
    return (f.lower if f.lower_inclusive else f.lower - 1), (f.upper if not f.upper_inclusive else f.upper - 1)


def tileable(n: AsOfJoin) -> bool:
    return n.row_id is not None and all(a.func in TILE_PARTS for a in n.aggs) and all(f.lower is not None for f, _ in n.windows)


def tile_size(n: AsOfJoin, min_tiles: int) -> int | None:
    """The largest tile size dividing every frame into at least ``min_tiles`` tiles."""
    if not tileable(n):
        return None
    lengths = [lo - up for lo, up in (half_open(f) for f, _ in n.windows)]
    for size in TILE_SIZES_US:
        if all(w % size == 0 and w // size >= min_tiles for w in lengths):
            return size
    return None


def tiles_ctes(low: SqlLowering, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
    """The tiles lowering (frames of whole tiles, see ``tile_size``): a frame
    ``[a, b)`` of a spine row is the whole tiles between (partial aggregates per key
    and tile, computed once) plus the raw events of its partial head tile (before
    the first whole tile) and tail tile (after the last). Both joins are cheap where
    the range join is not: the tiles of one window per spine row, and the events of
    two tiles, found by an equi-join on key and tile. CTEs:

        P   spine rows with a point: row, keys, t, per frame its whole tiles [ja, jb)
        E   events with a key: keys, tile, time, masked values
        TL  partials per key and tile                            (GROUP BY)
        H   per spine row, the head and tail tiles of its frames (UNION: each once)
        G1  per row, partials over its whole tiles               (range join P x TL)
        G2  per row, partials over its head and tail events      (equi-join H x E)

    and the spine LEFT JOIN G1, G2, the partials combined per aggregate."""
    from relplan.backends.sql import all_of, any_of, as_name, col, ident, lit

    assert n.tile is not None and n.row_id is not None
    tau = n.tile
    types = key_types(n)
    keys = [key_name(i) for i in range(len(n.on))]
    frames = [f for f, _ in n.windows]
    offsets = [half_open(f) for f in frames]
    names = {"P": f"t{k}", "E": f"t{k + 1}", "TL": f"t{k + 2}", "H": f"t{k + 3}", "G1": f"t{k + 4}", "G2": f"t{k + 5}"}
    us = low.epoch_us(col(n.spine_time))

    def key_cols(side: list[str], schema_of: Node) -> list[exp.Expression]:
        return [
            as_name(low.group_key(c, t) if schema_of.schema.dtype(c) == t else low.cast(col(c), t), key)
            for c, t, key in zip(side, types, keys)
        ]

    def floor_tile(e: exp.Expression) -> exp.Expression:
        return low.floordiv(e, lit(tau))

    # P: a spine row's frames [t - L, t - U): whole tiles ja = ceil((t - L) / tau) .. jb = floor((t - U) / tau).
    point_cols: list[exp.Expression] = [as_name(col(n.row_id), ROW), *key_cols([s for s, _ in n.on], n.spine), as_name(us, TIME)]
    for i, (lo, up) in enumerate(offsets):
        start = exp.Sub(this=us.copy(), expression=lit(lo))
        point_cols.append(as_name(exp.Neg(this=exp.Paren(this=floor_tile(exp.Neg(this=exp.Paren(this=start))))), f"{PREFIX}ja{i}"))
        point_cols.append(as_name(floor_tile(exp.Sub(this=us.copy(), expression=lit(up))), f"{PREFIX}jb{i}"))
    points = exp.select(*point_cols).from_(ident(spine), copy=False).where(
        low.keys_present((*(s for s, _ in n.on), n.spine_time)), copy=False
    )
    # E: events with a key, their tile, time and masked values (per aggregate).
    ev_us = low.epoch_us(col(n.event_time))
    values = [as_name(low.masked(a.arg, a.filter), f"{PREFIX}x{i}") for i, a in enumerate(n.aggs)]
    ev = exp.select(
        *key_cols([e for _, e in n.on], n.events), as_name(floor_tile(ev_us), f"{PREFIX}j"), as_name(ev_us.copy(), f"{PREFIX}u"), *values
    ).from_(ident(events), copy=False).where(low.keys_present((*(e for _, e in n.on), n.event_time)), copy=False)
    # TL: partials per key and tile.
    partials: list[exp.Expression] = []
    for i, a in enumerate(n.aggs):
        x = col(f"{PREFIX}x{i}")
        for part in TILE_PARTS[a.func]:
            agg = {"c": exp.Count, "s": exp.Sum, "m": exp.Min if a.func == "min" else exp.Max}[part]
            partials.append(as_name(agg(this=x.copy()), f"{PREFIX}{part}{i}"))
    tiles = exp.select(*[col(c) for c in keys], col(f"{PREFIX}j"), *partials).from_(ident(names["E"]), copy=False).group_by(
        *[col(c) for c in keys], col(f"{PREFIX}j"), copy=False
    )
    # H: the head tile floor((t - L) / tau) and tail tile jb of each frame, each once.
    heads: exp.Expression | None = None
    for i, (lo, _) in enumerate(offsets):
        for tile in (floor_tile(exp.Sub(this=col(TIME), expression=lit(lo))), col(f"{PREFIX}jb{i}")):
            q = exp.select(col(ROW), *[col(c) for c in keys], as_name(tile, f"{PREFIX}jj")).from_(ident(names["P"]), copy=False)
            heads = q if heads is None else exp.union(heads, q, distinct=True)
    assert heads is not None
    # G1 and G2: per row, each aggregate's partials over its own frame's parts.
    def in_whole(i: int, j: exp.Expression) -> exp.Expression:
        return all_of([exp.GTE(this=j, expression=col(f"{PREFIX}ja{i}", "p")), exp.LT(this=j.copy(), expression=col(f"{PREFIX}jb{i}", "p"))])

    def in_raw(i: int) -> exp.Expression:
        lo, up = offsets[i]
        u, j = col(f"{PREFIX}u", "e"), col(f"{PREFIX}j", "e")
        inside = [exp.GTE(this=u, expression=exp.Sub(this=col(TIME, "p"), expression=lit(lo))),
                  exp.LT(this=u.copy(), expression=exp.Sub(this=col(TIME, "p"), expression=lit(up)))]
        partial = any_of([exp.LT(this=j, expression=col(f"{PREFIX}ja{i}", "p")), exp.GTE(this=j.copy(), expression=col(f"{PREFIX}jb{i}", "p"))])
        return all_of([*inside, exp.Paren(this=partial)])

    frame_of = {a.name: frames.index(f) for f, a in n.calls}
    whole_cols, raw_cols = [], []
    for i, a in enumerate(n.aggs):
        fi = frame_of[a.name]
        for part in TILE_PARTS[a.func]:
            name = f"{PREFIX}{part}{i}"
            combine = {"c": exp.Sum, "s": exp.Sum, "m": exp.Min if a.func == "min" else exp.Max}[part]
            whole = exp.Case().when(in_whole(fi, col(f"{PREFIX}j", "t")), col(name, "t"), copy=False)
            whole_cols.append(as_name(combine(this=whole), name))
            raw_value = exp.Case().when(in_raw(fi), col(f"{PREFIX}x{i}", "e"), copy=False)
            raw = {"c": exp.Count, "s": exp.Sum, "m": exp.Min if a.func == "min" else exp.Max}[part]
            raw_cols.append(as_name(raw(this=raw_value), name))
    on_keys = [exp.EQ(this=col(c, "p"), expression=col(c, "t")) for c in keys]
    any_whole = any_of([in_whole(i, col(f"{PREFIX}j", "t")) for i in range(len(frames))])
    g1 = exp.select(col(ROW, "p"), *whole_cols).from_(exp.Table(this=ident(names["P"])).as_(ident("p")), copy=False).join(
        exp.Table(this=ident(names["TL"])).as_(ident("t")), on=all_of([*on_keys, exp.Paren(this=any_whole)]), join_type="inner", copy=False
    ).group_by(col(ROW, "p"), copy=False)
    on_tile = [exp.EQ(this=col(c, "h"), expression=col(c, "e")) for c in keys]
    on_tile.append(exp.EQ(this=col(f"{PREFIX}jj", "h"), expression=col(f"{PREFIX}j", "e")))
    g2 = (
        exp.select(col(ROW, "p"), *raw_cols)
        .from_(exp.Table(this=ident(names["H"])).as_(ident("h")), copy=False)
        .join(exp.Table(this=ident(names["E"])).as_(ident("e")), on=all_of(on_tile), join_type="inner", copy=False)
        .join(exp.Table(this=ident(names["P"])).as_(ident("p")), on=exp.EQ(this=col(ROW, "p"), expression=col(ROW, "h")), join_type="inner", copy=False)
        .group_by(col(ROW, "p"), copy=False)
    )
    # The spine with each aggregate combined from its two parts.
    guard = low.expr(no_point(n))
    out: list[exp.Expression] = [col(f.name, "s") for f in n.spine.schema]
    for i, a in enumerate(n.aggs):
        parts = {}
        for part in TILE_PARTS[a.func]:
            w, r = col(f"{PREFIX}{part}{i}", "w"), col(f"{PREFIX}{part}{i}", "r")
            if part == "c":
                parts[part] = exp.Add(this=exp.Coalesce(this=w, expressions=[lit(0)]), expression=exp.Coalesce(this=r, expressions=[lit(0)]))
            else:
                both = exp.Add(this=w.copy(), expression=r.copy()) if part == "s" else exp.Case().when(
                    (exp.LT if a.func == "min" else exp.GT)(this=w.copy(), expression=r.copy()), w.copy(), copy=False
                ).else_(r.copy(), copy=False)
                parts[part] = (
                    exp.Case()
                    .when(exp.Is(this=w.copy(), expression=exp.Null()), r.copy(), copy=False)
                    .when(exp.Is(this=r.copy(), expression=exp.Null()), w.copy(), copy=False)
                    .else_(both, copy=False)
                )
        if a.func == "mean":
            value: exp.Expression = exp.Div(
                this=low.cast(parts["s"], T.Float64), expression=exp.Nullif(this=parts["c"], expression=lit(0))
            )
        else:
            value = low.cast(parts[TILE_PARTS[a.func][0]], a.dtype)
        value = exp.Case().when(guard.copy(), low.cast(exp.Null(), a.dtype), copy=False).else_(value, copy=False)
        out.append(exp.alias_(value, ident(a.name), copy=False))
    final = (
        exp.select(*out)
        .from_(exp.Table(this=ident(spine)).as_(ident("s")), copy=False)
        .join(exp.Table(this=ident(names["G1"])).as_(ident("w")), on=exp.EQ(this=col(n.row_id, "s"), expression=col(ROW, "w")), join_type="left", copy=False)
        .join(exp.Table(this=ident(names["G2"])).as_(ident("r")), on=exp.EQ(this=col(n.row_id, "s"), expression=col(ROW, "r")), join_type="left", copy=False)
    )
    return [(names["P"], points), (names["E"], ev), (names["TL"], tiles), (names["H"], heads),
            (names["G1"], g1), (names["G2"], g2), (f"t{k + 6}", final)]


# ---- properties proven on the tables of a run -----------------------------------
#
# ``unique_times`` and ``no_nulls`` let the ``asof`` lowering skip settling ties and
# join once for every column (``newest_rows``). Statistics may declare uniqueness;
# otherwise a run on given Arrow tables (never SQL that may run on other data) looks:
# a NULL count is Arrow metadata, and (key, time) unique is one group-by on a
# dimension-sized table or one pass over a log in time order.

# Tables of at most this many rows get the group-by (Arrow's: about 15 ms per 100k
# rows on 2 cores); larger ones only the pass over times in order, which tells where
# the times strictly increase or their runs of equal times are few: at most this share
# of the rows, or this many (a millisecond or two; beyond, the check would cost about
# what settling the ties in SQL does).
UNIQUE_CHECK_MAX_ROWS = 1_000_000
TIED_RUNS_MAX_SHARE = 1 / 8
TIED_RUNS_MAX_ROWS = 10_000


def with_proven_properties(sinks: tuple[Sink, ...], tables: Mapping[str, object]) -> tuple[Sink, ...]:
    """``sinks`` with each AsOfJoin lowered by ``asof`` marked ``unique_times`` and
    ``no_nulls`` where ``tables`` (source name -> the Arrow table of this run) show
    it: its events must come from a source's table through filters and projections
    of plain columns (a filter keeps both properties of the rows it keeps). Returns
    ``sinks`` itself when nothing is proven."""
    if not _has_asof_joins(sinks):
        return sinks

    def visit(n: Node) -> Node | None:
        if not isinstance(n, AsOfJoin) or n.lowering != "asof" or not newest_event_only(n):
            return None
        unique = n.unique_times or _proven_unique(n, tables)
        no_nulls = n.no_nulls or _proven_no_nulls(n, tables)
        if unique == n.unique_times and no_nulls == n.no_nulls:
            return None
        return dataclasses.replace(n, unique_times=unique, no_nulls=no_nulls)

    return transform(sinks, visit)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def _has_asof_joins(sinks: tuple[Sink, ...]) -> bool:
    return any(isinstance(n, AsOfJoin) and n.lowering == "asof" for n in walk(sinks))


def _traced(node: Node, names: list[str]) -> tuple[Source, dict[str, str]] | None:
    """The source whose table holds ``names`` of ``node``'s rows, and each one's
    column there: through filters (fewer rows) and projections of plain columns."""
    where = {c: c for c in names}
    while not isinstance(node, Source):
        if isinstance(node, Filter):
            node = node.input
        elif isinstance(node, Project):
            exprs = dict(node.exprs)
            for c, name in where.items():
                e = exprs.get(name)
                if not isinstance(e, Column):
                    return None
                where[c] = e.name
            node = node.input
        else:
            return None
    return node, where


def _table(tables: Mapping[str, object], source: Source, columns: Iterable[str]) -> pa.Table | None:
    table = tables.get(source.name)
    if not isinstance(table, pa.Table) or any(c not in table.column_names for c in columns):
        return None  # a table name (the engine's own table), or not as the source declares
    return table


def _proven_no_nulls(n: AsOfJoin, tables: Mapping[str, object]) -> bool:
    """No aggregate's argument is NULL: each a plain column with no NULL in the table
    (Arrow's null count, no data read). The event time and keys need no look: an
    event with a NULL one is in no frame."""
    if not all(isinstance(a.arg, Column) for a in n.aggs):
        return False
    exempt = {n.event_time, *(e for _, e in n.on)}
    read = sorted({a.arg.name for a in n.aggs} - exempt)  # type: ignore[union-attr]
    if not read:
        return True
    traced = _traced(n.events, read)
    if traced is None:
        return False
    source, where = traced
    table = _table(tables, source, where.values())
    return table is not None and all(table.column(where[c]).null_count == 0 for c in read)


def _proven_unique(n: AsOfJoin, tables: Mapping[str, object]) -> bool:
    """No two events share a key and a time, as the engine compares them: keys joined
    as they are (not cast to the spine key's type, which may merge two), no float key
    (-0.0 and 0.0 are one key to the engine, two groups to Arrow)."""
    for (_, e), t in zip(n.on, key_types(n)):
        if n.events.schema.dtype(e) != t or t == T.Float64:
            return False
    names = [*(e for _, e in n.on), n.event_time]
    traced = _traced(n.events, names)
    if traced is None:
        return False
    source, where = traced
    table = _table(tables, source, where.values())
    return table is not None and unique_rows(table, [where[c] for c in names])


def unique_rows(table: pa.Table, columns: list[str]) -> bool:
    """Whether no two rows of ``table`` share the values of ``columns`` (keys, then a
    timestamp column). A table in strictly increasing time order shares nothing (one
    vectorized pass); otherwise a group-by tells, on tables of at most
    UNIQUE_CHECK_MAX_ROWS rows or on the runs of equal times of a table in time
    order (at most TIED_RUNS_MAX_SHARE of its rows, or TIED_RUNS_MAX_ROWS, in them). False where it cannot tell
    cheaply. NULLs group together: a tie reported where the ASOF JOIN skips the rows,
    only ever costing the settling."""
    time = columns[-1]
    ts = table.column(time)
    if not pa.types.is_timestamp(ts.type) or ts.null_count:
        return False
    if table.num_rows < 2:
        return True
    us = ts.cast(pa.int64()).to_numpy()  # the table's own unit: order and equality are the same
    later = us[1:] > us[:-1]
    if later.all():
        return True
    rows: pa.Table = table.select(columns)
    if table.num_rows > UNIQUE_CHECK_MAX_ROWS:
        if (us[1:] < us[:-1]).any():
            return False  # out of time order, and too large to group
        tied = np.flatnonzero(~later)
        runs = np.union1d(tied, tied + 1)  # every row of a run of equal times
        if len(runs) > max(len(us) * TIED_RUNS_MAX_SHARE, TIED_RUNS_MAX_ROWS):
            return False
        rows = rows.take(pa.array(runs))
    return rows.group_by(columns).aggregate([]).num_rows == rows.num_rows
