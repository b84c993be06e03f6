"""rp.sql: queries in DuckDB SQL give, through relplan, the rows DuckDB gives them directly."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import relplan as rp

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)


class SqlTx(rp.Source):
    amount: rp.Float64
    n: rp.Int64
    status: rp.String
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time()


ROWS = [
    dict(amount=1.0, n=7, status="failed", account_id=1, ts=T0),
    dict(amount=2.0, n=-7, status="ok", account_id=1, ts=T0 + DAY),
    dict(amount=4.0, n=3, status="failed", account_id=None, ts=T0),
    dict(amount=8.0, n=2, status=None, account_id=2, ts=T0 - DAY),
    dict(amount=16.0, n=-5, status="failed", account_id=1, ts=T0 + DAY),
    dict(amount=None, n=None, status="failed", account_id=None, ts=T0 + 2 * DAY),
]
TABLE = pa.Table.from_pylist(ROWS, schema=SqlTx.to_arrow_schema())

QUERIES = [
    # the frame's edge: an event exactly one day earlier is in RANGE INTERVAL 1 DAY PRECEDING
    """SELECT account_id, ts,
              COUNT(*) OVER (PARTITION BY account_id ORDER BY ts
                             RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW) AS c,
              SUM(amount) OVER (PARTITION BY account_id ORDER BY ts) AS s
       FROM SqlTx""",
    "SELECT account_id, count(*) AS c, sum(amount) AS s, avg(n) AS a FROM SqlTx WHERE status = 'failed' GROUP BY account_id",
    "SELECT n % 2 AS m, n // 2 AS d, n / 2 AS q, CASE WHEN n > 0 THEN 'p' ELSE 'n' END AS sign, coalesce(account_id, -1) AS k FROM SqlTx",
    "WITH f AS (SELECT * FROM SqlTx WHERE status = 'failed') SELECT a.account_id, b.amount FROM f a JOIN SqlTx b ON a.account_id = b.account_id",
    "SELECT n FROM SqlTx UNION ALL SELECT account_id FROM SqlTx",
    "SELECT account_id, time_bucket(INTERVAL '1 day', ts) AS day, count(*) AS c FROM SqlTx GROUP BY account_id, time_bucket(INTERVAL '1 day', ts)",
    "SELECT status, max(amount) AS m FROM (SELECT * FROM SqlTx WHERE n BETWEEN -5 AND 5) t GROUP BY status HAVING count(*) > 1",
    "SELECT status IS NULL AS no_status, n IN (2, 3) AS small, NOT (amount > 2 OR n < 0) AS x FROM SqlTx",
    # the NULL-padded side of right and full joins
    "SELECT a.n, b.amount AS bamount FROM SqlTx a RIGHT JOIN (SELECT * FROM SqlTx WHERE n > 0) b ON a.account_id = b.account_id",
    "SELECT a.n, b.amount AS bamount FROM (SELECT * FROM SqlTx WHERE status = 'ok') a "
    "FULL JOIN (SELECT * FROM SqlTx WHERE n > 0) b ON a.account_id = b.account_id",
]


def duckdb_rows(query: str) -> list[dict]:
    con = duckdb.connect()
    con.register("SqlTx", TABLE)
    return con.sql(query).to_arrow_table().to_pylist()


def canonical(rows: list[dict]) -> list[str]:
    def value(v):  # noqa: ANN001, ANN202
        return v.astimezone(UTC).isoformat() if isinstance(v, dt.datetime) else v

    return sorted(repr(sorted((k, value(v)) for k, v in r.items())) for r in rows)


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_rp_sql_gives_what_duckdb_gives(query: str, engine: str) -> None:
    plan = rp.sql(query, sources=[SqlTx], dialect="duckdb")
    got = rp.execute(plan, engine=engine, tables={"SqlTx": TABLE})
    assert canonical(got.to_pylist()) == canonical(duckdb_rows(query))
    optimized = rp.execute(rp.optimize(plan), engine=engine, tables={"SqlTx": TABLE})
    assert canonical(optimized.to_pylist()) == canonical(got.to_pylist())


def test_a_sql_range_frame_includes_its_edge_and_the_ir_says_so() -> None:
    plan = rp.sql(
        "SELECT ts, COUNT(*) OVER (PARTITION BY account_id ORDER BY ts "
        "RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS c FROM SqlTx",
        sources=[SqlTx], dialect="flink",
    )
    assert "[t-1d, t]" in plan.explain()
