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
    # ROWS frames whose rows do not depend on the order among tied rows (account 1 has two
    # rows at T0 + 1 day): the whole partition, and the row alone
    """SELECT account_id, ts,
              SUM(amount) OVER (PARTITION BY account_id ORDER BY ts
                                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS total,
              COUNT(*) OVER (ORDER BY n DESC ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS everyone,
              MAX(n) OVER (PARTITION BY status ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS top,
              SUM(amount) OVER (PARTITION BY account_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS own,
              COUNT(amount) FILTER (WHERE n > 0) OVER (ORDER BY ts ROWS CURRENT ROW) AS own_c,
              AVG(n) OVER (ORDER BY ts ROWS CURRENT ROW) AS own_avg,
              MIN(status) OVER (ORDER BY ts ROWS CURRENT ROW) AS own_min,
              VAR_SAMP(amount) OVER (ORDER BY ts ROWS CURRENT ROW) AS own_var
       FROM SqlTx""",
    "SELECT status, COUNT(*) AS c, MAX(COUNT(*)) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS most "
    "FROM SqlTx GROUP BY status",
    # no ORDER BY, no frame: the whole partition too
    "SELECT account_id, n, SUM(amount) OVER (PARTITION BY account_id) AS total, COUNT(*) OVER () AS everyone, "
    "MIN(n) FILTER (WHERE status = 'failed') OVER (PARTITION BY status) AS least FROM SqlTx",
    # JOIN ... USING (k): the unqualified k is the joined column (the left's, the right's
    # for a RIGHT JOIN, the one that is there for a FULL JOIN); SELECT * shows it once
    "SELECT account_id, a.n, b.n AS bn FROM SqlTx a JOIN SqlTx b USING (account_id) WHERE account_id > 0",
    "SELECT account_id, a.n, b.n AS bn FROM (SELECT * FROM SqlTx WHERE n <= 2) a "
    "LEFT JOIN (SELECT * FROM SqlTx WHERE n >= 3) b USING (account_id)",
    "SELECT account_id, a.n, b.n AS bn FROM (SELECT * FROM SqlTx WHERE n <= 2) a "
    "RIGHT JOIN (SELECT * FROM SqlTx WHERE n >= 3) b USING (account_id)",
    "SELECT account_id, a.account_id AS aid, b.account_id AS bid, a.n, b.n AS bn FROM (SELECT * FROM SqlTx WHERE n <= 2) a "
    "FULL JOIN (SELECT * FROM SqlTx WHERE n >= 3) b USING (account_id)",
    "SELECT account_id, COUNT(*) AS c FROM (SELECT account_id, n FROM SqlTx WHERE n <= 2) a "
    "FULL JOIN (SELECT account_id, amount FROM SqlTx WHERE n >= 3) b USING (account_id) GROUP BY account_id",
    # relplan's first() (ARG_MIN of a time-first key) over the row alone: the row's value
    "SELECT account_id, ts, n, ARG_MIN(n, CASE WHEN NOT n IS NULL THEN {'f0': ts, 'f1': n} END) OVER "
    "(PARTITION BY account_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS f FROM SqlTx",
    # FILTER on a grouped aggregate (every engine reads it; only over a window do Spark and Flink refuse it)
    "SELECT account_id, COUNT(*) FILTER (WHERE status = 'failed') AS failed, SUM(amount) FILTER (WHERE n > 0) AS s, "
    "COUNT(*) AS c FROM SqlTx GROUP BY account_id HAVING COUNT(*) FILTER (WHERE n < 0) >= 0",
    "SELECT * FROM (SELECT account_id, n FROM SqlTx WHERE n <= 2) a "
    "FULL JOIN (SELECT amount, account_id FROM SqlTx WHERE n >= 3) b USING (account_id)",
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


def test_rows_frames_read_need_no_order_among_ties() -> None:
    plan = rp.sql(QUERIES[10], sources=[SqlTx], dialect="duckdb")
    text = plan.explain()
    assert "own := amount" in text  # the row alone: a value of the row, no frame
    assert text.count("frame=(-inf, t]") == 3  # the whole partition: every row a peer of the others
    got = {(r["account_id"], r["ts"].astimezone(UTC)): r["total"] for r in rp.execute(plan, tables={"SqlTx": TABLE}).to_pylist()}
    assert got[(1, T0)] == 19.0 and got[(None, T0)] == 4.0


def test_select_star_shows_a_using_column_once_first_as_duckdb_does() -> None:
    query = QUERIES[-1]
    plan = rp.sql(query, sources=[SqlTx], dialect="duckdb")
    names = plan.outputs[0].schema.names
    con = duckdb.connect()
    con.register("SqlTx", TABLE)
    assert list(names) == [d[0] for d in con.sql(query).description] == ["account_id", "n", "amount"]


def test_a_using_column_beside_a_third_sides_column_of_its_name_is_refused_as_ambiguous() -> None:
    # DuckDB reads it as the USING column; relplan asks for a qualifier rather than pick
    query = "SELECT account_id FROM SqlTx a JOIN SqlTx b USING (account_id) JOIN SqlTx c ON a.n = c.n"
    with pytest.raises(rp.SchemaError, match="'account_id' is ambiguous"):
        rp.sql(query, sources=[SqlTx], dialect="duckdb")


class UsA(rp.Source):
    v: rp.Int64
    k: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time()


class UsB(rp.Source):
    w: rp.Int64
    ts: rp.Timestamp = rp.event_time()
    k: rp.Int64 = rp.key()


@pytest.mark.parametrize("query", [
    "SELECT * FROM UsA JOIN UsB USING (k, ts)", "SELECT * FROM UsA RIGHT JOIN UsB USING (ts, k)",
    "SELECT * FROM UsB LEFT JOIN UsA USING (ts, k)", "SELECT * FROM UsA FULL JOIN UsB USING (k, ts)",
])
def test_select_star_over_using_orders_columns_as_duckdb_does(query: str) -> None:
    """DuckDB keeps a USING column where the left side has it (v, k, ts, w); Spark and
    Flink put the USING columns first (tests/test_sql_engines checks Spark's)."""
    con = duckdb.connect()
    for cls in (UsA, UsB):
        con.register(cls.__name__, pa.Table.from_pylist([], schema=cls.to_arrow_schema()))
    want = [d[0] for d in con.execute(query).description]
    assert [f.name for f in rp.sql(query, sources=[UsA, UsB]).outputs[0].schema] == want
