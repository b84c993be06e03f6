"""share_windows: plan-text snapshots, the merges it must refuse, and DuckDB checks."""

from __future__ import annotations

import textwrap

import relplan as rp
from relplan import ir
from relplan.compiler.plan import Plan
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Column
from relplan.ir.nodes import Node, Sink, Source, WindowAggregate
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame
from relplan.rules import OptimizerConfig, RuleContext
from relplan.rules.share_windows import share_windows
from test_rules import _rows, _tables

H = 3_600_000_000
D = 24 * H
SRC = Source(
    "T",
    Schema.of([("k", T.Int64), ("x", T.Float64), ("y", T.Int64), ("s", T.String), ("ts", T.Timestamp)]),
    event_time="ts",
)
x = Column("x", T.Float64)
y = Column("y", T.Int64)


def wa(input: Node, keys: tuple[str, ...], *aggs: AggCall, frame: Frame = Frame(H)) -> WindowAggregate:
    return WindowAggregate.of(input, keys, "ts", frame, aggs)


def run(*roots: Node) -> tuple[tuple[Sink, ...], tuple[Sink, ...]]:
    before = tuple(r if isinstance(r, Sink) else Sink(r, f"out{i}") for i, r in enumerate(roots))
    names = {f.name for n in ir.walk(before) for f in n.schema}
    return before, share_windows(before, RuleContext(OptimizerConfig(), names))


def expected(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def same_rows_on_duckdb(before: tuple[Sink, ...], after: tuple[Sink, ...]) -> None:
    tables = _tables()
    a = rp.execute_all(Plan(before), tables={"T": tables["T"]})
    b = rp.execute_all(Plan(after), tables={"T": tables["T"]})
    for name in a:
        assert _rows(a[name]) == _rows(b[name])


def test_merges_stacked_windows_of_one_partition_whatever_their_frames() -> None:
    plan = wa(
        wa(
            wa(SRC, ("k",), AggCall("sum", x, "s1h"), AggCall("mean", x, "m1h")),
            ("y",), AggCall("count", None, "n"),
        ),
        ("k",), AggCall("sum", x, "s1d"), frame=Frame(D),
    )
    before, after = run(plan)
    assert [r.schema for r in after] == [r.schema for r in before]
    assert ir.explain(after) == expected("""
        Sink out0
          Project k, x, y, s, ts, s1h, m1h := s1h / __m1h_count, n, s1d
            WindowAggregate partition=[y] order=ts frame=(t-1h, t] aggs=[n := count(*)]
              WindowAggregate partition=[k] order=ts frames=[(t-1h, t] aggs=[s1h := sum(x), __m1h_count := count(x)]; (t-1d, t] aggs=[s1d := sum(x)]]
                Source T event_time=ts bounded
    """)
    same_rows_on_duckdb(before, after)


def test_duplicate_aggregates_are_computed_once() -> None:
    plan = wa(wa(SRC, ("k",), AggCall("max", y, "a")), ("k",), AggCall("max", y, "b"), AggCall("count", None, "c"))
    before, after = run(plan)
    assert ir.explain(after) == expected("""
        Sink out0
          Project k, x, y, s, ts, a, b := a, c
            WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[a := max(y), c := count(*)]
              Source T event_time=ts bounded
    """)
    same_rows_on_duckdb(before, after)


def test_a_mean_alone_is_not_decomposed() -> None:
    plan = wa(wa(SRC, ("k",), AggCall("mean", x, "m")), ("k",), AggCall("max", x, "mx"), frame=Frame(D))
    before, after = run(plan)
    assert ir.explain(after) == expected("""
        Sink out0
          WindowAggregate partition=[k] order=ts frames=[(t-1h, t] aggs=[m := mean(x)]; (t-1d, t] aggs=[mx := max(x)]]
            Source T event_time=ts bounded
    """)
    same_rows_on_duckdb(before, after)


def test_refuses_a_window_that_reads_another_windows_output() -> None:
    inner = wa(SRC, ("k",), AggCall("count", None, "n"))
    before, after = run(wa(inner, ("k",), AggCall("max", Column("n", T.Int64), "m"), frame=Frame(D)))
    assert after is before


def test_refuses_a_window_partitioned_by_another_windows_output() -> None:
    # Found by the differential test: the key must still exist below the merged node.
    inner = wa(SRC, (), AggCall("mean", Column("k", T.Int64), "a2"), AggCall("sum", Column("k", T.Int64), "a3"))
    before, after = run(wa(inner, ("a2",), AggCall("count", None, "a4")))
    assert after is before


def test_refuses_to_merge_into_a_window_other_consumers_share() -> None:
    shared = wa(SRC, ("k",), AggCall("count", None, "n"))
    top = wa(shared, ("k",), AggCall("sum", x, "sx"), frame=Frame(D))
    before, after = run(top, shared)
    assert after is before


def test_windows_with_different_order_columns_stay_apart() -> None:
    src = Source("T2", Schema.of([("k", T.Int64), ("ts", T.Timestamp), ("t2", T.Timestamp)]), event_time="ts")
    inner = WindowAggregate.of(src, ("k",), "ts", Frame(H), (AggCall("count", None, "a"),))
    top = WindowAggregate.of(inner, ("k",), "t2", Frame(H), (AggCall("count", None, "b"),))
    before, after = run(top)
    assert after is before


def test_compiled_features_share_one_window_node_per_partition() -> None:
    from relplan.demo import Transactions

    @rp.transformation
    def amount(tx: Transactions, wspec: rp.WindowSpec, agg: str = "sum"):
        return getattr(tx.groupby("cc_num")["amt"].window(wspec), agg)()

    feats = [amount(window=rp.sliding(w), agg=a, name=f"{a}_{w}") for w in ("1h", "1d") for a in ("sum", "mean")]
    plan = rp.optimize(rp.compile(feats))
    windows = [n for n in ir.walk(plan.outputs) if isinstance(n, WindowAggregate)]
    assert len(windows) == 1
    assert [a.func for a in windows[0].aggs] == ["sum", "count", "sum", "count"]
    assert "share_windows" in plan.explain(verbose=True)
