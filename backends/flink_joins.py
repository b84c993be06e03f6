"""Enrichment joins in Flink streaming mode, each a formulation Flink runs append-only.

A streaming job writes to append-only sinks, so every row it emits must be final.
Three join shapes are made so, exactly (the same rows as batch mode and the reference):

- **point-in-time enrichment** (``AsOfJoin``, frames ending at t): the spine rows and
  the dimension's versions go through one UNION ALL, the dimension's version time in
  the spine's event-time column, and OVER windows partitioned by key and ordered by
  that column compute each aggregate over the versions only (``asof_union_subplan``).
  Flink's OVER emits a row once the watermark (the smaller of both inputs') passes its
  time, with every row of that time in the frame: a version at exactly the event's
  time counts, and ``last`` is MAX of an order-preserving (time, value) key
  (backends/flink_extremes.py), so of versions tied on time the largest value wins and
  a NULL in a newer version leaves the older value, as ``last`` means (not Flink's
  temporal join ``FOR SYSTEM_TIME AS OF``, which takes the newest version's whole row).
  The spine's time column stays Flink's event-time attribute through the UNION (both
  sides hold one), so per-event OVER windows can follow.
- **lookup join** (``Join(lookup=True)``, inner or left): a regular join of a stream is
  an updating result where it is outer (an unmatched row is retracted when its match
  arrives), and loses the event-time attribute where it is inner. So the table's rows
  become versions valid from the beginning of time: its source declares a computed
  event time ``VALID_FROM`` (1970-01-01 00:00:00.001, earlier than every event, which
  streaming mode requires after 1970) with a watermark, and the join is the as-of
  enrichment above, ``last`` of every table column (at most one row per key: its value)
  and a count of the key's rows (0: no match; the inner join drops those rows). The
  table must be bounded: its watermark passes 1970 only when it has been read whole,
  so no event is enriched before every row of the table is in.
- **interval join** (``Join`` with ``left_time``/``right_time``): Flink's own interval
  join (``r.t BETWEEN l.t - INTERVAL ... AND l.t + INTERVAL ...`` on the event-time
  attributes), append-only for outer joins too: an unmatched row is emitted once the
  watermark passes its bound. Its output keeps the left side's event-time attribute;
  the right side's time columns are cast to plain TIMESTAMP (a sink refuses two).
"""

from __future__ import annotations

from relplan.backends.asof import EVENT, PREFIX, key_name, key_types, no_point
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import UnsupportedError
from relplan.ir.expr import Binary, Case, Cast, Column, Expr, Literal, Unary, and_all
from relplan.ir.schema import Field
from relplan.ir.nodes import AsOfJoin, Filter, Join, Node, Project, Source, Union, WindowAggregate
from relplan.ir.windows import Frame

VALID_FROM = "__rp_valid_from"  # a lookup table's computed event time (see the module's docstring)
VALID_FROM_TEXT = "1970-01-01 00:00:00.001"
_MATCHES = PREFIX + "matches"  # a lookup join's count of table rows per event


def _e(column: str) -> str:
    return f"{PREFIX}e_{column}"


def time_attribute(n: Node, column: str) -> bool:
    """Whether ``column`` of ``n``'s output is an event-time attribute in Flink streaming
    (a source's event time, carried through nodes that keep it as it is)."""
    while True:
        if isinstance(n, Source):
            return n.event_time == column
        if isinstance(n, (Filter, WindowAggregate)):
            if isinstance(n, WindowAggregate) and column not in n.input.schema:
                return False
            n = n.input
            continue
        if isinstance(n, Project):
            e = dict(n.exprs).get(column)
            if not isinstance(e, Column):
                return False
            n, column = n.input, e.name
            continue
        if isinstance(n, Union):
            return all(time_attribute(m, column) for m in n.members)
        if isinstance(n, AsOfJoin):
            if column != n.spine_time:
                return False
            n = n.spine
            continue
        if isinstance(n, Join) and (n.interval or n.lookup):
            if column not in n.left.schema:
                return False  # an interval join's right times are cast to plain TIMESTAMP
            n = n.left
            continue
        return False


def time_of(n: Node) -> str | None:
    """The column of ``n``'s output that is an event-time attribute, if one is."""
    return next((f.name for f in n.schema if f.dtype == T.Timestamp and time_attribute(n, f.name)), None)


def check_asof(n: AsOfJoin) -> None:
    """Refuse what the streaming as-of formulation cannot compute exactly, naming the node."""
    head = f"{n.kind} ({n.details()}) is not supported in Flink streaming mode"
    if not time_attribute(n.spine, n.spine_time):
        # Training data's spine is a table of inference times, not a stream.
        raise UnsupportedError(
            f"{head}: the spine time {n.spine_time!r} is not an event time Flink tracks (a source's event-time "
            "column, passed on unchanged); training data is computed over bounded tables: use mode='batch'"
        )
    for f, _ in n.windows:
        if not (f.upper == 0 and f.upper_inclusive):
            raise UnsupportedError(
                f"{head}: frame {f.describe()} does not end at the spine row's time, and a streaming OVER "
                "window ends at the current row; use frames ending at t (e.g. the lifetime (-inf, t]), or batch mode"
            )
    if not time_attribute(n.events, n.event_time):
        raise UnsupportedError(
            f"{head}: the events' time {n.event_time!r} is not an event time Flink tracks (a source's event-time "
            "column, passed on unchanged); use mode='batch'"
        )


def check_join(n: Join) -> None:
    head = f"{n.how} join ({n.details()}) is not supported in Flink streaming mode"
    if n.interval:
        assert n.left_time is not None and n.right_time is not None
        for name, side, what in ((n.left_time, n.left, "left"), (n.right_time, n.right, "right")):
            if not time_attribute(side, name):
                raise UnsupportedError(
                    f"{head}: Flink's interval join needs event times on both sides, and the {what} time {name!r} "
                    "is not one (a source's event-time column, passed on unchanged); use mode='batch'"
                )
        if n.before % 1000 or n.after % 1000:
            raise UnsupportedError(
                f"{head}: its bounds are not whole milliseconds, and Flink's event time has millisecond "
                "precision; round the bounds, or use mode='batch'"
            )
        return
    if n.lookup:
        if n.how not in ("inner", "left"):
            raise UnsupportedError(
                f"{head}: a {n.how} lookup join emits the table's unmatched rows, known only when the stream "
                "ends (an updating result); use an inner or left lookup join, or mode='batch'"
            )
        if time_of(n.left) is None:
            raise UnsupportedError(
                f"{head}: the left side has no event time Flink tracks, by which the table's rows are joined in "
                "order (a source's event-time column, passed on unchanged); use mode='batch'"
            )
        lookup_source(n)
        return
    if n.how != "inner":
        # Flink emits outer rows append-only only from an interval join (time bounds on
        # both sides: a row without a match is final once the watermark passes its
        # bound) or, here, a lookup join on a bounded table; a regular outer join
        # retracts an unmatched row when its match arrives.
        raise UnsupportedError(
            f"{head}: the join has no time bounds, so Flink runs it as a regular outer join, an updating result "
            "(an unmatched row is retracted when its match arrives later), which an append-only sink cannot "
            "take; only an interval join is append-only for outer joins, and it needs time bounds the join "
            "does not have. Use an interval join (left_time/right_time), a lookup join on a table with one "
            "row per key (lookup=True), an inner join, or batch mode"
        )


def lookup_source(n: Join) -> Source:
    """The source of a lookup join's table: its right side is the source, under filters
    and projections at most, bounded and without an event time of its own."""
    head = f"{n.how} lookup join ({n.details()}) is not supported in Flink streaming mode"
    m = n.right
    while isinstance(m, (Filter, Project)):
        m = m.input
    if not isinstance(m, Source):
        raise UnsupportedError(
            f"{head}: its table must be a source (filtered or projected at most), but is a {m.kind}; "
            "use mode='batch'"
        )
    if not m.bounded or m.event_time is not None:
        raise UnsupportedError(
            f"{head}: its table {m.name!r} must be bounded and without an event time (it is read whole before "
            "any event is joined); for a table of versions use a point-in-time join, or use mode='batch'"
        )
    if VALID_FROM in m.schema:
        raise UnsupportedError(f"{head}: its table {m.name!r} has a column named {VALID_FROM!r}, which relplan uses")
    return m


def with_valid_from(src: Source) -> Source:
    """A lookup table's source with its computed event time ``VALID_FROM``."""
    return Source(src.name, src.columns.extend([Field(VALID_FROM, T.Timestamp)]), VALID_FROM, 0, True, src.keys)


def _valid_from_chain(n: Node) -> Node:
    """The lookup table's subplan over its source with ``VALID_FROM``, which projections pass on."""
    if isinstance(n, Source):
        return with_valid_from(n)
    if isinstance(n, Filter):
        return Filter(_valid_from_chain(n.input), n.predicate)
    assert isinstance(n, Project)
    return Project(_valid_from_chain(n.input), (*n.exprs, (VALID_FROM, Column(VALID_FROM, T.Timestamp))))


def lookup_sources(nodes: list[Node]) -> set[str]:
    """Names of the sources read as lookup tables by streaming lookup joins among ``nodes``."""
    return {lookup_source(n).name for n in nodes if isinstance(n, Join) and n.lookup and not n.interval}


def asof_union_subplan(n: AsOfJoin, spine: Node, events: Node) -> Node:
    """``n`` (checked by ``check_asof``) as a UNION ALL of spine rows and events ordered
    by the spine's time column, OVER windows over the events, the spine rows kept."""
    ss, es = n.spine.schema, n.events.schema
    types = key_types(n)
    read: set[str] = set()
    for a in n.aggs:
        for e in (a.arg, a.filter):
            if e is not None:
                read |= e.columns()
    needed = [f.name for f in es if f.name in read]

    def event_value(c: str) -> Expr:
        # The events' time is an event-time attribute (TIMESTAMP(3)), the spine side's NULL a
        # TIMESTAMP(6): cast, or the UNION would be of unlike types.
        v: Expr = Column(c, es.dtype(c))
        return Cast(v, T.Timestamp) if c == n.event_time else v

    spine_side: list[tuple[str, Expr]] = [(f.name, Column(f.name, f.dtype)) for f in ss]
    spine_side += [(key_name(i), _as(Column(s, ss.dtype(s)), t)) for i, ((s, _), t) in enumerate(zip(n.on, types))]
    spine_side += [(_e(c), Literal(None, es.dtype(c))) for c in needed]
    spine_side += [(EVENT, Literal(False))]
    # An event's time goes in the spine's time column: the one order of the union, and an
    # event-time attribute on both sides, so it stays one through the UNION.
    event_side: list[tuple[str, Expr]] = [
        (f.name, Column(n.event_time, T.Timestamp) if f.name == n.spine_time else Literal(None, f.dtype)) for f in ss
    ]
    event_side += [(key_name(i), _as(Column(e, es.dtype(e)), t)) for i, ((_, e), t) in enumerate(zip(n.on, types))]
    event_side += [(_e(c), event_value(c)) for c in needed]
    event_side += [(EVENT, Literal(True))]
    rows = Union((Project(spine, tuple(spine_side)), Project(events, tuple(event_side))))
    is_event = Column(EVENT, T.Bool)
    order = Column(n.spine_time, T.Timestamp)

    def rename(e: Expr) -> Expr | None:
        return Column(_e(e.name), e.dtype) if isinstance(e, Column) else None

    def on_union(a: AggCall) -> AggCall:
        arg = a.arg.replace(rename) if a.arg is not None else None
        own = a.filter.replace(rename) if a.filter is not None else None
        filt = and_all([p for p in (is_event, own) if p is not None])
        return AggCall(a.func, arg, a.name, filt, order if a.order is not None else None)

    windows = tuple((frame, tuple(on_union(a) for a in aggs)) for frame, aggs in n.windows)
    computed = WindowAggregate(rows, tuple(key_name(i) for i in range(len(n.on))), n.spine_time, windows)
    spine_rows = Filter(computed, Unary("NOT", is_event))
    guard = no_point(n)
    out: list[tuple[str, Expr]] = [(f.name, Column(f.name, f.dtype)) for f in ss]
    out += [(a.name, Case(((guard, Literal(None, a.dtype)),), Column(a.name, a.dtype))) for a in n.aggs]
    return Project(spine_rows, tuple(out))


def lookup_subplan(n: Join, left: Node) -> Node:
    """A lookup join (checked by ``check_join``) over ``left`` (a node with the left side's
    schema) as the point-in-time enrichment of the left rows by the table's rows, each
    valid from ``VALID_FROM`` on; ``n.right`` is lowered again over that source."""
    table = _valid_from_chain(n.right)
    time = time_of(n.left)
    assert time is not None
    order = Column(VALID_FROM, T.Timestamp)
    rs = n.right.schema
    aggs = tuple(AggCall("last", Column(f.name, f.dtype), f.name, None, order) for f in rs)
    aggs += (AggCall("count", None, _MATCHES),)
    enriched: Node = AsOfJoin(left, table, n.on, time, VALID_FROM, ((Frame(None), aggs),))
    enriched = asof_union_subplan(enriched, left, table)  # type: ignore[arg-type]
    if n.how == "inner":
        enriched = Filter(enriched, Binary(">", Column(_MATCHES, T.Int64), Literal(0)))
    return Project(enriched, tuple((f.name, Column(f.name, f.dtype)) for f in n.schema))


def _as(e: Expr, t: T.DataType) -> Expr:
    return e if e.dtype == t else Cast(e, t)


__all__ = [
    "VALID_FROM", "VALID_FROM_TEXT", "asof_union_subplan", "check_asof", "check_join", "lookup_source",
    "lookup_sources", "lookup_subplan", "time_attribute", "time_of", "with_valid_from",
]
