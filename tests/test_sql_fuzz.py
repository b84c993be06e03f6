"""Fuzzing rp.sql: valid, invalid and adversarial SQL in DuckDB, Spark and Flink.

Every generated query is compiled in each of the three dialects, and each time rp.sql
either returns a Plan or raises a RelplanError whose message names the culprit where
the generator knows it (the unknown name, the wrongly typed column, the refused
statement); never another exception, never a hang (each compile runs under a timer).
Valid queries over the sources' real columns must compile, and one in twenty of them
also runs on DuckDB, where anything that goes wrong must be a RelplanError too.

The tests draw 10,160 queries per run in all (QUERY_COUNT, checked by the test after
them when every fuzz test ran): 1,600 valid, 3,600 invalid, 1,600 hostile, 750 nested,
2,600 garbage and 10 of 100,000 characters, each compiled three times; about a minute
of one core.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import signal
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

import relplan as rp
from relplan.compiler.sql import reader
from relplan.compiler.sql.scan import scan
from relplan.ir import types as T
from relplan.ir.errors import RelplanError, SqlError
from relplan.ir.nodes import Source
from relplan.ir.schema import Field, Schema

DIALECTS = ("duckdb", "spark", "flink")
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)

#: Seconds one rp.sql call may take before the test calls it a hang (a 100,000-character
#: query takes about two seconds on a loaded machine).
COMPILE_LIMIT_S = 30.0


class FzTx(rp.Source):
    amount: rp.Float64
    n: rp.Int64
    status: rp.String
    flag: rp.Bool
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time()


class FzAcct(rp.Source):
    tier: rp.String
    credit: rp.Float64
    account_id: rp.Int64 = rp.key()
    opened: rp.Timestamp = rp.event_time()


# Names no engine should be confused by: quotes of every dialect, a statement after a
# comment, backslashes, unicode, a control character, a reserved word, a long name.
HOSTILE_NAMES = (
    'a"b; DROP TABLE x --',
    "it's",
    "back`tick",
    "back\\slash\\",
    "naïve ☃ 名前",
    "tab\tand\nnewline",
    "select",
    "*/ x /*",
    "${x}",
    "x" * 300,
)
HOSTILE_SOURCE = Source(
    "weird \"src\" `name`",
    Schema([Field(HOSTILE_NAMES[0], T.Int64), Field(HOSTILE_NAMES[1], T.String), Field(HOSTILE_NAMES[4], T.Float64),
            Field(HOSTILE_NAMES[6], T.Int64), Field("when", T.Timestamp)]),
    event_time="when",
)
SOURCES = [FzTx, FzAcct, HOSTILE_SOURCE]

TX_ROWS = [
    dict(amount=1.5, n=7, status="failed", flag=True, account_id=1, ts=T0),
    dict(amount=-2.0, n=-7, status="ok", flag=False, account_id=1, ts=T0 + HOUR),
    dict(amount=4.0, n=3, status="it's", flag=None, account_id=None, ts=T0),
    dict(amount=None, n=0, status=None, flag=True, account_id=2, ts=T0 - 30 * HOUR),
    dict(amount=16.25, n=None, status="failed", flag=False, account_id=2, ts=T0 + 24 * HOUR),
]
ACCT_ROWS = [
    dict(tier="gold", credit=100.0, account_id=1, opened=T0 - 100 * HOUR),
    dict(tier=None, credit=None, account_id=3, opened=T0),
]
HOSTILE_ROWS = [{HOSTILE_NAMES[0]: 1, HOSTILE_NAMES[1]: "x'y", HOSTILE_NAMES[4]: 2.5, HOSTILE_NAMES[6]: 3, "when": T0}]
TABLES = {
    "FzTx": pa.Table.from_pylist(TX_ROWS, schema=FzTx.to_arrow_schema()),
    "FzAcct": pa.Table.from_pylist(ACCT_ROWS, schema=FzAcct.to_arrow_schema()),
    HOSTILE_SOURCE.name: pa.Table.from_pylist(
        HOSTILE_ROWS,
        schema=pa.schema([(HOSTILE_NAMES[0], pa.int64()), (HOSTILE_NAMES[1], pa.string()), (HOSTILE_NAMES[4], pa.float64()),
                          (HOSTILE_NAMES[6], pa.int64()), ("when", pa.timestamp("us", tz="UTC"))]),
    ),
}

#: Queries compiled, per test (the last test checks the total).
QUERY_COUNT: Counter[str] = Counter()
FUZZ_TESTS = ("valid", "invalid", "hostile", "nesting", "garbage", "huge")


# ---- what each query must do -----------------------------------------------------------


@dataclass
class Case:
    """A query per dialect and what rp.sql must do with it."""

    text: Callable[[str], str]  # dialect -> SQL
    valid: bool = False  # must compile in every dialect
    culprit: tuple[str, ...] = ()  # one of these appears in the error message
    errors: tuple[type[RelplanError], ...] = (RelplanError,)
    columns: list[str] | None = None  # a valid query's output columns, in order
    run: bool = False  # also execute it on DuckDB
    literal: tuple[str, str] | None = None  # (column, value) the DuckDB run must give
    dialects: tuple[str, ...] = DIALECTS


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, if the block runs longer than ``seconds``."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):  # noqa: ANN001, ANN202
        raise Hang(f"took more than {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(case: Case, test: str) -> None:
    QUERY_COUNT[test] += 1
    for d in case.dialects:
        query = case.text(d)
        check_scan(query, d)
        started = time.perf_counter()
        try:
            with time_limit(COMPILE_LIMIT_S):
                plan = rp.sql(query, sources=SOURCES, dialect=d)
        except RelplanError as e:
            message = str(e)
            assert not case.valid, f"a valid query was refused in {d}:\n{query}\n{type(e).__name__}: {message}"
            assert isinstance(e, case.errors), f"{d}: expected {case.errors}, got {type(e).__name__}: {message}\n{query}"
            assert message.strip(), f"{d}: an empty message for\n{query}"
            if case.culprit:
                assert any(c in message or repr(c)[1:-1] in message or c.upper() in message for c in case.culprit), (
                    f"{d}: the message does not name any of {case.culprit}:\n{message}\nfor\n{query}"
                )
            if isinstance(e, SqlError) and e.where is None:
                assert not _located_kind(message), f"{d}: no line and column in\n{message}\nfor\n{query}"
            elif not isinstance(e, SqlError):
                assert e.where is not None and "line " in e.where, f"{d}: no line and column in\n{message}\nfor\n{query}"
            continue
        except Hang as e:
            pytest.fail(f"rp.sql {e} in {d} ({len(query):,} characters):\n{query[:2000]}")
        elapsed = time.perf_counter() - started
        assert elapsed < COMPILE_LIMIT_S, f"rp.sql took {elapsed:.1f} s in {d}"
        assert isinstance(plan, rp.Plan)
        assert not case.culprit or case.valid, f"{d}: compiled what should be refused ({case.culprit}):\n{query}"
        if case.columns is not None:
            got = [f.name for f in plan.outputs[0].schema]
            assert got == case.columns, f"{d}: output columns {got} != {case.columns}\n{query}"
        if case.run and d == "duckdb":
            run_on_duckdb(plan, query, case)


def check_scan(query: object, d: str) -> None:
    """compiler/sql/scan.py, which rp.sql's first read takes its tokens from, declines
    the query or gives exactly sqlglot's tokens (tests/test_sql_scan.py has the rest)."""
    if not isinstance(query, str) or len(query) > 1_000:
        return  # the long ones (nesting, 100,000 characters) are scanned by rp.sql; sqlglot's tokens of them cost seconds
    dialect = sqlglot.Dialect.get_or_raise(d)
    got = scan(query, dialect)
    if got is None:
        return
    want = dialect.tokenizer().tokenize(query)  # the scan reads only what sqlglot's tokenizer reads
    fields = ("token_type", "text", "line", "col", "start", "end", "comments")
    assert [[getattr(t, f) for f in fields] for t in got] == [[getattr(t, f) for f in fields] for t in want], (
        f"{d}: the scan's tokens differ from sqlglot's for\n{query}"
    )


def _located_kind(message: str) -> bool:
    # SqlErrors about the text's parts carry a location; the ones about the whole text
    # (its size, its depth, an empty text, the dialect) need none.
    whole = ("characters long", "nest more than", "nested too deeply", "no statement", "dialect", "takes the query")
    return not any(w in message for w in whole)


def run_on_duckdb(plan: rp.Plan, query: str, case: Case) -> None:
    try:
        with time_limit(COMPILE_LIMIT_S):
            table = rp.execute(plan, engine="duckdb", tables=TABLES)
    except RelplanError:
        return  # an engine's refusal, as relplan's error (e.g. an integer overflow)
    except Hang as e:
        pytest.fail(f"rp.execute {e}:\n{query}")
    assert isinstance(table, pa.Table)
    if case.literal is not None:
        column, value = case.literal
        assert set(table.column(column).to_pylist()) <= {value}, f"{column} is not {value!r} in\n{query}"


# ---- rendering per dialect -------------------------------------------------------------

_IDS: dict[tuple[str, str], str] = {}


def ident(name: str, d: str) -> str:
    """``name`` quoted as dialect ``d`` quotes an identifier."""
    key = (name, d)
    if key not in _IDS:
        _IDS[key] = exp.to_identifier(name, quoted=True).sql(dialect=d)
    return _IDS[key]


def string_lit(value: str, d: str) -> str:
    return exp.Literal.string(value).sql(dialect=d)


def type_name(t: str, d: str) -> str:
    return {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR" if d == "duckdb" else "STRING", "ts": "TIMESTAMP"}[t]


# Expressions are small trees of tuples, rendered per dialect by sql().
Node = tuple


def sql(e: Node, d: str) -> str:  # noqa: C901 (one renderer for the whole grammar)
    kind = e[0]
    if kind == "col":
        _, qual, name = e
        return f"{ident(qual, d)}.{ident(name, d)}" if qual else ident(name, d)
    if kind == "int":
        return str(e[1]) if e[1] >= 0 else f"({e[1]})"
    if kind == "float":  # with an exponent: a DOUBLE in every dialect (1.25 alone is a DECIMAL)
        return f"{e[1]!r}e0" if e[1] >= 0 else f"({e[1]!r}e0)"
    if kind == "str":
        return string_lit(e[1], d)
    if kind == "bool":
        return "TRUE" if e[1] else "FALSE"
    if kind == "null":
        return "NULL"
    if kind == "ts":
        return f"CAST('{e[1]:%Y-%m-%d %H:%M:%S}' AS TIMESTAMP)"
    if kind == "bin":
        _, op, a, b = e
        return f"({sql(a, d)} {op} {sql(b, d)})"
    if kind == "not":
        return f"(NOT {sql(e[1], d)})"
    if kind == "neg":
        return f"(- {sql(e[1], d)})"
    if kind == "isnull":
        return f"({sql(e[1], d)} IS {'NOT ' if e[2] else ''}NULL)"
    if kind == "between":
        return f"({sql(e[1], d)} BETWEEN {sql(e[2], d)} AND {sql(e[3], d)})"
    if kind == "in":
        return f"({sql(e[1], d)} IN ({', '.join(sql(v, d) for v in e[2])}))"
    if kind == "case":
        whens = " ".join(f"WHEN {sql(c, d)} THEN {sql(v, d)}" for c, v in e[1])
        return f"(CASE {whens} ELSE {sql(e[2], d)} END)"
    if kind == "coalesce":
        return f"COALESCE({', '.join(sql(a, d) for a in e[1])})"
    if kind == "cast":
        return f"CAST({sql(e[1], d)} AS {type_name(e[2], d)})"
    if kind == "agg":
        _, func, arg, distinct = e
        inner = "*" if arg is None else ("DISTINCT " if distinct else "") + sql(arg, d)
        return f"{func}({inner})"
    if kind == "win":
        _, func, arg, keys, order, frame = e
        parts = []
        if keys:
            parts.append("PARTITION BY " + ", ".join(sql(k, d) for k in keys))
        parts.append(f"ORDER BY {sql(order, d)}")
        if frame is not None:
            amount, unit = frame
            parts.append(f"RANGE BETWEEN INTERVAL '{amount}' {unit} PRECEDING AND CURRENT ROW")
        return f"{sql(('agg', func, arg, False), d)} OVER ({' '.join(parts)})"
    if kind == "raw":
        return e[1](d) if callable(e[1]) else e[1]
    raise AssertionError(kind)


def batch(cases: st.SearchStrategy[Case], n: int) -> st.SearchStrategy[list[Case]]:
    """``n`` queries per example: hypothesis's own work per example is shared by them."""
    return st.lists(cases, min_size=n, max_size=n)


# ---- a grammar of valid queries ----------------------------------------------------------

Cols = list[tuple[str | None, str, str]]  # (qualifier, name, type)
TX_COLS: Cols = [(None, "amount", "float"), (None, "n", "int"), (None, "status", "str"), (None, "flag", "bool"),
                 (None, "account_id", "int"), (None, "ts", "ts")]
ACCT_COLS: Cols = [(None, "tier", "str"), (None, "credit", "float"), (None, "account_id", "int"), (None, "opened", "ts")]
NUMERIC = ("int", "float")

small_ints = st.integers(-1000, 1000)
words = st.sampled_from(["failed", "ok", "it's", "", "a\\b", "naïve", "x'; DROP TABLE FzTx; --", "\"q\""])


def literal(draw: st.DrawFn, t: str) -> Node:
    if t == "int":
        return ("int", draw(small_ints))
    if t == "float":
        return ("float", draw(st.sampled_from([0.5, 1.25, 2.0, 100.0, -3.5])))
    if t == "str":
        return ("str", draw(words))
    if t == "bool":
        return ("bool", draw(st.booleans()))
    return ("ts", T0 + dt.timedelta(hours=draw(st.integers(-48, 48))))


def column(draw: st.DrawFn, cols: Cols, t: str | tuple[str, ...]) -> Node | None:
    want = (t,) if isinstance(t, str) else t
    fits = [c for c in cols if c[2] in want]
    if not fits:
        return None
    q, name, _ = draw(st.sampled_from(fits))
    return ("col", q, name)


def expr(draw: st.DrawFn, cols: Cols, t: str, depth: int) -> Node:
    """A valid expression of type ``t`` over ``cols``."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        c = column(draw, cols, t)
        if c is not None and draw(st.booleans()):
            return c
        return literal(draw, t)
    sub = depth - 1
    if t in NUMERIC:
        choice = draw(st.integers(0, 6))
        if choice == 0:
            a, b = expr(draw, cols, t, sub), expr(draw, cols, draw(st.sampled_from(["int", t])), sub)
            return ("bin", draw(st.sampled_from(["+", "-", "*"])), a, b)
        if choice == 1 and t == "int":
            return ("bin", "%", expr(draw, cols, "int", sub), ("int", draw(st.integers(1, 9))))
        if choice == 1:
            return ("bin", "/", expr(draw, cols, "float", sub), ("float", 2.0))
        if choice == 2:
            return ("case", [(expr(draw, cols, "bool", sub), expr(draw, cols, t, sub))], expr(draw, cols, t, sub))
        if choice == 3:
            return ("coalesce", [expr(draw, cols, t, sub), literal(draw, t)])
        if choice == 4 and t == "float":
            return ("cast", expr(draw, cols, "int", sub), "float")
        if choice == 5:
            return ("neg", expr(draw, cols, t, sub))
        return expr(draw, cols, t, 0)
    if t == "bool":
        choice = draw(st.integers(0, 7))
        if choice == 0:
            ct = draw(st.sampled_from(["int", "float", "str", "ts"]))
            op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
            return ("bin", op, expr(draw, cols, ct, sub), expr(draw, cols, ct, sub))
        if choice == 1:
            return ("bin", draw(st.sampled_from(["AND", "OR"])), expr(draw, cols, "bool", sub), expr(draw, cols, "bool", sub))
        if choice == 2:
            return ("not", expr(draw, cols, "bool", sub))
        if choice == 3:
            return ("isnull", expr(draw, cols, draw(st.sampled_from(["int", "float", "str", "bool", "ts"])), sub), draw(st.booleans()))
        if choice == 4:
            ct = draw(st.sampled_from(["int", "float", "ts"]))
            return ("between", expr(draw, cols, ct, sub), literal(draw, ct), literal(draw, ct))
        if choice == 5:
            ct = draw(st.sampled_from(["int", "str"]))
            return ("in", expr(draw, cols, ct, sub), [literal(draw, ct) for _ in range(draw(st.integers(1, 4)))])
        if choice == 6:
            return ("case", [(expr(draw, cols, "bool", sub), expr(draw, cols, "bool", sub))], literal(draw, "bool"))
        return expr(draw, cols, t, 0)
    if t == "str":
        choice = draw(st.integers(0, 3))
        if choice == 0:
            return ("case", [(expr(draw, cols, "bool", sub), expr(draw, cols, "str", sub))], literal(draw, "str"))
        if choice == 1:
            return ("coalesce", [expr(draw, cols, "str", sub), literal(draw, "str")])
        if choice == 2:
            return ("cast", expr(draw, cols, "int", sub), "str")
        return expr(draw, cols, t, 0)
    # timestamps: a column, a literal, a CASE or COALESCE of them
    if draw(st.booleans()):
        return ("coalesce", [expr(draw, cols, "ts", sub), literal(draw, "ts")])
    return expr(draw, cols, t, 0)


def select_items(draw: st.DrawFn, cols: Cols, depth: int) -> tuple[list[tuple[str, Node]], list[str]]:
    n = draw(st.integers(1, 4))
    items = []
    for i in range(n):
        t = draw(st.sampled_from(["int", "float", "str", "bool", "ts"]))
        items.append((f"c{i}", expr(draw, cols, t, depth)))
    return items, [name for name, _ in items]


def render_items(items: list[tuple[str, Node]], d: str) -> str:
    return ", ".join(f"{sql(e, d)} AS {ident(name, d)}" for name, e in items)


def maybe_where(draw: st.DrawFn, cols: Cols, depth: int) -> Node | None:
    return expr(draw, cols, "bool", depth) if draw(st.booleans()) else None


def where_sql(w: Node | None, d: str) -> str:
    return f" WHERE {sql(w, d)}" if w is not None else ""


@st.composite
def valid_queries(draw: st.DrawFn) -> Case:
    shape = draw(st.sampled_from(["project", "group", "window", "join", "union", "cte", "subquery"]))
    depth = draw(st.integers(0, 3))
    run = draw(st.integers(0, 19)) == 0
    if shape == "project":
        items, names = select_items(draw, TX_COLS, depth)
        w = maybe_where(draw, TX_COLS, depth)
        return Case(lambda d: f"SELECT {render_items(items, d)} FROM FzTx{where_sql(w, d)}", valid=True, columns=names, run=run)
    if shape == "group":
        keys = draw(st.lists(st.sampled_from(["status", "account_id", "flag", "n"]), min_size=0, max_size=2, unique=True))
        aggs = []
        for i in range(draw(st.integers(1, 3))):
            func = draw(st.sampled_from(["COUNT", "SUM", "AVG", "MIN", "MAX", "COUNT_STAR", "COUNT_DISTINCT"]))
            if func == "COUNT_STAR":
                aggs.append((f"a{i}", ("agg", "COUNT", None, False)))
                continue
            t = draw(st.sampled_from(["int", "float"] if func in ("SUM", "AVG") else ["int", "float", "str"]))
            if func == "AVG" and t == "int":
                t = "float"  # Flink's AVG of a BIGINT truncates: written as the float it means everywhere
            arg = expr(draw, TX_COLS, t, min(depth, 2))
            aggs.append((f"a{i}", ("agg", "COUNT" if func == "COUNT_DISTINCT" else func, arg, func == "COUNT_DISTINCT")))
        w = maybe_where(draw, TX_COLS, min(depth, 2))
        having = draw(st.booleans())
        names = keys + [a for a, _ in aggs]

        def text(d: str) -> str:
            cols = ", ".join([ident(k, d) for k in keys] + [f"{sql(e, d)} AS {ident(a, d)}" for a, e in aggs])
            group = f" GROUP BY {', '.join(ident(k, d) for k in keys)}" if keys else ""
            hav = " HAVING COUNT(*) > 1" if having else ""
            return f"SELECT {cols} FROM FzTx{where_sql(w, d)}{group}{hav}"

        return Case(text, valid=True, columns=names, run=run)
    if shape == "window":
        calls = []
        for i in range(draw(st.integers(1, 3))):
            func = draw(st.sampled_from(["COUNT", "SUM", "AVG", "MIN", "MAX"]))
            arg = None if func == "COUNT" and draw(st.booleans()) else expr(draw, TX_COLS, "float" if func in ("SUM", "AVG") else "int", min(depth, 2))
            keys = draw(st.lists(st.sampled_from([("col", None, "account_id"), ("col", None, "status")]), max_size=2, unique=True))
            frame = draw(st.none() | st.tuples(st.integers(1, 48), st.sampled_from(["HOUR", "DAY", "MINUTE", "SECOND"])))
            calls.append((f"w{i}", ("win", func, arg, keys, ("col", None, "ts"), frame)))
        w = maybe_where(draw, TX_COLS, min(depth, 2))
        names = ["account_id", "ts"] + [name for name, _ in calls]
        return Case(lambda d: f"SELECT account_id, ts, {render_items(calls, d)} FROM FzTx{where_sql(w, d)}",
                    valid=True, columns=names, run=run)
    if shape == "join":
        how = draw(st.sampled_from(["JOIN", "INNER JOIN", "LEFT JOIN"]))
        tx = [("t", name, ty) for _, name, ty in TX_COLS]
        acct = [("a", name, ty) for _, name, ty in ACCT_COLS]
        items, names = select_items(draw, tx + acct, min(depth, 2))
        w = maybe_where(draw, tx + acct, min(depth, 2))
        # an inner join's ON may test either side's columns too
        on = expr(draw, acct if draw(st.booleans()) else tx, "bool", 1) if how != "LEFT JOIN" and draw(st.booleans()) else None
        return Case(lambda d: f"SELECT {render_items(items, d)} FROM FzTx t {how} FzAcct a ON t.account_id = a.account_id"
                    f"{' AND ' + sql(on, d) if on is not None else ''}{where_sql(w, d)}", valid=True, columns=names, run=run)
    if shape == "union":
        types = draw(st.lists(st.sampled_from(["int", "float", "str", "ts"]), min_size=1, max_size=3))
        first = [(f"u{i}", expr(draw, TX_COLS, t, min(depth, 2))) for i, t in enumerate(types)]
        second = [(f"u{i}", expr(draw, TX_COLS, t, min(depth, 2))) for i, t in enumerate(types)]
        return Case(lambda d: f"SELECT {render_items(first, d)} FROM FzTx UNION ALL SELECT {render_items(second, d)} FROM FzTx",
                    valid=True, columns=[n for n, _ in first], run=run)
    # a CTE or a subquery in FROM, queried again
    inner, inner_names = select_items(draw, TX_COLS, min(depth, 2))
    inner_types = {name: _type_of(e) for name, e in inner}
    outer_cols: Cols = [(None, name, t) for name, t in inner_types.items() if t is not None]
    if not outer_cols:
        inner = inner + [("c9", ("col", None, "n"))]
        outer_cols = [(None, "c9", "int")]
    outer, names = select_items(draw, outer_cols, min(depth, 2))
    w = maybe_where(draw, outer_cols, 1)
    if shape == "cte":
        return Case(lambda d: f"WITH {ident('c t e', d)} AS (SELECT {render_items(inner, d)} FROM FzTx) "
                    f"SELECT {render_items(outer, d)} FROM {ident('c t e', d)}{where_sql(w, d)}", valid=True, columns=names, run=run)
    return Case(lambda d: f"SELECT {render_items(outer, d)} FROM (SELECT {render_items(inner, d)} FROM FzTx) sub{where_sql(w, d)}",
                valid=True, columns=names, run=run)


def _type_of(e: Node) -> str | None:
    """The grammar's type of a generated expression, when it is plain to see."""
    kind = e[0]
    if kind in ("int", "float", "str", "bool", "ts"):
        return kind
    if kind == "col":
        return dict((name, t) for _, name, t in TX_COLS).get(e[2])
    if kind == "cast":
        return e[2]
    if kind in ("isnull", "between", "in", "not") or (kind == "bin" and e[1] in ("=", "<>", "<", "<=", ">", ">=", "AND", "OR")):
        return "bool"
    return None


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch(valid_queries(), 2))
def test_valid_queries_compile_everywhere_and_run_on_duckdb(cases: list[Case]) -> None:
    for case in cases:
        check(case, "valid")


# ---- invalid queries: each names its culprit ------------------------------------------------

name_chars = st.sampled_from(string.ascii_letters + string.digits + "_")
plain_names = st.text(name_chars, min_size=1, max_size=12).map(lambda s: "fz_" + s)
any_names = st.one_of(plain_names, st.sampled_from(HOSTILE_NAMES),
                      st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20))
KNOWN = {"fztx", "fzacct", HOSTILE_SOURCE.name.lower(), "t", "a", "sub", "c t e", *(c.lower() for _, c, _ in TX_COLS + ACCT_COLS)}


def ok_name(name: str) -> bool:
    return name.lower() not in KNOWN and name.strip() == name and name != ""


INVALID_KINDS = (
    "unknown_table", "unknown_column", "unknown_qualified", "unknown_function", "wrong_type", "aggregate_in_where",
    "frame_without_order", "rows_frame", "statement", "several", "non_deterministic", "refused_clause",
    "group_missing", "unknown_in_join", "window_order_type",
)


@st.composite
def invalid_queries(draw: st.DrawFn) -> Case:  # noqa: C901 (one generator per kind)
    kind = draw(st.sampled_from(INVALID_KINDS))
    if kind == "unknown_table":
        name = draw(any_names.filter(ok_name))
        return Case(lambda d: f"SELECT n FROM {ident(name, d)}", culprit=(name,))
    if kind in ("unknown_column", "unknown_in_join"):
        name = draw(any_names.filter(ok_name))
        e = expr(draw, TX_COLS + [(None, name, "int")], "int", 1)
        place = draw(st.sampled_from(["select", "where", "group", "window", "on"] if kind == "unknown_column" else ["on"]))
        if not _mentions(e, name):
            e = ("bin", "+", e, ("col", None, name))
        if place == "select":
            return Case(lambda d: f"SELECT {sql(e, d)} AS x FROM FzTx", culprit=(name,))
        if place == "where":
            return Case(lambda d: f"SELECT n FROM FzTx WHERE {sql(e, d)} > 0", culprit=(name,))
        if place == "group":
            return Case(lambda d: f"SELECT COUNT(*) AS c FROM FzTx GROUP BY {sql(e, d)}", culprit=(name,))
        if place == "window":
            return Case(lambda d: f"SELECT SUM({sql(e, d)}) OVER (PARTITION BY account_id ORDER BY ts) AS w FROM FzTx",
                        culprit=(name,))
        return Case(lambda d: f"SELECT t.n FROM FzTx t JOIN FzAcct a ON t.account_id = a.{ident(name, d)}", culprit=(name,))
    if kind == "unknown_qualified":
        name = draw(any_names.filter(ok_name))
        return Case(lambda d: f"SELECT {ident(name, d)}.n FROM FzTx t", culprit=(name,))
    if kind == "unknown_function":
        name = draw(plain_names)
        args = draw(st.lists(st.sampled_from(["n", "status", "1", "'x'", "amount * 2"]), max_size=3))
        placed = draw(st.sampled_from(["select", "where", "inside"]))
        call = f"{name}({', '.join(args)})"
        text = {"select": f"SELECT {call} AS x FROM FzTx", "where": f"SELECT n FROM FzTx WHERE {call} = 1",
                "inside": f"SELECT COALESCE(n, {call}) + 1 AS x FROM FzTx"}[placed]
        return Case(lambda d: text, culprit=(name.upper(), name))
    if kind == "wrong_type":
        col, bad = draw(st.sampled_from([
            ("status", "SELECT status + 1 AS x FROM FzTx"),
            ("status", "SELECT SUM(status) AS x FROM FzTx"),
            ("status", "SELECT AVG(status) AS x FROM FzTx GROUP BY n"),
            ("ts", "SELECT ts * 2 AS x FROM FzTx"),
            ("ts", "SELECT n FROM FzTx WHERE ts > 5"),
            ("flag", "SELECT flag + n AS x FROM FzTx"),
            ("n", "SELECT n AND flag AS x FROM FzTx"),
            ("n", "SELECT CASE WHEN n THEN 1 ELSE 0 END AS x FROM FzTx"),
            ("status", "SELECT COALESCE(n, status) AS x FROM FzTx"),
            ("amount", "SELECT amount % 2 AS x FROM FzTx"),
            ("status", "SELECT n FROM FzTx WHERE status"),
            ("n", "SELECT n FROM FzTx WHERE n"),
            ("'x'", "SELECT n IN ('x', 'y') AS x FROM FzTx"),
            ("status", "SELECT status BETWEEN 1 AND 2 AS x FROM FzTx"),
            ("status", "SELECT SUM(status) OVER (PARTITION BY account_id ORDER BY ts) AS w FROM FzTx"),
            ("status", "SELECT n FROM FzTx UNION ALL SELECT status FROM FzTx"),
            ("status", "SELECT CAST(status AS BIGINT) AS x FROM FzTx"),
        ]))
        return Case(lambda d: bad, culprit=(col,))
    if kind == "aggregate_in_where":
        func = draw(st.sampled_from(["SUM(n)", "COUNT(*)", "MAX(amount)", "AVG(n)"]))
        return Case(lambda d: f"SELECT n FROM FzTx WHERE {func} > 1", culprit=("WHERE",))
    if kind == "frame_without_order":
        frame = draw(st.sampled_from(["RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW",
                                      "ROWS BETWEEN 2 PRECEDING AND CURRENT ROW", "RANGE UNBOUNDED PRECEDING"]))
        keys = draw(st.sampled_from(["", "PARTITION BY account_id "]))
        return Case(lambda d: f"SELECT COUNT(*) OVER ({keys}{frame}) AS w FROM FzTx", culprit=("ORDER BY",))
    if kind == "rows_frame":
        k = draw(st.integers(0, 10))
        start = "UNBOUNDED PRECEDING" if k == 0 else f"{k} PRECEDING"
        return Case(lambda d: f"SELECT SUM(amount) OVER (PARTITION BY account_id ORDER BY ts ROWS BETWEEN {start} AND CURRENT ROW)"
                    " AS w FROM FzTx", culprit=("ROWS",))
    if kind == "statement":
        keyword, text = draw(st.sampled_from([
            ("CREATE", "CREATE TABLE t (a BIGINT)"),
            ("CREATE", "CREATE TABLE t AS SELECT n FROM FzTx"),
            ("CREATE", "CREATE VIEW v AS SELECT n FROM FzTx"),
            ("INSERT", "INSERT INTO FzTx (n) VALUES (1)"),
            ("INSERT", "INSERT INTO FzTx SELECT * FROM FzTx"),
            ("DELETE", "DELETE FROM FzTx WHERE n = 1"),
            ("UPDATE", "UPDATE FzTx SET n = 1"),
            ("DROP", "DROP TABLE FzTx"),
            ("ALTER", "ALTER TABLE FzTx ADD COLUMN x BIGINT"),
            ("TRUNCATE", "TRUNCATE TABLE FzTx"),
            ("MERGE", "MERGE INTO FzTx t USING FzAcct a ON t.account_id = a.account_id WHEN MATCHED THEN DELETE"),
            ("INTO", "SELECT n INTO t2 FROM FzTx"),
        ]))
        return Case(lambda d: text, culprit=(keyword,), errors=(SqlError,))
    if kind == "several":
        first, _ = select_items(draw, TX_COLS, 1)
        second = draw(st.sampled_from(["SELECT 1", "DROP TABLE FzTx", "SELECT n FROM FzTx", "DELETE FROM FzTx"]))
        sep = draw(st.sampled_from([";", "; ", ";\n", " ;  ;"]))
        return Case(lambda d: f"SELECT {render_items(first, d)} FROM FzTx{sep}{second}", culprit=("statements",), errors=(SqlError,))
    if kind == "non_deterministic":
        call = draw(st.sampled_from(["RANDOM()", "RAND()", "NOW()", "CURRENT_TIMESTAMP", "UUID()", "CURRENT_DATE"]))
        text = draw(st.sampled_from(["SELECT {} AS x FROM FzTx", "SELECT n FROM FzTx WHERE {} IS NOT NULL",
                                     "SELECT COALESCE(ts, {}) AS x FROM FzTx"])).format(call)
        return Case(lambda d: text, culprit=(call.rstrip("()"),))
    if kind == "refused_clause":
        clause, text = draw(st.sampled_from([
            ("ORDER BY", "SELECT n FROM FzTx ORDER BY n"),
            ("LIMIT", "SELECT n FROM FzTx LIMIT 5"),
            ("DISTINCT", "SELECT DISTINCT n FROM FzTx"),
            ("UNION", "SELECT n FROM FzTx UNION SELECT n FROM FzTx"),
            ("CROSS", "SELECT t.n FROM FzTx t CROSS JOIN FzAcct a"),
            ("RECURSIVE", "WITH RECURSIVE r AS (SELECT n FROM FzTx) SELECT n FROM r"),
            ("INTERSECT", "SELECT n FROM FzTx INTERSECT SELECT n FROM FzTx"),
            ("TRY_CAST", "SELECT TRY_CAST(n AS DOUBLE) AS x FROM FzTx"),
            ("subquery", "SELECT n FROM FzTx WHERE n IN (SELECT n FROM FzTx)"),
            ("subquery", "SELECT (SELECT MAX(n) FROM FzTx) AS x FROM FzTx"),
            ("INT", "SELECT CAST(n AS INT) AS x FROM FzTx"),
            ("without FROM", "SELECT 1 AS x"),
            ("TABLESAMPLE", "SELECT n FROM FzTx TABLESAMPLE (10 PERCENT)"),
            ("PIVOT", "SELECT * FROM FzTx PIVOT (SUM(n) FOR status IN ('ok'))"),
            ("EXCLUDE", "SELECT * EXCLUDE (n) FROM FzTx"),
            ("AS t(a, b)", "SELECT a FROM FzTx AS t(a, b)"),
            ("WITH", "WITH w(a) AS (SELECT n FROM FzTx) SELECT a FROM w"),
            ("twice", "WITH w AS (SELECT n FROM FzTx), w AS (SELECT n FROM FzTx) SELECT n FROM w"),
            ("COUNT", "SELECT COUNT(n, amount) AS c FROM FzTx"),
            ("TUMBLE", "SELECT COUNT(*) AS c FROM TABLE(TUMBLE(5, DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end"),
            ("a.tier", "SELECT t.n FROM FzTx t JOIN FzAcct a ON t.n = a.tier"),
            ("100,000 days", "SELECT COUNT(*) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '999999' DAY PRECEDING AND CURRENT ROW) AS c FROM FzTx"),
            ("EXTRACT", "SELECT EXTRACT(HOUR FROM ts) AS h FROM FzTx"),
            ("LIKE", "SELECT status LIKE 'f%' AS x FROM FzTx"),
            ("HAVING", "SELECT 1 AS x FROM FzTx HAVING TRUE"),
            ("SYSTEM_TIME", "SELECT n FROM FzTx FOR SYSTEM_TIME AS OF ts"),
        ]))
        return Case(lambda d: text, culprit=(clause,))
    if kind == "group_missing":
        col = draw(st.sampled_from(["status", "n", "amount", "flag"]))
        agg = draw(st.sampled_from(["COUNT(*)", "SUM(amount)", "MAX(n)"]))
        group = draw(st.sampled_from(["", " GROUP BY account_id"]))
        return Case(lambda d: f"SELECT {col}, {agg} AS a FROM FzTx{group}", culprit=(col,))
    # a window ordered by something that is not a time
    col = draw(st.sampled_from(["n", "amount", "status"]))
    return Case(lambda d: f"SELECT COUNT(*) OVER (PARTITION BY account_id ORDER BY {col} "
                f"RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS w FROM FzTx", culprit=(col,))


def _mentions(e: Node, name: str) -> bool:
    if e[0] == "col":
        return e[2] == name
    return any(_mentions(x, name) for x in _parts(e))


def _parts(e: Node) -> Iterator[Node]:
    for x in e[1:]:
        if isinstance(x, tuple) and x and isinstance(x[0], str):
            yield x
        elif isinstance(x, list):
            for y in x:
                if isinstance(y, tuple) and y and isinstance(y[0], str):
                    yield y
                elif isinstance(y, tuple):
                    yield from (z for z in y if isinstance(z, tuple))


@settings(max_examples=900, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch(invalid_queries(), 4))
def test_invalid_queries_are_refused_naming_the_culprit(cases: list[Case]) -> None:
    for case in cases:
        check(case, "invalid")


# ---- adversarial: hostile names and literals, deep nesting, huge text ------------------------

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.text(st.sampled_from("'\"`\\;-/*\x00\n\t ☃é名$%{}()"), min_size=1, max_size=30),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.integers(100, 5000).map(lambda k: "y" * k),
)


HUGE_NUMBERS = (
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "1e308", "1e309",
    "1.7976931348623157e308", "-1e400", "0.000000000000000000000001", "1" + "0" * 400, "0." + "0" * 400 + "1",
    "00000000000000000000000001", "1e-400", ".5", "5.", "1E+2",
)


def number_case(text: str, run: bool) -> Case:
    """``SELECT <text>``: compiles if the number fits BIGINT (an integer) or DOUBLE,
    else is refused naming the type it does not fit."""
    body = text.lstrip("-")
    if body.isdigit():
        fits = -(2**63) <= int(text) <= 2**63 - 1
        kind = "BIGINT"
    else:
        fits = math.isfinite(float(text))
        kind = "DOUBLE"
    return Case(lambda d: f"SELECT {text} AS x, n FROM FzTx", valid=fits, columns=["x", "n"] if fits else None,
                run=run, culprit=() if fits else (kind,))


@st.composite
def hostile_queries(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["alias", "literal", "source", "unknown", "cte_name", "literal_compare", "number"]))
    run = draw(st.integers(0, 19)) == 0
    if kind == "number":  # numbers at and past the edges of BIGINT and DOUBLE
        text = draw(st.sampled_from(HUGE_NUMBERS) | st.integers(-(2**70), 2**70).map(str))
        return number_case(text, run)
    value = draw(hostile_text)
    if kind == "alias":  # any name can name an output column (but a NUL would end it in the engines)
        ok = value.lower() != "status" and "\x00" not in value
        return Case(lambda d: f"SELECT n AS {ident(value, d)}, status FROM FzTx", valid=ok,
                    columns=[value, "status"] if ok else None, run=run, culprit=() if ok else (value,))
    if kind == "literal":  # any text is a string literal, and comes back as written
        return Case(lambda d: f"SELECT {string_lit(value, d)} AS s, n FROM FzTx", valid=True, columns=["s", "n"],
                    run=run, literal=("s", value))
    if kind == "literal_compare":
        return Case(lambda d: f"SELECT n FROM FzTx WHERE status = {string_lit(value, d)} OR status IN ({string_lit(value, d)}, 'ok')",
                    valid=True, columns=["n"], run=run)
    if kind == "source":  # the hostile source's own columns, quoted
        cols = draw(st.lists(st.sampled_from([f.name for f in HOSTILE_SOURCE.schema]), min_size=1, max_size=3, unique=True))
        return Case(lambda d: f"SELECT {', '.join(ident(c, d) for c in cols)} FROM {ident(HOSTILE_SOURCE.name, d)}",
                    valid=True, columns=cols, run=run)
    if kind == "cte_name":
        ok = "\x00" not in value
        return Case(lambda d: f"WITH {ident(value, d)} AS (SELECT n FROM FzTx) SELECT n FROM {ident(value, d)}",
                    valid=ok, columns=["n"] if ok else None, run=run, culprit=() if ok else (value,))
    if not ok_name(value):
        value = "zz" + value
    where = draw(st.sampled_from(["column", "table", "qualifier"]))
    text = {"column": lambda d: f"SELECT {ident(value, d)} FROM FzTx",
            "table": lambda d: f"SELECT n FROM {ident(value, d)}",
            "qualifier": lambda d: f"SELECT {ident(value, d)}.n FROM FzTx"}[where]
    return Case(text, culprit=(value,))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch(hostile_queries(), 4))
def test_hostile_names_and_literals_compile_or_are_named(cases: list[Case]) -> None:
    for case in cases:
        check(case, "hostile")


NESTERS: dict[str, tuple[str, str, str]] = {
    # (before, after, the innermost value): nested k times around the value
    "parens": ("(", ")", "n"),
    "arith": ("(1 + ", ")", "n"),
    "case": ("CASE WHEN n > 0 THEN ", " ELSE 0 END", "n"),
    "coalesce": ("COALESCE(", ", 0)", "n"),
    "cast": ("CAST(", " AS DOUBLE)", "amount"),
    "not": ("NOT ", "", "flag"),
    "neg": ("- ", "", "n"),
    "and": ("flag AND ", "", "flag"),
    "mod": ("(", " % 7)", "n"),
    "nullsafe_case": ("CASE ", " WHEN 1 THEN 2 ELSE 3 END", "n"),
    "unknown_fn": ("fz_f(", ")", "n"),
    "subquery": ("", "", ""),
}


@st.composite
def nested_queries(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(sorted(NESTERS)))
    # mostly around the limits; one in fifty far past them (tokenizing 2,000 levels takes a while)
    depth = draw(st.integers(1, 3 * reader.MAX_PARENS)) if draw(st.integers(0, 49)) else draw(st.integers(100, 2000))
    if kind == "subquery":
        text = "SELECT n FROM " + "(SELECT n FROM " * depth + "FzTx" + ") t" * depth
        return Case(lambda d: text, valid=depth < reader.MAX_PARENS // 2)
    before, after, inner = NESTERS[kind]
    text = f"SELECT {before * depth}{inner}{after * depth} AS x FROM FzTx"
    # Shallow nesting of what relplan reads must compile; deep nesting may be refused,
    # by a SqlError about the depth or a refusal naming what repeats too much.
    valid = depth <= 8 and kind not in ("unknown_fn",) and not (kind == "mod" and depth > 4)
    return Case(lambda d: text, valid=valid, culprit=("FZ_F",) if kind == "unknown_fn" and depth < 20 else ())


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch(nested_queries(), 3))
def test_deep_nesting_compiles_or_is_refused_by_a_limit(cases: list[Case]) -> None:
    for case in cases:
        check(case, "nesting")


VOCABULARY = (
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "JOIN", "ON", "LEFT", "UNION", "ALL", "WITH", "AS", "CASE", "WHEN",
    "THEN", "ELSE", "END", "AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "OVER", "PARTITION", "ORDER", "RANGE", "ROWS",
    "INTERVAL", "'1'", "DAY", "PRECEDING", "CURRENT", "ROW", "CAST", "BIGINT", "COUNT", "SUM", "(", ")", ",", "*", "+", "-",
    "/", "%", "=", "<", ">", "<=", "<>", ";", ".", "n", "ts", "amount", "status", "FzTx", "FzAcct", "t", "1", "2.5", "'x'",
    "\"q\"", "`b`", "--", "/*", "*/", "?", "$1", ":x", "@v", "[", "]", "{", "}", "::", "||", "!", "~", "^", "&", "|",
    "TABLESAMPLE", "PIVOT", "EXCLUDE", "TUMBLE", "HOP", "TABLE", "DESCRIPTOR", "time_bucket", "window", "FILTER",
    "QUALIFY", "LATERAL", "EXISTS", "ANY", "LIKE", "SYMMETRIC", "DISTINCT", "FOLLOWING", "UNBOUNDED", "NULLS", "FIRST",
    "DESC", "USING", "NATURAL", "CROSS", "FULL", "INTO", "VALUES", "INSERT", "DROP", "TRUE", "FALSE", "EXTRACT",
    "INTERVAL '1 day'", "TIMESTAMP '2024-01-01'", "a.n", "t.*", "COUNT(*)", "SUM(n)", "OVER (ORDER BY ts)",
)


@st.composite
def garbage_queries(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["tokens", "truncated", "mutated", "text"]))
    if kind == "tokens":
        words = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=25))
        text = " ".join(words)
        return Case(lambda d: text)
    if kind == "text":
        text = draw(st.text(min_size=0, max_size=80))
        return Case(lambda d: text)
    base = draw(valid_queries())
    if kind == "truncated":
        cut = draw(st.floats(0, 1))
        return Case(lambda d: base.text(d)[: int(len(base.text(d)) * cut)])
    position = draw(st.floats(0, 1))
    insert = draw(st.sampled_from(VOCABULARY + ("'", '"', "`", "\\", "\x00", "(((", ")))")))
    delete = draw(st.integers(0, 3))

    def mutated(d: str) -> str:
        t = base.text(d)
        i = int(len(t) * position)
        return t[:i] + " " + insert + " " + t[i + delete :]

    return Case(mutated)


@settings(max_examples=650, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch(garbage_queries(), 4))
def test_garbage_and_truncated_text_is_a_relplan_error(cases: list[Case]) -> None:
    for case in cases:
        check(case, "garbage")


HUGE = 100_000


@st.composite
def huge_queries(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["string", "name", "comment", "digits", "wide", "whitespace", "garbage", "too_long"]))
    if kind == "wide":  # the slow ones (about a second per dialect): half as often as the others
        kind = draw(st.sampled_from(["in_list", "columns"]))
    if kind == "string":
        return Case(lambda d: f"SELECT '{'s' * HUGE}' AS s FROM FzTx", valid=True, columns=["s"])
    if kind == "name":
        name = "c" * HUGE
        return Case(lambda d: f"SELECT {name} FROM FzTx", culprit=(name[:50],))
    if kind == "comment":
        return Case(lambda d: f"SELECT n /* {'-' * HUGE} */ FROM FzTx -- {'x' * HUGE}", valid=True, columns=["n"])
    if kind == "digits":
        return Case(lambda d: f"SELECT {'9' * HUGE} AS x FROM FzTx", culprit=("BIGINT",))
    if kind == "in_list":
        values = ", ".join(str(i) for i in range(HUGE // 7))
        return Case(lambda d: f"SELECT n IN ({values}) AS x FROM FzTx", valid=True, columns=["x"])
    if kind == "columns":
        cols = ", ".join(f"n AS c{i}" for i in range(HUGE // 12))
        return Case(lambda d: f"SELECT {cols} FROM FzTx", valid=True)
    if kind == "whitespace":
        return Case(lambda d: "SELECT n" + " \n\t" * (HUGE // 3) + "FROM FzTx", valid=True, columns=["n"])
    if kind == "too_long":
        return Case(lambda d: "SELECT n FROM FzTx WHERE " + "n > 0 AND " * (reader.MAX_CHARS // 10) + "TRUE",
                    culprit=("characters",), errors=(SqlError,))
    chunk = draw(st.text(min_size=5, max_size=30))
    return Case(lambda d: (chunk * (HUGE // len(chunk) + 1))[:HUGE])


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(huge_queries())
def test_queries_of_a_hundred_thousand_characters_finish(case: Case) -> None:
    check(case, "huge")


def test_the_fuzzer_compiled_ten_thousand_queries() -> None:
    if set(QUERY_COUNT) != set(FUZZ_TESTS):
        pytest.skip("counted only when every fuzz test of this file ran")
    assert sum(QUERY_COUNT.values()) >= 10_000, QUERY_COUNT


def test_an_unknown_dialect_is_a_sql_error() -> None:
    for dialect in ("postgres", "klingon", "", "DuckDB ", None, 3):
        with pytest.raises(SqlError, match="dialect"):
            rp.sql("SELECT n FROM FzTx", sources=SOURCES, dialect=dialect)  # type: ignore[arg-type]
