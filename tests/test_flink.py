"""The Flink backend: the script to_sql emits, late and out-of-order events in each
mode, and clear errors for what Flink cannot run."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from typing import Any

import pyarrow as pa
import pytest

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
    """The statement of the README ("Late and out-of-order events") as a model: which
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
    # moderate size against their spread (the README's semantics table), as here.
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


# ---- what Flink cannot run is refused up front, naming it ---------------------------------


def test_sub_millisecond_event_times_are_refused_in_streaming_mode() -> None:
    data = tx([(1, 1.0, "failed", 0.0000015)])
    with pytest.raises(rp.DataError, match=r"event-time column 'ts' of source 'Tx' has 1 value\(s\) with sub-millisecond"):
        execute_all(plan(), "flink", {"Tx": data}, mode="streaming")


def test_unsupported_features_name_what_the_user_wrote() -> None:
    @rp.transformation
    def last_amount(tx: Tx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("account_id").window(wspec)["amount"].last()

    @rp.transformation
    def distinct_status(tx: Tx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("account_id").window(wspec)["status"].count_distinct()

    with pytest.raises(rp.UnsupportedError, match="first/last are not supported by the flink backend"):
        rp.compile([last_amount(window=rp.sliding("1m"), name="last_1m")]).to_sql("flink")
    with pytest.raises(rp.UnsupportedError, match="count_distinct over a window .* Flink refuses DISTINCT"):
        rp.compile([distinct_status(window=rp.sliding("1m"), name="d_1m")]).to_sql("flink")
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
