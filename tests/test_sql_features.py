"""Features written in SQL (rp.sql_features) and sliding windows closed on both edges.

A SQL feature and its DSL twin (``rp.sliding(w, closed="both")``) compile to the same
plan and give the same values on DuckDB and the reference executor, in training data
and from an online store; mixed with DSL features their windows are shared, placement
places them and a catalog keeps them. The edge: an event exactly w earlier counts with
closed="both" (SQL's RANGE frame) and not with relplan's default, on every engine.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import relplan as rp
from relplan.catalog import fingerprint
from relplan.ir.graph import walk
from relplan.ir.nodes import WindowAggregate

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)


class SqlTx(rp.Source):
    account_id: rp.Int64 = rp.key()
    merchant: rp.String
    amt: rp.Float64
    qty: rp.Int64
    status: rp.String
    ts: rp.Timestamp = rp.event_time(lateness="5m")


def frame(interval: str) -> str:
    return f"PARTITION BY account_id ORDER BY ts RANGE BETWEEN INTERVAL {interval} PRECEDING AND CURRENT ROW"


DAY_SQL = {"duckdb": "'1' DAY", "spark": "'1' DAY", "flink": "'1' DAY"}

QUERY = """
SELECT account_id, ts,
       {failed} AS failed_1d,
       SUM(amt) OVER ({w}) AS amt_sum_1d,
       AVG(amt) OVER ({w}) AS amt_mean_1d,
       MIN(qty) OVER ({w}) AS qty_min_1d,
       MAX(amt) OVER ({w}) AS amt_max_1d,
       COUNT(amt) OVER ({w}) AS amt_n_1d,
       {merchants} AS merchants_1d,
       VAR_SAMP(amt) OVER ({w}) AS amt_var_1d,
       STDDEV_SAMP(amt) OVER ({w}) AS amt_std_1d,
       SUM(qty) OVER (PARTITION BY account_id ORDER BY ts) AS qty_lifetime
FROM SqlTx WHERE merchant <> 'c'
"""


#: One aggregate filtered, and a distinct count, over a window, as each dialect writes them:
#: Spark and Flink refuse FILTER and DISTINCT over a window.
FAILED = {"duckdb": "COUNT(*) FILTER (WHERE status = 'failed') OVER ({w})",
          "spark": "COUNT(CASE WHEN status = 'failed' THEN 1 END) OVER ({w})",
          "flink": "COUNT(CASE WHEN status = 'failed' THEN 1 END) OVER ({w})"}
MERCHANTS = {"duckdb": "COUNT(DISTINCT merchant) OVER ({w})",
             "spark": "SIZE(COLLECT_SET(merchant) OVER ({w}))",
             "flink": "CAST(COALESCE(CARDINALITY(ARRAY_DISTINCT(ARRAY_AGG(merchant IGNORE NULLS) OVER ({w}))), 0) AS BIGINT)"}


def query_in(dialect: str) -> str:
    w = frame(DAY_SQL[dialect])
    return QUERY.format(w=w, failed=FAILED[dialect].format(w=w), merchants=MERCHANTS[dialect].format(w=w))


def sql_feats(dialect: str = "duckdb") -> list[rp.Feature]:
    return rp.sql_features(query_in(dialect), sources=[SqlTx], dialect=dialect)


@rp.transformation
def windowed(tx: SqlTx, wspec: rp.WindowSpec, column: str | None = None, func: str = "count", failed: bool = False):
    rows = tx[tx.merchant != "c"]
    rows = rows[rows.status == "failed"] if failed else rows
    by = rows.groupby("account_id")
    return getattr((by[column] if column else by).window(wspec), func)()


def dsl_twins() -> list[rp.Feature]:
    both = rp.sliding("1d", closed="both")
    return [
        windowed(window=both, failed=True, name="failed_1d"),
        windowed(window=both, column="amt", func="sum", name="amt_sum_1d"),
        windowed(window=both, column="amt", func="mean", name="amt_mean_1d"),
        windowed(window=both, column="qty", func="min", name="qty_min_1d"),
        windowed(window=both, column="amt", func="max", name="amt_max_1d"),
        windowed(window=both, column="amt", func="count", name="amt_n_1d"),
        windowed(window=both, column="merchant", func="nunique", name="merchants_1d"),
        windowed(window=both, column="amt", func="var", name="amt_var_1d"),
        windowed(window=both, column="amt", func="std", name="amt_std_1d"),
        windowed(window=rp.lifetime(), column="qty", func="sum", name="qty_lifetime"),
    ]


def events() -> pa.Table:
    """Account 1 has events exactly 1d apart (the edge), 1us either side of it, ties; account
    2 a few; a NULL key; amounts that are exact in binary (sums exact in any order)."""
    rows = [
        (1, "a", 10.0, 1, "failed", T0),
        (1, "b", 2.5, 2, "ok", T0),
        (1, "a", 4.0, None, "failed", T0 + DAY - US),
        (1, "b", None, 5, "failed", T0 + DAY),
        (1, "c", 100.0, 9, "failed", T0 + DAY + 2 * US),
        (1, "a", 8.0, 3, "ok", T0 + DAY + US),
        (1, "b", 0.5, 4, "failed", T0 + 2 * DAY),
        (2, "a", 1.0, 7, "failed", T0 + dt.timedelta(hours=3)),
        (2, None, -500.0, 1, "failed", T0 + dt.timedelta(hours=4)),
        (2, "b", 2.0, 3, "failed", T0 + dt.timedelta(hours=5)),
        (2, "a", 3.0, 2, "ok", T0 + dt.timedelta(hours=3) + DAY),
        (None, "a", 6.0, 1, "failed", T0 + DAY),
    ]
    cols = list(zip(*rows))
    return pa.table({
        "account_id": pa.array(cols[0], pa.int64()), "merchant": pa.array(cols[1], pa.string()),
        "amt": pa.array(cols[2], pa.float64()), "qty": pa.array(cols[3], pa.int64()),
        "status": pa.array(cols[4], pa.string()), "ts": pa.array(cols[5], pa.timestamp("us", "UTC")),
    })


def by_row(table: pa.Table, columns: list[str]) -> list[tuple[Any, ...]]:
    d = table.select(["account_id", "ts", "amt", "merchant", *columns]).to_pylist()
    return sorted((tuple(_round(v) for v in r.values()) for r in d), key=repr)


def _round(v: Any) -> Any:
    return round(v, 9) if isinstance(v, float) and not math.isnan(v) else v


NAMES = [f.name for f in dsl_twins()]


# ---- one feature, two ways ------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "flink"])
def test_a_sql_feature_compiles_to_its_dsl_twins_plan(dialect: str) -> None:
    sql, dsl = sql_feats(dialect), dsl_twins()
    assert [f.name for f in sql] == NAMES
    for s, d in zip(sql, dsl):
        assert (s.spec, s.keys, s.body.mask, s.body.aggs, s.columns) == (d.spec, d.keys, d.body.mask, d.body.aggs, d.columns)
    assert rp.compile(sql).explain() == rp.compile(dsl).explain()
    assert rp.optimize(rp.compile(sql)).explain() == rp.optimize(rp.compile(dsl)).explain()
    assert "frame=[t-1d, t]" in rp.compile(sql).explain()


def test_a_sql_feature_round_trips_through_json() -> None:
    for f in sql_feats("flink"):
        again = rp.Feature.from_json(f.to_json())
        assert again == f and again.description == f.description and fingerprint(again) == fingerprint(f)


def test_a_sql_feature_records_its_sql_and_dialect() -> None:
    f = sql_feats("flink")[1]
    assert f.name == "amt_sum_1d" and f.transformation == "sql"
    assert f.defined_at == "sql:flink line 4"
    assert f.called_at is not None and "test_sql_features.py" in f.called_at
    assert f.description is not None and f.description.startswith("SUM(amt) OVER (PARTITION BY account_id")
    assert f.description.endswith("AS amt_sum_1d FROM SqlTx WHERE merchant <> 'c' (flink SQL)")
    g = rp.sql_feature("SELECT SUM(amt) OVER (PARTITION BY account_id ORDER BY ts) AS s FROM SqlTx",
                       sources=[SqlTx], description="spend", owner="risk", tags=["x"])
    assert (g.description, g.owner, g.tags, g.spec) == ("spend", "risk", ("x",), rp.lifetime())


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_a_sql_feature_gives_its_dsl_twins_values(engine: str) -> None:
    tables = {"SqlTx": events()}
    got = rp.execute(rp.optimize(rp.compile(sql_feats())), engine=engine, tables=tables)
    want = rp.execute(rp.compile(dsl_twins()), engine="reference", tables=tables)
    assert by_row(got, NAMES) == by_row(want, NAMES)


def test_a_sql_feature_gives_what_duckdb_gives_for_its_sql() -> None:
    """The query itself, run by DuckDB, agrees with the feature at every row it returns
    (those with a key: SQL makes a group of the NULL key, a feature has no entity there)."""
    tx = events()
    query = query_in("duckdb").replace("SELECT account_id, ts,", "SELECT account_id, ts, amt, merchant,")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("SqlTx", tx)
    direct = con.sql(query).to_arrow_table()
    direct = direct.filter(pa.compute.is_valid(direct.column("account_id")))
    ours = rp.execute(rp.optimize(rp.compile(sql_feats())), tables={"SqlTx": tx})
    ours = ours.filter(pa.compute.and_(pa.compute.is_valid(ours.column("account_id")),
                                       pa.compute.not_equal(ours.column("merchant"), "c")))
    assert direct.num_rows == ours.num_rows == 9
    shown = ours.select(["account_id", "ts", "amt", "merchant", *NAMES])
    assert by_row(direct.select(shown.column_names).cast(shown.schema), NAMES) == by_row(shown, NAMES)


# ---- the edge ---------------------------------------------------------------------------


def edge_events() -> pa.Table:
    return pa.table({
        "account_id": pa.array([1, 1, 1], pa.int64()), "merchant": ["a", "a", "a"], "amt": [1.0, 2.0, 4.0],
        "qty": pa.array([1, 1, 1], pa.int64()), "status": ["ok", "ok", "ok"],
        "ts": pa.array([T0, T0 + DAY, T0 + DAY + US], pa.timestamp("us", "UTC")),
    })


@rp.transformation
def spend(tx: SqlTx, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].window(wspec).sum()


EDGE_SQL = "SELECT account_id, SUM(amt) OVER (" + frame("'1' DAY") + ") AS spend_sql FROM SqlTx"


def edge_plan() -> rp.Plan:
    return rp.compile([
        rp.sql_feature(EDGE_SQL, sources=[SqlTx]),
        spend(window=rp.sliding("1d", closed="both")),
        spend(window=rp.sliding("1d")),
    ])


EDGE_WANT = {  # at T0, T0 + 1d (the event at T0 is exactly 1d earlier), T0 + 1d + 1us
    "spend_sql": [1.0, 3.0, 6.0], "spend_1d_both": [1.0, 3.0, 6.0], "spend_1d": [1.0, 2.0, 6.0],
}


def edge_values(table: pa.Table) -> dict[str, list[float]]:
    table = table.sort_by("ts")
    return {c: table.column(c).to_pylist() for c in EDGE_WANT}


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_the_event_exactly_a_window_earlier_counts_with_closed_both(engine: str) -> None:
    plan = edge_plan()
    assert "frame=(t-1d, t]" in plan.explain() and "frame=[t-1d, t]" in plan.explain()
    for p in (plan, rp.optimize(plan)):
        assert edge_values(rp.execute(p, engine=engine, tables={"SqlTx": edge_events()})) == EDGE_WANT


def test_the_edge_on_spark(spark: Any) -> None:
    plan = rp.optimize(edge_plan())
    assert edge_values(rp.execute(plan, engine="spark", tables={"SqlTx": edge_events()})) == EDGE_WANT


def test_the_edge_on_flink_batch() -> None:
    plan = rp.optimize(edge_plan())
    assert edge_values(rp.execute(plan, engine="flink", tables={"SqlTx": edge_events()})) == EDGE_WANT


# ---- training data and the online store ----------------------------------------------------


def spine() -> pa.Table:
    times = [T0 + DAY, T0 + DAY + US, T0 + DAY + 2 * US, T0 + 2 * DAY, T0 + dt.timedelta(hours=3) + DAY, T0 + 3 * DAY]
    rows = [(a, t) for t in times for a in (1, 2, None, 9)]
    return pa.table({
        "account_id": pa.array([a for a, _ in rows], pa.int64()),
        "t": pa.array([t for _, t in rows], pa.timestamp("us", "UTC")),
    })


def renamed(table: pa.Table, suffix: str) -> pa.Table:
    return table.rename_columns([c[: -len(suffix)] if c.endswith(suffix) else c for c in table.column_names])


@pytest.mark.parametrize("inclusive", [False, True])
def test_training_data_of_a_sql_feature_is_its_dsl_twins(inclusive: bool) -> None:
    tables = {"SqlTx": events()}
    sql = rp.pitc_join_features(spine(), sql_feats(), tables=tables, time="t", inclusive=inclusive)
    dsl = rp.pitc_join_features(spine(), dsl_twins(), tables=tables, time="t", inclusive=inclusive)
    assert sql.equals(dsl)
    ref = rp.pitc_join_features(spine(), sql_feats(), tables=tables, time="t", inclusive=inclusive, engine="reference")
    assert ref.to_pylist() == sql.to_pylist() or _close(ref, sql)


def _close(a: pa.Table, b: pa.Table) -> bool:
    return [[_round(v) for v in r.values()] for r in a.to_pylist()] == [[_round(v) for v in r.values()] for r in b.to_pylist()]


@pytest.mark.parametrize("inclusive", [False, True])
def test_training_data_honours_closed_both_at_the_edge(inclusive: bool) -> None:
    """As of t (inclusive) the window is [t-1d, t]; an instant before t, [t-1d-1us, t)."""
    feats = [rp.sql_feature(EDGE_SQL, sources=[SqlTx]), spend(window=rp.sliding("1d"))]
    times = [T0 + DAY, T0 + DAY + US, T0 + DAY + 2 * US]
    sp = pa.table({"account_id": pa.array([1, 1, 1], pa.int64()), "t": pa.array(times, pa.timestamp("us", "UTC"))})
    for engine in ("duckdb", "reference"):
        got = rp.pitc_join_features(sp, feats, tables={"SqlTx": edge_events()}, time="t", inclusive=inclusive, engine=engine)
        if inclusive:  # events at T0 (1), T0+1d (2), T0+1d+1us (4)
            assert got.column("spend_sql").to_pylist() == [3.0, 6.0, 6.0]
            assert got.column("spend_1d").to_pylist() == [2.0, 6.0, 6.0]
        else:
            assert got.column("spend_sql").to_pylist() == [1.0, 3.0, 6.0]
            assert got.column("spend_1d").to_pylist() == [1.0, 2.0, 6.0]


def test_the_online_store_serves_a_sql_features_training_values() -> None:
    tables = {"SqlTx": events()}
    until = T0 + 4 * DAY
    sql = sql_feats()
    sp = spine()
    with rp.online_store("sqlite://") as store:
        store.materialize(sql, tables=tables, until=T0, threads=1)
        store.push(SqlTx, events(), batch_id="all")
        served = store.get_online_features(sp, sql, at="t")
    train = rp.pitc_join_features(sp, sql, tables=tables, time="t")
    assert _close(served.select(train.column_names), train)
    assert until > T0
    edge = [rp.sql_feature(EDGE_SQL, sources=[SqlTx]), spend(window=rp.sliding("1d"))]
    edge_spine = pa.table({"account_id": pa.array([1, 1, 1], pa.int64()),
                           "t": pa.array([T0 + DAY, T0 + DAY + US, T0 + DAY + 2 * US], pa.timestamp("us", "UTC"))})
    with rp.online_store("sqlite://") as store:
        store.materialize(edge, tables={"SqlTx": edge_events()}, until=T0, threads=1)
        store.push(SqlTx, edge_events(), batch_id="edge")
        got = store.get_online_features(edge_spine, edge, at="t")
    assert got.column("spend_sql").to_pylist() == [1.0, 3.0, 6.0]
    assert got.column("spend_1d").to_pylist() == [1.0, 2.0, 6.0]


# ---- mixed with DSL features: compile, share, place, catalog ---------------------------------


def mixed() -> list[rp.Feature]:
    return [*sql_feats(), spend(window=rp.sliding("1d")), spend(window=rp.sliding("2h")),
            windowed(window=rp.sliding("1d", closed="both"), column="qty", func="max", name="qty_max_1d")]


def test_sql_and_dsl_features_share_one_window_per_key_and_order() -> None:
    plan = rp.optimize(rp.compile(mixed()))
    windows = [n for n in walk(plan.outputs) if isinstance(n, WindowAggregate)]
    assert len(windows) == 1, plan.explain()
    text = plan.explain()
    assert text.count("WindowAggregate") == 1
    assert "[t-1d, t]" in text and "(t-1d, t]" in text and "(t-2h, t]" in text and "(-inf, t]" in text
    got = rp.execute(plan, tables={"Txs": events()} | {"SqlTx": events()})
    want = rp.execute(rp.compile(mixed()), engine="reference", tables={"SqlTx": events()})
    names = [f.name for f in mixed()]
    assert by_row(got, names) == by_row(want, names)


def test_placement_places_sql_features() -> None:
    stats = rp.measure_statistics({"SqlTx": events()})
    plan = rp.optimize(rp.compile(mixed()), statistics=stats, knobs=rp.Knobs(max_staleness="5m"))
    assert plan.placement is not None
    placed = {f.feature for f in plan.placement.features}
    assert {"failed_1d", "amt_sum_1d", "qty_lifetime", "spend_1d"} <= placed
    assert "failed_1d" in plan.explain()
    # The hybrid's daily tiles hold (t-w, t] windows: a closed="both" one is refused, saying why.
    three_days = rp.sql_feature(EDGE_SQL.replace("'1' DAY", "'3' DAY"), sources=[SqlTx])
    with pytest.raises(rp.OptimizerError, match=r"window \[t-3d, t\] is not \(t-w, t\]"):
        rp.optimize(rp.compile(three_days), statistics=stats, knobs=rp.Knobs(placement="hybrid"))


def test_a_catalog_keeps_sql_features(tmp_path: Path) -> None:
    cat = rp.Catalog(str(tmp_path / "features.db"))
    feats = mixed()
    cat.apply([SqlTx, *feats])
    got = cat.get("failed_1d")
    assert isinstance(got, rp.Feature) and got.spec == rp.sliding("1d", closed="both")
    assert got.body == feats[0].body and got.description == feats[0].description
    assert rp.compile(["failed_1d", "spend_1d"], catalog=cat).explain() == rp.compile([feats[0], feats[-3]]).explain()
    # Unchanged on a second apply; a window edge changed is a breaking change named as such.
    assert all(c.category == "unchanged" for c in cat.plan([SqlTx, *feats]).changes)
    changed = rp.sql_feature(EDGE_SQL.replace("spend_sql", "spend_1d"), sources=[SqlTx])
    plan = cat.plan([SqlTx, *feats[:-3], changed, *feats[-2:]])
    change = next(c for c in plan.changes if c.name == "spend_1d")
    assert change.category == "breaking"
    assert any("closed='both'" in r for r in change.reasons), change.reasons


# ---- closed= -------------------------------------------------------------------------------


def test_closed_right_is_the_default_and_changes_nothing() -> None:
    assert rp.sliding("1h", closed="right") == rp.sliding("1h") == rp.WindowSpec("sliding", 3_600_000_000)
    f = spend(window=rp.sliding("1d"))
    assert f.name == "spend_1d" and '"closed"' not in f.to_json()
    assert repr(rp.sliding("1d")) == "rp.sliding('1d')"


def test_closed_both_has_its_own_name_json_and_fingerprint() -> None:
    both, right = spend(window=rp.sliding("1d", closed="both")), spend(window=rp.sliding("1d"))
    assert both.name == "spend_1d_both" and rp.sliding("90m", closed="both").label == "90m_both"
    assert repr(both.spec) == "rp.sliding('1d', closed='both')"
    assert both != right and fingerprint(both) != fingerprint(right)
    assert rp.sliding("1d", closed="both").frame() == rp.sliding("1d").frame().__class__(86_400_000_000, lower_inclusive=True)
    again = rp.Feature.from_json(both.to_json())
    assert again.spec == both.spec and rp.compile(again).explain() == rp.compile(both).explain()
    assert fingerprint(again) == fingerprint(both)


@pytest.mark.parametrize("closed", ["left", "neither", "BOTH", None])
def test_other_window_edges_are_refused(closed: Any) -> None:
    with pytest.raises(rp.WindowError, match="'right' or 'both'"):
        rp.sliding("1d", closed=closed)
    with pytest.raises(rp.WindowError, match="sliding windows only"):
        rp.WindowSpec("tumbling", 10, 10, closed="both")


# ---- per-window features --------------------------------------------------------------------


@rp.transformation
def per_window(tx: SqlTx, wspec: rp.WindowSpec, column: str | None = None, func: str = "count"):
    by = tx[tx.status == "failed"].groupby("account_id")
    return getattr((by[column] if column else by).window(wspec), func)()


@pytest.mark.parametrize("form", ["flink_tumble", "duckdb_time_bucket", "flink_hop", "spark_window", "spark_hop"])
def test_per_window_sql_features_are_tumbling_and_hopping_features(form: str) -> None:
    agg = "COUNT(*) AS n, SUM(amt) AS total"
    if form == "flink_tumble":
        q = (f"SELECT account_id, window_start, window_end, {agg} FROM TABLE(TUMBLE(TABLE SqlTx, DESCRIPTOR(ts), "
             "INTERVAL '1' DAY)) WHERE status = 'failed' GROUP BY account_id, window_start, window_end")
        dialect, spec = "flink", rp.tumbling("1d")
    elif form == "flink_hop":
        q = (f"SELECT account_id, window_start, {agg} FROM TABLE(HOP(TABLE SqlTx, DESCRIPTOR(ts), INTERVAL '6' HOUR, "
             "INTERVAL '1' DAY)) WHERE status = 'failed' GROUP BY account_id, window_start, window_end")
        dialect, spec = "flink", rp.hopping("1d", "6h")
    elif form.startswith("spark"):
        hop = ", '6 hours'" if form == "spark_hop" else ""
        q = (f"SELECT account_id, window.start, {agg} FROM SqlTx WHERE status = 'failed' "
             f"GROUP BY account_id, window(ts, '1 day'{hop})")
        dialect, spec = "spark", rp.hopping("1d", "6h") if hop else rp.tumbling("1d")
    else:
        q = (f"SELECT account_id, time_bucket(INTERVAL '1 day', ts) AS window_start, {agg} FROM SqlTx "
             "WHERE status = 'failed' GROUP BY account_id, time_bucket(INTERVAL '1 day', ts)")
        dialect, spec = "duckdb", rp.tumbling("1d")
    sql = rp.sql_features(q, sources=[SqlTx], dialect=dialect)
    dsl = [per_window(window=spec, name="n"), per_window(window=spec, column="amt", func="sum", name="total")]
    assert [f.spec for f in sql] == [spec, spec]
    plan = rp.compile(sql)
    assert plan.explain() == rp.compile(dsl).explain() and plan.explain().count("TimeWindowAggregate") == 1
    tables = {"SqlTx": events()}
    got = rp.execute(plan, tables=tables).sort_by([("account_id", "ascending"), ("window_start", "ascending")])
    want = rp.execute(rp.compile(dsl), engine="reference", tables=tables).sort_by(
        [("account_id", "ascending"), ("window_start", "ascending")])
    assert got.to_pylist() == want.to_pylist()


# ---- what is refused -------------------------------------------------------------------------

W = frame("'1' DAY")


@pytest.mark.parametrize("query,match", [
    (f"SELECT account_id, COUNT(*) OVER ({W}) FROM SqlTx", "name the feature"),
    (f"SELECT amt * 2 AS x, COUNT(*) OVER ({W}) AS n FROM SqlTx", r"SELECT item amt \* 2 AS x"),
    (f"SELECT COUNT(*) OVER ({W}) AS n FROM SqlTx JOIN SqlTx AS b ON SqlTx.account_id = b.account_id", "JOIN"),
    (f"WITH t AS (SELECT * FROM SqlTx) SELECT COUNT(*) OVER ({W}) AS n FROM t", "WITH"),
    (f"SELECT COUNT(*) OVER ({W}) AS n FROM (SELECT * FROM SqlTx)", "FROM"),
    ("SELECT COUNT(*) OVER (ORDER BY ts) AS n FROM SqlTx", "PARTITION BY"),
    ("SELECT COUNT(*) OVER (PARTITION BY account_id) AS n FROM SqlTx", "ORDER BY"),
    ("SELECT COUNT(*) OVER (PARTITION BY account_id ORDER BY amt) AS n FROM SqlTx", "ordered by amt"),
    ("SELECT COUNT(*) OVER (PARTITION BY account_id ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS n "
     "FROM SqlTx", "ROWS"),
    ("SELECT COUNT(*) OVER (PARTITION BY account_id ORDER BY ts RANGE BETWEEN INTERVAL '2' DAY PRECEDING AND "
     "INTERVAL '1' DAY PRECEDING) AS n FROM SqlTx", r"frame \[t-2d, t-1d\]"),
    ("SELECT COUNT(*) OVER (PARTITION BY amt * 2 ORDER BY ts) AS n FROM SqlTx", "PARTITION BY amt"),
    ("SELECT ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY ts) AS n FROM SqlTx", "ROW_NUMBER"),
    ("SELECT account_id, COUNT(*) AS n FROM SqlTx GROUP BY account_id", "without a time window"),
    ("SELECT account_id FROM SqlTx", "without an aggregate OVER"),
    (f"SELECT COUNT(*) OVER ({W}) AS n FROM SqlTx ORDER BY ts", "ORDER BY"),
    (f"SELECT COUNT(*) OVER ({W}) AS n FROM SqlTx UNION ALL SELECT COUNT(*) OVER ({W}) AS n FROM SqlTx", "UNION"),
])
def test_what_is_not_a_feature_is_refused_with_its_place(query: str, match: str) -> None:
    with pytest.raises(rp.RelplanError, match=match) as info:
        rp.sql_features(query, sources=[SqlTx])
    assert re.search(r"line \d+", str(info.value)), str(info.value)
    assert isinstance(info.value, (rp.UnsupportedError, rp.FeatureError, rp.SchemaError)), type(info.value)
    if isinstance(info.value, rp.UnsupportedError) and match not in ("ROWS", "ROW_NUMBER"):  # rp.sql refuses those too
        assert "use rp.sql for a general query" in str(info.value)


def test_flink_refuses_what_no_feature_computes() -> None:
    with pytest.raises(rp.UnsupportedError, match="truncated BIGINT"):
        rp.sql_features(f"SELECT AVG(qty) OVER ({W}) AS q FROM SqlTx", sources=[SqlTx], dialect="flink")
    with pytest.raises(rp.UnsupportedError, match="FILTER"):
        rp.sql_features("SELECT account_id, COUNT(*) FILTER (WHERE amt > 0) AS n FROM TABLE(TUMBLE(TABLE SqlTx, "
                        "DESCRIPTOR(ts), INTERVAL '1' DAY)) GROUP BY account_id, window_start, window_end",
                        sources=[SqlTx], dialect="flink")


def test_errors_name_the_column_the_name_and_the_count() -> None:
    with pytest.raises(rp.SchemaError, match=r"unknown column 'amount' \(did you mean 'amt'\?\)"):
        rp.sql_features(f"SELECT SUM(amount) OVER ({W}) AS s FROM SqlTx", sources=[SqlTx])
    with pytest.raises(rp.SchemaError, match="unknown table 'Tx'"):
        rp.sql_features(f"SELECT SUM(amt) OVER ({W}) AS s FROM Tx", sources=[SqlTx])
    with pytest.raises(rp.FeatureError, match="two features are named 's'"):
        rp.sql_features(f"SELECT SUM(amt) OVER ({W}) AS s, MAX(amt) OVER ({W}) AS s FROM SqlTx", sources=[SqlTx])
    with pytest.raises(rp.FeatureError, match="use rp.sql_features"):
        rp.sql_feature(f"SELECT SUM(amt) OVER ({W}) AS s, MAX(amt) OVER ({W}) AS m FROM SqlTx", sources=[SqlTx])
    with pytest.raises(rp.SchemaError, match="rp.Source classes"):
        rp.sql_features(f"SELECT SUM(amt) OVER ({W}) AS s FROM SqlTx", sources=[SqlTx.node()])
    with pytest.raises(rp.SqlError, match="unknown dialect"):
        rp.sql_features(f"SELECT SUM(amt) OVER ({W}) AS s FROM SqlTx", sources=[SqlTx], dialect="mysql")


def test_a_named_window_clause_is_read() -> None:
    q = (f"SELECT account_id, SUM(amt) OVER w AS s, COUNT(*) FILTER (WHERE status = 'failed') OVER (w) AS n "
         f"FROM SqlTx WINDOW w AS ({W})")
    s, n = rp.sql_features(q, sources=[SqlTx])
    assert s.spec == n.spec == rp.sliding("1d", closed="both") and n.body.mask is not None
    with pytest.raises(rp.SchemaError, match="unknown window 'v'"):
        rp.sql_features(f"SELECT SUM(amt) OVER v AS s FROM SqlTx WINDOW w AS ({W})", sources=[SqlTx])


def test_a_null_key_is_no_entity() -> None:
    """A feature's NULL key is no entity (its value NULL), where rp.sql keeps SQL's NULL group."""
    q = "SELECT account_id, ts, COUNT(*) OVER (PARTITION BY account_id ORDER BY ts) AS n FROM SqlTx"
    tables = {"SqlTx": events()}
    feature = rp.execute(rp.compile(rp.sql_features(q, sources=[SqlTx])), tables=tables)
    general = rp.execute(rp.sql(q, sources=[SqlTx]), tables=tables)
    null_row = [r["n"] for r in feature.to_pylist() if r["account_id"] is None]
    assert null_row == [None]
    assert [r["n"] for r in general.to_pylist() if r["account_id"] is None] == [1]


@pytest.mark.parametrize("dialect", ["spark", "flink"])
def test_filter_and_distinct_over_a_window_are_refused_where_the_engine_refuses_them(dialect: str) -> None:
    w = frame(DAY_SQL[dialect])
    for call, words in ((f"COUNT(*) FILTER (WHERE status = 'failed') OVER ({w})", "FILTER"),
                        (f"COUNT(DISTINCT merchant) OVER ({w})", "DISTINCT")):
        with pytest.raises(rp.UnsupportedError, match=f"{dialect.capitalize()} refuses COUNT.*{words}"):
            rp.sql_features(f"SELECT account_id, ts, {call} AS n FROM SqlTx", sources=[SqlTx], dialect=dialect)


def test_an_aggregate_of_case_when_is_a_filtered_aggregate_only_where_it_is_one() -> None:
    """AGG(CASE WHEN c THEN x END) is AGG(x) over the rows where c holds; with an ELSE
    that is not NULL it is not (SUM(... ELSE 0) is 0, not NULL, over no such row)."""
    w = frame(DAY_SQL["duckdb"])
    filtered, zero = rp.sql_features(
        f"SELECT account_id, ts, SUM(CASE WHEN status = 'failed' THEN amt END) OVER ({w}) AS a, "
        f"SUM(CASE WHEN status = 'failed' THEN amt ELSE 0 END) OVER ({w}) AS b FROM SqlTx",
        sources=[SqlTx],
    )
    twin = rp.sql_feature(f"SELECT SUM(amt) FILTER (WHERE status = 'failed') OVER ({w}) AS a FROM SqlTx", sources=[SqlTx])
    assert (filtered.body.mask, filtered.body.aggs) == (twin.body.mask, twin.body.aggs)
    assert zero.body.mask is None and "CASE" in str(zero.body.aggs[0][1].arg).upper()


@pytest.mark.parametrize("dialect", ["spark", "flink"])
def test_a_feature_written_as_its_engines_distinct_count_keeps_its_own_words(dialect: str) -> None:
    merchants = next(f for f in sql_feats(dialect) if f.name == "merchants_1d")
    written = MERCHANTS[dialect].format(w=frame(DAY_SQL[dialect]))
    assert merchants.description == f"{written} AS merchants_1d FROM SqlTx WHERE merchant <> 'c' ({dialect} SQL)"
