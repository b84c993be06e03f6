"""Hypothesis strategies for differential tests: random IR plans built from ir nodes, and their data.

A drawn case is a relplan ``Plan`` (one or two Sinks over a DAG of Filter, Project,
WindowAggregate, Aggregate, TimeWindowAggregate, Join and Union nodes over two
sources) and a table per source. Every plan is valid by construction: each
generator reads the schema it stacks on and only names columns of the right type,
so node constructors never raise.

Beyond validity, the generators track what makes two correct plans agree row for
row on an engine, so that a disagreement is a bug and never rounding noise
(``Info`` per column):

- bounds on magnitudes, so no integer overflows (an optimized plan that drops an
  overflowing column would "disagree" with one that fails) and float sums stay exact;
- which floats are dyadic with few fraction bits, so their sums are exact in any
  order of addition (an engine or a rewrite may add in any order);
- which values are *stable*, meaning computed without order-dependent rounding
  (VAR/STD, or sums of inexact floats, are not): only stable values are compared,
  grouped on, joined on, cast or counted distinct. Unstable values are only carried
  along or aggregated continuously (sum, mean, min, max, var, std), which the
  comparison's float tolerance absorbs;
- which timestamps are never NULL (window order and time columns need one).

The data aims at the edges like tests/strategies.py: few keys with NULLs,
duplicate rows and timestamps, times on a 30 s grid +-1 us around window edges,
on both sides of the Unix epoch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from relplan.compiler.plan import Plan
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.graph import walk
from relplan.ir.expr import COMPARISON, Binary, Case, Cast, Coalesce, Column, Expr, InList, Literal, Unary
from relplan.ir.nodes import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
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
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame, TimeWindow

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000
STEP = 30 * SECOND  # the time grid; window sizes below are multiples of it (or 1us, or not aligned)
BASES_US = (0, -86_400 * SECOND, 1_704_067_200 * SECOND)  # epoch, a day before, 2024-01-01

MAX_ROWS = 40
MAX_DUPLICATES = 3
MAX_JOIN_ROWS = 100_000  # a join is drawn only when its row bound stays below this
VALUE_CAP = 1e9  # no expression with a larger magnitude bound is drawn: no overflow anywhere
VAR_ARG_CAP = 1e4  # var/std only over well-conditioned magnitudes
SUM_CAP = 2.0**59  # integer sums stay well inside Int64
EXACT = 2**52

SLIDING = (1, STEP, 2 * STEP, 3 * STEP, 5 * STEP, 120 * STEP)
UPPER = (0, 0, 0, 1, STEP)
TUMBLING = (STEP, 2 * STEP, 3 * STEP, 120 * STEP)
HOPPING = ((2 * STEP, STEP), (4 * STEP, 2 * STEP), (6 * STEP, 2 * STEP), (5 * STEP, 3 * STEP), (2 * STEP, 2 * STEP))

STRINGS = ("", "a", "b", "B", "é", "日本", "a b", "'", '"')
INT_LITERALS = (0, 1, 2, 3, -1, -2, 5, 7)
FLOAT_LITERALS = (0.0, 0.5, 1.0, -1.0, 2.25, -0.75, 3.5, 10.0)

AGG_FUNCS = ("count", "count", "count_distinct", "sum", "sum", "mean", "min", "max", "var", "std", "first", "last")


@dataclass(frozen=True)
class Info:
    """What the generators know about a column's values (see the module docstring)."""

    dtype: T.DataType
    bound: float = 0.0  # |value| <= bound (numerics)
    frac: int | None = 0  # Float64: every value is a multiple of 2**-frac (None: not dyadic)
    stable: bool = True  # no order-dependent rounding: may be compared, grouped, joined, cast
    notnull: bool = False  # never NULL (tracked for the timestamps windows order by)
    few: bool = False  # few distinct values: a good key


@dataclass(frozen=True)
class Rel:
    """A subplan with what is known about its columns and an upper bound on its rows."""

    node: Node
    cols: dict[str, Info]
    rows: int

    def names(self, pred: Any = None) -> list[str]:
        return [n for n, i in self.cols.items() if pred is None or pred(i)]


def _float_info(bound: float, frac: int | None, stable: bool) -> Info:
    if frac is not None and bound * 2.0**frac >= EXACT:
        frac = None
    return Info(T.Float64, bound, frac, stable)


def _merge(a: Info, b: Info) -> Info:
    """A column that holds the values of either (a union's, a CASE's, a COALESCE's)."""
    frac = None if a.frac is None or b.frac is None else max(a.frac, b.frac)
    return Info(
        a.dtype if a.dtype == b.dtype else T.Float64,
        max(a.bound, b.bound),
        frac,
        a.stable and b.stable,
        a.notnull and b.notnull,
        a.few and b.few,
    )


# ---- sources and data -------------------------------------------------------------

EVENTS = Source(
    "events",
    Schema.of([("k", T.Int64), ("g", T.Int64), ("v", T.Int64), ("x", T.Float64), ("s", T.String),
               ("b", T.Bool), ("ts", T.Timestamp)]),
    event_time="ts",
)
PROFILES = Source(
    "profiles",
    Schema.of([("pk", T.Int64), ("n", T.Int64), ("w", T.Float64), ("tag", T.String), ("pts", T.Timestamp)]),
    event_time="pts",
)
INT_BOUND = 1000.0
FLOAT_BOUND = 256.0
FLOAT_FRAC = 4  # unscaled floats are multiples of 1/16


@dataclass(frozen=True)
class Scale:
    """Per-example magnitudes of the value columns: ints times ``ints``, floats times 2**``float_exp``.

    Scaling by a power of two keeps float sums exact; the bounds follow, so the
    plans drawn stay clear of overflow at any scale.
    """

    ints: int = 1
    float_exp: int = 0

    def source_info(self, source: str) -> dict[str, Info]:
        i = Info(T.Int64, INT_BOUND * self.ints)
        f = Info(T.Float64, FLOAT_BOUND * 2.0**self.float_exp, max(0, FLOAT_FRAC - self.float_exp))
        if source == "events":
            return {
                "k": Info(T.Int64, 7, few=True), "g": Info(T.Int64, 1, few=True), "v": i, "x": f,
                "s": Info(T.String, few=True), "b": Info(T.Bool, few=True), "ts": Info(T.Timestamp, notnull=True),
            }
        return {
            "pk": Info(T.Int64, 7, few=True), "n": i, "w": f, "tag": Info(T.String, few=True),
            "pts": Info(T.Timestamp, notnull=True),
        }


scales = st.builds(Scale, st.sampled_from((1, 1, 2**20)), st.sampled_from((0, 0, -8, 16)))

keys_ = st.sampled_from((0, 1, 0, 1, 2, None, -1))
small_ints = st.integers(-5, 5)
ints = st.one_of(small_ints, small_ints, st.integers(-int(INT_BOUND), int(INT_BOUND)))
floats = st.one_of(
    st.integers(-64, 64).map(lambda i: i / 4),
    st.integers(-int(FLOAT_BOUND) * 16, int(FLOAT_BOUND) * 16).map(lambda i: i / 16),
    st.sampled_from((0.0, 0.5, -0.5, 1.0, -1.0, -0.0)),
)
strings = st.sampled_from((None, *STRINGS))


def uniform(lo: int, hi: int) -> st.SearchStrategy[int]:
    """An int in [lo, hi], evenly (``st.integers`` favours small values; shrinks to lo all the same)."""
    return st.sampled_from(range(lo, hi + 1))


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


@st.composite
def grid_time(draw: st.DrawFn, base_us: int) -> dt.datetime:
    """A time on the grid (+-1us), or now and then anywhere in the grid's span."""
    if draw(uniform(0, 9)) == 0:
        return from_us(base_us + draw(st.integers(-2 * STEP, 10 * STEP)))
    return from_us(base_us + draw(uniform(-2, 9)) * STEP + draw(st.sampled_from((0, 0, 0, -1, 1))))


@st.composite
def source_rows(draw: st.DrawFn, source: Source, base_us: int, scale: Scale = Scale()) -> list[dict[str, Any]]:
    null_rate = draw(st.sampled_from((0, 10, 30)))  # percent
    # Few distinct times per table: many ties, and windows that hold several rows.
    times = draw(st.lists(grid_time(base_us), min_size=1, max_size=8))

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        if null_rate and draw(uniform(0, 99)) >= 100 - null_rate:
            return None
        return draw(strategy)

    # Hypothesis favours its simplest choices; put tiny tables behind the larger value so
    # that most examples have rows (and shrinking stops at a few rows, not at none).
    n = draw(uniform(0, 3)) if draw(uniform(0, 99)) >= 88 else draw(uniform(4, MAX_ROWS))
    rows: list[dict[str, Any]] = []

    def num(strategy: st.SearchStrategy[Any], factor: float) -> Any:
        v = maybe(strategy)
        return None if v is None else v * factor

    fscale = 2.0**scale.float_exp
    for _ in range(n):
        t = draw(st.sampled_from(times))
        if source is EVENTS:
            rows.append({
                "k": draw(keys_), "g": maybe(st.sampled_from((0, 1))), "v": num(ints, scale.ints),
                "x": num(floats, fscale), "s": draw(strings), "b": maybe(st.booleans()), "ts": t,
            })
        else:
            rows.append({
                "pk": draw(keys_), "n": num(ints, scale.ints), "w": num(floats, fscale), "tag": draw(strings),
                "pts": t,
            })
    if rows and draw(st.booleans()):  # exact duplicate rows
        rows += [dict(r) for r in draw(st.lists(st.sampled_from(rows), max_size=MAX_DUPLICATES))]
    return rows


def to_table(source: Source, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=source.columns.to_arrow())


# ---- plans ---------------------------------------------------------------------------


class PlanGen:
    """Draws a valid plan bottom-up; ``budget`` counts the operator nodes still to place."""

    def __init__(
        self, draw: st.DrawFn, base_us: int, pools: dict[T.DataType, list[Any]] | None = None, scale: Scale = Scale()
    ) -> None:
        self.draw = draw
        self.base_us = base_us
        self.scale = scale
        self.pools = pools or {}  # values in the data, by type: literals that match rows
        self.counter = 0
        self.rels: list[Rel] = []  # every subplan drawn, for a second output over shared subplans
        self.arg_infos: dict[str, Info] = {}  # numeric aggregates: what is known of their argument

    # -- helpers
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pick(self, seq: Any) -> Any:
        return self.draw(st.sampled_from(tuple(seq)))

    def chance(self, percent: int) -> bool:
        # The simplest choice (0, which hypothesis favours and shrinks to) is "no".
        return self.draw(uniform(0, 99)) >= 100 - percent

    def subset(self, seq: list[str], lo: int, hi: int) -> list[str]:
        """Distinct elements of ``seq`` (in a drawn order), between lo and hi of them."""
        hi = min(hi, len(seq))
        if not seq or hi < lo:
            return []
        return list(self.draw(st.lists(st.sampled_from(seq), min_size=lo, max_size=hi, unique=True)))

    def keep(self, rel: Rel) -> Rel:
        self.rels.append(rel)
        return rel

    # -- literals and expressions
    def literal(self, t: T.DataType) -> Expr:
        if self.chance(3):
            return Literal(None, t)
        if self.pools.get(t) and self.chance(60):
            return Literal(self.pick(self.pools[t]), t)
        if t == T.Int64:
            return Literal(self.pick(INT_LITERALS))
        if t == T.Float64:
            return Literal(self.pick(FLOAT_LITERALS))
        if t == T.String:
            return Literal(self.pick(STRINGS))
        if t == T.Bool:
            return Literal(self.draw(st.booleans()))
        if t == T.Timestamp:
            us = self.base_us + self.draw(uniform(-1, 9)) * STEP + self.pick((0, 0, 1, -1))
            return Literal(from_us(us))
        if t == T.Date:
            return Literal(from_us(self.base_us).date() + dt.timedelta(days=self.pick((0, -1, 1))))
        raise AssertionError(t)

    def literal_info(self, e: Expr) -> Info:
        assert isinstance(e, Literal)
        v = e.value
        if e.dtype == T.Int64:
            return Info(T.Int64, abs(v or 0))
        if e.dtype == T.Float64:
            return Info(T.Float64, abs(v or 0.0), 2)
        return Info(e.dtype)

    def numeric(self, rel: Rel, want: T.DataType | None, depth: int) -> tuple[Expr, Info]:
        """A numeric expression over stable columns (``want``: Int64, Float64 or either)."""
        e, info = self._numeric(rel, want, depth)
        if info.bound > VALUE_CAP:  # too large to stay exact and in range: a plain column or literal
            return self._numeric(rel, want, 0)
        return e, info

    def _numeric(self, rel: Rel, want: T.DataType | None, depth: int) -> tuple[Expr, Info]:
        types = (want,) if want is not None else (T.Int64, T.Float64)
        cols = rel.names(lambda i: i.stable and i.dtype in types)
        kinds = ["col", "col", "lit"] if cols else ["lit"]
        if depth > 0:
            kinds += ["arith", "arith", "arith", "neg", "cast", "coalesce", "case"]
        kind = self.pick(kinds)
        if kind == "col":
            c = self.pick(cols)
            return Column(c, rel.cols[c].dtype), rel.cols[c]
        if kind == "lit":
            t = want or self.pick((T.Int64, T.Float64))
            e = self.literal(t)
            return e, self.literal_info(e)
        if kind == "neg":
            e, i = self.numeric(rel, want, depth - 1)
            return Unary("NEG", e), replace(i, notnull=False)
        if kind == "cast":
            t = want or self.pick((T.Int64, T.Float64))
            if t == T.Float64:
                e, i = self.numeric(rel, T.Int64, depth - 1)
                return Cast(e, T.Float64), Info(T.Float64, i.bound, 0)
            if self.chance(30):
                b = self.predicate(rel, depth - 1)
                return Cast(b, T.Int64), Info(T.Int64, 1)
            e, i = self.numeric(rel, T.Float64, depth - 1)
            return Cast(e, T.Int64), Info(T.Int64, i.bound)
        if kind == "coalesce":
            a, ia = self.numeric(rel, want, depth - 1)
            t = want or a.dtype
            b = Literal(self.pick(INT_LITERALS if t == T.Int64 else FLOAT_LITERALS))
            e = Coalesce((a, b))
            return e, replace(_merge(ia, self.literal_info(b)), dtype=e.dtype)
        if kind == "case":
            cond = self.predicate(rel, depth - 1)
            a, ia = self.numeric(rel, want, depth - 1)
            b, ib = self.numeric(rel, want or a.dtype, depth - 1)
            e = Case(((cond, a),), b)
            return e, replace(_merge(ia, ib), dtype=e.dtype)
        # arithmetic
        if want == T.Int64:
            op = self.pick(("+", "-", "*", "//", "%"))
        elif want == T.Float64:
            op = self.pick(("+", "-", "*", "/"))
        else:
            op = self.pick(("+", "-", "*", "/", "//", "%"))
        if op in ("//", "%"):
            lt = rt = T.Int64
        elif op == "/" or want is None:
            lt, rt = self.pick((T.Int64, T.Float64)), self.pick((T.Int64, T.Float64))
        else:  # a Float64 result from + - * needs one Float64 side
            lt = rt = want
            if want == T.Float64 and self.chance(30):
                lt = T.Int64
        if op == "*" and self.chance(60):  # mostly scale by a small literal: bounded magnitudes
            a, ia = self.numeric(rel, lt, depth - 1)
            b = Literal(self.pick(INT_LITERALS if rt == T.Int64 else FLOAT_LITERALS))
            ib = self.literal_info(b)
        else:
            a, ia = self.numeric(rel, lt, depth - 1)
            b, ib = self.numeric(rel, rt, depth - 1)
        e = Binary(op, a, b)
        stable = ia.stable and ib.stable
        if op in ("+", "-"):
            bound = ia.bound + ib.bound
            frac = None if ia.frac is None or ib.frac is None else max(ia.frac, ib.frac)
        elif op == "*":
            bound = ia.bound * ib.bound
            frac = None if ia.frac is None or ib.frac is None else ia.frac + ib.frac
        elif op == "/":
            # |b| >= 2**-frac when b != 0 (dyadic), >= 1 for integers
            bound = ia.bound * (2.0 ** (ib.frac if ib.frac is not None else 60))
            frac = None
        elif op == "//":
            bound, frac = ia.bound, 0
        else:
            bound, frac = ib.bound, 0
        if e.dtype == T.Int64:
            return e, Info(T.Int64, bound, 0, stable)
        return e, _float_info(bound, frac, stable)

    def predicate(self, rel: Rel, depth: int) -> Expr:
        """A boolean expression over stable columns (IS NULL may read any column)."""
        stable = rel.names(lambda i: i.stable)
        kinds = ["cmp", "cmp", "cmp", "isnull", "in", "const"]
        if rel.names(lambda i: i.stable and i.dtype == T.Bool):
            kinds += ["boolcol"]
        if depth > 0:
            kinds += ["and", "or", "not"]
        kind = self.pick(kinds)
        if kind in ("and", "or"):
            return Binary(kind.upper(), self.predicate(rel, depth - 1), self.predicate(rel, depth - 1))
        if kind == "not":
            return Unary("NOT", self.predicate(rel, depth - 1))
        if kind == "const":
            return Literal(self.pick((True, True, False, False, None)), T.Bool)
        if kind == "boolcol":
            return Column(self.pick(rel.names(lambda i: i.stable and i.dtype == T.Bool)), T.Bool)
        if kind == "isnull":
            if depth > 0 and self.chance(30):
                operand, _ = self.numeric(rel, None, depth)
            else:
                c = self.pick(rel.names())
                operand = Column(c, rel.cols[c].dtype)
            return Unary(self.pick(("IS NULL", "IS NOT NULL")), operand)
        if kind == "in":
            cands = rel.names(lambda i: i.stable and i.dtype != T.Bool)
            if not cands:
                return Literal(True, T.Bool)
            c = self.pick(cands)
            t = rel.cols[c].dtype
            values = tuple(self.literal(t) for _ in range(self.draw(uniform(1, 4))))
            return InList(Column(c, t), values)
        # comparison
        if not stable or (depth > 0 and self.chance(25)):
            left, li = self.numeric(rel, None, depth)
        else:
            c = self.pick(stable)
            left, li = Column(c, rel.cols[c].dtype), rel.cols[c]
        t = li.dtype
        op = self.pick(("=", "!=") if t == T.Bool else sorted(COMPARISON))
        same = [
            n for n in stable
            if (rel.cols[n].dtype == t or (t.is_numeric and rel.cols[n].dtype.is_numeric))
            and (not isinstance(left, Column) or n != left.name or self.chance(10))
        ]
        right_kind = self.pick(["lit", "lit", "col", "expr"] if t.is_numeric else ["lit", "lit", "col"])
        if right_kind == "col" and same:
            n = self.pick(same)
            right: Expr = Column(n, rel.cols[n].dtype)
        elif right_kind == "expr":
            right, _ = self.numeric(rel, None, max(depth - 1, 0))
        else:
            right = self.literal(t)
        return Binary(op, left, right)

    # -- aggregates
    def agg(self, rel: Rel, name: str) -> tuple[AggCall, Info]:
        func = self.pick(AGG_FUNCS)
        rows = rel.rows
        order_cols = rel.names(lambda i: i.dtype == T.Timestamp and i.notnull)
        flt = self.predicate(rel, 1) if self.chance(30) else None
        stable_cols = rel.names(lambda i: i.stable)
        if func == "count_distinct" and stable_cols:
            c = self.pick(stable_cols)
            return AggCall(func, Column(c, rel.cols[c].dtype), name, flt), Info(T.Int64, rows)
        if func in ("first", "last") and stable_cols and order_cols:
            c = self.pick(stable_cols)
            o = self.pick(order_cols)
            i = rel.cols[c]
            return (
                AggCall(func, Column(c, i.dtype), name, flt, Column(o, T.Timestamp)),
                replace(i, notnull=False),
            )
        if func in ("sum", "mean", "var", "std", "min", "max"):
            numeric = rel.names(lambda i: i.dtype.is_numeric)
            orderable = rel.names(lambda i: i.dtype.is_orderable and i.dtype != T.Null)
            cap = VAR_ARG_CAP if func in ("var", "std") else SUM_CAP / rows if func == "sum" else float("inf")
            numeric = [n for n in numeric if rel.cols[n].bound <= cap]
            pool = orderable if func in ("min", "max") else numeric
            if pool:
                if self.chance(25) and func != "min" and func != "max" and stable_cols:
                    arg, i = self.numeric(rel, None, 1)
                    if i.bound > cap:
                        c = self.pick(pool)
                        arg, i = Column(c, rel.cols[c].dtype), rel.cols[c]
                else:
                    c = self.pick(pool)
                    arg, i = Column(c, rel.cols[c].dtype), rel.cols[c]
                call = AggCall(func, arg, name, flt)
                if func not in ("var", "std") and i.dtype.is_numeric:
                    self.arg_infos[name] = i
                return call, self._agg_info(func, i, rows)
        # count(*) or count(column): any column, stable or not
        if self.chance(50) and rel.cols:
            c = self.pick(rel.names())
            return AggCall("count", Column(c, rel.cols[c].dtype), name, flt), Info(T.Int64, rows)
        return AggCall("count", None, name, flt), Info(T.Int64, rows)

    @staticmethod
    def _agg_info(func: str, i: Info, rows: int) -> Info:
        if func in ("min", "max"):
            return replace(i, notnull=False, few=False)
        if func == "sum":
            if i.dtype == T.Int64:
                return Info(T.Int64, i.bound * rows, 0, i.stable)
            exact = i.frac is not None and i.bound * rows * 2.0**i.frac < EXACT
            return _float_info(i.bound * rows, i.frac if exact else None, i.stable and exact)
        if func == "mean":
            exact = i.bound * rows * 2.0 ** (i.frac if i.frac is not None else 0) < EXACT and i.frac is not None
            return Info(T.Float64, i.bound, None, i.stable and exact)
        if func == "var":
            return Info(T.Float64, 2 * i.bound * i.bound, None, False)
        if func == "std":
            return Info(T.Float64, 2 * i.bound, None, False)
        raise AssertionError(func)

    def aggs(self, rel: Rel, lo: int = 1, hi: int = 3) -> tuple[tuple[AggCall, ...], dict[str, Info]]:
        calls: list[AggCall] = []
        infos: dict[str, Info] = {}
        for _ in range(self.draw(uniform(lo, hi))):
            name = self.fresh("a")
            prev = self.pick(calls) if calls and self.chance(30) else None
            if prev is not None and self.chance(40):  # the same aggregate again, as features repeat
                call, info = replace(prev, name=name), infos[prev.name]
            elif prev is not None and prev.arg is not None and prev.name in self.arg_infos:
                # a relative over the same argument and filter (mean next to sum and count)
                func = self.pick(("sum", "mean", "count"))
                arg_info = self.arg_infos[prev.name]
                if func == "sum" and arg_info.bound * rel.rows > SUM_CAP:
                    func = "count"
                call = AggCall(func, prev.arg, name, prev.filter)
                info = Info(T.Int64, rel.rows) if func == "count" else self._agg_info(func, arg_info, rel.rows)
                self.arg_infos[name] = arg_info
            else:
                call, info = self.agg(rel, name)
            calls.append(call)
            infos[call.name] = info
        return tuple(calls), infos

    def keys(self, rel: Rel, lo: int, hi: int, exclude: tuple[str, ...] = ()) -> list[str]:
        cands = rel.names(lambda i: i.stable)
        cands = [c for c in cands if c not in exclude]
        few = [c for c in cands if rel.cols[c].few]
        pool = few if few and self.chance(75) else cands
        return self.subset(pool, lo, hi)

    # -- nodes
    def plan(self, max_nodes: int) -> Plan:
        """A plan of up to ``max_nodes`` operators (plus renames); now and then a second
        output over one of its subplans, shared or rebuilt equal."""
        sinks = [Sink(self.rel(self.draw(uniform(1, max_nodes))).node, "out")]
        if self.chance(25):
            shared = self.pick(self.rels)
            if self.chance(30):
                shared = Rel(clone(shared.node), shared.cols, shared.rows)
            sinks.append(Sink(self.stack(shared, self.draw(uniform(0, 2))).node, "out2"))
        return Plan(outputs=tuple(sinks))

    def source(self) -> Rel:
        src = EVENTS if self.chance(75) else PROFILES
        return self.keep(Rel(src, self.scale.source_info(src.name), MAX_ROWS + MAX_DUPLICATES))

    def rel(self, budget: int) -> Rel:
        if budget <= 0:
            return self.source()
        kind = self.pick(
            ("filter", "project", "window", "aggregate", "join", "union", "time_window",
             "filter", "window", "join", "project", "union", "window")
        )
        if kind in ("join", "union"):
            lb = self.draw(uniform(0, budget - 1))
            if kind == "join":
                return self.join(self.rel(lb), lambda: self.rel(budget - 1 - lb))
            return self.union(self.rel(lb), lambda: self.rel(budget - 1 - lb))
        inp = self.rel(budget - 1)
        out = getattr(self, kind)(inp)
        if kind == "window" and isinstance(out.node, WindowAggregate) and self.chance(30):
            out = self.window(out)  # features compile to stacked windows
        return out

    def stack(self, inp: Rel, n: int) -> Rel:
        """``n`` more unary nodes on top of ``inp`` (a second output over a shared subplan)."""
        for _ in range(n):
            kind = self.pick(("filter", "project", "window", "aggregate", "time_window"))
            inp = getattr(self, kind)(inp)
        return inp

    def filter(self, inp: Rel) -> Rel:
        # Now and then read only what a rewrite cares about: one side of a join, or the
        # grouping keys of an aggregate (the conjuncts a filter push-down may move).
        n, view = inp.node, inp
        if isinstance(n, Join) and self.chance(50):
            side = set((n.left if self.chance(50) else n.right).schema.names)
            view = Rel(n, {c: i for c, i in inp.cols.items() if c in side}, inp.rows)
        elif isinstance(n, (WindowAggregate, Aggregate, TimeWindowAggregate)) and n.keys and self.chance(50):
            view = Rel(n, {c: inp.cols[c] for c in n.keys}, inp.rows)
        predicate = self.predicate(view, self.draw(uniform(0, 2)))
        return self.keep(Rel(Filter(n, predicate), inp.cols, inp.rows))

    def project(self, inp: Rel) -> Rel:
        names = inp.names()
        kept = self.subset(names, 0, len(names))
        exprs: list[tuple[str, Expr]] = []
        cols: dict[str, Info] = {}
        for c in kept:
            out = self.fresh(c.split("_")[0] + "_") if self.chance(10) else c  # a rename now and then
            exprs.append((out, Column(c, inp.cols[c].dtype)))
            cols[out] = inp.cols[c]
        for _ in range(self.draw(uniform(0 if kept else 1, 2))):
            name = self.fresh("e")
            if self.chance(25):
                e: Expr = self.predicate(inp, 1)
                info = Info(T.Bool, few=True)
            elif self.chance(10) and inp.names(lambda i: i.dtype == T.Int64 and i.stable):
                c = self.pick(inp.names(lambda i: i.dtype == T.Int64 and i.stable))
                e, info = Cast(Column(c, T.Int64), T.String), Info(T.String)
            elif self.chance(15) and inp.names(lambda i: i.dtype == T.Timestamp):
                # the day of a time, as a Date or as midnight (a window order full of ties)
                c = self.pick(inp.names(lambda i: i.dtype == T.Timestamp))
                e, info = Cast(Column(c, T.Timestamp), T.Date), Info(T.Date, few=True)
                if self.chance(50):
                    e, info = Cast(e, T.Timestamp), Info(T.Timestamp, notnull=inp.cols[c].notnull, few=True)
            else:
                e, info = self.numeric(inp, None, self.draw(uniform(0, 2)))
            pos = self.draw(uniform(0, len(exprs)))
            exprs.insert(pos, (name, e))
            cols[name] = info
        order = [n for n, _ in exprs]
        return self.keep(Rel(Project(inp.node, tuple(exprs)), {n: cols[n] for n in order}, inp.rows))

    def frame(self) -> Frame:
        if self.chance(20):
            return Frame(None, self.draw(st.booleans()), self.pick((0, 0, STEP)), self.draw(st.booleans()))
        lower = self.pick(SLIDING)
        upper = self.pick([u for u in UPPER if u < lower])
        if upper == 0 and self.chance(60):
            return Frame(lower)  # the relplan convention: (t - w, t]
        return Frame(lower, self.draw(st.booleans()), upper, self.draw(st.booleans()))

    def window(self, inp: Rel) -> Rel:
        order_cols = inp.names(lambda i: i.dtype == T.Timestamp and i.notnull)
        if not order_cols:
            return self.aggregate(inp)
        below = inp.node
        if isinstance(below, WindowAggregate) and self.chance(60):
            # as compiled features stack: same partition and order, other frames and aggregates
            keys, order = list(below.keys), below.order
        else:
            keys, order = self.keys(inp, 0, 2), self.pick(order_cols)
        frames: list[Frame] = []
        for _ in range(self.draw(uniform(1, 3))):
            f = self.frame()
            if f not in frames:
                frames.append(f)
        windows = []
        cols = dict(inp.cols)
        for f in frames:
            calls, infos = self.aggs(inp, 1, 2)
            windows.append((f, calls))
            cols.update(infos)
        node = WindowAggregate(inp.node, tuple(keys), order, tuple(windows))
        return self.keep(Rel(node, cols, inp.rows))

    def aggregate(self, inp: Rel) -> Rel:
        keys = self.keys(inp, 0, 2)
        calls, infos = self.aggs(inp)
        cols = {k: replace(inp.cols[k], notnull=True) for k in keys}  # NULL keys are dropped
        cols.update(infos)
        return self.keep(Rel(Aggregate(inp.node, tuple(keys), calls), cols, inp.rows))

    def time_window(self, inp: Rel) -> Rel:
        times = inp.names(lambda i: i.dtype == T.Timestamp and i.notnull)
        if not times:
            return self.aggregate(inp)
        keys = self.keys(inp, 0, 2, exclude=(WINDOW_START, WINDOW_END))
        time = self.pick(times)
        if self.chance(50):
            size = self.pick(TUMBLING)
            w = TimeWindow(size, size)
        else:
            w = TimeWindow(*self.pick(HOPPING))
        calls, infos = self.aggs(inp)
        cols = {k: replace(inp.cols[k], notnull=True) for k in keys}
        cols[WINDOW_START] = Info(T.Timestamp, notnull=True)
        cols[WINDOW_END] = Info(T.Timestamp, notnull=True)
        cols.update(infos)
        rows = inp.rows * -(-w.size // w.slide)
        return self.keep(Rel(TimeWindowAggregate(inp.node, tuple(keys), time, w, calls), cols, rows))

    def join(self, left: Rel, draw_right: Any) -> Rel:
        right: Rel = draw_right()
        if left.rows * right.rows > MAX_JOIN_ROWS:
            return self.filter(left)
        pairs = [
            (lc, rc)
            for lc, li in left.cols.items() if li.stable
            for rc, ri in right.cols.items() if ri.stable
            if (li.dtype == ri.dtype and li.dtype != T.Null) or (li.dtype.is_numeric and ri.dtype.is_numeric)
        ]
        if not pairs:
            return self.filter(left)
        good = [(lc, rc) for lc, rc in pairs if left.cols[lc].few and right.cols[rc].few]
        on = self.subset(good if good and self.chance(80) else pairs, 1, 2)
        # Rename the right side's clashing columns (and now and then drop some others).
        exprs: list[tuple[str, Expr]] = []
        rcols: dict[str, Info] = {}
        renamed: dict[str, str] = {}
        needed = {rc for _, rc in on}
        for c, i in right.cols.items():
            if c not in needed and self.chance(15):
                continue
            out = self.fresh(c.split("_")[0] + "_") if c in left.cols or self.chance(10) else c
            renamed[c] = out
            exprs.append((out, Column(c, i.dtype)))
            rcols[out] = i
        rnode = clone(right.node) if self.chance(20) else right.node  # built twice, as features are
        if list(renamed.items()) != [(c, c) for c in right.cols]:
            rnode = Project(right.node, tuple(exprs))
            self.keep(Rel(rnode, rcols, right.rows))
        how = self.pick(("inner", "inner", "left", "right", "full"))
        node = Join(left.node, rnode, how, tuple((lc, renamed[rc]) for lc, rc in on))
        lcols = {c: replace(i, notnull=False) if how in ("right", "full") else i for c, i in left.cols.items()}
        rcols = {c: replace(i, notnull=False) if how in ("left", "full") else i for c, i in rcols.items()}
        rows = left.rows * right.rows + left.rows + right.rows
        return self.keep(Rel(node, {**lcols, **rcols}, rows))

    def union(self, left: Rel, draw_right: Any) -> Rel:
        kind = self.pick(("filters", "self", "aligned", "filters", "aligned", "twice"))
        if kind == "filters":  # two filters of one input, shared or built twice (equal, not identical)
            a = self.filter(left)
            b = self.filter(Rel(clone(left.node), left.cols, left.rows) if self.chance(30) else left)
            members = [a, b] + ([self.filter(left)] if self.chance(20) else [])
        elif kind == "self":  # the input itself and a filter of it
            members = [left, self.filter(left)]
        elif kind == "twice":  # the input twice: every row twice
            members = [left, left]
        else:  # any other subplan, projected onto the left's columns
            right: Rel = draw_right()
            exprs: list[tuple[str, Expr]] = []
            rcols: dict[str, Info] = {}
            used: set[str] = set()
            for c, i in left.cols.items():
                same = [r for r, ri in right.cols.items() if ri.dtype == i.dtype and r not in used]
                if same and self.chance(85):
                    r = self.pick(same)
                    used.add(r)
                    exprs.append((c, Column(r, i.dtype)))
                    rcols[c] = right.cols[r]
                else:
                    exprs.append((c, Literal(None, i.dtype)))
                    rcols[c] = Info(i.dtype)
            members = [left, self.keep(Rel(Project(right.node, tuple(exprs)), rcols, right.rows))]
        cols = dict(left.cols)
        for m in members[1:]:
            cols = {c: _merge(cols[c], m.cols[c]) for c in cols}
        rows = sum(m.rows for m in members)
        return self.keep(Rel(Union(tuple(m.node for m in members)), cols, rows))


def clone(node: Node) -> Node:
    """An equal plan made of new objects (as two features compile the same subplan twice)."""
    done: dict[Node, Node] = {}
    for n in walk(node):
        done[n] = n.with_inputs(tuple(done[i] for i in n.inputs)) if n.inputs else n.replace_fields()
    return done[node]


@dataclass(frozen=True)
class DiffCase:
    """One drawn differential case: a plan and the tables of its sources."""

    plan: Plan
    tables: dict[str, pa.Table]
    scale: Scale

    def __repr__(self) -> str:
        lines = [self.plan.explain(), repr(self.scale)]
        for name, t in self.tables.items():
            lines.append(f"table {name} ({t.num_rows} rows) {tuple(t.column_names)}:")
            lines += [f"  {tuple(r.values())!r}" for r in t.to_pylist()]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # how hypothesis prints a failing case
        p.text(repr(self))


@st.composite
def cases(draw: st.DrawFn, max_nodes: int = 5) -> DiffCase:
    """A random valid plan of up to ``max_nodes`` operator nodes (plus renames), and its data."""
    base_us = draw(st.sampled_from(BASES_US))
    scale = draw(scales)
    data = {src.name: draw(source_rows(src, base_us, scale)) for src in (EVENTS, PROFILES)}
    pools: dict[T.DataType, list[Any]] = {}
    for src in (EVENTS, PROFILES):
        for f in src.columns:
            values = {r[f.name] for r in data[src.name] if r[f.name] is not None}
            pools.setdefault(f.dtype, []).extend(sorted(values - set(pools.get(f.dtype, ()))))
    plan = PlanGen(draw, base_us, pools, scale).plan(max_nodes)
    tables = {src.name: to_table(src, data[src.name]) for src in (EVENTS, PROFILES)}
    return DiffCase(plan, tables, scale)


@st.composite
def plans(draw: st.DrawFn, max_nodes: int = 5) -> Plan:
    """Only the plan (for tests that do not run it)."""
    return PlanGen(draw, draw(st.sampled_from(BASES_US))).plan(max_nodes)
