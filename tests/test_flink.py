"""The Flink backend: the script to_sql emits, late and out-of-order events in each
mode, and clear errors for what Flink cannot run."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.backends.flink import (
    FlinkLowering, filesystem_options, kafka_options, local_table_env, run_script, script_statements, validate_script,
)
from relplan.compiler.execute import execute_all

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


class Tx(rp.Source):
    account_id: rp.Int64 = rp.key()
    amount: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time(lateness="3s")


@rp.transformation
def failed_count(tx: Tx, wspec: rp.WindowSpec) -> Any:
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def amount_sum(tx: Tx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("account_id").window(wspec)["amount"].sum()


def plan() -> rp.Plan:
    return rp.optimize(rp.compile([
        failed_count(window=rp.sliding("10s"), name="failed_10s"),
        amount_sum(window=rp.sliding("1m"), name="amount_1m"),
    ]))


def tx(rows: list[tuple[int, float, str, float]]) -> pa.Table:
    """(account, amount, status, seconds after T0), in arrival order."""
    return pa.table({
        "account_id": pa.array([r[0] for r in rows], pa.int64()),
        "amount": pa.array([r[1] for r in rows], pa.float64()),
        "status": pa.array([r[2] for r in rows], pa.string()),
        "ts": pa.array([T0 + dt.timedelta(seconds=r[3]) for r in rows], pa.timestamp("us", tz="UTC")),
    })


def rows_by_time(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["ts"], r["amount"]))


def window_rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["window_start"], r["account_id"]))


# ---- the script -----------------------------------------------------------------


def test_streaming_script_declares_event_time_watermark_and_one_frame_per_select() -> None:
    sql = plan().to_sql("flink", mode="streaming")
    assert sql.startswith("SET 'execution.runtime-mode' = 'streaming';")
    assert "SET 'table.local-time-zone' = 'UTC';" in sql
    # the event time is Flink's TIMESTAMP(3) attribute; the watermark: lateness 3s + 1 ms
    assert "`ts` TIMESTAMP(3)" in sql and "WATERMARK FOR `ts` AS `ts` - INTERVAL" in sql
    assert "WATERMARK FOR `ts` AS `ts` - INTERVAL '3.001' SECOND" in sql
    assert "\nINSERT INTO `Tx_features`\n" in sql  # the output's table: the source has its name
    # (t - 10s, t] is [t - 9.999s, t] in milliseconds; a SELECT per frame
    assert sql.count("RANGE BETWEEN INTERVAL") == 2
    assert "EXTRACT(EPOCH" not in sql


def test_script_statements_split_set_options_from_sql() -> None:
    settings, statements = script_statements(
        "SET 'pipeline.name' = 'it''s';\n\nCREATE TABLE `t` (`a` BIGINT);\n\nINSERT INTO `t` SELECT 1;"
    )
    assert settings == {"pipeline.name": "it's"}
    assert statements == ["CREATE TABLE `t` (`a` BIGINT)", "INSERT INTO `t` SELECT 1"]


def test_batch_script_ranges_over_epoch_microseconds() -> None:
    sql = plan().to_sql("flink", mode="batch")
    assert "SET 'execution.runtime-mode' = 'batch';" in sql
    assert "WATERMARK" not in sql and "`ts` TIMESTAMP(6)" in sql
    assert "RANGE BETWEEN 9999999 PRECEDING AND CURRENT ROW" in sql  # (t-10s, t] in microseconds


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_the_script_runs_as_it_is_and_gives_the_engines_rows(tmp_path: Any, mode: str) -> None:
    p = plan()
    data = tx([(1, 5.0, "failed", 0), (1, 7.0, "ok", 4), (2, 1.0, "failed", 4), (1, 2.5, "failed", 9.5), (1, 1.0, "failed", 70)])
    source_dir, out_dir = tmp_path / "tx", tmp_path / "out"
    source_dir.mkdir()
    with open(source_dir / "tx.json", "w") as f:
        for r in data.to_pylist():
            f.write(json.dumps({**r, "ts": r["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")}) + "\n")
    connectors = {"Tx": filesystem_options(str(source_dir)), "Tx_features": filesystem_options(str(out_dir))}
    script = p.to_sql("flink", mode=mode, connectors=connectors)
    run_script(script, local_table_env(mode))  # SET lines into the configuration, as the SQL client does
    got = []
    for name in os.listdir(out_dir):
        if not name.startswith("."):
            got += [json.loads(line) for line in open(out_dir / name)]
    expected = rp.execute(p, "duckdb", {"Tx": data}).to_pylist()
    assert sorted((r["ts"][:19], r["failed_10s"], r["amount_1m"]) for r in got) == sorted(
        (r["ts"].strftime("%Y-%m-%d %H:%M:%S"), r["failed_10s"], r["amount_1m"]) for r in expected
    )


def test_kafka_script_is_accepted_by_flinks_planner() -> None:
    connectors = {
        "Tx": kafka_options("transactions", "broker:9092", group_id="relplan"),
        "Tx_features": kafka_options("features", "broker:9092"),
    }
    script = plan().to_sql("flink", mode="streaming", connectors=connectors)
    assert "'connector' = 'kafka'" in script and "'topic' = 'transactions'" in script
    explained = validate_script(script)
    assert "WatermarkAssigner" in explained and "OverAggregate" in explained
    assert "Sink(table=[default_catalog.default_database.Tx_features]" in explained
    # and it is a real check: a mistake in the query is found
    with pytest.raises(rp.EngineError, match="no_such_column"):
        validate_script(script.replace("SUM(`amount`)", "SUM(`no_such_column`)"))


# ---- late and out-of-order events --------------------------------------------------


def dropped_in_streaming(events: list[tuple[int, float]], lateness_s: float, frame: str) -> set[int]:
    """The statement of docs/engines.md ("Late and out-of-order events") as a model: which
    events (indices, in arrival order) Flink's streaming OVER windows drop.

    The watermark trails the newest event time seen by the lateness + 1 ms, and moves
    after each event. A row is emitted once the watermark reaches its time. A lifetime
    frame drops an event at or below the watermark when it arrives; a sliding frame
    drops an event at or below the newest emitted row of its own key; a tumbling window
    (of 5 s here) drops an event whose window's last millisecond is at or below it.
    """
    watermark, emitted, pending, dropped = -math.inf, {}, [], set()
    for i, (key, t) in enumerate(events):
        if frame == "lifetime":
            late = t <= watermark
        elif frame == "tumbling":
            late = (t // 5 * 5 + 5) - 0.001 <= watermark
        else:
            late = t <= emitted.get(key, -math.inf)
        if late:
            dropped.add(i)
        else:
            pending.append((key, t))
        watermark = max(watermark, t - lateness_s - 0.001)
        for key_, t_ in [p for p in pending if p[1] <= watermark]:
            emitted[key_] = max(emitted.get(key_, -math.inf), t_)
            pending.remove((key_, t_))
    return dropped


@rp.transformation
def amount_total(tx: Tx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("account_id").window(wspec)["amount"].sum()


@pytest.mark.parametrize("frame", ["sliding", "lifetime", "tumbling"])
def test_late_and_out_of_order_events_in_each_mode_are_as_documented(frame: str) -> None:
    # (account, seconds) in arrival order; the source's lateness is 3 s.
    events = [(1, 0), (1, 5), (1, 2.5), (1, 1.5), (1, 5), (2, 1), (1, 9), (1, 4), (2, 0.5), (2, 9), (1, 5.5)]
    data = tx([(k, float(2**i), "failed", t) for i, (k, t) in enumerate(events)])  # amounts name the events
    window = {"sliding": None, "lifetime": rp.lifetime(), "tumbling": rp.tumbling("5s")}[frame]
    p = plan() if window is None else rp.optimize(rp.compile([amount_total(window=window, name="amount_total")]))
    out = p.output_names[0]
    by_time = rows_by_time if frame != "tumbling" else window_rows
    batch = by_time(execute_all(p, "flink", {"Tx": data}, mode="batch")[out])
    assert batch == by_time(execute_all(p, "duckdb", {"Tx": data})[out])  # batch: every event counts

    dropped = dropped_in_streaming(events, 3, frame)
    assert dropped and len(dropped) < len(events) - 2  # the data exercises both sides of the rule
    on_time = data.take([i for i in range(len(events)) if i not in dropped])
    streaming = by_time(execute_all(p, "flink", {"Tx": data}, mode="streaming")[out])
    # A dropped event has no row and is counted in no other row: the rows are the
    # batch engines' rows over the events that were not dropped.
    assert streaming == by_time(execute_all(p, "duckdb", {"Tx": on_time})[out])


@rp.transformation
def amount_spread(tx: Tx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("account_id").window(wspec).agg(var=("amount", "var"), std=("amount", "std"))


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_var_and_std_of_moderate_values_equal_duckdbs(mode: str) -> None:
    # Flink's VAR_SAMP is the one-pass sum-of-squares formula: right for values of
    # moderate size against their spread (the semantics table in docs/semantics.md), as here.
    amounts = [12.5, 3.0, 7.25, 7.25, 100.0, 0.5, 42.0, 8.0]
    data = tx([(1 + i % 2, a, "ok", 3 * i) for i, a in enumerate(amounts)])
    p = rp.optimize(rp.compile([
        amount_spread(window=rp.sliding("10s"), name="spread_10s"),
        amount_spread(window=rp.tumbling("10s"), name="spread_tumble"),
    ]))
    flink = execute_all(p, "flink", {"Tx": data}, mode=mode)
    duckdb = execute_all(p, "duckdb", {"Tx": data})
    for name in p.output_names:
        key = (lambda r: (r["ts"], r["amount"])) if "ts" in duckdb[name].column_names else (
            lambda r: (r["window_start"], r["account_id"]))
        got, want = sorted(flink[name].to_pylist(), key=key), sorted(duckdb[name].to_pylist(), key=key)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            for c, v in w.items():
                close = g[c] == pytest.approx(v, rel=1e-9) if isinstance(v, float) else g[c] == v
                assert close or (v is None and g[c] is None), (name, c, g, w)


def exact_spread(values: list[float]) -> tuple[float | None, float | None]:
    """Sample variance and standard deviation, computed exactly (Fractions), rounded once."""
    if len(values) < 2:
        return None, None
    xs = [Fraction(v) for v in values]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return float(var), math.sqrt(var)


@pytest.mark.parametrize("mode", ["batch", "streaming"])
@settings(max_examples=3, deadline=None)
@given(
    base=st.sampled_from([2.0**45, 2.0**45 * 3, 1e15, -(2.0**50)]),
    offsets=st.lists(st.tuples(st.integers(1, 2), st.integers(-8, 8), st.integers(0, 20)), min_size=2, max_size=16),
)
def test_var_and_std_of_large_nearly_equal_values_are_exact_to_1e9(
    mode: str, base: float, offsets: list[tuple[int, int, int]]
) -> None:
    """Flink's own VAR_SAMP gives -8.6e9 for equal values near 2^45; relplan's shifted
    sums (FlinkLowering.shifted_var) must give the exact variance within a relative
    1e-9 (absolute 1e-9 near 0), per event and per window, in both modes."""
    in_order = sorted(offsets, key=lambda o: o[2])  # streaming: none late
    data = tx([(k, base + d / 2, "ok", 10 * t) for k, d, t in in_order])
    p = rp.optimize(rp.compile([
        amount_spread(window=rp.sliding("1m"), name="spread_1m"),
        amount_spread(window=rp.tumbling("1m"), name="spread_tumble"),
    ]))
    got = execute_all(p, "flink", {"Tx": data}, mode=mode)
    rows = data.to_pylist()

    def close(g: float | None, w: float | None) -> bool:
        return (g is None and w is None) or (g is not None and w is not None and g == pytest.approx(w, rel=1e-9, abs=1e-9))

    for r in got["Tx"].to_pylist():
        frame = [e["amount"] for e in rows if e["account_id"] == r["account_id"] and r["ts"] - dt.timedelta(minutes=1) < e["ts"] <= r["ts"]]
        var, std = exact_spread(frame)
        assert close(r["spread_1m_var"], var) and close(r["spread_1m_std"], std), (r, frame)
    (tumble,) = [t for name, t in got.items() if name != "Tx"]
    assert tumble.num_rows
    for r in tumble.to_pylist():
        window = [e["amount"] for e in rows if e["account_id"] == r["account_id"] and r["window_start"] <= e["ts"] < r["window_end"]]
        var, std = exact_spread(window)
        assert close(r["spread_tumble_var"], var) and close(r["spread_tumble_std"], std), (r, window)


# ---- count_distinct and first/last over frames (no native form in Flink) ------------------


class Logins(rp.Source):
    user_id: rp.Int64 = rp.key()
    ip: rp.String
    attempts: rp.Int64
    score: rp.Float64
    ok: rp.Bool
    day: rp.Date
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def user_unique_ip(logins: Logins, wspec: rp.WindowSpec) -> Any:
    """The talk's example feature: distinct IPs per user."""
    return logins.groupby("user_id").window(wspec)["ip"].nunique()


@rp.transformation
def login_extremes(logins: Logins, wspec: rp.WindowSpec) -> Any:
    return logins.groupby("user_id").window(wspec).agg(
        **{f"{f}_{c}": (c, f) for f in ("first", "last") for c in ("ip", "attempts", "score", "ok", "day", "ts")},
        distinct_score=("score", "count_distinct"), distinct_ts=("ts", "count_distinct"),
    )


def logins() -> pa.Table:
    """Ties on time with different values, NULLs, -0.0 beside 0.0, the Int64 and Float64
    extremes (subnormals, infinities), events exactly a window apart; whole milliseconds."""
    day = dt.timedelta(days=1)
    scores = [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -math.inf, math.inf, 0.1, -0.1, None, 2.0**36 * 3.25, -2.2250738585072014e-308]
    ints = [0, -(2**63), 2**63 - 1, None, 7, -3, 2**32, 5, 5, 1, -1, 12]
    ips = ["10.0.0.1", "", "10.0.0.2", None, "é", "10.0.0.1", "日本", "a'b", "10.0.0.2", "B", "b", ""]
    offsets = [0, 0, 0, 1, 1, 30, 30, 30, 31, 45, 60, 60]  # days: 30 is exactly a 30-day window after 0
    rows = [
        {"user_id": {9: None, 3: 3}.get(i, (1, 1, 2)[i % 3]), "ip": ips[i], "attempts": ints[i], "score": scores[i],
         "ok": None if i == 4 else i % 2 == 0, "day": dt.date(2023, 12, 1) + dt.timedelta(days=i % 4),
         "ts": T0 + offsets[i] * day + dt.timedelta(milliseconds=i % 2)}
        for i in range(len(scores))
    ]
    rows.sort(key=lambda r: r["ts"])  # in order: none late in streaming
    return pa.Table.from_pylist(rows, schema=Logins.to_arrow_schema())


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_count_distinct_and_first_last_over_frames_equal_duckdbs(mode: str) -> None:
    p = rp.optimize(rp.compile([
        user_unique_ip(window=rp.sliding("30d"), name="user_unique_ip_30d"),
        login_extremes(window=rp.sliding("1d"), name="x_1d"),
        login_extremes(window=rp.lifetime(), name="x_life"),
        login_extremes(window=rp.tumbling("30d"), name="x_30d"),
    ]))
    data = {"Logins": logins()}
    flink = execute_all(p, "flink", data, mode=mode)
    duckdb = execute_all(p, "duckdb", data)
    validate_script(p.to_sql("flink", mode=mode))  # the script is plain Flink SQL: no function to register
    assert set(flink) == set(duckdb)
    for name, want in duckdb.items():
        order = [c for c in want.column_names]
        key = lambda r: tuple((v is None, str(v)) for v in (r[c] for c in order))  # noqa: E731
        assert sorted(flink[name].to_pylist(), key=key) == sorted(want.to_pylist(), key=key), name
    unique = [r["user_unique_ip_30d"] for r in duckdb["Logins"].to_pylist()]  # the data reaches the edges:
    assert None in unique and 0 in unique and max(u for u in unique if u is not None) >= 3  # no entity, no IP, several


floats = st.one_of(st.floats(allow_nan=False), st.integers(-(2**53), 2**53).map(float))


@settings(max_examples=5, deadline=None)
@given(values=st.lists(st.tuples(st.integers(0, 3), floats), min_size=1, max_size=40))
def test_first_last_of_any_doubles_are_exact_on_flink(values: list[tuple[int, float]]) -> None:
    """The order-preserving key of a double (backends/flink_extremes.py) against Python's
    order: per window, first is the smallest value at the earliest time, last the
    largest at the latest, bit for bit (-0.0 and 0.0 compare equal)."""
    rows = [{"account_id": 1, "amount": x, "status": "ok", "ts": T0 + dt.timedelta(seconds=s)} for s, x in values]
    data = pa.Table.from_pylist(rows, schema=Tx.to_arrow_schema())

    @rp.transformation
    def ends(tx: Tx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("account_id").window(wspec).agg(first=("amount", "first"), last=("amount", "last"))

    p = rp.optimize(rp.compile([ends(window=rp.tumbling("1h"), name="ends")]))
    (got,) = execute_all(p, "flink", {"Tx": data}).values()
    first_t, last_t = min(s for s, _ in values), max(s for s, _ in values)
    assert got.to_pylist()[0]["ends_first"] == min(x for s, x in values if s == first_t)
    assert got.to_pylist()[0]["ends_last"] == max(x for s, x in values if s == last_t)


def test_the_date_of_a_time_before_1970_is_its_calendar_day() -> None:
    """Flink's CAST(TIMESTAMP AS DATE) truncates epoch days toward zero (1969-12-31 23:59
    is 1970-01-01 there); relplan's cast takes the calendar day, as DuckDB does."""
    from relplan.ir import types as T
    from relplan.ir.expr import Cast, Column
    from relplan.ir.nodes import Project, Sink, Source
    from relplan.ir.schema import Schema

    src = Source("E", Schema.of([("ts", T.Timestamp)]), event_time="ts")
    plan = rp.Plan((Sink(Project(src, (("ts", Column("ts", T.Timestamp)), ("day", Cast(Column("ts", T.Timestamp), T.Date)))), "out"),))
    times = ["1969-12-31 23:59:00", "1969-12-31 00:00:00", "1969-12-30 12:00:00.5", "1970-01-01 00:00:00", "1900-03-01 01:00:00", "2024-02-29 23:59:59.999999"]
    data = pa.table({"ts": pa.array([dt.datetime.fromisoformat(t) for t in times], pa.timestamp("us", tz="UTC"))})
    got = execute_all(plan, "flink", {"E": data})["out"].sort_by("ts").to_pylist()
    assert got == execute_all(plan, "duckdb", {"E": data})["out"].sort_by("ts").to_pylist()
    assert got[0]["day"] == dt.date(1900, 3, 1) and got[1]["day"] == dt.date(1969, 12, 30)


# ---- what Flink cannot run is refused up front, naming it ---------------------------------


@pytest.mark.parametrize("how", ["left", "right", "full"])
def test_outer_joins_are_refused_in_streaming_mode_for_want_of_time_bounds(how: str) -> None:
    from relplan.ir import types as T
    from relplan.ir.nodes import Join, Sink, Source
    from relplan.ir.schema import Schema

    events = Source("E", Schema.of([("k", T.Int64), ("ts", T.Timestamp)]), event_time="ts")
    users = Source("U", Schema.of([("uk", T.Int64), ("name", T.String)]))
    sinks = (Sink(Join(events, users, how, (("k", "uk"),)), "out"),)
    assert "JOIN" in FlinkLowering(mode="batch").to_sql(sinks)  # batch runs every join
    assert "JOIN" in FlinkLowering(mode="streaming").to_sql((Sink(Join(events, users, "inner", (("k", "uk"),)), "out"),))
    with pytest.raises(rp.UnsupportedError, match=rf"{how} join \(.*\) is not supported in Flink streaming mode: the join has no time bounds"):
        FlinkLowering(mode="streaming").to_sql(sinks)


def test_sub_millisecond_event_times_are_refused_in_streaming_mode() -> None:
    data = tx([(1, 1.0, "failed", 0.0000015)])
    with pytest.raises(rp.DataError, match=r"event-time column 'ts' of source 'Tx' has 1 value\(s\) with sub-millisecond"):
        execute_all(plan(), "flink", {"Tx": data}, mode="streaming")


def test_unsupported_features_name_what_the_user_wrote() -> None:
    with pytest.raises(rp.UnsupportedError, match="whole milliseconds"):
        rp.compile([failed_count(window=rp.sliding("1500us"), name="c")]).to_sql("flink", mode="streaming")
    with pytest.raises(rp.RelplanError, match="Flink mode must be one of"):
        FlinkLowering(mode="realtime")
    with pytest.raises(rp.RelplanError, match=r"connectors given for \['Txx'\], which are no tables"):
        plan().to_sql("flink", connectors={"Txx": filesystem_options("x")})


# ---- golden scripts ------------------------------------------------------------------

GOLDEN_PLANS = ("per_event_failed_count", "tumbling_daily_stats", "hopping_and_tumbling")


@pytest.mark.parametrize("mode", ["batch", "streaming"])
@pytest.mark.parametrize("name", GOLDEN_PLANS)
def test_script_matches_golden_file_and_flinks_planner_accepts_it(name: str, mode: str) -> None:
    from test_sql_golden import PLANS, check_golden

    script = PLANS[name]().to_sql("flink", mode=mode)
    check_golden(f"{name}.{mode}", script, "flink")
    validate_script(script)  # parsed, validated and planned by Flink


def test_a_table_environment_of_the_users_runs_the_plan_and_is_left_clean() -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    local_table_env("batch")  # the JVM, with its options
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("table.local-time-zone", "America/New_York")  # the run sets UTC, then restores it
    before = set(env.list_temporary_tables())
    options = ("execution.runtime-mode", "table.local-time-zone")
    settings = {k: env.get_config().get(k, "") for k in options}
    data = tx([(1, 5.0, "failed", 0), (1, 7.0, "ok", 4), (2, 1.0, "failed", 4), (1, 2.5, "failed", 9.5)])
    # window starts come through TO_TIMESTAMP_LTZ, which reads the session zone
    p = rp.optimize(rp.compile([failed_count(window=rp.tumbling("5s"), name="failed_5s")]))
    got = execute_all(p, "flink", {"Tx": data}, table_env=env)[p.output_names[0]]
    assert window_rows(got) == window_rows(execute_all(p, "duckdb", {"Tx": data})[p.output_names[0]])
    assert set(env.list_temporary_tables()) == before  # the run's tables are dropped
    assert {k: env.get_config().get(k, "") for k in options} == settings
    assert settings["table.local-time-zone"] == "America/New_York"
