"""simplify_expressions: fold constants and simplify boolean logic in every expression.

Folds arithmetic, comparisons, casts, IN, COALESCE and CASE over literals with
exactly the semantics of ``ir/expr.py`` (``/`` is true division and ``x / 0`` is
NULL, ``//`` floors, ``%`` takes the divisor's sign, NULL propagates), simplifies
AND/OR/NOT under SQL's three-valued logic, and applies the result to filter
predicates, projections and aggregate arguments and filters.

Legal::

    Filter ((x * 2.0) > (10.0 + 5.0)) AND NOT NOT (k = 1)
      Source T event_time=ts bounded

becomes::

    Filter ((x * 2.0) > 15.0) AND (k = 1)
      Source T event_time=ts bounded

and a filter whose predicate folds to TRUE disappears, one that folds to FALSE or
NULL keeps nothing (``Filter FALSE``). Each step keeps the value of the expression
on every row, NULL included: ``x AND TRUE`` is ``x`` and ``x OR FALSE`` is ``x``
for x TRUE, FALSE or NULL; ``x AND FALSE`` is FALSE and ``x OR TRUE`` is TRUE
even when x is NULL; ``NOT NOT x`` is ``x``; ``NOT (a < b)`` is ``a >= b`` because
our comparisons are NULL exactly when an operand is NULL (and NaN is read as
NULL), so negating one never has to invent a value for NULL.

Refused (left as written)::

    Filter (k > 1) AND NULL              -- FALSE AND NULL is FALSE, TRUE AND NULL is NULL:
      Source T event_time=ts bounded     -- the conjunction is not NULL in general

A fold is also refused when it would change the expression's type (a NULL keeps
the expression's type, ``Literal(None, dtype)``), overflow Int64 (the engine
raises there; folding would hide it), or give a non-finite or negative-zero float.

A Python UDF (``python_udf:f(...)``) is opaque: never evaluated here, not even
with literal arguments. relplan assumes UDFs are deterministic, but folding would
run user code at optimization time and move its errors there, off the engine.
Its arguments are simplified like any expression; a fold around it that keeps
the value on every row (``python_udf:f(x) AND TRUE``) applies as usual.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from dataclasses import replace
from typing import Any

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import (
    ARITHMETIC,
    COMPARISON,
    LOGICAL,
    Binary,
    Case,
    Cast,
    Coalesce,
    Column,
    Expr,
    InList,
    Literal,
    PythonUDF,
    Unary,
)
from relplan.ir.nodes import Aggregate, Filter, Node, Project, TimeWindowAggregate, WindowAggregate
from relplan.rules.driver import Roots, RuleContext

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FALSE = Literal(False)

_NEGATED = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_COMPARE = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


class _Refuse(Exception):
    """A fold that would not keep the expression's value exactly."""


def simplify_expressions(roots: Roots, ctx: RuleContext) -> Roots:
    def rewrite(node: Node) -> Node | None:
        if isinstance(node, Filter):
            pred = simplify(node.predicate)
            if _is_bool(pred, True):
                return node.input
            if _is_null(pred) or _is_bool(pred, False):
                pred = FALSE
            return None if pred == node.predicate else Filter(node.input, pred)
        if isinstance(node, Project):
            exprs = tuple((name, simplify(e)) for name, e in node.exprs)
            if all(new is old for (_, new), (_, old) in zip(exprs, node.exprs)):
                return None
            return Project(node.input, exprs)
        if isinstance(node, (Aggregate, TimeWindowAggregate)):
            aggs = tuple(simplify_agg(a) for a in node.aggs)
            if all(new is old for new, old in zip(aggs, node.aggs)):
                return None
            return node.replace_fields(aggs=aggs)
        if isinstance(node, WindowAggregate):
            windows = tuple((f, tuple(simplify_agg(a) for a in aggs)) for f, aggs in node.windows)
            if all(new is old for (_, na), (_, oa) in zip(windows, node.windows) for new, old in zip(na, oa)):
                return None
            return WindowAggregate(node.input, node.keys, node.order, windows)
        return None

    return ctx.transform_where(roots, _may_simplify, rewrite)


def _may_simplify(node: Node) -> bool:
    """Might ``rewrite`` change ``node`` (its inputs unchanged)? Not an aggregating node
    whose aggregates are all known simple (most, after one feature of a thousand changed)."""
    if isinstance(node, WindowAggregate):
        # Windows found simple once are simple (simplifying is a function of the aggregates):
        # remembered by the very tuple, which a node rebuilt over a new input keeps.
        windows = node.windows
        if _SIMPLE_WINDOWS.get(id(windows)) is windows:
            return False
        may = any(_SIMPLIFIED.get(a, _UNSEEN) is not None for _, aggs in windows for a in aggs)
        if not may:
            if len(_SIMPLE_WINDOWS) >= _SIMPLIFIED_MAX:
                _SIMPLE_WINDOWS.clear()
            _SIMPLE_WINDOWS[id(windows)] = windows  # (holds the tuple: its id is not reused)
        return may
    if isinstance(node, (Aggregate, TimeWindowAggregate)):
        return any(_SIMPLIFIED.get(a, _UNSEEN) is not None for a in node.aggs)
    return isinstance(node, (Filter, Project))


def simplify_agg(a: AggCall) -> AggCall:
    """``a`` with its argument and filter simplified (the same object if nothing changed).

    Remembered across runs (aggregates are values and hash once): after one feature
    of a thousand changed, the others' aggregates are look-ups."""
    done = _SIMPLIFIED.get(a, _UNSEEN)
    if done is _UNSEEN:
        out = _simplify_agg(a)
        if len(_SIMPLIFIED) >= _SIMPLIFIED_MAX:
            _SIMPLIFIED.clear()
        done = _SIMPLIFIED[a] = None if out is a else out
    return a if done is None else done  # type: ignore[return-value]


_UNSEEN = object()
_SIMPLIFIED: dict[AggCall, AggCall | None] = {}  # None: already simple
_SIMPLIFIED_MAX = 100_000
_SIMPLE_WINDOWS: dict[int, tuple[object, ...]] = {}  # windows of known simple aggregates, by id


def _simplify_agg(a: AggCall) -> AggCall:
    arg = simplify(a.arg) if a.arg is not None else None
    filt = simplify(a.filter) if a.filter is not None else None
    if filt is not None:
        if _is_bool(filt, True):
            filt = None  # FILTER (WHERE TRUE) keeps every row
        elif _is_null(filt):
            filt = FALSE  # a NULL filter keeps no row
    if arg is a.arg and (filt is a.filter or (filt is not None and filt == a.filter)):
        return a
    return replace(a, arg=arg, filter=filt)


def simplify(e: Expr) -> Expr:
    """``e`` simplified bottom-up (the same object if nothing changed); same type, same value."""
    if type(e) is Column:  # nothing to fold (most of a wide projection's expressions)
        return e
    return e.replace(_fold)


def _fold(e: Expr) -> Expr | None:
    try:
        new = _fold_node(e)
    except _Refuse:
        return None
    if new is None or new is e:
        return None
    if new.dtype != e.dtype:
        if _is_null(new):
            return Literal(None, e.dtype)
        return None  # e.g. x AND TRUE -> x where x is an untyped NULL expression
    return new


def _is_null(e: Expr) -> bool:
    return isinstance(e, Literal) and e.value is None


def _is_bool(e: Expr, value: bool) -> bool:
    return isinstance(e, Literal) and isinstance(e.value, bool) and e.value is value


def _fold_node(e: Expr) -> Expr | None:
    if isinstance(e, PythonUDF):
        return None  # opaque: never called at optimization time (see the module docstring)
    if isinstance(e, Binary):
        if e.op in LOGICAL:
            return _fold_logic(e)
        if _is_null(e.left) or _is_null(e.right):
            return Literal(None, e.dtype)  # comparisons and arithmetic propagate NULL
        if isinstance(e.left, Literal) and isinstance(e.right, Literal):
            if e.op in COMPARISON:
                return Literal(_compare(e.op, e.left, e.right))
            if e.op in ARITHMETIC:
                return _literal(_arithmetic(e.op, e.left.value, e.right.value, e.dtype), e.dtype)
        return None
    if isinstance(e, Unary):
        return _fold_unary(e)
    if isinstance(e, Cast):
        return _fold_cast(e)
    if isinstance(e, InList):
        return _fold_in(e)
    if isinstance(e, Coalesce):
        return _fold_coalesce(e)
    if isinstance(e, Case):
        return _fold_case(e)
    return None


def _fold_logic(e: Binary) -> Expr | None:
    # AND: FALSE absorbs, TRUE is the identity; OR the other way round. Both hold
    # for every value of the other operand, NULL included.
    absorbing = e.op == "OR"
    left, right = e.left, e.right
    if _is_bool(left, absorbing) or _is_bool(right, absorbing):
        return Literal(absorbing)
    if _is_bool(left, not absorbing):
        return right
    if _is_bool(right, not absorbing):
        return left
    if _is_null(left) and _is_null(right):
        return Literal(None, T.Bool)
    return None  # x AND NULL depends on x: FALSE for FALSE, NULL otherwise


def _fold_unary(e: Unary) -> Expr | None:
    o = e.operand
    if e.op in ("IS NULL", "IS NOT NULL"):
        if isinstance(o, Literal):
            return Literal((o.value is None) == (e.op == "IS NULL"))
        return None
    if e.op == "NEG":
        if isinstance(o, Literal):
            return Literal(None, e.dtype) if o.value is None else _literal(-o.value, e.dtype)
        return None
    # NOT
    if isinstance(o, Literal):
        return Literal(None, T.Bool) if o.value is None else Literal(not o.value)
    if isinstance(o, Unary) and o.op == "NOT":
        return o.operand
    if isinstance(o, Unary) and o.op in ("IS NULL", "IS NOT NULL"):
        return Unary("IS NOT NULL" if o.op == "IS NULL" else "IS NULL", o.operand)
    if isinstance(o, Binary) and o.op in COMPARISON:
        return Binary(_NEGATED[o.op], o.left, o.right)
    return None


def _compare(op: str, a: Literal, b: Literal) -> bool:
    x, y = a.value, b.value
    if a.dtype != b.dtype:  # Int64 with Float64: compared as Float64, as the engines do
        x, y = float(x), float(y)
    return bool(_COMPARE[op](x, y))


def _arithmetic(op: str, x: Any, y: Any, dtype: T.DataType) -> Any:
    if dtype == T.Float64:
        x, y = float(x), float(y)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _Refuse
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        return None  # /, // and % by zero are NULL
    if op == "/":
        return x / y
    if op == "//":
        return x // y
    return x % y


def _literal(value: Any, dtype: T.DataType) -> Literal:
    """A literal of exactly ``dtype``; refuses values the engine would not compute alike."""
    if value is None:
        return Literal(None, dtype)
    if dtype == T.Int64:
        if isinstance(value, bool) or not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
            raise _Refuse  # overflow: the engine raises, folding would hide it
        return Literal(value, T.Int64)
    if dtype == T.Float64:
        value = float(value)
        if not math.isfinite(value) or (value == 0 and math.copysign(1.0, value) < 0):
            raise _Refuse  # inf/NaN are engine-specific; -0.0 is not written back as a literal
        return Literal(value, T.Float64)
    raise _Refuse


def _fold_cast(e: Cast) -> Expr | None:
    o, to = e.operand, e.dtype
    if o.dtype == to:
        return o
    if not isinstance(o, Literal):
        return None
    v = o.value
    if v is None:
        return Literal(None, to)
    src = o.dtype
    if src == T.Int64 and to == T.Float64:
        return _literal(float(v), to)
    if src == T.Float64 and to == T.Int64:
        if not math.isfinite(v):
            raise _Refuse
        return _literal(int(v), to)  # toward zero, as the backends lower it
    if src == T.Bool and to == T.Int64:
        return Literal(int(v), T.Int64)
    if src == T.Int64 and to == T.String:
        return Literal(str(v), T.String)
    if src == T.Date and to == T.Timestamp:
        return Literal(dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc), T.Timestamp)
    if src == T.Timestamp and to == T.Date:
        return Literal(v.date(), T.Date)
    return None


def _fold_in(e: InList) -> Expr | None:
    o = e.operand
    if not isinstance(o, Literal):
        return None
    if o.value is None:
        return Literal(None, T.Bool)
    if any(v.value is not None and _compare("=", o, v) for v in e.values):
        return Literal(True)
    if any(v.value is None for v in e.values):
        return Literal(None, T.Bool)  # no match but a NULL in the list: unknown, as in SQL
    return Literal(False)


def _fold_coalesce(e: Coalesce) -> Expr | None:
    args: list[Expr] = []
    for a in e.args:
        if _is_null(a):
            continue
        args.append(a)
        if isinstance(a, Literal):
            break  # the arguments after a non-NULL literal are never reached
    if len(args) == len(e.args):
        return None
    if not args:
        return Literal(None, e.dtype)
    if len(args) == 1:
        return args[0]
    return Coalesce(tuple(args))


def _fold_case(e: Case) -> Expr | None:
    whens: list[tuple[Expr, Expr]] = []
    otherwise = e.otherwise
    for cond, value in e.whens:
        if _is_bool(cond, False) or _is_null(cond):
            continue  # never taken
        if _is_bool(cond, True):
            otherwise = value  # always taken: the branches after it are never reached
            break
        whens.append((cond, value))
    if len(whens) == len(e.whens):
        return None
    if not whens:
        return otherwise
    return Case(tuple(whens), otherwise)
