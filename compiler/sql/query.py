"""A parsed SQL query to an IR relation: FROM, joins, WHERE, GROUP BY, windows, SELECT.

Scoping is SQL's: a column is looked up among the relations of the FROM clause (by
qualifier when written ``t.col``); CTEs are visible to the queries after them; a
subquery in FROM is a relation of its own. The relation's IR columns keep the names
the user sees where they can, and internal helper columns start with ``__sql_``.

Where the IR's conventions differ from SQL's, the builder writes SQL's meaning out:

- GROUP BY and PARTITION BY keep a NULL key as a group (the IR drops it as "no
  entity"): each key is grouped as (key IS NULL, COALESCE(key, zero)).
- A window ordered by a time column with NULLs puts them first (Spark, Flink) or last
  (DuckDB) unless NULLS FIRST/LAST says: the order column is COALESCE(time, the
  earliest or latest timestamp), and a frame with a bounded start is partitioned by
  (time IS NULL) too, so NULL-time rows see exactly each other, as SQL's peers do.
- ``RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW`` includes the row one day
  earlier: the IR frame is ``[t-1d, t]`` (relplan's own ``sliding("1d")`` is ``(t-1d, t]``).
- Tumbling and hopping groups: DuckDB's ``time_bucket``, Flink's TUMBLE/HOP table
  functions and Spark's ``GROUP BY window(ts, '1 hour'[, '10 minutes'])`` with
  ``window.start``/``window.end`` become a TimeWindowAggregate (windows aligned to the epoch).
- Flink's AVG of a BIGINT, over groups and window frames, is the truncated BIGINT
  ``SUM / COUNT`` (semantics.py lists each dialect's operators).
- relplan's own SQL (``plan.to_sql``) reads back through emitted.py's idiom readers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from difflib import get_close_matches

from sqlglot import exp

from relplan.compiler.sql import emitted, semantics
from relplan.compiler.sql.expressions import Located, _head, _sql, convert, fail, interval_us
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import RelplanError, SchemaError, SqlError, TypeMismatchError, UnsupportedError
from relplan.ir.expr import Case, Cast, Coalesce, Column, Expr, Literal, Unary, and_all
from relplan.ir.nodes import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    Filter,
    Join,
    Node,
    Project,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.ir.windows import Frame, TimeWindow

EARLIEST = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)

_AGGS = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "mean", exp.Min: "min", exp.Max: "max",
         exp.Variance: "var", exp.Stddev: "std", exp.StddevSamp: "std"}
_AGG_NAMES = {"VAR_SAMP": "var", "VARIANCE": "var", "STDDEV": "std", "STDDEV_SAMP": "std"}
_RANKING = (exp.RowNumber, exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue)


@dataclass(frozen=True)
class Col:
    """A column as SQL sees it: ``qualifier.name``; ``ir`` is its IR column name."""

    qualifier: str | None
    name: str
    ir: str


@dataclass
class Rel:
    node: Node
    cols: list[Col]
    # Flink window TVFs: the time column and window a relation was made with.
    window: tuple[str, TimeWindow] | None = None
    # IR columns known never to be NULL (a source's event time, until an outer join pads it).
    not_null: frozenset[str] = frozenset()
    # JOIN ... USING (k): the unqualified k is the joined column (``using``, qualifier None:
    # the left side's k, the right side's for a RIGHT JOIN, COALESCE of both for a FULL
    # JOIN), which ``SELECT *`` shows once; the sides' own k (``hidden``, their IR names)
    # are read only qualified (a.k, b.k).
    using: tuple[Col, ...] = ()
    hidden: frozenset[str] = frozenset()


@dataclass
class Context:
    dialect: str
    sources: dict[str, Source]
    ctes: dict[str, Rel] = field(default_factory=dict)
    counter: list[int] = field(default_factory=lambda: [0])

    def fresh(self, what: str) -> str:
        self.counter[0] += 1
        return f"__sql_{what}{self.counter[0]}"

    def same_name(self, a: str, b: str) -> bool:
        # Flink's identifiers are case-sensitive; DuckDB's and Spark's are not.
        return a == b if self.dialect == "flink" else a.lower() == b.lower()


def is_aggregate(node: exp.Expression) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and str(node.this).upper() in _AGG_NAMES


def _contains(node: exp.Expression, pred) -> bool:  # type: ignore[no-untyped-def]
    stack = [node]
    while stack:
        n = stack.pop()
        if pred(n):
            return True
        if isinstance(n, (exp.Subquery, exp.Select)):
            continue
        stack.extend(n.iter_expressions())
    return False


def has_aggregate(node: exp.Expression) -> bool:
    """An aggregate outside any window function."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, exp.Window):
            stack.extend(n.args.get("partition_by") or [])
            continue
        if is_aggregate(n):
            return True
        stack.extend(n.iter_expressions())
    return False


# ---- relations -----------------------------------------------------------------------


def build_query(q: exp.Expression, ctx: Context) -> Rel:
    if isinstance(q, exp.Subquery):
        return build_query(q.this, ctx)
    with_ = q.args.get("with_") or q.args.get("with")
    if with_ is not None:
        if ctx.dialect == "flink":
            q = emitted.shifted_variances(q)  # Flink's var/std, as relplan writes them
        with_ = q.args.get("with_") or q.args.get("with")
        if with_.args.get("recursive"):
            raise fail(UnsupportedError, "WITH RECURSIVE is not supported", with_)
        saved = dict(ctx.ctes)
        try:
            defined: list[str] = []
            for cte in with_.expressions:
                name = cte.alias_or_name
                cte_alias = cte.args.get("alias")
                if isinstance(cte_alias, exp.TableAlias) and cte_alias.columns:
                    raise fail(UnsupportedError, f"column names in WITH {name}(...) are not supported; alias the columns in its SELECT", cte)
                if any(ctx.same_name(name, d) for d in defined):
                    raise fail(SchemaError, f"the WITH clause defines {name!r} twice", cte)
                defined.append(name)
            # relplan's own tumbling/hopping lowering is read back as a window (emitted.py)
            for name, body in emitted.time_window_ctes([(cte.alias_or_name, cte.this) for cte in with_.expressions]):
                ctx.ctes[name] = _rename_qualifier(build_query(body, ctx), name)
            body = q.copy()
            body.set("with_", None)
            body.set("with", None)
            return build_query(body, ctx)
        finally:
            ctx.ctes = saved
    if isinstance(q, exp.Union):
        return _union(q, ctx)
    if isinstance(q, (exp.Intersect, exp.Except)):
        raise fail(UnsupportedError, f"{q.key.upper()} is not supported; relplan reads UNION ALL", q)
    if not isinstance(q, exp.Select):
        raise fail(UnsupportedError, f"{q.key.upper()} is not a query relplan reads", q)
    return _select(q, ctx)


def _rename_qualifier(rel: Rel, name: str) -> Rel:
    return Rel(rel.node, [Col(name, c.name, c.ir) for c in rel.cols], rel.window, rel.not_null)


def _union(q: exp.Union, ctx: Context) -> Rel:
    if q.args.get("distinct"):
        raise fail(UnsupportedError, "UNION (distinct) is not supported; write UNION ALL", q)
    members: list[Rel] = []
    stack: list[exp.Expression] = [q]
    while stack:  # a chain of UNION ALLs, left to right
        m = stack.pop()
        if isinstance(m, exp.Union) and not m.args.get("distinct") and not m.args.get("with_"):
            stack.extend([m.expression, m.this])
        else:
            members.append(build_query(m, ctx))
    first = members[0]
    names = [c.name for c in first.cols]
    types: list[T.DataType] = [f.dtype for f in first.node.schema]
    for m in members[1:]:
        if len(m.cols) != len(names):
            raise fail(SchemaError, f"UNION ALL members have {len(names)} and {len(m.cols)} columns", q)
        for i, f in enumerate(m.node.schema):
            t = T.common_type(types[i], f.dtype)
            if t is None:
                raise fail(SchemaError, f"UNION ALL column {names[i]!r} is {types[i]} in one member and {f.dtype} in another", q)
            types[i] = t
    outs = [_unique_names(names, q)]
    nodes = []
    for m in members:
        exprs = []
        for (name, col), f, t in zip(zip(outs[0], m.cols), m.node.schema, types):
            e: Expr = Column(col.ir, f.dtype)
            if f.dtype != t:
                e = Cast(e, t)
            exprs.append((name, e))
        nodes.append(Project(m.node, tuple(exprs)))
    not_null = frozenset.intersection(*(frozenset(n for n, c in zip(outs[0], m.cols) if c.ir in m.not_null) for m in members))
    return Rel(Union(tuple(nodes)), [Col(None, n, n) for n in outs[0]], not_null=not_null)


def _unique_names(names: list[str], node: exp.Expression) -> list[str]:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise fail(SchemaError, f"the query has two output columns named {n!r}; give one an alias (AS ...)", node)
        seen.add(n)
    return names


def _from(q: exp.Select, ctx: Context) -> Rel:
    from_ = q.args.get("from_") or q.args.get("from")
    if from_ is None:
        raise fail(UnsupportedError, "a query without FROM is not supported: relplan reads from its sources", q)
    rel = _table(from_.this, ctx)
    for j in q.args.get("joins") or []:
        rel = _join(rel, j, ctx)
    return rel


def _table(t: exp.Expression, ctx: Context) -> Rel:
    if isinstance(t, exp.Subquery):
        rel = build_query(t.this, ctx)
        alias = t.alias_or_name or None
        return _rename_qualifier(rel, alias) if alias else Rel(rel.node, [Col(None, c.name, c.ir) for c in rel.cols], not_null=rel.not_null)
    for key, what in (("sample", "TABLESAMPLE"), ("pivots", "PIVOT and UNPIVOT"), ("version", "FOR SYSTEM_TIME AS OF"),
                      ("hints", "a table hint"), ("laterals", "LATERAL VIEW")):
        if t.args.get(key):
            raise fail(UnsupportedError, f"{what} is not supported", t)
    table_alias = t.args.get("alias")
    if isinstance(table_alias, exp.TableAlias) and table_alias.columns:
        raise fail(UnsupportedError, "column names after a FROM item's alias (AS t(a, b)) are not supported; alias the columns in a subquery", t)
    if isinstance(t, exp.Table) and isinstance(t.this, exp.Anonymous):
        return _window_tvf(t, ctx)
    if not isinstance(t, exp.Table) or not isinstance(t.this, exp.Identifier):
        raise fail(UnsupportedError, f"FROM {t.sql()} is not supported: name a source, a CTE or a subquery", t)
    name = t.name
    if t.args.get("db") or t.args.get("catalog"):
        # Sources and CTEs belong to no database: the prefix could name any table of any
        # database, so it is refused rather than dropped.
        written = ".".join(p.name for p in t.parts)
        raise fail(SqlError, f"table {written} names a database: relplan's sources belong to none; write {name}", t)
    alias = t.alias_or_name
    for cte_name, rel in ctx.ctes.items():
        if ctx.same_name(cte_name, name):
            return _rename_qualifier(rel, alias)
    src = None
    for src_name, s in ctx.sources.items():
        if ctx.same_name(src_name, name):
            src = s
    if src is None:
        known = [*ctx.ctes, *ctx.sources]
        hint = get_close_matches(name, known, n=1)
        more = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise fail(SchemaError, f"unknown table {name!r}{more}; the query can read {', '.join(known) or 'no source'}", t)
    events = frozenset([src.event_time]) if src.event_time else frozenset()
    return Rel(src, [Col(alias, f.name, f.name) for f in src.schema], not_null=events)


def _window_tvf(t: exp.Table, ctx: Context) -> Rel:
    """Flink's ``TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`` and ``HOP(..., slide, size)``."""
    outer = t.this
    call = outer.expressions[0] if str(outer.this).upper() == "TABLE" and outer.expressions else outer
    name = str(call.this).upper() if isinstance(call, exp.Anonymous) else ""
    if name not in ("TUMBLE", "HOP"):
        raise fail(UnsupportedError, f"table function {name or call.sql()} is not supported; relplan reads TUMBLE and HOP", t)
    args = list(call.expressions)
    if len(args) not in ((3,) if name == "TUMBLE" else (4,)) or not isinstance(getattr(args[0], "this", None), exp.Expression):
        raise fail(UnsupportedError, f"{name}(TABLE t, DESCRIPTOR(time), {'size' if name == 'TUMBLE' else 'slide, size'}) expected", call)
    inner = _table(args[0].this, ctx)
    desc = args[1]
    if not (isinstance(desc, exp.Anonymous) and str(desc.this).upper() == "DESCRIPTOR" and desc.expressions):
        raise fail(UnsupportedError, f"{name} takes DESCRIPTOR(time column) second", desc)
    time = _lookup(inner, desc.expressions[0], ctx)
    if time.dtype != T.Timestamp:
        raise fail(SchemaError, f"{name}'s time column {desc.expressions[0].sql()} is {time.dtype}, not a timestamp", desc)
    if name == "TUMBLE":
        size = interval_us(args[2])
        window = TimeWindow(size, size)
    else:
        slide, size = interval_us(args[2]), interval_us(args[3])
        try:
            window = TimeWindow(size, slide)
        except Exception as e:  # a WindowError: the slide exceeds the size
            raise fail(UnsupportedError, str(e), call) from None
    alias = t.alias_or_name or None
    cols = [Col(alias, c.name, c.ir) for c in inner.cols]
    cols += [Col(alias, WINDOW_START, WINDOW_START), Col(alias, WINDOW_END, WINDOW_END)]
    return Rel(inner.node, cols, window=(time.name, window), not_null=inner.not_null)


def _join(left: Rel, j: exp.Join, ctx: Context) -> Rel:
    side = (j.side or "").lower()
    kind = (j.kind or "").lower()
    if j.args.get("method") or kind in ("cross", "semi", "anti", "natural") or j.args.get("natural"):
        raise fail(UnsupportedError, f"{(j.args.get('method') or kind or 'this').upper()} JOIN is not supported", j)
    how = {"": "inner", "left": "left", "right": "right", "full": "full"}.get(side)
    if how is None:
        raise fail(UnsupportedError, f"{side.upper()} JOIN is not supported", j)
    right = _table(j.this, ctx)
    if right.window is not None or left.window is not None:
        raise fail(UnsupportedError, "a window table function cannot be joined; aggregate it in a subquery first", j)
    # The IR joins sides with distinct column names: the right side's clashing ones get new names.
    taken = {c.ir for c in left.cols}
    renames = []
    rcols = []
    for c in right.cols:
        new = c.ir if c.ir not in taken else ctx.fresh(c.name + "_")
        renames.append((new, Column(c.ir, right.node.schema.dtype(c.ir))))
        rcols.append(Col(c.qualifier, c.name, new))
    rnode = right.node if all(n == e.name for n, e in renames) else Project(right.node, tuple(renames))
    right_not_null = frozenset(new for (new, e) in renames if e.name in right.not_null)
    right = Rel(rnode, rcols)
    on = j.args.get("on")
    using = j.args.get("using")
    pairs: list[tuple[str, str]] = []
    residual_parts: list[exp.Expression] = []
    pre_left: list[tuple[str, Expr]] = []
    pre_right: list[tuple[str, Expr]] = []
    joined: list[tuple[Col, Expr]] = []  # USING's columns, as the unqualified name reads them
    full_keys: list[tuple[Column, Column]] = []
    if using:
        for ident in using:
            lcol = _lookup(left, exp.Column(this=ident.copy()), ctx)  # a copy keeps the name's place in the text
            rcol = _lookup(right, exp.Column(this=ident.copy()), ctx)
            pairs.append((lcol.name, rcol.name))
            # SQL's meaning, the same in DuckDB, Spark and Flink: the left's value (it
            # equals the right's where both are there), the right's for a RIGHT JOIN,
            # the one that is there for a FULL JOIN.
            shown = next((c.name for c in left.cols + list(left.using) if c.ir == lcol.name), ident.name)
            if how == "full":  # (built once the join has checked that the keys compare)
                joined.append((Col(None, shown, ctx.fresh(ident.name + "_")), Literal(None)))
                full_keys.append((lcol, rcol))
            else:
                joined.append((Col(None, shown, (rcol if how == "right" else lcol).name), lcol))
    elif on is not None:
        for part in _sql_conjuncts(on):
            pair = _key_pair(part, left, right, ctx)
            if pair is not None:
                (lname, lexpr), (rname, rexpr) = pair
                if lexpr is not None:
                    pre_left.append((lname, lexpr))
                if rexpr is not None:
                    pre_right.append((rname, rexpr))
                pairs.append((lname, rname))
            else:  # read over the joined rows, once they are built
                _known_columns(part, left, right, ctx)
                residual_parts.append(part)
    else:
        raise fail(UnsupportedError, "a join needs ON or USING (a cross join is not supported)", j)
    if not pairs:
        raise fail(UnsupportedError, "a join needs at least one equality between the two sides in ON", j)
    if residual_parts and how != "inner":
        raise fail(
            UnsupportedError,
            f"a {how.upper()} JOIN's ON may hold only equalities between the sides; move "
            f"{' AND '.join(p.sql() for p in residual_parts)} into a subquery's WHERE",
            on,
        )
    lnode = _extend(left.node, pre_left)
    rnode = _extend(right.node, pre_right)
    cols = left.cols + right.cols
    try:
        node: Node = Join(lnode, rnode, how, tuple(pairs))
    except RelplanError as e:  # keys of types that do not compare: named as the user wrote them
        shown = {c.ir: f"{c.qualifier}.{c.name}" if c.qualifier else c.name for c in cols}
        message = e.message
        for ir, name in shown.items():
            message = message.replace(f"'{ir}'", f"'{name}'")
        raise fail(type(e), message, on if on is not None else j) from None
    if pre_left or pre_right:  # drop the computed key columns again
        keep = [c.ir for c in cols]
        node = Project(node, tuple((n, Column(n, node.schema.dtype(n))) for n in keep))
    both = Rel(node, cols, using=left.using, hidden=left.hidden)
    pred = and_all([_condition(_scalar(p, both, ctx), p, "ON", ctx.dialect) for p in residual_parts])
    if pred is not None:
        node = Filter(node, pred)
    not_null = {"inner": left.not_null | right_not_null, "left": left.not_null, "right": right_not_null}.get(how, frozenset())
    if not joined:
        return Rel(node, cols, not_null=frozenset(not_null), using=left.using, hidden=left.hidden)
    node = _extend(node, [(c.ir, Coalesce(pair)) for (c, _), pair in zip(joined, full_keys)])
    names = {c.name.lower() if ctx.dialect != "flink" else c.name for c, _ in joined}
    kept = tuple(c for c in left.using if (c.name.lower() if ctx.dialect != "flink" else c.name) not in names)
    hidden = left.hidden | {lname for lname, _ in pairs} | {rname for _, rname in pairs}
    return Rel(node, cols, not_null=frozenset(not_null), using=(*[c for c, _ in joined], *kept), hidden=frozenset(hidden))


def _known_columns(part: exp.Expression, left: Rel, right: Rel, ctx: Context) -> None:
    """An unknown column of an ON condition, reported as such (before the join is built)."""
    for col in part.find_all(exp.Column):
        if isinstance(col.this, exp.Star) or _try_scalar(col, left, ctx) is not None or _try_scalar(col, right, ctx) is not None:
            continue
        _lookup(Rel(left.node, left.cols + right.cols, using=left.using, hidden=left.hidden), col, ctx)  # no such column on either side: raises


def _extend(node: Node, extra: list[tuple[str, Expr]]) -> Node:
    if not extra:
        return node
    return Project(node, tuple((f.name, Column(f.name, f.dtype)) for f in node.schema) + tuple(extra))


def _sql_conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return _sql_conjuncts(e.this) + _sql_conjuncts(e.expression)
    return [e]


def _key_pair(part: exp.Expression, left: Rel, right: Rel, ctx: Context):  # type: ignore[no-untyped-def]
    """``(name, computed expr or None)`` for each side of ``l = r``, or None if ``part``
    is no equality between one side's columns and the other's."""
    if not isinstance(part, exp.EQ):
        return None
    a, b = part.this, part.expression
    for x, y in ((a, b), (b, a)):
        lx = _try_scalar(x, left, ctx)
        ry = _try_scalar(y, right, ctx)
        if lx is not None and ry is not None and lx.columns() and ry.columns():
            lside = (lx.name, None) if isinstance(lx, Column) else (ctx.fresh("lk"), lx)
            rside = (ry.name, None) if isinstance(ry, Column) else (ctx.fresh("rk"), ry)
            return lside, rside
    return None


def _try_scalar(e: exp.Expression, rel: Rel, ctx: Context) -> Expr | None:
    try:
        return _scalar(e, rel, ctx)
    except Located:
        return None


# ---- columns and plain expressions --------------------------------------------------


def _lookup(rel: Rel, col: exp.Expression, ctx: Context) -> Column:
    if not isinstance(col, exp.Column):
        raise fail(UnsupportedError, f"expected a column, got {col.sql()}", col)
    name = col.name
    qual = col.table or None
    if col.args.get("db") or col.args.get("catalog"):
        written = ".".join(p.name for p in col.parts)
        raise fail(SqlError, f"column {written} names a database: relplan's sources belong to none; write {col.table}.{name}", col)
    if qual is None:  # JOIN ... USING's k, not the sides' own
        cands = [c for c in rel.cols if c.ir not in rel.hidden] + list(rel.using)
        hits = [c for c in cands if ctx.same_name(c.name, name)]
    else:
        hits = [c for c in rel.cols if ctx.same_name(c.name, name) and c.qualifier is not None and ctx.same_name(c.qualifier, qual)]
    if len(hits) > 1 and qual is None:
        exact = [c for c in hits if c.name == name]
        hits = exact if len(exact) == 1 else hits
    if not hits:
        shown = [f"{c.qualifier}.{c.name}" if qual and c.qualifier else c.name for c in rel.cols if not c.ir.startswith("__sql_") or c.name != c.ir]
        target = f"{qual}.{name}" if qual else name
        hint = get_close_matches(target, shown, n=1)
        more = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise fail(SchemaError, f"unknown column {target!r}{more}; available: {', '.join(shown)}", col)
    if len(hits) > 1:
        quals = sorted({str(c.qualifier) for c in hits})
        raise fail(SchemaError, f"column {name!r} is ambiguous: it is in {', '.join(quals)}; qualify it", col)
    c = hits[0]
    if rel.window is not None and c.ir in (WINDOW_START, WINDOW_END):
        raise fail(UnsupportedError, f"{c.name} is read only as a GROUP BY key of its window table function", col)
    return Column(c.ir, rel.node.schema.dtype(c.ir))


def _condition(pred: Expr, node: exp.Expression, clause: str, dialect: str) -> Expr:
    if pred.dtype == T.Null:
        # A condition of no type (WHERE NULL) is NULL on every row: DuckDB and Flink keep
        # no row; Spark does for HAVING NULL (and a NULL conjunct of ON), and refuses WHERE
        # NULL (FILTER_NOT_BOOLEAN: "NULL" of type VOID is not a boolean).
        if dialect == "spark" and clause == "WHERE":
            raise fail(UnsupportedError, f"Spark refuses {clause} {_head(_sql(node, dialect))} (a NULL of no type, "
                       "VOID, is not a boolean); write FALSE to keep no row", node)
        return Literal(None, T.Bool)
    if pred.dtype != T.Bool:
        text = node.sql()
        raise fail(TypeMismatchError, f"{clause} needs a boolean condition, but {text if len(text) <= 60 else text[:57] + '...'} is {pred.dtype}", node)
    return pred


def _scalar(e: exp.Expression, rel: Rel, ctx: Context) -> Expr:
    """A plain expression over ``rel``'s columns: no aggregate, no window function."""

    def child(n: exp.Expression) -> Expr:
        if isinstance(n, exp.Column):
            return _lookup(rel, n, ctx)
        if is_aggregate(n):
            raise fail(SchemaError, f"aggregate {n.sql(dialect=ctx.dialect)} is not allowed here (only in SELECT and HAVING)", n)
        if isinstance(n, exp.Window):
            raise fail(SchemaError, f"window function {n.sql(dialect=ctx.dialect)} is not allowed here (only in SELECT)", n)
        return _convert_or_idiom(n, child, ctx.dialect)

    return child(e)


def _convert_or_idiom(n: exp.Expression, child, dialect: str) -> Expr:  # type: ignore[no-untyped-def]
    """``convert``, after NULLIF (relplan's division guard; the IR has none) and an error
    naming a relplan lowering idiom not read back yet (emitted.py)."""
    if isinstance(n, exp.Nullif):
        return semantics.nullif(child(n.this), child(n.expression))
    if isinstance(n, exp.Cast) and not (isinstance(n, exp.TryCast) and n.args.get("safe")):
        typed = emitted.typed_literal(n)  # relplan's CAST(1.5 AS DOUBLE), CAST(NULL AS TIMESTAMP): literals
        if typed is not None:
            return typed
        truncated = emitted.truncated_to_bigint(n)  # CAST(TRUNC(x) AS BIGINT): the IR's cast of a DOUBLE
        if truncated is not None:
            value = child(truncated)
            if value.dtype == T.Float64:
                return Cast(value, T.Int64)
    instant = emitted.timestamp_of_micros(n)  # Spark's TIMESTAMP_MICROS(1704067200000000): a literal
    if instant is not None:
        return instant
    day = emitted.flink_date_of(n) if dialect == "flink" else None  # Flink's CAST(ts AS DATE), corrected before 1970, as relplan writes it
    if day is not None and (ts := child(day)).dtype == T.Timestamp:
        return Cast(ts, T.Date)
    why = emitted.unsupported_idiom(n)
    if why is not None:
        raise fail(UnsupportedError, why, n)
    return convert(n, child, dialect)


# ---- SELECT ----------------------------------------------------------------------------


def _select(q: exp.Select, ctx: Context) -> Rel:
    q = emitted.inline_named_windows(q)  # WINDOW w0 AS (...): each OVER w0 spelled out
    for key, what in (("order", "ORDER BY"), ("limit", "LIMIT"), ("offset", "OFFSET"), ("qualify", "QUALIFY"),
                      ("windows", "a WINDOW clause"), ("distinct", "SELECT DISTINCT"), ("laterals", "LATERAL")):
        if q.args.get(key):
            why = " (relplan's outputs are unordered sets of rows: sort the result table)" if key in ("order", "limit", "offset") else ""
            raise fail(UnsupportedError, f"{what} is not supported{why}", q.args[key] if isinstance(q.args[key], exp.Expression) else q)
    rel = _from(q, ctx)
    where = q.args.get("where")
    if where is not None:
        if has_aggregate(where.this):
            raise fail(SchemaError, "an aggregate in WHERE: filter groups with HAVING instead", where)
        pred = _condition(_scalar(where.this, rel, ctx), where.this, "WHERE", ctx.dialect)
        rel = Rel(Filter(rel.node, pred), rel.cols, rel.window, rel.not_null, rel.using, rel.hidden)
    items = _expand_star(q, rel, ctx)
    group = q.args.get("group")
    having = q.args.get("having")
    grouped = group is not None or having is not None or any(has_aggregate(e) for _, e in items)
    builder = Stage(ctx, rel)
    if grouped:
        builder.group(group.expressions if group is not None else [], q)
    outputs = [(name, builder.value(e)) for name, e in items]
    if ctx.dialect == "flink":  # a column must have a type there ("Illegal use of 'NULL'")
        for (name, e), (_, value) in zip(items, outputs):
            if value.dtype == T.Null:
                raise fail(UnsupportedError, f"Flink refuses a column of no type, {name} := {_head(e.sql(dialect='flink'))}; "
                           "give it one: CAST(NULL AS BIGINT)", e)
    having_pred = _condition(builder.value(having.this), having.this, "HAVING", ctx.dialect) if having is not None else None
    node = builder.finish(having_pred)
    names = _unique_names([n for n, _ in outputs], q)
    exprs = tuple((n, e) for n, e in zip(names, (e for _, e in outputs)))
    try:
        out = Project(node, exprs)
    except Exception as e:
        raise fail(SchemaError, str(e), q) from None
    not_null = frozenset(n for n, e in exprs if isinstance(e, Column) and e.name in rel.not_null and not builder.grouped)
    return Rel(out, [Col(None, n, n) for n in names], not_null=not_null)


def _using_columns_once(picked: list[Col], rel: Rel, ctx: Context) -> list[Col]:
    """``SELECT *`` over ``JOIN ... USING``: each USING column once. Spark and Flink put them
    first; DuckDB where the left side had it (measured on DuckDB 2.0: A(v, k) JOIN B(w, k)
    USING (k) is v, k, w)."""
    if ctx.dialect != "duckdb":
        return list(rel.using) + [c for c in picked if c.ir not in rel.hidden]
    out: list[Col] = []
    placed: set[str] = set()
    for c in picked:
        if c.ir not in rel.hidden:
            out.append(c)
            continue
        u = next((u for u in rel.using if ctx.same_name(u.name, c.name)), None)
        if u is not None and u.name not in placed:  # the first side's own k: the joined k, there
            out.append(u)
            placed.add(u.name)
    return out + [u for u in rel.using if u.name not in placed]


def _expand_star(q: exp.Select, rel: Rel, ctx: Context) -> list[tuple[str, exp.Expression]]:
    items: list[tuple[str, exp.Expression]] = []
    for e in q.expressions:
        target = e.this if isinstance(e, exp.Alias) else e
        if isinstance(target, exp.Star) or (isinstance(target, exp.Column) and isinstance(target.this, exp.Star)):
            star = target if isinstance(target, exp.Star) else target.this
            if any(star.args.get(k) for k in ("except", "except_", "replace", "rename")):
                raise fail(UnsupportedError, "SELECT * EXCLUDE/REPLACE/RENAME is not supported; name the columns", e)
            qual = target.table if isinstance(target, exp.Column) else None
            picked = [c for c in rel.cols if not c.ir.startswith("__sql_") or c.name != c.ir]
            if not qual and rel.using:
                picked = _using_columns_once(picked, rel, ctx)
            if qual:
                picked = [c for c in picked if c.qualifier is not None and ctx.same_name(c.qualifier, qual)]
                if not picked:
                    raise fail(SchemaError, f"unknown table {qual!r} in {qual}.*", e)
            if rel.window is not None:
                picked = [c for c in picked if c.ir not in (WINDOW_START, WINDOW_END)]
            items += [(c.name, exp.column(c.name, table=c.qualifier, quoted=True)) for c in picked]
            continue
        if isinstance(e, exp.Alias):
            items.append((e.alias, e.this))
        elif isinstance(e, exp.Column):
            items.append((e.name, e))
        else:
            items.append((e.sql(dialect=ctx.dialect), e))
    return items


@dataclass
class _WindowCall:
    keys: tuple[Expr, ...]
    order: Expr
    nulls_first: bool
    frame: Frame
    func: str
    arg: Expr | None
    filter: Expr | None
    name: str
    by: Column | None = None  # first/last: the time they order by


class Stage:
    """The SELECT list's values over one relation: grouped (aggregates, group keys) or
    not, with window functions computed over the (grouped) rows."""

    def __init__(self, ctx: Context, rel: Rel) -> None:
        self.ctx = ctx
        self.rel = rel
        self.grouped = False
        self.groups: list[tuple[Expr, str]] = []  # (key over the input, its column after grouping)
        self.aggs: list[AggCall] = []
        self.agg_names: dict[AggCall, str] = {}
        self.time_window: tuple[str, TimeWindow] | None = None
        self.windows: list[_WindowCall] = []
        self.pre_window: list[tuple[str, Expr]] = []
        self.after: dict[str, T.DataType] = {}  # the grouped relation's columns

    # -- GROUP BY ---------------------------------------------------------------------

    def group(self, keys: list[exp.Expression], q: exp.Select) -> None:
        self.grouped = True
        self.having_at = q.args.get("having") or q  # where a HAVING without groups is reported
        tvf = self.rel.window
        for k in keys:
            if isinstance(k, exp.Literal) and not k.is_string:
                raise fail(UnsupportedError, "GROUP BY a column number is not supported; name the column or expression", k)
            if tvf is not None and isinstance(k, exp.Column) and k.name in (WINDOW_START, WINDOW_END):
                continue
            tw = self._time_bucket(k) or self._spark_window(k)
            if tw is not None:
                continue
            e = _scalar(k, self.rel, self.ctx)
            if any(e == g for g, _ in self.groups):
                continue
            name = e.name if isinstance(e, Column) else self.ctx.fresh("g")
            self.groups.append((e, name))
        if tvf is not None:
            named = {k.name for k in keys if isinstance(k, exp.Column)}
            if not {WINDOW_START, WINDOW_END} <= named:
                raise fail(UnsupportedError, "a window table function's query must GROUP BY window_start, window_end", q)
            self.time_window = tvf

    def _spark_window(self, k: exp.Expression) -> bool | None:
        """Spark's ``window(ts, '1 hour'[, '10 minutes'])`` as a tumbling or hopping window
        key, its bounds read as ``window.start`` and ``window.end`` (windows aligned to the
        epoch, each holding the events with ``start <= ts < end``, as the IR's)."""
        if not (isinstance(k, exp.Anonymous) and _fname(k) in ("WINDOW", emitted.WINDOW_MARK)):
            return None
        marked = _fname(k) == emitted.WINDOW_MARK  # relplan's epoch arithmetic, its time proven not NULL
        if self.ctx.dialect != "spark" and not marked:
            raise fail(UnsupportedError, "window(time, size) is Spark's; in Flink use TUMBLE/HOP, in DuckDB time_bucket", k)
        args = list(k.expressions)
        if len(args) not in (2, 3):
            raise fail(UnsupportedError, "window(time, size[, slide]) with no start offset is supported", k)
        # '1 hour' or microseconds as Spark writes them (Spark 3.5 refuses an INTERVAL there; read anyway)
        sizes = [interval_us(exp.Interval(this=a) if isinstance(a, exp.Literal) and a.is_string else
                             exp.Interval(this=exp.Literal.string(a.this), unit=exp.var("MICROSECOND")) if isinstance(a, exp.Literal) else a)
                 for a in args[1:]]
        time = _scalar(args[0], self.rel, self.ctx)
        if not isinstance(time, Column) or time.dtype != T.Timestamp:
            raise fail(UnsupportedError, "window()'s first argument must be a timestamp column", k)
        if time.name not in self.rel.not_null and not marked:
            raise fail(UnsupportedError, f"window() of {args[0].sql()}, which may be NULL: window a source's event time", k)
        size, slide = sizes[0], sizes[-1]
        try:
            window = TimeWindow(size, slide)
        except Exception as e:  # a WindowError: the slide exceeds the size
            raise fail(UnsupportedError, str(e), k) from None
        self._set_time_window((time.name, window), k)
        self.spark_window = True
        return True

    def _set_time_window(self, tw: tuple[str, TimeWindow], k: exp.Expression) -> None:
        if self.time_window is not None:
            raise fail(UnsupportedError, "GROUP BY holds one time window (time_bucket, window() or a window TVF), not two", k)
        self.time_window = tw

    def _time_bucket(self, k: exp.Expression) -> bool | None:
        """DuckDB's ``time_bucket(INTERVAL, ts)`` as a tumbling window key."""
        if not (isinstance(k, exp.DateBin) or (isinstance(k, exp.Anonymous) and _fname(k) == "TIME_BUCKET")):
            return None
        if self.ctx.dialect != "duckdb":
            raise fail(UnsupportedError, "time_bucket is DuckDB's; in Flink use TUMBLE/HOP, in Spark window()", k)
        args = list(k.expressions) if isinstance(k, exp.Anonymous) else [k.this, k.expression]
        if isinstance(k, exp.DateBin) and any(v is not None for key, v in k.args.items() if key not in ("this", "expression")):
            raise fail(UnsupportedError, "time_bucket(INTERVAL, time) with no origin or offset is supported", k)
        if len(args) != 2:
            raise fail(UnsupportedError, "time_bucket(INTERVAL, time) with no origin or offset is supported", k)
        size = interval_us(args[0])
        time = _scalar(args[1], self.rel, self.ctx)
        if not isinstance(time, Column) or time.dtype != T.Timestamp:
            raise fail(UnsupportedError, "time_bucket's second argument must be a timestamp column", k)
        if time.name not in self.rel.not_null:
            raise fail(UnsupportedError, f"time_bucket of {args[1].sql()}, which may be NULL (SQL makes a NULL bucket; "
                       "relplan's windows hold only events with a time): bucket a source's event time", k)
        # DuckDB buckets from 2000-01-03 by default: the same edges as the epoch's only
        # when the size divides the 10,959 days between them.
        origin = int((dt.datetime(2000, 1, 3) - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000
        if origin % size:
            raise fail(UnsupportedError, f"time_bucket of {args[0].sql()} starts its buckets at 2000-01-03, not at the epoch as relplan's tumbling windows do", k)
        self._set_time_window((time.name, TimeWindow(size, size)), k)
        self.bucket = k
        return True

    # -- values -------------------------------------------------------------------------

    def value(self, e: exp.Expression) -> Expr:
        return self._child(e)

    def _child(self, n: exp.Expression) -> Expr:
        ctx = self.ctx
        if isinstance(n, exp.Window):
            return self._window(n)
        distinct = emitted.size_of_collect_set(n, ctx.dialect)  # Spark's COUNT(DISTINCT x) OVER w, as relplan writes it
        if distinct is not None:
            return self._window(distinct, written=False)
        mean = emitted.exact_mean(n)  # Spark's exact AVG of a BIGINT, as relplan writes it
        if mean is not None:
            return self._child(mean)
        # Flink's first()/last(), as relplan writes it
        extreme = emitted.flink_extreme(n, lambda x: _scalar(x, self.rel, ctx).dtype) if ctx.dialect == "flink" else None
        if extreme is not None:
            return self._child(extreme)
        if self.grouped:
            if is_aggregate(n) or isinstance(n, exp.Filter) and is_aggregate(n.this):  # AGG(x) [FILTER (WHERE c)]
                return self._aggregate(n)
            if self.time_window is not None and self._is_window_bound(n):
                return self._window_bound(n)
            if not _contains(n, lambda x: is_aggregate(x) or isinstance(x, exp.Window) or isinstance(x, exp.Column) and self._is_window_bound(x)):
                try:
                    e = _scalar(n, self.rel, ctx)
                except Located:
                    e = None
                if e is not None:
                    for g, name in self.groups:
                        if e == g:
                            return Column(name, g.dtype)
                    if not e.columns():
                        return e
            if isinstance(n, exp.Column):
                _lookup(self.rel, n, ctx)  # an unknown column is reported as unknown
                raise fail(SchemaError, f"column {n.sql(dialect=ctx.dialect)} must appear in GROUP BY or be used in an aggregate function", n)
            return _convert_or_idiom(n, self._child, ctx.dialect)
        if isinstance(n, exp.Column):
            return _lookup(self.rel, n, ctx)
        if is_aggregate(n):
            raise fail(SchemaError, "an aggregate outside GROUP BY", n)
        return _convert_or_idiom(n, self._child, ctx.dialect)

    def _is_window_bound(self, n: exp.Expression) -> bool:
        if isinstance(n, exp.Column) and self.rel.window is not None and n.name in (WINDOW_START, WINDOW_END):
            return True
        if isinstance(n, exp.Column) and getattr(self, "spark_window", False) and _spark_bound(n) is not None:
            return True
        return getattr(self, "bucket", None) is not None and n == self.bucket

    def _window_bound(self, n: exp.Expression) -> Expr:
        name = (_spark_bound(n) if getattr(self, "spark_window", False) else None) or (n.name if isinstance(n, exp.Column) else WINDOW_START)
        return Column(name, T.Timestamp)

    def _agg_call(self, n: exp.Expression, over: Rel | None) -> tuple[str, Expr | None, Expr | None, Column | None]:
        """(func, argument, filter, first/last's time) of an aggregate call, the argument
        over ``over``'s columns (the input rows), or over the grouped values when ``over``
        is None."""
        filt = None
        if isinstance(n, exp.Filter):
            filt, n = n.expression.this, n.this
        conv = (lambda x: _scalar(x, over, self.ctx)) if over is not None else self._child
        extreme = emitted.arg_extreme(n)
        if extreme is not None:  # relplan's first()/last() idiom
            which, value, time, inner_filter = extreme
            t = conv(time)
            if not isinstance(t, Column) or t.dtype != T.Timestamp:
                raise fail(UnsupportedError, f"{_fname(n)}(x, ...) orders by {time.sql()}, not a timestamp column", n)
            filters = [conv(f) for f in (filt, inner_filter) if f is not None]
            return which, conv(value), and_all(filters), t
        func = _AGGS.get(type(n)) or _AGG_NAMES.get(_fname(n))  # type: ignore[arg-type]
        if func is None or isinstance(n, _RANKING):
            raise fail(UnsupportedError, f"aggregate {_fname(n)}() is not supported; relplan reads COUNT, SUM, AVG, MIN, MAX, VAR_SAMP and STDDEV_SAMP", n)
        arg_node = n.this
        if n.args.get("expressions"):  # COUNT(a, b): SQL engines refuse it or count rows where all are non-NULL
            raise fail(UnsupportedError, f"{_fname(n)}() with {len(n.expressions) + 1} arguments is not supported; give it one", n)
        distinct = isinstance(arg_node, exp.Distinct)
        if distinct:
            if func != "count" or len(arg_node.expressions) != 1:
                raise fail(UnsupportedError, f"DISTINCT is supported in COUNT(DISTINCT x) only, not {n.sql()}", n)
            func, arg_node = "count_distinct", arg_node.expressions[0]
        arg = None if arg_node is None or isinstance(arg_node, exp.Star) else conv(arg_node)
        if arg is not None and arg.dtype == T.Null:
            arg = self._typed_null(func, n)
        if func != "count" and arg is None:
            raise fail(SchemaError, f"{_fname(n)}(*) is not an aggregate; name a column", n)
        fexpr = conv(filt) if filt is not None else None
        return func, arg, fexpr, None

    def _typed_null(self, func: str, n: exp.Expression) -> Literal:
        """The argument of an aggregate of a NULL of no type (SUM(NULL)), typed as the
        dialect's engine types it, where that type is one of the IR's: the aggregate's
        value is the same (NULL, or 0 for COUNT) and its type the engine's."""
        dialect = self.ctx.dialect
        written = _head(n.sql(dialect=dialect))
        if dialect == "flink":  # measured: "Illegal use of 'NULL'"
            raise fail(UnsupportedError, f"Flink refuses {written} (an aggregate of a NULL of no type); "
                       "cast it: CAST(NULL AS <type>)", n)
        if func in ("count", "count_distinct"):
            return Literal(None, T.Int64)  # 0, a BIGINT, whatever the argument's type
        if func in ("mean", "var", "std"):
            return Literal(None, T.Float64)  # NULL, a DOUBLE in DuckDB and Spark
        if func == "sum":
            # DuckDB's SUM(NULL) is a HUGEINT (read as BIGINT, as its SUM of a BIGINT is),
            # Spark's a DOUBLE
            return Literal(None, T.Int64 if dialect == "duckdb" else T.Float64)
        raise fail(UnsupportedError, f"{written} has no type relplan has (DuckDB's and Spark's are NULL and VOID); "
                   "cast it: CAST(NULL AS <type>)", n)

    def _aggregate(self, n: exp.Expression) -> Expr:
        func, arg, filt, by = self._agg_call(n, self.rel)
        if func == "mean" and self.ctx.dialect == "flink" and arg is not None and arg.dtype == T.Int64:
            # Flink's AVG of a BIGINT is a BIGINT: the sum divided by the count, truncated.
            total = self._register("sum", arg, filt, n)
            count = self._register("count", arg, filt, n)
            return semantics.truncated_div(total, count)
        return self._register(func, arg, filt, n, by)

    def _register(self, func: str, arg: Expr | None, filt: Expr | None, n: exp.Expression, by: Column | None = None) -> Expr:
        try:
            call = AggCall(func, arg, "?", filt, by)
        except Exception as e:
            raise fail(SchemaError, str(e), n) from None
        for existing in self.aggs:
            if (existing.func, existing.arg, existing.filter, existing.order) == (func, arg, filt, by):
                return Column(existing.name, existing.dtype)
        name = self.ctx.fresh("a")
        call = AggCall(func, arg, name, filt, by)
        self.aggs.append(call)
        return Column(name, call.dtype)

    # -- window functions --------------------------------------------------------------

    def _window(self, n: exp.Window, written: bool = True) -> Expr:
        """``written``: as the user wrote it, not read back from relplan's own lowering."""
        ctx = self.ctx
        inner = n.this
        if isinstance(inner, _RANKING) or _fname(inner) in ("RANK", "DENSE_RANK", "NTILE", "PERCENT_RANK", "CUME_DIST", "ROW_NUMBER", "LAG", "LEAD", "FIRST_VALUE", "LAST_VALUE"):
            raise fail(UnsupportedError, f"window function {_fname(inner)}() is not supported: relplan's windows aggregate (COUNT, SUM, AVG, MIN, MAX, VAR_SAMP, STDDEV_SAMP) over time ranges", n)
        if isinstance(inner, exp.IgnoreNulls) or isinstance(inner, exp.RespectNulls):
            raise fail(UnsupportedError, "IGNORE/RESPECT NULLS is not supported", n)
        if not is_aggregate(inner if not isinstance(inner, exp.Filter) else inner.this):
            raise fail(UnsupportedError, f"{_fname(inner)}() OVER (...) is not an aggregate relplan reads", n)
        if written and ctx.dialect in ("spark", "flink"):
            _refused_over(inner, n, ctx.dialect)
        over = None if self.grouped else self.rel
        func, arg, filt, by = self._agg_call(inner, over)
        keys = tuple(self._child(p) for p in n.args.get("partition_by") or [])
        order = n.args.get("order")
        spec = n.args.get("spec")
        ordered = order is not None and bool(order.expressions)
        # No ORDER BY and no frame: the whole partition, in all three (Flink in batch).
        whole = _whole_partition(spec) or (spec is None and not ordered)
        # The row alone only when ordered: without ORDER BY, Flink 2.3 (batch) gives ROWS
        # BETWEEN CURRENT ROW AND CURRENT ROW the whole partition (measured), DuckDB the row.
        single = _current_row_only(spec) and ordered
        if whole or single:
            # Frames whose rows do not depend on the order: read whatever it is ordered by.
            for o in (order.expressions if order is not None else []):
                self._child(o.this)
            if single:
                return self._one_row(func, arg, filt, by, n)
            # The whole partition: every row a peer of every other (one constant order
            # time, the epoch: any would do) under a frame from the start, so each row
            # sees the whole partition.
            return self._window_call(keys, semantics.zero_of(T.Timestamp), True, Frame(None), func, arg, filt, by, n)
        if order is None or not order.expressions:
            if spec is not None:
                raise fail(SchemaError, "a window frame (ROWS/RANGE) needs ORDER BY a time column", n)
            raise fail(UnsupportedError, "a window without ORDER BY (an aggregate over the whole partition) is not supported; order it by a time column", n)
        if len(order.expressions) != 1:
            raise fail(UnsupportedError, "a window ordered by several columns is not supported: order by one time column", order)
        o = order.expressions[0]
        if o.args.get("desc"):
            raise fail(UnsupportedError, "a window ordered DESC is not supported: order by a time column ascending", o)
        epoch_of = emitted.epoch_micros_of(o.this)  # relplan's ORDER BY EPOCH_US(ts): ts's order
        order_e = self._child(epoch_of if epoch_of is not None else o.this)
        if order_e.dtype != T.Timestamp:
            raise fail(UnsupportedError, f"a window must be ordered by a timestamp column; {o.this.sql()} is {order_e.dtype}", o)
        # Ascending, NULLs sort first in Spark and Flink and last in DuckDB, unless the SQL
        # says: sqlglot's parser fills nulls_first from the text or else the dialect's
        # default (NULL_ORDERING), which is each engine's (tests/test_sql_dialects.py).
        nulls_first = bool(o.args.get("nulls_first"))
        if ctx.dialect == "spark":
            _same_interval_units(spec)
        frame = _frame(spec, micros=epoch_of is not None)
        return self._window_call(keys, order_e, nulls_first, frame, func, arg, filt, by, n)

    def _window_call(self, keys: tuple[Expr, ...], order_e: Expr, nulls_first: bool, frame: Frame, func: str,
                     arg: Expr | None, filt: Expr | None, by: Column | None, n: exp.Expression) -> Expr:
        ctx = self.ctx

        def call(func: str) -> Column:
            name = ctx.fresh("w")
            try:
                dtype = AggCall(func, arg, name, filt, by).dtype
            except Exception as e:
                raise fail(SchemaError, str(e), n) from None
            self.windows.append(_WindowCall(keys, order_e, bool(nulls_first), frame, func, arg, filt, name, by))
            return Column(name, dtype)

        if func == "mean" and ctx.dialect == "flink" and arg is not None and arg.dtype == T.Int64:
            # Flink's AVG of a BIGINT is a BIGINT: the frame's sum divided by its count, truncated.
            return semantics.truncated_div(call("sum"), call("count"))
        return call(func)

    def _one_row(self, func: str, arg: Expr | None, filt: Expr | None, by: Column | None, n: exp.Expression) -> Expr:
        """An aggregate over ``ROWS BETWEEN CURRENT ROW AND CURRENT ROW``: over the row
        alone, so a value of the row (the IR's frames hold a row's peers too; first/last
        of one row is its value)."""
        try:
            dtype = AggCall(func, arg, "?", filt, by).dtype
        except RelplanError as e:
            raise fail(SchemaError, str(e), n) from None
        if func == "mean" and self.ctx.dialect == "flink" and arg is not None and arg.dtype == T.Int64:
            dtype = T.Int64  # Flink's AVG of a BIGINT is a BIGINT: of one value, the value
        conds = ([Unary("IS NOT NULL", arg)] if arg is not None else []) + ([filt] if filt is not None else [])
        present = and_all(conds)
        if func in ("count", "count_distinct"):
            return Literal(1) if present is None else Case(((present, Literal(1)),), Literal(0))
        if func in ("var", "std"):  # the sample variance of one value is NULL
            return Literal(None, dtype)
        assert arg is not None
        value = arg if arg.dtype == dtype else Cast(arg, dtype)
        return value if filt is None else Case(((filt, value),), Literal(None, dtype))

    # -- the nodes -----------------------------------------------------------------------

    def finish(self, having: Expr | None) -> Node:
        node = self.rel.node
        if self.grouped:
            node = self._grouped_node()
            if having is not None:
                node = Filter(node, having)
        elif having is not None:
            node = Filter(node, having)
        if self.windows:
            node = self._window_nodes(node)
        return node

    def _grouped_node(self) -> Node:
        ctx = self.ctx
        node = self.rel.node
        base = [(f.name, Column(f.name, f.dtype)) for f in node.schema]
        pre: list[tuple[str, Expr]] = []
        keys: list[str] = []
        restore: list[tuple[str, Expr]] = []
        for g, name in self.groups:
            # SQL keeps a NULL key as a group; the IR drops it: group by (IS NULL, COALESCE).
            v, isnull = ctx.fresh("k"), ctx.fresh("knull")
            pre += [(v, Coalesce((g, semantics.zero_of(g.dtype)))), (isnull, Unary("IS NULL", g))]
            keys += [v, isnull]
            restore.append((name, Case(((Column(isnull, T.Bool), Literal(None, g.dtype if g.dtype != T.Null else T.Int64)),), Column(v, g.dtype))))
        node = Project(node, tuple(base + pre)) if pre else node
        if self.time_window is not None:
            time, window = self.time_window
            aggs = tuple(self.aggs) or (AggCall("count", None, ctx.fresh("a")),)
            node = TimeWindowAggregate(node, tuple(keys), time, window, aggs)
            bounds = [(WINDOW_START, Column(WINDOW_START, T.Timestamp)), (WINDOW_END, Column(WINDOW_END, T.Timestamp))]
        else:
            if not self.aggs and not keys:
                raise fail(UnsupportedError, "HAVING without GROUP BY or an aggregate", getattr(self, "having_at", exp.Null()))
            node = Aggregate(node, tuple(keys), tuple(self.aggs) if self.aggs else ())
            bounds = []
        outs = restore + bounds + [(a.name, Column(a.name, a.dtype)) for a in self.aggs]
        return Project(node, tuple(outs))

    def _window_nodes(self, node: Node) -> Node:
        ctx = self.ctx
        base = [(f.name, Column(f.name, f.dtype)) for f in node.schema]
        groups: dict[tuple, list[_WindowCall]] = {}
        pre: list[tuple[str, Expr]] = []
        computed: dict[tuple[Expr, str], str] = {}

        def column_for(e: Expr, how: str) -> str:
            key = (e, how)
            if key not in computed:
                name = ctx.fresh(how)
                if how == "pk":
                    value: Expr = Coalesce((e, semantics.zero_of(e.dtype)))
                elif how == "pknull" or how == "onull":
                    value = Unary("IS NULL", e)
                elif how == "oconst":
                    value = e
                elif how == "ofirst":
                    value = Coalesce((e, Literal(EARLIEST)))
                else:
                    value = Coalesce((e, Literal(LATEST)))
                pre.append((name, value))
                computed[key] = name
            return computed[key]

        for w in self.windows:
            keys = []
            for k in w.keys:
                keys += [column_for(k, "pk"), column_for(k, "pknull")]
            if isinstance(w.order, Column) and w.order.name in self.rel.not_null and not self.grouped:
                order = w.order.name  # never NULL: SQL's order is the IR's
            elif isinstance(w.order, Literal) and w.order.value is not None:
                order = column_for(w.order, "oconst")  # the whole partition: every row a peer
            else:
                if w.frame.lower is not None:  # a bounded start: NULL times only see each other
                    keys.append(column_for(w.order, "onull"))
                order = column_for(w.order, "ofirst" if w.nulls_first else "olast")
            groups.setdefault((tuple(keys), order), []).append(w)
        node = Project(node, tuple(base + pre))
        for (keys, order), calls in groups.items():
            by_frame: dict[Frame, list[AggCall]] = {}
            for w in calls:
                by_frame.setdefault(w.frame, []).append(AggCall(w.func, w.arg, w.name, w.filter, w.by))
            node = WindowAggregate(node, keys, order, tuple((f, tuple(a)) for f, a in by_frame.items()))
        return node


def _refused_over(inner: exp.Expression, n: exp.Window, dialect: str) -> None:
    """Spark and Flink refuse a window aggregate with FILTER or DISTINCT (Spark: "Window
    aggregate function with filter predicate is not supported yet", DISTINCT_WINDOW_
    FUNCTION_UNSUPPORTED; Flink: "OVER must be applied to aggregate function", and a
    planner error); so does rp.sql in their dialects, rather than give them a meaning."""
    engine = dialect.capitalize()
    agg = inner.this if isinstance(inner, exp.Filter) else inner
    name = _fname(agg)
    if isinstance(inner, exp.Filter):
        raise fail(UnsupportedError, f"{engine} refuses {name}(...) FILTER (WHERE ...) OVER (...) (a window aggregate with "
                   f"FILTER); move the condition into the argument: {name}(CASE WHEN <condition> THEN <x> END)", n)
    if isinstance(agg.this, exp.Distinct):
        way = "; SIZE(COLLECT_SET(x) OVER (...)) counts the distinct values" if dialect == "spark" else ""
        raise fail(UnsupportedError, f"{engine} refuses {name}(DISTINCT ...) OVER (...) (a distinct window aggregate){way}", n)


def _spark_bound(n: exp.Expression) -> str | None:
    """``window.start`` / ``window.end`` (Spark's window struct's fields) as the IR's bounds."""
    if isinstance(n, exp.Column) and n.table and n.table.lower() == "window" and not n.args.get("db"):
        return {"start": WINDOW_START, "end": WINDOW_END}.get(n.name.lower())
    return None


def _fname(n: exp.Expression) -> str:
    if isinstance(n, exp.Anonymous):
        return str(n.this).upper()
    if isinstance(n, exp.Func):
        return n.sql_name().upper()
    return type(n).__name__.upper()


def _same_interval_units(spec: exp.WindowSpec | None) -> None:
    """Spark refuses a RANGE frame whose bounds are intervals of different units
    (``INTERVAL '1' HOUR PRECEDING AND INTERVAL '30' MINUTE PRECEDING``: "do not have the
    same type"); so does rp.sql in Spark's dialect, rather than give it a meaning."""
    if spec is None:
        return
    units = []
    for key in ("start", "end"):
        bound = spec.args.get(key)
        while isinstance(bound, exp.Paren):
            bound = bound.this
        if isinstance(bound, exp.Interval):
            unit = bound.args.get("unit")
            units.append(unit.sql().upper().rstrip("S") if unit is not None else None)
    if len(units) == 2 and units[0] != units[1]:
        raise fail(
            UnsupportedError,
            f"Spark refuses a frame whose bounds are intervals of different units ({units[0]} and {units[1]}): "
            "write both in one unit",
            spec,
        )


def _bounds(spec: exp.WindowSpec | None) -> tuple[str, str, str, str, str] | None:
    """(kind, start, start side, end, end side) of a frame, upper-cased, the numbers and
    intervals as "n"; None for no frame."""
    if spec is None:
        return None
    _no_exclusion(spec)

    def word(x: object) -> str:
        return x.upper() if isinstance(x, str) else "n"

    end = spec.args.get("end")
    return (str(spec.args.get("kind") or "").upper(), word(spec.args.get("start")), str(spec.args.get("start_side") or "").upper(),
            word(end) if end is not None else "CURRENT ROW", str(spec.args.get("end_side") or "").upper())


def _no_exclusion(spec: exp.WindowSpec) -> None:
    """A frame's ``EXCLUDE CURRENT ROW | GROUP | TIES`` takes rows out of it, which no IR
    frame does: refused (``EXCLUDE NO OTHERS`` excludes nothing)."""
    exclude = spec.args.get("exclude")
    if exclude is not None and " ".join(exclude.name.upper().split()) != "NO OTHERS":
        raise fail(UnsupportedError, f"EXCLUDE {exclude.name.upper()} in a window frame is not supported: "
                   "an IR frame holds every row of its range", spec)


def _whole_partition(spec: exp.WindowSpec | None) -> bool:
    """``ROWS`` or ``RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING``."""
    b = _bounds(spec)
    return b is not None and b[1:] == ("UNBOUNDED", "PRECEDING", "UNBOUNDED", "FOLLOWING")


def _current_row_only(spec: exp.WindowSpec | None) -> bool:
    """``ROWS BETWEEN CURRENT ROW AND CURRENT ROW`` (``ROWS CURRENT ROW``): the row alone."""
    b = _bounds(spec)
    return b is not None and b[0] == "ROWS" and b[1] == "CURRENT ROW" and b[3] == "CURRENT ROW"


def _frame(spec: exp.WindowSpec | None, micros: bool = False) -> Frame:
    """The IR frame of a SQL frame over a timestamp order; None (no frame) is SQL's default,
    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW. ``micros``: the order is a
    timestamp's epoch microseconds (relplan's lowering), the offsets whole microseconds."""

    def offset(x: exp.Expression) -> int:
        if micros:
            us = emitted.micros_offset(x)
            if us is None:
                raise fail(UnsupportedError, f"a frame over epoch microseconds takes whole microseconds, not {x.sql()}", spec)
            return us
        return interval_us(x)

    if spec is None:
        return Frame(None, upper=0, upper_inclusive=True)
    _no_exclusion(spec)
    kind = str(spec.args.get("kind") or "").upper()
    if kind == "ROWS" and (_whole_partition(spec) or _current_row_only(spec)):
        # rp.sql reads these before asking for a frame (Stage._window): here a feature's
        what = "the whole partition" if _whole_partition(spec) else "the row alone"
        raise fail(UnsupportedError, f"a ROWS frame of {what} is not a feature's window (a time range ending at "
                   "its event); rp.sql reads it in a general query", spec)
    if kind != "RANGE":
        raise fail(
            UnsupportedError,
            f"{kind or 'this'} frame is not supported: a ROWS frame counts rows, and rows tied on the order "
            "are taken in an order the engine picks, so its result depends on that order; relplan's frames "
            "are time ranges (RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW), and rp.sql reads ROWS only "
            "BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING or CURRENT ROW AND CURRENT ROW",
            spec,
        )
    start, start_side = spec.args.get("start"), str(spec.args.get("start_side") or "").upper()
    end, end_side = spec.args.get("end"), str(spec.args.get("end_side") or "").upper()
    if end is None:  # RANGE INTERVAL x PRECEDING: up to the current row
        end, end_side = "CURRENT ROW", ""
    lower: int | None
    if isinstance(start, str) and start.upper() == "UNBOUNDED" and start_side == "PRECEDING":
        lower = None
    elif isinstance(start, str) and start.upper() == "CURRENT ROW":
        lower = 0
    elif start_side == "PRECEDING":
        lower = offset(start)
    else:
        raise fail(UnsupportedError, "a frame that starts FOLLOWING the row is not supported (a feature sees the past)", spec)
    if isinstance(end, str) and end.upper() == "CURRENT ROW":
        upper = 0
    elif end_side == "PRECEDING":
        upper = offset(end)
    else:
        raise fail(UnsupportedError, "a frame that ends FOLLOWING the row is not supported (a feature sees the past)", spec)
    if lower == 0 and upper == 0:
        # RANGE BETWEEN CURRENT ROW AND CURRENT ROW: the row's peers, [t, t].
        return Frame(1, lower_inclusive=False, upper=0, upper_inclusive=True)
    if lower is not None and lower < upper:
        raise fail(UnsupportedError, "the frame ends before it starts", spec)
    if lower is not None and lower == upper:
        # [t - x, t - x]: the rows exactly x earlier (written with an exclusive lower edge 1us earlier).
        return Frame(lower + 1, lower_inclusive=False, upper=upper, upper_inclusive=True)
    return Frame(lower, lower_inclusive=lower is not None, upper=upper, upper_inclusive=True)
