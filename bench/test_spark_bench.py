"""The demo features at 1M rows on a local Spark (one session for the run).

Two comparisons, each in this run:
- relplan end to end (stage the Arrow table as Parquet, run, collect Arrow) against
  a user doing the same by hand with relplan's SQL text through spark.sql: the ratio
  is relplan's overhead over the engine;
- the optimized plan against the plan as compiled (rules off), both through relplan.
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
def spark():
    from relplan.backends.spark import local_session

    return local_session()


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

    out = benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    record("demo features, 1M rows, Spark", "baseline", benchmark)


@pytest.mark.parametrize("optimized", [True, False], ids=["optimized", "rules-off"])
def test_spark_relplan(benchmark, spark, transactions_1m, optimized):
    compiled = rp.compile(demo_features())
    plan = rp.optimize(compiled) if optimized else compiled

    def run():
        return rp.execute(plan, engine="spark", tables={"Transactions": transactions_1m})

    out = benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    label = "relplan, optimized" if optimized else "relplan, rules off"
    record("demo features, 1M rows, Spark", label, benchmark)
    record("demo features on Spark: rules off vs optimized", "baseline" if not optimized else label, benchmark)
