"""What a plain install's Spark results cost: collecting without Arrow, against Arrow.

A plain `pip install "relplan[spark,flink]"` gets pyspark 4 beside apache-flink's
pyarrow < 17, which pyspark 4's Arrow paths refuse; relplan then collects results as
rows converted to the IR's types (``relplan.backends.spark.collect``). Both paths run
here on the main environment (pyspark 3.5, whose Arrow path works with its pyarrow),
on the same data in the same run, the Arrow path being the baseline:

- collect alone: 100k rows of the demo's transactions (two Int64 columns, two strings,
  a Float64 with NULLs, a timestamp) read from Parquet, through ``collect(df, sink,
  arrow=...)``: the ratio is what the fallback costs per collected row;
- the plain-install smoke end to end: the demo features on the same 100k rows through
  ``rp.execute(plan, engine="spark")`` (staging, the query, collecting its 100k rows of
  twelve columns), with the process's choice of path set each way: the ratio is what
  a user on a plain install pays.

The fixture warms the JVM on each path first and checks that both give the same rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import relplan as rp
import relplan.backends.spark as spark_backend
from bench.results import record
from relplan.demo import demo_features, make_transactions
from relplan.ir.nodes import Sink, Source
from relplan.ir.schema import Schema

ROWS = 100_000


@contextmanager
def arrow_collect(on: bool) -> Iterator[None]:
    """rp.execute's Spark results through Arrow (``on``) or as rows, for the block."""
    saved = spark_backend.arrow_collect_works()
    spark_backend._ARROW_COLLECT = on
    try:
        yield
    finally:
        spark_backend._ARROW_COLLECT = saved


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


@pytest.fixture(scope="module")
def setup() -> Iterator[dict[str, Any]]:
    session = spark_backend.local_session()
    tx = make_transactions(ROWS, seed=7)
    plan = rp.optimize(rp.compile(demo_features()))
    with tempfile.TemporaryDirectory() as staging:
        path = os.path.join(staging, "tx.parquet")
        pq.write_table(tx, path)
        df = session.read.parquet(path)
        sink = Sink(Source("Transactions", Schema.from_arrow(tx.schema), event_time="ts"), "out")
        results = {}
        for on in (True, False):
            with arrow_collect(on):
                results[on] = rp.execute(plan, engine="spark", tables={"Transactions": tx})
            collected = spark_backend.collect(df, sink, arrow=on)
            assert collected.equals(tx), f"collect(arrow={on}) changed the table"
        assert results[True].num_rows == ROWS and rows(results[True]) == rows(results[False])
        yield {"df": df, "sink": sink, "tx": tx, "plan": plan}


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
def test_spark_collect(benchmark: Any, setup: dict[str, Any], arrow: bool) -> None:
    def run() -> pa.Table:
        return spark_backend.collect(setup["df"], setup["sink"], arrow=arrow)

    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert out.num_rows == ROWS
    record("Spark collect, 100k rows: rows vs Arrow", "baseline" if arrow else "rows (no Arrow)", benchmark)


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
def test_spark_execute(benchmark: Any, setup: dict[str, Any], arrow: bool) -> None:
    def run() -> pa.Table:
        with arrow_collect(arrow):
            return rp.execute(setup["plan"], engine="spark", tables={"Transactions": setup["tx"]})

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows == ROWS
    label = "baseline" if arrow else "rows (no Arrow)"
    record("demo features, 100k rows, Spark: plain install", label, benchmark)
