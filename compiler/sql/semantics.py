"""What each dialect's operators mean, written as relplan IR.

The IR has one meaning per operator (relplan.ir.expr): ``/`` is true division,
``//`` floors, ``%`` takes the divisor's sign. SQL engines differ from it and from
each other, so the front end spells each dialect's meaning with IR operators:

- ``%`` truncates in all three (the result has the dividend's sign);
- ``/`` of two BIGINTs truncates toward zero in Flink, and is true division in DuckDB
  and Spark; DuckDB's ``//`` and Spark's ``DIV`` truncate toward zero;
- ``AVG`` of a BIGINT is a DOUBLE in DuckDB and Spark, and a truncated BIGINT in Flink;
- a timestamp literal without a zone is UTC (relplan runs every engine in UTC).
"""

from __future__ import annotations

from relplan.ir import types as T
from relplan.ir.expr import Binary, Case, Expr, Literal

ZERO = Literal(0)


def truncated_div(a: Expr, b: Expr) -> Expr:
    """``a / b`` rounded toward zero (SQL's integer division): the floor, plus one when
    the division is inexact and the signs differ."""
    floor = Binary("//", a, b)
    inexact = Binary("!=", Binary("%", a, b), ZERO)
    signs_differ = Binary("!=", Binary("<", a, ZERO), Binary("<", b, ZERO))
    return Case(((Binary("AND", inexact, signs_differ), Binary("+", floor, Literal(1))),), floor)


def truncated_mod(a: Expr, b: Expr) -> Expr:
    """SQL's ``a % b``: the remainder with the dividend's sign (the IR's has the divisor's)."""
    rem = Binary("%", a, b)
    signs_differ = Binary("!=", Binary("<", a, ZERO), Binary("<", b, ZERO))
    return Case(((Binary("AND", Binary("!=", rem, ZERO), signs_differ), Binary("-", rem, b)),), rem)


def divide(a: Expr, b: Expr, dialect: str) -> Expr:
    """``a / b`` as the dialect means it."""
    if dialect == "flink" and a.dtype in (T.Int64, T.Null) and b.dtype in (T.Int64, T.Null) and T.Int64 in (a.dtype, b.dtype):
        return truncated_div(a, b)
    return Binary("/", a, b)


def zero_of(t: T.DataType) -> Literal:
    """A non-NULL stand-in of type ``t`` (for grouping NULLs as SQL does)."""
    import datetime as dt

    values = {
        "Int64": 0, "Float64": 0.0, "String": "", "Bool": False,
        "Timestamp": dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "Date": dt.date(1970, 1, 1),
    }
    return Literal(values.get(t.name, 0), t if t != T.Null else T.Int64)
