"""Golden SQL per dialect: the text relplan emits, checked exactly, parsed, and run as is.

The expected SQL lives in ``tests/golden/<name>.sql`` (DuckDB) and
``tests/golden/spark/<name>.sql`` (Spark). After an intended change
to the lowering, regenerate the files and review their diff:

    RELPLAN_UPDATE_GOLDEN=1 python -m pytest tests/test_sql_golden.py
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

import relplan as rp

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RELPLAN_UPDATE_GOLDEN") == "1"


def check_golden(name: str, sql: str, dialect: str = "duckdb") -> None:
    """Compare ``sql`` with its golden file (or rewrite it under RELPLAN_UPDATE_GOLDEN=1)."""
    path = (GOLDEN if dialect == "duckdb" else GOLDEN / dialect) / f"{name}.sql"
    text = sql + "\n"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with RELPLAN_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"SQL differs from {path}; if intended, regenerate with RELPLAN_UPDATE_GOLDEN=1"


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def failed_count(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def average_amount_by_merchant(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby(["cc_num", "merchant"])["amt"].window(wspec).mean()


@rp.transformation
def big_spend(tx: Transactions, wspec: rp.WindowSpec):
    return tx[(tx.amt >= 100) & ~(tx.status == "failed")].groupby("account_id")["amt"].window(wspec).sum()


@rp.transformation
def bucket_spread(tx: Transactions, wspec: rp.WindowSpec):
    return tx.assign(bucket=tx.cc_num % 4).groupby("bucket")["amt"].window(wspec).std()


@rp.transformation
def merchant_history(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(first=("merchant", "first"), last=("merchant", "last"))


@rp.transformation
def daily_stats(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status != "failed"].groupby("account_id").window(wspec).agg(
        total=("amt", "sum"), n="count", merchants=("merchant", "nunique"), largest=("amt", "max")
    )


def _plan_per_event_failed_count() -> rp.Plan:
    return rp.compile(failed_count(window=rp.sliding("1h")))


def _plan_per_event_features() -> rp.Plan:
    return rp.compile([
        average_amount_by_merchant(window=rp.sliding("1d")),
        big_spend(window=rp.lifetime()),
        bucket_spread(window=rp.sliding("30m")),
        merchant_history(window=rp.sliding("2h")),
    ])


def _plan_tumbling_daily_stats() -> rp.Plan:
    return rp.compile(daily_stats(window=rp.tumbling("1d")))


def _plan_hopping_and_tumbling() -> rp.Plan:
    return rp.compile([
        average_amount_by_merchant(window=rp.hopping("1h", "20m")),
        failed_count(window=rp.tumbling("6h")),
    ])


PLANS: dict[str, Callable[[], rp.Plan]] = {
    "per_event_failed_count": _plan_per_event_failed_count,
    "per_event_features": _plan_per_event_features,
    "tumbling_daily_stats": _plan_tumbling_daily_stats,
    "hopping_and_tumbling": _plan_hopping_and_tumbling,
}

T0 = dt.datetime(2024, 1, 1, 22, 0, tzinfo=dt.timezone.utc)


def _at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# Edge cases on purpose: an event exactly 1h after another (outside the 1h window),
# ties on time, a NULL key, NULL amounts, events on both sides of midnight.
ROWS = [
    # cc_num, merchant, amt, status, account_id, minutes after T0
    (1, "m1", 10.0, "failed", 7, 0),
    (1, "m1", 250.0, "ok", 7, 30),
    (2, "m2", None, "failed", 7, 60),
    (2, "m2", 120.0, "ok", 7, 60),
    (5, "m1", 5.0, "failed", 8, 90),
    (3, "m3", 40.0, "failed", None, 100),
    (1, "m2", 300.0, "ok", 7, 150),
    (6, "m3", 75.5, "failed", 8, 130),
]


def transactions_table() -> pa.Table:
    cols = list(zip(*ROWS))
    return pa.table(
        {
            "cc_num": pa.array(cols[0], pa.int64()),
            "merchant": pa.array(cols[1], pa.string()),
            "amt": pa.array(cols[2], pa.float64()),
            "status": pa.array(cols[3], pa.string()),
            "account_id": pa.array(cols[4], pa.int64()),
            "ts": pa.array([_at(m) for m in cols[5]], pa.timestamp("us", "UTC")),
        }
    )


def _naive(table: pa.Table) -> pa.Table:
    """UTC timestamps as naive TIMESTAMP, as relplan's DuckDB backend registers them."""
    return pa.Table.from_arrays(
        [c.cast(pa.timestamp("us")) if pa.types.is_timestamp(c.type) else c for c in table.columns],
        names=table.column_names,
    )


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


def _run_sql_text(sql: str, tables: dict[str, pa.Table]) -> list[pa.Table]:
    """Run the emitted SQL text as is, one result per statement."""
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            con.register(name, _naive(table))
        return [con.sql(stmt.query).to_arrow_table() for stmt in con.extract_statements(sql)]
    finally:
        con.close()


@pytest.fixture(scope="module", params=sorted(PLANS))
def golden(request: pytest.FixtureRequest) -> tuple[str, rp.Plan, str]:
    plan = PLANS[request.param]()
    return request.param, plan, plan.to_sql("duckdb")


DIALECTS = ("duckdb", "spark")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(PLANS))
def test_sql_matches_golden_file(name: str, dialect: str) -> None:
    check_golden(name, PLANS[name]().to_sql(dialect), dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(PLANS))
def test_sql_parses_with_quoted_identifiers(name: str, dialect: str) -> None:
    plan = PLANS[name]()
    sql = plan.to_sql(dialect)
    statements = sqlglot.parse(sql, read=dialect)
    assert len(statements) == len(plan.outputs)
    for stmt, sink in zip(statements, plan.outputs):
        assert isinstance(stmt, exp.Select)
        assert [e.alias_or_name for e in stmt.expressions] == list(sink.schema.names)
        identifiers = [i for i in stmt.find_all(exp.Identifier) if not _struct_key(i)]
        assert identifiers and all(i.quoted for i in identifiers), [i.sql() for i in identifiers if not i.quoted]
    # Re-rendering the parse gives the same text: nothing was lost in the dialect.
    again = ";\n\n".join(
        (f"-- output: {s.name}\n" if len(plan.outputs) > 1 else "") + stmt.sql(dialect=dialect, pretty=True)
        for s, stmt in zip(plan.outputs, statements)
    ) + ";"
    assert sqlglot.parse(again, read=dialect) == statements


def _struct_key(i: exp.Identifier) -> bool:
    """A key of a struct literal (relplan's fixed f0, f1 for first/last): DuckDB
    writes it as a string, {'f0': ...}, and sqlglot parses it as a bare identifier."""
    return isinstance(i.parent, exp.PropertyEQ) and i.arg_key == "this"


def test_sql_runs_on_duckdb(golden: tuple[str, rp.Plan, str]) -> None:
    _, plan, sql = golden
    tables = {"Transactions": transactions_table()}
    results = _run_sql_text(sql, tables)
    through_api = rp.execute_all(plan, engine="duckdb", tables=tables)
    assert len(results) == len(plan.outputs)
    for raw, sink in zip(results, plan.outputs):
        assert raw.column_names == list(sink.schema.names)
        assert raw.num_rows > 0
        assert _rows(raw.cast(sink.schema.to_arrow())) == _rows(through_api[sink.name])


def test_sql_runs_on_spark_as_is(golden: tuple[str, rp.Plan, str], spark: Any) -> None:
    """The Spark text, submitted by hand through spark.sql over a view named like the
    source, gives the rows relplan's own Spark and DuckDB runs give."""
    name, plan, _ = golden
    table = transactions_table()
    spark.createDataFrame(table.to_pandas()).createOrReplaceTempView("Transactions")
    try:
        results = [spark.sql(stmt) for stmt in _statements(plan.to_sql("spark"))]
        through_duckdb = rp.execute_all(plan, engine="duckdb", tables={"Transactions": table})
        assert len(results) == len(plan.outputs)
        for df, sink in zip(results, plan.outputs):
            assert df.columns == list(sink.schema.names)
            raw = pa.Table.from_pandas(df.toPandas(), preserve_index=False)
            assert raw.num_rows > 0
            assert _rows(raw.cast(sink.schema.to_arrow())) == _rows(through_duckdb[sink.name])
    finally:
        spark.catalog.dropTempView("Transactions")


def _statements(script: str) -> list[str]:
    """The statements of a relplan SQL script, as a user splits it: at ``;`` + blank line."""
    return [s.strip().removesuffix(";") for s in script.split(";\n\n")]


def test_per_event_failed_count_values() -> None:
    """The golden per-event SQL gives, at every event, the failed events of its
    account in ``(t - 1h, t]``; a NULL account gets NULL."""
    plan = _plan_per_event_failed_count()
    (raw,) = _run_sql_text(plan.to_sql("duckdb"), {"Transactions": transactions_table()})
    got = {(r["cc_num"], r["account_id"], r["ts"], r["amt"]): r["failed_count_1h"] for r in raw.to_pylist()}
    expected = {}
    for cc, _, amt, _, acct, m in ROWS:
        if acct is None:
            n = None
        else:
            n = sum(1 for _, _, _, st, a, m2 in ROWS if a == acct and st == "failed" and m - 60 < m2 <= m)
        expected[(cc, acct, _at(m).replace(tzinfo=None), amt)] = n
    assert got == expected
    # Spot checks of the edges: the event at minute 60 does not see the one at minute 0.
    assert got[(2, 7, _at(60).replace(tzinfo=None), 120.0)] == 1
    assert got[(3, None, _at(100).replace(tzinfo=None), 40.0)] is None


def test_tumbling_daily_stats_values() -> None:
    plan = _plan_tumbling_daily_stats()
    (raw,) = _run_sql_text(plan.to_sql("duckdb"), {"Transactions": transactions_table()})
    day1, day2 = dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)
    assert _rows(raw) == _rows(pa.Table.from_pylist([
        # account 7 on Jan 1 (22:30 ok 250, 23:00 ok 120), on Jan 2 (00:30 ok 300); account 8 only failed
        {"account_id": 7, "window_start": day1, "window_end": day2, "daily_stats_tumble_1d_total": 370.0,
         "daily_stats_tumble_1d_n": 2, "daily_stats_tumble_1d_merchants": 2, "daily_stats_tumble_1d_largest": 250.0},
        {"account_id": 7, "window_start": day2, "window_end": day2 + dt.timedelta(days=1),
         "daily_stats_tumble_1d_total": 300.0, "daily_stats_tumble_1d_n": 1, "daily_stats_tumble_1d_merchants": 1,
         "daily_stats_tumble_1d_largest": 300.0},
    ]))


# ---- identifiers and literals that would break naive SQL ------------------------------

NASTY_COLUMN = 'a"b; DROP TABLE x --'
NASTY_SOURCE = 'Tx "x"; DROP TABLE x --'
NASTY_STATUS = 'it\'s "failed"'


def _nasty_table() -> pa.Table:
    return pa.table(
        {
            NASTY_COLUMN: pa.array([1, 1, 2, None, 1], pa.int64()),
            "status": [NASTY_STATUS, "ok", NASTY_STATUS, NASTY_STATUS, "it's"],
            "v": [1.0, 2.0, 3.0, 4.0, 5.0],
            "ts": pa.array([_at(0), _at(1), _at(2), _at(3), _at(4)], pa.timestamp("us", "UTC")),
        }
    )


@pytest.fixture(scope="module")
def nasty_source() -> type[rp.Source]:
    return rp.Source.from_arrow_schema(NASTY_SOURCE, _nasty_table().schema, event_time="ts")


def _nasty_plan(source: type[rp.Source], window: rp.WindowSpec) -> rp.Plan:
    @rp.transformation
    def failed_total(s: source, wspec: rp.WindowSpec):  # type: ignore[valid-type]
        return s[s.status == NASTY_STATUS].groupby(NASTY_COLUMN)["v"].window(wspec).sum()

    return rp.compile(failed_total(window=window))


@pytest.mark.parametrize("window", [rp.sliding("1h"), rp.tumbling("1h")], ids=["per-event", "per-window"])
def test_identifiers_are_quoted_and_literals_escaped(nasty_source: type[rp.Source], window: rp.WindowSpec) -> None:
    plan = _nasty_plan(nasty_source, window)
    sql = plan.to_sql("duckdb")
    assert '"a""b; DROP TABLE x --"' in sql
    assert 'FROM "Tx ""x""; DROP TABLE x --"' in sql
    assert "'it''s \"failed\"'" in sql

    (stmt,) = sqlglot.parse(sql, read="duckdb")
    names = {i.this for i in stmt.find_all(exp.Identifier)}
    assert {NASTY_COLUMN, NASTY_SOURCE} <= names
    assert all(i.quoted for i in stmt.find_all(exp.Identifier))
    strings = {lit.this for lit in stmt.find_all(exp.Literal) if lit.is_string}
    assert strings == {NASTY_STATUS}
    assert not list(stmt.find_all(exp.Drop))


def test_nasty_names_round_trip_through_execution(nasty_source: type[rp.Source]) -> None:
    table = _nasty_table()
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE x (keep INTEGER)")
        per_event = rp.execute(
            _nasty_plan(nasty_source, rp.sliding("1h")), engine="duckdb", tables={NASTY_SOURCE: table}, connection=con
        )
        per_window = rp.execute(
            _nasty_plan(nasty_source, rp.tumbling("1h")), engine="duckdb", tables={NASTY_SOURCE: table}, connection=con
        )
        # Nothing was dropped: the "--" and ";" stayed inside quotes.
        assert con.execute("SELECT count(*) FROM x").fetchone() == (0,)
    finally:
        con.close()

    assert per_event.column_names == [NASTY_COLUMN, "status", "v", "ts", "failed_total_1h"]
    # Key 1: failed (v=1) at 0, ok at 1, "it's" (not equal to the literal) at 4.
    assert _by_v(per_event) == [
        (1, NASTY_STATUS, 1.0, 1.0), (1, "ok", 2.0, 1.0), (2, NASTY_STATUS, 3.0, 3.0),
        (None, NASTY_STATUS, 4.0, None), (1, "it's", 5.0, 1.0),
    ]

    assert _rows(per_window) == _rows(pa.Table.from_pylist(
        [
            {NASTY_COLUMN: 1, "window_start": _at(0), "window_end": _at(60), "failed_total_tumble_1h": 1.0},
            {NASTY_COLUMN: 2, "window_start": _at(0), "window_end": _at(60), "failed_total_tumble_1h": 3.0},
        ],
        schema=per_window.schema,
    ))


def test_nasty_sql_text_runs_as_emitted(nasty_source: type[rp.Source]) -> None:
    plan = _nasty_plan(nasty_source, rp.sliding("1h"))
    (raw,) = _run_sql_text(plan.to_sql("duckdb"), {NASTY_SOURCE: _nasty_table()})
    assert [r[-1] for r in _by_v(raw)] == [1.0, 1.0, 3.0, None, 1.0]


def _by_v(table: pa.Table) -> list[tuple[Any, ...]]:
    """(key, status, v, feature) rows in the order of v (unique): SQL keeps no row order."""
    rows = [(r[NASTY_COLUMN], r["status"], r["v"], r["failed_total_1h"]) for r in table.to_pylist()]
    return sorted(rows, key=lambda r: r[2])
