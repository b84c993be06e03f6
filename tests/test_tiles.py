"""tile_long_windows and the tiled DuckDB lowering.

The rule: plan-text snapshots where it fires and where it must not. The lowering:
hypothesis draws features and data (tests/strategies.py: ties, events exactly on
and 1us either side of frame and tile edges, NULL keys and values, filters) and a
tile size for every sliding frame, and DuckDB must return the brute-force oracle's
rows, as it does without tiles.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import relplan as rp
from relplan import ir
from relplan.compiler.execute import execute_all
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.graph import transform
from relplan.ir.nodes import Filter, Node, Project, Sink, Source, WindowAggregate
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame
from relplan.rules import OptimizerConfig, RuleContext, SourceStats, Statistics
from relplan.rules.tile_long_windows import TILEABLE, tile_long_windows

from strategies import check_against_reference, event_rows, feature_spec_lists, SLIDING

S, M, H, D = 1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000
SRC = Source("T", Schema.of([("k", T.Int64), ("x", T.Float64), ("s", T.String), ("ts", T.Timestamp)]), event_time="ts")
x = Column("x", T.Float64)
# 5M events over 60 days: 50 keys hold 100k events each (50k in 30 days), 1M keys 5.
DENSE = Statistics({"T": SourceStats(rows=5_000_000, distinct={"k": 50}, spans={"ts": 60 * D})})
SPARSE = Statistics({"T": SourceStats(rows=5_000_000, distinct={"k": 1_000_000}, spans={"ts": 60 * D})})


def run_rule(node: Node, stats: Statistics | None) -> str:
    before = (Sink(node, "out"),)
    names = {f.name for n in ir.walk(before) for f in n.schema}
    after = tile_long_windows(before, RuleContext(OptimizerConfig(statistics=stats), names))
    return ir.explain(after)


def snap(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def test_fires_on_frames_holding_many_rows_and_picks_the_largest_tile_giving_enough_tiles() -> None:
    node = WindowAggregate(SRC, ("k",), "ts", (
        (Frame(30 * D), (AggCall("sum", x, "s30"), AggCall("count", None, "n30"))),
        (Frame(30 * D + 12 * H), (AggCall("max", x, "m732"),)),  # no whole days: hours
        (Frame(D), (AggCall("mean", x, "a1"),)),  # about 1.7k rows: direct is faster
    ))
    assert run_rule(node, DENSE) == snap("""
        Sink out
          WindowAggregate partition=[k] order=ts frames=[(t-30d, t] tiles=1d aggs=[s30 := sum(x), n30 := count(*)]; (t-732h, t] tiles=1h aggs=[m732 := max(x)]; (t-1d, t] aggs=[a1 := mean(x)]]
            Source T event_time=ts bounded
    """)


@pytest.mark.parametrize(
    "why, node, stats",
    [
        ("no statistics", WindowAggregate.of(SRC, ("k",), "ts", Frame(30 * D), (AggCall("sum", x, "v"),)), None),
        ("sparse partitions", WindowAggregate.of(SRC, ("k",), "ts", Frame(30 * D), (AggCall("sum", x, "v"),)), SPARSE),
        ("no statistics of the key", WindowAggregate.of(SRC, ("s",), "ts", Frame(30 * D), (AggCall("sum", x, "v"),)), DENSE),
        ("an aggregate tiles cannot rebuild",
         WindowAggregate.of(SRC, ("k",), "ts", Frame(30 * D), (AggCall("sum", x, "v"), AggCall("std", x, "sd"))), DENSE),
        ("a lifetime frame", WindowAggregate.of(SRC, ("k",), "ts", Frame(None), (AggCall("sum", x, "v"),)), DENSE),
        ("a frame that ends before t", WindowAggregate.of(SRC, ("k",), "ts", Frame(30 * D, upper=H), (AggCall("sum", x, "v"),)), DENSE),
        ("too short for tiles", WindowAggregate.of(SRC, ("k",), "ts", Frame(7 * S), (AggCall("sum", x, "v"),)), DENSE),
        ("few rows in the frame", WindowAggregate.of(SRC, ("k",), "ts", Frame(D), (AggCall("sum", x, "v"),)), DENSE),
        ("no time span of the order column",
         WindowAggregate.of(SRC, ("k",), "ts", Frame(30 * D), (AggCall("sum", x, "v"),)),
         Statistics({"T": SourceStats(rows=5_000_000, distinct={"k": 50})})),
        ("a window over a filter",
         WindowAggregate.of(Filter(SRC, Binary(">", x, Literal(0.0, T.Float64))), ("k",), "ts", Frame(30 * D),
                            (AggCall("sum", x, "v"),)), DENSE),
        ("a derived key",
         WindowAggregate.of(Project(SRC, (("k", Binary("%", Column("k", T.Int64), Literal(2, T.Int64))), ("x", x), ("ts", Column("ts", T.Timestamp)))),
                            ("k",), "ts", Frame(30 * D), (AggCall("sum", x, "v"),)), DENSE),
    ],
)
def test_refuses(why: str, node: Node, stats: Statistics | None) -> None:
    assert "tiles=" not in run_rule(node, stats), why


def test_the_trace_names_the_rule_and_explain_shows_the_tiles() -> None:
    class Tx(rp.Source):
        k: rp.Int64
        x: rp.Float64
        ts: rp.Timestamp = rp.event_time()

    @rp.transformation
    def spend(t: Tx, wspec: rp.WindowSpec):
        return t.groupby("k")["x"].window(wspec).sum()

    stats = rp.Statistics({"Tx": rp.SourceStats(rows=1_000_000, distinct={"k": 10}, spans={"ts": 60 * D})})
    plan = rp.optimize(rp.compile(spend(window=rp.sliding("30d"))), statistics=stats)
    assert "frame=(t-30d, t] tiles=1d" in plan.explain()
    assert "pass 1: tile_long_windows" in plan.explain_trace()
    off = rp.optimize(rp.compile(spend(window=rp.sliding("30d"))), statistics=stats, disable=["tile_long_windows"])
    assert "tiles=" not in off.explain()


def test_measure_statistics_counts_rows_distinct_values_and_time_spans() -> None:
    import datetime as dt

    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    table = pa.table({
        "k": [1, 2, 2, 3, None], "s": ["a", "a", "b", "b", "b"],
        "ts": pa.array([t0 + dt.timedelta(hours=h) for h in (5, 0, 2, 49, 3)], pa.timestamp("us", "UTC")),
    })
    stats = rp.measure_statistics({"T": table})
    st_ = stats.of("T")
    assert st_ is not None and st_.rows == 5
    assert st_.distinct_of("k") == 3 and st_.distinct_of("s") == 2
    assert st_.span_of("ts") == 49 * H and st_.span_of("k") is None


def test_bad_statistics_are_relplan_errors() -> None:
    with pytest.raises(rp.OptimizerError, match="statistics must be an rp.Statistics"):
        rp.OptimizerConfig(statistics={"T": 5})  # type: ignore[arg-type]
    with pytest.raises(rp.OptimizerError, match="distinct count of 'k' must be an int >= 1"):
        rp.SourceStats(rows=10, distinct={"k": 0})
    import numpy as np

    assert rp.SourceStats(rows=np.int64(10), distinct={"k": np.int64(3)}).distinct_of("k") == 3
    with pytest.raises(rp.DataError, match="takes a dict of source name to table"):
        rp.measure_statistics([pa.table({"k": [1]})])  # type: ignore[arg-type]


# ---- the tiled lowering against the oracle ------------------------------------------


def divisors(w: int) -> list[int]:
    """Tile sizes dividing ``w``, from 1us up to w (a single tile: every row in head and tail)."""
    return [t for t in (1, 7 * S, 10 * S, 15 * S, 30 * S, M, 150 * S, 5 * M) if t <= w and w % t == 0]


def force_tiles(plan: rp.Plan, pick: Any) -> rp.Plan:
    """Every tileable sliding frame tiled, with a tile size ``pick`` draws."""

    def visit(n: Node) -> Node | None:
        if not isinstance(n, WindowAggregate):
            return None
        windows = tuple(
            (Frame(f.lower, tile=pick(divisors(f.lower))) if f.is_sliding and f.lower and all(a.func in TILEABLE for a in aggs)
             else f, aggs)
            for f, aggs in n.windows
        )
        return WindowAggregate(n.input, n.keys, n.order, windows)

    return rp.Plan(transform(plan.outputs, visit), plan.features)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    specs=feature_spec_lists(window=st.sampled_from(SLIDING).map(lambda s: ("sliding", s))),
    rows=event_rows(),
    data=st.data(),
)
def test_tiled_frames_return_the_reference_rows(specs: list[Any], rows: list[dict[str, Any]], data: st.DataObject) -> None:
    def run(plan: rp.Plan, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        tiled = force_tiles(rp.optimize(plan), lambda sizes: data.draw(st.sampled_from(sizes)))
        note(tiled.explain())
        event("some frame tiled" if "tiles=" in tiled.explain() else "no frame tileable")
        return execute_all(tiled, "duckdb", tables)

    check_against_reference(specs, rows, run)
