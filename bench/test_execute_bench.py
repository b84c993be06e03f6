"""execute() overhead on small inputs: rp.execute of a one-feature sliding-window plan
on 100 rows against the same SQL run by hand on a warm DuckDB connection (register,
query, fetch as Arrow: what a user calling DuckDB directly pays).

The ratio matters less here than the absolute difference, relplan's fixed cost per
call (connection, input checks, SQL, result types): it is measured from calls in
alternation and printed as its own line, "relplan - by hand (paired)", in ms.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import relplan as rp
from bench.results import RESULTS, record
from relplan.demo import make_transactions, transaction_count

COMPARISON = "execute(), 1 feature, 100 rows, DuckDB"
ROUNDS = 300


@pytest.fixture(scope="module")
def small() -> tuple[rp.Plan, pa.Table]:
    plan = rp.compile([transaction_count(window=rp.sliding("1h"))])
    return plan, make_transactions(100, seed=7)


def _naive(table: pa.Table) -> pa.Table:
    # By hand, a DuckDB user would load timestamps as naive UTC TIMESTAMP, as relplan does.
    i = table.schema.get_field_index("ts")
    return table.set_column(i, "ts", table.column("ts").cast(pa.timestamp("us")))


def _by_hand(con: Any, sql: str, table: pa.Table) -> pa.Table:
    con.register("Transactions", table)  # replaces the previous round's registration
    return con.sql(sql).to_arrow_table()


def test_execute_by_hand_warm_baseline(benchmark, small):
    plan, tx = small
    sql, naive = plan.to_sql("duckdb").rstrip(";"), _naive(tx)
    con = duckdb.connect()
    try:
        out = benchmark.pedantic(_by_hand, args=(con, sql, naive), rounds=ROUNDS, iterations=1, warmup_rounds=20)
    finally:
        con.close()
    assert out.num_rows == tx.num_rows
    record(COMPARISON, "baseline", benchmark)


def test_execute_relplan(benchmark, small):
    plan, tx = small

    def run() -> pa.Table:
        return rp.execute(plan, engine="duckdb", tables={"Transactions": tx})

    out = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    assert out.num_rows == tx.num_rows
    record(COMPARISON, "relplan execute", benchmark)


def test_execute_overhead_paired(benchmark, small):
    # The absolute overhead, relplan minus by hand, from calls in alternation: on a
    # shared machine the load drifts between the suites above, and a difference of two
    # medians taken seconds apart can be off by more than the overhead itself.
    plan, tx = small
    sql, naive = plan.to_sql("duckdb").rstrip(";"), _naive(tx)
    con = duckdb.connect()
    diffs: list[float] = []

    def timed(f: Any) -> float:
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    def pair() -> None:
        relplan = lambda: rp.execute(plan, engine="duckdb", tables={"Transactions": tx})  # noqa: E731
        by_hand = lambda: _by_hand(con, sql, naive)  # noqa: E731
        if len(diffs) % 2:  # each first in turn
            h, r = timed(by_hand), timed(relplan)
        else:
            r, h = timed(relplan), timed(by_hand)
        diffs.append(r - h)

    try:
        benchmark.pedantic(pair, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    finally:
        con.close()
    if benchmark.stats is not None:  # not with --benchmark-disable
        # A comparison without a baseline prints its time alone: the overhead in ms.
        paired = statistics.median(diffs[20:])
        RESULTS.setdefault(f"{COMPARISON}: overhead", {})["relplan - by hand (paired)"] = paired


def test_execute_by_hand_new_connection(benchmark, small):
    # For scale: what a fresh connection per call costs (what execute() did at first).
    plan, tx = small
    sql, naive = plan.to_sql("duckdb").rstrip(";"), _naive(tx)

    def run() -> pa.Table:
        con = duckdb.connect()
        try:
            return _by_hand(con, sql, naive)
        finally:
            con.close()

    out = benchmark.pedantic(run, rounds=ROUNDS // 3, iterations=1, warmup_rounds=5)
    assert out.num_rows == tx.num_rows
    record(COMPARISON, "by hand, new connection", benchmark)


def test_execute_by_hand_new_cursor(benchmark, small):
    # What execute() does without connection=: a fresh cursor of an open database per
    # call (its registrations die with it) instead of reusing one connection.
    plan, tx = small
    sql, naive = plan.to_sql("duckdb").rstrip(";"), _naive(tx)
    db = duckdb.connect()

    def run() -> pa.Table:
        cursor = db.cursor()
        try:
            cursor.register("Transactions", naive)
            return cursor.sql(sql).to_arrow_table()
        finally:
            cursor.close()

    try:
        out = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=20)
    finally:
        db.close()
    assert out.num_rows == tx.num_rows
    record(COMPARISON, "by hand, new cursor", benchmark)
