"""IR -> sqlglot AST, shared by the SQL backends; each engine overrides a few hooks.

Every node becomes one CTE (``t0, t1, ...`` in topological order), so a shared
subplan is computed in one place and the SQL reads top to bottom like the plan.
Semantics the IR fixes are lowered explicitly here, never left to engine
defaults: division by zero is NULL, ``//`` floors, ``%`` follows the divisor's
sign, aggregates are cast to their IR result type, NULL keys are no entity,
window frames are exact integer ranges over epoch microseconds.
"""

from __future__ import annotations

import copy
import datetime as dt
import gc
import math
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import UnsupportedError
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, Expr, InList, Literal, PythonUDF, Unary, timestamp_text
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
from relplan.ir.windows import Frame
from relplan.backends.asof import extremes_by_join, range_join_ctes, tileable, tiles_ctes, union_subplan


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def lit(n: int) -> exp.Literal:
    return exp.Literal.number(n)


def all_of(conds: list[exp.Expression]) -> exp.Expression:
    """``c1 AND c2 AND ...`` (one condition: itself)."""
    out = conds[0]
    for c in conds[1:]:
        out = exp.And(this=out, expression=c)
    return out


def any_of(conds: list[exp.Expression]) -> exp.Expression:
    out = conds[0]
    for c in conds[1:]:
        out = exp.Or(this=out, expression=c)
    return out


def any_key_null(keys: tuple[str, ...] | list[str], table: str | None = None) -> exp.Expression:
    """Some key is NULL: the row is no entity."""
    return any_of([exp.Is(this=col(k, table), expression=exp.Null()) for k in keys])


def paren(e: exp.Expression) -> exp.Expression:
    # sqlglot's AND/OR are Funcs too, yet operators: NOT (a AND b) must keep its parentheses
    atomic = isinstance(e, (exp.Column, exp.Literal, exp.Paren, exp.Null, exp.Boolean, exp.Func))
    return e if atomic and not isinstance(e, exp.Binary) else exp.Paren(this=e)


class SqlLowering:
    """Lower a plan's sinks to sqlglot SELECTs; subclass per engine."""

    dialect: ClassVar[str] = "duckdb"
    WS: ClassVar[str] = "__window_start_us"  # a hopping window's start, epoch microseconds
    engine: ClassVar[str] = "sql"
    # sqlglot type enums, rendered by each dialect in its own spelling.
    TYPES: ClassVar[dict[str, exp.DataType.Type]] = {
        "Int64": exp.DataType.Type.BIGINT, "Float64": exp.DataType.Type.DOUBLE,
        "String": exp.DataType.Type.VARCHAR, "Bool": exp.DataType.Type.BOOLEAN,
        "Timestamp": exp.DataType.Type.TIMESTAMP, "Date": exp.DataType.Type.DATE,
    }
    UNSUPPORTED: ClassVar[dict[type, str]] = {}
    ARG_EXTREMES: ClassVar[bool] = True  # has ARG_MIN/ARG_MAX (first/last); see arg_extreme
    # Calls Python UDFs by backends/duckdb_udf.sql_name, which the backend registers for
    # each run (DuckDB); elsewhere a UDF is an UnsupportedError naming it (python_udf).
    PYTHON_UDFS: ClassVar[bool] = False
    # Aggregates whose native result type already is the IR's, for every input type
    # (the rest are cast explicitly). DuckDB: SUM(BIGINT) is HUGEINT, so sum is cast.
    NATIVE_RESULT: ClassVar[frozenset[str]] = frozenset(
        {"count", "count_distinct", "mean", "min", "max", "var", "std", "first", "last"}
    )

    # While render_ctes renders text (pretty or not): select items come from a cache (see item()).
    rendering_pretty: bool | None = None

    def __init__(self, table_names: dict[str, str] | None = None) -> None:
        self.table_names = table_names or {}

    @property
    def variant(self) -> object:
        """What, besides a node, decides its SQL text here (the caches' keys start with it)."""
        return type(self)

    # ---- engine hooks -------------------------------------------------------
    def epoch_us(self, e: exp.Expression) -> exp.Expression:
        """Microseconds since the epoch of a timestamp, as BIGINT."""
        return exp.Anonymous(this="EPOCH_US", expressions=[e])

    def from_epoch_us(self, e: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this="MAKE_TIMESTAMP", expressions=[e])

    def timestamp_literal(self, v: dt.datetime) -> exp.Expression:
        return exp.Cast(this=exp.Literal.string(timestamp_text(v)), to=self.dtype(T.Timestamp))

    def arg_extreme(self, largest: bool, value: exp.Expression, key: exp.Expression) -> exp.Expression:
        """The value at the smallest/largest key (rows with a NULL key ignored)."""
        cls = exp.ArgMax if largest else exp.ArgMin
        return cls(this=value, expression=key)

    def struct(self, *parts: exp.Expression) -> exp.Expression:
        return exp.Struct(
            expressions=[exp.PropertyEQ(this=exp.to_identifier(f"f{i}"), expression=p) for i, p in enumerate(parts)]
        )

    def hop_starts(self, last: exp.Expression, first: exp.Expression, slide: int) -> exp.Expression:
        """A set-returning expression of the window starts first, first+slide, ..., last."""
        return exp.Explode(this=exp.Anonymous(this="GENERATE_SERIES", expressions=[first, last, lit(slide)]))

    # ---- types and expressions ---------------------------------------------
    def dtype(self, t: T.DataType) -> exp.DataType:
        return exp.DataType(this=self.TYPES[t.name])

    def cast(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        return exp.Cast(this=e, to=self.dtype(t))

    def as_double(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        """``e`` (of IR type ``t``) as DOUBLE; no cast when it already is one."""
        return e if t == T.Float64 else self.cast(e, T.Float64)

    def mean_input(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        """AVG's argument: DOUBLE unless the engine averages integers exactly into a DOUBLE."""
        return self.as_double(e, t)

    def typed_agg(self, a: AggCall, value: exp.Expression) -> exp.Expression:
        """An aggregate's value in its IR result type (cast only where the engine differs)."""
        return value if a.func in self.NATIVE_RESULT else self.cast(value, a.dtype)

    def literal(self, lit_: Literal) -> exp.Expression:
        v = lit_.value
        if v is None:
            return exp.Null() if lit_.dtype == T.Null else self.cast(exp.Null(), lit_.dtype)
        if isinstance(v, bool):
            return exp.Boolean(this=v)
        if isinstance(v, int):
            if v == -(2**63):  # -(9223372036854775808) would be typed wider than BIGINT
                return self.cast(exp.Literal.string(str(v)), T.Int64)
            return exp.Literal.number(v) if v >= 0 else exp.Neg(this=exp.Literal.number(-v))
        if isinstance(v, float):
            if math.isinf(v):
                return self.cast(exp.Literal.string("inf" if v > 0 else "-inf"), T.Float64)
            body = exp.Literal.number(repr(abs(v)))
            return self.cast(body if v >= 0 else exp.Neg(this=body), T.Float64)
        if isinstance(v, str):
            return exp.Literal.string(v)
        if isinstance(v, dt.datetime):
            return self.timestamp_literal(v)
        if isinstance(v, dt.date):
            return self.cast(exp.Literal.string(v.isoformat()), T.Date)
        raise UnsupportedError(f"literal {v!r} cannot be written in {self.engine} SQL")

    def nonzero(self, e: exp.Expression) -> exp.Expression:
        """``e``, NULL where it is 0 (a divisor: division by zero is NULL)."""
        if isinstance(e, exp.Literal) and not e.is_string and float(e.this) != 0:
            return e
        return exp.Nullif(this=e, expression=lit(0))

    def pymod(self, a: exp.Expression, b: exp.Expression) -> exp.Expression:
        """Python's a % b (sign of b), from SQL's truncating remainder r: r + b where r
        and b differ in sign. Not ((a % b) + b) % b, which overflows for |b| > 2**62."""
        if isinstance(b, exp.Literal) and not b.is_string and int(b.this) > 0:
            # A positive constant (window sizes, tiles): ((a % b) + b) % b cannot overflow.
            inner = exp.Add(this=paren(exp.Mod(this=paren(a), expression=b)), expression=b)
            return exp.Mod(this=paren(inner), expression=b)
        r = exp.Mod(this=paren(a), expression=paren(b))
        differ = exp.NEQ(this=paren(exp.LT(this=r.copy(), expression=lit(0))), expression=paren(exp.LT(this=paren(b.copy()), expression=lit(0))))
        fix = exp.And(this=exp.NEQ(this=r.copy(), expression=lit(0)), expression=differ)
        return exp.Case().when(fix, exp.Add(this=r.copy(), expression=paren(b.copy())), copy=False).else_(r, copy=False)

    def floordiv(self, a: exp.Expression, b: exp.Expression) -> exp.Expression:
        """Python's a // b from SQL's truncating integer division: one less where the
        division is inexact and the signs differ (exact for every Int64, no floats)."""
        q = exp.IntDiv(this=paren(a), expression=paren(b))
        inexact = exp.NEQ(this=exp.Mod(this=paren(a.copy()), expression=paren(b.copy())), expression=lit(0))
        differ = exp.NEQ(this=paren(exp.LT(this=paren(a.copy()), expression=lit(0))), expression=paren(exp.LT(this=paren(b.copy()), expression=lit(0))))
        fix = exp.And(this=inexact, expression=differ)
        return exp.Case().when(fix, exp.Sub(this=q.copy(), expression=lit(1)), copy=False).else_(q, copy=False)

    def expr(self, e: Expr) -> exp.Expression:
        if isinstance(e, Column):
            return col(e.name)
        if isinstance(e, Literal):
            return self.literal(e)
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Unary):
            o = paren(self.expr(e.operand))
            if e.op == "NOT":
                return exp.Not(this=o)
            if e.op == "NEG":
                return exp.Neg(this=o)
            is_null = exp.Is(this=o, expression=exp.Null())
            return is_null if e.op == "IS NULL" else exp.Not(this=is_null)
        if isinstance(e, InList):
            return exp.In(this=paren(self.expr(e.operand)), expressions=[self.expr(v) for v in e.values])
        if isinstance(e, Cast):
            inner = self.expr(e.operand)
            if e.operand.dtype == T.Float64 and e.dtype == T.Int64:
                inner = exp.Anonymous(this="TRUNC", expressions=[inner])  # toward zero, as Python int()
            return self.cast(inner, e.dtype)
        if isinstance(e, Coalesce):
            first, *rest = [self.expr(a) for a in e.args]
            return exp.Coalesce(this=first, expressions=rest)
        if isinstance(e, Case):
            case = exp.Case()
            for c, v in e.whens:
                case = case.when(self.expr(c), self.expr(v), copy=False)
            return case.else_(self.expr(e.otherwise), copy=False)
        if isinstance(e, PythonUDF):
            return self.python_udf(e)
        raise UnsupportedError(f"expression {type(e).__name__} is not supported by the {self.engine} backend")

    def python_udf(self, e: PythonUDF) -> exp.Expression:
        """A call of the name the run registers ``e`` by, where the engine runs Python UDFs."""
        from relplan.backends import duckdb_udf

        if not self.PYTHON_UDFS:
            raise duckdb_udf.unsupported(e, self.engine, "sql")
        return exp.Anonymous(this=duckdb_udf.sql_name(e), expressions=[self.expr(a) for a in e.args])

    def binary(self, e: Binary) -> exp.Expression:
        a, b = paren(self.expr(e.left)), paren(self.expr(e.right))
        op = e.op
        if op == "/":
            return exp.Div(
                this=self.as_double(a, e.left.dtype), expression=self.nonzero(self.as_double(b, e.right.dtype))
            )
        if op == "%":
            return self.pymod(a, self.nonzero(b))
        if op == "//":
            return self.floordiv(a, self.nonzero(b))
        cls = {
            "+": exp.Add, "-": exp.Sub, "*": exp.Mul, "=": exp.EQ, "!=": exp.NEQ, "<": exp.LT,
            "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE, "AND": exp.And, "OR": exp.Or,
        }[op]
        if op in ("+", "-", "*") and e.dtype == T.Float64:
            a, b = self.as_double(a, e.left.dtype), self.as_double(b, e.right.dtype)
        return cls(this=a, expression=b)

    # ---- aggregates ---------------------------------------------------------
    def agg(self, a: AggCall) -> exp.Expression:
        """The aggregate call (no OVER), filter folded in as CASE, cast to its IR type."""
        cond = self.expr(a.filter) if a.filter is not None else None

        def masked(v: exp.Expression) -> exp.Expression:
            return v if cond is None else exp.Case().when(cond, v, copy=False)

        arg = self.expr(a.arg) if a.arg is not None else None
        f = a.func
        if f == "count":
            out: exp.Expression = (
                exp.Count(this=exp.Star()) if arg is None and cond is None
                else exp.Count(this=masked(arg if arg is not None else lit(1)))
            )
        elif f == "count_distinct":
            out = exp.Count(this=exp.Distinct(expressions=[masked(arg)]))  # type: ignore[arg-type]
        elif f == "sum":
            out = exp.Sum(this=masked(arg))  # type: ignore[arg-type]
        elif f == "mean":
            out = exp.Avg(this=masked(self.mean_input(arg, a.arg.dtype)))  # type: ignore[arg-type, union-attr]
        elif f in ("min", "max"):
            out = (exp.Min if f == "min" else exp.Max)(this=masked(arg))  # type: ignore[arg-type]
        elif f in ("var", "std"):
            name = "VAR_SAMP" if f == "var" else "STDDEV_SAMP"
            out = exp.Anonymous(this=name, expressions=[masked(self.as_double(arg, a.arg.dtype))])  # type: ignore[arg-type, union-attr]
        elif f in ("first", "last"):
            assert arg is not None and a.order is not None
            present = exp.Not(this=exp.Is(this=paren(arg), expression=exp.Null()))
            keep = present if cond is None else exp.And(this=paren(cond), expression=paren(present))
            key = exp.Case().when(keep, self.struct(self.expr(a.order), arg), copy=False)
            out = self.arg_extreme(f == "last", arg, key)
        else:
            raise UnsupportedError(f"aggregate {f!r} is not supported by the {self.engine} backend")
        return out

    def masked(self, arg: Expr | None, cond: Expr | None) -> exp.Expression:
        """An aggregate's argument (1 for counting rows), NULL where its filter drops the row."""
        value = self.expr(arg) if arg is not None else lit(1)
        return value if cond is None else exp.Case().when(self.expr(cond), value, copy=False)

    def over(self, a: AggCall, **window: exp.Expression | list[exp.Expression]) -> exp.Expression:
        """``a`` computed over a window (``window``: exp.Window's arguments, here a named window)."""
        return exp.Window(this=self.agg(a), **window)

    def exact_mean(self, a: AggCall, over: Any = None) -> exp.Expression:
        """mean of Int64 as DuckDB computes it: an exact sum (DECIMAL(38,0)) over the count,
        rounded once, for engines whose AVG(BIGINT) adds DOUBLEs (Spark) or truncates to
        BIGINT (Flink). ``over``: exp.Window's arguments, for a window."""
        value = self.masked(a.arg, a.filter)
        decimal = exp.DataType.build("DECIMAL(38, 0)")
        total: exp.Expression = exp.Sum(this=exp.Cast(this=value, to=decimal))
        count: exp.Expression = exp.Count(this=value.copy())
        if over is not None:
            total, count = exp.Window(this=total, **over), exp.Window(this=count, **over)
        return exp.Div(this=self.cast(total, T.Float64), expression=exp.Nullif(this=count, expression=lit(0)))

    # ---- nodes ----------------------------------------------------------------
    def check_supported(self, n: Node) -> None:
        for kind, reason in self.UNSUPPORTED.items():
            if isinstance(n, kind):
                raise UnsupportedError(f"{n.kind} ({n.details()}) is not supported by the {self.engine} backend: {reason}")

    def lower(self, sink: Sink) -> exp.Select:
        """One SELECT computing ``sink``, as one sqlglot AST: CTEs per node (one for most,
        several for hopping windows and tiled frames), in topological order."""
        names: dict[Node, str] = {}
        ctes: list[tuple[str, exp.Expression]] = []
        for n in walk(sink.input):
            self.check_supported(n)
            for name, query in self.node(n, [names[i] for i in n.inputs], len(ctes)):
                ctes.append((name, query))
            names[n] = ctes[-1][0]
        query = self.final_select(sink, names[sink.input])
        for name, q in ctes:
            # copy=False: the builder's default deep copy of the growing query per CTE
            # made lowering quadratic (minutes for a thousand stacked features).
            query = query.with_(ident(name), as_=q, copy=False)
        return query

    def final_select(self, sink: Sink, last: str) -> exp.Select:
        return exp.select(*[col(f.name) for f in sink.schema]).from_(ident(last), copy=False)

    def node(self, n: Node, ins: list[str], k: int) -> list[tuple[str, exp.Expression]]:
        """CTEs for ``n`` (its last one is its result); ``k`` numbers new CTE names."""
        t = f"t{k}"
        if isinstance(n, Source):
            table = exp.Table(this=ident(self.table_names.get(n.name, n.name)))
            return [(t, exp.select(*[col(f.name) for f in n.schema]).from_(table, copy=False))]
        if isinstance(n, Filter):
            return [(t, exp.select("*").from_(ident(ins[0]), copy=False).where(self.expr(n.predicate), copy=False))]
        if isinstance(n, Project):
            return [(t, exp.Select(expressions=self.project_items(n.exprs)).from_(ident(ins[0]), copy=False))]
        if isinstance(n, WindowAggregate):
            return self.window_aggregate_ctes(n, ins[0], k)
        if isinstance(n, Aggregate):
            keys = [self.group_key(k_, n.input.schema.dtype(k_)) for k_ in n.keys]
            q = exp.select(*[as_name(e, k_) for e, k_ in zip(keys, n.keys)], *[exp.alias_(self.typed_agg(a, self.agg(a)), ident(a.name), copy=False) for a in n.aggs])
            q = q.from_(ident(ins[0]), copy=False)
            if n.keys:
                q = q.where(self.keys_present(n.keys), copy=False).group_by(*[e.copy() for e in keys], copy=False)
            return [(t, q)]
        if isinstance(n, TimeWindowAggregate):
            return self.time_window_aggregate(n, ins[0], k)
        if isinstance(n, Join):
            return [(t, self.join(n, ins[0], ins[1]))]
        if isinstance(n, AsOfJoin):
            return self.asof_join_ctes(n, ins[0], ins[1], k)
        if isinstance(n, Union):
            q: exp.Expression = exp.select("*").from_(ident(ins[0]), copy=False)
            for other in ins[1:]:
                q = exp.union(q, exp.select("*").from_(ident(other), copy=False), distinct=False)
            return [(t, q)]
        raise UnsupportedError(f"{n.kind} is not supported by the {self.engine} backend")

    def project_items(self, exprs: tuple[tuple[str, Expr], ...]) -> list[exp.Expression]:
        """A projection's select items; while rendering, in blocks of consecutive items
        (see block()), a column selected under its own name keyed by the name alone
        (its text is the name's)."""
        def items(part: tuple[tuple[str, Expr], ...]) -> list[exp.Expression]:
            return [self.item(("project", nm, e), lambda nm=nm, e=e: self.project_item(nm, e)) for nm, e in part]

        if self.rendering_pretty is None or len(exprs) < _BLOCK:
            return items(exprs)
        out: list[exp.Expression] = []
        for i in range(0, len(exprs), _BLOCK):
            part = exprs[i:i + _BLOCK]
            key = tuple(nm if type(e) is Column and e.name == nm else (nm, e) for nm, e in part)
            out += self.block(("project", key), lambda part=part: items(part))
        return out

    def block(self, key: Hashable, build: Callable[[], list[exp.Expression]]) -> list[exp.Expression]:
        """Consecutive select items (built by ``build``, ``key`` saying everything their
        text depends on) as one item whose text is theirs joined as a select list joins
        them: each item, a comma, a line break (a space unless pretty). Laid out the same
        by cte_text and by sqlglot (which rstrips each item's line: no item's text
        ends in a space). One look-up for a block of a wide node's items, not one each.
        The items themselves where one is not cached text (see item())."""
        pretty = self.rendering_pretty
        cache_key = (self.variant, "block", key, pretty)
        text = _ITEM_TEXT.get(cache_key)
        if text is None:
            items = build()
            texts = []
            for e in items:
                t = e.this if isinstance(e, exp.Var) and not e.comments else None
                if not isinstance(t, str) or not t or t != t.rstrip() or pretty is None:
                    return items
                texts.append(t)
            if _generator(self.dialect, pretty).leading_comma:
                return items
            text = bounded_put(_ITEM_TEXT, cache_key, (",\n" if pretty else ", ").join(texts), _ITEM_TEXT_MAX)
        return [exp.Var(this=text)]

    def project_item(self, name: str, e: Expr) -> exp.Expression:
        return col(name) if isinstance(e, Column) and e.name == name else exp.alias_(self.expr(e), ident(name), copy=False)

    def item(self, key: Hashable, build: Callable[[], exp.Expression]) -> exp.Expression:
        """A select item, built by ``build``; ``key`` says everything its text depends on
        besides the lowering's variant.

        While ``render_ctes`` renders text, the item is rendered alone and its text
        cached: a node that gained one aggregate renders that one and reuses the text
        of the other thousand. sqlglot renders a select list's items one by one,
        context-free, and indents their lines as a whole, so the text is the same as
        when the item is rendered in place (the render property test checks it)."""
        pretty = self.rendering_pretty
        if pretty is None:
            return build()
        cache_key = (self.variant, key, pretty)
        text = _ITEM_TEXT.get(cache_key)
        if text is None:
            e = build()
            text = self.sql_text(e, pretty)
            # Pretty printing indents lines, but not those of a string literal in place:
            # such an item is rendered in place (the AST is searched only where the text
            # has a quote and a line break, which few items have).
            if pretty and "'" in text and "\n" in text and any(
                lit_.is_string and "\n" in lit_.this for lit_ in e.find_all(exp.Literal)
            ):
                return build()
            bounded_put(_ITEM_TEXT, cache_key, text, _ITEM_TEXT_MAX)
        return exp.Var(this=text)

    def input_dependence(self, n: Node) -> object:
        """What of its inputs' schemas the SQL text of ``n`` depends on (a part of the key
        of its cached CTE text): every input's schema, but nothing for a projection or a
        filter (their expressions name their columns, with types) and only the partition
        keys' types for a window aggregate without tiles (it selects ``*``): a node keeps
        its text when a feature below it moves to another column position. A subclass
        lowering such a node from more of its input's schema must say so here."""
        if isinstance(n, (Project, Filter)):
            return ()
        if isinstance(n, WindowAggregate) and all(f.tile is None for f, _ in n.windows):
            return tuple(n.input.schema.dtype(k) for k in n.keys)
        return tuple(i.schema for i in n.inputs)

    def asof_join_ctes(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        """A point-in-time join by its chosen lowering (backends/asof.py); ``union`` where
        the engine has no lowering of that name."""
        placeholders = (Source(spine, n.spine.schema), Source(events, n.events.schema))
        names = dict(zip(placeholders, (spine, events)))
        if not self.ARG_EXTREMES and any(a.func in ("first", "last") for a in n.aggs):
            return self.subplan_ctes(extremes_by_join(n, *placeholders), names, k)
        if n.lowering == "range_join" and n.row_id is not None:
            return range_join_ctes(self, n, spine, events, k)
        if n.lowering == "tiles" and tileable(n):
            return tiles_ctes(self, n, spine, events, k)
        return self.subplan_ctes(union_subplan(n, *placeholders), names, k)

    def subplan_ctes(self, root: Node, names: dict[Node, str], k: int) -> list[tuple[str, exp.Expression]]:
        """CTEs computing ``root``, an IR subplan a node is lowered to, over nodes
        ``names`` has CTEs for already."""
        names = dict(names)
        ctes: list[tuple[str, exp.Expression]] = []
        for m in walk(root):
            if m in names:
                continue
            self.check_supported(m)
            made = self.node(m, [names[i] for i in m.inputs], k + len(ctes))
            ctes += made
            names[m] = made[-1][0]
        return ctes

    def group_key(self, name: str, dtype: T.DataType, table: str | None = None) -> exp.Expression:
        """A GROUP BY / PARTITION BY / join key: the column, unless the engine groups
        -0.0 and 0.0 apart (the IR's keys compare as numbers)."""
        return col(name, table)

    def keys_present(self, keys: tuple[str, ...]) -> exp.Expression:
        return all_of([exp.Not(this=exp.Is(this=col(k), expression=exp.Null())) for k in keys])

    def frame(self, f: Frame) -> exp.WindowSpec:
        """Integer RANGE bounds over epoch microseconds; exclusive edges move by 1us."""
        if f.lower is None:
            start: exp.Expression | str = "UNBOUNDED"
        else:
            start = lit(f.lower if f.lower_inclusive else f.lower - 1)
        up = f.upper if f.upper_inclusive else f.upper + 1
        if up == 0:
            return exp.WindowSpec(kind="RANGE", start=start, start_side="PRECEDING", end="CURRENT ROW")
        return exp.WindowSpec(kind="RANGE", start=start, start_side="PRECEDING", end=lit(up), end_side="PRECEDING")

    def window_aggregate_ctes(self, n: WindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        """CTEs for a window aggregate: one SELECT of window functions. Engines with a
        tiled lowering override this; here a frame's ``tile`` is ignored (same rows)."""
        return [(f"t{k}", self.window_aggregate(n, src))]

    def window_order(self, order: exp.Expression) -> exp.Expression:
        """The ORDER BY of a frame: epoch microseconds, so frames are integer RANGEs."""
        return self.epoch_us(order)

    def window_aggregate(
        self, n: WindowAggregate, src: str, windows: tuple[tuple[Frame, tuple[AggCall, ...]], ...] | None = None
    ) -> exp.Select:
        """``SELECT *, agg OVER w<i> ... WINDOW w<i> AS (...)``: one named window per frame
        (the SQL stays short, and so does emitting it for a thousand features).
        ``windows``: a part of ``n.windows`` (default all of it)."""
        cols: list[exp.Expression] = [exp.Star()]
        named: dict[Frame, str] = {}
        if self.rendering_pretty is not None:  # while rendering: one block per frame (see block())
            for frame, aggs in n.windows if windows is None else windows:
                window = None if _holds_no_time(frame) else _window_name(named, frame)
                stand_in = None if window is None else _WINDOW_STAND_IN * len(window)
                own = {} if window is None else {frame: window}
                part = self.block(
                    ("over", aggs, stand_in, n.keys),
                    lambda frame=frame, aggs=aggs, own=own: self.window_items(n, [(frame, a) for a in aggs], dict(own), True),
                )
                if window is not None and len(part) == 1 and isinstance(part[0], exp.Var):
                    part = [exp.Var(this=part[0].this.replace(stand_in, window))]  # type: ignore[arg-type]
                elif window is not None:  # not cached: built again with the window's own name
                    part = self.window_items(n, [(frame, a) for a in aggs], own)
                cols += part
        else:
            calls = n.calls if windows is None else [(f, a) for f, aggs in windows for a in aggs]
            cols += self.window_items(n, calls, named)
        q = exp.Select(expressions=cols).from_(ident(src), copy=False)
        if named:
            q.set("windows", [self.window_definition(n, frame, name) for frame, name in named.items()])
        return q

    def window_items(
        self, n: WindowAggregate, calls: list[tuple[Frame, AggCall]], named: dict[Frame, str], stand_ins: bool = False
    ) -> list[exp.Expression]:
        """The select items of ``calls`` over their named windows (``named`` gains the
        frames it lacks); while rendering, their cached text, which keeps the stand-in
        for the window's name where ``stand_ins`` (a block's, see window_aggregate)."""
        cols: list[exp.Expression] = []
        for frame, a in calls:
            # e.g. (t-1us, t): Spark refuses a RANGE frame whose start is after its end.
            window = None if _holds_no_time(frame) else _window_name(named, frame)
            if window is None or self.rendering_pretty is None:
                cols.append(self.item(("over", a, window, n.keys), lambda a=a, w=window: self.window_item(a, w, n.keys)))
                continue
            # Text cached with a stand-in for the window's name, of the name's length (the
            # same line breaks): a frame added before it renames the window, not the item.
            stand_in = _WINDOW_STAND_IN * len(window)
            item = self.item(("over", a, stand_in, n.keys), lambda a=a, w=stand_in: self.window_item(a, w, n.keys))
            if isinstance(item, exp.Var):
                cols.append(item if stand_ins else exp.Var(this=item.this.replace(stand_in, window)))
            else:  # not cached (see item()): built again with the window's own name
                cols.append(self.window_item(a, window, n.keys))
        return cols

    def window_definition(self, n: WindowAggregate, frame: Frame, name: str) -> exp.Expression:
        """The named window ``name AS (PARTITION BY ... ORDER BY ... RANGE ...)`` of
        ``frame`` in ``n``'s WINDOW clause.

        While ``render_ctes`` renders text, its text is cached (as an item's is) with a
        stand-in for the name, of the name's length: a node that gained a frame renders
        that one window, not all of them again. The text is rendered in a SELECT's
        WINDOW clause, as in place: sqlglot renders the clause's windows one by one,
        joined by ", ", and indents their lines as a whole (none holds a string literal;
        one that would is rendered in place)."""
        pretty = self.rendering_pretty
        if pretty is None:
            return self.window_spec(n, frame, name)
        dtypes = tuple(n.input.schema.dtype(k) for k in n.keys)
        stand_in = _WINDOW_STAND_IN * len(name)
        cache_key = (self.variant, "window", frame, n.keys, dtypes, n.order, stand_in, pretty)
        text = _ITEM_TEXT.get(cache_key)
        if text is None:
            probe = exp.Select(expressions=[exp.Var(this=_ITEMS_STAND_IN)]).from_(ident("t"), copy=False)
            probe.set("windows", [self.window_spec(n, frame, stand_in)])
            rendered = self.sql_text(probe, pretty)
            head, found, text = rendered.partition("WINDOW ")
            if not found or "'" in text or "WINDOW " in text or not text.startswith(self.sql_text(ident(stand_in), pretty)):
                return self.window_spec(n, frame, name)
            bounded_put(_ITEM_TEXT, cache_key, text, _ITEM_TEXT_MAX)
        return exp.Var(this=text.replace(stand_in, name, 1))

    def window_spec(self, n: WindowAggregate, frame: Frame, name: str) -> exp.Window:
        """The AST of ``window_definition``."""
        return exp.Window(
            this=ident(name),
            partition_by=[self.group_key(k, n.input.schema.dtype(k)) for k in n.keys],
            order=exp.Order(expressions=[exp.Ordered(this=self.window_order(col(n.order)))]),
            spec=self.frame(frame),
        )

    def window_item(self, a: AggCall, window: str | None, keys: tuple[str, ...]) -> exp.Expression:
        """``a`` over the named ``window`` (None: a frame holding no time, over which the
        aggregate over no rows is 0 for a count, NULL otherwise), as a select item."""
        if window is None:
            empty = a.func in ("count", "count_distinct")
            value: exp.Expression = lit(0) if empty else self.cast(exp.Null(), a.dtype)
        else:
            value = self.typed_agg(a, self.over(a, alias=ident(window), over="OVER"))
        if keys:  # a NULL key is no entity: its rows get NULL, not the NULL group's aggregate
            # A bare NULL: the CASE takes the ELSE branch's type, and a thousand
            # CAST(NULL AS ...) were a third of the time sqlglot took to emit Spark SQL.
            value = exp.Case().when(any_key_null(keys), exp.Null(), copy=False).else_(value, copy=False)
        return exp.alias_(value, ident(a.name), copy=False)

    def time_window_aggregate(self, n: TimeWindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        w = n.window
        e = self.epoch_us(col(n.time))
        last = exp.Sub(this=e, expression=paren(self.pymod(e, lit(w.slide))))
        starts_name = f"t{k}"
        # A row with a NULL key is no entity; one with a NULL time is in no window.
        base = exp.select("*").from_(ident(src), copy=False).where(self.keys_present((*n.keys, n.time)), copy=False)
        ctes: list[tuple[str, exp.Expression]] = []
        if w.is_tumbling:
            ctes.append((starts_name, base.select(exp.alias_(last, ident(self.WS), copy=False))))
        else:
            # Every start s = j * slide with e - size < s <= e; generate a superset, then trim.
            span = -(-w.size // w.slide) * w.slide
            ctes.append((f"t{k}", self.hop_start_rows(base, last, span, w.slide)))
            starts_name = f"t{k + 1}"
            trimmed = exp.select("*").from_(ident(f"t{k}"), copy=False).where(
                exp.GT(this=exp.Add(this=col(self.WS), expression=lit(w.size)), expression=self.epoch_us(col(n.time)))
            )
            ctes.append((starts_name, trimmed))
        ws = col(self.WS)
        keys = [self.group_key(key, n.input.schema.dtype(key)) for key in n.keys]
        q = exp.select(
            *[as_name(e, key) for e, key in zip(keys, n.keys)],
            exp.alias_(self.from_epoch_us(ws), ident(WINDOW_START), copy=False),
            exp.alias_(self.from_epoch_us(exp.Add(this=ws, expression=lit(w.size))), ident(WINDOW_END), copy=False),
            *[exp.alias_(self.typed_agg(a, self.agg(a)), ident(a.name), copy=False) for a in n.aggs],
        ).from_(ident(starts_name), copy=False).group_by(*[e.copy() for e in keys], ws, copy=False)
        ctes.append((f"t{k + len(ctes)}", q))
        return ctes

    def hop_start_rows(self, base: exp.Select, last: exp.Expression, span: int, slide: int) -> exp.Select:
        """``base``'s rows, each once per window start last - span, ..., last (in ``WS``)."""
        first = exp.Sub(this=paren(last), expression=lit(span))
        return base.select(exp.alias_(self.hop_starts(last, first, slide), ident(self.WS), copy=False))

    def join(self, n: Join, left: str, right: str) -> exp.Select:
        """``SELECT l.*, r.* FROM left l <kind> JOIN right r ON keys [AND interval]``.

        A lookup join is lowered as the equi-join it is: its one row per key is checked
        on the data before the run (backends/lookup_check.py), not by the engine."""
        conds = [
            exp.EQ(this=self.group_key(lk, n.left.schema.dtype(lk), "l"), expression=self.group_key(rk, n.right.schema.dtype(rk), "r"))
            for lk, rk in n.on
        ]
        if n.left_time is not None and n.right_time is not None:
            conds.append(self.interval_condition(n.left_time, n.right_time, n.before, n.after))
        cond = all_of(conds) if conds else None
        kind = {"inner": "inner", "left": "left", "right": "right", "full": "full outer"}[n.how]
        return (
            exp.select(*[col(f.name, "l") for f in n.left.schema], *[col(f.name, "r") for f in n.right.schema])
            .from_(exp.Table(this=ident(left)).as_(ident("l")), copy=False)
            .join(exp.Table(this=ident(right)).as_(ident("r")), on=cond, join_type=kind)
        )

    def interval_condition(self, left_time: str, right_time: str, before: int, after: int) -> exp.Expression:
        """An interval join's time bounds, both inclusive:
        ``l.left_time - before <= r.right_time <= l.left_time + after``.

        Compared as epoch microseconds (integers), as window frames are: exact to the
        microsecond on every engine, with no INTERVAL literal spelled per dialect. A
        NULL time makes the comparison NULL, so the pair does not match (an outer
        join keeps the row unmatched). An engine whose interval join must see the
        time columns themselves (Flink streaming: time attributes) overrides this."""
        lt, rt = self.epoch_us(col(left_time, "l")), self.epoch_us(col(right_time, "r"))
        return exp.And(
            this=exp.GTE(this=rt, expression=_shifted(lt, -before)),
            expression=exp.LTE(this=rt.copy(), expression=_shifted(lt.copy(), after)),
        )

    def render(self, sink: Sink, *, pretty: bool = True) -> str:
        """The SQL of one output; outputs seen before come from a cache (they are values)."""
        key = (self.variant, tuple(sorted(self.table_names.items())), sink, pretty)
        sql = _RENDERED.get(key)
        if sql is None:
            sql = bounded_put(_RENDERED, key, self.render_ctes(sink, pretty), _RENDERED_MAX)
        return sql

    def render_ctes(self, sink: Sink, pretty: bool) -> str:
        """The text of ``lower(sink)``, assembled from each node's CTE text.

        A node's CTEs are rendered once per (node fields, input names, position) and cached,
        so after one feature changes only the CTEs of the nodes that changed are
        rendered again: sqlglot's generator is most of the cost of emitting SQL.
        The text equals ``lower(sink).sql(...)`` (a property test checks it).
        """
        rendering = copy.copy(self)  # a lowering may be shared by threads: the flag is this call's
        rendering.rendering_pretty = pretty
        with gc_paused():
            return rendering._render_ctes(sink, pretty)

    def _render_ctes(self, sink: Sink, pretty: bool) -> str:
        names: dict[Node, str] = {}
        parts: list[tuple[str, str]] = []
        for n in walk(sink.input):
            ins = tuple(names[i] for i in n.inputs)
            # What a node's CTE text depends on: its own fields, its inputs' names and
            # schemas, its position. Not the whole subplan below it: a node above a
            # changed feature keeps its text. A source's text (the one place a table
            # name appears) is cheap and not cached: table names may change every run.
            local = (_own(n), self.input_dependence(n))
            key = (self.variant, local, ins, len(parts), pretty)
            texts = None if isinstance(n, Source) else _CTE_TEXT.get(key)
            if texts is None:
                self.check_supported(n)
                texts = tuple((name, self.cte_text(name, q, pretty)) for name, q in self.node(n, list(ins), len(parts)))
                if not isinstance(n, Source):
                    bounded_put(_CTE_TEXT, key, texts, _CTE_TEXT_MAX)
            parts += texts
            names[n] = texts[-1][0]
        # The outer SELECT names every output column: its text depends on those names
        # and its input's alone, and is the same after most changes (1,000 columns were
        # a quarter of re-emitting a plan after one feature changed).
        final_key = (self.variant, "final", type(sink), sink.schema.names, names[sink.input], pretty)
        final = _CTE_TEXT.get(final_key)
        if final is None:
            final = self.sql_text(self.final_select(sink, names[sink.input]), pretty)
            bounded_put(_CTE_TEXT, final_key, final, _CTE_TEXT_MAX)
        # sqlglot renders each CTE (``"t0" AS (...)``, indented, string literals intact).
        return f"WITH {', '.join(cte for _, cte in parts)}{chr(10) if pretty else ' '}{final}"

    def cte_text(self, name: str, q: exp.Expression, pretty: bool) -> str:
        """The text of ``"name" AS (q)``.

        A SELECT whose items are all cached text (``exp.Var``, see item()) is rendered
        around one stand-in item, whose line is then replaced by the items' text as
        sqlglot lays out a select list: an item, its comma, a line break, each line
        indented alike (no item has a comment, none is empty). A thousand items are
        joined as strings instead of passed through the generator one by one (most
        of emitting a node again after one feature changed)."""
        cte = exp.CTE(this=q, alias=exp.TableAlias(this=ident(name)))
        items = q.expressions if isinstance(q, exp.Select) else []
        if len(items) < _JOINED_ITEMS_MIN or _generator(self.dialect, pretty).leading_comma:
            return self.sql_text(cte, pretty)
        texts = []
        for e in items:
            if isinstance(e, exp.Var) and isinstance(e.this, str) and e.this and not e.comments:
                texts.append(e.this)
            elif isinstance(e, exp.Star) and not e.args and not e.comments:
                texts.append("*")
            else:
                return self.sql_text(cte, pretty)
        q.set("expressions", [exp.Var(this=_ITEMS_STAND_IN)])
        try:
            skeleton = self.sql_text(cte, pretty)
        finally:
            q.set("expressions", items)
        if not pretty:
            head, found, tail = skeleton.partition(_ITEMS_STAND_IN)
            if not found or _ITEMS_STAND_IN in tail:
                return self.sql_text(cte, pretty)
            return f"{head}{', '.join(texts)}{tail}"
        at = skeleton.find(_ITEMS_STAND_IN)
        line_start = skeleton.rfind("\n", 0, at) + 1
        pad = skeleton[line_start:at]
        if at < 0 or pad.strip(" ") or _ITEMS_STAND_IN in skeleton[at + 1:] or skeleton[at + 1:at + 2] not in ("\n", ""):
            return self.sql_text(cte, pretty)
        last = len(texts) - 1
        block = "\n".join((t if i == last else f"{t}, ").rstrip() for i, t in enumerate(texts))
        if pad:
            block = pad + block.replace("\n", "\n" + pad)
        return f"{skeleton[:line_start]}{block}{skeleton[at + 1:]}"

    def sql_text(self, e: exp.Expression, pretty: bool) -> str:
        # copy=False: the AST was built for this call alone, and sqlglot's defensive
        # deep copy was a third of the cost of emitting SQL for large plans.
        return _generator(self.dialect, pretty).generate(e, copy=False)

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        parts = []
        for s in sinks:
            sql = self.render(s, pretty=pretty)
            parts.append(f"-- output: {s.name}\n{sql}" if len(sinks) > 1 else sql)
        return ";\n\n".join(parts) + ";"


class _Own:
    """A node's own fields and kind (``(type(n), n._own_values())``) as a key, hashed
    once: a projection of a thousand columns hashes them once, not once per dialect
    rendered (see _own)."""

    __slots__ = ("values", "_hash")

    def __init__(self, n: Node) -> None:
        self.values = (type(n), n._own_values())
        self._hash = hash(self.values)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _Own) and self._hash == other._hash and self.values == other.values)


def _own(n: Node) -> _Own:
    """``_Own(n)``, the same object for the same node while it is remembered."""
    got = _OWN.get(id(n))
    if got is not None and got[0] is n:  # (the entry holds the node: its id is not reused)
        return got[1]
    own = _Own(n)
    if len(_OWN) >= _OWN_MAX:
        _OWN.clear()  # (one operation: safe for threads rendering at once)
    _OWN[id(n)] = (n, own)
    return own


_OWN: dict[int, tuple[Node, _Own]] = {}
_OWN_MAX = 4096


def _generator(dialect: str, pretty: bool) -> Any:
    """sqlglot's generator for ``dialect``, one per thread: a generator keeps state only
    for the call, and making one per select item was a tenth of emitting SQL cold."""
    made = _GENERATORS.__dict__
    g = made.get((dialect, pretty))
    if g is None:
        g = made[(dialect, pretty)] = Dialect.get_or_raise(dialect).generator(pretty=pretty, identify=True)
    return g


_GENERATORS = threading.local()


def _shifted(us: exp.Expression, by: int) -> exp.Expression:
    """``us + by`` (microseconds), without a ``+ 0``."""
    if by == 0:
        return us
    return exp.Add(this=us, expression=lit(by)) if by > 0 else exp.Sub(this=us, expression=lit(-by))


def as_name(e: exp.Expression, name: str) -> exp.Expression:
    """``e AS name``, or the column itself where ``e`` is it."""
    return e if isinstance(e, exp.Column) and e.name == name else exp.alias_(e, ident(name), copy=False)


_WINDOW_STAND_IN = "\x00"  # no user's SQL text holds a NUL
_ITEMS_STAND_IN = "\x01"  # nor this
_JOINED_ITEMS_MIN = 8  # fewer select items are rendered by sqlglot whole
_BLOCK = 64  # a projection's items per block (see SqlLowering.block)


def _window_name(named: dict[Frame, str], frame: Frame) -> str:
    """The named window of ``frame``. A frame holding the same microseconds as one named
    before (``(t-1h, t)`` and ``(t-1h, t-1us]``) takes its window: their RANGE clauses are
    one text, and Flink refuses a WINDOW clause that defines a window twice. The frame
    first named, as written, defines it."""
    name = named.get(frame)
    if name is None:
        held = _held(frame)
        name = next((w for f, w in named.items() if _held(f) == held), None)
        if name is None:
            name = named[frame] = f"w{len(named)}"
    return name


def _held(f: Frame) -> tuple[int | None, int]:
    """The first and last offsets of the microseconds ``f`` holds (the RANGE clause's)."""
    return (None if f.lower is None else f.lower if f.lower_inclusive else f.lower - 1,
            f.upper if f.upper_inclusive else f.upper + 1)


def _holds_no_time(f: Frame) -> bool:
    """No microsecond lies in the frame: its first offset is below its last."""
    if f.lower is None:
        return False
    first = f.lower if f.lower_inclusive else f.lower - 1
    last = f.upper if f.upper_inclusive else f.upper + 1
    return first < last


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while SQL is rendered.

    Rendering builds and drops hundreds of thousands of sqlglot nodes, cyclic through
    their parent links: the collector's passes over them (and over every live object)
    were a third of the time to emit SQL for a thousand features. What they leave is
    collected as usual once the collector runs again. Nested and concurrent uses share
    one pause; a collector the caller disabled stays disabled.
    """
    global _GC_PAUSES, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_PAUSES == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_PAUSES += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES -= 1
            if _GC_PAUSES == 0 and _GC_WAS_ENABLED:
                gc.enable()


_GC_LOCK = threading.Lock()
_GC_PAUSES = 0
_GC_WAS_ENABLED = True


def bounded_put(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> Any:
    with _CACHE_LOCK:  # plans may be rendered from several threads at once
        while len(cache) >= limit:
            cache.pop(next(iter(cache)))  # the oldest entry
        cache[key] = value
    return value


# Rendered SQL by (lowering, table names, sink, pretty), and the CTE texts of each
# node but sources by (lowering, node fields, input CTE names, position, pretty).
_CACHE_LOCK = threading.Lock()
_RENDERED: dict[tuple[object, ...], str] = {}
_RENDERED_MAX = 256
_CTE_TEXT: dict[tuple[object, ...], tuple[tuple[str, str], ...]] = {}
_CTE_TEXT_MAX = 50_000
# The text of select items by (lowering, item, pretty): see SqlLowering.item.
_ITEM_TEXT: dict[tuple[object, ...], str] = {}
_ITEM_TEXT_MAX = 200_000
