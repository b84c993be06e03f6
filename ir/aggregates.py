"""Aggregate calls with their result types and null semantics fixed in the IR.

| func            | input            | result   | over no (non-null) rows |
|-----------------|------------------|----------|-------------------------|
| count           | any or rows (*)  | Int64    | 0                       |
| count_distinct  | any              | Int64    | 0                       |
| sum             | Int64 / Float64  | same     | NULL                    |
| mean            | Int64 / Float64  | Float64  | NULL                    |
| min, max        | orderable        | same     | NULL                    |
| var, std        | Int64 / Float64  | Float64  | NULL (also for 1 value: sample, ddof=1) |
| first, last     | any              | same     | NULL                    |

NULL inputs are ignored by every aggregate (``count(*)`` counts rows).
``first``/``last`` take the value of the earliest/latest row by ``order`` among
rows whose value is not NULL; among rows with equal ``order`` the smallest value
is first and the largest is last, so the result never depends on row order.
An aggregate's ``filter`` keeps only rows where it is TRUE (the FILTER clause).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relplan.ir import types as T
from relplan.ir.errors import TypeMismatchError
from relplan.ir.expr import Column, Expr
from relplan.ir.types import DataType

AGG_FUNCS = ("count", "count_distinct", "sum", "mean", "min", "max", "var", "std", "first", "last")

# The pandas spellings users write, mapped to relplan's names.
AGG_ALIASES = {"nunique": "count_distinct", "avg": "mean", "average": "mean", "size": "count"}


def _result_type(func: str, arg: Expr | None) -> DataType:
    if func == "count":
        return T.Int64
    if arg is None:
        raise TypeMismatchError(f"{func}() needs a column")
    t = arg.dtype
    if func == "count_distinct":
        return T.Int64
    if func in ("sum", "mean", "var", "std"):
        if not t.is_numeric:
            raise TypeMismatchError(f"{func}() needs a numeric column, but {arg.sql()} is {t}")
        return t if func == "sum" else T.Float64
    if func in ("min", "max"):
        if not t.is_orderable:
            raise TypeMismatchError(f"{func}() needs an orderable column, but {arg.sql()} is {t}")
        return t
    if func in ("first", "last"):
        return t
    raise TypeMismatchError(f"unknown aggregate {func!r}; known: {', '.join(AGG_FUNCS)}")


@dataclass(frozen=True, slots=True)
class AggCall:
    """``func(arg) FILTER (WHERE filter) AS name``; typed at construction."""

    func: str
    arg: Expr | None
    name: str
    filter: Expr | None = None
    order: Column | None = None  # first/last: the event-time column
    dtype: DataType = field(init=False, compare=False, repr=False)
    # The hash, computed once when first asked for: aggregates are dictionary keys
    # everywhere (window sharing, rule memos, cached SQL items), and hashing their
    # expressions again on every look-up was a fifth of merging a thousand windows.
    _hash: int | None = field(init=False, compare=False, repr=False, default=None)
    _columns: frozenset[str] | None = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _result_type(self.func, self.arg))
        if self.filter is not None and self.filter.dtype != T.Bool:
            raise TypeMismatchError(
                f"filter of {self.name!r} must be boolean, but {self.filter.sql()} is {self.filter.dtype}"
            )
        if self.func in ("first", "last") and self.order is None:
            raise TypeMismatchError(f"{self.func}() of {self.name!r} needs an event-time order")

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash((self.func, self.arg, self.name, self.filter, self.order))
            object.__setattr__(self, "_hash", h)
        return h

    def __reduce__(self) -> tuple[type[AggCall], tuple[object, ...]]:
        # Built again from its fields: a cached hash of strings is valid in one process only.
        return (AggCall, (self.func, self.arg, self.name, self.filter, self.order))

    def expressions(self) -> tuple[Expr, ...]:
        return tuple(e for e in (self.arg, self.filter, self.order) if e is not None)

    def columns(self) -> frozenset[str]:
        out = self._columns
        if out is None:  # asked for by several rules, for every aggregate of every pass
            out = frozenset()
            for e in self.expressions():
                out |= e.columns()
            object.__setattr__(self, "_columns", out)
        return out

    def sql(self) -> str:
        inner = "*" if self.arg is None else self.arg.sql()
        s = f"{self.func}({inner})"
        if self.order is not None:
            s = f"{self.func}({inner} by {self.order.sql()})"
        if self.filter is not None:
            s += f" filter ({self.filter.sql()})"
        return s
