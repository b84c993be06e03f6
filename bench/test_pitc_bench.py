"""Point-in-time-correct training data (``rp.pitc_join_features``): what it costs.

Three suites, every one timed end to end from Arrow tables to the Arrow result, each
comparison within this run (the summary at the end prints the ratios):

1. **Latest value as of t, DuckDB** (``rp.latest(Events, "amt", by="key")``): a spine
   of LATEST_SPINE rows over LATEST_EVENTS events, with many keys (sparse: 100 events a
   key) and with few (dense: 10k events a key). The baseline is DuckDB's ASOF JOIN
   written by hand (``ASOF_SQL``; the target is relplan within 1.2x of it). Also timed:
   the same with relplan's tie rule by hand (``ASOF_TIES_SQL``: the raw ASOF JOIN
   picks any of the events tied at the newest time, relplan the largest value),
   relplan told that no two events share a key and a time (``UNIQUE_TIMES``, declared
   statistics: no ties to settle; on these events, a log in time order without two
   events at one time, relplan finds that itself in one pass and skips settling too),
   relplan and the ASOF JOIN on the same events shuffled (a comparison of its own:
   out of time order, relplan cannot tell cheaply and settles the ties in SQL),
   the range join + ROW_NUMBER() a feature store generates (``ROW_NUMBER_SQL``) and
   pandas ``merge_asof`` (Arrow to pandas, both sorts, the merge, back to Arrow). On
   the dense shape the range join pairs every spine row with its key's 10k events
   (10^10 pairs at full size, hours): it runs on a spine of ROW_NUMBER_DENSE_SPINE rows
   instead, in a comparison of its own with the ASOF JOIN and relplan on that spine.
2. **Windowed aggregates at spine times, DuckDB**: count, sum and max of amt over a
   sliding window of 1, 7 or 30 days, sparse (100k spine x 5M events, 50k keys), dense
   (50 keys; smaller, see WINDOW_SHAPES: the range join's pairs grow as spine x events /
   keys) and a shape between them where the cost model's constants decide. relplan's
   own choice of lowering (statistics measured from ``tables=`` on every call) against
   each lowering forced (range_join, tiles, union: ``OptimizerConfig(asof_lowering=...)``,
   FORCE; every variant pays for the same statistics). The baseline of each
   comparison is the faster forced lowering (known once both ran); the label says which
   lowering relplan chose (``rp.pitc_plan(...).explain()``).
3. **Spark and Flink (batch)** at SMALL_SPINE x SMALL_EVENTS, the latest value and one
   windowed feature: relplan against the same plan's SQL run by hand (``plan.to_sql``,
   the spine's row number, keys and time staged as ``pitc_spine`` by the user), and
   relplan on each engine against relplan on DuckDB on the same data. The label shows
   the plan's lowering as explain() does; engines without an ``asof`` lowering run the
   latest value as ``union`` (Flink: the newest time by a window, then an equi-join).

Data: numpy with fixed seeds, built once per module (module-scoped fixtures, never
timed). Events (key int64, ts timestamp[us], amt float64) are a log in time order over
DAYS days; a spine row (key, ts, label) is half the time an event's own key and time
(an event to score: its own event must not count, ``inclusive=False``) and otherwise a
random key and time. Every result is checked, outside the timing: the latest value
against the hand-written ASOF JOIN's (every row), windowed aggregates against a
hand-written SQL on a sample of spine rows and across lowerings (every row), Spark and
Flink against DuckDB.

Sizes are the module constants below; ``RELPLAN_BENCH_SCALE`` (default 1.0) multiplies
every row count (not the key counts): ``RELPLAN_BENCH_SCALE=0.01`` checks the file in
seconds plus the JVMs' start-up.

    .venv/bin/python -m pytest bench/test_pitc_bench.py --benchmark-only -s
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import relplan as rp
from relplan.backends.asof import ROW
from relplan.compiler.pitc import OUTPUT, SPINE

from bench.flink_by_hand import read_json_parts, write_json_lines
from bench.results import RESULTS, record

SCALE = float(os.environ.get("RELPLAN_BENCH_SCALE", "1.0"))

# 1. Latest value, DuckDB.
LATEST_SPINE = 1_000_000
LATEST_EVENTS = 10_000_000
LATEST_KEYS = {"sparse": 100_000, "dense": 1_000}
ROW_NUMBER_DENSE_SPINE = 10_000  # the dense shape's range join + ROW_NUMBER runs on this many spine rows
LATEST_ROUNDS = 3  # ASOF JOIN by hand and relplan (after one warm-up round)
SLOW_ROUNDS = 1  # range join + ROW_NUMBER, pandas: seconds to a minute each

# 2. Windowed aggregates, DuckDB: (spine rows, events, keys).
# dense: 10k events a key, a spine row pairs with 10k of them (range join: 5*10^8 pairs, about
# 4 s; at the 100k x 5M it would be 10^10, minutes a round). crossover: the same keys
# and events, a fifth of the spine: 10^8 pairs, where range join and union cost about the
# same (tiles beat both: figures in docs/performance.md).
WINDOW_SHAPES = {
    "sparse": (100_000, 5_000_000, 50_000),
    "dense": (50_000, 500_000, 50),
    "crossover": (10_000, 500_000, 50),
}
WINDOWS = ("1d", "7d", "30d")
WINDOW_ROUNDS = 2
CHECK_SAMPLE = 200  # spine rows checked against the hand-written SQL

# 3. Spark and Flink (batch), and DuckDB on the same data.
SMALL_SPINE = 10_000
SMALL_EVENTS = 100_000
SMALL_KEYS = 1_000
SMALL_WINDOW = "7d"
JVM_ROUNDS = 2  # a Flink job costs seconds

DAYS = 60
SPINE_FROM_EVENTS = 0.5  # share of spine rows made from an event (its key and time)
START_US = 1_700_000_000_000_000
DAY_US = 86_400_000_000


def scaled(rows: int) -> int:
    return max(10, round(rows * SCALE))


def human(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return str(n)


class Events(rp.Source):
    key: rp.Int64 = rp.key()
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def amt_stats(ev: Events, wspec: rp.WindowSpec):
    return ev.groupby("key")["amt"].window(wspec).agg(n="count", total=("amt", "sum"), biggest=("amt", "max"))


LATEST = [rp.latest(Events, "amt", by="key")]
LATEST_COLUMNS = ["latest_amt"]


def windowed(window: str) -> list[rp.Feature]:
    return [amt_stats(window=rp.sliding(window), name=f"amt_{window}")]


def windowed_columns(window: str) -> list[str]:
    return [f"amt_{window}_{a}" for a in ("n", "total", "biggest")]


# A lowering forced: the optimizer's hint (statistics are still measured from tables=).
FORCE = {lowering: rp.OptimizerConfig(asof_lowering=lowering) for lowering in ("range_join", "tiles", "union")}


# ---- data ---------------------------------------------------------------------------

def make_events(rows: int, keys: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    # Strictly increasing times (+i us: 10 s over 60 days at 10M rows): no two events share
    # a time, so the declared uniqueness of (key, ts) relplan_unique relies on is true.
    us = np.sort(rng.integers(START_US, START_US + DAYS * DAY_US, rows)) + np.arange(rows)
    return pa.table({
        "key": pa.array(rng.integers(0, keys, rows), pa.int64()),
        "ts": pa.array(us, pa.timestamp("us")),
        "amt": pa.array(np.round(rng.gamma(2.0, 30.0, rows), 2)),
    })


def make_spine(rows: int, events: pa.Table, keys: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    from_event = rng.random(rows) < SPINE_FROM_EVENTS
    pick = rng.integers(0, events.num_rows, rows)
    event_keys = events.column("key").to_numpy()[pick]
    event_us = events.column("ts").cast(pa.int64()).to_numpy()[pick]
    key = np.where(from_event, event_keys, rng.integers(0, keys, rows))
    us = np.where(from_event, event_us, rng.integers(START_US, START_US + DAYS * DAY_US, rows))
    return pa.table({
        "key": pa.array(key, pa.int64()),
        "ts": pa.array(us, pa.timestamp("us")),
        "label": pa.array(rng.random(rows) < 0.05),
    })


# ---- the competitors --------------------------------------------------------------

ASOF_SQL = "SELECT s.*, e.amt FROM spine s ASOF LEFT JOIN events e ON s.key = e.key AND s.ts > e.ts"
# The same with relplan's tie rule written by hand (the raw ASOF JOIN picks any of the
# events tied at the newest time): events reduced to one row per key and time first.
ASOF_TIES_SQL = (
    "SELECT s.*, e.amt FROM spine s ASOF LEFT JOIN (SELECT key, ts, MAX(amt) AS amt FROM events "
    "WHERE amt IS NOT NULL GROUP BY key, ts) e ON s.key = e.key AND s.ts > e.ts"
)

# What feature stores generate: every (spine row, older event of its key) pair, the
# newest kept. LEFT JOIN: a spine row without older events is kept, with NULL.
ROW_NUMBER_SQL = """
SELECT key, ts, label, amt FROM (
  SELECT s.key, s.ts, s.label, e.amt,
         ROW_NUMBER() OVER (PARTITION BY s.spine_row ORDER BY e.ts DESC) AS rn
  FROM (SELECT *, ROW_NUMBER() OVER () AS spine_row FROM spine) AS s
  LEFT JOIN events AS e ON s.key = e.key AND e.ts < s.ts
) WHERE rn = 1
"""


def duckdb_query(sql: str, **tables: pa.Table) -> pa.Table:
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def pandas_merge_asof(spine: pa.Table, events: pa.Table) -> pa.Table:
    import pandas as pd

    s = spine.to_pandas().sort_values("ts", kind="stable")
    e = events.to_pandas().sort_values("ts", kind="stable")
    merged = pd.merge_asof(s, e, on="ts", by="key", direction="backward", allow_exact_matches=False)
    return pa.Table.from_pandas(merged, preserve_index=False)


def relplan_latest(spine: pa.Table, events: pa.Table, engine: str = "duckdb", statistics=None) -> pa.Table:
    return rp.pitc_join_features(spine, LATEST, tables={"Events": events}, engine=engine, statistics=statistics)


# Declared (like a primary key): one event per key and time, so there are no ties to settle.
UNIQUE_TIMES = rp.Statistics({"Events": rp.SourceStats(rows=0, unique=[("key", "ts")])})


def lowerings(spine: pa.Table, features: list[rp.Feature], events: pa.Table, config=None) -> str:
    """The lowering(s) of the plan's point-in-time joins, as explain() shows them."""
    plan = rp.pitc_plan(spine, features, tables={"Events": events}, config=config)
    return ",".join(sorted(set(re.findall(r"lowering=(\w+)", plan.explain()))))


# ---- checks (never timed) ---------------------------------------------------------

def _first_difference(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> str:
    for i, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist())):
        if x != y:
            return f"row {i}: {x!r} != {y!r}"
    return "lengths differ"


def assert_columns_match(got: pa.Table, expected: pa.Table, columns: list[str], what: str) -> None:
    """Row for row: counts, max and latest values exactly, sums to rounding."""
    assert got.num_rows == expected.num_rows, f"{what}: {got.num_rows} rows, expected {expected.num_rows}"
    for c in columns:
        a, b = got.column(c).combine_chunks(), expected.column(c).combine_chunks()
        a = a.cast(b.type)
        if c.endswith("_total"):
            assert a.is_null().equals(b.is_null()), f"{what}: {c} NULL where it should not be"
            x, y = pc.fill_null(a, 0.0).to_numpy(), pc.fill_null(b, 0.0).to_numpy()
            bad = ~np.isclose(x, y, rtol=1e-9, atol=1e-6)
            assert not bad.any(), f"{what}: {c} differs in {int(bad.sum())} rows, e.g. row {int(np.argmax(bad))}"
        else:
            assert a.equals(b), f"{what}: {c} differs, {_first_difference(a, b)}"


def _canonical(table: pa.Table, value: str) -> pa.Table:
    """(key, ts, label, value) sorted: rows from engines that do not keep the spine's order."""
    t = pa.table({
        "key": table.column("key").cast(pa.int64()),
        "ts": table.column("ts").cast(pa.timestamp("us")),
        "label": table.column("label"),
        "value": table.column(value).cast(pa.float64()),
    })
    return t.take(pc.sort_indices(t, sort_keys=[("key", "ascending"), ("ts", "ascending"), ("label", "ascending")]))


def assert_same_latest(got: pa.Table, value: str, reference: pa.Table, what: str) -> None:
    """Every row: the same (key, ts, label) rows with the same newest amount (any order)."""
    assert_columns_match(_canonical(got, value), _canonical(reference, "latest_amt"), ["key", "ts", "label", "value"], what)


def assert_spine_kept(out: pa.Table, spine: pa.Table, what: str) -> None:
    """relplan's promise: the spine, row for row and in its order, plus the features."""
    assert out.select(spine.column_names).equals(spine), f"{what}: the spine's rows or their order changed"


def latest_reference(spine: pa.Table, events: pa.Table) -> pa.Table:
    """The hand-written ASOF JOIN's answer, in spine order: the spine plus latest_amt."""
    rows = spine.append_column("spine_row", pa.array(np.arange(spine.num_rows), pa.int64()))
    out = duckdb_query("SELECT s.spine_row, e.amt FROM spine s ASOF LEFT JOIN events e ON s.key = e.key AND s.ts > e.ts",
                       spine=rows, events=events)
    amt = out.take(pc.sort_indices(out, sort_keys=[("spine_row", "ascending")])).column("amt")
    return spine.append_column("latest_amt", amt)


def window_sample_reference(spine: pa.Table, events: pa.Table, window: str, rows: np.ndarray) -> pa.Table:
    """count, sum, max of amt over ``t - window <= ts < t`` at the spine rows ``rows``, by a
    plain join and GROUP BY (a sample: the join is spine x events / keys pairs)."""
    width = rp.sliding(window).size
    sample = spine.take(pa.array(rows)).append_column("i", pa.array(np.arange(len(rows)), pa.int64()))
    c = windowed_columns(window)
    sql = f"""
        SELECT s.i, COUNT(e.amt) AS "{c[0]}", SUM(e.amt) AS "{c[1]}", MAX(e.amt) AS "{c[2]}"
        FROM sample AS s LEFT JOIN events AS e
          ON e.key = s.key AND e.ts < s.ts AND e.ts >= s.ts - TO_MICROSECONDS({width})
        GROUP BY s.i ORDER BY s.i"""
    return duckdb_query(sql, sample=sample, events=events)


# ---- 1. latest value, DuckDB ------------------------------------------------------

@dataclass
class LatestShape:
    name: str
    keys: int
    spine: pa.Table
    events: pa.Table
    reference: pa.Table  # the spine plus latest_amt, by the ASOF JOIN
    small_spine: pa.Table  # the dense shape's spine for the range join + ROW_NUMBER
    small_reference: pa.Table
    shuffled: pa.Table  # the same events out of time order

    def comparison(self, small: bool = False, shuffled: bool = False) -> str:
        n = self.small_spine.num_rows if small else self.spine.num_rows
        return (f"pitc latest, DuckDB, {self.name}: {human(n)} spine x {human(self.events.num_rows)} events, "
                f"{human(self.keys)} keys" + (" (small spine for ROW_NUMBER)" if small else "")
                + (" (events shuffled)" if shuffled else ""))


@pytest.fixture(scope="module", params=["sparse", "dense"])
def latest_shape(request) -> LatestShape:
    keys = LATEST_KEYS[request.param]
    events = make_events(scaled(LATEST_EVENTS), keys, seed=11)
    spine = make_spine(scaled(LATEST_SPINE), events, keys, seed=12)
    small = spine.slice(0, min(spine.num_rows, scaled(ROW_NUMBER_DENSE_SPINE)))
    shuffled = events.take(pa.array(np.random.default_rng(13).permutation(events.num_rows)))
    return LatestShape(request.param, keys, spine, events, latest_reference(spine, events), small,
                       latest_reference(small, events), shuffled)


LATEST_METHODS = {
    "baseline": ("ASOF JOIN by hand", LATEST_ROUNDS),
    "relplan": ("relplan pitc_join_features", LATEST_ROUNDS),
    "asof_ties": ("ASOF JOIN by hand, ties settled (GROUP BY)", LATEST_ROUNDS),
    "relplan_unique": ("relplan, (key, ts) declared unique", LATEST_ROUNDS),
    "pandas": ("pandas merge_asof", SLOW_ROUNDS),
    "row_number": ("range join + ROW_NUMBER", SLOW_ROUNDS),
    # The same events shuffled: a comparison of its own, with its own baseline.
    "shuffled_baseline": ("ASOF JOIN by hand", LATEST_ROUNDS),
    "shuffled_relplan": ("relplan, ties settled in SQL", LATEST_ROUNDS),
}


@pytest.mark.parametrize("spine_size", ["full", "small"])
@pytest.mark.parametrize("method", list(LATEST_METHODS))
def test_latest_duckdb(benchmark, latest_shape, method, spine_size):
    shape = latest_shape
    dense = shape.name == "dense"
    if spine_size == "small" and (not dense or method in ("pandas", "asof_ties", "relplan_unique") or method.startswith("shuffled")):
        pytest.skip("the small-spine comparison is the dense shape's range join + ROW_NUMBER, with the ASOF JOIN and relplan")
    if spine_size == "full" and dense and method == "row_number":
        reason = (f"range join + ROW_NUMBER on {human(shape.spine.num_rows)} spine rows x {human(shape.keys)} keys "
                  f"is {shape.spine.num_rows * shape.events.num_rows / shape.keys:.0e} pairs: "
                  f"timed on a {human(shape.small_spine.num_rows)}-row spine instead")
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    small = spine_size == "small"
    spine, reference = (shape.small_spine, shape.small_reference) if small else (shape.spine, shape.reference)
    events = shape.events
    shuffled = shape.shuffled
    run = {
        "baseline": lambda: duckdb_query(ASOF_SQL, spine=spine, events=events),
        "shuffled_baseline": lambda: duckdb_query(ASOF_SQL, spine=spine, events=shuffled),
        "shuffled_relplan": lambda: relplan_latest(spine, shuffled),
        "relplan": lambda: relplan_latest(spine, events),
        "asof_ties": lambda: duckdb_query(ASOF_TIES_SQL, spine=spine, events=events),
        "relplan_unique": lambda: relplan_latest(spine, events, statistics=UNIQUE_TIMES),
        "pandas": lambda: pandas_merge_asof(spine, events),
        "row_number": lambda: duckdb_query(ROW_NUMBER_SQL, spine=spine, events=events),
    }[method]
    label, rounds = LATEST_METHODS[method]
    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1 if rounds > 1 else 0)
    if "relplan" in method:
        assert_spine_kept(out, spine, label)
        assert_columns_match(out, reference, LATEST_COLUMNS, label)
    else:
        assert_same_latest(out, "amt", reference, label)
    baseline = method in ("baseline", "shuffled_baseline")
    record(shape.comparison(small, method.startswith("shuffled")), "baseline" if baseline else label, benchmark)


# ---- 2. windowed aggregates, DuckDB -----------------------------------------------

@dataclass
class WindowShape:
    name: str
    keys: int
    spine: pa.Table
    events: pa.Table
    sample: np.ndarray
    references: dict[str, pa.Table] = field(default_factory=dict)  # window -> sample reference
    first: dict[str, pa.Table] = field(default_factory=dict)  # window -> the first result, to compare the others with

    def comparison(self, window: str) -> str:
        return (f"pitc {{count,sum,max}} {window}, DuckDB, {self.name}: {human(self.spine.num_rows)} spine x "
                f"{human(self.events.num_rows)} events, {human(self.keys)} keys")


@pytest.fixture(scope="module", params=sorted(WINDOW_SHAPES))
def window_shape(request) -> WindowShape:
    spine_rows, event_rows, keys = WINDOW_SHAPES[request.param]
    events = make_events(scaled(event_rows), keys, seed=21)
    spine = make_spine(scaled(spine_rows), events, keys, seed=22)
    sample = np.random.default_rng(23).choice(spine.num_rows, min(CHECK_SAMPLE, spine.num_rows), replace=False)
    return WindowShape(request.param, keys, spine, events, np.sort(sample))


CHOSEN: dict[str, str] = {}  # comparison -> relplan's lowering


def _summarize_lowerings(comparison: str) -> None:
    """Once relplan's choice and every forced lowering are timed: the fastest forced one
    becomes the comparison's baseline, and the ratio is printed."""
    timings = RESULTS.get(comparison, {})
    forced = {k: v for k, v in timings.items() if k.startswith("forced ")}
    mine = [k for k in timings if k.startswith("relplan")]
    if len(forced) < len(FORCE) or not mine or any(math.isnan(v) for v in timings.values()):
        return
    best = min(forced, key=forced.__getitem__)
    RESULTS[comparison] = {"baseline": forced[best], **{k: v for k, v in timings.items() if k != "baseline"}}
    ratio = timings[mine[0]] / forced[best]
    print(f"\n{comparison}: relplan chose {CHOSEN[comparison]}, the best forced lowering is "
          f"{best.removeprefix('forced ')}; relplan / best = {ratio:.2f}x")


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("lowering", [*FORCE, "auto"])
def test_windowed_duckdb(benchmark, window_shape, window, lowering):
    shape = window_shape
    spine, events = shape.spine, shape.events
    features, columns = windowed(window), windowed_columns(window)
    config = FORCE.get(lowering)
    chosen = lowerings(spine, features, events, config)
    comparison = shape.comparison(window)
    if lowering == "auto":
        CHOSEN[comparison] = chosen
        label = f"relplan (chose {chosen})"
    else:
        assert chosen == lowering, f"forcing {lowering} gave {chosen}"
        label = f"forced {lowering}"
    if window not in shape.references:
        shape.references[window] = window_sample_reference(spine, events, window, shape.sample)

    def run():
        return rp.pitc_join_features(spine, features, tables={"Events": events}, config=config)

    out = benchmark.pedantic(run, rounds=WINDOW_ROUNDS, iterations=1)
    assert_spine_kept(out, spine, label)
    assert_columns_match(out.take(pa.array(shape.sample)), shape.references[window], columns, f"{label} (sample)")
    if window in shape.first:
        assert_columns_match(out, shape.first[window], columns, f"{label} against another lowering")
    else:
        shape.first[window] = out.select(columns)
    record(comparison, label, benchmark)
    _summarize_lowerings(comparison)


# ---- 3. Spark and Flink -----------------------------------------------------------

@dataclass
class Small:
    spine: pa.Table
    events: pa.Table
    features: dict[str, list[rp.Feature]]
    columns: dict[str, list[str]]
    reference: dict[str, pa.Table]  # relplan on DuckDB, checked
    lowering: dict[str, str]

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {"Events": self.events}

    def spine_rows(self) -> pa.Table:
        """What the plan's SQL reads as ``pitc_spine``: the row number, keys and time."""
        n = self.spine.num_rows
        return pa.table({ROW: pa.array(np.arange(n), pa.int64()), "key": self.spine.column("key"), "ts": self.spine.column("ts")})

    def comparison(self, feature: str, engine: str) -> str:
        size = f"{human(self.spine.num_rows)} spine x {human(self.events.num_rows)} events, {human(SMALL_KEYS)} keys"
        return f"pitc {feature} [lowering={self.lowering[feature]}], {size}, {engine}"

    def check(self, feature: str, out: pa.Table, what: str) -> None:
        assert_columns_match(out, self.reference[feature], self.columns[feature], what)


SMALL_FEATURES = ("latest", f"windowed {SMALL_WINDOW}")


@pytest.fixture(scope="module")
def small() -> Small:
    events = make_events(scaled(SMALL_EVENTS), SMALL_KEYS, seed=31)
    spine = make_spine(scaled(SMALL_SPINE), events, SMALL_KEYS, seed=32)
    features = {"latest": LATEST, SMALL_FEATURES[1]: windowed(SMALL_WINDOW)}
    columns = {"latest": LATEST_COLUMNS, SMALL_FEATURES[1]: windowed_columns(SMALL_WINDOW)}
    reference = {k: rp.pitc_join_features(spine, f, tables={"Events": events}) for k, f in features.items()}
    # The DuckDB results the other engines are checked against are checked first.
    assert_columns_match(reference["latest"], latest_reference(spine, events), LATEST_COLUMNS, "DuckDB latest")
    rows = np.arange(0, spine.num_rows, max(1, spine.num_rows // CHECK_SAMPLE))
    assert_columns_match(reference[SMALL_FEATURES[1]].take(pa.array(rows)),
                         window_sample_reference(spine, events, SMALL_WINDOW, rows),
                         columns[SMALL_FEATURES[1]], "DuckDB windowed (sample)")
    lowering = {k: lowerings(spine, f, events) for k, f in features.items()}
    return Small(spine, events, features, columns, reference, lowering)


def _by_row(rows: pa.Table, small: Small, feature: str) -> pa.Table:
    """A by-hand result (any order, __pitc_row) in spine order."""
    return rows.take(pc.sort_indices(rows, sort_keys=[(ROW, "ascending")])).select(small.columns[feature])


@pytest.mark.parametrize("feature", SMALL_FEATURES)
def test_small_duckdb(benchmark, small, feature):
    out = benchmark.pedantic(
        lambda: rp.pitc_join_features(small.spine, small.features[feature], tables=small.tables),
        rounds=LATEST_ROUNDS, iterations=1, warmup_rounds=1,
    )
    small.check(feature, out, "DuckDB")
    record(small.comparison(feature, "engines"), "baseline", benchmark)


class SparkByHand:
    """The plan's SQL through spark.sql, the tables staged as Parquet as relplan does."""

    def __init__(self, spark, plan: rp.Plan, spine_rows: pa.Table, events: pa.Table) -> None:
        self.spark = spark
        self.sql = plan.to_sql("spark").rstrip().rstrip(";")
        utc = pa.timestamp("us", tz="UTC")  # a Spark TIMESTAMP (naive Parquet times read as TIMESTAMP_NTZ)
        self.tables = {
            SPINE: spine_rows.set_column(spine_rows.schema.get_field_index("ts"), "ts", spine_rows.column("ts").cast(utc)),
            "Events": events.set_column(events.schema.get_field_index("ts"), "ts", events.column("ts").cast(utc)),
        }

    def __call__(self) -> pa.Table:
        staging = tempfile.mkdtemp(prefix="pitc-bench-spark-")
        try:
            for name, table in self.tables.items():
                path = os.path.join(staging, f"{name}.parquet")
                pq.write_table(table, path)
                self.spark.read.parquet(path).createOrReplaceTempView(name)
            return pa.Table.from_batches(self.spark.sql(self.sql)._collect_as_arrow())
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="module")
def spark(small):
    pytest.importorskip("pyspark")
    from relplan.backends.spark import local_session

    session = local_session()
    # Warm the JVM (class loading, JIT) on each query, relplan and by hand, and check both.
    hands = {}
    for feature, features in small.features.items():
        small.check(feature, rp.pitc_join_features(small.spine, features, tables=small.tables, engine="spark"), "Spark")
        plan = rp.pitc_plan(small.spine, features, tables=small.tables)
        hands[feature] = SparkByHand(session, plan, small.spine_rows(), small.events)
        small.check(feature, _by_row(hands[feature](), small, feature), "Spark by hand")
    return hands


def _small_on_engine(benchmark, small, hands, feature, side, engine: str, name: str, comparison: str) -> None:
    """One side of the by-hand comparison on a JVM engine: the plan's SQL run by hand
    (``hands``), or relplan end to end; each result checked."""
    if side == "by hand":
        out = benchmark.pedantic(hands[feature], rounds=JVM_ROUNDS, iterations=1)
        small.check(feature, _by_row(out, small, feature), f"{name} by hand")
        record(small.comparison(feature, comparison), "baseline", benchmark)
    else:
        out = benchmark.pedantic(
            lambda: rp.pitc_join_features(small.spine, small.features[feature], tables=small.tables, engine=engine),
            rounds=JVM_ROUNDS, iterations=1,
        )
        small.check(feature, out, name)
        record(small.comparison(feature, comparison), "relplan", benchmark)
        record(small.comparison(feature, "engines"), f"relplan on {comparison}", benchmark)


@pytest.mark.parametrize("side", ["by hand", "relplan"])
@pytest.mark.parametrize("feature", SMALL_FEATURES)
def test_small_spark(benchmark, small, spark, feature, side):
    _small_on_engine(benchmark, small, spark, feature, side, "spark", "Spark", "Spark")


class FlinkByHand:
    """The plan's script (filesystem connectors on fixed paths, made once) run statement
    by statement, the inputs written as JSON lines and the output read back, as the
    Flink bench's by-hand side does (bench/test_flink_bench.py)."""

    def __init__(self, plan: rp.Plan, tables: dict[str, pa.Table], directory: str) -> None:
        from relplan.backends.flink import filesystem_options

        self.tables = tables
        self.dirs = {name: os.path.join(directory, name) for name in tables}
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)
        self.out_dir = os.path.join(directory, OUTPUT)
        connectors = {name: filesystem_options(d) for name, d in self.dirs.items()}
        connectors[OUTPUT] = filesystem_options(self.out_dir)
        self.script = plan.to_sql("flink", mode="batch", connectors=connectors)

    def __call__(self) -> pa.Table:
        from relplan.backends.flink import local_table_env, run_script

        env = local_table_env("batch")
        for name, table in self.tables.items():
            write_json_lines(table, os.path.join(self.dirs[name], "data.json"))
        try:
            run_script(self.script, env)
            return pa.Table.from_pylist(read_json_parts(self.out_dir))
        finally:
            for table in (*self.tables, OUTPUT):
                env.execute_sql(f"DROP TABLE IF EXISTS `{table}`")
            shutil.rmtree(self.out_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def flink(small, tmp_path_factory):
    pytest.importorskip("pyflink")
    hands = {}
    for feature, features in small.features.items():
        small.check(feature, rp.pitc_join_features(small.spine, features, tables=small.tables, engine="flink"), "Flink")
        plan = rp.pitc_plan(small.spine, features, tables=small.tables)
        directory = str(tmp_path_factory.mktemp("pitc-flink"))
        hands[feature] = FlinkByHand(plan, {SPINE: small.spine_rows(), "Events": small.events}, directory)
        small.check(feature, _by_row(hands[feature](), small, feature), "Flink by hand")
    return hands


@pytest.mark.parametrize("side", ["by hand", "relplan"])
@pytest.mark.parametrize("feature", SMALL_FEATURES)
def test_small_flink(benchmark, small, flink, feature, side):
    _small_on_engine(benchmark, small, flink, feature, side, "flink", "Flink", "Flink batch")
