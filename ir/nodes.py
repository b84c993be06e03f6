"""Plan nodes: immutable, hashable, typed; each validates itself and knows its schema.

Nodes compare by value, so equal subplans are equal keys in a dict (common
subplans and window sharing are look-ups). A node's hash is computed once at
construction from its already-hashed inputs, so deep plans hash in O(1).

Null keys are no entity: ``Aggregate`` and ``TimeWindowAggregate`` drop rows with
a NULL grouping key, and ``WindowAggregate`` gives every aggregate NULL on rows
whose partition key is NULL.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import SchemaError, TypeMismatchError
from relplan.ir.expr import Column, Expr, check_bound
from relplan.ir.schema import Field, Schema
from relplan.ir.windows import Frame, TimeWindow, format_duration


class Node:
    """Base of plan nodes. Subclasses are frozen slotted dataclasses built with ``eq=False``."""

    __slots__ = ("_hash", "schema")
    schema: Schema
    kind: ClassVar[str] = "Node"

    @property
    def inputs(self) -> tuple[Node, ...]:
        return ()

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return self

    def _values(self) -> tuple[Any, ...]:
        get = _FIELD_GETTERS.get(type(self))
        if get is None:  # dataclasses.fields() per call was a tenth of building a node
            names = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
            one = operator.attrgetter(*names)
            get = _FIELD_GETTERS[type(self)] = one if len(names) > 1 else lambda n: (one(n),)
        return get(self)  # type: ignore[no-any-return]

    def _finish(self, schema: Schema) -> None:
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "_hash", hash((type(self).__name__, self._values())))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(self) is not type(other) or self._hash != other._hash:  # type: ignore[attr-defined]
            return False
        # Iterative over inputs: two equal plans of a thousand stacked features are
        # deeper than Python's recursion limit; pairs already compared are skipped,
        # so equal DAGs with shared subplans are compared in linear time.
        stack: list[tuple[Node, Node]] = [(self, other)]  # type: ignore[list-item]
        seen: set[tuple[int, int]] = set()
        while stack:
            a, b = stack.pop()
            if a is b or (id(a), id(b)) in seen:
                continue
            if type(a) is not type(b) or a._hash != b._hash:  # type: ignore[attr-defined]
                return False
            seen.add((id(a), id(b)))
            if a._own_values() != b._own_values():
                return False
            ins_a, ins_b = a.inputs, b.inputs
            if len(ins_a) != len(ins_b):
                return False
            stack.extend(zip(ins_a, ins_b))
        return True

    def _own_values(self) -> tuple[Any, ...]:
        """The field values with inputs left out (they are compared separately)."""
        return tuple(
            None if isinstance(v, Node) or (isinstance(v, tuple) and v and isinstance(v[0], Node)) else v
            for v in self._values()
        )

    def details(self) -> str:
        """One-line description used by explain()."""
        return ""

    def replace_fields(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


_FIELD_GETTERS: dict[type, Callable[[Node], tuple[Any, ...]]] = {}  # a node's field values, in order


def node(cls: type) -> type:
    return dataclass(frozen=True, slots=True, eq=False, repr=True)(cls)


def _check_keys(keys: tuple[str, ...], schema: Schema, what: str) -> None:
    for k in keys:
        schema.field(k, context=f"in {what} keys")


def _agg_fields(aggs: tuple[AggCall, ...], schema: Schema, what: str) -> list[Field]:
    out = []
    for a in aggs:
        for e in a.expressions():
            check_bound(e, schema, context=f"in aggregate {a.name!r} of {what}")
        out.append(Field(a.name, a.dtype))
    return out


def _check_key_pairs(on: tuple[tuple[str, str], ...], ls: Schema, rs: Schema, what: str, left: str, right: str) -> None:
    """At least one pair; each pair's columns exist on their side and compare."""
    if not on:
        raise SchemaError(f"a {what} needs at least one pair of key columns")
    for lk, rk in on:
        lt = ls.field(lk, context=f"({left} key)").dtype
        rt = rs.field(rk, context=f"({right} key)").dtype
        if T.common_type(lt, rt) is None:
            raise TypeMismatchError(f"{left} key {lk!r} ({lt}) and {right} key {rk!r} ({rt}) have incompatible types")


def _check_windows(windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...], what: str) -> None:
    """``windows`` groups aggregates by frame: at least one each, no frame twice."""
    if not windows or any(not aggs for _, aggs in windows):
        raise SchemaError(f"a {what} needs at least one aggregate per frame")
    frames = [f for f, _ in windows]
    if len(set(frames)) != len(frames):
        raise SchemaError(f"a {what} lists a frame twice; group its aggregates instead")


class _Framed:
    """The aggregates of a node holding ``windows``: (frame, aggregates) groups."""

    __slots__ = ()
    windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...]

    @property
    def aggs(self) -> tuple[AggCall, ...]:
        """Every aggregate, in output order."""
        return tuple(a for _, aggs in self.windows for a in aggs)

    @property
    def calls(self) -> tuple[tuple[Frame, AggCall], ...]:
        """Every (frame, aggregate) pair, in output order."""
        return tuple((f, a) for f, aggs in self.windows for a in aggs)


@node
class Source(Node):
    """A named input: a table (bounded) or a stream (unbounded) with event time."""

    kind: ClassVar[str] = "Source"
    name: str
    columns: Schema
    event_time: str | None = None
    lateness: int = 0  # allowed lateness of events, microseconds
    bounded: bool = True
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.event_time is not None:
            f = self.columns.field(self.event_time, context=f"(event time of source {self.name!r})")
            if f.dtype != T.Timestamp:
                raise SchemaError(
                    f"event-time column {self.event_time!r} of source {self.name!r} is {f.dtype}, not Timestamp"
                )
        _check_keys(self.keys, self.columns, f"source {self.name!r} entity")
        if self.lateness < 0:
            raise SchemaError(f"allowed lateness of source {self.name!r} must not be negative")
        self._finish(self.columns)

    def details(self) -> str:
        parts = [self.name]
        if self.event_time:
            parts.append(f"event_time={self.event_time}")
            if self.lateness:
                parts.append(f"lateness={format_duration(self.lateness)}")
        if self.keys:
            parts.append(f"keys=[{', '.join(self.keys)}]")
        parts.append("bounded" if self.bounded else "unbounded")
        return " ".join(parts)


@node
class Filter(Node):
    kind: ClassVar[str] = "Filter"
    input: Node
    predicate: Expr

    def __post_init__(self) -> None:
        check_bound(self.predicate, self.input.schema, context="in filter")
        if self.predicate.dtype != T.Bool:
            raise TypeMismatchError(
                f"filter must be boolean, but {self.predicate.sql()} is {self.predicate.dtype}"
            )
        self._finish(self.input.schema)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Filter(inputs[0], self.predicate)

    def details(self) -> str:
        return self.predicate.sql()


@node
class Project(Node):
    """Computes named expressions; the output has exactly these columns, in order."""

    kind: ClassVar[str] = "Project"
    input: Node
    exprs: tuple[tuple[str, Expr], ...]

    def __post_init__(self) -> None:
        s = self.input.schema
        # A column read as it is (most of a wide projection) checked by one look-up;
        # where one fails, every expression is checked in order (the first error raised).
        if not s.has_all((e.name, e.dtype) for _, e in self.exprs if type(e) is Column and e.dtype is not None):
            for name, e in self.exprs:
                check_bound(e, s, context=f"in projection of {name!r}")
        for name, e in self.exprs:
            if type(e) is not Column or e.dtype is None:
                check_bound(e, s, context=f"in projection of {name!r}")
        self._finish(Schema(tuple(Field(n, e.dtype) for n, e in self.exprs)))

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Project(inputs[0], self.exprs)

    def details(self) -> str:
        from relplan.ir.expr import Column

        return ", ".join(
            n if isinstance(e, Column) and e.name == n else f"{n} := {e.sql()}" for n, e in self.exprs
        )


@node
class Aggregate(Node):
    """GROUP BY keys; rows with a NULL key are dropped. Output: keys, then aggregates."""

    kind: ClassVar[str] = "Aggregate"
    input: Node
    keys: tuple[str, ...]
    aggs: tuple[AggCall, ...]

    def __post_init__(self) -> None:
        s = self.input.schema
        _check_keys(self.keys, s, "aggregate")
        fields = [s.field(k) for k in self.keys] + _agg_fields(self.aggs, s, "aggregate")
        self._finish(Schema(tuple(fields)))

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Aggregate(inputs[0], self.keys, self.aggs)

    def details(self) -> str:
        return f"keys=[{', '.join(self.keys)}] " + _aggs_text(self.aggs)


@node
class WindowAggregate(_Framed, Node):
    """Per-row aggregates over frames of event time (the OVER form).

    Output: every input row and column, plus one column per aggregate holding the
    aggregate over the rows of the same partition whose ``order`` lies in that
    aggregate's frame around the row. Rows tied on ``order`` are peers: they see
    each other. ``windows`` groups the aggregates by frame, so one node computes
    every window over the same partition and order, whatever the frames.
    """

    kind: ClassVar[str] = "WindowAggregate"
    input: Node
    keys: tuple[str, ...]
    order: str
    windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...]

    @classmethod
    def of(cls, input: Node, keys: tuple[str, ...], order: str, frame: Frame, aggs: tuple[AggCall, ...]) -> WindowAggregate:
        """A window aggregate with one frame."""
        return cls(input, keys, order, ((frame, aggs),))

    def __post_init__(self) -> None:
        s = self.input.schema
        # The same windows checked before (the very tuple: a node rebuilt over a new
        # input, a feature compiled again): only what they read of the input is checked
        # again, the columns and types the checks below would look up.
        known = _CHECKED_WINDOWS.get(id(self.windows))
        if known is not None and known[0] is self.windows and known[1] == self.keys and known[2] == self.order:
            if s.has_all(known[3]):
                self._finish(s.extend(known[4]))
                return
        # What the checks below look up in the input: the partition keys, the order
        # (a Timestamp), each column the aggregates read (with its type).
        reads = [(k, None) for k in self.keys] + [(self.order, T.Timestamp)]
        reads += [(e.name, e.dtype) for a in self.aggs for x in a.expressions() for e in x.walk() if isinstance(e, Column)]
        if any(t is None for _, t in reads[len(self.keys):]) or not s.has_all(reads):
            # (None means "any type" to has_all: no column is untyped, but if one were)
            _check_keys(self.keys, s, "window partition")
            if s.field(self.order, context="(window order)").dtype != T.Timestamp:
                raise TypeMismatchError(f"window order column {self.order!r} must be a Timestamp")
            _check_windows(self.windows, "window aggregate")
            self._finish(s.extend(_agg_fields(self.aggs, s, "window")))
            return
        # The input has them all: the checks of keys, order and aggregates pass; those
        # of the windows themselves are left, the first to fail as they come.
        _check_windows(self.windows, "window aggregate")
        fields = tuple(Field(a.name, a.dtype) for a in self.aggs)
        self._finish(s.extend(fields))
        if len(_CHECKED_WINDOWS) >= _CHECKED_MAX:
            _CHECKED_WINDOWS.clear()  # (one operation: safe for threads building nodes at once)
        _CHECKED_WINDOWS[id(self.windows)] = (self.windows, self.keys, self.order, tuple(reads), fields)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return WindowAggregate(inputs[0], self.keys, self.order, self.windows)

    def details(self) -> str:
        head = f"partition=[{', '.join(self.keys)}] order={self.order} "
        if len(self.windows) == 1:
            frame, aggs = self.windows[0]
            return head + f"frame={frame.describe()} " + _aggs_text(aggs)
        return head + "frames=[" + "; ".join(f"{f.describe()} {_aggs_text(a)}" for f, a in self.windows) + "]"


# Windows checked by WindowAggregate by id (the entry holds the tuple, so its id is not
# reused while there): (windows, keys, order, (column, type or None) read, fields added).
_CHECKED_WINDOWS: dict[int, tuple[Any, ...]] = {}
_CHECKED_MAX = 100_000

WINDOW_START = "window_start"
WINDOW_END = "window_end"


@node
class TimeWindowAggregate(Node):
    """One row per key and window (tumble or hop), the window-TVF form.

    Output: keys, window_start, window_end, then aggregates. A window exists for
    a key only if at least one input row of that key falls in it.
    """

    kind: ClassVar[str] = "TimeWindowAggregate"
    input: Node
    keys: tuple[str, ...]
    time: str
    window: TimeWindow
    aggs: tuple[AggCall, ...]

    def __post_init__(self) -> None:
        s = self.input.schema
        _check_keys(self.keys, s, "window group")
        if s.field(self.time, context="(window time)").dtype != T.Timestamp:
            raise TypeMismatchError(f"window time column {self.time!r} must be a Timestamp")
        fields = (
            [s.field(k) for k in self.keys]
            + [Field(WINDOW_START, T.Timestamp), Field(WINDOW_END, T.Timestamp)]
            + _agg_fields(self.aggs, s, "time window")
        )
        self._finish(Schema(tuple(fields)))

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return TimeWindowAggregate(inputs[0], self.keys, self.time, self.window, self.aggs)

    def details(self) -> str:
        return (
            f"keys=[{', '.join(self.keys)}] time={self.time} {self.window.describe()} "
            + _aggs_text(self.aggs)
        )


JOIN_KINDS = ("inner", "left", "right", "full")


@node
class Join(Node):
    """Equi-join; output is the left columns then the right ones (names must differ).

    NULL keys never match, as in SQL.

    An **interval join** (``left_time``/``right_time`` set) also needs the right row's
    time within the left row's: ``left_time - before <= right_time <= left_time + after``,
    both bounds inclusive (Flink's interval join, SQL's BETWEEN); a NULL time matches
    nothing. ``before``/``after`` are microseconds, ``-before <= after``.

    ``lookup=True`` declares the right side a lookup table: at most one row per ``on``
    key, so the join never repeats a left row. The run checks it on the right side's
    table before any engine starts (a ``DataError`` names the table, the key and a
    duplicated value) rather than let a duplicate silently multiply rows.
    """

    kind: ClassVar[str] = "Join"
    left: Node
    right: Node
    how: str
    on: tuple[tuple[str, str], ...]
    left_time: str | None = None
    right_time: str | None = None
    before: int = 0
    after: int = 0
    lookup: bool = False

    def __post_init__(self) -> None:
        if self.how not in JOIN_KINDS:
            raise SchemaError(f"unknown join kind {self.how!r}; use one of {', '.join(JOIN_KINDS)}")
        ls, rs = self.left.schema, self.right.schema
        _check_key_pairs(self.on, ls, rs, "join", "left join", "right join")
        clash = set(ls.names) & set(rs.names)
        if clash:
            raise SchemaError(f"join sides share column names {sorted(clash)}; rename one side first")
        if (self.left_time is None) != (self.right_time is None):
            raise SchemaError("an interval join takes both a left and a right time column")
        if self.left_time is not None:
            for name, schema, what in ((self.left_time, ls, "left"), (self.right_time, rs, "right")):
                if schema.field(name, context=f"({what} time of the interval join)").dtype != T.Timestamp:  # type: ignore[arg-type]
                    raise TypeMismatchError(f"{what} time column {name!r} of an interval join must be a Timestamp")
            if -self.before > self.after:
                raise SchemaError(
                    f"interval join bounds are empty: the right time must lie in "
                    f"[left - {format_duration(self.before)}, left + {format_duration(self.after)}]"
                )
        elif self.before or self.after:
            raise SchemaError("interval bounds (before/after) need left_time and right_time")
        self._finish(Schema(ls.fields + rs.fields))

    @property
    def interval(self) -> bool:
        return self.left_time is not None

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Join(inputs[0], inputs[1], self.how, self.on, self.left_time, self.right_time, self.before, self.after, self.lookup)

    def details(self) -> str:
        text = f"{self.how} on " + ", ".join(f"{left} = {right}" for left, right in self.on)
        if self.left_time is not None:
            text += f" within {self.right_time} in [{self.left_time} - {_signed(self.before)}, {self.left_time} + {_signed(self.after)}]"
        if self.lookup:
            text += " lookup"
        return text


def _signed(us: int) -> str:
    return format_duration(us) if us > 0 else ("0s" if us == 0 else "-" + format_duration(-us))


@node
class Union(Node):
    """UNION ALL of inputs with identical schemas."""

    kind: ClassVar[str] = "Union"
    members: tuple[Node, ...]

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise SchemaError("a union needs at least two inputs")
        first = self.members[0].schema
        for m in self.members[1:]:
            if m.schema != first:
                raise SchemaError(f"union inputs differ: {first!r} vs {m.schema!r}")
        self._finish(first)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return self.members

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Union(tuple(inputs))


ASOF_LOWERINGS = ("asof", "range_join", "tiles", "union")


@node
class AsOfJoin(_Framed, Node):
    """Point-in-time join: every spine row, plus aggregates of its key's events as of its time.

    Output: exactly the spine's rows (none dropped, none repeated) and columns, plus
    one column per aggregate. An aggregate in frame ``f`` of a spine row at time t
    is computed over the events whose ``on`` keys equal the row's and whose
    ``event_time`` lies in ``f`` around t (``t - lower <(=) event_time <(=) t - upper``,
    as in WindowAggregate). The aggregates read the events' columns. A spine row
    with a NULL key or a NULL time is no point: every aggregate is NULL (a count
    too); a key with no events gets each aggregate's value over no rows (count 0).
    Events with a NULL key or time are in no frame.

    ``row_id`` names a spine column unique per row, for lowerings that group by spine
    row. ``lowering`` is a physical choice, not a meaning (explain shows it; the
    ``choose_asof_lowering`` rule sets it): ``asof`` takes the newest event per key
    (DuckDB's ASOF JOIN; only for last() over frames ending at t), ``range_join``
    joins each spine row to its key's events in the widest frame and groups by row,
    ``tiles`` combines partial aggregates over whole ``tile``-sized tiles of the
    frame with the raw events of its head and tail tiles, ``union`` sorts spine rows
    in among the events and computes window functions. Engines without a lowering
    use ``union``.

    ``unique_times`` and ``no_nulls`` are physical properties of the events, known
    (declared in statistics, or proven on the very tables of a run), never meanings:
    no two events share a key and a time, and no aggregate's argument is NULL on an
    event in a frame. With both, the newest event of a key is every last()'s answer,
    so the ``asof`` lowering joins once for all of them.
    """

    kind: ClassVar[str] = "AsOfJoin"
    spine: Node
    events: Node
    on: tuple[tuple[str, str], ...]
    spine_time: str
    event_time: str
    windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...]
    row_id: str | None = None
    lowering: str | None = None
    tile: int | None = None  # microseconds; the tiles lowering's tile size
    estimates: tuple[tuple[str, float], ...] = ()  # the chooser's estimates, seconds (explain shows them)
    unique_times: bool = False  # declared: no two events share a key and a time (no ties to settle)
    no_nulls: bool = False  # declared or checked: no aggregate's argument is NULL on an event (in a frame)

    def __post_init__(self) -> None:
        ss, es = self.spine.schema, self.events.schema
        if (self.lowering == "tiles") != (self.tile is not None):
            raise SchemaError("the tiles lowering of a point-in-time join takes a tile size, and only it")
        _check_key_pairs(self.on, ss, es, "point-in-time join", "spine", "event")
        for name, schema, what in ((self.spine_time, ss, "spine"), (self.event_time, es, "event")):
            if schema.field(name, context=f"({what} time)").dtype != T.Timestamp:
                raise TypeMismatchError(f"{what} time column {name!r} must be a Timestamp")
        if self.row_id is not None:
            ss.field(self.row_id, context="(spine row id)")
        if self.lowering is not None and self.lowering not in ASOF_LOWERINGS:
            raise SchemaError(f"unknown point-in-time lowering {self.lowering!r}; use one of {', '.join(ASOF_LOWERINGS)}")
        _check_windows(self.windows, "point-in-time join")
        added = _agg_fields(self.aggs, es, "point-in-time join")
        clash = sorted(f.name for f in added if f.name in ss)
        if clash:
            raise SchemaError(f"point-in-time features {clash} have the names of spine columns; rename them")
        self._finish(ss.extend(added))

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.spine, self.events)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return dataclasses.replace(self, spine=inputs[0], events=inputs[1])

    def details(self) -> str:
        on = ", ".join(f"{s} = {e}" for s, e in self.on)
        head = f"on {on} time={self.spine_time} event_time={self.event_time}"
        if self.lowering:
            head += f" lowering={self.lowering}"
        if self.tile is not None:
            head += f" tiles={format_duration(self.tile)}"
        if self.unique_times:
            head += " unique_times"
        if self.no_nulls:
            head += " no_nulls"
        if self.estimates:
            head += " estimates=[" + ", ".join(f"{k} {_seconds(v)}" for k, v in self.estimates) + "]"
        return head + " frames=[" + "; ".join(f"{f.describe()} {_aggs_text(a)}" for f, a in self.windows) + "]"


@node
class Sink(Node):
    """A named output of a plan."""

    kind: ClassVar[str] = "Sink"
    input: Node
    name: str

    def __post_init__(self) -> None:
        self._finish(self.input.schema)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)

    def with_inputs(self, inputs: tuple[Node, ...]) -> Node:
        return Sink(inputs[0], self.name)

    def details(self) -> str:
        return self.name


def _seconds(v: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6)):
        if v * scale >= 1:
            return f"{v * scale:.3g}{unit}"
    return f"{v * 1e9:.3g}ns"


def _aggs_text(aggs: tuple[AggCall, ...]) -> str:
    return "aggs=[" + ", ".join(f"{a.name} := {a.sql()}" for a in aggs) + "]"
