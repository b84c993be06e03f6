"""Smoke test of a plain install: one feature on Spark and on Flink (batch), as on DuckDB.

`./dev test` runs this file in a third environment made by
`pip install -e ".[spark,flink,test]"` without the constraints file, which is what a
user types; pip then picks pyspark 4 beside apache-flink's pyarrow < 17, too old for
pyspark 4's Arrow paths. It runs in every environment, so the main run has it too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp

T0 = dt.datetime(2024, 3, 10, 6, 30, 0, 123456, tzinfo=dt.timezone.utc)


class Purchases(rp.Source):
    account: rp.Int64
    amount: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def spend(p: Purchases, wspec: rp.WindowSpec) -> Any:
    return p[p.status != "refund"].groupby("account").window(wspec).agg(total=("amount", "sum"), n="count")


def purchases(n: int = 30) -> pa.Table:
    # Amounts are multiples of 0.5, so every engine's sums are exact whatever their order;
    # a NULL key, a unicode status and microseconds in the times.
    return pa.table({
        "account": pa.array([None if i % 7 == 3 else i % 3 for i in range(n)], pa.int64()),
        "amount": pa.array([0.5 * i for i in range(n)], pa.float64()),
        "status": ["refund" if i % 5 == 0 else "achat réglé ✓" for i in range(n)],
        "ts": pa.array([T0 + dt.timedelta(minutes=13 * i, microseconds=i) for i in range(n)],
                       pa.timestamp("us", "UTC")),
    })


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


@pytest.mark.parametrize("engine", ["spark", "flink"])
def test_one_feature_gives_duckdbs_rows(engine: str, request: pytest.FixtureRequest) -> None:
    if engine == "spark":
        request.getfixturevalue("spark")  # the run's one session
    plan = rp.optimize(rp.compile(spend(window=rp.sliding("1h"))))
    expected = rp.execute(plan, engine="duckdb", tables={"Purchases": purchases()})
    got = rp.execute(plan, engine=engine, tables={"Purchases": purchases()})
    assert got.schema.equals(expected.schema)
    assert expected.num_rows == 30 and rows(got) == rows(expected)


def test_spark_collects_through_arrow_exactly_where_pyspark_can(spark: Any) -> None:
    """The Arrow path is kept wherever it works, and left only where pyspark refuses it."""
    from relplan.backends.spark import _collect_arrow, arrow_collect_works

    df = spark.range(3)
    if arrow_collect_works():
        table = _collect_arrow(df)
        assert table is not None and table.column("id").to_pylist() == [0, 1, 2]
    else:
        with pytest.raises(ImportError, match=r"(?i)pyarrow"):
            df.toArrow()
