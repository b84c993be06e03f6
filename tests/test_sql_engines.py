"""rp.sql plans are plans like the DSL's: Spark and Flink run them to DuckDB's rows, placement
places them and explain() shows them."""

from __future__ import annotations

from typing import Any

import pytest

import relplan as rp
from tests.test_sql_frontend import QUERIES, TABLE, SqlTx, canonical

# Flink runs each query as a job (1.5-2.5 s): a few queries cover its lowerings of what
# rp.sql builds (NULL-safe keys, inclusive frames, grouping, joins, unions, whole-partition
# and one-row ROWS frames).
FLINK_QUERIES = [QUERIES[0], QUERIES[1], QUERIES[3], QUERIES[5], QUERIES[10]]


def rows(plan: rp.Plan, engine: str, **options: Any) -> list[str]:
    return canonical(rp.execute(plan, engine=engine, tables={"SqlTx": TABLE}, **options).to_pylist())


@pytest.mark.parametrize("query", QUERIES)
def test_spark_runs_a_sql_plan_to_duckdbs_rows(spark: Any, query: str) -> None:
    plan = rp.optimize(rp.sql(query, sources=[SqlTx], dialect="duckdb"))
    assert rows(plan, "spark", session=spark) == rows(plan, "duckdb")


@pytest.mark.parametrize("query", FLINK_QUERIES)
def test_flink_batch_runs_a_sql_plan_to_duckdbs_rows(query: str) -> None:
    pytest.importorskip("pyflink")
    plan = rp.optimize(rp.sql(query, sources=[SqlTx], dialect="duckdb"))
    assert rows(plan, "flink") == rows(plan, "duckdb")


def test_placement_places_a_sql_plan_and_explain_shows_it() -> None:
    plan = rp.sql(QUERIES[0], sources=[SqlTx], dialect="spark", name="counts")
    stats = rp.measure_statistics({"SqlTx": TABLE})
    placed = rp.optimize(plan, statistics=stats, knobs=rp.Knobs(max_staleness="1m"))
    text = placed.explain()
    assert "[t-1d, t]" in text and "counts" in text
    assert placed.placement is not None and "placement" in text.lower()
    assert "rows" in plan.explain(statistics=stats)


def test_flink_reads_the_sentinel_that_puts_null_times_first() -> None:
    """In Flink's (and Spark's) ascending window order NULLs come first: rp.sql orders a
    nullable time by a sentinel of year 1, whose literal Flink must parse (strftime's %Y
    had written it as '1-01-01', which Flink refused)."""
    pytest.importorskip("pyflink")
    query = """WITH t AS (SELECT account_id, amount, CASE WHEN status = 'failed' THEN ts END AS fts FROM SqlTx)
               SELECT account_id, fts, SUM(amount) OVER (PARTITION BY account_id ORDER BY fts
                  RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total FROM t"""
    plan = rp.sql(query, sources=[SqlTx], dialect="flink")
    assert "'0001-01-01 00:00:00.000000'" in plan.to_sql("flink")
    assert rows(plan, "flink") == rows(plan, "duckdb")


def test_select_star_over_using_puts_the_using_columns_first_as_spark_does(spark: Any) -> None:
    from tests.test_sql_frontend import UsA, UsB

    for cls in (UsA, UsB):
        spark.createDataFrame([], schema=", ".join(f"{f.name} {'bigint' if f.name != 'ts' else 'timestamp'}"
                                                   for f in cls.to_arrow_schema())).createOrReplaceTempView(cls.__name__)
    for query in ("SELECT * FROM UsA JOIN UsB USING (k, ts)", "SELECT * FROM UsB LEFT JOIN UsA USING (ts, k)"):
        got = [f.name for f in rp.sql(query, sources=[UsA, UsB], dialect="spark").outputs[0].schema]
        assert got == spark.sql(query).columns
