"""Partial aggregates: what the online store keeps per tile, and how parts combine.

An aggregate over a window is rebuilt from its values over disjoint parts of it
(whole tiles, and the events of the two edge tiles that lie inside the window).
The partials are the tiling rule's and the hybrid placement's (count and sum add,
min and max take the extreme, mean is a sum and a count), extended to every
aggregate the IR has. Each partial is a JSON value, ``None`` over no (non-NULL) rows:

| func            | partial                   | combine                         | value                 |
|-----------------|---------------------------|---------------------------------|-----------------------|
| count           | n                         | n1 + n2                         | n                     |
| sum             | s                         | s1 + s2                         | s                     |
| mean            | [s, n]                    | add both                        | s / n                 |
| min, max        | v                         | the smaller / larger            | v                     |
| var, std        | [n, mean, m2]             | Chan et al.'s pairwise update   | m2/(n-1), its sqrt    |
| count_distinct  | [v, ...] (distinct)       | union                           | its length            |
| first, last     | [time, v]                 | the smaller / larger pair       | v                     |

The tiles come from the engine, computed with the IR's own aggregate calls
(``engine_calls``), so NULL rules, filters and ``first``/``last``'s tie rule (equal
times: the smallest value is first, the largest last) are the engine's, as in
training data. Only the edges are aggregated here, from a tile's stored events.
Timestamps are epoch microseconds and dates epoch days throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Column, Unary

Partial = Any


def engine_calls(func: str, value: Column, time: Column, prefix: str) -> tuple[AggCall, ...]:
    """The IR aggregate calls whose results, per tile, make ``func``'s partial (see ``from_engine``).

    ``value`` is the feature's masked argument (NULL where its filter is not TRUE);
    count_distinct has none: its tiles are the engine's distinct (key, tile, value) rows."""
    if func == "count":
        return (AggCall("count", value, f"{prefix}n"),)
    if func in ("sum", "min", "max"):
        return (AggCall(func, value, f"{prefix}{func}"),)
    if func == "mean":
        return (AggCall("sum", value, f"{prefix}s"), AggCall("count", value, f"{prefix}n"))
    if func in ("var", "std"):
        return (
            AggCall("count", value, f"{prefix}n"), AggCall("mean", value, f"{prefix}m"),
            AggCall("var", value, f"{prefix}v"),
        )
    if func in ("first", "last"):
        seen = Unary("IS NOT NULL", value)
        edge = "min" if func == "first" else "max"
        return (AggCall(func, value, f"{prefix}v", order=time), AggCall(edge, time, f"{prefix}t", filter=seen))
    raise AssertionError(func)  # count_distinct: by distinct rows


def from_engine(func: str, cols: list[list[Any]]) -> list[Partial]:
    """Per tile row, the partial from the columns of ``engine_calls`` (times as microseconds)."""
    if func == "count":
        return cols[0]
    if func in ("sum", "min", "max"):
        return cols[0]
    if func == "mean":
        return [None if n == 0 else [s, n] for s, n in zip(cols[0], cols[1])]
    if func in ("var", "std"):
        # The engine's sample variance of one value is NULL; its m2 is 0.
        return [None if n == 0 else [n, m, 0.0 if n == 1 else v * (n - 1)] for n, m, v in zip(*cols)]
    if func in ("first", "last"):
        return [None if t is None else [t, v] for v, t in zip(cols[0], cols[1])]
    raise AssertionError(func)


def of_events(func: str, events: Iterable[tuple[int, Any]]) -> Partial:
    """The partial of (time, value) events, NULL values ignored: an edge's part of a window."""
    vals = [(t, v) for t, v in events if v is not None]
    if func == "count":
        return len(vals)
    if not vals:
        return None
    if func == "count_distinct":
        return sorted({v for _, v in vals})
    if func == "first":
        return list(min(vals))
    if func == "last":
        return list(max(vals))
    xs = [v for _, v in vals]
    if func == "sum":
        return math.fsum(xs) if isinstance(xs[0], float) else sum(xs)
    if func == "min":
        return min(xs)
    if func == "max":
        return max(xs)
    if func == "mean":
        return [math.fsum(xs) if isinstance(xs[0], float) else sum(xs), len(xs)]
    if func in ("var", "std"):
        n = len(xs)
        mean = math.fsum(xs) / n
        return [n, mean, math.fsum((x - mean) ** 2 for x in xs)]
    raise AssertionError(func)


def _add(a: Any, b: Any) -> Any:
    return a + b


def _mean(a: list[Any], b: list[Any]) -> list[Any]:
    return [a[0] + b[0], a[1] + b[1]]


def _var(a: list[Any], b: list[Any]) -> list[Any]:
    n1, m1, q1 = a
    n2, m2, q2 = b
    n = n1 + n2
    d = m2 - m1
    return [n, m1 + d * n2 / n, q1 + q2 + d * d * n1 * n2 / n]


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    return sorted(set(a).union(b))  # one order: the stored bytes do not depend on hash seeds


def _first(a: list[Any], b: list[Any]) -> list[Any]:
    return a if (a[0], a[1]) <= (b[0], b[1]) else b


def _last(a: list[Any], b: list[Any]) -> list[Any]:
    return a if (a[0], a[1]) >= (b[0], b[1]) else b


_COMBINE: dict[str, Callable[[Any, Any], Any]] = {
    "count": _add, "sum": _add, "mean": _mean, "min": min, "max": max, "var": _var, "std": _var,
    "count_distinct": _union, "first": _first, "last": _last,
}


def combiner(func: str) -> Callable[[Partial, Partial], Partial]:
    """``combine(a, b)``: the partial over both parts (either may be None: no rows)."""
    f = _COMBINE[func]

    def combine(a: Partial, b: Partial) -> Partial:
        if a is None:
            return b
        if b is None:
            return a
        return f(a, b)

    return combine


def value(func: str, p: Partial) -> Any:
    """The aggregate's value from its partial over the whole window (the IR's result for no rows)."""
    if func == "count":
        return p or 0
    if func == "count_distinct":
        return 0 if p is None else len(p)
    if p is None:
        return None
    if func in ("sum", "min", "max"):
        return p
    if func == "mean":
        return p[0] / p[1]
    if func in ("var", "std"):
        n, _, m2 = p
        if n < 2:
            return None
        var = max(m2, 0.0) / (n - 1)
        return math.sqrt(var) if func == "std" else var
    if func in ("first", "last"):
        return p[1]
    raise AssertionError(func)


def stored_type(dtype: T.DataType) -> str:
    """How a value of ``dtype`` is kept in JSON: 'us' (timestamps), 'days' (dates) or as it is."""
    return {"Timestamp": "us", "Date": "days"}.get(dtype.name, "json")


def _fold(f: Callable[[Any, Any], Any]) -> Callable[[Partial, list[Partial]], Partial]:
    def fold(acc: Partial, parts: list[Partial]) -> Partial:
        for b in parts:
            acc = b if acc is None else f(acc, b)
        return acc

    return fold


def _fold_sum(acc: Partial, parts: list[Partial]) -> Partial:
    if not parts:
        return acc
    return sum(parts, acc) if acc is not None else sum(parts[1:], parts[0])


def _fold_mean(acc: Partial, parts: list[Partial]) -> Partial:
    if not parts:
        return acc
    if acc is None:
        acc, parts = parts[0], parts[1:]
    return [sum((p[0] for p in parts), acc[0]), sum((p[1] for p in parts), acc[1])]


def _fold_extreme(pick: Callable[..., Any]) -> Callable[[Partial, list[Partial]], Partial]:
    def fold(acc: Partial, parts: list[Partial]) -> Partial:
        if not parts:
            return acc
        best = pick(parts)
        return best if acc is None else pick(acc, best)

    return fold


def _fold_union(acc: Partial, parts: list[Partial]) -> Partial:
    return acc if not parts else sorted(set(acc or ()).union(*parts))


_FOLD: dict[str, Callable[[Partial, list[Partial]], Partial]] = {
    "count": _fold_sum, "sum": _fold_sum, "mean": _fold_mean, "min": _fold_extreme(min), "max": _fold_extreme(max),
    "var": _fold(_var), "std": _fold(_var), "count_distinct": _fold_union, "first": _fold(_first), "last": _fold(_last),
}


def folder(func: str) -> Callable[[Partial, list[Partial]], Partial]:
    """``fold(acc, parts)``: ``combine`` of acc with each of ``parts`` (none None) in turn:
    the same additions in the same order, so the same result, in a few Python calls."""
    return _FOLD[func]
