"""engine="flink" on a TableEnvironment of the user's (batch or streaming), passed as
``table_env=`` or ``session=``: the plan's results are right under the user's own
settings (a local time zone other than UTC, parallelism 2), and the environment's
configuration is, key for key, what it was before the run, also after a failed run.

Real PyFlink on its local mini-cluster: the JVM relplan starts (``local_table_env``),
two environments of the user's on it for the whole module, four short jobs in all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp
import relplan.backends.flink as flink
from relplan.backends.flink import local_table_env

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
USER_SETTINGS = {"table.local-time-zone": "America/New_York", "parallelism.default": "2"}


class FTx(rp.Source):
    account_id: rp.Int64 = rp.key()
    amount: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time(lateness="3s")


@rp.transformation
def failed_count(tx: FTx, wspec: rp.WindowSpec) -> Any:
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def amount_sum(tx: FTx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("account_id").window(wspec)["amount"].sum()


def tx(rows: list[tuple[int, float, str, float]]) -> pa.Table:
    """(account, amount, status, seconds after T0), in time order."""
    return pa.table({
        "account_id": pa.array([r[0] for r in rows], pa.int64()),
        "amount": pa.array([r[1] for r in rows], pa.float64()),
        "status": pa.array([r[2] for r in rows], pa.string()),
        "ts": pa.array([T0 + dt.timedelta(seconds=r[3]) for r in rows], pa.timestamp("us", tz="UTC")),
    })


DATA = tx([(1, 5.0, "failed", 0), (1, 7.0, "ok", 4), (2, 1.0, "failed", 4), (1, 2.5, "failed", 9.5), (2, 3.0, "ok", 12)])


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


def configuration(env: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The environment's own key-value map and the full one (with the root configuration's)."""
    config = env.get_config()
    return config.get_configuration().to_dict(), config.to_map()


def user_env(mode: str) -> Any:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.in_batch_mode() if mode == "batch" else EnvironmentSettings.in_streaming_mode()
    env = TableEnvironment.create(settings)
    for k, v in USER_SETTINGS.items():
        env.get_config().set(k, v)
    return env


@pytest.fixture(scope="module")
def envs() -> Iterator[dict[str, Any]]:
    local_table_env("batch")  # the JVM, started once by relplan with its options; the users' envs live on it
    yield {"batch": user_env("batch"), "streaming": user_env("streaming")}


def check_left_as_found(env: Any, before: tuple[dict[str, str], dict[str, str]], tables: set[str]) -> None:
    assert configuration(env) == before
    assert {k: env.get_config().get(k, "") for k in USER_SETTINGS} == USER_SETTINGS
    assert "pipeline.auto-watermark-interval" not in before[1]  # set for a streaming run, and gone again
    assert set(env.list_temporary_tables()) == tables


def test_a_users_batch_environment_runs_a_plan_and_keeps_its_configuration(envs: dict[str, Any]) -> None:
    env = envs["batch"]
    before, tables = configuration(env), set(env.list_temporary_tables())
    # Window starts come through TO_TIMESTAMP_LTZ, which reads the session's zone: the run's UTC
    # is what makes them right; New York's would shift them by five hours.
    plan = rp.optimize(rp.compile([failed_count(window=rp.tumbling("5s"), name="failed_5s")]))
    got = rp.execute(plan, "flink", {"FTx": DATA}, table_env=env)
    assert rows(got) == rows(rp.execute(plan, "duckdb", {"FTx": DATA}))
    assert min(got.column("window_start").to_pylist()) == T0
    check_left_as_found(env, before, tables)


def test_a_users_streaming_environment_given_as_session_runs_a_plan_and_keeps_its_configuration(
    envs: dict[str, Any],
) -> None:
    env = envs["streaming"]
    before, tables = configuration(env), set(env.list_temporary_tables())
    plan = rp.optimize(rp.compile([
        failed_count(window=rp.sliding("10s"), name="failed_10s"), amount_sum(window=rp.tumbling("5s"), name="amount_5s"),
    ]))
    got = rp.execute_all(plan, "flink", {"FTx": DATA}, session=env)  # the mode is the environment's
    expected = rp.execute_all(plan, "duckdb", {"FTx": DATA})
    assert set(got) == set(expected)
    for name in expected:
        assert rows(got[name]) == rows(expected[name]), name
    check_left_as_found(env, before, tables)


def test_training_data_on_a_users_batch_environment(envs: dict[str, Any]) -> None:
    env = envs["batch"]
    before, tables = configuration(env), set(env.list_temporary_tables())
    spine = pa.table({
        "account_id": pa.array([1, 2, 1, 3], pa.int64()),
        "t": pa.array([T0 + dt.timedelta(seconds=s) for s in (4, 5, 10, 10)], pa.timestamp("us", tz="UTC")),
    })
    feats = [failed_count(window=rp.sliding("10s"), name="failed_10s"), rp.latest(FTx, "amount", by="account_id")]
    got = rp.pitc_join_features(spine, feats, {"FTx": DATA}, engine="flink", table_env=env)
    assert got.to_pylist() == rp.pitc_join_features(spine, feats, {"FTx": DATA}).to_pylist()
    assert got.column("failed_10s").to_pylist() == [1, 1, 2, 0]  # not a constant: the check can fail
    check_left_as_found(env, before, tables)
    # Training data is computed in batch: a streaming environment is refused, before anything runs.
    with pytest.raises(rp.RelplanError, match="takes a TableEnvironment in batch mode .* the one passed is in streaming mode"):
        rp.pitc_join_features(spine, feats, {"FTx": DATA}, engine="flink", table_env=envs["streaming"])


def test_a_failing_run_leaves_the_configuration_as_found(envs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    plan = rp.optimize(rp.compile([failed_count(window=rp.tumbling("5s"), name="failed_5s")]))
    # Flink fails on a value of one of the run's options (a key the environment does not
    # have): the run is refused by Flink's planner, and the key must be gone afterwards.
    script_options = flink._script_options
    monkeypatch.setattr(
        flink, "_script_options", lambda mode: {**script_options(mode), "table.exec.resource.default-parallelism": "many"}
    )
    env = envs["batch"]
    before, tables = configuration(env), set(env.list_temporary_tables())
    with pytest.raises(rp.EngineError, match='Flink failed on outputs .*"many"'):
        rp.execute(plan, "flink", {"FTx": DATA}, table_env=env)
    check_left_as_found(env, before, tables)
    monkeypatch.undo()
    # relplan's own check, mid-run (after the options are set): streaming event time has milliseconds only.
    env = envs["streaming"]
    before, tables = configuration(env), set(env.list_temporary_tables())
    sub_ms = DATA.set_column(3, "ts", pa.array([T0 + dt.timedelta(microseconds=1)] * DATA.num_rows, pa.timestamp("us", tz="UTC")))
    with pytest.raises(rp.DataError, match="sub-millisecond"):
        rp.execute(plan, "flink", {"FTx": sub_ms}, table_env=env)
    check_left_as_found(env, before, tables)


def test_what_is_no_table_environment_is_refused_by_name(envs: dict[str, Any]) -> None:
    from pyflink.datastream import StreamExecutionEnvironment

    plan = rp.optimize(rp.compile([failed_count(window=rp.tumbling("5s"), name="failed_5s")]))
    with pytest.raises(rp.RelplanError, match=r"engine 'flink' takes table_env= a PyFlink TableEnvironment.* got str: 'my-env'"):
        rp.execute(plan, "flink", {"FTx": DATA}, table_env="my-env")
    stream_env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(rp.RelplanError, match=r"takes session= .*got pyflink\.datastream\..*StreamExecutionEnvironment.*"
                                              r"pass StreamTableEnvironment\.create\(it\)"):
        rp.execute(plan, "flink", {"FTx": DATA}, session=stream_env)
    with pytest.raises(rp.RelplanError, match="as table_env= or as session=, not both"):
        rp.execute(plan, "flink", {"FTx": DATA}, table_env=envs["batch"], session=envs["streaming"])
    with pytest.raises(rp.RelplanError, match=r"mode='streaming', but the TableEnvironment passed runs in batch mode"):
        rp.execute(plan, "flink", {"FTx": DATA}, table_env=envs["batch"], mode="streaming")
