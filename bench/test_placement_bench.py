"""Placement: what it costs, and how good the cost model's batch estimates are.

1. rp.optimize with knobs (every feature placed: four alternatives estimated, the
   Flink lowering asked what it refuses) against rp.optimize alone, for the 1,000
   features of bench/test_optimizer_bench.py.
2. The cost model's estimate of a DuckDB run against the measured run, for each
   demo feature alone, all six together and a tumbling feature, at 250k and 1M
   events (statistics measured from the table): "estimate" is printed as a ratio
   to the measured "baseline"; the aim is within 3x either way.

The lowering choice of point-in-time joins against each fixed lowering, on sparse
and dense data, is in bench/test_pitc_bench.py (test_windowed_duckdb).
"""

from __future__ import annotations

import math

import pytest

import relplan as rp
from bench.results import RESULTS, record
from bench.test_optimizer_bench import cold, thousand_features
from relplan import demo
from relplan.rules.cost_model import batch_seconds

DAY_S = 30 * 86_400
THOUSAND_STATS = rp.Statistics({
    "Transactions": rp.SourceStats(
        rows=10**7, distinct={"cc_num": 10**5, "account_id": 10**5, "merchant": 10**4, "status": 3},
        spans={"ts": DAY_S * 10**6}, lateness={0: 0, 0.9: 0, 0.99: "20s", 1.0: "5m"},
    ),
    "Payments": rp.SourceStats(rows=10**7, distinct={"payer": 10**5, "payee": 10**5, "device": 10**4}, spans={"ts": DAY_S * 10**6}),
    "Logins": rp.SourceStats(rows=10**7, distinct={"user": 10**5, "device": 10**4, "ip": 10**5}, spans={"ts": DAY_S * 10**6}),
})
PLACE = "1,000 features: optimize (+ placement)"


def test_thousand_features_optimized_baseline(benchmark):
    feats = thousand_features()
    plan = benchmark.pedantic(lambda: rp.optimize(rp.compile(feats), statistics=THOUSAND_STATS), setup=cold, rounds=5, iterations=1)
    assert plan.placement is None
    record(PLACE, "baseline", benchmark)


@pytest.mark.parametrize("knobs", ["cost", "fresh_5m_exact_0.1pct"])
def test_thousand_features_placed(benchmark, knobs):
    feats = thousand_features()
    k = rp.Knobs() if knobs == "cost" else rp.Knobs(max_staleness="5m", max_missed=0.001)
    plan = benchmark.pedantic(
        lambda: rp.optimize(rp.compile(feats), statistics=THOUSAND_STATS, knobs=k), setup=cold, rounds=5, iterations=1
    )
    assert len(plan.placement.features) == 1000
    record(PLACE, f"placed, knobs {knobs}", benchmark)


def _plans() -> dict[str, list[rp.Feature]]:
    feats = demo.demo_features()
    plans = {f.name: [f] for f in feats}
    plans["all six demo features"] = feats
    plans["tumbling 1d count"] = [demo.hourly_failures(window=rp.tumbling("1d"))]
    return plans


@pytest.fixture(scope="module", params=[250_000, 1_000_000], ids=["250k", "1M"])
def measured(request):
    table = demo.make_transactions(request.param, seed=7)
    return request.param, table, rp.measure_statistics({"Transactions": table})


@pytest.mark.parametrize("name", list(_plans()))
def test_cost_estimate_against_a_measured_duckdb_run(benchmark, measured, name):
    rows, table, stats = measured
    plan = rp.optimize(rp.compile(_plans()[name]), statistics=stats)
    tables = {"Transactions": table}
    out = benchmark.pedantic(lambda: rp.execute(plan, "duckdb", tables), rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows > 0
    comparison = f"estimate vs DuckDB, {rows // 1000}k: {name}"[:42]
    measured_s = record(comparison, "baseline", benchmark)
    estimate = batch_seconds(plan.outputs, stats)
    assert estimate is not None
    if not math.isnan(measured_s):  # the benchmark ran
        RESULTS[comparison]["cost model's estimate"] = estimate


@pytest.mark.parametrize("keys", [50, 1_000, 10_000])
@pytest.mark.parametrize("window", ["7d", "30d"])
def test_hybrid_steps_estimate_against_a_measured_duckdb_run(benchmark, keys, window):
    """A hybrid feature's steps job over 60 days of history (1M events), estimated
    and run."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    from relplan.backends.duckdb import _naive
    from relplan.backends.hybrid import split_hybrid
    from relplan.rules.cost_model import hybrid_steps_seconds

    days, n = 60, 1_000_000
    rng = np.random.default_rng(keys)
    ts = np.sort(rng.integers(0, days * 86_400_000_000, n)) + 1_700_000_000_000_000
    events = demo.make_transactions(n, seed=3).set_column(4, "account_id", pa.array(rng.integers(0, keys, n)))
    events = events.set_column(events.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    stats = rp.measure_statistics({"Transactions": events})
    (sink,) = rp.optimize(rp.compile([demo.failed_transaction_count(window=rp.sliding(window))])).outputs
    steps_sql = split_hybrid(sink).steps_sql
    con = duckdb.connect()
    con.register("Transactions", _naive(events))
    benchmark.pedantic(lambda: con.execute(steps_sql), rounds=2, iterations=1)
    comparison = f"estimate vs DuckDB: steps {window}, {keys} keys"
    measured_s = record(comparison, "baseline", benchmark)
    rate = stats.of("Transactions").rate_of("ts")
    estimate = hybrid_steps_seconds(sink, stats, "duckdb", rate, rp.sliding(window).size, days * 86_400_000_000)
    assert estimate is not None
    if not math.isnan(measured_s):
        RESULTS[comparison]["cost model's estimate"] = estimate


@pytest.fixture(scope="module")
def flink_events():
    """The demo's transactions in whole milliseconds (Flink's streaming event time)."""
    import pyarrow as pa

    def make(n: int):
        t = demo.make_transactions(n, days=5, seed=9)
        us = t.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
        return t.set_column(t.schema.get_field_index("ts"), "ts", pa.array(us // 1000 * 1000, pa.timestamp("us", tz="UTC")))

    return {n: {"Transactions": make(n)} for n in (20_000, 200_000)}


@pytest.mark.parametrize("windows", [1, 5])
def test_flink_estimate_against_a_measured_local_streaming_run(benchmark, flink_events, windows):
    """Flink streaming per event: (run of 200k - run of 20k) / 180k against the model's
    nanoseconds per event, for one OVER window and for five."""
    import time

    from relplan.rules.cost_model import stream_ns_per_event

    feats = [f for f in demo.demo_features() if "distinct" not in f.name][:windows]
    plan = rp.optimize(rp.compile(feats))
    rp.execute(plan, "flink", flink_events[20_000], mode="streaming")  # the mini-cluster started

    def per_event() -> float:
        times = {}
        for n, tables in flink_events.items():
            start = time.perf_counter()
            rp.execute(plan, "flink", tables, mode="streaming")
            times[n] = time.perf_counter() - start
        return (times[200_000] - times[20_000]) / 180_000

    measured = benchmark.pedantic(per_event, rounds=1, iterations=1)
    comparison = f"estimate vs Flink streaming, {windows} window(s)"
    RESULTS.setdefault(comparison, {})["baseline"] = measured
    RESULTS[comparison]["cost model's estimate"] = stream_ns_per_event(plan.outputs) / 1e9
