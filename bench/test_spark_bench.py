"""The demo features at 1M rows on a local Spark (one session for the run, warmed up).

Two comparisons, each in this run:
- relplan end to end (stage the Arrow table as Parquet, run, collect Arrow) against
  a user doing the same by hand with relplan's SQL text through spark.sql: the ratio
  is relplan's overhead over the engine;
- the optimized plan against the plan as compiled (rules off), both through relplan.
  Spark's own optimizer already merges adjacent windows with the same partition and
  order (Catalyst's CollapseWindow), so share_windows gains less here than on DuckDB.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import relplan as rp
from bench.results import record
from relplan.demo import demo_features


@pytest.fixture(scope="module")
def spark(transactions_1m):
    from relplan.backends.spark import local_session

    session = local_session()
    # Warm the JVM (class loading, JIT) on the same query first: otherwise whichever
    # benchmark runs first pays for it and the ratios say nothing.
    plan = rp.optimize(rp.compile(demo_features()))
    for _ in range(2):
        rp.execute(plan, engine="spark", tables={"Transactions": transactions_1m})
    return session


def _collect(df) -> pa.Table:
    return pa.Table.from_batches(df._collect_as_arrow())


def test_spark_by_hand_baseline(benchmark, spark, transactions_1m):
    sql = rp.optimize(rp.compile(demo_features())).to_sql("spark").rstrip(";")

    def run():
        staging = tempfile.mkdtemp()
        try:
            path = os.path.join(staging, "tx.parquet")
            pq.write_table(transactions_1m, path)
            spark.read.parquet(path).createOrReplaceTempView("Transactions")
            return _collect(spark.sql(sql))
        finally:
            shutil.rmtree(staging)

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    record("demo features, 1M rows, Spark", "baseline", benchmark)


@pytest.mark.parametrize("optimized", [True, False], ids=["optimized", "rules-off"])
def test_spark_relplan(benchmark, spark, transactions_1m, optimized):
    compiled = rp.compile(demo_features())
    plan = rp.optimize(compiled) if optimized else compiled

    def run():
        return rp.execute(plan, engine="spark", tables={"Transactions": transactions_1m})

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    label = "relplan, optimized" if optimized else "relplan, rules off"
    record("demo features, 1M rows, Spark", label, benchmark)
    record("demo features on Spark: rules off vs optimized", "baseline" if not optimized else label, benchmark)
