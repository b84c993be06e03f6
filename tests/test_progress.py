"""Progress bars on long work (shown on a terminal only, or when forced; silent when
off) and relplan's logging (engine, SQL and times at DEBUG, one INFO line per call,
nothing printed by default). Small inputs on DuckDB and SQLite: quick.

``progress.DELAY`` (the time before a bar appears) is 0 in most tests here, so that a
bar is drawn for any work, deterministically (on closing, if the drawing thread has not
drawn it yet); the tests of short work set it back to a long one."""

from __future__ import annotations

import datetime as dt
import io
import logging
import sys
import time
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp
from relplan.compiler import progress

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


class PTx(rp.Source):
    account_id: rp.Int64 = rp.key()
    amount: rp.Float64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def amount_sum(tx: PTx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("account_id").window(wspec)["amount"].sum()


FEATURE = amount_sum(window=rp.sliding("1h"), name="amount_1h")
TX = pa.table({
    "account_id": pa.array([1, 2, 1, 1, 2], pa.int64()),
    "amount": pa.array([1.0, 2.0, 3.0, 4.0, 5.0]),
    "ts": pa.array([T0 + dt.timedelta(minutes=m) for m in (0, 5, 10, 90, 95)], pa.timestamp("us", tz="UTC")),
})
SPINE = pa.table({
    "account_id": pa.array([1, 2, 1], pa.int64()),
    "t": pa.array([T0 + dt.timedelta(minutes=m) for m in (11, 6, 91)], pa.timestamp("us", tz="UTC")),
    "label": pa.array([True, False, True]),
})


class Tty(io.StringIO):
    """A terminal, as far as anyone asking isatty() knows."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(progress, "enabled", None)
    monkeypatch.setattr(progress, "DELAY", 0.0)


def terminal(monkeypatch: pytest.MonkeyPatch) -> Tty:
    """A terminal as stderr, for the rest of the test (set in the test itself: pytest's
    capture puts its own stderr back between a fixture's set-up and the test)."""
    stream = Tty()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def training_data(**kwargs: Any) -> pa.Table:
    return rp.pitc_join_features(SPINE, [FEATURE], {"PTx": TX}, **kwargs)


def execute(**kwargs: Any) -> pa.Table:
    return rp.execute(rp.compile([FEATURE]), tables={"PTx": TX}, **kwargs)


# ---- when a bar is shown --------------------------------------------------------------------


def test_a_terminal_gets_a_bar_of_the_steps_of_training_data(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    out = training_data()
    assert out.column("amount_1h").to_pylist() == [4.0, 2.0, 4.0]
    text = tty.getvalue()
    assert "relplan training data" in text
    assert "5/5" in text  # planning, checking ties, optimizing, running on duckdb, assembling


def test_rp_execute_shows_a_bar_too(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    execute()
    assert "relplan execute" in tty.getvalue()


def test_no_bar_where_stderr_is_no_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    training_data()
    execute()
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("value", ["1", "true", "on"])
def test_RELPLAN_PROGRESS_1_forces_the_bar_without_a_terminal(
    value: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(progress.ENV, value)
    training_data()
    assert "relplan training data" in capfd.readouterr().err


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_RELPLAN_PROGRESS_0_silences_a_terminal(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    monkeypatch.setenv(progress.ENV, value)
    training_data()
    execute()
    assert tty.getvalue() == ""


def test_set_progress_turns_bars_off_and_on(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    monkeypatch.setenv(progress.ENV, "1")
    progress.set_progress(False)  # the code's setting over the environment's
    training_data()
    assert tty.getvalue() == ""
    progress.enabled = None  # the module attribute is the setting
    training_data()
    assert "relplan training data" in tty.getvalue()


def test_set_progress_true_forces_bars_without_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    progress.set_progress(True)
    execute()
    assert "relplan execute" in capfd.readouterr().err
    progress.set_progress(None)
    execute()
    assert capfd.readouterr().err == ""
    with pytest.raises(rp.RelplanError, match="set_progress\\(\\) takes True, False or None, got 'yes'"):
        progress.set_progress("yes")  # type: ignore[arg-type]


def test_progress_false_silences_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    progress.set_progress(True)
    training_data(progress=False)
    execute(progress=False)
    assert tty.getvalue() == ""
    training_data(progress=True)
    assert "relplan training data" in tty.getvalue()
    with pytest.raises(rp.RelplanError, match="progress= takes True, False or None"):
        execute(progress="no")


def test_short_work_draws_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    monkeypatch.setattr(progress, "DELAY", 30.0)
    training_data()
    execute()
    assert tty.getvalue() == ""
    assert progress.task("x") is not progress.OFF  # on (a terminal), and still nothing drawn


def test_off_costs_nothing_but_the_check() -> None:
    progress.set_progress(False)
    assert progress.task("x", total=3) is progress.OFF
    items = [1, 2, 3]
    assert progress.track(items, "x") is items


def test_a_long_step_is_drawn_while_it_runs_with_the_engines_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    monkeypatch.setattr(progress, "TICK", 0.02)
    with progress.task("long work", total=2) as work:
        work.step("first")
        work.note("a detail")
        deadline = time.monotonic() + 5
        while "first: a detail" not in tty.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # the drawing thread shows it while the step runs
        assert "relplan long work:   0%" in tty.getvalue()
        assert "0/2 [00:00, first: a detail]" in tty.getvalue()
        work.step("second")
    assert "2/2" in tty.getvalue()


def test_materialize_shows_its_groups_and_the_write(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = terminal(monkeypatch)
    with rp.online_store("sqlite://") as store:
        written = store.materialize([FEATURE], {"PTx": TX})
        assert written["records"] > 0
        assert "relplan materialize" in tty.getvalue()
        assert "3/3" in tty.getvalue()  # one group: the engine, encoding, writing
        before = tty.getvalue()
        store.materialize([FEATURE], {"PTx": TX}, progress=False)
        assert tty.getvalue() == before


# ---- logging ------------------------------------------------------------------------------


def relplan_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("relplan")]


def test_debug_shows_the_engine_the_sql_and_the_times_of_execute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="relplan")
    execute()
    engine = [r.getMessage() for r in caplog.records if r.name == "relplan.engine.duckdb"]
    assert any(m.startswith("duckdb: registered PTx (5 rows) in ") and " ms " in m for m in engine)
    sql = [m for m in engine if "SQL:" in m]
    assert len(sql) == 1 and 'FROM "PTx"' in sql[0] and "OVER" in sql[0]
    assert any(
        m.startswith("duckdb: output 'PTx': 5 rows; prepared in ") and "ran and fetched in " in m and m.endswith(" ms")
        for m in engine
    )
    infos = [r for r in relplan_records(caplog) if r.levelno == logging.INFO]
    assert [r.name for r in infos] == ["relplan.execute"]  # one line per call
    assert infos[0].getMessage().startswith("execute on duckdb: 1 output(s) ['PTx'] from 5 input row(s) -> [5] rows in ")


def test_debug_shows_the_steps_sql_and_times_of_training_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="relplan")
    training_data()
    steps = [r.getMessage() for r in caplog.records if r.name == "relplan.pitc" and r.levelno == logging.DEBUG]
    assert [m.split(" in ")[0] for m in steps] == [
        "training data: planning", "training data: checking ties", "training data: optimizing",
        "training data: running on duckdb", "training data: assembling",
    ]
    assert all(m.endswith(" ms") for m in steps)
    sql = [r.getMessage() for r in caplog.records if r.name == "relplan.engine.duckdb" and "SQL:" in r.getMessage()]
    assert len(sql) == 1 and '"pitc_spine"' in sql[0]
    infos = [r for r in relplan_records(caplog) if r.levelno >= logging.INFO]
    assert len(infos) == 1 and infos[0].name == "relplan.pitc"
    assert infos[0].getMessage().startswith("training data on duckdb: 3 spine rows, 1 feature column(s), in ")
    assert "running on duckdb " in infos[0].getMessage()


def test_info_is_one_line_per_materialize(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relplan")
    with rp.online_store("sqlite://") as store:
        store.materialize([FEATURE], {"PTx": TX})
    infos = relplan_records(caplog)
    assert len(infos) == 1 and infos[0].name == "relplan.serving"
    assert infos[0].getMessage().startswith("materialize on duckdb: 1 group(s), ")


def test_nothing_is_logged_or_printed_by_default(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger("relplan")
    assert root.level == logging.NOTSET and all(isinstance(h, logging.NullHandler) for h in root.handlers)
    assert root.handlers  # a NullHandler: Python's last resort never prints relplan's records
    caplog.set_level(logging.WARNING)  # the root logger's default level; relplan's loggers inherit it
    training_data()
    execute()
    with rp.online_store("sqlite://") as store:
        store.materialize([FEATURE], {"PTx": TX})
    assert relplan_records(caplog) == []
    assert capfd.readouterr() == ("", "")
    caplog.set_level(logging.DEBUG, logger="relplan")  # the same calls do log when asked to
    execute()
    assert relplan_records(caplog)


def test_the_engine_reports_its_steps_to_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[str | None] = []
    monkeypatch.setattr(progress.Task, "note", lambda self, text: notes.append(text))
    execute(progress=True)
    assert notes == ["registering inputs", "query PTx"]
    notes.clear()
    execute(progress=False)  # no bar: the engine is given nothing to report to
    assert notes == []
