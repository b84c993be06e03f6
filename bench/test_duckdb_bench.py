"""The demo features at 1M rows on DuckDB: relplan end to end against the same SQL
run by hand (the baseline), so the ratio is relplan's overhead over the engine."""

from __future__ import annotations

import duckdb
import pyarrow as pa

import relplan as rp
from bench.results import record
from relplan.demo import demo_features


def _plan():
    return rp.compile(demo_features())


def test_duckdb_by_hand_baseline(benchmark, transactions_1m):
    sql = _plan().to_sql("duckdb")
    # By hand, a DuckDB user would load timestamps as naive UTC TIMESTAMP, as relplan does.
    ts_index = transactions_1m.schema.get_field_index("ts")
    naive = transactions_1m.set_column(ts_index, "ts", transactions_1m.column("ts").cast(pa.timestamp("us")))

    def run():
        con = duckdb.connect()
        con.register("Transactions", naive)
        out = con.sql(sql.rstrip(";")).to_arrow_table()
        con.close()
        return out

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    record("demo features, 1M rows, DuckDB", "baseline", benchmark)


def test_duckdb_relplan(benchmark, transactions_1m):
    plan = _plan()
    n_cols = sum(len(f.columns) for f in plan.features)

    def run():
        return rp.execute(plan, engine="duckdb", tables={"Transactions": transactions_1m})

    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.num_rows == transactions_1m.num_rows
    record("demo features, 1M rows, DuckDB", "relplan execute", benchmark)
    record("demo features, 1M rows, DuckDB, per feature", "relplan execute", benchmark, per=n_cols)
