"""Reading relplan's own SQL back: the idioms its lowerings emit (backends/sql.py).

``plan.to_sql(dialect)`` writes some IR exactly but not the way a person would, and
the front end (query.py) reads these idioms as what they mean:

- a ``WINDOW w0 AS (...)`` clause and ``OVER w0`` references: the named window is
  written into each OVER (a reference may add a frame, as SQL allows);
- a window ordered by the epoch microseconds of a timestamp -- DuckDB's
  ``EPOCH_US(ts)``, Spark's ``UNIX_MICROS(ts)``, Flink's ``EXTRACT(EPOCH FROM ts) *
  1000000 + EXTRACT(MICROSECOND FROM ts)`` -- is ordered by ``ts`` (the same order,
  NULLs included), and its integer ``RANGE BETWEEN n PRECEDING`` offsets are
  microseconds;
- ``ARG_MAX(x, CASE WHEN NOT x IS NULL THEN {'f0': ts, 'f1': x} END)`` (Spark:
  ``MAX_BY(x, ...STRUCT(ts, x)...)``) is ``last(x)`` by ``ts``, ARG_MIN ``first``:
  the latest (earliest) non-NULL value, the largest (smallest) among ties, as the IR's;
- a script of several outputs: DuckDB's and Spark's ``-- output: name`` before each
  query, Flink's ``SET ...; CREATE TABLE ...; INSERT INTO sink <query>`` (several
  INSERTs in ``EXECUTE STATEMENT SET BEGIN ... END``). ``sql_script`` reads it, each
  query one named output; any other statement is refused, as rp.sql refuses it.

- tumbling and hopping windows: a CTE of window starts in epoch microseconds
  (``E - (((E % s) + s) % s) AS __window_start_us``, or for a hop
  ``UNNEST(GENERATE_SERIES(...))`` / ``EXPLODE(SEQUENCE(...))`` of the starts, or Flink's
  floor minus ``__hop_i * slide`` CROSS JOIN ``VALUES (0), (1), ...``, and a CTE
  keeping those whose window holds the event), grouped by the start with
  ``MAKE_TIMESTAMP(start)`` / ``TIMESTAMP_MICROS`` / ``TO_TIMESTAMP_LTZ`` bounds: read as
  the TimeWindowAggregate it is (``time_window_ctes``);
- Spark's and Flink's exact AVG of a BIGINT (a DECIMAL sum over the count), DuckDB's
  ``CAST(TRUNC(x) AS BIGINT)``, ``SIZE(COLLECT_SET(x) OVER w)``, NULLIF, typed literals
  (``CAST(1.5 AS DOUBLE)``, ``TIMESTAMP_MICROS(n)``);
- Flink's own spellings (it has no ARG_MIN/ARG_MAX, and its VAR_SAMP cancels
  catastrophically): first/last as the value decoded from ``MIN``/``MAX`` (``OVER w``) of
  ``CASE WHEN [(f) AND] (NOT x IS NULL) THEN LPAD(<time>, 18, '0') || <x's key> END``, read
  as the ARG_MIN/ARG_MAX idiom above (``flink_extreme``, x of the type the key encodes);
  var/std as ``GREATEST((n * S(d * d) - S(d) * S(d)) / NULLIF(n * (n - 1), 0), 0)`` over
  ``d = x - __rp_ref_a``, a column a CTE before adds (``MIN(x) OVER (PARTITION BY keys)``
  or ``FIRST_VALUE(x) OVER (... RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)``),
  read as ``VAR_SAMP(x)``/``STDDEV_SAMP(x)`` and the column dropped
  (``shifted_variances``); ``COUNT(DISTINCT x) OVER w`` as the size of ``ARRAY_DISTINCT(
  ARRAY_AGG(x IGNORE NULLS) OVER w)``; the corrected ``CAST(ts AS DATE)``
  (``flink_date_of``). Each is matched against a template the Flink backend's own
  builders make, so only the exact text relplan writes is read.

Idioms not read yet raise an UnsupportedError naming them, as does text that differs from
an idiom above in any part (it is read as written, and what the front end does not read in
it, SUBSTR, GREATEST, FIRST_VALUE, a DECIMAL cast, is refused): interval arithmetic on
timestamps, and a bare ``EPOCH_US`` elsewhere.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from relplan.compiler.sql.expressions import Located, fail, sql_type
from relplan.ir import types as T
from relplan.ir.errors import SchemaError, SqlError, UnsupportedError
from relplan.ir.expr import Literal

# ---- named windows ------------------------------------------------------------------------


def inline_named_windows(q: exp.Select) -> exp.Select:
    """``q`` with each ``OVER name`` replaced by the WINDOW clause's definition, and the
    clause removed; ``q`` itself when it has none."""
    named = q.args.get("windows")
    if not named:
        return q
    defs: dict[str, exp.Window] = {}
    for w in named:
        name = w.this.name if isinstance(w.this, exp.Identifier) else str(w.this)
        defs[name] = _resolved(w, defs)
    q = q.copy()
    q.set("windows", None)
    for w in list(q.find_all(exp.Window)):
        ref = w.args.get("alias")
        if w.parent is q or ref is None or w.args.get("partition_by") or w.args.get("order"):
            continue
        base = defs.get(ref.name)
        if base is None:
            raise fail(SchemaError, f"OVER {ref.name}: no window of that name in the WINDOW clause", w)
        w.set("alias", None)
        for key in ("partition_by", "order"):
            if base.args.get(key) is not None:
                w.set(key, base.args[key].copy() if isinstance(base.args[key], exp.Expression) else [p.copy() for p in base.args[key]])
        if w.args.get("spec") is None and base.args.get("spec") is not None:
            w.set("spec", base.args["spec"].copy())
    return q


def _resolved(w: exp.Window, defs: dict[str, exp.Window]) -> exp.Window:
    # WINDOW w1 AS (w0 ORDER BY ...) names an earlier window; relplan writes none, but SQL may.
    base = w.args.get("alias")
    if base is None or base.name not in defs:
        return w
    out = defs[base.name].copy()
    for key in ("partition_by", "order", "spec"):
        if w.args.get(key):
            out.set(key, w.args[key])
    return out


# ---- epoch microseconds -------------------------------------------------------------------


def epoch_micros_of(node: exp.Expression) -> exp.Expression | None:
    """The timestamp ``ts`` when ``node`` is its epoch microseconds as a relplan lowering
    writes them (any of the three dialects' spellings), else None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in ("EPOCH_US", "UNIX_MICROS") and len(node.expressions) == 1:
        return node.expressions[0]
    if isinstance(node, exp.UnixMicros) and node.this is not None:
        return node.this
    if isinstance(node, exp.Add):
        mul, micros = node.this, node.expression
        while isinstance(mul, exp.Paren):
            mul = mul.this
        if (isinstance(mul, exp.Mul) and isinstance(mul.expression, exp.Literal) and mul.expression.this == "1000000"
                and _extract(mul.this, "EPOCH") is not None and _extract(micros, "MICROSECOND") is not None
                and _extract(mul.this, "EPOCH") == _extract(micros, "MICROSECOND")):
            return _extract(mul.this, "EPOCH")
    return None


def _extract(node: exp.Expression, part: str) -> exp.Expression | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Extract) and str(node.this.name if isinstance(node.this, exp.Expression) else node.this).upper() == part:
        return node.expression
    return None


def micros_offset(node: Any) -> int | None:
    """A frame offset written as whole microseconds (``RANGE BETWEEN 30000000 PRECEDING``)."""
    if isinstance(node, exp.Literal) and not node.is_string and re.fullmatch(r"[0-9]+", str(node.this)):
        return int(node.this)
    return None


def size_of_collect_set(node: exp.Expression, dialect: str) -> exp.Window | None:
    """Spark's ``SIZE(COLLECT_SET(x) OVER w)`` and Flink's ``CAST(COALESCE(CARDINALITY(
    ARRAY_DISTINCT(ARRAY_AGG(x IGNORE NULLS) OVER w)), 0) AS BIGINT)`` (COUNT(DISTINCT)
    over a window, which both refuse) as the window ``COUNT(DISTINCT x) OVER w``; None
    for anything else, and in another dialect (neither engine has the other's functions)."""
    if isinstance(node, exp.Cast):
        return _flink_distinct_count(node) if dialect == "flink" else None
    if dialect != "spark" or not (isinstance(node, exp.ArraySize) and isinstance(node.this, exp.Window)):
        return None
    w = node.this
    inner = w.this
    if not isinstance(inner, exp.ArrayUniqueAgg):
        return None
    out = w.copy()
    out.set("this", exp.Count(this=exp.Distinct(expressions=[inner.this.copy()])))
    return out


def exact_mean(node: exp.Expression) -> exp.Expression | None:
    """The exact AVG of a BIGINT as relplan writes it (Spark, Flink), ``CAST(SUM(CAST(x AS
    DECIMAL(38, 0))) [OVER w] AS DOUBLE) / NULLIF(COUNT(x) [OVER w], 0)``, as
    ``AVG(CAST(x AS DOUBLE)) [OVER w]``."""
    if not isinstance(node, exp.Div):
        return None
    num, den = _unparen(node.this), _unparen(node.expression)
    if not (isinstance(num, exp.Cast) and num.to.this == exp.DataType.Type.DOUBLE and isinstance(den, exp.Nullif)
            and micros_offset(_unparen(den.expression)) == 0):
        return None
    total, count = _unparen(num.this), _unparen(den.this)
    over = None
    if isinstance(total, exp.Window) and isinstance(count, exp.Window):
        a, b = total.copy(), count.copy()
        a.set("this", None)
        b.set("this", None)
        if a != b:
            return None
        over, total, count = total, total.this, count.this
    if not (isinstance(total, exp.Sum) and isinstance(count, exp.Count)):
        return None
    inner = _unparen(total.this)
    if not (isinstance(inner, exp.Cast) and inner.to.this == exp.DataType.Type.DECIMAL and inner.this == count.this):
        return None
    # AVG of the value as a DOUBLE: the mean, in every dialect (Flink's AVG of a BIGINT truncates)
    avg = exp.Avg(this=exp.Cast(this=count.this.copy(), to=exp.DataType.build("DOUBLE")))
    if over is None:
        return avg
    out = over.copy()
    out.set("this", avg)
    return out


# ---- tumbling and hopping windows ------------------------------------------------------------

WINDOW_MARK = "__RELPLAN_WINDOW"  # window(ts, size_us, slide_us) as query.py reads Spark's window()
_START = "__window_start_us"


def _floor(node: exp.Expression) -> tuple[exp.Expression, int] | None:
    """``(ts, s)`` for ``E - (((E % s) + s) % s)``, E the epoch microseconds of ts."""
    node = _unparen(node)
    if not isinstance(node, exp.Sub):
        return None
    ts = epoch_micros_of(node.this)
    outer = _unparen(node.expression)
    if ts is None or not isinstance(outer, exp.Mod):
        return None
    s = micros_offset(_unparen(outer.expression))
    add = _unparen(outer.this)
    if s is None or not isinstance(add, exp.Add) or micros_offset(_unparen(add.expression)) != s:
        return None
    inner = _unparen(add.this)
    if not (isinstance(inner, exp.Mod) and micros_offset(_unparen(inner.expression)) == s and epoch_micros_of(inner.this) == ts):
        return None
    return ts, s


def _start_item(q: exp.Select) -> tuple[exp.Expression, int, int] | None:
    """``(ts, slide, span)`` of relplan's window-start CTE: ``SELECT *, <start> AS
    __window_start_us`` (a tumble's floor, or the hop's series of starts span..0 before it;
    in Flink the floor minus ``__hop_i * slide``, CROSS JOIN VALUES (0), (1), ... of __hop_i)."""
    items = q.expressions
    if len(items) != 2 or not isinstance(items[0], exp.Star) or not (isinstance(items[1], exp.Alias) and items[1].alias == _START):
        return None
    e = _unparen(items[1].this)
    joins = q.args.get("joins") or []
    if joins:
        hops = _hop_values(joins)
        if hops is None or not isinstance(e, exp.Sub):
            return None
        floor, step = _floor(e.this), _unparen(e.expression)
        if not (floor is not None and isinstance(step, exp.Mul) and isinstance(_unparen(step.this), exp.Column)
                and _unparen(step.this).name == "__hop_i" and micros_offset(_unparen(step.expression)) == floor[1]):
            return None
        return floor[0], floor[1], (hops - 1) * floor[1]
    floor = _floor(e)
    if floor is not None:
        return floor[0], floor[1], 0
    if isinstance(e, exp.Unnest) and len(e.expressions) == 1:
        e = _unparen(e.expressions[0])
    elif isinstance(e, exp.Explode):
        e = _unparen(e.this)
    else:
        return None
    if not isinstance(e, exp.GenerateSeries) or e.args.get("is_end_exclusive"):
        return None
    last, first, step = _floor(e.args["end"]), _unparen(e.args["start"]), micros_offset(_unparen(e.args["step"]))
    if last is None or step != last[1] or not isinstance(first, exp.Sub):
        return None
    span = micros_offset(_unparen(first.expression))
    if span is None or span % step or _floor(first.this) != last:
        return None
    return last[0], step, span


def _hop_values(joins: list[exp.Join]) -> int | None:
    """n for Flink's ``CROSS JOIN (VALUES (0), (1), ..., (n-1)) AS o(__hop_i)``."""
    if len(joins) != 1 or str(joins[0].args.get("kind") or "").upper() != "CROSS" or joins[0].args.get("on") is not None:
        return None
    values = _unparen(joins[0].this)
    alias = values.args.get("alias") if isinstance(values, exp.Values) else None
    if alias is None or [c.name for c in alias.columns] != ["__hop_i"]:
        return None
    got = [micros_offset(t.expressions[0]) if isinstance(t, exp.Tuple) and len(t.expressions) == 1 else None for t in values.expressions]
    return len(got) if got == list(range(len(got))) and got else None


def _not_null_of(where: exp.Expression | None, ts: exp.Expression) -> bool:
    stack = [where.this] if where is not None else []
    while stack:
        c = _unparen(stack.pop())
        if isinstance(c, exp.And):
            stack += [c.this, c.expression]
        elif isinstance(c, exp.Not) and isinstance(_unparen(c.this), exp.Is) and _unparen(c.this).this == ts \
                and isinstance(_unparen(c.this).expression, exp.Null):
            return True
    return False


def time_window_ctes(ctes: list[tuple[str, exp.Expression]]) -> list[tuple[str, exp.Expression]]:
    """relplan's tumbling/hopping lowering (a CTE of window starts in epoch microseconds,
    for a hop a CTE keeping the starts whose window holds the event, then GROUP BY the
    start with ``MAKE_TIMESTAMP(start)`` and ``MAKE_TIMESTAMP(start + size)``) rewritten
    as one grouped query over ``__RELPLAN_WINDOW(ts, size, slide)`` with ``window.start``
    and ``window.end``, which query.py reads as a TimeWindowAggregate. Other CTEs as they are."""
    pending: dict[str, dict[str, Any]] = {}
    out: list[tuple[str, exp.Expression]] = []
    for name, q in ctes:
        if isinstance(q, exp.Select) and not q.args.get("group"):
            src = q.args.get("from_") or q.args.get("from")
            start = _start_item(q)
            if start is not None and src is not None:
                ts, slide, span = start
                if _not_null_of(q.args.get("where"), ts):
                    inner = exp.select("*").from_(src.this.copy())
                    if q.args.get("where") is not None:
                        inner.set("where", q.args["where"].copy())
                    pending[name] = dict(ts=ts, slide=slide, span=span, size=slide if span == 0 else None, inner=inner)
                    continue
            table = src.this if src is not None else None
            if (not q.args.get("joins") and isinstance(table, exp.Table) and table.name in pending and pending[table.name]["size"] is None
                    and len(q.expressions) == 1 and isinstance(q.expressions[0], exp.Star) and q.args.get("where") is not None):
                info = pending[table.name]
                size = _hop_size(q.args["where"].this, info["ts"])
                # the series reaches back far enough for every window holding the event
                if size is not None and info["span"] + info["slide"] >= size:
                    pending[name] = dict(info, size=size)
                    continue
        out.append((name, _grouped_window(q, pending)))
    # A window-start CTE read by anything but its grouping query: not this idiom, read as written.
    for _, q in out:
        if any(isinstance(t, exp.Table) and t.name in pending for t in q.find_all(exp.Table)):
            return ctes
    return out


def _hop_size(cond: exp.Expression, ts: exp.Expression) -> int | None:
    # __window_start_us + size > E
    cond = _unparen(cond)
    if not (isinstance(cond, exp.GT) and epoch_micros_of(cond.expression) == ts):
        return None
    add = _unparen(cond.this)
    if not (isinstance(add, exp.Add) and isinstance(_unparen(add.this), exp.Column) and _unparen(add.this).name == _START):
        return None
    return micros_offset(_unparen(add.expression))


def _grouped_window(q: exp.Expression, pending: dict[str, dict[str, Any]]) -> exp.Expression:
    if not pending or not isinstance(q, exp.Select):
        return q
    src = q.args.get("from_") or q.args.get("from")
    table = src.this if src is not None else None
    if not (isinstance(table, exp.Table) and table.name in pending and pending[table.name]["size"] is not None):
        return q
    group = q.args.get("group")
    if group is None or q.args.get("joins"):
        return q
    info = pending[table.name]
    size, slide = info["size"], info["slide"]
    q = q.copy()
    group = q.args["group"]
    mark = exp.Anonymous(this=WINDOW_MARK, expressions=[info["ts"].copy(), exp.Literal.number(size), exp.Literal.number(slide)])
    keys = []
    for k in group.expressions:
        keys.append(mark if isinstance(k, exp.Column) and k.name == _START else k)
    group.set("expressions", keys)

    def bound(n: exp.Expression) -> exp.Expression:
        value = _instant_of(n)
        if value is None:
            return n
        value = _unparen(value)
        if isinstance(value, exp.Column) and value.name == _START:
            return exp.column("start", table="window")
        if (isinstance(value, exp.Add) and isinstance(_unparen(value.this), exp.Column) and _unparen(value.this).name == _START
                and micros_offset(_unparen(value.expression)) == size):
            return exp.column("end", table="window")
        return n

    q = q.transform(bound)
    q.set("from_", exp.From(this=exp.Subquery(this=info["inner"].copy(), alias=exp.TableAlias(this=exp.to_identifier(table.alias_or_name)))))
    q.set("from", None)
    return q


def _instant_of(n: exp.Expression) -> exp.Expression | None:
    """x of MAKE_TIMESTAMP(x) / TIMESTAMP_MICROS(x) / CAST(TO_TIMESTAMP_LTZ(x, 6) AS TIMESTAMP(6))."""
    if isinstance(n, exp.Cast) and isinstance(_unparen(n.this), exp.Anonymous) and str(_unparen(n.this).this).upper() == "TO_TIMESTAMP_LTZ":
        call = _unparen(n.this)
        if len(call.expressions) == 2 and micros_offset(call.expressions[1]) == 6:
            return call.expressions[0]
        return None
    if isinstance(n, exp.Anonymous) and str(n.this).upper() in ("MAKE_TIMESTAMP", "TIMESTAMP_MICROS") and len(n.expressions) == 1:
        return n.expressions[0]
    return _micros_to_time(n)


def truncated_to_bigint(node: exp.Expression) -> exp.Expression | None:
    """x of ``CAST(TRUNC(x) AS BIGINT)``: DuckDB's spelling of the IR's truncating cast of a
    DOUBLE (its own CAST rounds)."""
    if (isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.BIGINT and isinstance(_unparen(node.this), exp.Trunc)
            and not _unparen(node.this).args.get("decimals")):
        return _unparen(node.this).this
    return None


def _micros_to_time(n: exp.Expression) -> exp.Expression | None:
    # DuckDB's MAKE_TIMESTAMP(x) as sqlglot reads it: UNIX_TO_TIME at the microsecond scale
    if isinstance(n, exp.UnixToTime) and micros_offset(n.args.get("scale")) == 6 and not n.args.get("zone"):
        return n.this
    return None


# ---- typed literals ---------------------------------------------------------------------------


def typed_literal(node: exp.Cast) -> Literal | None:
    """relplan writes a literal with its type: ``CAST(1.5 AS DOUBLE)``, ``CAST(NULL AS
    TIMESTAMP)``. Read as the literal it is (an IN list takes literals), where the value is
    exact in the type: NULL of any type, a number as DOUBLE, a whole number as BIGINT."""
    inner = _unparen(node.this)
    neg = isinstance(inner, exp.Neg)
    if neg:
        inner = _unparen(inner.this)
    try:
        target = sql_type(node.to, node)
    except Located:
        return None
    if isinstance(inner, exp.Null) and not neg:
        return Literal(None, target)
    if not (isinstance(inner, exp.Literal) and not inner.is_string):
        return None
    text = str(inner.this)
    if target == T.Float64:
        value = float(text)
        if not math.isfinite(value):
            return None
        return Literal(-value if neg else value, T.Float64)
    if target == T.Int64 and re.fullmatch(r"[0-9]+", text) and int(text) <= 2**63 - (0 if neg else 1):
        return Literal(-int(text) if neg else int(text), T.Int64)
    return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def timestamp_of_micros(node: exp.Expression) -> Literal | None:
    """``TIMESTAMP_MICROS(n)`` / ``MAKE_TIMESTAMP(n)`` / ``TO_TIMESTAMP_LTZ(n, 6)`` of an
    integer literal (how relplan writes a timestamp literal as an instant): that instant."""
    micros = _micros_to_time(node)
    if micros is not None:
        node = exp.Anonymous(this="MAKE_TIMESTAMP", expressions=[micros])
    if not (isinstance(node, exp.Anonymous) and str(node.this).upper() in ("TIMESTAMP_MICROS", "MAKE_TIMESTAMP", "TO_TIMESTAMP_LTZ")):
        return None
    args = node.expressions
    if not args or len(args) > 2 or (len(args) == 2 and micros_offset(args[1]) != 6) or (len(args) == 2) != (str(node.this).upper() == "TO_TIMESTAMP_LTZ"):
        return None
    value = _unparen(args[0])
    neg = isinstance(value, exp.Neg)
    if neg:
        value = _unparen(value.this)
    us = micros_offset(value)
    if us is None:
        return None
    try:
        return Literal(_EPOCH + dt.timedelta(microseconds=-us if neg else us))
    except OverflowError:
        return None


# ---- first / last ---------------------------------------------------------------------------


def arg_extreme(node: exp.Expression) -> tuple[str, exp.Expression, exp.Expression, exp.Expression | None] | None:
    """``("last" | "first", value, time, filter or None)`` for relplan's ARG_MAX/ARG_MIN
    idiom (``CASE WHEN (filter) AND (NOT x IS NULL) THEN ...`` with a filter), else None."""
    if isinstance(node, exp.ArgMax):
        func = "last"
    elif isinstance(node, exp.ArgMin):
        func = "first"
    else:
        return None
    value, key = node.this, node.expression
    while isinstance(key, exp.Paren):
        key = key.this
    if not (isinstance(key, exp.Case) and len(key.args.get("ifs") or []) == 1 and key.args.get("default") is None):
        return None
    branch = key.args["ifs"][0]
    cond, struct = branch.this, branch.args["true"]
    fields = _struct_fields(struct)
    if fields is None or len(fields) != 2 or fields[1] != value:
        return None
    filt = None
    if isinstance(cond, exp.And):
        filt, cond = _unparen(cond.this), _unparen(cond.expression)
    if not (isinstance(cond, exp.Not) and isinstance(cond.this, exp.Is) and isinstance(cond.this.expression, exp.Null)
            and cond.this.this == value):
        return None
    return func, value, fields[0], filt


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _struct_fields(node: exp.Expression) -> list[exp.Expression] | None:
    if not isinstance(node, exp.Struct):
        return None
    out = []
    for i, e in enumerate(node.expressions):
        if isinstance(e, (exp.PropertyEQ, exp.Slice)) and e.this is not None and _field_name(e.this) == f"f{i}":
            out.append(e.expression)
        elif isinstance(e, exp.Alias) and e.alias == f"f{i}":
            out.append(e.this)
        else:
            return None
    return out


def _field_name(node: exp.Expression) -> str | None:
    if isinstance(node, (exp.Identifier, exp.Column, exp.Var)):
        return node.name
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None


# ---- Flink's first / last and var / std ----------------------------------------------------------
#
# The Flink backend writes these with its own builders (backends/flink.py, flink_extremes.py).
# Each is matched against a template those same builders make, with placeholder columns
# standing for the parts that vary (the value, the time, the filter, the key aggregate), so
# only the exact shape relplan emits is read; any other text is left to the front end,
# which reads it as written and refuses what it does not read (SUBSTR, GREATEST, FIRST_VALUE).

_HOLE = "__rp_hole_"  # placeholder columns of the templates
_X, _TS, _FILTER, _KEY, _REF = (_HOLE + n for n in ("x", "ts", "filter", "key", "ref"))
_WINDOW = _HOLE + "window"  # the window (without its function) every OVER of a template shares
_TEMPLATES: dict[Any, exp.Expression] = {}
_EXTREME_TYPES = (T.String, T.Int64, T.Bool, T.Timestamp, T.Date, T.Float64)


def _template(key: Any, build: Any) -> exp.Expression:
    """A template as the front end sees relplan's text: built, written as Flink SQL, parsed."""
    if key not in _TEMPLATES:
        _TEMPLATES[key] = sqlglot.parse_one(build().sql(dialect="flink", identify=True), read="flink")
    return _TEMPLATES[key]


def _matches(t: Any, n: Any, env: dict[str, exp.Expression]) -> bool:
    """Whether ``n`` is template ``t`` with its placeholders filled (each the same
    expression wherever it occurs, parentheses aside: they only group), filling ``env``."""
    if isinstance(t, exp.Column) and t.name.startswith(_HOLE) and not t.table:
        return _bind(env, t.name, _unparen(n) if isinstance(n, exp.Expression) else n)
    if isinstance(t, exp.Window):
        if not isinstance(n, exp.Window) or not _matches(t.this, n.this, env):
            return False
        frame = n.copy()
        frame.set("this", None)
        return _bind(env, _WINDOW, frame)
    if type(t) is not type(n):
        return False
    for k in set(t.args) | set(n.args):
        a, b = t.args.get(k), n.args.get(k)
        if isinstance(a, list) or isinstance(b, list):
            if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                    and all(_matches(x, y, env) for x, y in zip(a, b))):
                return False
        elif isinstance(a, exp.Expression) or isinstance(b, exp.Expression):
            if not (isinstance(a, exp.Expression) and isinstance(b, exp.Expression) and _matches(a, b, env)):
                return False
        elif (a or None) != (b or None):
            if not (isinstance(a, str) and isinstance(b, str) and a.upper() == b.upper() and k != "this"):
                return False
    return True


def _bind(env: dict[str, exp.Expression], name: str, value: Any) -> bool:
    if name in env:
        return env[name] == value
    env[name] = value
    return True


def _flink() -> Any:
    from relplan.backends.flink import FlinkLowering

    return FlinkLowering()


def _hole(name: str) -> exp.Column:
    return exp.column(name)


def _extreme_value(dtype: T.DataType) -> exp.Expression:
    """What first/last of ``dtype`` is on Flink: the value decoded from the key aggregate."""
    from relplan.backends import flink_extremes as fx

    return _template(("value", dtype), lambda: fx.value_of(_hole(_KEY), dtype, _flink().from_epoch_us))


def _extreme_key(dtype: T.DataType, filtered: bool) -> exp.Expression:
    """first/last's per-row key on Flink (FlinkLowering.extreme_key): ``CASE WHEN [(filter)
    AND] (NOT x IS NULL) THEN <time key> || <value key> END``."""
    from relplan.ir.aggregates import AggCall
    from relplan.ir.expr import Column

    def build() -> exp.Expression:
        cond = Column(_FILTER, T.Bool) if filtered else None
        return _flink().extreme_key(AggCall("first", Column(_X, dtype), "a", cond, Column(_TS, T.Timestamp)))

    return _template(("key", dtype, filtered), build)


def flink_extreme(node: exp.Expression, type_of: Any) -> exp.Expression | None:
    """relplan's Flink first()/last() -- the value decoded from ``MIN``/``MAX`` (``OVER w``)
    of ``CASE WHEN [(filter) AND] (NOT x IS NULL) THEN LPAD(<time>) || <x's key> END``
    (backends/flink_extremes.py) -- as the ARG_MIN/ARG_MAX idiom that ``arg_extreme`` reads:
    first (last) is the earliest (latest) non-NULL x, the smallest (largest) among ties, in
    both. ``type_of(x)``: x's IR type, which must be the type the key encodes (strings of
    another type's values do not order as the values). None for anything else."""
    if not isinstance(node, (exp.Substring, exp.Cast, exp.EQ, exp.Case)):
        return None  # the root of every type's decoding (a cheap test: this runs on every node)
    if not any(micros_offset(_unparen(sub.args.get("start"))) == 19 and isinstance(
            sub.this.this if isinstance(sub.this, exp.Window) else sub.this, (exp.Min, exp.Max)) for sub in node.find_all(exp.Substring)):
        return None  # no SUBSTR(MIN/MAX(key), 19): the value after the key's 18 time digits
    for dtype in _EXTREME_TYPES:
        env: dict[str, exp.Expression] = {}
        if not _matches(_extreme_value(dtype), node, env):
            continue
        window = env[_KEY] if isinstance(env[_KEY], exp.Window) else None
        agg = window.this if window is not None else env[_KEY]
        if not isinstance(agg, (exp.Min, exp.Max)):
            return None
        for filtered in (False, True):
            parts: dict[str, exp.Expression] = {}
            if _matches(_extreme_key(dtype, filtered), agg.this, parts):
                x, ts = parts[_X], parts[_TS]
                try:
                    if type_of(x) != dtype:
                        return None
                except Located:
                    return None
                keep: exp.Expression = exp.Not(this=exp.Is(this=x.copy(), expression=exp.Null()))
                if filtered:
                    keep = exp.And(this=exp.Paren(this=parts[_FILTER].copy()), expression=exp.Paren(this=keep))
                pair = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("f0"), expression=ts.copy()),
                                               exp.PropertyEQ(this=exp.to_identifier("f1"), expression=x.copy())])
                call = (exp.ArgMax if isinstance(agg, exp.Max) else exp.ArgMin)(
                    this=x.copy(), expression=exp.Case().when(keep, pair, copy=False))
                if window is None:
                    return call
                out = window.copy()
                out.set("this", call)
                return out
        return None
    return None


def _flink_distinct_count(node: exp.Cast) -> exp.Window | None:
    # FlinkLowering.distinct_count_over: no value in the frame is no array, and COALESCE makes it 0
    from relplan.ir.aggregates import AggCall
    from relplan.ir.expr import Column

    def build() -> exp.Expression:
        return _flink().distinct_count_over(AggCall("count_distinct", Column(_X, T.Int64), "a"), {"partition_by": [_hole(_TS)]})

    env: dict[str, exp.Expression] = {}
    if not _matches(_template("count_distinct", build), node, env):
        return None
    out = env[_WINDOW].copy()
    out.set("this", exp.Count(this=exp.Distinct(expressions=[env[_X].copy()])))
    return out


def flink_date_of(node: exp.Expression) -> exp.Expression | None:
    """ts of relplan's Flink cast of a timestamp to a DATE (FlinkLowering.expr): ``CASE WHEN
    CAST(CAST(ts AS DATE) AS TIMESTAMP(6)) > ts THEN CAST(ts AS DATE) - INTERVAL '1' DAY ELSE
    CAST(ts AS DATE) END`` (Flink's own CAST is a day late before 1970), the IR's
    ``CAST(ts AS DATE)``, the day holding ts; None for anything else."""
    if not isinstance(node, exp.Case):
        return None
    from relplan.ir.expr import Cast, Column

    env: dict[str, exp.Expression] = {}
    if not _matches(_template("date", lambda: _flink().expr(Cast(Column(_X, T.Timestamp), T.Date))), node, env):
        return None
    return env[_X]


def _shifted_var(func: str) -> exp.Expression:
    """var/std on Flink (FlinkLowering.shifted_var) of x shifted by the reference column:
    ``GREATEST((n * S(d * d) - S(d) * S(d)) / NULLIF(n * (n - 1), 0), 0)``, d = x - ref."""
    from relplan.ir.aggregates import AggCall
    from relplan.ir.expr import Column

    def build() -> exp.Expression:
        low = _flink()
        a = AggCall(func, Column(_X, T.Float64), "a")

        def hole(n: exp.Expression) -> exp.Expression:  # the reference column: a placeholder
            return _hole(_REF) if isinstance(n, exp.Column) and n.name == low.REF + a.name else n

        # the aggregate's form and the window's (whose frame the matching compares across its OVERs)
        forms = [low.shifted_var(a), low.shifted_var(a, {"partition_by": [_hole(_TS)]})]
        return exp.Select(expressions=[f.transform(hole) for f in forms])

    return _template(("var", func), build)


def _var_call(node: exp.Expression) -> tuple[exp.Expression, dict[str, exp.Expression]] | None:
    """``VAR_SAMP(x)`` / ``STDDEV_SAMP(x)`` (``OVER w``) for relplan's Flink var/std of x
    shifted by a reference column, with the placeholders (x, the reference column)."""
    if not isinstance(node, (exp.Greatest, exp.Sqrt)):
        return None
    for func, cls in (("var", exp.Variance), ("std", exp.StddevSamp)):
        for over in _shifted_var(func).expressions:
            env: dict[str, exp.Expression] = {}
            if _matches(over, node, env) and isinstance(env.get(_REF), exp.Column) and not env[_REF].table:
                call = cls(this=env[_X].copy())
                if _WINDOW in env:
                    out = env[_WINDOW].copy()
                    out.set("this", call)
                    call = out
                return call, env
    return None


def _reference(item: exp.Expression) -> tuple[str, exp.Expression, list[exp.Expression]] | None:
    """``(name, x, partition)`` of a reference column relplan's Flink var/std shift by
    (FlinkLowering.with_references): ``MIN(x) OVER (PARTITION BY keys) AS __rp_ref_a``, or
    ``FIRST_VALUE(x) OVER (PARTITION BY keys ORDER BY <time> RANGE BETWEEN UNBOUNDED
    PRECEDING AND CURRENT ROW) AS __rp_ref_a``."""
    from relplan.backends.flink import FlinkLowering
    from relplan.compiler.sql.query import _bounds

    if not (isinstance(item, exp.Alias) and item.alias.startswith(FlinkLowering.REF) and isinstance(item.this, exp.Window)):
        return None
    w = item.this
    partition = list(w.args.get("partition_by") or [])  # none without keys: one partition
    order, spec = w.args.get("order"), w.args.get("spec")
    if w.args.get("alias") is not None:  # OVER a named window: relplan writes the reference's inline
        return None
    if isinstance(w.this, exp.Min) and order is None and spec is None:
        return item.alias, _unparen(w.this.this), partition
    if (isinstance(w.this, exp.FirstValue) and order is not None and len(order.expressions) == 1
            and not order.expressions[0].args.get("desc")
            and _bounds(spec) == ("RANGE", "UNBOUNDED", "PRECEDING", "CURRENT ROW", "")):
        return item.alias, _unparen(w.this.this), partition
    return None


def _source_table(q: exp.Expression) -> str | None:
    src = q.args.get("from_") or q.args.get("from") if isinstance(q, exp.Select) else None
    return src.this.name if src is not None and isinstance(src.this, exp.Table) and not src.this.args.get("db") else None


def shifted_variances(q: exp.Expression) -> exp.Expression:
    """``q`` with relplan's Flink var/std read as VAR_SAMP/STDDEV_SAMP: a CTE ``SELECT *,
    <reference> AS __rp_ref_a, ... FROM t`` (``_reference``) and, in a query reading it
    (through CTEs of ``SELECT *, ...`` only, which add columns: the window starts), the
    shifted sums of ``x - __rp_ref_a`` (``_var_call``). The variance does not change under
    a shift constant over the rows of a group or frame, and a reference is: one partition's
    over the group's or window's keys (each of the reference's partition keys is one of
    them). The reference columns go; ``q`` as it is unless every use of them is read so."""
    original = q
    with_ = q.args.get("with_") or q.args.get("with")
    if with_ is None:
        return q
    ctes = {c.alias_or_name: c.this for c in with_.expressions}
    refs: dict[str, tuple[str, exp.Expression, list[exp.Expression]]] = {}  # column -> (its CTE, x, partition)
    for name, body in ctes.items():
        if not isinstance(body, exp.Select) or not body.expressions or not isinstance(body.expressions[0], exp.Star):
            continue
        found = [_reference(i) for i in body.expressions[1:]]
        if found and all(f is not None for f in found) and _source_table(body) is not None and not any(
                body.args.get(k) for k in ("where", "group", "having", "joins", "windows", "qualify")):
            for ref_name, x, partition in found:  # type: ignore[misc]
                refs[ref_name] = (name, x, partition)
    if not refs:
        return q
    q = q.copy()
    with_ = q.args.get("with_") or q.args.get("with")

    def reads(body: exp.Expression, cte: str, x: exp.Expression) -> bool:
        # through SELECT *, <new columns> CTEs, none of them one x reads
        used = {c.name for c in x.find_all(exp.Column)}
        for _ in range(len(ctes) + 1):
            table = _source_table(body)
            if table == cte:
                return True
            body = ctes.get(table) if table is not None else None
            if not (isinstance(body, exp.Select) and body.expressions and isinstance(body.expressions[0], exp.Star)
                    and not body.args.get("group") and not body.args.get("windows")
                    and not any(i.alias_or_name in used for i in body.expressions[1:])):
                return False
            for j in body.args.get("joins") or []:
                if _hop_values([j]) is None:
                    return False
        return False

    def read(body: exp.Expression) -> exp.Expression:
        if not isinstance(body, exp.Select):
            return body
        body = inline_named_windows(body)
        group = [_unparen(g) for g in (body.args["group"].expressions if body.args.get("group") else [])]

        def rewrite(n: exp.Expression) -> exp.Expression:
            got = _var_call(n)
            if got is None:
                return n
            call, env = got
            ref = refs.get(env[_REF].name)
            if ref is None or _unparen(ref[1]) != env[_X] or not reads(body, ref[0], env[_X]):
                return n
            keys = [_unparen(p) for p in (env[_WINDOW].args.get("partition_by") or [])] if _WINDOW in env else group
            if not all(_unparen(p) in keys for p in ref[2]):
                return n
            return call

        return body.transform(rewrite)

    for cte in with_.expressions:
        cte.set("this", read(cte.this))
    body = q.copy()
    body.set("with_", None)
    body.set("with", None)
    q = read(body)
    q.set("with_", with_)
    for cte in with_.expressions:
        if any(cte.alias_or_name == r[0] for r in refs.values()):
            cte.this.set("expressions", [i for i in cte.this.expressions if i.alias_or_name not in refs])
    if any(c.name in refs for c in q.find_all(exp.Column)):
        return original  # a use not read: left as written (the front end refuses the references)
    return q


# ---- scripts of several outputs ---------------------------------------------------------------

_OUTPUT = re.compile(r"^--\s*output:\s*(.+?)\s*$", re.MULTILINE)


def script_queries(text: str, dialect: str) -> list[tuple[str | None, str]]:
    """The ``(output name, query text)`` pairs of a relplan script; one unnamed query for
    text that is no script."""
    if dialect == "flink":
        return _flink_queries(text)
    marks = list(_OUTPUT.finditer(text))
    if not marks:
        return [(None, text)]
    head = text[: marks[0].start()].strip()
    if head:
        raise SqlError("a script of several outputs starts with '-- output: <name>' before each query")
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end() : end].strip().rstrip(";").strip()
        out.append((_unquote(m.group(1)), body))
    return out


def _flink_queries(text: str) -> list[tuple[str | None, str]]:
    # EXECUTE STATEMENT SET BEGIN ... END wraps several INSERTs: its statements are the INSERTs.
    # Only the set's own END goes, the script's last word: a pretty-printed CASE ends in
    # END on a line of its own too (as relplan's first()/last() and var/std do).
    body = text
    head = re.search(r"EXECUTE\s+STATEMENT\s+SET\s+BEGIN\b", text, flags=re.IGNORECASE)
    if head is not None:
        tail = re.search(r"\bEND\s*;?\s*$", text[head.end():], flags=re.IGNORECASE)
        if tail is None:
            raise SqlError("EXECUTE STATEMENT SET BEGIN ... has no END closing it at the script's end")
        body = text[: head.start()] + text[head.end() : head.end() + tail.start()]
    try:
        statements = [s for s in sqlglot.parse(body, read="flink") if s is not None]
    except (ParseError, SqlglotError) as e:
        # Valid Flink that sqlglot's reading of it does not take: not read, and said so.
        raise UnsupportedError(
            f"this Flink script is not read: sqlglot cannot parse it ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if len(statements) == 1 and isinstance(statements[0], exp.Query):
        return [(None, text)]
    sinks: set[str] = set()
    out: list[tuple[str | None, str]] = []
    for s in statements:
        if isinstance(s, exp.Set):
            _check_setting(s)  # the session's settings relplan writes (batch mode, UTC), nothing else
            continue
        if isinstance(s, exp.Create) and str(s.args.get("kind") or "").upper() == "TABLE" and s.expression is None:
            # a declared table (a source or a sink): its columns are the source's, read from sources=
            table = s.this.this if isinstance(s.this, exp.Schema) else s.this
            sinks.add(table.name)
            continue
        if isinstance(s, exp.Insert) and isinstance(s.expression, exp.Query) and not s.args.get("overwrite"):
            target = s.this.this if isinstance(s.this, exp.Schema) else s.this
            if not isinstance(target, exp.Table) or target.name not in sinks:
                raise SqlError(f"INSERT INTO {target.sql(dialect='flink')}: the script declares no such table")
            query = s.expression.copy()
            if s.args.get("with_") is not None and query.args.get("with_") is None:
                query.set("with_", s.args["with_"].copy())
            out.append((target.name, query.sql(dialect="flink")))
            continue
        kind = s.key.upper() if isinstance(s, exp.Expression) else type(s).__name__
        raise SqlError(f"a relplan Flink script holds SET, CREATE TABLE and INSERT INTO a declared table; not {kind}")
    if not out:
        raise SqlError("the Flink script inserts into no table: relplan reads each INSERT INTO a sink as one output")
    return out


#: The settings of relplan's Flink scripts: any other could change what the queries mean.
_SETTINGS = {"execution.runtime-mode": ("batch", "streaming"), "table.local-time-zone": ("UTC",)}


def _check_setting(s: exp.Set) -> None:
    for item in s.expressions:
        eq = item.this if isinstance(item, exp.SetItem) else None
        key = eq.this if isinstance(eq, exp.EQ) else None
        value = eq.expression if isinstance(eq, exp.EQ) else None
        if not (isinstance(key, exp.Literal) and isinstance(value, exp.Literal) and str(value.this) in _SETTINGS.get(str(key.this), ())):
            raise UnsupportedError(
                f"{s.sql(dialect='flink')}: relplan reads a Flink script's batch/streaming mode and UTC "
                "time zone settings only (another setting may change what its queries mean)"
            )


def is_script(text: Any, dialect: Any) -> bool:
    """Whether ``text`` is in relplan's script form, which ``sql_script`` reads: ``-- output:
    name`` before each query, or for Flink a script starting as relplan's do, with ``SET
    'execution.runtime-mode'`` (other DDL and DML stay rp.sql's to refuse)."""
    if not isinstance(text, str) or not isinstance(dialect, str):
        return False
    if dialect.lower() == "flink":
        head = re.sub(r"(?s)^(\s*(--[^\n]*\n|/\*.*?\*/))*\s*", "", text[:10_000])
        return re.match(r"(?i)SET\s+'execution\.runtime-mode'", head) is not None
    return _OUTPUT.search(text) is not None


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'`":
        return name[1:-1]
    return name


def sql_script(text: str, sources: Iterable[Any] = (), *, dialect: str = "duckdb", name: str = "sql") -> Any:
    """``rp.sql`` of a relplan script (``plan.to_sql(dialect)`` of a plan of one or more
    outputs): a plan with one output per query, named as the script names them. Plain
    single queries are read as rp.sql reads them (output ``name``)."""
    from relplan.compiler.plan import Plan
    from relplan.compiler.sql import sql

    if not isinstance(text, str):
        raise SqlError(f"rp.sql takes the query as a string, got {type(text).__name__}")
    parts = script_queries(text, dialect.lower() if isinstance(dialect, str) else dialect)
    sources = list(sources)
    outputs = []
    for out_name, query in parts:
        outputs.extend(sql(query, sources=sources, dialect=dialect, name=out_name or name).outputs)
    return Plan(outputs=tuple(outputs))


def unsupported_idiom(node: exp.Expression) -> str | None:
    """What a relplan lowering idiom the front end does not read yet is, for its error."""
    if isinstance(node, exp.Explode) or (isinstance(node, exp.Anonymous) and str(node.this).upper() in ("UNNEST", "EXPLODE")) or isinstance(node, exp.Unnest):
        return "UNNEST/EXPLODE of GENERATE_SERIES (relplan's hopping-window lowering) is not read back yet; write HOP/window()/time_bucket"
    if isinstance(node, exp.UnixMicros) or isinstance(node, exp.Anonymous) and str(node.this).upper() in (
            "EPOCH_US", "UNIX_MICROS", "MAKE_TIMESTAMP", "TIMESTAMP_MICROS", "TO_TIMESTAMP_LTZ"):
        fname = "UNIX_MICROS" if isinstance(node, exp.UnixMicros) else str(node.this).upper()
        return (f"{fname}() outside a window's ORDER BY (relplan's epoch-microsecond arithmetic of tumbling "
                "windows) is not read back yet; write TUMBLE/window()/time_bucket")
    return None


__all__ = ["arg_extreme", "epoch_micros_of", "inline_named_windows", "micros_offset", "script_queries", "sql_script",
           "unsupported_idiom"]
