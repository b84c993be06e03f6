"""The reference executor (backends/reference.py) against DuckDB, the brute-force oracle, and by hand.

- Random IR plans (tests/plan_strategies.py, the differential tests' generator) return
  the same rows on the reference executor as on DuckDB (floats within the differential
  tests' tolerance); so do single window nodes over rows crowded onto window edges.
- Random features (tests/strategies.py) return what tests/reference.py, the brute-force
  definition of a feature, says.
- Hand-written cases: window edges, NULL keys, division by zero, overflow, errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
import plan_strategies as ps
import strategies as gen
from relplan.backends.reference import ReferenceBackend
from relplan.compiler.plan import Plan
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, InList, Literal, Unary
from relplan.ir.nodes import (
    Aggregate,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    WindowAggregate,
    node,
)
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame, TimeWindow
from test_differential import differences

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("SET threads = 2")
    yield c
    c.close()


def run_reference(plan: Plan, tables: dict[str, Any]) -> dict[str, pa.Table]:
    return rp.execute_all(plan, engine="reference", tables=tables)


# ---- against DuckDB, on random plans ---------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(case=ps.cases())
def test_reference_returns_the_same_rows_as_duckdb(case: ps.DiffCase, con: duckdb.DuckDBPyConnection) -> None:
    try:
        expected = rp.execute_all(case.plan, engine="duckdb", tables=case.tables, connection=con)
    except rp.EngineError as e:  # DuckDB refused the data (an overflow): the reference must too
        note(f"DuckDB: {e}")
        with pytest.raises(rp.EngineError):
            run_reference(case.plan, case.tables)
        return
    got = run_reference(case.plan, case.tables)
    diffs = differences(expected, got)
    if diffs:
        # differences() speaks of an unoptimized (here: DuckDB) and an optimized (here: reference) result
        pytest.fail("reference executor disagrees with DuckDB (unoptimized = DuckDB, optimized = reference)\n"
                    + "\n".join(diffs) + f"\n\n{case!r}")


@st.composite
def edge_cases(draw: st.DrawFn) -> tuple[Plan, dict[str, pa.Table]]:
    """One window node over rows whose times sit on, and 1us either side of, window edges.

    The shared generators put an event exactly on a frame's edge in only a few percent of
    their examples; here every example has up to 29 rows on a grid of the window sizes.
    """
    base = draw(st.sampled_from(ps.BASES_US))
    times = [base + step * ps.STEP + d for step in range(-3, 6) for d in (-1, 0, 0, 1)]

    def pick(values: Any) -> Any:
        return draw(st.sampled_from(values))  # evenly: st.integers would favour small values

    rows = [
        {"k": pick((0, 1, 1, None)), "g": None, "v": pick((None, 1, 2, 4, 8, -16)), "x": None, "s": None,
         "b": None, "ts": ps.from_us(pick(times))}
        for _ in range(pick(range(2, 30)))
    ]
    v, ts = Column("v", T.Int64), Column("ts", T.Timestamp)
    aggs = (AggCall("count", None, "n"), AggCall("sum", v, "total"), AggCall("first", v, "first", order=ts),
            AggCall("last", v, "last", order=ts), AggCall("min", ts, "earliest"))
    keys = pick(((), ("k",)))
    if draw(st.booleans()):
        gen_ = ps.PlanGen(draw, base)
        frames = list(dict.fromkeys(gen_.frame() for _ in range(pick((1, 2)))))
        windows = tuple(
            (f, tuple(dataclasses.replace(a, name=f"{a.name}{i}") for a in aggs))
            for i, f in enumerate(frames)
        )
        n: Node = WindowAggregate(ps.EVENTS, keys, "ts", windows)
    else:
        size, slide = pick([(s, s) for s in ps.TUMBLING] + list(ps.HOPPING))
        n = TimeWindowAggregate(ps.EVENTS, keys, "ts", TimeWindow(size, slide), aggs)
    return Plan((Sink(n, "out"),)), {"events": ps.to_table(ps.EVENTS, rows)}


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(case=edge_cases())
def test_window_edges_match_duckdb(
    case: tuple[Plan, dict[str, pa.Table]], con: duckdb.DuckDBPyConnection
) -> None:
    plan, tables = case
    expected = rp.execute_all(plan, engine="duckdb", tables=tables, connection=con)
    diffs = differences(expected, run_reference(plan, tables))
    assert not diffs, (
        "DuckDB ('unoptimized') vs reference ('optimized'):\n" + "\n".join(diffs) + "\n" + plan.explain()
    )


# ---- against the brute-force oracle, on random features --------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=SLOW)
@given(rows=gen.event_rows(), specs=gen.feature_spec_lists(gen.windows))
def test_features_match_the_brute_force_reference(rows: list[gen.Row], specs: list[gen.FeatureSpec]) -> None:
    gen.check_against_reference(specs, rows, run_reference)


@settings(max_examples=50, deadline=None, suppress_health_check=SLOW)
@given(rows=gen.event_rows(), specs=gen.feature_spec_lists(gen.windows, max_size=4))
def test_optimized_features_match_the_brute_force_reference(
    rows: list[gen.Row], specs: list[gen.FeatureSpec]
) -> None:
    # the optimizer's rewrites (shared windows, mean from sum and count) run on the IR too
    gen.check_against_reference(specs, rows, lambda plan, tables: run_reference(rp.optimize(plan), tables))


# ---- by hand ------------------------------------------------------------------------------

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
SRC = Source(
    "t",
    Schema.of([("k", T.Int64), ("v", T.Int64), ("x", T.Float64), ("s", T.String), ("ts", T.Timestamp)]),
    event_time="ts",
)
K, V, X, S, TS = (Column(f.name, f.dtype) for f in SRC.columns)


def at(seconds: float = 0, us: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds, microseconds=us)


def table(*rows: tuple[Any, ...]) -> pa.Table:
    dicts = [dict(zip(SRC.columns.names, r)) for r in rows]
    return pa.Table.from_pylist(dicts, schema=SRC.columns.to_arrow())


def run_node(n: Node, *rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = ReferenceBackend().run((Sink(n, "out"),), {"t": table(*rows)})["out"]
    assert out.schema.equals(n.schema.to_arrow())
    return out.to_pylist()


def window(frame: Frame, *aggs: AggCall) -> WindowAggregate:
    return WindowAggregate.of(SRC, ("k",), "ts", frame, aggs)


def test_sliding_window_edges_an_event_size_before_is_out_ties_are_in() -> None:
    rows = [
        (1, 1, None, "a", at(0)),
        (1, 2, None, "b", at(60, -1)),  # 1 us inside the window ending at 60 s
        (1, 4, None, "c", at(60)),
        (1, 8, None, "d", at(60)),  # tied with the previous: each sees the other
        (1, 16, None, "e", at(120)),  # exactly 1 minute after the two at 60 s: they are out
    ]
    n = window(Frame(60_000_000), AggCall("sum", V, "total"), AggCall("count", None, "n"))
    got = {r["s"]: (r["total"], r["n"]) for r in run_node(n, *rows)}
    assert got == {"a": (1, 1), "b": (3, 2), "c": (14, 3), "d": (14, 3), "e": (16, 1)}


def test_frame_edges_follow_the_frame_inclusive_flags() -> None:
    rows = [(1, 1, None, "a", at(0)), (1, 2, None, "b", at(30)), (1, 4, None, "c", at(60))]
    both_closed = window(Frame(60_000_000, True, 30_000_000, True), AggCall("sum", V, "total"))
    both_open = window(Frame(60_000_000, False, 30_000_000, False), AggCall("sum", V, "total"))
    lifetime_before = window(Frame(None, upper=0, upper_inclusive=False), AggCall("sum", V, "total"))
    assert {r["s"]: r["total"] for r in run_node(both_closed, *rows)} == {"a": None, "b": 1, "c": 3}
    assert {r["s"]: r["total"] for r in run_node(both_open, *rows)} == {"a": None, "b": None, "c": None}
    assert {r["s"]: r["total"] for r in run_node(lifetime_before, *rows)} == {"a": None, "b": 1, "c": 3}


def test_tumbling_and_hopping_edges_are_half_open_and_epoch_aligned() -> None:
    rows = [(1, 1, None, "a", at(-1, 0)), (1, 2, None, "b", at(0)), (1, 4, None, "c", at(59, 999_999)),
            (1, 8, None, "d", at(60))]
    total = (AggCall("sum", V, "total"),)
    tumble = TimeWindowAggregate(SRC, ("k",), "ts", TimeWindow(60_000_000, 60_000_000), total)
    got = sorted((r["window_start"], r["window_end"], r["total"]) for r in run_node(tumble, *rows))
    assert got == [(at(-60), at(0), 1), (at(0), at(60), 6), (at(60), at(120), 8)]
    hop = TimeWindowAggregate(SRC, ("k",), "ts", TimeWindow(120_000_000, 60_000_000), total)
    got = sorted((r["window_start"], r["total"]) for r in run_node(hop, *rows))
    assert got == [(at(-120), 1), (at(-60), 7), (at(0), 14), (at(60), 8)]


def test_null_key_gives_null_per_event_and_no_window() -> None:
    rows = [(None, 1, None, "a", at(0)), (None, 2, None, "b", at(0)), (1, 4, None, "c", at(0))]
    per_event = window(Frame(None), AggCall("count", None, "n"), AggCall("sum", V, "total"))
    got = {r["s"]: (r["n"], r["total"]) for r in run_node(per_event, *rows)}
    assert got == {"a": (None, None), "b": (None, None), "c": (1, 4)}
    count = (AggCall("count", None, "n"),)
    tumble = TimeWindowAggregate(SRC, ("k",), "ts", TimeWindow(60_000_000, 60_000_000), count)
    assert [(r["k"], r["n"]) for r in run_node(tumble, *rows)] == [(1, 1)]
    grouped = Aggregate(SRC, ("k",), (AggCall("count", None, "n"),))
    assert run_node(grouped, *rows) == [{"k": 1, "n": 1}]


def test_division_by_zero_is_null_and_floor_division_follows_python() -> None:
    exprs = (
        ("div", Binary("/", V, Literal(0))),
        ("fdiv", Binary("/", X, Literal(-0.0))),
        ("floordiv0", Binary("//", V, Literal(0))),
        ("mod0", Binary("%", V, Literal(0))),
        ("floordiv", Binary("//", V, Literal(2))),
        ("mod", Binary("%", V, Literal(2))),
        ("mod_neg", Binary("%", Literal(7), Binary("-", Literal(0), Literal(2)))),
        ("true_div", Binary("/", V, Literal(2))),
        ("trunc", Cast(Binary("/", V, Literal(2)), T.Int64)),
    )
    got = run_node(Project(SRC, exprs), (1, -7, 1.5, "a", at(0)))
    assert got == [{"div": None, "fdiv": None, "floordiv0": None, "mod0": None, "floordiv": -4, "mod": 1,
                    "mod_neg": -1, "true_div": -3.5, "trunc": -3}]


def test_three_valued_logic_in_list_coalesce_and_case() -> None:
    null_bool = Literal(None, T.Bool)
    is_pos = Binary(">", V, Literal(0))
    exprs = (
        ("and_false", Binary("AND", null_bool, Literal(False))),
        ("and_null", Binary("AND", null_bool, Literal(True))),
        ("or_true", Binary("OR", null_bool, Literal(True))),
        ("not_null", Unary("NOT", Binary("=", V, Literal(None, T.Int64)))),
        ("in_hit", InList(V, (Literal(None, T.Int64), Literal(3)))),
        ("in_miss_null", InList(V, (Literal(None, T.Int64), Literal(4)))),
        ("in_miss", InList(V, (Literal(4),))),
        ("in_float", InList(V, (Literal(3.0),))),
        ("isnull", Unary("IS NULL", X)),
        ("fill", Coalesce((X, V))),
        ("case", Case(((null_bool, Literal(1)), (is_pos, Literal(2))), Literal(3))),
    )
    got = run_node(Project(SRC, exprs), (1, 3, None, "a", at(0)))
    assert got == [{"and_false": False, "and_null": None, "or_true": True, "not_null": None, "in_hit": True,
                    "in_miss_null": None, "in_miss": False, "in_float": True, "isnull": True, "fill": 3.0,
                    "case": 2}]


def test_aggregates_over_no_rows_one_row_and_ties() -> None:
    funcs = ("count", "count_distinct", "sum", "mean", "min", "max", "var", "std", "first", "last")
    aggs = tuple(AggCall(f, V, f, order=TS if f in ("first", "last") else None) for f in funcs)
    empty = Aggregate(SRC, (), aggs)  # no keys: one row, even over no rows
    assert run_node(empty) == [{f: 0 if f.startswith("count") else None for f in funcs}]
    one = run_node(empty, (1, 5, None, "a", at(0)))
    assert one == [{"count": 1, "count_distinct": 1, "sum": 5, "mean": 5.0, "min": 5, "max": 5, "var": None,
                    "std": None, "first": 5, "last": 5}]
    tied = run_node(empty, (1, 5, None, "a", at(0)), (1, 2, None, "b", at(0)), (1, None, None, "c", at(-1)),
                    (1, 9, None, "d", at(0)))
    assert (tied[0]["first"], tied[0]["last"], tied[0]["var"]) == (2, 9, 12.333333333333334)


def test_aggregate_filter_keeps_rows_where_it_is_true() -> None:
    flt = Binary(">", X, Literal(0.0))  # NULL for x NULL: not kept
    n = Aggregate(SRC, ("k",), (AggCall("count", None, "n", flt), AggCall("sum", V, "total", flt)))
    rows = [(1, 1, 1.0, "a", at(0)), (1, 2, -1.0, "b", at(0)), (1, 4, None, "c", at(0))]
    assert run_node(n, *rows) == [{"k": 1, "n": 1, "total": 1}]


def test_sums_and_means_are_exact() -> None:
    rows = [(1, None, 1e16, "a", at(0)), (1, None, 1.0, "b", at(0)), (1, None, -1e16, "c", at(0))]
    n = Aggregate(SRC, (), (AggCall("sum", X, "total"), AggCall("mean", X, "avg")))
    assert run_node(n, *rows) == [{"total": 1.0, "avg": 1 / 3}]


def test_int64_overflow_raises_an_engine_error() -> None:
    big = 2**62
    with pytest.raises(rp.EngineError, match="overflow"):
        run_node(Project(SRC, (("y", Binary("*", V, Literal(2))),)), (1, big, None, "a", at(0)))
    with pytest.raises(rp.EngineError, match="overflow"):
        run_node(Aggregate(SRC, (), (AggCall("sum", V, "total"),)), (1, big, None, "a", at(0)),
                 (1, big, None, "b", at(0)))


def test_shared_subplans_are_computed_once() -> None:
    calls = 0
    backend = ReferenceBackend()
    plain = backend.node

    def counting(n: Node, ins: Any, tables: Any) -> Any:
        nonlocal calls
        calls += isinstance(n, WindowAggregate)
        return plain(n, ins, tables)

    backend.node = counting  # type: ignore[method-assign]
    w = window(Frame(None), AggCall("count", None, "n"))
    twin = window(Frame(None), AggCall("count", None, "n"))  # equal, not identical
    out = backend.run((Sink(w, "a"), Sink(Project(twin, (("n", Column("n", T.Int64)),)), "b")),
                      {"t": table((1, 1, None, "a", at(0)))})
    assert calls == 1 and out["b"].to_pylist() == [{"n": 1}]


def test_deep_plans_do_not_recurse() -> None:
    n: Node = SRC
    for _ in range(3000):
        n = Project(n, tuple((c, Column(c, n.schema.dtype(c))) for c in SRC.columns.names))
    assert len(run_node(n, (1, 1, None, "a", at(0)))) == 1


def test_to_sql_raises_unsupported() -> None:
    spec = gen.FeatureSpec(("k",), "none", ("sliding", "1m"), ((None, "count", None),))
    plan = rp.compile([spec.feature("f")])
    with pytest.raises(rp.UnsupportedError, match="reference engine .* no SQL"):
        plan.to_sql("reference")
    with pytest.raises(rp.UnsupportedError):
        ReferenceBackend().to_sql(plan.outputs)


@node
class Mystery(Node):
    """A node kind the reference backend has never heard of."""

    kind: ClassVar[str] = "Mystery"
    input: Node

    def __post_init__(self) -> None:
        self._finish(self.input.schema)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.input,)


def test_unknown_node_raises_unsupported_naming_it() -> None:
    with pytest.raises(rp.UnsupportedError, match="Mystery"):
        run_node(Mystery(SRC), (1, 1, None, "a", at(0)))


def test_execute_through_the_public_api() -> None:
    spec = gen.FeatureSpec(("k",), "none", ("sliding", "1m"), ((None, "sum", "v"),))
    plan = rp.compile([spec.feature("f")])
    rows = [gen_row(1, 1, at(0)), gen_row(1, 2, at(30)), gen_row(None, 4, at(30))]
    out = rp.execute(plan, engine="reference", tables={"Events": gen.to_table(rows)})
    assert sorted((r["v"], r["f"]) for r in out.to_pylist()) == [(1, 1), (2, 3), (4, None)]


def gen_row(k: int | None, v: int, ts: dt.datetime) -> dict[str, Any]:
    return {"k": k, "v": v, "x": None, "s": None, "b": None, "ts": ts}

