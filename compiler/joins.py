"""Enrichment joins of the DSL: ``merge`` and ``merge_asof`` as IR joins.

Three shapes, each an IR node the optimizer and every backend already know:

- ``tx.merge(merchants, on="merchant_id")``: a **lookup join** (``Join(lookup=True)``)
  with a table that has no event time. At most one row per key: a run checks it
  before any engine starts, so a duplicate is an error, never a multiplied row.
- ``payments.merge(logins, on="user_id", within="10m")``: an **interval join**
  (``Join`` with time bounds) of two event sources: the right rows of the key whose
  time lies in ``[t - 10m, t]`` (both ends inclusive).
- ``tx.merge_asof(merchants, by="merchant_id")``: an **as-of join** (``AsOfJoin``
  with the lifetime frame ending at the row's time, one ``last()`` per column): each
  column of the dimension as of the row's event time, by ``latest()``'s rules. A
  dimension version later than the event never reaches it (the point-in-time trap).

The joined frame's rows are the join's rows and its event time is the left
source's: per-event features over it are evaluated at every joined row. A mask
written before the merge filters what is joined (as in pandas); one written after
it filters what an aggregate counts.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from relplan.compiler.dsl import DataFrame, DataFrameAPI
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import FeatureError, RelplanError, SchemaError, TypeMismatchError
from relplan.ir.expr import Column, Unary
from relplan.ir.windows import Frame, parse_duration

if TYPE_CHECKING:
    from relplan.compiler.dsl import Duration

JOIN_HOWS = ("inner", "left")
HIDDEN = "__right_"  # a right key named like the left one, until the join is done


def relation(frame: DataFrameAPI) -> nodes.Node:
    """The frame's rows as a node: its mask applied, its columns (selected or
    assigned) projected."""
    base = frame._rows if frame._rows is not None else frame._source.node()
    node = base if frame._mask is None else nodes.Filter(base, frame._mask)
    plain = tuple((f.name, Column(f.name, f.dtype)) for f in base.schema)
    columns = tuple(frame._columns.items())
    return node if columns == plain else nodes.Project(node, columns)


def build_merge(
    left: DataFrameAPI,
    right: DataFrameAPI,
    on: str | list[str] | None,
    left_on: str | list[str] | None,
    right_on: str | list[str] | None,
    how: str,
    within: Duration | tuple[Duration, Duration] | None,
    suffixes: tuple[str, str],
) -> DataFrame:
    _check_how(how, "merge", JOIN_HOWS)
    _check_right(right, "merge")
    suffix = _right_suffix(suffixes)
    pairs = _key_pairs(left, right, on, left_on, right_on, "merge", "on")
    if left._source.node().event_time is not None:
        _event_time(left, "merge")  # the joined rows' event time is the left's: it must still be there
    right_time = right._source.node().event_time
    bounds: tuple[int, int] | None = None
    if within is None:
        if right_time is not None:
            raise FeatureError(
                f"{right._name} has an event time ({right_time}): its rows are versions or events, and merge() "
                f"would pair each row of {left._name} with all of them, the future ones too (the point-in-time "
                f"trap). Use merge_asof({right._name}, by=...) for the version as of each row's time, or "
                f"merge(..., within='10m') for the {right._name} rows near each row's time"
            )
    else:
        bounds = _bounds(within)
        _event_time(left, "merge(within=...)")
        _event_time(right, "merge(within=...)")
    left_node, right_node = relation(left), relation(right)
    left_names = set(left_node.schema.names)
    rename: dict[str, str] = {}
    for lk, rk in pairs:
        if lk == rk:  # one key column in the result, the left's (as in pandas)
            rename[rk] = HIDDEN + rk
    for f in right_node.schema:
        if f.name not in rename and f.name in left_names:
            rename[f.name] = _suffixed(f.name, suffix, left_names, right._name)
    if rename:
        right_node = nodes.Project(
            right_node, tuple((rename.get(f.name, f.name), Column(f.name, f.dtype)) for f in right_node.schema)
        )
    on_pairs = tuple((lk, rename.get(rk, rk)) for lk, rk in pairs)
    try:
        if bounds is None:
            joined: nodes.Node = nodes.Join(left_node, right_node, how, on_pairs, lookup=True)
        else:
            lt, rt = left._source.node().event_time, right_time
            assert lt is not None and rt is not None
            joined = nodes.Join(left_node, right_node, how, on_pairs, lt, rename.get(rt, rt), bounds[0], bounds[1])
    except RelplanError as e:
        raise FeatureError(f"merge of {left._name} with {right._name}: {e.message}") from None
    hidden = {n for n in joined.schema.names if n.startswith(HIDDEN)}
    if hidden:
        joined = nodes.Project(
            joined, tuple((f.name, Column(f.name, f.dtype)) for f in joined.schema if f.name not in hidden)
        )
    return DataFrame(left._source, None, None, joined, f"{left._name}+{right._name}")


def build_merge_asof(
    left: DataFrameAPI,
    right: DataFrameAPI,
    on: str | None,
    by: str | list[str] | None,
    left_by: str | list[str] | None,
    right_by: str | list[str] | None,
    how: str,
    tolerance: Duration | None,
    allow_exact_matches: bool,
    direction: str,
    suffixes: tuple[str, str],
) -> DataFrame:
    _check_how(how, "merge_asof", ("left", "inner"))
    _check_right(right, "merge_asof")
    if direction != "backward":
        raise FeatureError(
            f"merge_asof(direction={direction!r}): only 'backward' (the newest version at or before each row's "
            "time); any other direction reads versions from after the row's time, which a feature never sees"
        )
    if not isinstance(allow_exact_matches, bool):
        raise FeatureError(f"merge_asof(allow_exact_matches=...) takes True or False, got {allow_exact_matches!r}")
    suffix = _right_suffix(suffixes)
    left_time = _event_time(left, "merge_asof")
    right_time = _event_time(right, "merge_asof")
    if on is not None and on not in (left_time, right_time):
        raise FeatureError(
            f"merge_asof(on={on!r}): relplan matches on the event times ({left._name}.{left_time} and "
            f"{right._name}.{right_time}); pass the keys as by=..."
        )
    pairs = _key_pairs(left, right, by, left_by, right_by, "merge_asof", "by")
    lower = None if tolerance is None else parse_duration(tolerance, what="merge_asof tolerance")
    # At or before the row's time (or strictly before), and no older than the tolerance.
    frame = Frame(lower, lower_inclusive=lower is not None, upper=0, upper_inclusive=allow_exact_matches)
    left_node, right_node = relation(left), relation(right)
    left_names = set(left_node.schema.names)
    right_keys = {rk for _, rk in pairs}
    order = Column(right_time, T.Timestamp)
    calls = []
    version = right_time
    for f in right_node.schema:
        if f.name in right_keys:
            continue  # the left's key says it
        name = f.name if f.name not in left_names else _suffixed(f.name, suffix, left_names, right._name)
        if f.name == right_time:
            version = name
        calls.append(AggCall("last", Column(f.name, f.dtype), name, order=order))
    try:
        node: nodes.Node = nodes.AsOfJoin(
            left_node, right_node, tuple(pairs), left_time, right_time, ((frame, tuple(calls)),)
        )
    except RelplanError as e:
        raise FeatureError(f"merge_asof of {left._name} with {right._name}: {e.message}") from None
    if how == "inner":
        # The matched version's time is set exactly when a version matched.
        node = nodes.Filter(node, Unary("IS NOT NULL", Column(version, T.Timestamp)))
    return DataFrame(left._source, None, None, node, f"{left._name}+{right._name}")


def _check_how(how: Any, what: str, allowed: tuple[str, ...]) -> None:
    if how not in allowed:
        raise FeatureError(
            f"{what}(how={how!r}): relplan's joins keep the left frame's rows, so how is "
            + " or ".join(repr(h) for h in allowed)
        )


def _check_right(right: DataFrameAPI, what: str) -> None:
    if right._rows is not None:
        raise FeatureError(
            f"{what}() takes a source's frame on the right, not a merged one ({right._name}): merge the sources "
            "into the left one at a time"
        )


def _right_suffix(suffixes: Any) -> str:
    if not (isinstance(suffixes, tuple) and len(suffixes) == 2 and all(isinstance(s, str) for s in suffixes)):
        raise FeatureError(f"suffixes= takes two strings, e.g. ('', '_merchant'), got {suffixes!r}")
    if suffixes[0]:
        raise FeatureError(
            f"suffixes={suffixes!r}: the left frame keeps its column names (its event time and keys are what "
            "features read); give the right side a suffix, e.g. ('', '_merchant')"
        )
    if not suffixes[1]:
        raise FeatureError("suffixes= needs a non-empty right suffix for columns both sides have")
    return suffixes[1]


def _suffixed(name: str, suffix: str, taken: set[str], right: str) -> str:
    new = name + suffix
    if new in taken:
        raise SchemaError(f"column {name!r} of {right} clashes with the left frame's {name!r} and {new!r}; pass suffixes=('', '<other>')")
    return new


def _names(value: Any, what: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise FeatureError(f"{what} takes a column name or a list of names, got {value!r}")
    return names


def _key_pairs(
    left: DataFrameAPI, right: DataFrameAPI, both: Any, left_keys: Any, right_keys: Any, what: str, word: str
) -> list[tuple[str, str]]:
    if both is not None:
        if left_keys is not None or right_keys is not None:
            raise FeatureError(f"{what}() takes {word}= or left_{word}=/right_{word}=, not both")
        names = _names(both, f"{what}({word}=...)")
        pairs = [(n, n) for n in names]
    elif left_keys is not None and right_keys is not None:
        ls, rs = _names(left_keys, f"{what}(left_{word}=...)"), _names(right_keys, f"{what}(right_{word}=...)")
        if len(ls) != len(rs):
            raise FeatureError(f"{what}(): left_{word}={list(ls)} and right_{word}={list(rs)} differ in length")
        pairs = list(zip(ls, rs))
    else:
        raise FeatureError(f"{what}() needs the keys to join on: {word}='merchant_id', or left_{word}=... and right_{word}=...")
    for lk, rk in pairs:
        lt, rt = left._col(lk).expr.dtype, right._col(rk).expr.dtype
        if T.common_type(lt, rt) is None:
            raise TypeMismatchError(f"{what}(): key {left._name}.{lk} is {lt} but {right._name}.{rk} is {rt}")
    return pairs


def _event_time(frame: DataFrameAPI, what: str) -> str:
    """The frame's event-time column, which must still be among its columns unchanged."""
    time = frame._source.node().event_time
    if time is None:
        raise FeatureError(f"{what} needs an event time on both sides; {frame._name} has none")
    if frame._columns.get(time) != Column(time, T.Timestamp):
        raise FeatureError(f"{what}: {frame._name} no longer has its event time {time!r} as a column; keep it in the selection")
    return time


def _bounds(within: Any) -> tuple[int, int]:
    """(before, after) in microseconds from ``within="10m"`` or ``within=("10m", "5m")``."""
    if isinstance(within, tuple):
        if len(within) != 2:
            raise FeatureError(f"within= takes a duration or (before, after), got {within!r}")
        return _duration(within[0], "within before"), _duration(within[1], "within after")
    return _duration(within, "within"), 0


def _duration(value: Any, what: str) -> int:
    if value in (0, "0", "0s") or value == dt.timedelta(0):
        return 0
    return parse_duration(value, what=what)


def merge(left: DataFrameAPI, right: DataFrameAPI | type[Any], **options: Any) -> DataFrame:
    """``rp.merge(tx, merchants, on=...)``: pandas' spelling of ``tx.merge(merchants, on=...)``."""
    if not isinstance(left, DataFrameAPI):
        raise FeatureError(f"rp.merge() takes a source's frame first (a transformation parameter), got {left!r}")
    return left.merge(right, **options)


def merge_asof(left: DataFrameAPI, right: DataFrameAPI | type[Any], **options: Any) -> DataFrame:
    """``rp.merge_asof(tx, merchants, by=...)``: pandas' spelling of ``tx.merge_asof(merchants, by=...)``."""
    if not isinstance(left, DataFrameAPI):
        raise FeatureError(f"rp.merge_asof() takes a source's frame first (a transformation parameter), got {left!r}")
    return left.merge_asof(right, **options)
