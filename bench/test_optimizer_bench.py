"""What the optimizer buys, each comparison in one run.

1. Twelve features, {count, sum, mean, max} x {1h, 1d, 7d} sliding windows by one
   key over 5M events on DuckDB: one plan per feature (the baseline) against the
   optimized plan, and against the unoptimized single plan.
2. compile + optimize + SQL for 1,000 features over 3 sources and 3 keys, and
   the same after one feature changed.
"""

from __future__ import annotations

import gc

import pytest

import relplan as rp
from bench.results import record
from relplan.demo import Transactions, make_transactions

WINDOWS = ("1h", "1d", "7d")
AGGS = ("count", "sum", "mean", "max")


@rp.transformation
def card_amount(tx: Transactions, wspec: rp.WindowSpec, agg: str = "sum"):
    by_card = tx.groupby("cc_num")
    return by_card.window(wspec).count() if agg == "count" else getattr(by_card["amt"].window(wspec), agg)()


def twelve_features() -> list[rp.Feature]:
    return [card_amount(window=rp.sliding(w), agg=a, name=f"card_{a}_{w}") for w in WINDOWS for a in AGGS]


@pytest.fixture(scope="module")
def events_5m():
    return {"Transactions": make_transactions(5_000_000, seed=11)}


TWELVE = "12 windowed features, 5M events, DuckDB"


def test_twelve_one_plan_per_feature_baseline(benchmark, events_5m):
    plans = [rp.compile([f]) for f in twelve_features()]

    def run():
        return [rp.execute(p, engine="duckdb", tables=events_5m) for p in plans]

    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert all(t.num_rows == 5_000_000 for t in out)
    record(TWELVE, "baseline", benchmark)


def test_twelve_unoptimized_single_plan(benchmark, events_5m):
    plan = rp.optimize(rp.compile(twelve_features()), rp.OptimizerConfig.all_off())
    out = benchmark.pedantic(lambda: rp.execute(plan, engine="duckdb", tables=events_5m), rounds=2, iterations=1)
    assert out.num_rows == 5_000_000
    record(TWELVE, "one plan, rules off", benchmark)


def test_twelve_optimized(benchmark, events_5m):
    plan = rp.optimize(rp.compile(twelve_features()))
    out = benchmark.pedantic(lambda: rp.execute(plan, engine="duckdb", tables=events_5m), rounds=2, iterations=1)
    assert out.num_rows == 5_000_000
    record(TWELVE, "optimized", benchmark)


# ---- compile + optimize + SQL at 1,000 features ---------------------------------


class Payments(rp.Source):
    payer: rp.Int64
    payee: rp.Int64
    device: rp.Int64
    value: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class Logins(rp.Source):
    user: rp.Int64
    device: rp.Int64
    ip: rp.Int64
    latency: rp.Float64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def payment_feature(p: Payments, wspec: rp.WindowSpec, key: str = "payer", agg: str = "sum"):
    return getattr(p[p.value > 0].groupby(key)["value"].window(wspec), agg)()


@rp.transformation
def login_feature(lg: Logins, wspec: rp.WindowSpec, key: str = "user", agg: str = "sum"):
    return getattr(lg.groupby(key)["latency"].window(wspec), agg)()


@rp.transformation
def tx_feature(tx: Transactions, wspec: rp.WindowSpec, key: str = "cc_num", agg: str = "sum"):
    return getattr(tx[tx.status != "declined"].groupby(key)["amt"].window(wspec), agg)()


SOURCES = (
    (tx_feature, ("cc_num", "account_id", "merchant")),
    (payment_feature, ("payer", "payee", "device")),
    (login_feature, ("user", "device", "ip")),
)
MANY_AGGS = ("sum", "mean", "max", "min", "count", "std")


def thousand_features(variant: int = 0) -> list[rp.Feature]:
    feats = []
    for i in range(1000):
        make, keys = SOURCES[i % 3]
        key = keys[(i // 3) % 3]
        agg = MANY_AGGS[(i // 9) % len(MANY_AGGS)]
        minutes = 5 * (1 + i // 54) + (variant if i == 500 else 0)
        feats.append(make(window=rp.sliding(f"{minutes}m"), key=key, agg=agg, name=f"f{i}"))
    return feats


def _pipeline(features: list[rp.Feature], dialects: tuple[str, ...] = ("duckdb",)) -> str:
    plan = rp.optimize(rp.compile(features))
    return "".join(plan.to_sql(d) for d in dialects)


PIPE = "1,000 features: compile + optimize + SQL"


def cold() -> None:
    """Empty caches; the garbage of the round before is not this round's cost."""
    rp.clear_caches()
    gc.collect()


def test_thousand_features_pipeline(benchmark):
    feats = thousand_features()
    sql = benchmark.pedantic(lambda: _pipeline(feats), setup=cold, rounds=5, iterations=1)
    assert sql.count(" OVER ") > 0
    record(PIPE, "baseline", benchmark)


def test_thousand_features_one_changed(benchmark):
    before, changed = thousand_features(), thousand_features(variant=1)

    def compiled_before():  # the set as it was, compiled (untimed) into cold caches
        rp.clear_caches()
        _pipeline(before)
        gc.collect()  # the garbage of that compile is not the recompile's cost

    benchmark.pedantic(lambda: _pipeline(changed), setup=compiled_before, rounds=5, iterations=1)
    record(PIPE, "after one feature changed", benchmark)


DIALECTS = ("duckdb", "spark", "flink")


def test_thousand_features_pipeline_every_dialect(benchmark):
    feats = thousand_features()
    sql = benchmark.pedantic(lambda: _pipeline(feats, DIALECTS), setup=cold, rounds=5, iterations=1)
    assert sql.count(" OVER ") > 0
    record(PIPE, f"cold, SQL for {' + '.join(DIALECTS)}", benchmark)


def test_thousand_features_one_changed_every_dialect(benchmark):
    before, changed = thousand_features(), thousand_features(variant=1)

    def compiled_before():
        rp.clear_caches()
        _pipeline(before, DIALECTS)
        gc.collect()

    benchmark.pedantic(lambda: _pipeline(changed, DIALECTS), setup=compiled_before, rounds=5, iterations=1)
    record(PIPE, f"one changed, SQL for {' + '.join(DIALECTS)}", benchmark)
