"""The Spark backend on a real local Spark: inputs, sessions, errors, names.

Its results are checked against the reference and DuckDB in test_cross_engine.py and
test_sql_golden.py; here: what a user hands it and what it hands back.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 10, 6, 30, tzinfo=UTC)  # a US DST change: a time zone would show


class Payments(rp.Source):
    user: rp.Int64
    amount: rp.Float64
    kind: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def spend(p: Payments, wspec: rp.WindowSpec):
    return p[p.kind != "refund"].groupby("user").window(wspec).agg(total=("amount", "sum"), n="count")


def payments(n: int = 40) -> pa.Table:
    return pa.table({
        "user": pa.array([i % 3 if i % 7 else None for i in range(n)], pa.int64()),
        "amount": pa.array([float(i) * 1.5 for i in range(n)]),
        "kind": pa.array(["refund" if i % 5 == 0 else "buy" for i in range(n)]),
        "ts": pa.array([T0 + dt.timedelta(minutes=17 * i) for i in range(n)], pa.timestamp("us", "UTC")),
    })


def spark_df(spark: Any, table: pa.Table, tmp_path: Any) -> Any:
    """A Spark DataFrame of ``table`` with its types (pandas would make int columns with NULLs float)."""
    import pyarrow.parquet as pq

    from relplan.backends.spark import read_staged_parquet

    path = str(tmp_path / "input.parquet")
    pq.write_table(table, path)
    return read_staged_parquet(spark, path)


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=repr)


PLANS = {
    "per-event": lambda: rp.compile(spend(window=rp.sliding("2h"))),
    "per-window": lambda: rp.compile(spend(window=rp.hopping("3h", "1h"))),
}


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_spark_returns_duckdb_rows_and_types(spark: Any, kind: str) -> None:
    plan = PLANS[kind]()
    got = rp.execute(plan, engine="spark", tables={"Payments": payments()})
    expected = rp.execute(plan, engine="duckdb", tables={"Payments": payments()})
    assert got.schema.equals(expected.schema)
    assert got.num_rows > 0 and rows(got) == rows(expected)


def test_a_table_the_session_has_is_read_by_name_and_cast(spark: Any, tmp_path: Any) -> None:
    # The user's table stores the key as INT and the amount as FLOAT: relplan widens both.
    df = spark_df(spark, payments(), tmp_path).selectExpr(
        "CAST(user AS INT) AS user", "CAST(amount AS FLOAT) AS amount", "kind", "ts", "'extra' AS unused"
    )
    df.createOrReplaceTempView("payments_by_name")
    try:
        plan = PLANS["per-event"]()
        got = rp.execute(plan, engine="spark", tables={"Payments": "payments_by_name"})
        expected = rp.execute(plan, engine="duckdb", tables={"Payments": payments()})
        assert rows(got) == rows(expected)
    finally:
        spark.catalog.dropTempView("payments_by_name")


def test_a_named_table_lacking_a_column_is_a_data_error(spark: Any, tmp_path: Any) -> None:
    spark_df(spark, payments(), tmp_path).drop("kind").createOrReplaceTempView("payments_no_kind")
    try:
        with pytest.raises(rp.DataError, match=r"'payments_no_kind'.*lacks column 'kind'"):
            rp.execute(PLANS["per-event"](), engine="spark", tables={"Payments": "payments_no_kind"})
    finally:
        spark.catalog.dropTempView("payments_no_kind")


def test_a_named_table_of_the_wrong_type_is_a_data_error(spark: Any, tmp_path: Any) -> None:
    df = spark_df(spark, payments(), tmp_path).selectExpr("user", "amount", "CAST(user AS STRING) AS kind", "ts")
    df = df.selectExpr("CAST(user AS STRING) AS user", "amount", "kind", "ts")
    df.createOrReplaceTempView("payments_bad_type")
    try:
        with pytest.raises(rp.DataError, match=r"column 'user' of Spark table 'payments_bad_type' is string"):
            rp.execute(PLANS["per-event"](), engine="spark", tables={"Payments": "payments_bad_type"})
    finally:
        spark.catalog.dropTempView("payments_bad_type")


def test_an_unknown_table_name_is_a_data_error(spark: Any) -> None:
    with pytest.raises(rp.DataError, match=r"source 'Payments': Spark has no table 'no_such_table'"):
        rp.execute(PLANS["per-event"](), engine="spark", tables={"Payments": "no_such_table"})


def test_duckdb_refuses_a_table_name_clearly() -> None:
    with pytest.raises(rp.DataError, match=r"source 'Payments' was given the table name 'payments'.*'duckdb'"):
        rp.execute(PLANS["per-event"](), engine="duckdb", tables={"Payments": "payments"})


def test_a_session_passed_in_gets_its_settings_back(spark: Any) -> None:
    """relplan runs in UTC with ANSI on, whatever the session says, and restores it."""
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        for kind, make in PLANS.items():
            plan = make()
            got = rp.execute(plan, engine="spark", tables={"Payments": payments()}, session=spark)
            assert rows(got) == rows(rp.execute(plan, engine="duckdb", tables={"Payments": payments()})), kind
        assert spark.conf.get("spark.sql.session.timeZone") == "America/New_York"
        assert spark.conf.get("spark.sql.ansi.enabled") == "false"
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        spark.conf.set("spark.sql.ansi.enabled", "true")


def test_an_empty_input_gives_an_empty_typed_output(spark: Any) -> None:
    plan = PLANS["per-window"]()
    got = rp.execute(plan, engine="spark", tables={"Payments": payments().slice(0, 0)})
    assert got.num_rows == 0
    assert got.schema.equals(plan.outputs[0].schema.to_arrow())


class Counters(rp.Source):
    k: rp.Int64
    v: rp.Int64
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def total(c: Counters, wspec: rp.WindowSpec):
    return c.groupby("k")["v"].window(wspec).sum()


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_int64_sum_overflow_is_an_engine_error_not_a_wrapped_value(spark: Any, engine: str) -> None:
    big = 2**62
    table = pa.table({
        "k": pa.array([1, 1, 1], pa.int64()),
        "v": pa.array([big, big, big], pa.int64()),
        "ts": pa.array([T0, T0, T0], pa.timestamp("us", "UTC")),
    })
    with pytest.raises(rp.EngineError, match=r"output 'Counters'.*(?i:overflow|out of range)"):
        rp.execute(rp.compile(total(window=rp.lifetime())), engine=engine, tables={"Counters": table})


@rp.transformation
def average(c: Counters, wspec: rp.WindowSpec):
    return c[c.v != 5].groupby("k")["v"].window(wspec).mean()


@pytest.mark.parametrize("window", [rp.sliding("1h"), rp.tumbling("1h")], ids=["per-event", "per-window"])
def test_the_mean_of_large_int64_values_is_exact_as_on_duckdb(spark: Any, window: rp.WindowSpec) -> None:
    # Spark's own AVG(BIGINT) adds DOUBLEs: 2**53 + 1 - 2**53 would give 0, not 1/3.
    table = pa.table({
        "k": pa.array([1, 1, 1, 2], pa.int64()),
        "v": pa.array([2**53, 1, -(2**53), 5], pa.int64()),
        "ts": pa.array([T0] * 4, pa.timestamp("us", "UTC")),
    })
    plan = rp.compile(average(window=window))
    for engine in ("spark", "duckdb"):
        out = rp.execute(plan, engine=engine, tables={"Counters": table}).sort_by("k")  # k=1 rows tie on v, not on value
        assert out.column(-1).to_pylist() == ([1 / 3] * 3 + [None] if window.kind == "sliding" else [1 / 3]), engine


def test_a_named_table_reads_nan_as_null_and_refuses_null_times(spark: Any, tmp_path: Any) -> None:
    table = payments(6).set_column(1, "amount", pa.array([1.0, float("nan"), 2.0, None, 4.0, 8.0]))
    spark_df(spark, table, tmp_path).createOrReplaceTempView("payments_nan")
    nulls = payments(3).set_column(3, "ts", pa.array([T0, None, T0], pa.timestamp("us", "UTC")))
    (tmp_path / "n").mkdir()
    spark_df(spark, nulls, tmp_path / "n").createOrReplaceTempView("payments_null_time")
    try:
        plan = PLANS["per-event"]()
        got = rp.execute(plan, engine="spark", tables={"Payments": "payments_nan"})
        assert rows(got) == rows(rp.execute(plan, engine="duckdb", tables={"Payments": table}))
        with pytest.raises(rp.EngineError, match=r"event-time column 'ts' of Spark table 'payments_null_time'"):
            rp.execute(plan, engine="spark", tables={"Payments": "payments_null_time"})
    finally:
        spark.catalog.dropTempView("payments_nan")
        spark.catalog.dropTempView("payments_null_time")


def test_nasty_names_round_trip_on_spark(spark: Any) -> None:
    column, source_name, status = 'a"b; DROP `x` --', 'Tx `x`; DROP TABLE x --', "it's \"failed\""
    table = pa.table({
        column: pa.array([1, 1, 2, None], pa.int64()),
        "status": [status, "ok", status, status],
        "v": [1.0, 2.0, 3.0, 4.0],
        "ts": pa.array([T0 + dt.timedelta(minutes=m) for m in range(4)], pa.timestamp("us", "UTC")),
    })
    source = rp.Source.from_arrow_schema(source_name, table.schema, event_time="ts")

    @rp.transformation
    def failed_total(s: source, wspec: rp.WindowSpec):  # type: ignore[valid-type]
        return s[s.status == status].groupby(column)["v"].window(wspec).sum()

    plan = rp.compile(failed_total(window=rp.sliding("1h")))
    assert "`a\"b; DROP ``x`` --`" in plan.to_sql("spark")
    got = rp.execute(plan, engine="spark", tables={source_name: table})
    assert rows(got) == rows(rp.execute(plan, engine="duckdb", tables={source_name: table}))
    # Key 1 saw one failed payment (1.0) by its second row; key 2 one (3.0); a NULL key gets NULL.
    assert [r["failed_total_1h"] for r in got.sort_by("ts").to_pylist()] == [1.0, 1.0, 3.0, None]


@pytest.mark.parametrize("engine", ["duckdb", "spark", "reference"])
def test_floor_division_and_modulo_are_exact_for_extreme_int64(spark: Any, engine: str) -> None:
    """Python's // and % on every engine, also where a naive rewrite overflows
    (|divisor| > 2**62, the Int64 minimum); by zero is NULL."""
    from relplan.ir import types as T
    from relplan.ir.expr import Binary, Column
    from relplan.ir.nodes import Project, Sink, Source
    from relplan.ir.schema import Schema

    values = [0, 1, -1, 7, -7, 2**62 + 1, 2**62 + 3, -(2**62) - 5, 2**63 - 1, -(2**63)]
    pairs = [(a, b) for a in values for b in values if not (a == -(2**63) and b == -1)]  # 2**63 is no Int64
    src = Source("P", Schema.of([("a", T.Int64), ("b", T.Int64), ("ts", T.Timestamp)]), event_time="ts")
    a, b = Column("a", T.Int64), Column("b", T.Int64)
    node = Project(src, (("a", a), ("b", b), ("q", Binary("//", a, b)), ("r", Binary("%", a, b))))
    table = pa.table({
        "a": pa.array([p[0] for p in pairs], pa.int64()),
        "b": pa.array([p[1] for p in pairs], pa.int64()),
        "ts": pa.array([T0] * len(pairs), pa.timestamp("us", "UTC")),
    })
    out = rp.execute(rp.Plan((Sink(node, "out"),)), engine=engine, tables={"P": table})
    got = {(r["a"], r["b"]): (r["q"], r["r"]) for r in out.to_pylist()}
    assert got == {(x, y): ((x // y, x % y) if y else (None, None)) for x, y in pairs}


# Results without Arrow: where pyspark needs a newer pyarrow than is installed (pyspark 4
# beside apache-flink's pyarrow < 17), results come back as rows. Forced here on the
# pinned environment, where the Arrow path also works, so that the two can be compared.

def _nullable(values: Any) -> Any:
    from hypothesis import strategies as st

    return st.one_of(st.none(), values)


def _tables() -> Any:
    """Tables of every IR type with NULLs, Int64 extremes, microsecond times over Spark's
    whole range (years 1-9999) and unicode text (no NaN: relplan reads NaN as NULL on input)."""
    from hypothesis import strategies as st

    times = st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=st.just(UTC))
    columns = {
        "i": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
        "f": (st.floats(allow_nan=False), pa.float64()),
        "s": (st.text(max_size=6), pa.string()),
        "b": (st.booleans(), pa.bool_()),
        "d": (st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), pa.date32()),
        "ts": (times, pa.timestamp("us", "UTC")),
    }
    row = st.fixed_dictionaries({name: _nullable(values) for name, (values, _) in columns.items()})
    return st.lists(row, max_size=40).map(
        lambda rows: pa.table({n: pa.array([r[n] for r in rows], t) for n, (_, t) in columns.items()})
    )


def _sink_of(table: pa.Table) -> Any:
    from relplan.ir.nodes import Sink, Source
    from relplan.ir.schema import Schema

    return Sink(Source("T", Schema.from_arrow(table.schema), event_time="ts"), "out")


def test_the_rows_path_returns_the_arrow_paths_table(spark: Any, tmp_path: Any) -> None:
    """Both collect paths give back exactly the table Spark read, whatever the Python
    process's own time zone (pyspark makes Python datetimes in it)."""
    import time

    from hypothesis import given, settings

    from relplan.backends.spark import arrow_collect_works, collect

    counter = iter(range(10**6))

    @settings(max_examples=5, deadline=None)  # each example is three Spark jobs
    @given(table=_tables())
    def check(table: pa.Table) -> None:
        staging = tmp_path / str(next(counter))  # a file per example: Spark caches what it read
        staging.mkdir()
        df = spark_df(spark, table, staging)
        sink = _sink_of(table)
        by_rows = collect(df, sink, arrow=False)
        assert by_rows.schema.equals(table.schema) and rows(by_rows) == rows(table)
        if arrow_collect_works():  # the pinned environments; a plain install's pyarrow may be too old
            by_arrow = collect(df, sink, arrow=True)
            assert by_arrow.schema.equals(table.schema) and rows(by_arrow) == rows(table)

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"  # not UTC, with DST changes
    time.tzset()
    try:
        check()
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_spark_without_arrow_returns_duckdb_rows_and_types(
    spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole run as it goes where pyarrow is too old for pyspark's Arrow paths."""
    import relplan.backends.spark as spark_backend

    monkeypatch.setattr(spark_backend, "_ARROW_COLLECT", False)
    plan = PLANS["per-window"]()
    got = rp.execute(plan, engine="spark", tables={"Payments": payments()})
    expected = rp.execute(plan, engine="duckdb", tables={"Payments": payments()})
    assert got.schema.equals(expected.schema)
    assert got.num_rows > 0 and rows(got) == rows(expected)


def test_dates_and_times_before_the_gregorian_calendar_are_read_as_written(spark: Any) -> None:
    """pyarrow writes proleptic Gregorian values; Spark refuses pre-1582 ones in a file it
    did not write unless told to read them unchanged."""
    from relplan.ir.nodes import Sink, Source
    from relplan.ir.schema import Schema

    table = pa.table({
        "d": pa.array([dt.date(1, 1, 1), dt.date(1000, 3, 1), dt.date(1582, 10, 4), None], pa.date32()),
        "ts": pa.array([dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC), dt.datetime(1000, 2, 28, 23, tzinfo=UTC),
                        dt.datetime(1582, 10, 14, tzinfo=UTC), T0], pa.timestamp("us", "UTC")),
    })
    plan = rp.Plan((Sink(Source("Old", Schema.from_arrow(table.schema), event_time="ts"), "out"),))
    got = rp.execute(plan, engine="spark", tables={"Old": table})
    assert rows(got) == rows(table)
