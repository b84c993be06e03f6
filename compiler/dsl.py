"""The pandas-like feature DSL: DataFrame, Series and GroupBy over a typed source.

Nothing here runs on data: every operation builds IR expressions over the
source's columns, checked and typed as they are written, so a mistake is
reported at the user's line.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from relplan.compiler.location import user_facing, user_location
from relplan.compiler.windowspec import WindowSpec
from relplan.ir import types as T
from relplan.ir.aggregates import AGG_ALIASES, AGG_FUNCS, AggCall
from relplan.ir import nodes
from relplan.ir.errors import FeatureError, SchemaError, TypeMismatchError, WindowError
from relplan.ir.expr import (
    Binary,
    Case,
    Cast,
    Coalesce,
    Column,
    Expr,
    InList,
    Literal,
    Unary,
    and_all,
)
from relplan.ir.schema import unknown_column_message

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np

    from relplan.compiler.source import Source

    # What a column may be combined with or compared to: another column of the same
    # source, or a Python value (numpy scalars and pandas Timestamps are read too).
    Scalar: TypeAlias = int | float | str | bool | dt.date | dt.datetime | np.generic | None
    Operand: TypeAlias = "Series | ValueOps | Scalar"
    # What assign() takes per column: a value, or a function of the frame so far.
    Assigned: TypeAlias = "Operand | Callable[[DataFrame], Operand]"
    # A duration: "10m", a timedelta, or microseconds.
    Duration: TypeAlias = str | dt.timedelta | int


def _literal(value: Any, like: T.DataType | None = None) -> Literal:
    """A Python value as a typed literal; strings against timestamps/dates are parsed."""
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, str) and like in (T.Timestamp, T.Date):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TypeMismatchError(f"cannot read {value!r} as a {like}; write e.g. '2024-01-31 12:00:00'") from None
        return Literal(parsed.date() if like == T.Date else parsed)
    if like == T.Timestamp and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return Literal(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc))
    if isinstance(value, float) and value != value:  # noqa: PLR0124 - NaN
        return Literal(None, like or T.Float64)
    return Literal(value)


class Series:
    """A column expression of a DataFrame (``tx.amt``, ``tx.amt * 2``, ``tx.status == "x"``)."""

    __slots__ = ("expr", "name", "refs", "source")
    __hash__ = None  # type: ignore[assignment]  # == builds an expression, as in pandas

    def __init__(self, expr: Expr, source: str, name: str | None = None, refs: tuple[Any, ...] = ()) -> None:
        self.expr = expr
        self.source = source
        self.name = name
        # What a derived feature's expression reads (features, request fields): compiler/derived.py.
        self.refs = refs

    def _other(self, other: Operand) -> Expr:
        other = as_series(other)
        if isinstance(other, Series):
            if other.source != self.source:
                if SCORED_ROW in (self.source, other.source):
                    raise SchemaError(
                        f"cannot combine {self.expr.sql()} ({_origin_text(self.source)}) with {other.expr.sql()} "
                        f"({_origin_text(other.source)}): rp.derived(...) combines features and request values; "
                        "a source's columns are read inside a transformation"
                    )
                raise SchemaError(
                    f"cannot combine a column of {self.source} with a column of {other.source}; "
                    "a transformation's expressions must come from one source"
                )
            return other.expr
        if isinstance(other, DataFrame):
            raise TypeMismatchError("cannot combine a column with a whole DataFrame; select a column first")
        return _literal(other, self.expr.dtype)

    def _make(self, expr: Expr, *others: Any) -> Series:
        refs = self.refs
        for o in others:
            o = as_series(o)
            if isinstance(o, Series) and o.refs:
                refs = tuple(dict.fromkeys(refs + o.refs))
        return Series(expr, self.source, refs=refs)

    @user_facing
    def _binary(self, op: str, other: Operand, reflected: bool = False) -> Series:
        o = self._other(other)
        return self._make(Binary(op, o, self.expr) if reflected else Binary(op, self.expr, o), other)

    def __add__(self, o: Operand) -> Series: return self._binary("+", o)
    def __radd__(self, o: Operand) -> Series: return self._binary("+", o, True)
    def __sub__(self, o: Operand) -> Series: return self._binary("-", o)
    def __rsub__(self, o: Operand) -> Series: return self._binary("-", o, True)
    def __mul__(self, o: Operand) -> Series: return self._binary("*", o)
    def __rmul__(self, o: Operand) -> Series: return self._binary("*", o, True)
    def __truediv__(self, o: Operand) -> Series: return self._binary("/", o)
    def __rtruediv__(self, o: Operand) -> Series: return self._binary("/", o, True)
    def __floordiv__(self, o: Operand) -> Series: return self._binary("//", o)
    def __rfloordiv__(self, o: Operand) -> Series: return self._binary("//", o, True)
    def __mod__(self, o: Operand) -> Series: return self._binary("%", o)
    def __rmod__(self, o: Operand) -> Series: return self._binary("%", o, True)
    def __eq__(self, o: Operand) -> Series: return self._binary("=", o)  # type: ignore[override]
    def __ne__(self, o: Operand) -> Series: return self._binary("!=", o)  # type: ignore[override]
    def __lt__(self, o: Operand) -> Series: return self._binary("<", o)
    def __le__(self, o: Operand) -> Series: return self._binary("<=", o)
    def __gt__(self, o: Operand) -> Series: return self._binary(">", o)
    def __ge__(self, o: Operand) -> Series: return self._binary(">=", o)
    def __and__(self, o: Operand) -> Series: return self._binary("AND", o)
    def __rand__(self, o: Operand) -> Series: return self._binary("AND", o, True)
    def __or__(self, o: Operand) -> Series: return self._binary("OR", o)
    def __ror__(self, o: Operand) -> Series: return self._binary("OR", o, True)

    @user_facing
    def __invert__(self) -> Series:
        return self._make(Unary("NOT", self.expr))

    @user_facing
    def __neg__(self) -> Series:
        return self._make(Unary("NEG", self.expr))

    def __bool__(self) -> bool:
        raise TypeMismatchError(
            f"the truth value of the column expression {self.expr.sql()} is ambiguous: "
            "use & | ~ instead of and / or / not, and parenthesize comparisons"
        ).at(user_location())

    @user_facing
    def isin(self, values: Iterable[Scalar]) -> Series:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeMismatchError(f"isin() takes a list of values, got {values!r}")
        return self._make(InList(self.expr, tuple(_literal(v, self.expr.dtype) for v in values)))

    @user_facing
    def isnull(self) -> Series:
        return self._make(Unary("IS NULL", self.expr))

    @user_facing
    def notnull(self) -> Series:
        return self._make(Unary("IS NOT NULL", self.expr))

    isna = isnull
    notna = notnull

    @user_facing
    def between(
        self, left: Operand, right: Operand, inclusive: typing.Literal["both", "neither", "left", "right"] = "both"
    ) -> Series:
        """``left <= x <= right`` (pandas' ``inclusive``: both, neither, left, right)."""
        if inclusive not in ("both", "neither", "left", "right"):
            raise TypeMismatchError(f"between(inclusive={inclusive!r}): use both, neither, left or right")
        lo = ">=" if inclusive in ("both", "left") else ">"
        hi = "<=" if inclusive in ("both", "right") else "<"
        return self._make(
            Binary("AND", Binary(lo, self.expr, self._other(left)), Binary(hi, self.expr, self._other(right))), left, right
        )

    @user_facing
    def fillna(self, value: Operand) -> Series:
        return self._make(Coalesce((self.expr, self._other(value))), value)

    @user_facing
    def astype(self, dtype: T.DataType | type[Series]) -> Series:
        """The column cast to ``dtype`` (``rp.Float64``, ...)."""
        if not isinstance(dtype, T.DataType):
            raise TypeMismatchError(f"astype() takes a relplan type such as rp.Float64, got {dtype!r}")
        return self._make(Cast(self.expr, dtype))

    def __repr__(self) -> str:
        return f"<Series {self.expr.sql()} of {self.source}>"


# The Series source of a derived feature's expression: the row being scored, which
# holds every feature's value and the request's values (compiler/derived.py).
SCORED_ROW = "the scored row"


def _origin_text(source: str) -> str:
    return "a feature or request value" if source == SCORED_ROW else f"a column of {source}"


def as_series(value: Any) -> Any:
    """A feature (or derived feature) as the Series of its value; anything else as it is."""
    to_series = getattr(value, "_as_series", None)
    return to_series() if to_series is not None and not isinstance(value, type) else value


@user_facing
def coalesce(*values: Any) -> Series:
    """The first non-NULL of ``values`` (columns, features, Python values), as SQL's COALESCE."""
    series = [v for v in map(as_series, values) if isinstance(v, Series)]
    if not series:
        raise TypeMismatchError("rp.coalesce() needs at least one column or feature among its arguments")
    first = series[0]
    exprs = tuple(v.expr if v is first else first._other(v) for v in map(as_series, values))
    return first._make(Coalesce(exprs), *values)


@user_facing
def where(condition: Any, then: Any, otherwise: Any = None) -> Series:
    """``then`` where ``condition`` is TRUE, else ``otherwise`` (NULL by default): SQL's
    ``CASE WHEN condition THEN then ELSE otherwise END``, numpy's ``where``."""
    cond = as_series(condition)
    if not isinstance(cond, Series) or cond.expr.dtype != T.Bool:
        raise TypeMismatchError(f"rp.where() needs a boolean condition such as tx.amt > 100, got {condition!r}")
    values = [as_series(v) for v in (then, otherwise)]
    like = next((v.expr.dtype for v in values if isinstance(v, Series)), None)
    exprs = [cond._other(v) if isinstance(v, Series) else _literal(v, like) for v in values]
    return cond._make(Case(((cond.expr, exprs[0]),), exprs[1]), then, otherwise)


class ValueOps:
    """Arithmetic and comparisons on a feature's value, for rp.derived(...):
    ``amount / avg_amount_30d``, ``(f - g) / h``, ``f > 3``. ``==`` and ``!=`` stay the
    feature's own equality: write ``f.value == 3``."""

    __slots__ = ()

    def _as_series(self) -> Series:
        raise NotImplementedError

    @property
    def value(self) -> Series:
        """The feature's value as an expression of the scored row."""
        return self._as_series()

    def __add__(self, o: Operand) -> Series: return self._as_series() + o
    def __radd__(self, o: Operand) -> Series: return o + self._as_series()
    def __sub__(self, o: Operand) -> Series: return self._as_series() - o
    def __rsub__(self, o: Operand) -> Series: return o - self._as_series()
    def __mul__(self, o: Operand) -> Series: return self._as_series() * o
    def __rmul__(self, o: Operand) -> Series: return o * self._as_series()
    def __truediv__(self, o: Operand) -> Series: return self._as_series() / o
    def __rtruediv__(self, o: Operand) -> Series: return o / self._as_series()
    def __floordiv__(self, o: Operand) -> Series: return self._as_series() // o
    def __mod__(self, o: Operand) -> Series: return self._as_series() % o
    def __neg__(self) -> Series: return -self._as_series()
    def __lt__(self, o: Operand) -> Series: return self._as_series() < o
    def __le__(self, o: Operand) -> Series: return self._as_series() <= o
    def __gt__(self, o: Operand) -> Series: return self._as_series() > o
    def __ge__(self, o: Operand) -> Series: return self._as_series() >= o

    def isnull(self) -> Series: return self._as_series().isnull()
    def notnull(self) -> Series: return self._as_series().notnull()
    def fillna(self, value: Operand) -> Series: return self._as_series().fillna(value)
    def astype(self, dtype: T.DataType | type[Series]) -> Series: return self._as_series().astype(dtype)


class DataFrameAPI:
    """The DataFrame API without column attributes: what a type checker sees a source
    class (``class Transactions(rp.Source)``) have besides the columns it declares, so
    that ``tx.amt`` is checked against the declaration while ``tx.groupby(...)``,
    ``tx[mask]`` and ``tx.assign(...)`` are typed. At run time every frame is a
    :class:`DataFrame`."""

    __slots__ = ("_columns", "_mask", "_name", "_rows", "_source")

    def __init__(
        self,
        source: type[Source],
        columns: dict[str, Expr] | None = None,
        mask: Expr | None = None,
        rows: nodes.Node | None = None,
        name: str | None = None,
    ):
        self._source = source
        # ``rows``: the relation a merge made (None: the source's own rows). Its columns
        # are what the frame's expressions read; its event time is the source's.
        self._rows = rows
        schema = rows.schema if rows is not None else source.node().columns
        self._columns: dict[str, Expr] = columns if columns is not None else {f.name: Column(f.name, f.dtype) for f in schema}
        self._mask = mask
        self._name = name or source.source_name

    def _derive(self, columns: dict[str, Expr], mask: Expr | None) -> DataFrame:
        return DataFrame(self._source, columns, mask, self._rows, self._name)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def source(self) -> type[Source]:
        return self._source

    def _col(self, name: str) -> Series:
        if not isinstance(name, str):
            raise SchemaError(f"column names are strings, got {name!r}")
        if name not in self._columns:
            raise SchemaError(unknown_column_message(name, self._columns, f"in {self._name}"))
        return Series(self._columns[name], self._name, name)

    @overload
    def __getitem__(self, key: str) -> Series: ...
    @overload
    def __getitem__(self, key: Series | list[str] | tuple[str, ...]) -> DataFrame: ...

    @user_facing
    def __getitem__(self, key: str | Series | list[str] | tuple[str, ...]) -> Series | DataFrame:
        """A column (``tx["amt"]``), the rows a boolean mask keeps (``tx[tx.amt > 100]``)
        or a selection of columns (``tx[["account_id", "amt"]]``)."""
        if isinstance(key, str):
            return self._col(key)
        if isinstance(key, Series):
            if key.source != self._name:
                raise SchemaError(f"a mask over {key.source} cannot filter {self._name}")
            if key.expr.dtype != T.Bool:
                raise TypeMismatchError(
                    f"a row filter must be boolean, but {key.expr.sql()} is {key.expr.dtype}; "
                    "compare it, e.g. tx[tx.amt > 100]"
                )
            return self._derive(self._columns, and_all([m for m in (self._mask, key.expr) if m is not None]))
        if isinstance(key, (list, tuple)):
            cols = {}
            for k in key:
                cols[k] = self._col(k).expr
            return self._derive(cols, self._mask)
        raise SchemaError(f"cannot index a DataFrame with {key!r}; use a column name, a list of names or a mask")

    @user_facing
    def assign(self, **columns: Assigned) -> DataFrame:
        """New or replaced columns: ``tx.assign(amt_usd=tx.amt * 1.1)``."""
        cols = dict(self._columns)
        for name, value in columns.items():
            if callable(value) and not isinstance(value, Series):
                value = value(self._derive(cols, self._mask))
            if isinstance(value, Series):
                if value.source != self._name:
                    raise SchemaError(f"assign({name}=...) uses a column of {value.source}, not {self._name}")
                cols[name] = value.expr
            else:
                cols[name] = _literal(value)
        return self._derive(cols, self._mask)

    @user_facing
    def groupby(self, by: str | list[str] | tuple[str, ...]) -> GroupBy:
        """Group by one key column or several: ``tx.groupby("account_id")``, ``tx.groupby(["cc_num", "merchant"])``."""
        if isinstance(by, str):
            keys: tuple[str, ...] = (by,)
        elif isinstance(by, (list, tuple)):
            keys = tuple(by)
        else:
            raise SchemaError(f"groupby() takes a column name or a list of names, got {by!r}")
        if not keys:
            raise SchemaError("groupby() needs at least one key column")
        for k in keys:
            self._col(k)
        return GroupBy(self, keys)

    # ---- enrichment joins (the IR: compiler/joins.py) ------------------------------------
    @user_facing
    def merge(
        self,
        right: DataFrameAPI | type[Source],
        on: str | list[str] | None = None,
        *,
        left_on: str | list[str] | None = None,
        right_on: str | list[str] | None = None,
        how: typing.Literal["inner", "left"] = "inner",
        within: Duration | tuple[Duration, Duration] | None = None,
        suffixes: tuple[str, str] = ("", "_right"),
    ) -> DataFrame:
        """Join ``right`` on equal keys, as pandas' ``merge``.

        Without ``within``, ``right`` is a **lookup table** (a source without event
        time): at most one row per key, checked before each run (a duplicate is a
        ``DataError``, never a multiplied row). With ``within``, an **interval join** of
        two event sources: ``within="10m"`` pairs each row with the right rows of its
        key from 10 minutes before it up to its time, ``within=("10m", "5m")`` from 10
        minutes before to 5 minutes after, both ends inclusive. A source whose rows
        are versions (it has an event time) is joined as of each row's time with
        :meth:`merge_asof`. ``how``: "inner" (rows with a match) or "left" (every row;
        NULLs where nothing matches). Right columns named like left ones get the
        right suffix; a key named the same on both sides appears once."""
        from relplan.compiler.joins import build_merge

        return build_merge(self, _frame_of(right, "merge"), on, left_on, right_on, how, within, suffixes)

    @user_facing
    def merge_asof(
        self,
        right: DataFrameAPI | type[Source],
        on: str | None = None,
        *,
        by: str | list[str] | None = None,
        left_by: str | list[str] | None = None,
        right_by: str | list[str] | None = None,
        how: typing.Literal["left", "inner"] = "left",
        tolerance: Duration | None = None,
        allow_exact_matches: bool = True,
        direction: str = "backward",
        suffixes: tuple[str, str] = ("", "_right"),
    ) -> DataFrame:
        """Each row enriched with ``right``'s values **as of the row's event time**, as
        pandas' ``merge_asof`` (``on`` is the event time of both sides; ``by`` the keys).

        Every column of ``right`` (its keys aside) is ``latest()`` of that column over
        the right rows of the row's key at or before its time: the newest non-NULL
        value, ties on time settled by the largest value; NULL where there is none
        (``how="left"``, the default) or the row dropped (``how="inner"``).
        ``tolerance``: only versions at most this old. ``allow_exact_matches=False``:
        only versions strictly before the row. Only ``direction="backward"``: a
        forward match would read the future."""
        from relplan.compiler.joins import build_merge_asof

        return build_merge_asof(
            self, _frame_of(right, "merge_asof"), on, by, left_by, right_by, how, tolerance, allow_exact_matches,
            direction, suffixes,
        )

    def __repr__(self) -> str:
        return f"<DataFrame {self._name} [{', '.join(self._columns)}]>"


def _frame_of(value: Any, what: str) -> DataFrameAPI:
    """The right side of a merge: a frame, or a source class (all of its rows)."""
    from relplan.compiler.source import Source

    if isinstance(value, DataFrameAPI):
        return value
    if isinstance(value, type) and issubclass(value, Source):
        return DataFrame(value)
    raise FeatureError(f"{what}() takes a source's frame (a transformation parameter) or a source class, got {value!r}")


class DataFrame(DataFrameAPI):
    """A source's rows as the DSL sees them: columns (source or assigned) and a row mask."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Series:
        if name.startswith("_"):
            raise AttributeError(name)
        with_loc = user_location()
        try:
            return self._col(name)
        except SchemaError as e:
            raise e.at(with_loc) from None


@dataclass(frozen=True)
class FeatureBody:
    """What a transformation returns: a windowed aggregate of one source, still unnamed."""

    source: type[Source]
    keys: tuple[tuple[str, Expr], ...]
    spec: WindowSpec
    mask: Expr | None
    aggs: tuple[tuple[str | None, AggCall], ...]  # (suffix for .agg names, call)
    location: str | None
    # The rows a merge made (joins over the source and others), or None: the source's
    # own rows. The keys, mask and aggregates read its columns; its event time is the source's.
    rows: nodes.Node | None = None

    def input_node(self) -> nodes.Node:
        """The rows the feature aggregates: the merged relation, or the source."""
        return self.rows if self.rows is not None else self.source.node()


class GroupBy:
    """``df.groupby(keys)[col].window(spec).<agg>()``; window and column may come in either order."""

    __slots__ = ("_column", "_frame", "_keys", "_spec")

    def __init__(self, frame: DataFrameAPI, keys: tuple[str, ...], column: str | None = None, spec: WindowSpec | None = None):
        self._frame = frame
        self._keys = keys
        self._column = column
        self._spec = spec

    @user_facing
    def __getitem__(self, column: str) -> GroupBy:
        if isinstance(column, (list, tuple)):
            raise SchemaError("select one column to aggregate, or use .agg(name=(column, 'func'), ...)")
        self._frame._col(column)
        return GroupBy(self._frame, self._keys, column, self._spec)

    def __getattr__(self, name: str) -> GroupBy:
        if name.startswith("_") or name in AGG_FUNCS or name in AGG_ALIASES:
            raise AttributeError(name)
        return self[name]

    @user_facing
    def window(self, spec: WindowSpec) -> GroupBy:
        if not isinstance(spec, WindowSpec):
            raise WindowError(
                f"window() takes rp.sliding(...), rp.tumbling(...), rp.hopping(...) or rp.lifetime(), got {spec!r}"
            )
        src = self._frame.source.node()
        if src.event_time is None:
            raise WindowError(
                f"source {src.name} has no event-time column, so it cannot be windowed; "
                "declare one with `ts: rp.Timestamp = rp.event_time()`"
            )
        return GroupBy(self._frame, self._keys, self._column, spec)

    def _call(self, func: str, column: str | None) -> AggCall:
        func = AGG_ALIASES.get(func, func)
        if func not in AGG_FUNCS:
            raise FeatureError(f"unknown aggregate {func!r}; use one of {', '.join(AGG_FUNCS)}")
        frame = self._frame
        arg = frame._col(column).expr if column is not None else None
        if arg is None and func != "count":
            raise FeatureError(f"{func}() needs a column: write .groupby(...)[column].{func}()")
        src = frame.source.node()
        order = Column(src.event_time, T.Timestamp) if func in ("first", "last") and src.event_time else None
        try:
            return AggCall(func, arg, "_", order=order)
        except TypeMismatchError as e:
            raise TypeMismatchError(f"{e.message} (column {column!r} of {src.name})") from None

    def _body(self, aggs: tuple[tuple[str | None, AggCall], ...]) -> FeatureBody:
        if self._spec is None:
            raise WindowError(
                "call .window(spec) before aggregating, e.g. .window(rp.sliding('1h')) or .window(rp.lifetime())"
            )
        frame = self._frame
        keys = tuple((k, frame._col(k).expr) for k in self._keys)
        for k, e in keys:
            if not e.dtype.is_orderable and e.dtype != T.Bool:
                raise TypeMismatchError(f"groupby key {k!r} has type {e.dtype}, which cannot be grouped")
        return FeatureBody(frame.source, keys, self._spec, frame._mask, aggs, user_location(), frame._rows)

    @user_facing
    def agg(self, **named: tuple[str, str] | str) -> FeatureBody:
        """Several aggregates at once: ``.agg(total=("amt", "sum"), n="count")``."""
        if not named:
            raise FeatureError("agg() needs at least one name=(column, 'func')")
        calls = []
        for name, spec in named.items():
            if isinstance(spec, str):
                col, func = (self._column, spec)
            elif isinstance(spec, tuple) and len(spec) == 2:
                col, func = spec
            else:
                raise FeatureError(f"agg({name}=...) takes (column, 'func') or 'func', got {spec!r}")
            calls.append((name, self._call(func, col)))
        return self._body(tuple(calls))

    def _single(self, func: str) -> FeatureBody:
        return self._body(((None, self._call(func, self._column)),))

    @user_facing
    def count(self) -> FeatureBody:
        """Rows in the window (non-null values of the selected column, if one is selected)."""
        return self._single("count")

    @user_facing
    def sum(self) -> FeatureBody: return self._single("sum")

    @user_facing
    def mean(self) -> FeatureBody: return self._single("mean")

    @user_facing
    def min(self) -> FeatureBody: return self._single("min")

    @user_facing
    def max(self) -> FeatureBody: return self._single("max")

    @user_facing
    def count_distinct(self) -> FeatureBody: return self._single("count_distinct")

    @user_facing
    def nunique(self) -> FeatureBody: return self._single("count_distinct")

    @user_facing
    def std(self) -> FeatureBody: return self._single("std")

    @user_facing
    def var(self) -> FeatureBody: return self._single("var")

    @user_facing
    def first(self) -> FeatureBody: return self._single("first")

    @user_facing
    def last(self) -> FeatureBody: return self._single("last")


if TYPE_CHECKING:
    # The column types as a type checker sees them. At run time rp.Int64, rp.Float64, ...
    # are the DataType values a source's annotations declare (relplan.ir.types); to a
    # checker they are these classes, so that ``amt: rp.Float64`` in a source declares
    # ``tx.amt`` a column (a Series) in the transformations over it.

    class Int64Column(Series):
        """A column of rp.Int64 (64-bit integers)."""

    class Float64Column(Series):
        """A column of rp.Float64 (double precision)."""

    class StringColumn(Series):
        """A column of rp.String."""

    class BoolColumn(Series):
        """A column of rp.Bool."""

    class TimestampColumn(Series):
        """A column of rp.Timestamp (microseconds, UTC)."""

    class DateColumn(Series):
        """A column of rp.Date."""
