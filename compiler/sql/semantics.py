"""What each dialect's operators mean, written as relplan IR.

The IR has one meaning per operator (relplan.ir.expr): ``/`` is true division,
``//`` floors, ``%`` takes the divisor's sign, and a division by zero is NULL. SQL
engines differ from it and from each other, so the front end spells each dialect's
meaning with IR operators (tests/test_sql_dialects.py checks each against DuckDB and
Spark run directly):

- ``%`` truncates in all three (the result has the dividend's sign: ``-7 % 3`` is -1,
  ``7 % -3`` is 1);
- ``/`` of two BIGINTs truncates toward zero in Flink (``-7 / 2`` is -3), and is true
  division in DuckDB and Spark (3.5); DuckDB's ``//`` and Spark's ``DIV`` truncate
  toward zero;
- ``AVG`` of a BIGINT is a DOUBLE in DuckDB and Spark, and a BIGINT in Flink: the sum
  divided by the count, truncated (over a window frame too);
- ``SUM`` of a BIGINT is a BIGINT in Spark and Flink, and a HUGEINT (128 bits) in
  DuckDB: relplan's is a BIGINT, the same value while the sum fits 64 bits;
- NULLs sort last in DuckDB and first in Spark and Flink, ascending, unless NULLS
  FIRST/LAST says (query.py writes a window's order out);
- strings compare by code point (UTF-8 bytes) in all three: ``'B' < 'a'``, ``'é' > 'z'``;
- a timestamp literal without a zone is UTC (relplan runs every engine in UTC). With
  an offset (``TIMESTAMP '2024-03-01 01:00:00+02:00'``) Spark converts it (23:00 UTC
  the day before), DuckDB's TIMESTAMP drops it (01:00; its TIMESTAMPTZ converts), and
  Flink's TIMESTAMP has no zone: rp.sql reads each so, and refuses Flink's.

Division by zero is where the engines disagree most, and the IR's NULL cannot say an
error or NaN:

- DuckDB: ``x / 0`` is +-inf, or NaN for ``0 / 0``; ``x // 0`` and ``x % 0`` raise.
- Spark 3.5 (ANSI mode off, its default): NULL, as the IR. With
  ``spark.sql.ansi.enabled`` (Spark 4's default, and how relplan runs Spark) it raises.
- Flink: BIGINT ``/`` and ``%`` by zero raise; DOUBLE ``/`` by zero is +-Infinity or NaN.

rp.sql refuses a division whose divisor is the literal 0 wherever the dialect's answer
is not NULL: everywhere but Spark's ``/``, read as NULL (``%`` and integer division by
the literal 0 are refused in every dialect, Spark's included). A divisor that is zero only in the data cannot
be seen when compiling: there rp.sql's plan gives NULL where DuckDB gives +-inf or NaN
or raises and where Flink raises; guard such divisors in the SQL (``CASE WHEN d = 0
THEN NULL ELSE n / d END``, ``NULLIF(d, 0)`` in the dialect) to mean the same everywhere.
"""

from __future__ import annotations

import re

from relplan.ir import types as T
from relplan.ir.errors import UnsupportedError
from relplan.ir.expr import Binary, Case, Expr, Literal

ZERO = Literal(0)

_BY_ZERO = {
    "duckdb": {"/": "+-inf or NaN", "//": "an error", "%": "an error"},
    "flink": {"/": "an error (BIGINT) or +-Infinity/NaN (DOUBLE)", "//": "an error", "%": "an error"},
}


def check_divisor(b: Expr, op: str, dialect: str | None = None) -> None:
    """Refuse a division by the literal 0 where the dialect's answer is not the IR's NULL
    (``dialect=None``: in any dialect but Spark's)."""
    if not (isinstance(b, Literal) and isinstance(b.value, (int, float)) and not isinstance(b.value, bool) and b.value == 0):
        return
    if dialect == "spark":
        return
    where = _BY_ZERO.get(dialect or "duckdb", {})
    what = f"{where.get(op, 'not NULL')} in {dialect}" if dialect else "an error in DuckDB and Flink (NULL in Spark 3.5)"
    raise UnsupportedError(f"division by the literal 0 ({op} 0) is {what}; relplan's division by zero is NULL: "
                           "write NULL if that is what you mean")


def truncated_div(a: Expr, b: Expr) -> Expr:
    """``a / b`` rounded toward zero (SQL's integer division): the floor, plus one when
    the division is inexact and the signs differ."""
    check_divisor(b, "//")
    floor = Binary("//", a, b)
    inexact = Binary("!=", Binary("%", a, b), ZERO)
    signs_differ = Binary("!=", Binary("<", a, ZERO), Binary("<", b, ZERO))
    return Case(((Binary("AND", inexact, signs_differ), Binary("+", floor, Literal(1))),), floor)


def truncated_mod(a: Expr, b: Expr) -> Expr:
    """SQL's ``a % b``: the remainder with the dividend's sign (the IR's has the divisor's)."""
    check_divisor(b, "%")
    rem = Binary("%", a, b)
    signs_differ = Binary("!=", Binary("<", a, ZERO), Binary("<", b, ZERO))
    return Case(((Binary("AND", Binary("!=", rem, ZERO), signs_differ), Binary("-", rem, b)),), rem)


def nullif(a: Expr, b: Expr) -> Expr:
    """SQL's ``NULLIF(a, b)``: NULL where ``a = b``, else ``a`` (of ``a``'s type)."""
    return Case(((Binary("=", a, b), Literal(None, a.dtype)),), a)


def divide(a: Expr, b: Expr, dialect: str) -> Expr:
    """``a / b`` as the dialect means it."""
    check_divisor(b, "/", dialect)
    if dialect == "flink" and a.dtype in (T.Int64, T.Null) and b.dtype in (T.Int64, T.Null) and T.Int64 in (a.dtype, b.dtype):
        return truncated_div(a, b)
    return Binary("/", a, b)


_OFFSET = re.compile(r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(Z|[+-]\d\d(?::?\d\d)?|UTC)$", re.IGNORECASE)


def timestamp_text(text: str, zoned: bool, dialect: str) -> str:
    """The text of a timestamp literal as ``dialect`` reads it: ``zoned`` for a TIMESTAMPTZ
    (an offset converts); a TIMESTAMP's offset converts in Spark (its TIMESTAMP is local
    time), is dropped by DuckDB, and is refused for Flink (its TIMESTAMP has no zone)."""
    m = _OFFSET.match(text.strip())
    if m is None or zoned or dialect == "spark":
        return text
    if dialect == "duckdb":
        return m.group(1)
    raise UnsupportedError(
        f"TIMESTAMP {text!r} has a zone offset, which Flink's TIMESTAMP (without time zone) does not read; "
        "write the UTC time without an offset"
    )


def zero_of(t: T.DataType) -> Literal:
    """A non-NULL stand-in of type ``t`` (for grouping NULLs as SQL does)."""
    import datetime as dt

    values = {
        "Int64": 0, "Float64": 0.0, "String": "", "Bool": False,
        "Timestamp": dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "Date": dt.date(1970, 1, 1),
    }
    return Literal(values.get(t.name, 0), t if t != T.Null else T.Int64)
