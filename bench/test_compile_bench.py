"""Compile time at 10, 100 and 1,000 features, in ms per feature.

Times are per feature; the baseline is the 10-feature compile, so a ratio of 1.0
means compile time grows linearly with the number of features.
"""

from __future__ import annotations

import pytest

import relplan as rp
from bench.results import record
from relplan.demo import Transactions

AGGS = ["count", "sum", "mean", "max", "min", "std"]


@rp.transformation
def amount_feature(tx: Transactions, wspec: rp.WindowSpec, agg: str = "sum"):
    return getattr(tx[tx.status != "declined"].groupby("cc_num")["amt"].window(wspec), agg)()


def many_features(n: int) -> list[rp.Feature]:
    return [
        amount_feature(window=rp.sliding(f"{i + 1}m"), agg=AGGS[i % len(AGGS)], name=f"f{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_compile(benchmark, n):
    feats = many_features(n)
    # Cold: the compile cache would otherwise answer every round after the first.
    plan = benchmark.pedantic(rp.compile, args=(feats,), setup=rp.clear_caches, rounds=20 if n == 1000 else 100)
    assert len(plan.outputs[0].schema) == len(Transactions.schema()) + n
    record("compile, per feature", "baseline" if n == 10 else f"{n} features", benchmark, per=n)


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_compile_and_sql(benchmark, n):
    feats = many_features(n)

    def run():
        return rp.compile(feats).to_sql("duckdb")

    sql = benchmark.pedantic(run, setup=rp.clear_caches, rounds=5 if n == 1000 else 20)
    assert sql.count(" OVER ") == n
    record("compile + to_sql(duckdb), per feature", "baseline" if n == 10 else f"{n} features", benchmark, per=n)
