"""The Flink dialect for sqlglot: rendered text (snapshots), then the same text on Flink.

The snapshot tests pin each place where the dialect departs from sqlglot's Hive
dialect; the engine tests run what the helpers build on a local PyFlink (one JVM
for the module, a handful of jobs), so a snapshot that Flink would refuse fails
here rather than in the backend.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyflink.table import EnvironmentSettings, TableEnvironment
from sqlglot import exp, parse_one
from sqlglot.dialects.dialect import Dialect

from relplan.backends.flink_dialect import (
    Flink,
    create_table,
    insert_into,
    interval,
    set_option,
    statement_set,
    window_tvf,
)

US = 1
MS = 1_000 * US
SECOND = 1_000 * MS
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def sql(e: exp.Expression) -> str:
    return e.sql(dialect="flink", identify=True)


def col(name: str) -> exp.Column:
    return exp.column(name)


def dtype(text: str) -> exp.DataType:
    return exp.DataType.build(text)


# --- rendering -----------------------------------------------------------------


def test_registered_as_flink() -> None:
    assert isinstance(Dialect.get_or_raise("flink"), Flink)
    assert sql(exp.select("a").from_("t")) == "SELECT `a` FROM `t`"


def test_identifiers_use_backticks_doubled_inside() -> None:
    assert sql(exp.column("we`ird", table="t")) == "`t`.`we``ird`"


def test_string_literals_double_quotes_and_keep_backslashes_and_unicode() -> None:
    text = "it's a \\ b\\n é 😀\nline"
    rendered = sql(exp.Literal.string(text))
    assert rendered == "'it''s a \\ b\\n é 😀\nline'"
    assert "\\'" not in rendered and "\\\\" not in rendered
    # and back: Flink's reading of the literal
    assert parse_one(f"SELECT {rendered}", read="flink").expressions[0].this == text


TYPES = [
    ("BIGINT", "BIGINT"),
    ("INT", "INT"),
    ("DOUBLE", "DOUBLE"),
    ("FLOAT", "FLOAT"),
    ("BOOLEAN", "BOOLEAN"),
    ("VARCHAR", "STRING"),
    ("TEXT", "STRING"),
    ("VARCHAR(10)", "VARCHAR(10)"),
    ("DATE", "DATE"),
    ("DECIMAL(38, 0)", "DECIMAL(38, 0)"),
    ("TIMESTAMP", "TIMESTAMP(6)"),
    ("TIMESTAMP(3)", "TIMESTAMP(3)"),
    ("TIMESTAMPLTZ", "TIMESTAMP_LTZ(6)"),
    ("TIMESTAMPLTZ(3)", "TIMESTAMP_LTZ(3)"),
]


@pytest.mark.parametrize(("built", "flink"), TYPES)
def test_types(built: str, flink: str) -> None:
    assert sql(exp.cast(col("x"), dtype(built))) == f"CAST(`x` AS {flink})"


def test_default_timestamp_precision_leaves_the_callers_ast_alone() -> None:
    e = exp.cast(col("x"), dtype("TIMESTAMP"))
    assert Flink().generate(e, copy=False) == "CAST(x AS TIMESTAMP(6))"
    assert not e.to.expressions


def test_arithmetic() -> None:
    a, b = col("a"), col("b")
    int_div = sql(exp.IntDiv(this=a, expression=b))
    mod = sql(exp.Mod(this=a, expression=b))
    assert int_div == "`a` / `b`" and "DIV" not in int_div
    assert mod == "MOD(`a`, `b`)" and "%" not in mod
    # no NULLIF / CAST rewrites of "safe" or "typed" division
    assert sql(exp.Div(this=a, expression=b, safe=True, typed=True)) == "`a` / `b`"
    assert sql(exp.Div(this=a, expression=b)) == "`a` / `b`"


def test_greatest_and_least_ignoring_nulls() -> None:
    a, b, c = col("a"), col("b"), col("c")
    assert sql(exp.Greatest(this=a, expressions=[b, c], ignore_nulls=True)) == (
        "GREATEST(COALESCE(`a`, `b`, `c`), COALESCE(`b`, `a`, `c`), COALESCE(`c`, `a`, `b`))"
    )
    assert sql(exp.Least(this=a, expressions=[b])) == "LEAST(`a`, `b`)"


def test_arrays() -> None:
    array = exp.Array(expressions=[col("a"), exp.Literal.number(2)])
    assert sql(exp.ArraySize(this=array)) == "CARDINALITY(ARRAY[`a`, 2])"


def test_conditionals_and_casts() -> None:
    a, b = col("a"), col("b")
    assert sql(exp.Nullif(this=a, expression=b)) == "NULLIF(`a`, `b`)"
    assert sql(exp.Coalesce(this=a, expressions=[b])) == "COALESCE(`a`, `b`)"
    assert sql(exp.case().when(a.is_(exp.null()), b).else_(a)) == (
        "CASE WHEN `a` IS NULL THEN `b` ELSE `a` END"
    )
    assert sql(exp.cast(a, "BIGINT")) == "CAST(`a` AS BIGINT)"
    # CAST raises in Flink: reading it must not turn it into TRY_CAST (Hive's reading)
    assert parse_one("SELECT CAST(a AS INT)", read="flink").sql("flink") == "SELECT CAST(a AS INT)"


def test_named_window() -> None:
    q = parse_one(
        "SELECT SUM(v) OVER w0 AS s FROM t WINDOW w0 AS "
        "(PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW)",
        read="flink",
    )
    assert sql(q) == (
        "SELECT SUM(`v`) OVER `w0` AS `s` FROM `t` WINDOW `w0` AS "
        "(PARTITION BY `k` ORDER BY `ts` RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW)"
    )


@pytest.mark.parametrize(
    ("us", "flink"),
    [
        (0, "INTERVAL '0' SECOND"),
        (1 * MS, "INTERVAL '0.001' SECOND"),
        (999 * MS, "INTERVAL '0.999' SECOND"),
        (1500 * MS, "INTERVAL '1.500' SECOND"),
        (123_456 * MS, "INTERVAL '123.456' SECOND(3)"),
        (5 * SECOND, "INTERVAL '5' SECOND"),
        (90 * MINUTE, "INTERVAL '90' MINUTE"),
        (HOUR, "INTERVAL '1' HOUR"),
        (150 * HOUR, "INTERVAL '150' HOUR(3)"),
        (2 * DAY, "INTERVAL '2' DAY"),
        (400 * DAY, "INTERVAL '400' DAY(3)"),
        (999 * DAY, "INTERVAL '999' DAY(3)"),
        (1000 * SECOND, "INTERVAL '0 00:16:40.000' DAY(3) TO SECOND(3)"),
        (DAY + HOUR + MINUTE + SECOND + MS, "INTERVAL '1 01:01:01.001' DAY(3) TO SECOND(3)"),
        (999 * DAY + 23 * HOUR + 999 * MS, "INTERVAL '999 23:00:00.999' DAY(3) TO SECOND(3)"),
        (1000 * DAY, "(INTERVAL '1' DAY * 1000)"),
        (1500 * DAY + MS, "(INTERVAL '1' DAY * 1500 + INTERVAL '0.001' SECOND)"),
    ],
)
def test_interval(us: int, flink: str) -> None:
    assert sql(interval(us)) == flink


@pytest.mark.parametrize("us", [1, 999, 1500, -MS])
def test_interval_refuses_sub_milliseconds_and_negatives(us: int) -> None:
    with pytest.raises(ValueError):
        interval(us)


def test_window_tvfs() -> None:
    tumble = window_tvf("TUMBLE", "t", "ts", HOUR)
    assert sql(tumble) == "TABLE(TUMBLE(TABLE `t`, DESCRIPTOR(`ts`), INTERVAL '1' HOUR))"
    hop = window_tvf("HOP", "t", "ts", 2 * HOUR, slide_us=HOUR)
    assert sql(hop) == "TABLE(HOP(TABLE `t`, DESCRIPTOR(`ts`), INTERVAL '1' HOUR, INTERVAL '2' HOUR))"
    cumulate = window_tvf("cumulate", "t", "ts", DAY, step_us=12 * HOUR)
    assert sql(exp.select("window_start").from_(cumulate)) == (
        "SELECT `window_start` FROM TABLE(CUMULATE(TABLE `t`, DESCRIPTOR(`ts`), "
        "INTERVAL '12' HOUR, INTERVAL '1' DAY))"
    )
    # and read back
    assert sql(parse_one(sql(exp.select("*").from_(hop)), read="flink")) == f"SELECT * FROM {sql(hop)}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "SESSION", "size_us": HOUR},
        {"kind": "HOP", "size_us": HOUR},
        {"kind": "TUMBLE", "size_us": HOUR, "slide_us": HOUR},
        {"kind": "CUMULATE", "size_us": HOUR, "slide_us": HOUR},
        # Flink's window TVFs take literals only; no literal reaches 1000 days
        {"kind": "TUMBLE", "size_us": 1000 * DAY},
        {"kind": "TUMBLE", "size_us": HOUR + 1},
    ],
)
def test_window_tvf_refuses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        window_tvf(table="t", time_col="ts", **kwargs)


def test_create_table() -> None:
    ddl = create_table(
        "events",
        [("k", dtype("BIGINT")), ("name", dtype("VARCHAR")), ("ts", dtype("TIMESTAMP(3)"))],
        watermark=("ts", 5 * SECOND),
        options={"connector": "filesystem", "path": "/data/it's", "format": "json"},
    )
    assert sql(ddl) == (
        "CREATE TABLE `events` (`k` BIGINT, `name` STRING, `ts` TIMESTAMP(3), "
        "WATERMARK FOR `ts` AS `ts` - INTERVAL '5' SECOND) "
        "WITH ('connector' = 'filesystem', 'path' = '/data/it''s', 'format' = 'json')"
    )
    no_delay = create_table("t", [("ts", dtype("TIMESTAMP(3)"))], watermark=("ts", 0), options={"a": "b"})
    assert (
        sql(no_delay) == "CREATE TABLE `t` (`ts` TIMESTAMP(3), WATERMARK FOR `ts` AS `ts`) WITH ('a' = 'b')"
    )
    plain = create_table("t", [("x", dtype("DOUBLE"))], options={"connector": "blackhole"})
    assert sql(plain) == "CREATE TABLE `t` (`x` DOUBLE) WITH ('connector' = 'blackhole')"


def test_set_option() -> None:
    assert set_option("pipeline.name", "it's") == "SET 'pipeline.name' = 'it''s'"


def test_insert_into_keeps_the_with_after_insert() -> None:
    query = exp.select("a").from_("x").with_("x", as_=exp.select("a").from_("y"))
    expected = "INSERT INTO `sink` WITH `x` AS (SELECT `a` FROM `y`) SELECT `a` FROM `x`"
    assert sql(insert_into("sink", query)) == expected
    assert sql(insert_into("sink", exp.select("a").from_("y"))) == "INSERT INTO `sink` SELECT `a` FROM `y`"
    # Flink refuses "WITH ... INSERT INTO": a parsed one is rendered the accepted way
    assert (
        sql(parse_one("WITH x AS (SELECT a FROM y) INSERT INTO sink SELECT a FROM x", read="flink"))
        == expected
    )


def test_statement_set() -> None:
    assert statement_set(["INSERT INTO a SELECT 1", "INSERT INTO b SELECT 2;"]) == (
        "EXECUTE STATEMENT SET\nBEGIN\nINSERT INTO a SELECT 1;\nINSERT INTO b SELECT 2;\nEND"
    )
    with pytest.raises(ValueError):
        statement_set([])


# --- on Flink ------------------------------------------------------------------

ROWS = [
    {"k": 1, "v": 10, "ts": "2024-01-01 00:00:00.000"},
    {"k": 1, "v": 20, "ts": "2024-01-01 00:00:00.001"},
    {"k": 1, "v": 30, "ts": "2024-01-01 01:00:00.000"},
    {"k": 2, "v": 5, "ts": "2024-01-03 00:00:00.000"},
]
COLUMNS = [("k", dtype("BIGINT")), ("v", dtype("BIGINT")), ("ts", dtype("TIMESTAMP(3)"))]


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def flink(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A streaming TableEnvironment with ``events`` (the rows above, event time ``ts``)."""
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    data = tmp_path_factory.mktemp("flink") / "events.json"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    options = {"connector": "filesystem", "path": str(data), "format": "json"}
    options["json.timestamp-format.standard"] = "SQL"
    env.execute_sql(sql(create_table("events", COLUMNS, watermark=("ts", 0), options=options))).wait()
    return env


def collect(env: Any, query: exp.Expression) -> list[tuple[Any, ...]]:
    with env.execute_sql(sql(query)).collect() as rows:
        return [tuple(r) for r in rows]


def test_flink_literals_arithmetic_and_intervals(flink: Any) -> None:
    text = "it's a \\ b é 😀\nline"
    base = exp.cast(exp.Literal.string("2024-01-01 00:00:00.000"), dtype("TIMESTAMP(3)"))
    seven, two = exp.cast(exp.Literal.number(-7), "BIGINT"), exp.cast(exp.Literal.number(2), "BIGINT")
    one, three, null = (
        exp.cast(v, "BIGINT") for v in (exp.Literal.number(1), exp.Literal.number(3), exp.null())
    )
    shifts = [400 * DAY, MS, 123_456 * MS, DAY + HOUR + MINUTE + SECOND + MS, 1500 * DAY + MS]
    query = exp.select(
        exp.alias_(exp.Literal.string(text), "we`ird"),
        exp.IntDiv(this=seven, expression=two),
        exp.Mod(this=seven, expression=two),
        exp.Nullif(this=two, expression=two),
        exp.Coalesce(this=exp.null(), expressions=[two]),
        exp.cast(exp.Literal.number("1.5"), dtype("DECIMAL(38, 0)")),
        exp.cast(base, dtype("TIMESTAMP")),
        exp.Greatest(this=one, expressions=[null, three], ignore_nulls=True),
        exp.Least(this=null, expressions=[three], ignore_nulls=True),
        exp.Greatest(this=null, expressions=[null], ignore_nulls=True),
        *(exp.Sub(this=base, expression=interval(us)) for us in shifts),
    )
    result = flink.execute_sql(sql(query))
    assert result.get_table_schema().get_field_names()[0] == "we`ird"
    with result.collect() as rows:
        (row,) = [tuple(r) for r in rows]
    start = _ts("2024-01-01 00:00:00")
    assert row == (text, -3, -1, None, 2, Decimal(2), start, 3, 3, None) + tuple(
        start - dt.timedelta(microseconds=us) for us in shifts
    )


def test_flink_window_tvfs(flink: Any) -> None:
    def windowed(tvf: exp.Expression) -> set[tuple[Any, ...]]:
        query = (
            exp.select("k", "window_start", "window_end", exp.func("SUM", col("v")))
            .from_(tvf)
            .group_by("k", "window_start", "window_end")
        )
        return set(collect(flink, query))

    jan1, jan3 = _ts("2024-01-01 00:00"), _ts("2024-01-03 00:00")
    h = dt.timedelta(hours=1)
    assert windowed(window_tvf("TUMBLE", "events", "ts", HOUR)) == {
        (1, jan1, jan1 + h, 30),
        (1, jan1 + h, jan1 + 2 * h, 30),
        (2, jan3, jan3 + h, 5),
    }
    assert windowed(window_tvf("HOP", "events", "ts", 2 * HOUR, slide_us=HOUR)) == {
        (1, jan1 - h, jan1 + h, 30),
        (1, jan1, jan1 + 2 * h, 60),
        (1, jan1 + h, jan1 + 3 * h, 30),
        (2, jan3 - h, jan3 + h, 5),
        (2, jan3, jan3 + 2 * h, 5),
    }
    assert windowed(window_tvf("CUMULATE", "events", "ts", DAY, step_us=12 * HOUR)) == {
        (1, jan1, jan1 + 12 * h, 60),
        (1, jan1, jan1 + 24 * h, 60),
        (2, jan3, jan3 + 12 * h, 5),
        (2, jan3, jan3 + 24 * h, 5),
    }
    # the general literal form, up to its largest value, is accepted as a window size
    for tvf in (
        window_tvf("TUMBLE", "events", "ts", 999 * DAY + 23 * HOUR + 999 * MS),
        window_tvf("HOP", "events", "ts", 999 * DAY, slide_us=DAY),
    ):
        query = (
            exp.select("k", exp.func("SUM", col("v"))).from_(tvf).group_by("k", "window_start", "window_end")
        )
        flink.explain_sql(sql(query))


def _over(frame_us: int) -> exp.Expression:
    """SUM and COUNT over one named window: the last ``frame_us`` of event time per key."""
    spec = exp.WindowSpec(kind="RANGE", start=interval(frame_us), start_side="PRECEDING", end="CURRENT ROW")
    w0 = exp.Window(
        this=exp.to_identifier("w0"),
        partition_by=[col("k")],
        order=exp.Order(expressions=[exp.Ordered(this=col("ts"))]),
        spec=spec,
    )
    over = [
        exp.Window(this=agg, alias=exp.to_identifier("w0"))
        for agg in (exp.Sum(this=col("v")), exp.Count(this=col("v")))
    ]
    query = exp.select("k", "v", *over).from_("events")
    query.set("windows", [w0])
    return query


def test_flink_streaming_over_named_window(flink: Any) -> None:
    one_ms = _over(MS)
    # (an Ordered built without nulls_first says NULLS LAST, as on Hive: Flink's ASC puts NULLs first)
    assert sql(one_ms) == (
        "SELECT `k`, `v`, SUM(`v`) OVER `w0`, COUNT(`v`) OVER `w0` FROM `events` WINDOW `w0` AS (PARTITION BY `k` "
        "ORDER BY `ts` NULLS LAST RANGE BETWEEN INTERVAL '0.001' SECOND PRECEDING AND CURRENT ROW)"
    )
    # RANGE frames include their start: 00:00:00.001 sees 00:00:00.000, 01:00 sees itself only
    assert sorted(collect(flink, one_ms)) == [(1, 10, 10, 1), (1, 20, 30, 2), (1, 30, 30, 1), (2, 5, 5, 1)]
    # from 1000 days on the frame is a product of intervals; Flink plans it all the same
    flink.explain_sql(sql(_over(1500 * DAY + MS)))


def test_flink_insert_and_statement_set(flink: Any, tmp_path: Path) -> None:
    for name in ("copy_sink", "agg_sink"):
        options = {"connector": "filesystem", "path": str(tmp_path / name), "format": "json"}
        ddl = create_table(name, [("k", dtype("BIGINT")), ("v", dtype("BIGINT"))], options=options)
        flink.execute_sql(sql(ddl)).wait()
    # an append-only aggregate (streaming GROUP BY would update, which files can't take)
    per_day = (
        exp.select("k", exp.func("SUM", col("v")))
        .from_(window_tvf("TUMBLE", "recent", "ts", DAY))
        .group_by("k", "window_start", "window_end")
        .with_("recent", as_=exp.select("k", "v", "ts").from_("events").where(col("v").neq(20)))
    )
    inserts = [
        sql(insert_into("copy_sink", exp.select("k", "v").from_("events"))),
        sql(insert_into("agg_sink", per_day)),
    ]
    assert inserts[1].startswith("INSERT INTO `agg_sink` WITH `recent` AS (")
    flink.execute_sql(statement_set(inserts)).wait()

    def written(name: str) -> list[tuple[int, int]]:
        files = glob.glob(str(tmp_path / name / "**" / "part-*"), recursive=True)
        lines = [line for f in files for line in Path(f).read_text().splitlines() if line]
        return sorted((r["k"], r["v"]) for r in map(json.loads, lines))

    assert written("copy_sink") == [(1, 10), (1, 20), (1, 30), (2, 5)]
    assert written("agg_sink") == [(1, 40), (2, 5)]


def test_flink_kafka_tables_validate_through_shadowing_tables(flink: Any) -> None:
    """CREATE TABLE of a Kafka table needs no connector jar, but planning a query on it
    does: explain_sql and sql_query both look for the 'kafka' factory. A temporary
    table of the same name, ``LIKE`` the Kafka one with a built-in connector, shadows it
    (same schema and watermark), and the script then validates unchanged."""
    kafka = {"connector": "kafka", "properties.bootstrap.servers": "localhost:9092", "format": "json"}
    source = create_table(
        "k_events", COLUMNS, watermark=("ts", 5 * SECOND), options={**kafka, "topic": "events"}
    )
    sink_columns = [("k", dtype("BIGINT")), ("window_end", dtype("TIMESTAMP(3)")), ("s", dtype("BIGINT"))]
    sink = create_table("k_sums", sink_columns, options={**kafka, "topic": "sums"})
    for ddl in (source, sink):
        flink.execute_sql(sql(ddl)).wait()
    query = (
        exp.select("k", "window_end", exp.func("SUM", col("v")))
        .from_(window_tvf("TUMBLE", "k_events", "ts", HOUR))
        .group_by("k", "window_start", "window_end")
    )
    script = statement_set([sql(insert_into("k_sums", query))])
    missing = "Could not find any factory for identifier 'kafka'"
    with pytest.raises(Exception, match=missing):
        flink.explain_sql(script)
    with pytest.raises(Exception, match=missing):
        flink.sql_query(sql(query))

    shadows = {"k_events": "datagen", "k_sums": "blackhole"}
    for name, connector in shadows.items():
        flink.execute_sql(
            f"CREATE TEMPORARY TABLE `{name}` WITH ('connector' = '{connector}') LIKE `{name}` (EXCLUDING OPTIONS)"
        ).wait()
    try:
        plan = flink.explain_sql(script)
        assert "Sink(table=[default_catalog.default_database.k_sums]" in plan
        bad = sql(query).replace("SUM(`v`)", "SUM(`no_such_column`)")
        with pytest.raises(Exception, match="no_such_column"):
            flink.explain_sql(bad)
    finally:
        for name in shadows:
            flink.execute_sql(f"DROP TEMPORARY TABLE `{name}`").wait()


def test_flink_reads_set_option(flink: Any) -> None:
    """A TableEnvironment refuses to execute SET (a SQL client statement; its API is
    get_config().set), but Flink's parser reads it: key and value come back intact."""
    (op,) = flink._j_tenv.getParser().parse(set_option("pipeline.name", "it's é"))
    assert op.getClass().getSimpleName() == "SetOperation"
    assert (op.getKey().get(), op.getValue().get()) == ("pipeline.name", "it's é")
