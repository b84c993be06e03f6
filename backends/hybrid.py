"""Hybrid placement of a long sliding window: batch-computed steps plus a streamed day.

A per-event feature over the sliding frame ``(t - w, t]`` (w a whole number of days)
is split at the midnight T (UTC) of the event's own day t:

    (t - w, t]  =  (t - w, T)  ∪  [T, t]
                   batch steps    stream tail

so a streaming engine keeps one day of state per key instead of w. Three parts:

1. **stream** (an IR plan, so every engine runs it; meant for Flink streaming): the
   source's rows with ``__rp_day := CAST(ts AS DATE)`` and a window aggregate
   partitioned by the feature's keys and that day, over ``(t - 1d, t]``: within one
   day that frame is exactly ``[T, t]``. It computes *partial* aggregates (with the
   feature's masks), not the feature: count -> count, sum -> sum, mean -> sum and
   count, min/max -> min/max, which add up (or take the extreme) across parts.
2. **steps** (batch SQL; DuckDB, or Spark by ``steps_select_sql``): per key k, step
   rows at times v, each with the same partials over the events of k with
   ``v - w < ts < midnight(day of v)``. The v are, for each event time s of k, the
   midnights of the days day(s) + 1d, ..., day(s) + w (the days whose frames s can be
   in) and s + w. Over a day D, the value over ``(t - w, D)`` only changes when the
   frame's lower edge passes an event (at s + w), so the newest step v <= t has it:
   if k has an event in ``[D - w, D)``, the step at D exists, and an event in
   ``(v - w, t - w]`` would make s + w a newer step <= t. If k has none, the value
   is empty, and so is the newest step: s + w of k's last event s before D, whose
   frame ``(s, day(s) + w)`` ends before D (or no step: the serving counts it empty).

   They are computed from daily tiles, never by pairing a step with the events of
   its whole frame. The tiles: per key and UTC day with events, the partials of that
   day's events. Since w is whole days, v - w lies in the day D - w, and

       (v - w, D)  =  (v - w, D - w + 1d)  ∪  [D - w + 1d, D)
                      suffix of day D - w     whole days between: w/1d - 1 tiles

   The suffix is a window aggregate over the key's events of day D - w, among which
   each step is put as a row at v - w with NULL arguments (it adds nothing): the
   frame ``RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING`` over epoch
   microseconds, partitioned by key and day, holds the events after v - w to the
   day's end (those at exactly v - w excluded, ties too). The days between are a
   window over the key's tiles, among which each step is put by that day:
   ``RANGE BETWEEN 1d FOLLOWING AND w - 1d FOLLOWING`` over the day (frames, not
   prefix differences: min and max have no inverse). The two parts' partials then
   combine as the serving's do. The midnight steps come from the tiles too: a day's
   midnights stop at the key's next day with events (LEAD), whose own make the later
   ones, so each is made once, not w/1d times.

   So the steps of day D depend only on the events before D: the daily job may run
   at midnight D for the coming day (once the earlier days' late events are in, its
   allowed lateness after midnight), before any event of D exists; it reads the
   whole table and makes every day's steps, of which those of later days are
   provisional (they miss D's events) until the next night's run replaces them.
   Per key, day D has one step at D if the key has an event in the w days before,
   plus one per distinct event time of the key on day D - w; its steps cost the
   key's events of day D - w (the suffixes) and its w/1d - 1 tiles of the days between:
   a run is linear in the events (and the sorts of events + steps by key and day,
   of tiles + steps by key), where a range join of steps and events (each step
   re-aggregating its frame) cost steps x events per key per window, quadratic on
   dense keys. A job that kept its tiles could make one day's steps from the events
   of day D - w and the stored tiles.
3. **serve** (DuckDB SQL): each stream row ASOF JOINs the newest step of its key at
   or before its time, and the two parts' partials are combined into the feature,
   in the all-batch plan's columns, order and types.

The SQL is sqlglot ASTs built from the engines' lowerings (epoch microseconds and
Python's floor arithmetic as each engine spells them); no text is pasted together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from relplan.backends.arrow_io import conform_table
from relplan.backends.sql import SqlLowering, all_of, any_key_null, as_name, col, ident, lit
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import DataError, EngineError, UnsupportedError
from relplan.ir.expr import Cast, Column, Expr
from relplan.ir.graph import walk
from relplan.ir.nodes import Node, Project, Sink, Source, WindowAggregate
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame

HYBRID_AGGS = frozenset({"count", "sum", "mean", "min", "max"})
TILE_US = 86_400_000_000  # one day: the tile is the UTC day, CAST(ts AS DATE) on every engine

DAY = "__rp_day"  # the stream part's day partition
STEP = "__rp_v"  # a step's time, epoch microseconds
US = "__rp_us"  # an event's time, epoch microseconds
LAST = "__rp_last"  # the last midnight step a key's day of events makes
# CTEs of the steps query
EVENTS, TILES, SPANS, STEPS = "__rp_events", "__rp_tiles", "__rp_spans", "__rp_steps"
ROWS, AFTER, DAYS, WITHIN = "__rp_rows", "__rp_after", "__rp_days", "__rp_within"

# Per aggregate: the partials it is rebuilt from (partial functions of its masked argument).
# A mean of Int64 adds its parts' sums exactly (DuckDB's SUM of BIGINT is a HUGEINT), but
# the stream part's one-day sum is a BIGINT: a day whose sum overflows fails there.
_PARTIALS: dict[str, tuple[str, ...]] = {
    "count": ("count",), "sum": ("sum",), "mean": ("sum", "count"), "min": ("min",), "max": ("max",),
}
_OVER_ROWS: dict[str, type[exp.Expression]] = {"count": exp.Count, "sum": exp.Sum, "min": exp.Min, "max": exp.Max}


@dataclass(frozen=True)
class _Shape:
    """A per-event output the hybrid placement can split: Sink <- [Project] <- window <- [Project] <- Source."""

    sink: Sink
    top: Project | None  # the output's columns over the window aggregate's
    window: WindowAggregate
    source: Source


@dataclass(frozen=True)
class _Partial:
    """One partial aggregate: ``func`` over an aggregate's argument with its mask."""

    name: str
    func: str
    arg: Expr | None
    filter: Expr | None


@dataclass(frozen=True)
class HybridParts:
    """The three parts of one output placed hybrid.

    ``stream``: the tail plan (its sink is named ``head_table``), for a streaming engine.
    ``steps_sql``: ``CREATE OR REPLACE TABLE <steps_table> AS SELECT ...`` on DuckDB,
    reading the source's table by the source's name. ``serve_sql``: a DuckDB SELECT of
    the output's rows, reading the tables ``head_table`` (the stream part's rows) and
    ``steps_table``. Run them in that order: steps, stream, serve. ``schema``: the
    output's columns and IR types, those of the all-batch plan.
    """

    stream: Sink
    steps_sql: str
    serve_sql: str
    steps_table: str
    head_table: str
    output: str
    schema: Schema


def _shape(sink: Sink) -> _Shape | str:
    """The output's parts, or why it cannot be placed hybrid (short: the caller names
    the feature or output; a reason names a feature only among several)."""
    node: Node = sink.input
    top = node if isinstance(node, Project) else None
    if top is not None:
        node = top.input
    if not isinstance(node, WindowAggregate):
        return f"not one per-event window feature over a source (found {node.kind} {node.details()})"
    n = node
    below = n.input
    src = below.input if isinstance(below, Project) else below
    if not isinstance(src, Source):
        return f"computed over {below.kind} {below.details()}, not directly over a source's columns"
    if n.order != src.event_time or (
        isinstance(below, Project) and dict(below.exprs).get(n.order) != Column(n.order, T.Timestamp)
    ):
        return f"ordered by {n.order!r}, not by the event time of source {src.name!r}"
    if len(n.windows) != 1:
        return f"{len(n.windows)} windows ({', '.join(f.describe() for f, _ in n.windows)}) in one window aggregate; the hybrid placement splits one"
    frame = n.windows[0][0]
    if not (frame.is_sliding and frame.lower % TILE_US == 0 and frame.lower >= 2 * TILE_US):  # type: ignore[operator]
        wanted = "a whole number of days" if frame.is_sliding else "(t-w, t] with w a whole number of days"
        return f"window {frame.describe()} is not {wanted} of at least 2d (the batch tiles are UTC days)"
    for a in n.aggs:
        if a.func not in HYBRID_AGGS:
            which = "" if len(n.aggs) == 1 else f" (feature {a.name!r})"
            return f"{a.sql()}{which} has no partials to combine; supported: {', '.join(sorted(HYBRID_AGGS))}"
    reserved = [c for c in below.schema.names if c.startswith("__rp_")]
    if reserved:
        return f"columns named like relplan's own ({', '.join(reserved)})"
    return _Shape(sink, top, n, src)


def hybrid_refusal(sink: Sink) -> str | None:
    """None if ``sink`` can be placed hybrid, else why not (in the user's names)."""
    from relplan.backends.duckdb_udf import python_udfs

    udfs = python_udfs(sink)
    if udfs:  # its stream half runs on Flink, which cannot call Python UDFs
        return f"it calls the Python UDF {udfs[0].name}, which only DuckDB and the reference engine run"
    shape = _shape(sink)
    return shape if isinstance(shape, str) else None


def _checked_shape(sink: Sink) -> _Shape:
    shape = _shape(sink)
    if isinstance(shape, str):
        raise UnsupportedError(f"output {sink.name!r} cannot be placed hybrid: {shape}")
    return shape


def _partials(n: WindowAggregate) -> tuple[list[_Partial], dict[tuple[str, str], str]]:
    """Each distinct (partial function, argument, mask) once; and per (aggregate name,
    partial function) the partial's column name. count(*) stays count(*): a count of
    rows, where count(x) counts the non-NULL x."""
    found: dict[tuple[str, Expr | None, Expr | None], _Partial] = {}
    of: dict[tuple[str, str], str] = {}
    for a in n.aggs:
        for func in _PARTIALS[a.func]:
            key = (func, a.arg, a.filter)
            if key not in found:
                found[key] = _Partial(f"__rp_{func}{len(found)}", func, a.arg, a.filter)
            of[(a.name, func)] = found[key].name
    return list(found.values()), of


# ---- 1. the stream part: partials over [T, t] -------------------------------------

def _stream_plan(shape: _Shape, partials: list[_Partial], name: str, lateness_us: int) -> Sink:
    n = shape.window
    # The stream's allowed lateness (its watermark); nothing else of the source changes.
    src = dataclasses.replace(shape.source, lateness=lateness_us, bounded=False)
    below: Node = src if n.input is shape.source else n.input.with_inputs((src,))
    columns = tuple((f.name, Column(f.name, f.dtype)) for f in below.schema)
    ts = Column(n.order, T.Timestamp)
    with_day = Project(below, (*columns, (DAY, Cast(ts, T.Date))))
    calls = tuple(AggCall(p.func, p.arg, p.name, p.filter) for p in partials)
    # Partitioned by day, the frame (t - 1d, t] holds exactly the rows of [T, t].
    tail = WindowAggregate.of(with_day, (*n.keys, DAY), n.order, Frame(lower=TILE_US), calls)
    out = Project(tail, (*columns, *((p.name, Column(p.name, tail.schema.dtype(p.name))) for p in partials)))
    return Sink(out, name)


# ---- 2. the steps: partials over (v - w, midnight(v)) -------------------------------

# The partial that adds up partials of its kind: counts and sums add, extremes take theirs.
_OF_PARTIALS: dict[str, type[exp.Expression]] = {"count": exp.Sum, "sum": exp.Sum, "min": exp.Min, "max": exp.Max}


def _over(
    agg: exp.Expression, partition: list[exp.Expression], order: exp.Expression, start: int, end: int | None
) -> exp.Expression:
    """``agg OVER (PARTITION BY ... ORDER BY order RANGE BETWEEN start FOLLOWING AND
    end FOLLOWING)`` (``end`` None: UNBOUNDED): an integer range after the current row's."""
    spec = exp.WindowSpec(
        kind="RANGE", start=lit(start), start_side="FOLLOWING",
        end="UNBOUNDED" if end is None else lit(end), end_side="FOLLOWING",
    )
    return exp.Window(
        this=agg, partition_by=partition or None, order=exp.Order(expressions=[exp.Ordered(this=order)]), spec=spec, over="OVER"
    )


def _combined(func: str, a: exp.Expression, b: exp.Expression, low: SqlLowering) -> exp.Expression:
    """One partial from two parts' (either NULL where its part has no value)."""
    if func == "count":  # a window's COUNT is 0 over no rows, its SUM of counts NULL
        return low.cast(exp.Add(this=a, expression=exp.Coalesce(this=b, expressions=[lit(0)])), T.Int64)
    if func == "sum":
        both: exp.Expression = exp.Add(this=a.copy(), expression=b.copy())
    else:  # DuckDB's LEAST/GREATEST skip NULLs, others' return NULL; the COALESCE makes both right
        both = (exp.Least if func == "min" else exp.Greatest)(this=a.copy(), expressions=[b.copy()], ignore_nulls=True)
    return exp.Coalesce(this=both, expressions=[a, b])


def _steps_query(shape: _Shape, partials: list[_Partial], low: SqlLowering) -> exp.Select:
    """The steps as one SELECT in ``low``'s dialect: key columns, ``__rp_v``, partials.

    A step v's frame (v - w, D), D the midnight of v's day, is the suffix of the day
    D - w (the day of v - w) after v - w, and the whole days strictly between it and D.
    Suffixes are window aggregates over each (key, day)'s events; whole days are the
    daily tiles (partials per key and day), combined by a window over a key's tiles.
    No step pairs with the events of more than one day: the query is linear in the
    events (and their sorts), not in steps x events per window."""
    n = shape.window
    w = n.windows[0][0].lower
    assert w is not None
    keys = list(n.keys)
    # The rows the window reads (the source, and the projection under the window if any),
    # as the engine's own lowering computes them.
    ctes: list[tuple[str, exp.Expression]] = []
    names: dict[Node, str] = {}
    for m in walk(n.input):
        low.check_supported(m)
        ctes += low.node(m, [names[i] for i in m.inputs], len(ctes))
        names[m] = ctes[-1][0]
    schema = n.input.schema

    def midnight(us: exp.Expression) -> exp.Expression:
        # Floored to the day: exact before 1970 too (SQL's % truncates toward zero).
        return exp.Sub(this=us, expression=low.pymod(us.copy(), lit(TILE_US)))

    def by_key() -> list[exp.Expression]:
        return [col(k) for k in keys]

    def named(e: exp.Expression, name: str) -> exp.Expression:
        return exp.alias_(e, ident(name), copy=False)

    # Events of an entity (no NULL key) at a time (one without is in no frame), each
    # partial's argument masked: NULL where the feature's mask drops the row (so rows
    # added below with NULL arguments count as nothing).
    args: dict[tuple[Expr | None, Expr | None], str] = {}
    for p in partials:
        args.setdefault((p.arg, p.filter), f"__rp_a{len(args)}")
    arg_of = {p.name: args[(p.arg, p.filter)] for p in partials}
    us = low.epoch_us(col(n.order))
    events = exp.select(
        *[as_name(low.group_key(k, schema.dtype(k)), k) for k in keys],
        named(us, US), named(midnight(us.copy()), DAY),
        *[named(low.masked(arg, cond), a) for (arg, cond), a in args.items()],
    ).from_(ident(names[n.input]), copy=False)
    ctes.append((EVENTS, events.where(low.keys_present((*n.keys, n.order)), copy=False)))

    # The tiles: per key and day with events, each partial of the day's events.
    day = col(DAY)
    ctes.append((TILES, exp.select(
        *by_key(), day.copy(), *[named(_OVER_ROWS[p.func](this=col(arg_of[p.name])), p.name) for p in partials],
    ).from_(ident(EVENTS), copy=False).group_by(*by_key(), day.copy(), copy=False)))

    # The step times: the midnights D after an event s, up to w later (day(s) + 1d, ...,
    # day(s) + w: the days whose frames s may be in), and s + w, where s leaves the
    # frame. A day's midnights stop at the key's next day with events, which makes the
    # later ones: each midnight is made once, not w / 1d times.
    following = exp.Window(
        this=exp.Anonymous(this="LEAD", expressions=[day.copy()]), partition_by=by_key() or None,
        order=exp.Order(expressions=[exp.Ordered(this=day.copy())]), over="OVER",
    )
    last = exp.Least(
        this=exp.Add(this=day.copy(), expression=lit(w)),
        expressions=[exp.Coalesce(this=following, expressions=[exp.Add(this=day.copy(), expression=lit(w))])],
        ignore_nulls=True,  # neither is NULL: no CASE around it
    )
    ctes.append((SPANS, exp.select(*by_key(), day.copy(), named(last, LAST)).from_(ident(TILES), copy=False)))
    midnights = low.hop_starts(col(LAST), exp.Add(this=day.copy(), expression=lit(TILE_US)), TILE_US)
    ctes.append((STEPS, exp.union(
        exp.select(*by_key(), named(midnights, STEP)).from_(ident(SPANS), copy=False),
        exp.select(*by_key(), named(exp.Add(this=col(US), expression=lit(w)), STEP)).from_(ident(EVENTS), copy=False),
        distinct=True,
    )))

    # The suffixes: each step at its frame's lower edge v - w among its key's events of
    # that day (its arguments NULL: it adds nothing), with the partials of the events
    # after it, those at v - w excluded (a RANGE from 1us after the row's time).
    edge = exp.Sub(this=col(STEP), expression=lit(w))
    null = exp.Null
    ctes.append((ROWS, exp.union(
        exp.select(*by_key(), col(US), day.copy(), named(null(), STEP), *[col(a) for a in args.values()])
        .from_(ident(EVENTS), copy=False),
        exp.select(
            *by_key(), named(edge, US), named(midnight(edge.copy()), DAY), col(STEP), *[named(null(), a) for a in args.values()],
        ).from_(ident(STEPS), copy=False),
        distinct=False,
    )))
    suffix = {p.name: f"{p.name}_after" for p in partials}
    ctes.append((AFTER, exp.select(
        *by_key(), day.copy(), col(STEP),
        *[
            named(_over(_OVER_ROWS[p.func](this=col(arg_of[p.name])), [*by_key(), day.copy()], col(US), 1, None), suffix[p.name])
            for p in partials
        ],
    ).from_(ident(ROWS), copy=False)))

    # The whole days between: the steps among their key's tiles, by the day of v - w,
    # with the partials of the tiles 1d to w - 1d after it.
    step_rows = exp.Not(this=exp.Is(this=col(STEP), expression=null()))
    ctes.append((DAYS, exp.union(
        exp.select(*by_key(), day.copy(), named(null(), STEP), *[named(null(), suffix[p.name]) for p in partials],
                   *[col(p.name) for p in partials]).from_(ident(TILES), copy=False),
        exp.select(*by_key(), day.copy(), col(STEP), *[col(suffix[p.name]) for p in partials],
                   *[named(null(), p.name) for p in partials]).from_(ident(AFTER), copy=False).where(step_rows, copy=False),
        distinct=False,
    )))
    between = {p.name: f"{p.name}_between" for p in partials}
    ctes.append((WITHIN, exp.select(
        *by_key(), col(STEP), *[col(suffix[p.name]) for p in partials],
        *[
            named(_over(_OF_PARTIALS[p.func](this=col(p.name)), by_key(), day.copy(), TILE_US, w - TILE_US), between[p.name])
            for p in partials
        ],
    ).from_(ident(DAYS), copy=False)))
    q = exp.select(
        *by_key(), col(STEP),
        *[named(_combined(p.func, col(suffix[p.name]), col(between[p.name]), low), p.name) for p in partials],
    ).from_(ident(WITHIN), copy=False).where(step_rows.copy(), copy=False)
    for name_, cte in ctes:
        q = q.with_(ident(name_), as_=cte, copy=False)
    return q


def _lowering(engine: str) -> SqlLowering:
    if engine == "duckdb":
        from relplan.backends.duckdb import DuckDBLowering

        return DuckDBLowering()
    if engine == "spark":
        from relplan.backends.spark import SparkLowering

        return SparkLowering()
    raise UnsupportedError(f"the hybrid steps are written for DuckDB or Spark, not {engine!r}")


def steps_select_sql(sink: Sink, engine: str = "duckdb", *, pretty: bool = True) -> str:
    """The steps of ``sink`` placed hybrid as a SELECT for ``engine`` ("duckdb" or
    "spark"), reading the source's table by the source's name."""
    shape = _checked_shape(sink)
    partials, _ = _partials(shape.window)
    low = _lowering(engine)
    return low.sql_text(_steps_query(shape, partials, low), pretty)


# ---- 3. serving: the newest step + the day's tail -----------------------------------

def _serve_query(
    shape: _Shape, partials_of: dict[tuple[str, str], str], head: str, steps: str, low: SqlLowering
) -> exp.Select:
    n = shape.window
    keys = list(n.keys)
    h, s = "h", "s"

    def parts(a: AggCall, func: str) -> tuple[exp.Column, exp.Column]:
        """The day's partial (never NULL on a row with a key), then the step's (NULL
        where the key has no step yet: nothing before T)."""
        p = partials_of[(a.name, func)]
        return col(p, h), col(p, s)

    def combined(a: AggCall) -> exp.Expression:
        if a.func == "mean":
            total = _combined("sum", *parts(a, "sum"), low)
            count = _combined("count", *parts(a, "count"), low)
            return exp.Div(this=low.cast(total, T.Float64), expression=exp.Nullif(this=count, expression=lit(0)))
        return _combined(a.func, *parts(a, a.func), low)

    cols: list[exp.Expression] = [col(f.name, h) for f in n.input.schema]
    for a in n.aggs:
        value = low.cast(combined(a), a.dtype)
        if keys:  # a NULL key is no entity: every aggregate NULL, a count too
            value = exp.Case().when(any_key_null(keys, h), exp.Null(), copy=False).else_(value, copy=False)
        cols.append(exp.alias_(value, ident(a.name), copy=False))
    on = [exp.EQ(this=col(k, h), expression=col(k, s)) for k in keys]
    on.append(exp.GTE(this=low.epoch_us(col(n.order, h)), expression=col(STEP, s)))
    merged = (
        exp.select(*cols)
        .from_(exp.Table(this=ident(head)).as_(ident(h)), copy=False)
        .join(exp.Table(this=ident(steps)).as_(ident(s)), on=all_of(on), join_type="asof left", copy=False)
    )
    if shape.top is None:
        out = [col(f.name) for f in shape.sink.schema]
    else:  # the output's own columns over the window's (e.g. a mean as sum / count)
        out = [as_name(low.expr(e), name) for name, e in shape.top.exprs]
    return exp.select(*out).from_(exp.Subquery(this=merged, alias=exp.TableAlias(this=ident("m"))), copy=False)


def hybrid_stream(sink: Sink, *, lateness_us: int = 0) -> Sink:
    """The stream part of ``sink`` placed hybrid alone (its plan, without the SQL of
    the other parts): what placement estimates the streaming side from."""
    shape = _checked_shape(sink)
    partials, _ = _partials(shape.window)
    return _stream_plan(shape, partials, f"{sink.name}__head", lateness_us)


def split_hybrid(sink: Sink, *, lateness_us: int = 0) -> HybridParts:
    """``sink`` (one per-event sliding-window feature output) as its three hybrid parts.

    ``lateness_us`` becomes the stream part's source's allowed lateness (its watermark).
    Raises UnsupportedError, saying why, where ``hybrid_refusal`` gives a reason."""
    from relplan.backends.duckdb import DuckDBLowering

    shape = _checked_shape(sink)
    partials, partials_of = _partials(shape.window)
    head, steps = f"{sink.name}__head", f"{sink.name}__steps"
    low = DuckDBLowering()
    steps_select = _steps_query(shape, partials, low)
    create = exp.Create(this=exp.Table(this=ident(steps)), kind="TABLE", replace=True, expression=steps_select)
    return HybridParts(
        stream=_stream_plan(shape, partials, head, lateness_us),
        steps_sql=low.sql_text(create, True),
        serve_sql=low.sql_text(_serve_query(shape, partials_of, head, steps, low), True),
        steps_table=steps,
        head_table=head,
        output=sink.name,
        schema=sink.schema,
    )


# ---- running the parts here -----------------------------------------------------------

def run_hybrid_locally(
    parts: HybridParts, tables: dict[str, Any], *, stream_engine: str = "flink", **stream_options: Any
) -> pa.Table:
    """The output's rows from its hybrid parts: the steps on DuckDB, the stream part on
    ``stream_engine`` ("flink": streaming mode; "duckdb", "reference", ... for fast
    runs; ``stream_options`` go to its backend), then the serving SQL on DuckDB.

    The stream part is fed the source's rows in event-time order, as a stream delivers
    them (Flink's streaming OVER windows drop rows later than the watermark)."""
    import duckdb

    from relplan.backends import get_backend
    from relplan.backends.duckdb import _naive

    src = next(m for m in walk(parts.stream) if isinstance(m, Source))
    if src.name not in tables:
        raise DataError(f"no table given for source {src.name!r} of output {parts.output!r}: pass tables={{{src.name!r}: ...}}")
    table = conform_table(src, tables[src.name])
    if src.event_time is not None:
        table = table.take(pc.sort_indices(table, [(src.event_time, "ascending")]))
    options = {"mode": "streaming", **stream_options} if stream_engine == "flink" else stream_options
    head = get_backend(stream_engine, **options).run((parts.stream,), {src.name: table})[parts.head_table]
    con = duckdb.connect()
    try:
        # Naive UTC timestamps: no DuckDB session time zone is involved.
        con.register(src.name, _naive(table))
        con.register(parts.head_table, _naive(head))
        try:
            con.execute(parts.steps_sql)
            result = con.sql(parts.serve_sql).to_arrow_table()
        except duckdb.Error as e:
            raise EngineError(f"DuckDB failed on the hybrid parts of output {parts.output!r}: {e}") from e
        try:
            return result.cast(parts.schema.to_arrow())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:  # e.g. a sum out of BIGINT's range
            raise EngineError(f"DuckDB's hybrid result for output {parts.output!r} does not fit its IR types: {e}") from e
    finally:
        con.close()


__all__ = [
    "HYBRID_AGGS", "TILE_US", "HybridParts", "hybrid_refusal", "hybrid_stream", "run_hybrid_locally", "split_hybrid", "steps_select_sql",
]
