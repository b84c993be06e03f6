"""A brute-force reference for what a feature means: the oracle of the engine tests.

Written from the documented definitions (DESIGN.md "What a feature means", the
window-edge convention in ir/windows.py, the aggregate table in ir/aggregates.py,
the expression rules in ir/expr.py), never from relplan's IR or SQL. Every value
is recomputed by scanning all rows (quadratic on purpose: obviously correct beats
fast), and sums, means and variances are computed exactly (``math.fsum``,
``fractions.Fraction``) and rounded once, so an engine is compared with the true
value rather than with one particular order of floating-point rounding.

Rows are plain dicts of Python values; times are timezone-aware UTC datetimes (a
naive datetime is read as UTC) and are handled as integer microseconds since the
Unix epoch, so window edges are exact. A float NaN is read as NULL, as relplan
reads its input tables.

    per_event(rows, keys={"k": col("k")}, mask=None,
              aggs=[Agg("n", "count")], size_us=60_000_000)
    per_window(rows, keys={"k": col("k")}, mask=None,
               aggs=[Agg("total", "sum", col("v"))], size_us=..., slide_us=...)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Row = dict[str, Any]
Value = Callable[[Row], Any]

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = dt.timedelta(microseconds=1)


# ---- time ---------------------------------------------------------------------


def to_us(t: dt.datetime) -> int:
    """Microseconds since the Unix epoch (exact; a naive datetime is UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - EPOCH) // _ONE_US


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


# ---- expressions: SQL three-valued logic, Python arithmetic ---------------------


def col(name: str) -> Value:
    return lambda row: row[name]


def not3(a: bool | None) -> bool | None:
    return None if a is None else not a


def and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


_CMP = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def cmp3(op: str, a: Any, b: Any) -> bool | None:
    """A comparison; NULL on either side gives NULL. Python compares str by code point."""
    if a is None or b is None:
        return None
    return bool(_CMP[op](a, b))


def isin3(a: Any, values: Sequence[Any]) -> bool | None:
    """``a IN (values)`` for a list without NULLs: NULL operand gives NULL."""
    if a is None:
        return None
    return a in values


def between3(a: Any, lo: Any, hi: Any) -> bool | None:
    return and3(cmp3(">=", a, lo), cmp3("<=", a, hi))


def isnull(a: Any) -> bool:
    return a is None


def add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


def sub(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a - b


def mul(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a * b


def truediv(a: Any, b: Any) -> float | None:
    """True division (a float even for ints); by zero is NULL."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def floordiv(a: int | None, b: int | None) -> int | None:
    """Python's floor division of ints; by zero is NULL."""
    if a is None or b is None or b == 0:
        return None
    return a // b


def mod(a: int | None, b: int | None) -> int | None:
    """Python's remainder (the sign of the divisor); by zero is NULL."""
    if a is None or b is None or b == 0:
        return None
    return a % b


# ---- aggregates -----------------------------------------------------------------

AGG_FUNCS = ("count", "count_distinct", "sum", "mean", "min", "max", "var", "std", "first", "last")


def result_type(func: str, input_type: str | None) -> str:
    """The result type of ``func`` over a column of ``input_type`` (the aggregate table)."""
    if func in ("count", "count_distinct"):
        return "Int64"
    if func in ("mean", "var", "std"):
        return "Float64"
    assert input_type is not None
    return input_type  # sum, min, max, first, last


def _exact(x: int | float) -> Fraction:
    return Fraction(x)


def aggregate(func: str, rows: Sequence[Row], value: Value | None, time: str) -> Any:
    """``func`` over ``rows`` (already windowed and masked); ``value=None`` is count(*)."""
    if func == "count" and value is None:
        return len(rows)
    assert value is not None, f"{func} needs a value"
    timed = [(to_us(r[time]), v) for r in rows if (v := value(r)) is not None]
    vals = [v for _, v in timed]
    if func == "count":
        return len(vals)
    if func == "count_distinct":
        return len(set(vals))  # -0.0 == 0.0: one value, as SQL equality says
    if not vals:
        return None
    if func == "sum":
        if all(isinstance(v, int) for v in vals):
            return sum(vals)
        return math.fsum(vals)  # correctly rounded exact sum
    if func == "mean":
        return float(sum(map(_exact, vals)) / len(vals))
    if func == "min":
        return min(vals)
    if func == "max":
        return max(vals)
    if func in ("var", "std"):
        if len(vals) < 2:
            return None
        exact = [_exact(v) for v in vals]
        mean = sum(exact) / len(exact)
        var = sum((v - mean) ** 2 for v in exact) / (len(exact) - 1)
        return float(var) if func == "var" else math.sqrt(var)
    if func == "first":
        # earliest time; among ties on time the smallest value
        return min(timed)[1]
    if func == "last":
        # latest time; among ties on time the largest value
        return max(timed)[1]
    raise ValueError(f"unknown aggregate {func!r}")


@dataclass(frozen=True)
class Agg:
    """One output column: ``func`` of ``value`` (None: count rows)."""

    name: str
    func: str
    value: Value | None = None


# ---- features -------------------------------------------------------------------


def normalize(rows: Sequence[Row]) -> list[Row]:
    """The rows as relplan reads them: float NaN is NULL."""
    return [
        {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in r.items()} for r in rows
    ]


def _passes(mask: Callable[[Row], bool | None] | None, row: Row) -> bool:
    # a filter keeps a row only where its predicate is TRUE (NULL counts as false)
    return mask is None or mask(row) is True


def per_event(
    rows: Sequence[Row],
    *,
    keys: Mapping[str, Value],
    mask: Callable[[Row], bool | None] | None,
    aggs: Sequence[Agg],
    size_us: int | None,
    time: str = "ts",
) -> list[Row]:
    """The feature columns at every event, in the order of ``rows``.

    At the event with key values K and time t, each aggregate is taken over the
    rows with key values K that pass ``mask`` and have ``t - size < ts <= t``
    (``size_us=None``: lifetime, ``ts <= t``). An event with a NULL key is no
    entity: its features are NULL (the mask does not matter for the row set).
    """
    rows = normalize(rows)
    out = []
    for row in rows:
        k = tuple(f(row) for f in keys.values())
        if any(v is None for v in k):
            out.append({a.name: None for a in aggs})
            continue
        t = to_us(row[time])
        frame = [
            r for r in rows
            if tuple(f(r) for f in keys.values()) == k
            and _passes(mask, r)
            and to_us(r[time]) <= t
            and (size_us is None or to_us(r[time]) > t - size_us)
        ]
        out.append({a.name: aggregate(a.func, frame, a.value, time) for a in aggs})
    return out


def at_points(
    rows: Sequence[Row],
    spine: Sequence[Row],
    *,
    keys: Mapping[str, Value],
    mask: Callable[[Row], bool | None] | None,
    aggs: Sequence[Agg],
    size_us: int | None,
    inclusive: bool,
    time: str = "ts",
    at: str = "at",
) -> list[Row]:
    """The feature columns at every spine row, in the order of ``spine`` (point in time).

    At a spine row with values K in the key columns (named as the feature's keys) and
    time t, each aggregate is taken over the event rows whose key values equal K,
    that pass ``mask``, and whose time u has ``t - size < u <= t`` (``inclusive``) or
    ``t - size <= u < t`` (not: the value an instant before t); ``size_us=None`` drops
    the lower bound. A spine row with a NULL key or time gets NULL everywhere.
    """
    rows = normalize(rows)
    out = []
    for point in normalize(spine):
        k = tuple(point[name] for name in keys)
        if any(v is None for v in k) or point[at] is None:
            out.append({a.name: None for a in aggs})
            continue
        t = to_us(point[at])

        def in_frame(u: int) -> bool:
            if inclusive:
                return u <= t and (size_us is None or u > t - size_us)
            return u < t and (size_us is None or u >= t - size_us)

        frame = [
            r for r in rows
            if tuple(f(r) for f in keys.values()) == k and _passes(mask, r) and in_frame(to_us(r[time]))
        ]
        out.append({a.name: aggregate(a.func, frame, a.value, time) for a in aggs})
    return out


def window_starts(t: int, size: int, slide: int) -> list[int]:
    """Starts of the epoch-aligned windows ``[s, s + size)`` that hold time ``t``."""
    starts = []
    s = t - t % slide  # Python's % floors, so this is right before the epoch too
    while s + size > t:
        starts.append(s)
        s -= slide
    return sorted(starts)


def per_window(
    rows: Sequence[Row],
    *,
    keys: Mapping[str, Value],
    mask: Callable[[Row], bool | None] | None,
    aggs: Sequence[Agg],
    size_us: int,
    slide_us: int,
    time: str = "ts",
) -> list[Row]:
    """One row per key values and window holding at least one row that passes ``mask``.

    Windows are ``[start, start + size)`` with start a multiple of ``slide``
    (tumbling: slide == size). Rows with a NULL key are dropped. Columns: the
    keys by name, window_start, window_end, then the aggregates.
    """
    rows = normalize(rows)
    kept = [r for r in rows if _passes(mask, r)]
    groups: set[tuple[tuple[Any, ...], int]] = set()
    for r in kept:
        k = tuple(f(r) for f in keys.values())
        if any(v is None for v in k):
            continue
        for s in window_starts(to_us(r[time]), size_us, slide_us):
            groups.add((k, s))
    out = []
    for k, s in groups:
        members = [
            r for r in kept
            if tuple(f(r) for f in keys.values()) == k and s <= to_us(r[time]) < s + size_us
        ]
        row: Row = dict(zip(keys, k))
        row["window_start"] = from_us(s)
        row["window_end"] = from_us(s + size_us)
        for a in aggs:
            row[a.name] = aggregate(a.func, members, a.value, time)
        out.append(row)
    return out


# ---- comparing an engine's rows with the reference ---------------------------------

# Floats are equal within this relative tolerance, or this absolute one near zero:
# engines may add in any order, the reference rounds once from the exact value.
FLOAT_REL_TOL = 1e-9
FLOAT_ABS_TOL = 1e-9


def _sort_key(row: Row, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple((0,) if row[c] is None else (1, row[c]) for c in columns)


def same_value(actual: Any, expected: Any) -> bool:
    """Exact equality (same Python type, too), but floats within the stated tolerance."""
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(expected, float) or isinstance(actual, float):
        if not (isinstance(actual, float) and isinstance(expected, float)):
            return False
        if math.isnan(actual) or math.isnan(expected):
            return math.isnan(actual) and math.isnan(expected)
        return math.isclose(actual, expected, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL)
    return type(actual) is type(expected) and actual == expected


def assert_same_rows(actual: Sequence[Row], expected: Sequence[Row], sort_by: Sequence[str]) -> None:
    """The same multiset of rows, order ignored (both sorted by ``sort_by``)."""
    a = sorted(actual, key=lambda r: _sort_key(r, sort_by))
    e = sorted(expected, key=lambda r: _sort_key(r, sort_by))
    assert len(a) == len(e), f"{len(a)} rows, expected {len(e)}:\nactual   {a}\nexpected {e}"
    for i, (ra, re) in enumerate(zip(a, e)):
        assert ra.keys() == re.keys(), f"row {i}: columns {list(ra)}, expected {list(re)}"
        bad = [c for c in re if not same_value(ra[c], re[c])]
        assert not bad, (
            f"row {i} differs in {bad}:\nactual   {ra}\nexpected {re}"
            + "".join(f"\n  {c}: {ra[c]!r} != {re[c]!r}" for c in bad)
        )
