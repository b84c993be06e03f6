"""Hypothesis strategies for engine-vs-reference tests: typed rows and DSL features.

Shared by every engine's semantics tests (DuckDB now; Spark and Flink later):
each feature is drawn as a plain-data ``FeatureSpec`` that builds both the relplan
feature (through the DSL, as a user writes it) and its reference computation
(tests/reference.py), from hand-written twins of each mask and derived column.

The data aims at the edges: few keys (groups collide), NULLs in every column but
the event time, NaN (read as NULL), duplicate timestamps, and times on a grid of
30 s steps plus or minus one microsecond, so events fall exactly on, just inside
and just outside window edges, around and before the Unix epoch.

Numbers are chosen so that every sum is exact in binary floating point whatever the
order of additions (dyadic floats and ints well inside 2**53, scaled by a power of
two per example for magnitude): an engine may add in any order, and the comparison
should test the semantics, not one rounding order. Variances are kept
well-conditioned for the same reason.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

import relplan as rp
import reference as ref

UTC = dt.timezone.utc
US = 1
SECOND = 1_000_000 * US
STEP = 30 * SECOND  # the time grid; every window size below is a multiple of it (or 1us)


class Events(rp.Source):
    """The one source of the semantics tests: a column of each type."""

    k: rp.Int64
    v: rp.Int64
    x: rp.Float64
    s: rp.String
    b: rp.Bool
    ts: rp.Timestamp = rp.event_time()


COLUMN_TYPES = {"k": "Int64", "v": "Int64", "x": "Float64", "s": "String", "b": "Bool", "ts": "Timestamp"}
SOURCE_COLUMNS = tuple(COLUMN_TYPES)
Row = dict[str, Any]


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=Events.to_arrow_schema())


# ---- data -----------------------------------------------------------------------

# Bases are multiples of a day (so of every window size): epoch-aligned edges land on
# the grid. The epoch itself puts events on both sides of it.
BASES_US = (0, -86_400 * SECOND, ref.to_us(dt.datetime(2024, 1, 1, tzinfo=UTC)))


@st.composite
def timestamps(draw: st.DrawFn, base_us: int, first: int, steps: int, unit_us: int = 1) -> dt.datetime:
    """One of ``steps`` grid points from base + first * STEP (+-1 unit); now and then
    anywhere near. Times are whole ``unit_us`` (Flink streaming: milliseconds)."""
    if draw(st.integers(0, 9)) == 0:
        us = base_us + draw(st.integers(first * STEP // unit_us, (first + steps) * STEP // unit_us)) * unit_us
    else:
        step = draw(st.integers(first, first + steps - 1))
        us = base_us + step * STEP + draw(st.sampled_from((0, 0, 0, -1, 1))) * unit_us
    return ref.from_us(us)


STRINGS = ("", "a", "b", "B", "é", "日本", "\U0001f600", "a b", "'", '"')

keys_ = st.one_of(st.none(), st.sampled_from((0, 1, 2)), st.sampled_from((-1, 7)))
small_ints = st.integers(-5, 5)
ints = st.one_of(small_ints, small_ints, st.integers(-1000, 1000))
floats = st.one_of(
    st.integers(-64, 64).map(lambda i: i / 4),
    st.integers(-4096, 4096).map(lambda i: i / 16),
    st.sampled_from((0.0, -0.0, 0.5, -0.5, 1.0, -1.0)),
)
strings = st.one_of(st.sampled_from(STRINGS), st.text(max_size=3))
bools = st.booleans()


@st.composite
def event_rows(
    draw: st.DrawFn, max_rows: int = 24, unit_us: int = 1, bases: tuple[int, ...] = BASES_US
) -> list[dict[str, Any]]:
    """Rows of ``Events``; possibly none; times in whole ``unit_us`` around one of ``bases``."""
    base = draw(st.sampled_from(bases))
    int_scale = draw(st.sampled_from((1, 2**32)))  # extreme magnitudes, exact sums
    float_scale = draw(st.sampled_from((1.0, 2.0**36, 2.0**-12)))
    null_rate = draw(st.sampled_from((0, 5, 20, 50)))  # percent
    first, steps = draw(st.sampled_from((-6, -1))), draw(st.sampled_from((3, 8, 23)))  # few: many ties

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        if null_rate and draw(st.integers(0, 99)) < null_rate:
            return None
        return draw(strategy)

    n = draw(st.integers(0, max_rows))
    rows = []
    for _ in range(n):
        v = maybe(ints)
        x = maybe(st.one_of(floats, floats, floats, st.just(math.nan)))
        rows.append({
            "k": draw(keys_),
            "v": None if v is None else v * int_scale,
            "x": None if x is None else x * float_scale,
            "s": maybe(strings),
            "b": maybe(bools),
            "ts": draw(timestamps(base, first, steps, unit_us)),
        })
    if rows and draw(st.booleans()):  # exact duplicates of a row: same key, same time
        rows += [dict(r) for r in draw(st.lists(st.sampled_from(rows), max_size=3))]
    return rows


# ---- features -------------------------------------------------------------------

# Derived columns, assigned before the mask and the groupby: (DSL, reference).
DERIVED: dict[str, tuple[Callable[[Any], Any], Callable[[dict[str, Any]], Any], str]] = {
    "kk": (lambda e: e.k % 3, lambda r: ref.mod(r["k"], 3), "Int64"),
    "fd": (lambda e: e.v // e.k, lambda r: ref.floordiv(r["v"], r["k"]), "Int64"),
    "md": (lambda e: e.v % e.k, lambda r: ref.mod(r["v"], r["k"]), "Int64"),
    "neg": (lambda e: -e.v // 4, lambda r: ref.floordiv(ref.mul(r["v"], -1), 4), "Int64"),
    "lin": (lambda e: e.v * 2 - e.k, lambda r: ref.sub(ref.mul(r["v"], 2), r["k"]), "Int64"),
    "iv": (lambda e: e.v / 4, lambda r: ref.truediv(r["v"], 4), "Float64"),
    "ratio": (lambda e: e.x / e.v, lambda r: ref.truediv(r["x"], r["v"]), "Float64"),
}

# Row masks: (DSL over the assigned frame, reference three-valued predicate).
MASKS: dict[str, tuple[Callable[[Any], Any], Callable[[dict[str, Any]], bool | None]] | None] = {
    "none": None,
    "b": (lambda e: e.b, lambda r: r["b"]),
    "not_b": (lambda e: ~e.b, lambda r: ref.not3(r["b"])),
    "v_pos": (lambda e: e.v > 0, lambda r: ref.cmp3(">", r["v"], 0)),
    "s_isin": (lambda e: e.s.isin(["a", "é", ""]), lambda r: ref.isin3(r["s"], ("a", "é", ""))),
    "s_gt": (lambda e: e.s > "b", lambda r: ref.cmp3(">", r["s"], "b")),
    "x_between": (lambda e: e.x.between(-1, 2), lambda r: ref.between3(r["x"], -1, 2)),
    "x_isnull": (lambda e: e.x.isnull(), lambda r: ref.isnull(r["x"])),
    "b_or_v_even": (
        lambda e: e.b | (e.v % 2 == 0),
        lambda r: ref.or3(r["b"], ref.cmp3("=", ref.mod(r["v"], 2), 0)),
    ),
    "v_nonneg_and_s": (
        lambda e: (e.v >= 0) & e.s.notnull(),
        lambda r: ref.and3(ref.cmp3(">=", r["v"], 0), not ref.isnull(r["s"])),
    ),
    # nested connectives: NOT over AND, OR under AND (precedence must survive lowering)
    "not_b_and_v_pos": (
        lambda e: ~(e.b & (e.v > 0)),
        lambda r: ref.not3(ref.and3(r["b"], ref.cmp3(">", r["v"], 0))),
    ),
    "b_or_x_null_and_v_not_1": (
        lambda e: (e.b | e.x.isnull()) & (e.v != 1),
        lambda r: ref.and3(ref.or3(r["b"], ref.isnull(r["x"])), ref.cmp3("!=", r["v"], 1)),
    ),
    "not_ratio_small": (
        lambda e: ~(e.ratio < 0.5),
        lambda r: ref.not3(ref.cmp3("<", ref.truediv(r["x"], r["v"]), 0.5)),
    ),
    "fd_neg": (lambda e: e.fd < 0, lambda r: ref.cmp3("<", ref.floordiv(r["v"], r["k"]), 0)),
}

# Groupings: the key columns (source or derived) the feature groups by.
KEYS = (("k",), ("k",), ("kk",), ("k", "s"), ("s",), ("b",), ("x",))  # x: -0.0, 0.0 one key

# Value columns each aggregate may take (None: count rows). Sums, means and
# variances only over columns whose sums stay exact (see the module docstring).
COLUMNS_FOR = {
    "count": (None, "v", "x", "s", "b", "ts", "ratio"),
    "count_distinct": ("v", "x", "s", "b", "ts", "kk", "ratio"),
    "sum": ("v", "x", "lin", "fd", "md", "iv"),
    "mean": ("v", "x", "lin", "neg", "iv"),
    "var": ("v", "x", "lin", "md"),
    "std": ("v", "x", "neg", "iv"),
    "min": ("v", "x", "s", "ts", "ratio", "fd"),
    "max": ("v", "x", "s", "ts", "ratio", "md"),
    "first": ("v", "x", "s", "b", "ratio", "md"),
    "last": ("v", "x", "s", "b", "iv", "fd"),
}

SLIDING = ("1us", "30s", "1m", "2m", "150s", "5m")
TUMBLING = ("30s", "1m", "2m", "3m", "1h")
HOPPING = (("1m", "30s"), ("2m", "1m"), ("3m", "1m"), ("3m", "2m"), ("5m", "2m"), ("1m", "1m"))


def window_spec(w: tuple[str, ...]) -> rp.WindowSpec:
    kind, *args = w
    make = {"sliding": rp.sliding, "lifetime": rp.lifetime, "tumbling": rp.tumbling, "hopping": rp.hopping}
    return make[kind](*args)  # type: ignore[operator]


def column_type(name: str | None) -> str | None:
    if name is None:
        return None
    return COLUMN_TYPES[name] if name in COLUMN_TYPES else DERIVED[name][2]


def value_of(name: str | None) -> Callable[[dict[str, Any]], Any] | None:
    if name is None:
        return None
    return ref.col(name) if name in COLUMN_TYPES else DERIVED[name][1]


@dataclass(frozen=True)
class FeatureSpec:
    """A feature as plain data: keys, mask, window and aggregates.

    ``aggs`` holds (label, func, column): label None is a single aggregate called as a
    method (``.sum()``); otherwise the aggregates go through ``.agg(label=(column, func))``.
    """

    keys: tuple[str, ...]
    mask: str
    window: tuple[str, ...]  # ("sliding", "1m"), ("lifetime",), ("tumbling", "1m"), ("hopping", "2m", "1m")
    aggs: tuple[tuple[str | None, str, str | None], ...]

    @property
    def per_event(self) -> bool:
        return self.window[0] in ("sliding", "lifetime")

    def columns(self, name: str) -> tuple[str, ...]:
        return tuple(name if label is None else f"{name}_{label}" for label, _, _ in self.aggs)

    def feature(self, name: str) -> rp.Feature:
        """The relplan feature, written with the DSL."""
        spec = self

        def body(e: Events, wspec: rp.WindowSpec) -> Any:
            frame = e.assign(**{n: dsl for n, (dsl, _, _) in DERIVED.items()})
            mask = MASKS[spec.mask]
            if mask is not None:
                frame = frame[mask[0](frame)]
            g = frame.groupby(list(spec.keys) if len(spec.keys) > 1 else spec.keys[0]).window(wspec)
            (label, func, column), *_ = spec.aggs
            if label is None:
                if column is not None:
                    g = g[column]
                return getattr(g, func)()
            return g.agg(**{lb: ("count" if c is None else (c, f)) for lb, f, c in spec.aggs})

        return rp.transformation(body, name="t")(window=window_spec(self.window), name=name)

    def reference(self, rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        """Its value by tests/reference.py: per event (aligned with rows) or per window."""
        keys = {k: value_of(k) for k in self.keys}
        mask = MASKS[self.mask]
        aggs = [ref.Agg(c, f, value_of(col)) for c, (_, f, col) in zip(self.columns(name), self.aggs)]
        kind = self.window[0]
        if kind in ("sliding", "lifetime"):
            size = None if kind == "lifetime" else window_spec(self.window).size
            return ref.per_event(rows, keys=keys, mask=mask and mask[1], aggs=aggs, size_us=size)
        w = window_spec(self.window)
        assert w.size is not None and w.slide is not None
        return ref.per_window(
            rows, keys=keys, mask=mask and mask[1], aggs=aggs, size_us=w.size, slide_us=w.slide
        )

    def at_points(self, rows: list[dict[str, Any]], spine: list[dict[str, Any]], name: str, inclusive: bool) -> list[dict[str, Any]]:
        """Its value at every spine row (tests/reference.py at_points), aligned with ``spine``."""
        assert self.per_event
        keys = {k: value_of(k) for k in self.keys}
        mask = MASKS[self.mask]
        aggs = [ref.Agg(c, f, value_of(col)) for c, (_, f, col) in zip(self.columns(name), self.aggs)]
        size = None if self.window[0] == "lifetime" else window_spec(self.window).size
        return ref.at_points(rows, spine, keys=keys, mask=mask and mask[1], aggs=aggs, size_us=size, inclusive=inclusive)

    def result_types(self, name: str) -> dict[str, str]:
        return {
            c: ref.result_type(f, column_type(col)) for c, (_, f, col) in zip(self.columns(name), self.aggs)
        }


windows = st.one_of(
    st.sampled_from(SLIDING).map(lambda s: ("sliding", s)),
    st.just(("lifetime",)),
    st.sampled_from(TUMBLING).map(lambda s: ("tumbling", s)),
    st.sampled_from(HOPPING).map(lambda h: ("hopping", *h)),
)
per_event_windows = st.one_of(st.sampled_from(SLIDING).map(lambda s: ("sliding", s)), st.just(("lifetime",)))
per_window_windows = st.one_of(
    st.sampled_from(TUMBLING).map(lambda s: ("tumbling", s)),
    st.sampled_from(HOPPING).map(lambda h: ("hopping", *h)),
)


# Which aggregates a window may take (default: all): an engine's limits, e.g. Flink's.
FuncsFor = Callable[[tuple[str, ...]], tuple[str, ...]]


def all_funcs(window: tuple[str, ...]) -> tuple[str, ...]:
    return ref.AGG_FUNCS


@st.composite
def aggregate_calls(draw: st.DrawFn, funcs: tuple[str, ...] = ref.AGG_FUNCS) -> tuple[str, str | None]:
    func = draw(st.sampled_from(funcs))
    return func, draw(st.sampled_from(COLUMNS_FOR[func]))


@st.composite
def feature_specs(
    draw: st.DrawFn, window: st.SearchStrategy[tuple[str, ...]] = windows, funcs_for: FuncsFor = all_funcs
) -> FeatureSpec:
    keys = draw(st.sampled_from(KEYS))
    mask = draw(st.sampled_from(tuple(MASKS)))
    w = draw(window)
    funcs = funcs_for(w)
    if draw(st.booleans()):
        func, column = draw(aggregate_calls(funcs))
        aggs: tuple[tuple[str | None, str, str | None], ...] = ((None, func, column),)
    else:
        calls = draw(st.lists(aggregate_calls(funcs), min_size=1, max_size=4))
        aggs = tuple((f"a{i}", f, c) for i, (f, c) in enumerate(calls))
    return FeatureSpec(keys, mask, w, aggs)


def feature_spec_lists(
    window: st.SearchStrategy[tuple[str, ...]] = windows, max_size: int = 3, funcs_for: FuncsFor = all_funcs
) -> st.SearchStrategy[list[FeatureSpec]]:
    return st.lists(feature_specs(window, funcs_for), min_size=1, max_size=max_size)


# ---- running features on an engine and checking them against the reference ------

ARROW_TYPES = {
    "Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string(), "Bool": pa.bool_(),
    "Timestamp": pa.timestamp("us", tz="UTC"),
}

Runner = Callable[[rp.Plan, dict[str, pa.Table]], dict[str, pa.Table]]


def check_against_reference(specs: list[FeatureSpec], rows: list[dict[str, Any]], run: Runner) -> None:
    """Compile ``specs`` as features f0, f1, ... into one plan, run it, compare every output.

    Each output must have exactly the documented columns, in order and with their
    types, and the reference's rows (order ignored, floats within tolerance).
    """
    named = [(f"f{i}", s) for i, s in enumerate(specs)]
    plan = rp.compile([s.feature(n) for n, s in named])
    outputs = run(plan, {"Events": to_table(rows)})
    covered: list[str] = []
    for out_name, table in outputs.items():
        mine = [(n, s) for n, s in named if set(s.columns(n)) <= set(table.column_names)]
        assert mine, f"output {out_name!r} has none of the features' columns: {table.column_names}"
        covered += [n for n, _ in mine]
        types: dict[str, str] = {}
        if mine[0][1].per_event:
            assert all(s.per_event for _, s in mine), f"output {out_name!r} mixes per-event and per-window"
            expected = ref.normalize(rows)
            types.update(COLUMN_TYPES)
            for n, s in mine:
                for row, values in zip(expected, s.reference(rows, n)):
                    row.update(values)
            sort_by: tuple[str, ...] = SOURCE_COLUMNS
        else:
            first = mine[0][1]
            same = all((s.keys, s.mask, s.window) == (first.keys, first.mask, first.window) for _, s in mine)
            assert same, f"output {out_name!r} joins features of different keys, masks or windows"
            types.update({k: column_type(k) for k in first.keys})  # type: ignore[misc]
            types.update(window_start="Timestamp", window_end="Timestamp")
            merged: dict[tuple[Any, ...], dict[str, Any]] = {}
            for n, s in mine:
                for row in s.reference(rows, n):
                    group = (*(row[k] for k in first.keys), row["window_start"])
                    merged.setdefault(group, {}).update(row)
            expected = list(merged.values())
            sort_by = (*first.keys, "window_start")
        for n, s in mine:
            types.update(s.result_types(n))
        assert table.column_names == list(types), f"{out_name!r}: {table.column_names} != {list(types)}"
        schema = pa.schema([(c, ARROW_TYPES[t]) for c, t in types.items()])
        assert table.schema.equals(schema), f"output {out_name!r}:\n{table.schema}\nexpected\n{schema}"
        ref.assert_same_rows(table.to_pylist(), expected, sort_by)
    missing = {n for n, _ in named} - set(covered)
    assert not missing and len(covered) == len(named), f"features in no/several outputs: {missing}, {covered}"
