"""Features written in SQL: each aggregate column of a window query is one ``rp.Feature``.

    feats = rp.sql_features(\"\"\"
        SELECT account_id, ts,
               COUNT(*) OVER (PARTITION BY account_id ORDER BY ts
                              RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS failed_1d
        FROM Transactions WHERE status = 'failed'
    \"\"\", sources=[Transactions], dialect="flink")

The query is read in the feature shape and nothing else:

- per event: ``SELECT <columns>, AGG(x) [FILTER (WHERE ...)] OVER (PARTITION BY <keys>
  ORDER BY <event time> [frame]) AS name, ... FROM <source> [WHERE <mask>]``, with the
  frame ``RANGE BETWEEN INTERVAL w PRECEDING AND CURRENT ROW`` (``rp.sliding(w,
  closed="both")``: SQL's frame holds the row exactly w earlier), ``RANGE BETWEEN
  UNBOUNDED PRECEDING AND CURRENT ROW`` or none (``rp.lifetime()``); a named
  ``WINDOW w AS (...)`` clause is read too;
- per window: ``SELECT <keys>, window_start, AGG(x) AS name, ... FROM TABLE(TUMBLE(...))``
  or ``HOP(...)`` (Flink) ``GROUP BY <keys>, window_start, window_end``, Spark's
  ``GROUP BY <keys>, window(<event time>, '1 hour'[, '10 minutes'])`` or DuckDB's
  ``GROUP BY <keys>, time_bucket(INTERVAL w, <event time>)``: ``rp.tumbling`` or
  ``rp.hopping``.

Each feature is built as the DSL builds its own (a ``FeatureBody`` of the source class,
keys, window, mask and aggregate), so it compiles, shares windows, places, trains and
serves exactly as its DSL twin does. As every feature, its entity key NULL means no
entity: rows with a NULL key are in no group (``rp.sql`` keeps SQL's NULL groups).
Anything else is an ``UnsupportedError`` naming the construct, its line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlglot import exp

from relplan.compiler.dsl import FeatureBody
from relplan.compiler.location import user_location
from relplan.compiler.source import Source as SourceClass
from relplan.compiler.sql import _relocated
from relplan.compiler.sql import emitted
from relplan.compiler.sql.expressions import Located, _head, fail
from relplan.compiler.sql.query import (
    Context,
    _fname,
    Rel,
    Stage,
    _frame,
    _lookup,
    _refused_over,
    _scalar,
    _table,
    has_aggregate,
    is_aggregate,
)
from relplan.compiler.sql.reader import check_dialect, read_query
from relplan.compiler.transformation import Feature, Tags, _metadata
from relplan.compiler.windowspec import WindowSpec
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import FeatureError, RelplanError, SchemaError, SqlError, UnsupportedError
from relplan.ir.expr import Column, Expr, and_all
from relplan.ir.nodes import WINDOW_END, WINDOW_START, Source

__all__ = ["sql_feature", "sql_features"]

#: What every refusal ends with: the general front end reads what this one does not.
GENERAL = "use rp.sql for a general query"
TRANSFORMATION = "sql"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql_features(
    query: str,
    sources: Iterable[Any] = (),
    *,
    dialect: str = "duckdb",
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> list[Feature]:
    """The features of a window query over one source: one per aggregate column, named
    by its alias (``AS name``), in the order of the SELECT list.

    ``sources``: ``rp.Source`` classes; the query names one by its source name.
    ``description`` (default: the feature's own SQL), ``owner`` and ``tags`` are the
    catalog's metadata, as for a DSL feature."""
    where = user_location()
    dialect = check_dialect(dialect)
    classes = _source_classes(sources)
    meta = _metadata({"description": description, "owner": owner, "tags": tags}, where=where)
    nodes = {name: cls.node() for name, cls in classes.items()}
    try:
        specs = read_query(query, dialect, lambda tree: _read(tree, Context(dialect, nodes), classes, _Text(query, dialect)))
    except Located as e:
        raise _relocated(e, query) from None
    except RecursionError:
        raise SqlError("the SQL is nested too deeply to compile; split it") from None
    out: list[Feature] = []
    seen: dict[str, str] = {}
    for spec in specs:
        defined_at = f"sql:{dialect} {spec.position}"
        if spec.name in seen:
            raise FeatureError(
                f"two features are named {spec.name!r} (at {seen[spec.name]} and {spec.position} of the SQL); "
                "give one another alias",
                where=where,
            )
        seen[spec.name] = spec.position
        body = FeatureBody(spec.source, spec.keys, spec.window, spec.mask, ((None, spec.call),), defined_at)
        text = meta.get("description") or f"{spec.text} ({dialect} SQL)"
        out.append(Feature(spec.name, TRANSFORMATION, body, defined_at, where, text, meta.get("owner"), meta.get("tags", ())))
    return out


def sql_feature(
    query: str,
    sources: Iterable[Any] = (),
    *,
    dialect: str = "duckdb",
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> Feature:
    """The one feature of a window query with exactly one aggregate column (see ``sql_features``)."""
    feats = sql_features(query, sources, dialect=dialect, description=description, owner=owner, tags=tags)
    if len(feats) != 1:
        raise FeatureError(
            f"rp.sql_feature takes a query with one aggregate column; this one has {len(feats)} "
            f"({', '.join(f.name for f in feats)}): use rp.sql_features",
            where=user_location(),
        )
    return feats[0]


# ---- reading the query ------------------------------------------------------------------


class _Spec:
    """One aggregate column, read: what its Feature is built from."""

    __slots__ = ("call", "keys", "mask", "name", "position", "source", "text", "window")

    def __init__(
        self, name: str, source: type[SourceClass], keys: tuple[tuple[str, Expr], ...], window: WindowSpec,
        mask: Expr | None, call: AggCall, position: str, text: str,
    ) -> None:
        self.name, self.source, self.keys, self.window = name, source, keys, window
        self.mask, self.call, self.position, self.text = mask, call, position, text


def _source_classes(sources: Iterable[Any]) -> dict[str, type[SourceClass]]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
        raise SchemaError(f"sources= takes a list of rp.Source classes, got {sources!r}")
    out: dict[str, type[SourceClass]] = {}
    for s in sources:
        if not (isinstance(s, type) and issubclass(s, SourceClass)):
            raise SchemaError(
                f"sources= takes rp.Source classes (a feature is built over its source's class); {s!r} is not one"
            )
        name = s.source_name
        if name in out and out[name] is not s:
            raise SchemaError(f"two different sources are named {name!r}")
        out[name] = s
    return out


def _refuse(what: str, node: exp.Expression) -> Located:
    return fail(UnsupportedError, f"{what} is not a feature relplan reads from SQL; {GENERAL}", node)


def _read(q: exp.Expression, ctx: Context, classes: dict[str, type[SourceClass]], text: _Text) -> list[_Spec]:
    if q.args.get("with_") or q.args.get("with"):
        raise _refuse("a query with WITH (a CTE)", q.args.get("with_") or q.args["with"])
    if not isinstance(q, exp.Select):
        raise _refuse(f"a {q.key.upper()} query (a feature is one SELECT over one source)", q)
    for key, what in (("order", "ORDER BY"), ("limit", "LIMIT"), ("offset", "OFFSET"), ("qualify", "QUALIFY"),
                      ("distinct", "SELECT DISTINCT"), ("laterals", "LATERAL"), ("having", "HAVING"),
                      ("joins", "a JOIN (a SQL feature reads one source; join in the DSL with merge/merge_asof)")):
        value = q.args.get(key)
        if value:
            node = value if isinstance(value, exp.Expression) else value[0] if isinstance(value, list) else q
            raise _refuse(f"a query with {what}", node)
    from_ = q.args.get("from_") or q.args.get("from")
    if from_ is None:
        raise _refuse("a query without FROM", q)
    t = from_.this
    if not isinstance(t, exp.Table):
        raise _refuse(f"FROM {t.sql(dialect=ctx.dialect)} (a feature reads one source by name)", t)
    rel = _table(t, ctx)
    src = rel.node
    if not isinstance(src, Source):
        raise _refuse(f"FROM {t.sql(dialect=ctx.dialect)} (a feature reads one source by name)", t)
    cls = classes[src.name]
    if src.event_time is None:
        raise fail(SchemaError, f"source {src.name} has no event-time column, so no feature can be windowed over it", t)
    where = q.args.get("where")
    mask = None
    if where is not None:
        if has_aggregate(where.this):
            raise fail(SchemaError, "an aggregate in WHERE", where)
        mask = _scalar(where.this, rel, ctx)
    where_text = "" if where is None else f" {where.sql(dialect=ctx.dialect)}"
    group = q.args.get("group")
    items = list(q.expressions)
    if group is not None or rel.window is not None or any(_aggregates_outside_windows(e) for e in items):
        return _per_window(q, ctx, rel, cls, mask, where_text, text)
    return _per_event(q, ctx, rel, cls, mask, where_text, text)


def _aggregates_outside_windows(item: exp.Expression) -> bool:
    """``has_aggregate`` of a SELECT item, answered at once for ``AGG(...) OVER w AS name``
    (a thousand features are a thousand such items)."""
    target = item.this if isinstance(item, exp.Alias) else item
    if isinstance(target, exp.Window) and not target.args.get("partition_by"):
        return False
    return has_aggregate(item)


def _alias(item: exp.Expression) -> tuple[str | None, exp.Expression]:
    if isinstance(item, exp.Alias):
        return item.alias, item.this
    return None, item


_CAST_BEFORE = re.compile(r"CAST\s*\(\s*$", re.IGNORECASE)


class _Text:
    """The query's text: where a SELECT item is, and its own words (sliced, not regenerated:
    sqlglot's generator copies the tree first, which would cost more than all the rest)."""

    def __init__(self, text: str, dialect: str) -> None:
        self.text = text
        self.dialect = dialect
        self._at = (0, 1)  # (offset, its line): items come in order, so lines are counted on from the last

    def _line(self, offset: int) -> int:
        at, line = self._at
        if offset < at:
            at, line = 0, 1
        line += self.text.count("\n", at, offset)
        self._at = (offset, line)
        return line

    def item(self, node: exp.Expression, first: exp.Expression) -> tuple[str, str]:
        """(``line L``, the item's text) of a SELECT item ``AGG(...) ... AS name``: from the
        first token of ``first`` (its aggregate, which comes first) to its last (the name).
        Any parser records where a function's name and an identifier are, so the aggregate
        and the alias say it; the walks over the item are for other shapes."""
        head = first.this if isinstance(first, exp.Filter) else first
        cast = isinstance(head, exp.Cast)  # where CAST( is no parser records (the locating one: its type)
        start = None if cast else (head._meta or {}).get("start")
        if start is None:
            for n in first.walk():
                m = n._meta
                if m and "start" in m and (start is None or m["start"] < start):
                    start = m["start"]
            if start is not None and cast:
                before = _CAST_BEFORE.search(self.text, max(0, start - 100), start)
                start = before.start() if before else start
        name = node.args.get("alias") if isinstance(node, exp.Alias) else None
        end = (name._meta or {}).get("end") if isinstance(name, exp.Identifier) else None
        if end is None:  # the item's last token: its name (recorded on identifiers by any parser)
            for n in node.walk():
                m = n._meta
                if m and "end" in m and (end is None or m["end"] > end):
                    end = m["end"]
        if start is None or end is None or end < start:
            return "the query", node.sql(dialect=self.dialect)
        return f"line {self._line(start)}", " ".join(self.text[start : end + 1].split())


def _name(alias: str | None, item: exp.Expression, ctx: Context) -> str:
    if alias is None:
        raise fail(FeatureError, f"name the feature {_head(item.sql(dialect=ctx.dialect))} with AS <name>", item)
    if not _NAME.match(alias):
        raise fail(FeatureError, f"feature name {alias!r} must be an identifier (letters, digits, _)", item)
    return alias


def _plain_column(target: exp.Expression, rel: Rel, ctx: Context, allowed: set[str] | None) -> bool:
    """Whether a SELECT item is a plain column (or ``*``), which a feature's rows carry anyway."""
    if isinstance(target, exp.Star) or (isinstance(target, exp.Column) and isinstance(target.this, exp.Star)):
        return allowed is None
    if not isinstance(target, exp.Column):
        return False
    if allowed is not None:
        if target.name in (WINDOW_START, WINDOW_END) and rel.window is not None:
            return True
        col = _lookup(rel, target, ctx)
        if col.name not in allowed:
            raise fail(
                SchemaError,
                f"column {target.sql(dialect=ctx.dialect)} must appear in GROUP BY or be used in an aggregate function",
                target,
            )
        return True
    _lookup(rel, target, ctx)
    return True


def _call(n: exp.Expression, stage: Stage, rel: Rel, ctx: Context, over_window: bool) -> tuple[AggCall, Expr | None]:
    """The aggregate of a SQL call (named ``_``, as the DSL's) and its FILTER condition."""
    parts = stage._agg_call(n, rel)  # (func, arg, filter[, first/last's time order])
    func, arg, filt = parts[0], parts[1], parts[2]
    order = parts[3] if len(parts) > 3 else None
    src = rel.node
    if order is not None and (not isinstance(src, Source) or order.name != src.event_time):
        raise _refuse(f"{_fname(n)}() ordered by {order.name} (a feature's first/last are by its event time)", n)
    if func == "mean" and ctx.dialect == "flink" and arg is not None and arg.dtype == T.Int64:
        raise fail(
            UnsupportedError,
            "AVG of a BIGINT is a truncated BIGINT in Flink, which no feature aggregate computes; "
            "cast the argument to DOUBLE",
            n,
        )
    try:
        return AggCall(func, arg, "_", order=order), filt
    except RelplanError as e:
        raise fail(SchemaError, e.message, n) from None


# ---- per event: AGG(...) OVER (...) ----------------------------------------------------


def _per_event(
    q: exp.Select, ctx: Context, rel: Rel, cls: type[SourceClass], mask: Expr | None, where_text: str, text: _Text
) -> list[_Spec]:
    src = rel.node
    assert isinstance(src, Source) and src.event_time is not None
    named: dict[str, exp.Window] = {}
    for w in q.args.get("windows") or []:
        named[w.name] = w
    windows: dict[str, tuple[tuple[tuple[str, Expr], ...], WindowSpec]] = {}
    calls: dict[Any, tuple[AggCall, Expr | None]] = {}
    stage = Stage(ctx, rel)
    out = []
    from_text = f" FROM {src.name}{where_text}"
    for item in q.expressions:
        alias, target = _alias(item)
        written = True  # as the user wrote it, not Spark's or Flink's way of writing COUNT(DISTINCT x) OVER
        first = target  # the item's first words, for its text
        if not isinstance(target, exp.Window):
            distinct = emitted.size_of_collect_set(target, ctx.dialect)
            if distinct is not None:
                target, written = distinct, False
            elif _plain_column(target, rel, ctx, None):
                continue
            else:
                raise _refuse(
                    f"the SELECT item {_head(item.sql(dialect=ctx.dialect))} (a feature query selects columns of its "
                    "source and aggregates OVER a window)",
                    item,
                )
        name = _name(alias, target, ctx)
        inner = target.this
        if isinstance(inner, (exp.IgnoreNulls, exp.RespectNulls)):
            raise _refuse("IGNORE/RESPECT NULLS", target)
        if not is_aggregate(inner.this if isinstance(inner, exp.Filter) else inner):
            raise _refuse(f"{_fname(inner)}() OVER (...) (a feature aggregates: COUNT, SUM, AVG, MIN, MAX, VAR_SAMP, STDDEV_SAMP)", target)
        if written and ctx.dialect in ("spark", "flink"):
            _refused_over(inner, target, ctx.dialect)  # FILTER or DISTINCT over a window: those engines refuse it
        if written:
            first = inner
        inner = _case_as_filter(inner)
        try:
            shape = _shape(inner)
            done = calls.get(shape)
        except TypeError:  # an argument sqlglot keeps as a mutable value: read it every time
            shape, done = None, None
        if done is None:  # features repeat a few aggregates over many windows: each is read once
            done = _call(inner, stage, rel, ctx, True)
            if shape is not None:
                calls[shape] = done
        call, filt = done
        ref = target.args.get("alias")
        own = any(target.args.get(k) for k in ("partition_by", "order", "spec"))
        got = windows.get(ref.name) if ref is not None and not own else None
        if got is None:  # a named window is read once, however many features it has
            partition, order, spec = _window_parts(target, named, ctx)
            got = (_keys(partition, rel, ctx, target), _window_spec(spec, target))
            _check_order(order, src, rel, ctx, target)
            if ref is not None and not own:
                windows[ref.name] = got
        keys, window = got
        position, words = text.item(item, first)
        out.append(_Spec(
            name, cls, keys, window, and_all([m for m in (mask, filt) if m is not None]), call, position, words + from_text,
        ))
    if not out:
        raise _refuse("a query without an aggregate OVER a window (AGG(x) OVER (PARTITION BY key ORDER BY time) AS name)", q)
    return out


#: Aggregates whose one argument's NULLs are skipped: AGG(CASE WHEN c THEN x END) is AGG(x) where c.
_SKIPPING_NULLS = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Variance, exp.Stddev, exp.StddevSamp)


def _case_as_filter(inner: exp.Expression) -> exp.Expression:
    """``AGG(CASE WHEN c THEN x END)`` as ``AGG(x) FILTER (WHERE c)``: the same value (x
    where c holds and NULL elsewhere, which the aggregate skips), and the way Spark and
    Flink filter one aggregate over a window, where they refuse FILTER. Read so, the
    feature is its DSL twin's (a filtered frame), not an aggregate of a CASE. COUNT of a
    literal counts the rows: ``COUNT(*)``."""
    if not isinstance(inner, _SKIPPING_NULLS) or inner.args.get("expressions"):
        return inner
    case = inner.this
    if not isinstance(case, exp.Case) or case.this is not None or len(case.args.get("ifs") or []) != 1:
        return inner
    default = case.args.get("default")
    if default is not None and not isinstance(default, exp.Null):
        return inner
    when = case.args["ifs"][0]
    value = when.args.get("true")
    if value is None or isinstance(value, exp.Null):
        return inner
    agg = inner.copy()
    counted_rows = isinstance(inner, exp.Count) and isinstance(value, exp.Literal)
    agg.set("this", exp.Star() if counted_rows else value.copy())
    return exp.Filter(this=agg, expression=exp.Where(this=when.this.copy()))


def _shape(node: Any) -> Any:
    """What a sqlglot tree says, as a value: equal for trees that read the same (names, their
    quoting and literals included), not for where they are. sqlglot's own hash of a tree
    costs more than reading an aggregate call; this, a quarter of it."""
    if isinstance(node, exp.Expression):
        return (node.key, *[(k, _shape(v) if isinstance(v, (exp.Expression, list)) else v) for k, v in node.args.items() if v is not None])
    return tuple([_shape(v) if isinstance(v, (exp.Expression, list)) else v for v in node])


def _window_parts(w: exp.Window, named: dict[str, exp.Window], ctx: Context) -> tuple[list[exp.Expression], Any, Any]:
    """PARTITION BY, ORDER BY and frame of ``OVER (...)``, ``OVER w`` or ``OVER (w ...)``."""
    partition = list(w.args.get("partition_by") or [])
    order, spec = w.args.get("order"), w.args.get("spec")
    alias = w.args.get("alias")
    if alias is not None:
        base = named.get(alias.name)
        if base is None:
            raise fail(SchemaError, f"unknown window {alias.name!r}; name it in a WINDOW clause", w)
        partition = partition or list(base.args.get("partition_by") or [])
        order = order or base.args.get("order")
        spec = spec or base.args.get("spec")
    return partition, order, spec


def _keys(partition: list[exp.Expression], rel: Rel, ctx: Context, w: exp.Expression) -> tuple[tuple[str, Expr], ...]:
    if not partition:
        raise _refuse("a window without PARTITION BY (a feature is keyed by an entity: PARTITION BY its key columns)", w)
    keys: list[tuple[str, Expr]] = []
    for p in partition:
        if not isinstance(p, exp.Column):
            raise _refuse(f"PARTITION BY {p.sql(dialect=ctx.dialect)} (a feature's keys are columns of its source)", p)
        col = _lookup(rel, p, ctx)
        if not col.dtype.is_orderable and col.dtype != T.Bool:
            raise fail(SchemaError, f"key {p.sql(dialect=ctx.dialect)} has type {col.dtype}, which cannot be grouped", p)
        if any(col.name == k for k, _ in keys):
            continue
        keys.append((col.name, col))
    return tuple(keys)


def _check_order(order: Any, src: Source, rel: Rel, ctx: Context, w: exp.Expression) -> None:
    if order is None or not order.expressions:
        raise _refuse(f"a window without ORDER BY (a feature's window runs over the event time: ORDER BY {src.event_time})", w)
    if len(order.expressions) != 1:
        raise _refuse("a window ordered by several columns", order)
    o = order.expressions[0]
    if o.args.get("desc"):
        raise _refuse("a window ordered DESC", o)
    col = _lookup(rel, o.this, ctx) if isinstance(o.this, exp.Column) else None
    if col is None or col.name != src.event_time:
        raise _refuse(
            f"a window ordered by {o.this.sql(dialect=ctx.dialect)} (a feature's window is ordered by its source's "
            f"event time, {src.event_time})",
            o,
        )


_FRAME_PARTS = ("kind", "start", "start_side", "end", "end_side")


def _frame_key(spec: Any) -> tuple[Any, ...] | None:
    """What a frame clause says, as a value (None if it holds anything but bounds and
    INTERVAL literals): equal clauses are read once per query."""
    if spec is None:
        return ()
    if any(v is not None and k not in _FRAME_PARTS for k, v in spec.args.items()):
        return None  # anything else (EXCLUDE ...): read, and refused, each time
    key: list[Any] = []
    for k in _FRAME_PARTS:
        v = spec.args.get(k)
        if v is None or isinstance(v, str):
            key.append(v)
        elif isinstance(v, exp.Interval) and isinstance(v.this, exp.Literal) and isinstance(v.args.get("unit"), exp.Var):
            key.append((v.this.this, v.this.is_string, v.args["unit"].name))
        else:
            return None
    return tuple(key)


#: Frame clauses read before, by what they say: a feature set repeats a few frames many
#: times (and reading an INTERVAL costs more than the rest of a feature). Bounded; a
#: refused frame is never kept.
_FRAMES: dict[tuple[Any, ...], WindowSpec] = {}
_FRAMES_MAX = 10_000


def _window_spec(spec: Any, w: exp.Expression) -> WindowSpec:
    key = _frame_key(spec)
    made = _FRAMES.get(key) if key is not None else None
    if made is None:
        made = _read_frame(spec, w)
        if key is not None:
            if len(_FRAMES) >= _FRAMES_MAX:
                _FRAMES.clear()
            _FRAMES[key] = made
    return made


def _read_frame(spec: Any, w: exp.Expression) -> WindowSpec:
    frame = _frame(spec)
    if frame.upper == 0 and frame.upper_inclusive:
        if frame.lower is None:
            return WindowSpec("lifetime")
        if frame.lower_inclusive:
            return WindowSpec("sliding", frame.lower, closed="both")
    raise _refuse(
        f"the frame {frame.describe()} (a feature's frame ends at the current row: RANGE BETWEEN INTERVAL ... "
        "PRECEDING AND CURRENT ROW, or UNBOUNDED PRECEDING AND CURRENT ROW)",
        spec if spec is not None else w,
    )


# ---- per window: GROUP BY the window of a TVF or time_bucket ---------------------------------


def _per_window(
    q: exp.Select, ctx: Context, rel: Rel, cls: type[SourceClass], mask: Expr | None, where_text: str, text: _Text
) -> list[_Spec]:
    src = rel.node
    assert isinstance(src, Source) and src.event_time is not None
    group = q.args.get("group")
    if q.args.get("windows"):
        raise _refuse("a WINDOW clause in a GROUP BY query", q.args["windows"][0])
    if group is None:
        raise _refuse(
            "an aggregate without GROUP BY (a per-window feature groups by its keys and window: "
            "GROUP BY key, window_start, window_end)",
            q,
        )
    stage = Stage(ctx, rel)
    stage.group(group.expressions, q)
    if stage.time_window is None:
        raise _refuse(
            "GROUP BY without a time window (a per-window feature groups by the window of TUMBLE/HOP in Flink, "
            "window() in Spark or time_bucket in DuckDB)",
            group,
        )
    time, tw = stage.time_window
    if time != src.event_time:
        raise _refuse(f"a time window over {time} (a feature's windows are over its source's event time, {src.event_time})", group)
    keys: list[tuple[str, Expr]] = []
    for e, _ in stage.groups:
        if not isinstance(e, Column):
            raise _refuse(f"GROUP BY {e.sql()} (a feature's keys are columns of its source)", group)
        keys.append((e.name, e))
    if not keys:
        raise _refuse("a time window without keys (a feature is keyed by an entity: GROUP BY its key columns too)", group)
    window = WindowSpec("tumbling", tw.size, tw.slide) if tw.is_tumbling else WindowSpec("hopping", tw.size, tw.slide)
    key_names = {k for k, _ in keys}
    tail = f" FROM {q.args.get('from_', q.args.get('from')).this.sql(dialect=ctx.dialect)}{where_text} {group.sql(dialect=ctx.dialect)}"
    out = []
    for item in q.expressions:
        alias, target = _alias(item)
        if stage._is_window_bound(target):  # window_start/end, time_bucket(...), Spark's window.start/end
            continue
        if not has_aggregate(target):
            if _plain_column(target, rel, ctx, key_names):
                continue
            raise _refuse(f"the SELECT item {_head(item.sql(dialect=ctx.dialect))} (a per-window feature query selects its keys, "
                          "its window's bounds and aggregates)", item)
        if isinstance(target, exp.Window) or any(isinstance(n, exp.Window) for n in target.walk()):
            raise _refuse("a window function in a GROUP BY query", target)
        if isinstance(target, exp.Filter):
            raise _refuse(
                "FILTER (WHERE ...) in a per-window feature (its rows are the windows with rows that pass its "
                "filter; SQL's are the windows with any row): move the condition to WHERE",
                target,
            )
        if not is_aggregate(target):
            raise _refuse(f"the expression {_head(target.sql(dialect=ctx.dialect))} over aggregates (a feature is one aggregate)", target)
        name = _name(alias, target, ctx)
        call, _ = _call(target, stage, rel, ctx, False)
        position, words = text.item(item, target)
        out.append(_Spec(name, cls, tuple(keys), window, mask, call, position, words + tail))
    if not out:
        raise _refuse("a GROUP BY query without an aggregate", q)
    return out

