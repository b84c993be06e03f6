"""count_distinct over a sliding window on Flink batch, against the same feature's count.

Flink refuses ``COUNT(DISTINCT x) OVER``; relplan lowers it to
``CARDINALITY(ARRAY_DISTINCT(ARRAY_AGG(x IGNORE NULLS) OVER w))`` (backends/flink.py),
which builds each row's frame as an array. The baseline is ``count`` of the same column
over the same frame (an incremental aggregate), so the ratio is what the distinct
count's arrays cost. Both features run end to end through ``execute_all`` on the demo's
transactions (``make_transactions(20_000, seed=7)``: 30 days, skewed cards), distinct
merchants per card over 1 day and over 30 days (the talk's ``user_unique_ip_30d`` is
such a 30-day distinct count). A warm-up run per plan (in the fixture) also checks the
distinct counts against DuckDB's. A Flink job costs seconds, so three rounds each.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

import relplan as rp
from bench.results import record
from relplan.compiler.execute import execute_all
from relplan.demo import Transactions, make_transactions

pytest.importorskip("pyflink")

ROWS = 20_000
ROUNDS = 3


@rp.transformation
def merchants_count(tx: Transactions, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("cc_num")["merchant"].window(wspec).count()


@rp.transformation
def merchants_count_distinct(tx: Transactions, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("cc_num")["merchant"].window(wspec).nunique()


def _name(func: str, window: str) -> str:
    return f"merchants_{func}_{window}"


def _plan(func: str, window: str) -> rp.Plan:
    feature = {"count": merchants_count, "count_distinct": merchants_count_distinct}[func]
    return rp.optimize(rp.compile([feature(window=rp.sliding(window), name=_name(func, window))]))


@pytest.fixture(scope="module")
def transactions() -> pa.Table:
    return make_transactions(ROWS, seed=7)


@pytest.fixture(scope="module", params=["1d", "30d"])
def window(request: Any, transactions: pa.Table) -> str:
    """A warmed-up window size: both plans run once, the distinct counts checked against DuckDB."""
    for func in ("count", "count_distinct"):
        plan = _plan(func, request.param)
        got = execute_all(plan, "flink", {"Transactions": transactions}, mode="batch")["Transactions"]
        if func == "count_distinct":
            want = execute_all(plan, "duckdb", {"Transactions": transactions})["Transactions"]
            column = _name(func, request.param)
            key = ["cc_num", "ts", "merchant", "amt"]
            assert got.sort_by([(c, "ascending") for c in key]).column(column) == want.sort_by(
                [(c, "ascending") for c in key]).column(column)
    return request.param


def _comparison(window: str) -> str:
    return f"distinct merchants per card, sliding {window}, {ROWS // 1000}k rows, Flink batch"


def _run(benchmark: Any, transactions: pa.Table, func: str, window: str) -> None:
    plan = _plan(func, window)
    out = benchmark.pedantic(
        lambda: execute_all(plan, "flink", {"Transactions": transactions}, mode="batch"), rounds=ROUNDS, iterations=1
    )
    assert out["Transactions"].num_rows == ROWS


def test_flink_count_baseline(benchmark: Any, transactions: pa.Table, window: str) -> None:
    _run(benchmark, transactions, "count", window)
    record(_comparison(window), "baseline", benchmark)


def test_flink_count_distinct(benchmark: Any, transactions: pa.Table, window: str) -> None:
    _run(benchmark, transactions, "count_distinct", window)
    record(_comparison(window), "count_distinct (ARRAY_AGG/ARRAY_DISTINCT)", benchmark)
