"""Scalar expressions: immutable, hashable, typed at construction.

Semantics every backend must lower explicitly (never left to engine defaults):

- ``/`` is true division: the result is Float64 even for Int64 operands, and a
  division by zero is NULL.
- ``//`` and ``%`` take Int64 operands and follow Python: ``//`` floors and ``%``
  has the sign of the divisor; by zero they are NULL.
- Comparisons and arithmetic with NULL give NULL; AND/OR use three-valued logic;
  a filter keeps a row only where its predicate is TRUE.
- Strings compare by code point (binary collation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from relplan.ir import types as T
from relplan.ir.errors import EngineError, SchemaError, TypeMismatchError
from relplan.ir.schema import Schema
from relplan.ir.types import DataType


class Expr:
    """Base of scalar expressions. Subclasses are frozen slotted dataclasses."""

    __slots__ = ()
    dtype: DataType

    def children(self) -> tuple[Expr, ...]:
        return ()

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return self

    def walk(self) -> Iterator[Expr]:
        """Pre-order traversal of this expression and its sub-expressions."""
        yield self
        for c in self.children():
            yield from c.walk()

    def columns(self) -> frozenset[str]:
        """Names of the columns this expression reads."""
        return frozenset(e.name for e in self.walk() if isinstance(e, Column))

    def replace(self, fn: Callable[[Expr], Expr | None]) -> Expr:
        """Rebuild bottom-up; ``fn`` returns a replacement or None to keep a node."""
        kids = self.children()
        node: Expr = self
        if kids:
            new = tuple(k.replace(fn) for k in kids)
            if any(a is not b for a, b in zip(new, kids)):
                node = self.with_children(new)
        out = fn(node)
        return node if out is None else out

    def __str__(self) -> str:
        return self.sql()

    def sql(self) -> str:
        raise NotImplementedError


def check_bound(expr: Expr, schema: Schema, context: str = "") -> None:
    """Raise if ``expr`` reads a column the schema lacks or types it differently."""
    for e in expr.walk():
        if isinstance(e, Column):
            f = schema.field(e.name, context=context)
            if f.dtype != e.dtype:
                raise SchemaError(
                    f"column {e.name!r} {context} is {f.dtype}, but the expression expects {e.dtype}"
                )


@dataclass(frozen=True, slots=True)
class Column(Expr):
    name: str
    dtype: DataType

    def sql(self) -> str:
        return self.name if self.name.isidentifier() else '"' + self.name.replace('"', '""') + '"'


def _literal_type(value: Any) -> DataType:
    if value is None:
        return T.Null
    if isinstance(value, bool):
        return T.Bool
    if isinstance(value, int):
        return T.Int64
    if isinstance(value, float):
        return T.Float64
    if isinstance(value, str):
        return T.String
    if isinstance(value, dt.datetime):
        return T.Timestamp
    if isinstance(value, dt.date):
        return T.Date
    raise TypeMismatchError(f"literal {value!r} of type {type(value).__name__} is not supported")


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    value: Any
    dtype: DataType = field(default=T.Null)

    def __post_init__(self) -> None:
        if self.dtype == T.Null and self.value is not None:
            object.__setattr__(self, "dtype", _literal_type(self.value))
        if isinstance(self.value, float) and self.value != self.value:
            raise TypeMismatchError("NaN literals are not supported; use None for a missing value")
        if isinstance(self.value, dt.datetime):
            v = self.value
            v = v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)
            object.__setattr__(self, "value", v)

    def sql(self) -> str:
        v = self.value
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, dt.datetime):
            return f"TIMESTAMP '{timestamp_text(v)}'"
        if isinstance(v, dt.date):
            return f"DATE '{v.isoformat()}'"
        return repr(v)


ARITHMETIC = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod"}
COMPARISON = {"=", "!=", "<", "<=", ">", ">="}
LOGICAL = {"AND", "OR"}


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """``left op right`` for arithmetic, comparison and logical operators."""

    op: str
    left: Expr
    right: Expr
    dtype: DataType = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _binary_type(self.op, self.left, self.right))

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return Binary(self.op, children[0], children[1])

    def sql(self) -> str:
        return f"{_paren(self.left)} {self.op} {_paren(self.right)}"


def timestamp_text(v: dt.datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff``, the year in four digits (``%Y`` leaves years before
    1000 unpadded, which Flink does not read)."""
    return f"{v.year:04d}-{v:%m-%d %H:%M:%S.%f}"


def _paren(e: Expr) -> str:
    return f"({e.sql()})" if isinstance(e, (Binary, InList)) else e.sql()


def _binary_type(op: str, left: Expr, right: Expr) -> DataType:
    lt, rt = left.dtype, right.dtype
    desc = f"{left.sql()} {op} {right.sql()}"
    if op in LOGICAL:
        for side in (left, right):
            if side.dtype not in (T.Bool, T.Null):
                raise TypeMismatchError(f"{op} needs boolean operands, but {side.sql()} is {side.dtype} in {desc}")
        return T.Bool
    if op in COMPARISON:
        if T.common_type(lt, rt) is None:
            raise TypeMismatchError(f"cannot compare {lt} with {rt} in {desc}")
        if op not in ("=", "!=") and not T.common_type(lt, rt).is_orderable:  # type: ignore[union-attr]
            raise TypeMismatchError(f"{T.common_type(lt, rt)} values are not ordered in {desc}")
        return T.Bool
    if op in ARITHMETIC:
        for side in (left, right):
            if not (side.dtype.is_numeric or side.dtype == T.Null):
                raise TypeMismatchError(
                    f"arithmetic {op!r} needs numbers, but {side.sql()} is {side.dtype} in {desc}"
                )
        if op == "/":
            return T.Float64
        if op in ("//", "%"):
            for side in (left, right):
                if side.dtype == T.Float64:
                    raise TypeMismatchError(f"{op!r} takes Int64 operands, but {side.sql()} is Float64 in {desc}")
            return T.Int64
        return T.common_type(lt, rt)  # type: ignore[return-value]  # numeric, hence never None
    raise TypeMismatchError(f"unknown operator {op!r}")


UNARY_OPS = ("NOT", "NEG", "IS NULL", "IS NOT NULL")


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str
    operand: Expr
    dtype: DataType = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        o = self.operand
        if self.op == "NOT":
            if o.dtype not in (T.Bool, T.Null):
                raise TypeMismatchError(f"NOT (~) needs a boolean, but {o.sql()} is {o.dtype}")
            t = T.Bool
        elif self.op == "NEG":
            if not o.dtype.is_numeric:
                raise TypeMismatchError(f"negation needs a number, but {o.sql()} is {o.dtype}")
            t = o.dtype
        elif self.op in ("IS NULL", "IS NOT NULL"):
            t = T.Bool
        else:
            raise TypeMismatchError(f"unknown unary operator {self.op!r}")
        object.__setattr__(self, "dtype", t)

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return Unary(self.op, children[0])

    def sql(self) -> str:
        if self.op == "NOT":
            return f"NOT {_paren(self.operand)}"
        if self.op == "NEG":
            return f"-{_paren(self.operand)}"
        return f"{_paren(self.operand)} {self.op}"


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``operand IN (values)``; NULL operand gives NULL, as in SQL."""

    operand: Expr
    values: tuple[Literal, ...]
    dtype: DataType = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.values:
            raise TypeMismatchError(f"isin() of {self.operand.sql()} needs at least one value")
        for v in self.values:
            if T.common_type(self.operand.dtype, v.dtype) is None:
                raise TypeMismatchError(
                    f"isin() value {v.sql()} is {v.dtype}, but {self.operand.sql()} is {self.operand.dtype}"
                )
        object.__setattr__(self, "dtype", T.Bool)

    def children(self) -> tuple[Expr, ...]:
        return (self.operand, *self.values)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return InList(children[0], tuple(children[1:]))  # type: ignore[arg-type]

    def sql(self) -> str:
        return f"{_paren(self.operand)} IN ({', '.join(v.sql() for v in self.values)})"


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    operand: Expr
    dtype: DataType

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        # Only casts every engine performs alike: float -> int truncates toward zero;
        # float/timestamp -> string is left out (each engine formats differently).
        ("Int64", "Float64"), ("Float64", "Int64"), ("Bool", "Int64"), ("Int64", "String"),
        ("Date", "Timestamp"), ("Timestamp", "Date"), ("Null", "Int64"), ("Null", "Float64"),
        ("Null", "String"), ("Null", "Bool"), ("Null", "Timestamp"), ("Null", "Date"),
    }

    def __post_init__(self) -> None:
        src = self.operand.dtype
        if src != self.dtype and (src.name, self.dtype.name) not in self._ALLOWED:
            raise TypeMismatchError(f"cannot cast {self.operand.sql()} from {src} to {self.dtype}")

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return Cast(children[0], self.dtype)

    def sql(self) -> str:
        return f"CAST({self.operand.sql()} AS {self.dtype})"


@dataclass(frozen=True, slots=True)
class Coalesce(Expr):
    """The first non-NULL argument (``fillna``)."""

    args: tuple[Expr, ...]
    dtype: DataType = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        t: DataType | None = T.Null
        for a in self.args:
            t = T.common_type(t, a.dtype) if t is not None else None
            if t is None:
                raise TypeMismatchError(
                    "fillna/coalesce arguments have incompatible types: "
                    + ", ".join(f"{a.sql()} is {a.dtype}" for a in self.args)
                )
        object.__setattr__(self, "dtype", t)

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return Coalesce(children)

    def sql(self) -> str:
        return f"COALESCE({', '.join(a.sql() for a in self.args)})"


@dataclass(frozen=True, slots=True)
class Case(Expr):
    """``CASE WHEN c1 THEN v1 ... ELSE otherwise END``."""

    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr = Literal(None)
    dtype: DataType = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        t: DataType | None = self.otherwise.dtype
        for cond, value in self.whens:
            if cond.dtype not in (T.Bool, T.Null):
                raise TypeMismatchError(f"CASE condition {cond.sql()} is {cond.dtype}, not Bool")
            t = T.common_type(t, value.dtype) if t is not None else None
            if t is None:
                raise TypeMismatchError(f"CASE branches have incompatible types at {value.sql()}")
        object.__setattr__(self, "dtype", t)

    def children(self) -> tuple[Expr, ...]:
        return (*[x for pair in self.whens for x in pair], self.otherwise)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        pairs = tuple((children[i], children[i + 1]) for i in range(0, len(children) - 1, 2))
        return Case(pairs, children[-1])

    def sql(self) -> str:
        body = " ".join(f"WHEN {c.sql()} THEN {v.sql()}" for c, v in self.whens)
        return f"CASE {body} ELSE {self.otherwise.sql()} END"


def and_all(preds: list[Expr]) -> Expr | None:
    """Conjunction of ``preds`` (None when empty)."""
    out: Expr | None = None
    for p in preds:
        out = p if out is None else Binary("AND", out, p)
    return out


def conjuncts(pred: Expr) -> list[Expr]:
    """Split a predicate at its top-level ANDs."""
    if isinstance(pred, Binary) and pred.op == "AND":
        return conjuncts(pred.left) + conjuncts(pred.right)
    return [pred]


def function_path(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a function: how a UDF is named in errors and stored."""
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"


@dataclass(frozen=True, slots=True)
class PythonUDF(Expr):
    """A call of a Python function per row: the explicit, marked escape hatch.

    Shown as ``python_udf:name(args)`` so that ``explain()`` marks every use. Only
    DuckDB and the reference engine run it; every other engine (and its SQL text)
    raises ``UnsupportedError`` naming the UDF.

    Semantics, identical on every engine that runs it:

    - ``fn`` is called once per row with Python values, in the argument order:
      Int64 -> int, Float64 -> float, String -> str, Bool -> bool, Date ->
      datetime.date, Timestamp -> datetime.datetime in UTC (tz-aware). A NULL
      argument is ``None``: the function is called for it too and decides.
    - Its result is checked against ``dtype``: ``None`` (and a float NaN) is NULL;
      an int is accepted for Float64; a naive datetime is read as UTC; anything
      else of the wrong type is an ``EngineError`` naming the UDF, the declared
      type and the arguments.
    - An exception raised by ``fn`` becomes an ``EngineError`` naming the UDF and
      the row's argument values (the original exception is its ``__cause__``).
    - relplan assumes the function is deterministic and total: an engine may call
      it on rows a later filter drops, and may call it any number of times per row.
      The optimizer never evaluates it (no constant folding, even of literal
      arguments), so its errors happen at run time, on the engine.

    Equality is by ``path`` (``module:qualname``), the function object itself,
    the arguments and the type: a function defined again under the same name (a
    notebook cell run twice) is another expression, so nothing cached for the old
    definition (SQL text, simplified aggregates) is reused for the new one. A
    module-level function read back from JSON is the same object, so a plan read
    back equals the original in the process that wrote it.
    """

    name: str
    fn: Callable[..., Any] = field(repr=False)
    args: tuple[Expr, ...]
    dtype: DataType
    path: str = field(init=False)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeMismatchError(f"python_udf {self.name}: {self.fn!r} is not callable")
        if self.dtype not in T.ALL_TYPES:
            raise TypeMismatchError(
                f"python_udf {self.name}: returns= must be a relplan type "
                f"({', '.join(t.name for t in T.ALL_TYPES)}), got {self.dtype!r}"
            )
        for i, a in enumerate(self.args):
            if a.dtype not in T.ALL_TYPES:
                raise TypeMismatchError(
                    f"python_udf {self.name}: argument {i + 1} ({a.sql()}) has no type ({a.dtype}); "
                    "an engine must know each argument's type: pass a typed value or column"
                )
        object.__setattr__(self, "path", function_path(self.fn))

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return PythonUDF(self.name, self.fn, children, self.dtype)

    def sql(self) -> str:
        return f"python_udf:{self.name}({', '.join(a.sql() for a in self.args)})"

    def call(self, *values: Any) -> Any:
        """``fn(*values)`` checked against ``dtype`` (values and result as documented above)."""
        try:
            out = self.fn(*values)
        except Exception as e:  # the user's code: any exception, reported with the row
            raise EngineError(
                f"python_udf {self.name} ({self.path}) raised {type(e).__name__}: {e}\n"
                f"  on arguments {_show_args(self.args, values)}"
            ) from e
        return self.check_result(out, values)

    def check_result(self, out: Any, values: tuple[Any, ...]) -> Any:
        """``out`` as a value of ``dtype`` (None for NULL), or an EngineError naming the UDF."""
        if out is None:
            return None
        t = self.dtype
        ok: Any = _UNSET
        if t == T.Float64:
            if isinstance(out, (int, float)) and not isinstance(out, bool):
                ok = None if isinstance(out, float) and out != out else float(out)
        elif t == T.Int64:
            if isinstance(out, int) and not isinstance(out, bool) and -(2**63) <= out <= 2**63 - 1:
                ok = int(out)
        elif t == T.String:
            if isinstance(out, str):
                ok = str(out)
        elif t == T.Bool:
            if isinstance(out, bool):
                ok = out
        elif t == T.Timestamp:
            if isinstance(out, dt.datetime):
                ok = out.replace(tzinfo=dt.timezone.utc) if out.tzinfo is None else out.astimezone(dt.timezone.utc)
        elif t == T.Date:
            if isinstance(out, dt.date) and not isinstance(out, dt.datetime):
                ok = out
        if ok is _UNSET:
            why = " (out of Int64's range)" if t == T.Int64 and isinstance(out, int) and not isinstance(out, bool) else ""
            raise EngineError(
                f"python_udf {self.name} ({self.path}) returned {out!r} ({type(out).__name__}){why}, "
                f"but it is declared to return {t} (returns=rp.{t}; None for NULL)\n"
                f"  on arguments {_show_args(self.args, values)}"
            )
        return ok


_UNSET = object()


def _show_args(args: tuple[Expr, ...], values: tuple[Any, ...]) -> str:
    return "(" + ", ".join(f"{a.sql()}={v!r}" for a, v in zip(args, values)) + ")"
