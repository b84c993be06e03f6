"""Enrichment joins and derived features on DuckDB: what they cost.

Two comparisons, each within this run (the summary at the end prints the ratios):

1. **Enrichment as of event time** (``tx.merge_asof(Merchants, by="merchant_id")``):
   ENRICH_EVENTS events, each enriched with the version of its merchant (a
   DIMENSION_ROWS-row dimension: DIMENSION_KEYS merchants, several versions each) at
   or before the event's time. ``rp.execute`` of a plan whose output is the enriched
   rows (the merge's relation, no feature: the join alone) against DuckDB's
   ``ASOF LEFT JOIN`` written by hand over the same Arrow tables (``ASOF_SQL``, the
   baseline; the goal is relplan within 1.2x). relplan's plan is optimized
   (``rp.optimize``: choose_asof_lowering picks ``lowering=asof``, DuckDB's ASOF JOIN),
   and the run proves on the given tables that the enriched columns hold no NULL and
   no two versions of a merchant share a time (``with_proven_properties`` in
   backends/asof.py: a NULL count and a group-by of 100k rows), so it sends one ASOF
   JOIN for all the columns. Also timed, to say where a difference comes from:
   relplan told that no two versions of a merchant share a time (declared
   statistics, ``UNIQUE_VERSIONS``: the group-by skipped); the general SQL
   (``plan.to_sql("duckdb")``, which assumes nothing about the data: one ASOF JOIN
   per column and the ties settled) run by hand; by hand one ASOF JOIN per enriched
   column (``ASOF_PER_COLUMN_SQL``: the general shape, each column the newest
   non-NULL value of its own, without settling ties); and the compiled plan run
   without ``rp.optimize`` (no lowering chosen: the ``union`` lowering, a sort and
   window over events + versions; one round, it is slow). Every result is checked
   against the baseline's, outside the timing.
2. **A derived feature over shared windows**: two features over the same key and
   sliding window (``sum`` and ``count`` of amt, one window pass after
   ``share_windows``) against the same two plus ``rp.derived("avg_amt_1h", ...)``
   of them, both optimized and run with ``rp.execute``. The derived one is a Project
   over the shared window: no extra pass over the events (the test prints the
   explain() text and checks it), so the ratio should be about 1.0x.

Data: numpy with fixed seeds, built once per module (never timed). Events (cc_num,
merchant_id, amt, ts naive UTC microseconds) over DAYS days in time order; a
merchant's versions (risk, category, updated_at) at distinct times from 30 days
before the events to their end, no NULLs, so the hand-written single ASOF JOIN and
relplan's per-column latest() give the same rows (and relplan can prove it).

``RELPLAN_BENCH_SCALE`` (default 1.0) multiplies every row count:

    .venv/bin/python -m pytest bench/test_joins_bench.py --benchmark-only -s
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import relplan as rp
from relplan.backends.asof import with_proven_properties
from relplan.compiler.dsl import DataFrame
from relplan.compiler.joins import relation
from relplan.ir import nodes

from bench.results import RESULTS
from bench.test_pitc_bench import duckdb_query

SCALE = float(os.environ.get("RELPLAN_BENCH_SCALE", "1.0"))

ENRICH_EVENTS = 5_000_000
DIMENSION_ROWS = 100_000
DIMENSION_KEYS = 25_000  # 4 versions per merchant
CARDS = 50_000
DERIVED_EVENTS = 5_000_000
ROUNDS = 5  # rounds of alternation, after one warm-up round
SLOW_ROUNDS = 1  # the plan not optimized: about half a minute to a minute at full size

DAYS = 60
START_US = 1_700_000_000_000_000
DAY_US = 86_400_000_000


def scaled(rows: int) -> int:
    return max(10, round(rows * SCALE))


class Transactions(rp.Source):
    cc_num: rp.Int64 = rp.key()
    merchant_id: rp.Int64
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class Merchants(rp.Source):
    merchant_id: rp.Int64 = rp.key()
    risk: rp.Float64
    category: rp.String
    updated_at: rp.Timestamp = rp.event_time()


ENRICHED = ["cc_num", "merchant_id", "amt", "ts", "risk", "category", "updated_at"]

ASOF_SQL = """
SELECT t.cc_num, t.merchant_id, t.amt, t.ts, m.risk, m.category, m.updated_at
FROM tx AS t ASOF LEFT JOIN merchants AS m ON t.merchant_id = m.merchant_id AND t.ts >= m.updated_at
"""

# relplan's shape by hand: each column's own newest non-NULL version (one ASOF JOIN
# each), the ties left unsettled.
ASOF_PER_COLUMN_SQL = """
SELECT t.cc_num, t.merchant_id, t.amt, t.ts, r.risk, c.category, u.updated_at
FROM tx AS t
ASOF LEFT JOIN (SELECT merchant_id, updated_at AS at, risk FROM merchants WHERE risk IS NOT NULL) AS r
  ON t.merchant_id = r.merchant_id AND t.ts >= r.at
ASOF LEFT JOIN (SELECT merchant_id, updated_at AS at, category FROM merchants WHERE category IS NOT NULL) AS c
  ON t.merchant_id = c.merchant_id AND t.ts >= c.at
ASOF LEFT JOIN (SELECT merchant_id, updated_at AS at, updated_at FROM merchants WHERE updated_at IS NOT NULL) AS u
  ON t.merchant_id = u.merchant_id AND t.ts >= u.at
"""

# Declared (like a primary key): one version per merchant and time, so no ties to settle.
UNIQUE_VERSIONS = rp.Statistics({"Merchants": rp.SourceStats(rows=0, unique=[("merchant_id", "updated_at")])})


# ---- data ---------------------------------------------------------------------------

def make_transactions(rows: int, seed: int = 41) -> pa.Table:
    rng = np.random.default_rng(seed)
    us = np.sort(rng.integers(START_US, START_US + DAYS * DAY_US, rows))
    popularity = 1.0 / np.arange(1, DIMENSION_KEYS + 1) ** 0.8  # a few merchants get most of the traffic
    return pa.table({
        "cc_num": pa.array(rng.integers(0, CARDS, rows), pa.int64()),
        "merchant_id": pa.array(rng.choice(DIMENSION_KEYS, rows, p=popularity / popularity.sum()), pa.int64()),
        "amt": pa.array(np.round(rng.gamma(2.0, 30.0, rows), 2)),
        "ts": pa.array(us, pa.timestamp("us")),
    })


def make_merchants(rows: int, keys: int, seed: int = 42) -> pa.Table:
    rng = np.random.default_rng(seed)
    # Distinct times (+i us): no two versions share a time, so UNIQUE_VERSIONS is true.
    us = np.sort(rng.integers(START_US - 30 * DAY_US, START_US + DAYS * DAY_US, rows)) + np.arange(rows)
    categories = np.array(["food", "travel", "fuel", "online", "retail"], dtype=object)
    return pa.table({
        "merchant_id": pa.array(rng.integers(0, keys, rows), pa.int64()),
        "risk": pa.array(np.round(rng.random(rows), 3)),
        "category": pa.array(categories[rng.integers(0, len(categories), rows)], pa.string()),
        "updated_at": pa.array(us, pa.timestamp("us")),
    })




def canonical(table: pa.Table) -> pa.Table:
    """The enriched rows in one order, with the types the hand-written SQL gives."""
    t = pa.table({c: table.column(c).cast(pa.timestamp("us")) if c in ("ts", "updated_at") else table.column(c)
                  for c in ENRICHED})
    return t.sort_by([("ts", "ascending"), ("cc_num", "ascending"), ("merchant_id", "ascending"), ("amt", "ascending")])


# ---- alternation ------------------------------------------------------------------

def alternate(benchmark, runs: dict[str, object], rounds: int) -> tuple[dict[str, float], dict[str, object]]:
    """Each of ``runs`` (label -> function) once per round, in an order rotated every
    round, the rounds timed by pytest-benchmark: the machine's load (other work on
    the same cores) falls on every side alike, so the medians' ratios hold where
    sequential tests' do not. Returns each label's median seconds and last result."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    last: dict[str, object] = {}
    labels = list(runs)
    turn = [0]

    def one_round() -> None:
        k = turn[0] % len(labels)
        turn[0] += 1
        for label in labels[k:] + labels[:k]:
            t0 = time.perf_counter()
            last[label] = runs[label]()  # type: ignore[operator]
            times[label].append(time.perf_counter() - t0)

    benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=1)
    warm = {label: ts[1:] for label, ts in times.items()}  # the warm-up round left out
    return {label: float(np.median(ts)) for label, ts in warm.items()}, last


def record_medians(comparison: str, medians: dict[str, float], benchmark) -> None:
    if benchmark.stats is None:  # --benchmark-disable: the suite ran as plain tests
        return
    RESULTS.setdefault(comparison, {}).update(medians)
    base = medians["baseline"]
    for label, secs in medians.items():
        print(f"{comparison}: {label}: {secs:.2f} s ({secs / base:.2f}x)")


# ---- 1. enrichment as of event time -----------------------------------------------

@pytest.fixture(scope="module")
def enrich():
    tx = make_transactions(scaled(ENRICH_EVENTS))
    merchants = make_merchants(scaled(DIMENSION_ROWS), min(DIMENSION_KEYS, scaled(DIMENSION_ROWS)))
    enriched = DataFrame(Transactions).merge_asof(Merchants, by="merchant_id")
    plan = rp.Plan((nodes.Sink(relation(enriched), "Transactions_Merchants"),), ())
    reference = canonical(duckdb_query(ASOF_SQL, tx=tx, merchants=merchants))
    matched = reference.num_rows - reference.column("risk").null_count
    print(f"\n{tx.num_rows:,} events x {merchants.num_rows:,} merchant versions: {matched:,} events matched a version")
    return tx, merchants, plan, reference


def enrich_comparison(tx: pa.Table, merchants: pa.Table) -> str:
    return f"merge_asof, DuckDB: {tx.num_rows / 1e6:g}M events x {merchants.num_rows / 1e3:g}k versions"


def test_merge_asof_duckdb(benchmark, enrich):
    """The baseline, relplan optimized, relplan told the versions are unique, relplan's
    general SQL and its shape by hand, in alternation."""
    tx, merchants, compiled, reference = enrich
    tables = {"Transactions": tx, "Merchants": merchants}
    plan = rp.optimize(compiled)
    assert "lowering=asof" in plan.explain() and "unique_times" not in plan.explain()
    unique = rp.optimize(compiled, statistics=UNIQUE_VERSIONS)
    assert "lowering=asof unique_times" in unique.explain()
    general_sql = plan.to_sql("duckdb")  # assumes nothing about the data
    assert general_sql.count("ASOF LEFT JOIN") == 3
    # What a run on these tables proves (no NULL, no tie) and so sends: one ASOF JOIN.
    proven = rp.Plan(with_proven_properties(plan.outputs, tables), ())
    assert "lowering=asof unique_times no_nulls" in proven.explain()
    run_sql = proven.to_sql("duckdb")
    assert run_sql.count("ASOF LEFT JOIN") == 1
    print("\n" + proven.explain() + "\n" + run_sql)
    runs = {
        "baseline": lambda: duckdb_query(ASOF_SQL, tx=tx, merchants=merchants),
        "relplan execute (optimized)": lambda: rp.execute(plan, engine="duckdb", tables=tables),
        "relplan, versions declared unique": lambda: rp.execute(unique, engine="duckdb", tables=tables),
        "relplan's general SQL (nothing proven) by hand": lambda: duckdb_query(general_sql, Transactions=tx, Merchants=merchants),
        "by hand, one ASOF JOIN per column": lambda: duckdb_query(ASOF_PER_COLUMN_SQL, tx=tx, merchants=merchants),
    }
    medians, last = alternate(benchmark, runs, ROUNDS)
    for label, out in last.items():
        assert canonical(out).equals(reference), f"{label}: the enriched rows differ from the ASOF JOIN's"
    record_medians(enrich_comparison(tx, merchants), medians, benchmark)


def test_merge_asof_not_optimized_duckdb(benchmark, enrich):
    """The compiled plan run as it is (no lowering chosen: union), beside the ASOF JOIN
    by hand in alternation; one round after the warm-up, it is slow."""
    tx, merchants, compiled, reference = enrich
    tables = {"Transactions": tx, "Merchants": merchants}
    assert "lowering=" not in compiled.explain()
    runs = {
        "baseline": lambda: duckdb_query(ASOF_SQL, tx=tx, merchants=merchants),
        "relplan, plan not optimized": lambda: rp.execute(compiled, engine="duckdb", tables=tables),
    }
    medians, last = alternate(benchmark, runs, SLOW_ROUNDS)
    assert canonical(last["relplan, plan not optimized"]).equals(reference)
    record_medians(enrich_comparison(tx, merchants) + " (not optimized)", medians, benchmark)


# ---- 2. a derived feature over shared windows -------------------------------------

@rp.transformation
def spend(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("cc_num")["amt"].window(wspec).sum()


@rp.transformation
def tx_count(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("cc_num").window(wspec).count()


SPEND = spend(window=rp.sliding("1h"))
COUNT = tx_count(window=rp.sliding("1h"))
AVG = rp.derived("avg_amt_1h", rp.where(COUNT > 0, SPEND / COUNT))


@pytest.fixture(scope="module")
def derived_events() -> pa.Table:
    return make_transactions(scaled(DERIVED_EVENTS), seed=43)


def test_derived_feature_duckdb(benchmark, derived_events):
    """The two features alone (the baseline) and with the derived one, in alternation."""
    plans = {label: rp.optimize(rp.compile(features)) for label, features in
             (("baseline", [SPEND, COUNT]), ("with rp.derived (one Project)", [SPEND, COUNT, AVG]))}
    for plan in plans.values():  # one window pass over the events, whether or not the derived feature is there
        assert plan.explain().count("WindowAggregate") == 1, plan.explain()
    text = plans["with rp.derived (one Project)"].explain()
    assert re.search(r"avg_amt_1h := CASE WHEN tx_count_1h > 0 THEN spend_1h / tx_count_1h", text), text
    print("\n" + text)
    tables = {"Transactions": derived_events}
    runs = {label: (lambda p=plan: rp.execute(p, engine="duckdb", tables=tables)) for label, plan in plans.items()}
    medians, last = alternate(benchmark, runs, ROUNDS)
    out = last["with rp.derived (one Project)"]
    assert out.num_rows == derived_events.num_rows
    expected = pc.divide(out.column("spend_1h"), out.column("tx_count_1h").cast(pa.float64()))
    assert np.allclose(out.column("avg_amt_1h").to_numpy(), expected.to_numpy())
    comparison = f"derived over 2 shared-window features, DuckDB: {derived_events.num_rows / 1e6:g}M events"
    record_medians(comparison, medians, benchmark)
