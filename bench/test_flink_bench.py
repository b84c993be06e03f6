"""The demo features at 100k rows on a local Flink, batch and streaming: relplan end
to end against the same SQL run by hand (the baseline), so the ratio is relplan's
overhead over the engine.

The features are ``demo_features()`` less ``distinct_merchants`` (the figures in docs/performance.md
were measured without it; its lowering on Flink, ARRAY_AGG/ARRAY_DISTINCT, is measured
against ``count`` in bench/test_flink_distinct_bench.py). The
data is the demo's (``make_transactions(100_000, seed=7)``) with event times rounded
down to whole milliseconds (Flink's streaming event time has millisecond precision);
both sides get the same rounded table.

What each side's time includes, per round:

- **relplan**: ``execute_all(plan, "flink", {"Transactions": table}, mode=mode)``:
  checking the table against the source, writing it as JSON lines, the temporary
  tables' DDL, one job, reading the output's part files with json into Arrow in the
  IR's types, and dropping the tables and files.
- **by hand**: the script of ``plan.to_sql("flink", mode=mode, connectors=...)``
  (made once, before the timing; filesystem connectors on fixed paths), and in the
  timing: writing the same table as JSON lines with a plain ``json.dumps`` loop over
  ``to_pylist()``, running the script statement by statement on the same
  ``local_table_env(mode)`` (``run_script``: SET to the configuration, the rest through
  ``execute_sql(...).wait()``), reading the output's part files with json into
  Python dicts (no Arrow), and dropping the two tables and the output files.

Each mode is warmed up once per side in its fixture (class loading and JIT: the
first job of a mode takes two to three times as long), which also checks that both
sides give the same rows. A Flink job costs seconds, so three rounds each.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import relplan as rp
from bench.flink_by_hand import read_json_parts, write_json_lines
from bench.results import record
from relplan.backends.flink import filesystem_options, local_table_env, run_script
from relplan.compiler.execute import execute_all
from relplan.demo import demo_features, make_transactions

pytest.importorskip("pyflink")

ROWS = 100_000
ROUNDS = 3
OUTPUT = "Transactions_features"  # the table the per-event output is written to


def _plan() -> rp.Plan:
    # Without the demo's nunique feature, as the figures in docs/performance.md were measured.
    features = [f for f in demo_features() if not f.name.startswith("distinct_merchants")]
    return rp.optimize(rp.compile(features))


@pytest.fixture(scope="module")
def transactions_100k() -> pa.Table:
    table = make_transactions(ROWS, seed=7)
    us = table.column("ts").cast(pa.int64())
    ms = pc.multiply(pc.divide(us, 1000), 1000).cast(pa.timestamp("us", tz="UTC"))  # floor: times are > 0
    return table.set_column(table.schema.get_field_index("ts"), "ts", ms)


class ByHand:
    """The script run as a user would, with the files of one directory."""

    def __init__(self, plan: rp.Plan, mode: str, table: pa.Table, directory: str) -> None:
        self.mode, self.table = mode, table
        self.source_dir = os.path.join(directory, "Transactions")
        self.out_dir = os.path.join(directory, OUTPUT)
        os.makedirs(self.source_dir, exist_ok=True)
        connectors = {
            "Transactions": filesystem_options(self.source_dir), OUTPUT: filesystem_options(self.out_dir),
        }
        self.script = plan.to_sql("flink", mode=mode, connectors=connectors)

    def __call__(self) -> list[dict]:
        env = local_table_env(self.mode)
        write_json_lines(self.table, os.path.join(self.source_dir, "tx.json"))
        try:
            run_script(self.script, env)
            return read_json_parts(self.out_dir)
        finally:
            for table in ("Transactions", OUTPUT):
                env.execute_sql(f"DROP TABLE IF EXISTS `{table}`")
            shutil.rmtree(self.out_dir, ignore_errors=True)


def _sorted_rows(rows: list[dict], columns: list[str]) -> list[tuple]:
    return sorted(tuple((r[c] is None, r[c] if r[c] is not None else 0) for c in columns) for r in rows)


def _same_rows(relplan_out: pa.Table, by_hand: list[dict]) -> None:
    """Every row equal (the same engine on the same input: exact, floats too)."""
    assert relplan_out.num_rows == len(by_hand) == ROWS
    columns = relplan_out.column_names
    ours = relplan_out.to_pylist()
    for r in ours:
        r["ts"] = r["ts"].replace(tzinfo=None)
    theirs = [{**r, "ts": dt.datetime.fromisoformat(r["ts"])} for r in by_hand]
    assert _sorted_rows(ours, columns) == _sorted_rows(theirs, columns)


@pytest.fixture(scope="module", params=["batch", "streaming"])
def flink_mode(request, transactions_100k, tmp_path_factory):
    """A warmed-up mode: relplan and by hand once each, and their rows compared."""
    mode = request.param
    plan = _plan()
    by_hand = ByHand(plan, mode, transactions_100k, str(tmp_path_factory.mktemp(f"flink-{mode}")))
    ours = execute_all(plan, "flink", {"Transactions": transactions_100k}, mode=mode)["Transactions"]
    _same_rows(ours, by_hand())
    return mode, plan, by_hand


def _comparison(mode: str) -> str:
    return f"demo features, 100k rows, Flink {mode}"


def test_flink_by_hand_baseline(benchmark, flink_mode):
    mode, _, by_hand = flink_mode
    out = benchmark.pedantic(by_hand, rounds=ROUNDS, iterations=1)
    assert len(out) == ROWS
    record(_comparison(mode), "baseline", benchmark)


def test_flink_relplan(benchmark, flink_mode, transactions_100k):
    mode, plan, _ = flink_mode

    def run():
        return execute_all(plan, "flink", {"Transactions": transactions_100k}, mode=mode)

    out = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert out["Transactions"].num_rows == ROWS
    record(_comparison(mode), "relplan execute_all", benchmark)
