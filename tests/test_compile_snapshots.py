"""Plan-text snapshots of compile(), plus the IR's value semantics and DAG traversal.

Snapshots are exact: ``explain()`` is part of the contract (platform teams read it),
so any change to it shows up here as a diff to review.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap

import pytest

import relplan as rp
from relplan import ir
from relplan.ir.graph import to_digraph, transform, use_counts, walk


def expected(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation
def transaction_count(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def average_amount_by_merchant(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby(["cc_num", "merchant"])["amt"].window(wspec).mean()


@rp.transformation
def big_spend(tx: Transactions, wspec: rp.WindowSpec):
    return tx[(tx.amt > 100) & (tx.status != "failed")].groupby("account_id")["amt"].window(wspec).sum()


@rp.transformation
def amount_stats(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(
        total=("amt", "sum"), n="count", largest=("amt", "max"), merchants=("merchant", "nunique")
    )


@rp.transformation
def total_amount(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].window(wspec).sum()


@rp.transformation
def bucket_total(tx: Transactions, wspec: rp.WindowSpec):
    return tx.assign(bucket=tx.cc_num % 16).groupby("bucket")["amt"].window(wspec).sum()


SOURCE = "Source Transactions event_time=ts lateness=5m bounded"
COLUMNS = "cc_num, merchant, amt, status, account_id, ts"


# ---- snapshots ------------------------------------------------------------------


def test_one_per_event_feature() -> None:
    plan = rp.compile(transaction_count(window=rp.sliding("1h")))
    assert plan.output_names == ("Transactions",)
    assert plan.explain() == expected(f"""
        Sink Transactions
          Project {COLUMNS}, transaction_count_1h
            WindowAggregate partition=[account_id] order=ts frame=(t-1h, t] aggs=[transaction_count_1h := count(*) filter (status = 'failed')]
              {SOURCE}
    """)


def test_per_event_features_of_one_source_share_one_output() -> None:
    plan = rp.compile([
        transaction_count(window=rp.sliding("1h")),
        average_amount_by_merchant(window=rp.sliding("1d")),
        big_spend(window=rp.lifetime(), name="big_spend_ever"),
    ])
    # One row set (the source's events), one column per feature, in the order given.
    assert plan.output_names == ("Transactions",)
    assert plan.outputs[0].schema.names[-3:] == ("transaction_count_1h", "average_amount_by_merchant_1d", "big_spend_ever")
    assert plan.explain() == expected(f"""
        Sink Transactions
          Project {COLUMNS}, transaction_count_1h, average_amount_by_merchant_1d, big_spend_ever
            WindowAggregate partition=[account_id] order=ts frame=(-inf, t] aggs=[big_spend_ever := sum(amt) filter ((amt > 100) AND (status != 'failed'))]
              WindowAggregate partition=[cc_num, merchant] order=ts frame=(t-1d, t] aggs=[average_amount_by_merchant_1d := mean(amt)]
                WindowAggregate partition=[account_id] order=ts frame=(t-1h, t] aggs=[transaction_count_1h := count(*) filter (status = 'failed')]
                  {SOURCE}
    """)


def test_source_shared_by_two_outputs_is_printed_once() -> None:
    plan = rp.compile([transaction_count(window=rp.sliding("1h")), transaction_count(window=rp.tumbling("1d"))])
    assert plan.output_names == ("Transactions", "Transactions_tumble_1d_by_account_id")
    assert plan.explain() == expected(f"""
        r0 := {SOURCE}
        Sink Transactions
          Project {COLUMNS}, transaction_count_1h
            WindowAggregate partition=[account_id] order=ts frame=(t-1h, t] aggs=[transaction_count_1h := count(*) filter (status = 'failed')]
              r0
        Sink Transactions_tumble_1d_by_account_id
          TimeWindowAggregate keys=[account_id] time=ts tumble 1d aggs=[transaction_count_tumble_1d := count(*)]
            Filter status = 'failed'
              r0
    """)


def test_tumbling_and_hopping_features_are_separate_outputs() -> None:
    plan = rp.compile([
        transaction_count(window=rp.tumbling("1d")),
        average_amount_by_merchant(window=rp.hopping("1h", "15m")),
    ])
    assert plan.explain() == expected(f"""
        r0 := {SOURCE}
        Sink Transactions_tumble_1d_by_account_id
          TimeWindowAggregate keys=[account_id] time=ts tumble 1d aggs=[transaction_count_tumble_1d := count(*)]
            Filter status = 'failed'
              r0
        Sink Transactions_hop_1h_15m_by_cc_num_merchant
          TimeWindowAggregate keys=[cc_num, merchant] time=ts hop 1h every 15m aggs=[average_amount_by_merchant_hop_1h_15m := mean(amt)]
            r0
    """)
    hop = plan.output("Transactions_hop_1h_15m_by_cc_num_merchant")
    assert hop.schema.names == ("cc_num", "merchant", "window_start", "window_end", "average_amount_by_merchant_hop_1h_15m")


def test_per_window_features_with_the_same_rows_share_an_output() -> None:
    # Same source, filter (none), keys and window: one TimeWindowAggregate, one
    # column per aggregate; a filtered feature gets its own output.
    plan = rp.compile([
        total_amount(window=rp.tumbling("1d")),
        amount_stats(window=rp.tumbling("1d")),
        transaction_count(window=rp.tumbling("1d")),
    ])
    assert plan.explain() == expected(f"""
        r0 := {SOURCE}
        Sink Transactions_tumble_1d_by_account_id
          TimeWindowAggregate keys=[account_id] time=ts tumble 1d aggs=[total_amount_tumble_1d := sum(amt), amount_stats_tumble_1d_total := sum(amt), amount_stats_tumble_1d_n := count(*), amount_stats_tumble_1d_largest := max(amt), amount_stats_tumble_1d_merchants := count_distinct(merchant)]
            r0
        Sink Transactions_tumble_1d_by_account_id_2
          TimeWindowAggregate keys=[account_id] time=ts tumble 1d aggs=[transaction_count_tumble_1d := count(*)]
            Filter status = 'failed'
              r0
    """)


def test_derived_key_from_assign() -> None:
    plan = rp.compile([bucket_total(window=rp.sliding("30m")), bucket_total(window=rp.tumbling("1h"))])
    # The hidden key column stays inside the plan: the per-event output has the
    # source's columns and the feature; the per-window output names the key as written.
    assert plan.explain() == expected(f"""
        r0 := {SOURCE}
        Sink Transactions
          Project {COLUMNS}, bucket_total_30m
            WindowAggregate partition=[bucket_total_30m__key_bucket] order=ts frame=(t-30m, t] aggs=[bucket_total_30m := sum(amt)]
              Project {COLUMNS}, bucket_total_30m__key_bucket := cc_num % 16
                r0
        Sink Transactions_tumble_1h_by_bucket
          Project bucket := bucket_total_tumble_1h__key_bucket, window_start, window_end, bucket_total_tumble_1h
            TimeWindowAggregate keys=[bucket_total_tumble_1h__key_bucket] time=ts tumble 1h aggs=[bucket_total_tumble_1h := sum(amt)]
              Project {COLUMNS}, bucket_total_tumble_1h__key_bucket := cc_num % 16
                r0
    """)
    assert plan.output("Transactions_tumble_1h_by_bucket").schema.names == (
        "bucket", "window_start", "window_end", "bucket_total_tumble_1h",
    )


def test_agg_with_several_aggregates() -> None:
    feature = amount_stats(window=rp.sliding("7d"))
    assert feature.columns == (
        "amount_stats_7d_total", "amount_stats_7d_n", "amount_stats_7d_largest", "amount_stats_7d_merchants",
    )
    plan = rp.compile(feature)
    assert plan.explain(schema=True) == expected(f"""
        Sink Transactions  :: cc_num: Int64, merchant: String, amt: Float64, status: String, account_id: Int64, ts: Timestamp, amount_stats_7d_total: Float64, amount_stats_7d_n: Int64, amount_stats_7d_largest: Float64, amount_stats_7d_merchants: Int64
          Project {COLUMNS}, amount_stats_7d_total, amount_stats_7d_n, amount_stats_7d_largest, amount_stats_7d_merchants  :: cc_num: Int64, merchant: String, amt: Float64, status: String, account_id: Int64, ts: Timestamp, amount_stats_7d_total: Float64, amount_stats_7d_n: Int64, amount_stats_7d_largest: Float64, amount_stats_7d_merchants: Int64
            WindowAggregate partition=[account_id] order=ts frame=(t-7d, t] aggs=[amount_stats_7d_total := sum(amt), amount_stats_7d_n := count(*), amount_stats_7d_largest := max(amt), amount_stats_7d_merchants := count_distinct(merchant)]  :: cc_num: Int64, merchant: String, amt: Float64, status: String, account_id: Int64, ts: Timestamp, amount_stats_7d_total: Float64, amount_stats_7d_n: Int64, amount_stats_7d_largest: Float64, amount_stats_7d_merchants: Int64
              {SOURCE}  :: cc_num: Int64, merchant: String, amt: Float64, status: String, account_id: Int64, ts: Timestamp
    """)


def test_explain_schema_with_a_shared_source() -> None:
    plan = rp.compile([transaction_count(window=rp.sliding("1h")), transaction_count(window=rp.tumbling("1d"))])
    src_schema = "cc_num: Int64, merchant: String, amt: Float64, status: String, account_id: Int64, ts: Timestamp"
    assert plan.explain(schema=True) == expected(f"""
        r0 := {SOURCE}  :: {src_schema}
        Sink Transactions  :: {src_schema}, transaction_count_1h: Int64
          Project {COLUMNS}, transaction_count_1h  :: {src_schema}, transaction_count_1h: Int64
            WindowAggregate partition=[account_id] order=ts frame=(t-1h, t] aggs=[transaction_count_1h := count(*) filter (status = 'failed')]  :: {src_schema}, transaction_count_1h: Int64
              r0
        Sink Transactions_tumble_1d_by_account_id  :: account_id: Int64, window_start: Timestamp, window_end: Timestamp, transaction_count_tumble_1d: Int64
          TimeWindowAggregate keys=[account_id] time=ts tumble 1d aggs=[transaction_count_tumble_1d := count(*)]  :: account_id: Int64, window_start: Timestamp, window_end: Timestamp, transaction_count_tumble_1d: Int64
            Filter status = 'failed'  :: {src_schema}
              r0
    """)


# ---- naming -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "name"),
    [
        (rp.sliding("1h"), "transaction_count_1h"),
        (rp.sliding("90m"), "transaction_count_90m"),
        (rp.sliding(dt.timedelta(days=1)), "transaction_count_1d"),
        (rp.sliding("7 days"), "transaction_count_7d"),
        (rp.sliding("1500ms"), "transaction_count_1500ms"),
        (rp.lifetime(), "transaction_count_lifetime"),
        (rp.tumbling("1d"), "transaction_count_tumble_1d"),
        (rp.hopping("1h", "10m"), "transaction_count_hop_1h_10m"),
    ],
)
def test_default_feature_name_is_function_and_window(window: rp.WindowSpec, name: str) -> None:
    feature = transaction_count(window=window)
    assert feature.name == name
    assert feature.columns == (name,)
    assert name in rp.compile(feature).outputs[0].schema.names


def test_name_overrides() -> None:
    feature = transaction_count(window=rp.sliding("1h"), name="failed_last_hour")
    assert feature.name == "failed_last_hour"
    assert feature.transformation == "transaction_count"
    assert rp.compile(feature).outputs[0].schema.names[-1] == "failed_last_hour"

    stats = amount_stats(window=rp.tumbling("1d"), name="daily")
    assert stats.columns == ("daily_total", "daily_n", "daily_largest", "daily_merchants")

    @rp.transformation(name="failures")
    def count_failures(tx: Transactions, wspec: rp.WindowSpec):
        return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()

    assert count_failures(window=rp.sliding("1h")).name == "failures_1h"


def test_verbose_explain_lists_features_and_their_lines() -> None:
    plan = rp.compile(transaction_count(window=rp.sliding("1h")))
    text = plan.explain(verbose=True)
    first, *rest = text.splitlines()
    assert first == "features:"
    assert rest[0].startswith(
        "  transaction_count_1h: transaction_count window=rp.sliding('1h') (defined at test_compile_snapshots.py:"
    )
    assert "optimizer trace:" in rest and rest[-1] == "  (not optimized)"


# ---- determinism and value semantics ----------------------------------------------


def _features() -> list[rp.Feature]:
    return [
        transaction_count(window=rp.sliding("1h")),
        average_amount_by_merchant(window=rp.hopping("1h", "15m")),
        bucket_total(window=rp.tumbling("1h")),
        amount_stats(window=rp.lifetime()),
    ]


def test_explain_is_deterministic_across_compiles() -> None:
    first, second = rp.compile(_features()), rp.compile(_features())
    assert first.explain() == second.explain()
    assert first.explain(schema=True) == second.explain(schema=True)
    assert first.to_sql("duckdb") == second.to_sql("duckdb")


_SUBPROCESS = """
import relplan as rp

class Transactions(rp.Source):
    account_id: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()

@rp.transformation
def spend(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.merchant.isin(["a", "b", "c"])].groupby(["account_id", "merchant"])["amt"].window(wspec).sum()

print(rp.compile([spend(window=w) for w in (rp.sliding("1h"), rp.tumbling("1d"), rp.hopping("1h", "5m"))]).explain())
"""


def test_explain_is_deterministic_across_hash_seeds() -> None:
    texts = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        texts.add(done.stdout)
    assert len(texts) == 1
    (text,) = texts
    assert text.startswith("r0 := Source Transactions event_time=ts bounded\n")
    assert "filter (merchant IN ('a', 'b', 'c'))" in text


def test_equal_subplans_are_equal_values() -> None:
    from relplan.compiler import compile as compile_module

    a = rp.compile(_features())
    # compile() caches by feature; clear it so the second plan is built anew.
    compile_module._compile_per_event.cache_clear()
    compile_module._compile_per_window.cache_clear()
    b = rp.compile(_features())
    for x, y in zip(a.outputs, b.outputs):
        assert x is not y
        assert x == y
        assert hash(x) == hash(y)
    # Value objects: equal plans are one dictionary key.
    assert len({*a.outputs, *b.outputs}) == len(a.outputs)
    assert {n: i for i, n in enumerate(walk(a.outputs))}.keys() == {n: 0 for n in walk(b.outputs)}.keys()
    different = rp.compile(transaction_count(window=rp.sliding("2h"))).outputs[0]
    assert rp.compile(transaction_count(window=rp.sliding("1h"))).outputs[0] != different


def _source(name: str = "S", lateness: int = 0) -> ir.Source:
    schema = ir.Schema.of([("k", ir.Int64), ("v", ir.Float64), ("ts", ir.Timestamp)])
    return ir.Source(name, schema, "ts", lateness)


def test_hand_built_nodes_compare_by_value() -> None:
    v = ir.Column("v", ir.Float64)
    one = ir.Filter(_source(), ir.Binary(">", v, ir.Literal(0.0)))
    two = ir.Filter(_source(), ir.Binary(">", v, ir.Literal(0.0)))
    assert one == two and hash(one) == hash(two) and one is not two
    assert one != ir.Filter(_source(), ir.Binary(">=", v, ir.Literal(0.0)))
    assert one != ir.Filter(_source(lateness=1), ir.Binary(">", v, ir.Literal(0.0)))
    assert one != ir.Filter(_source("T"), ir.Binary(">", v, ir.Literal(0.0)))
    assert one != ir.Project(_source(), (("v", v),))
    hop = ir.TimeWindowAggregate(one, ("k",), "ts", ir.TimeWindow(3_600_000_000, 600_000_000), (ir.AggCall("count", None, "n"),))
    same = ir.TimeWindowAggregate(two, ("k",), "ts", ir.TimeWindow(3_600_000_000, 600_000_000), (ir.AggCall("count", None, "n"),))
    other = ir.TimeWindowAggregate(two, ("k",), "ts", ir.TimeWindow(3_600_000_000, 300_000_000), (ir.AggCall("count", None, "n"),))
    assert hop == same and hash(hop) == hash(same)
    assert hop != other


# ---- DAG traversal ----------------------------------------------------------------


def _dag() -> tuple[ir.Sink, ir.Sink]:
    """Two outputs over one shared filter (one object referenced twice)."""
    shared = ir.Filter(_source(), ir.Binary(">", ir.Column("v", ir.Float64), ir.Literal(0.0)))
    total = ir.Aggregate(shared, ("k",), (ir.AggCall("sum", ir.Column("v", ir.Float64), "total"),))
    recent = ir.WindowAggregate.of(shared, ("k",), "ts", ir.Frame(3_600_000_000), (ir.AggCall("count", None, "n"),))
    return ir.Sink(total, "totals"), ir.Sink(recent, "recent")


def test_walk_visits_a_shared_node_once_inputs_first() -> None:
    a, b = _dag()
    order = walk((a, b))
    shared = a.input.inputs[0]
    assert shared is b.input.inputs[0]
    assert [n.kind for n in order] == ["Source", "Filter", "Aggregate", "Sink", "WindowAggregate", "Sink"]
    assert order.count(shared) == 1
    position = {id(n): i for i, n in enumerate(order)}
    for n in order:
        for child in n.inputs:
            assert position[id(child)] < position[id(n)]
    assert use_counts((a, b))[shared] == 2
    graph = to_digraph((a, b))
    assert graph.number_of_nodes() == 6 and graph.number_of_edges() == 5


def test_walk_treats_equal_subplans_as_one() -> None:
    a, _ = _dag()
    _, b = _dag()  # a distinct but equal shared filter
    assert a.input.inputs[0] is not b.input.inputs[0]
    assert len(walk((a, b))) == 6


def test_transform_calls_fn_once_per_node_and_keeps_sharing() -> None:
    a, b = _dag()
    seen: list[str] = []

    def rename(n: ir.Node) -> ir.Node | None:
        seen.append(n.kind)
        if isinstance(n, ir.Source):
            return n.replace_fields(name="S2")
        return None

    new_a, new_b = transform((a, b), rename)
    assert sorted(seen) == sorted(["Source", "Filter", "Aggregate", "Sink", "WindowAggregate", "Sink"])
    # The rewritten shared filter is still one object used by both outputs.
    assert new_a.input.inputs[0] is new_b.input.inputs[0]
    assert new_a.input.inputs[0].inputs[0].name == "S2"
    assert ir.explain((new_a, new_b)) == expected("""
        r0 := Filter v > 0.0
          Source S2 event_time=ts bounded
        Sink totals
          Aggregate keys=[k] aggs=[total := sum(v)]
            r0
        Sink recent
          WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]
            r0
    """)


def test_transform_without_changes_keeps_identity() -> None:
    roots = _dag()
    out = transform(roots, lambda n: None)
    assert all(x is y for x, y in zip(out, roots))


# ---- deep plans ----------------------------------------------------------------------


def _depth(root: ir.Node) -> int:
    depth, node = 1, root
    while node.inputs:
        node, depth = node.inputs[0], depth + 1
    return depth


def test_a_thousand_stacked_features_compile_explain_and_lower() -> None:
    features = [total_amount(window=rp.sliding(f"{i + 1}m")) for i in range(1000)]
    plan = rp.compile(features)
    assert _depth(plan.outputs[0]) > sys.getrecursionlimit()

    text = plan.explain()
    lines = text.splitlines()
    assert len(lines) == 1003  # Sink, Project, 1000 windows, Source
    assert lines[2] == "    WindowAggregate partition=[account_id] order=ts frame=(t-1000m, t] aggs=[total_amount_1000m := sum(amt)]"
    assert lines[-1].strip() == SOURCE
    assert plan.explain(schema=True).count("\n") == 1002

    sql = plan.to_sql("duckdb")
    assert sql.count(" OVER ") == 1000 and sql.count(" AS (\n    PARTITION BY") == 1000  # a named window each
    assert '"total_amount_1000m"' in sql

    again = rp.compile(features)
    assert again.outputs[0] == plan.outputs[0] and hash(again.outputs[0]) == hash(plan.outputs[0])
    assert again.outputs[0] != rp.compile(features[:-1] + [total_amount(window=rp.sliding("1001m"))]).outputs[0]
    assert len(walk(plan.outputs)) == 1003
    assert transform(plan.outputs, lambda n: None)[0] is plan.outputs[0]
