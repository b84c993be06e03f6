"""rp.sql reads each dialect's meaning (compiler/sql/semantics.py), checked against the engine.

Integer division, ``%`` of negatives, division by zero, NULL order in a window ordered by
a nullable timestamp, string order, timestamp literals with and without a zone offset,
and the types of SUM and AVG: each query compiled by rp.sql runs on DuckDB and the
reference executor and gives what DuckDB gives it run directly (duckdb dialect), what
Spark gives it (spark dialect; Spark 3.5's default, ANSI mode off), or for Flink, whose
jobs are too slow to run per query here, what shared/ENGINE-FACTS.md measured, written
out as DuckDB SQL.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import relplan as rp

from test_differential import row_differences

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


class Dx(rp.Source):
    v: rp.Int64
    w: rp.Int64
    x: rp.Float64
    s: rp.String
    t2: rp.Timestamp
    k: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time()


ROWS = [
    dict(v=7, w=2, x=1.5, s="a", t2=T0, k=1, ts=T0),
    dict(v=-7, w=2, x=-2.0, s="B", t2=None, k=1, ts=T0 + HOUR),
    dict(v=7, w=-2, x=None, s="é", t2=T0 + HOUR, k=1, ts=T0 + HOUR),
    dict(v=-7, w=-2, x=0.25, s="z", t2=None, k=2, ts=T0 + 2 * HOUR),
    dict(v=6, w=3, x=4.0, s="", t2=T0 - HOUR, k=2, ts=T0 - HOUR),
    dict(v=None, w=2, x=3.0, s=None, t2=T0 + 2 * HOUR, k=None, ts=T0 + HOUR),
    dict(v=5, w=None, x=-1.0, s="ab", t2=None, k=None, ts=T0 + 3 * HOUR),
    dict(v=-5, w=3, x=2.5, s="b", t2=T0 + 3 * HOUR, k=1, ts=T0 + 2 * HOUR),
]
TABLE = pa.Table.from_pylist(ROWS, schema=Dx.to_arrow_schema())
ZERO_ROWS = [dict(r, w=0, x=0.0 if r["x"] is not None else None) for r in ROWS]
ZERO_TABLE = pa.Table.from_pylist(ZERO_ROWS, schema=Dx.to_arrow_schema())


def duckdb_rows(query: str, table: pa.Table = TABLE) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("Dx", table)
    out = con.sql(query).to_arrow_table()
    for i, f in enumerate(out.schema):  # SUM of BIGINT is a HUGEINT in DuckDB (semantics.py)
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            out = out.set_column(i, f.name, out.column(i).cast(pa.int64()))
    return out


def relplan_runs(query: str, dialect: str, table: pa.Table = TABLE) -> list[pa.Table]:
    plan = rp.sql(query, sources=[Dx], dialect=dialect)
    return [rp.execute(plan, engine=e, tables={"Dx": table}) for e in ("duckdb", "reference")]


def assert_same(expected: pa.Table, got: pa.Table, what: str) -> None:
    assert expected.column_names == got.column_names, what
    diffs = row_differences(expected, got)
    assert not diffs, f"{what}\n" + "\n".join(diffs)


def check(query: str, dialect: str, expected: pa.Table, table: pa.Table = TABLE) -> None:
    for got, engine in zip(relplan_runs(query, dialect, table), ("duckdb", "reference")):
        assert_same(expected, got, f"rp.sql({dialect}) on {engine}: {query}")


# ---- integer division and % -----------------------------------------------------------

DIVISION = "SELECT v, w, v / w AS q, v % w AS m FROM Dx"


def test_duckdb_division_and_modulo() -> None:
    q = DIVISION.replace(" FROM", ", v // w AS t, -v % w AS n FROM")
    check(q, "duckdb", duckdb_rows(q))
    schema = rp.sql(q, sources=[Dx], dialect="duckdb").outputs[0].schema
    assert (schema.dtype("q"), schema.dtype("m"), schema.dtype("t")) == (rp.Float64, rp.Int64, rp.Int64)


def test_flink_division_truncates_and_modulo_keeps_the_dividends_sign() -> None:
    # ENGINE-FACTS: Flink's 7 / 2 is 3 (BIGINT), -7 / 2 is -3; % has the dividend's sign.
    meaning = "SELECT v, w, v // w AS q, v % w AS m FROM Dx"
    check(DIVISION, "flink", duckdb_rows(meaning))
    got = relplan_runs(DIVISION, "flink")[0].to_pylist()
    assert {(r["v"], r["w"]): (r["q"], r["m"]) for r in got}[(-7, 2)] == (-3, -1)
    assert {(r["v"], r["w"]): (r["q"], r["m"]) for r in got}[(7, -2)] == (-3, 1)
    assert rp.sql(DIVISION, sources=[Dx], dialect="flink").outputs[0].schema.dtype("q") == rp.Int64
    # a DOUBLE operand makes it true division in Flink too
    check("SELECT v / x AS q FROM Dx", "flink", duckdb_rows("SELECT CASE WHEN x <> 0 THEN v / x END AS q FROM Dx"))


# ---- division by zero -------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "expr"), [
    ("duckdb", "v / 0"), ("duckdb", "v // 0"), ("duckdb", "v % 0"), ("duckdb", "x / 0.0"),
    ("flink", "v / 0"), ("flink", "x / 0"), ("flink", "v % 0"), ("spark", "v % 0"), ("spark", "v DIV 0"),
])
def test_a_literal_zero_divisor_is_refused_where_the_dialect_does_not_mean_null(dialect: str, expr: str) -> None:
    with pytest.raises(rp.UnsupportedError, match="division by the literal 0") as e:
        rp.sql(f"SELECT {expr} AS q FROM Dx", sources=[Dx], dialect=dialect)
    assert "line 1, column" in str(e.value)


def test_spark_reads_a_division_by_zero_as_null() -> None:
    q = "SELECT v, v / 0 AS q, v / w AS r FROM Dx"
    for got in relplan_runs(q, "spark", ZERO_TABLE):
        assert all(r["q"] is None and r["r"] is None for r in got.to_pylist())


def test_duckdb_division_by_a_zero_in_the_data_is_null_not_inf() -> None:
    # Documented in semantics.py: DuckDB gives +-inf or NaN, the IR (and rp.sql's plan) NULL.
    q = "SELECT v, w, v / w AS q FROM Dx"
    direct = {r["v"]: r["q"] for r in duckdb_rows(q, ZERO_TABLE).to_pylist() if r["v"] is not None}
    assert direct[7] == float("inf") and direct[-7] == float("-inf")
    for got in relplan_runs(q, "duckdb", ZERO_TABLE):
        assert all(r["q"] is None for r in got.to_pylist())
    guarded = "SELECT v, w, CASE WHEN w = 0 THEN NULL ELSE v / w END AS q FROM Dx"
    check(guarded, "duckdb", duckdb_rows(guarded, ZERO_TABLE), ZERO_TABLE)


# ---- NULL order in windows -------------------------------------------------------------

ORDERED = ("SELECT k, ts, t2, COUNT(*) OVER (PARTITION BY k ORDER BY t2{n}) AS c, "
           "SUM(v) OVER (PARTITION BY k ORDER BY t2{n} RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS s, "
           "MIN(v) OVER (PARTITION BY k ORDER BY t2{n} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS m FROM Dx")


@pytest.mark.parametrize("nulls", ["", " NULLS FIRST", " NULLS LAST", " ASC NULLS FIRST"])
def test_duckdb_window_null_order(nulls: str) -> None:
    q = ORDERED.format(n=nulls)
    check(q, "duckdb", duckdb_rows(q))


@pytest.mark.parametrize("dialect", ["spark", "flink"])
@pytest.mark.parametrize(("nulls", "as_duckdb"), [("", " NULLS FIRST"), (" NULLS LAST", " NULLS LAST"), (" NULLS FIRST", " NULLS FIRST")])
def test_spark_and_flink_sort_nulls_first(dialect: str, nulls: str, as_duckdb: str) -> None:
    check(ORDERED.format(n=nulls), dialect, duckdb_rows(ORDERED.format(n=as_duckdb)))


def test_the_default_null_order_differs_between_duckdb_and_spark() -> None:
    duck = relplan_runs(ORDERED.format(n=""), "duckdb")[0]
    spark = relplan_runs(ORDERED.format(n=""), "spark")[0]
    assert row_differences(duck, spark), "NULL t2 rows see every row in DuckDB (last) and only the NULLs in Spark (first)"


def test_spark_refuses_frame_bounds_of_different_interval_units() -> None:
    # Spark: "Window frame bounds ... do not have the same type: INTERVAL HOUR <> INTERVAL MINUTE"
    q = ("SELECT k, COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING "
         "AND INTERVAL '30' MINUTE PRECEDING) AS c FROM Dx")
    with pytest.raises(rp.UnsupportedError, match="different units"):
        rp.sql(q, sources=[Dx], dialect="spark")
    check(q, "duckdb", duckdb_rows(q))
    same = q.replace("INTERVAL '1' HOUR", "INTERVAL '60' MINUTE")
    check(same, "spark", duckdb_rows(q))


# ---- strings, timestamps, types ----------------------------------------------------------

STRINGS = "SELECT s, s < 'a' AS lt, s > 'B' AS gt, s >= 'é' AS ge, s BETWEEN 'a' AND 'b' AS bt FROM Dx"


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "flink"])
def test_strings_compare_by_code_point(dialect: str) -> None:
    check(STRINGS, dialect, duckdb_rows(STRINGS))
    got = {r["s"]: r for r in relplan_runs(STRINGS, dialect)[0].to_pylist()}
    assert got["B"]["lt"] and got["é"]["ge"] and not got["z"]["ge"] and got["ab"]["bt"]


TIMES = "SELECT k, ts FROM Dx WHERE ts >= TIMESTAMP '{t}'"


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "flink"])
def test_a_timestamp_literal_without_a_zone_is_utc(dialect: str) -> None:
    q = TIMES.format(t="2024-03-01 01:00:00")
    check(q, dialect, duckdb_rows(q))


def test_a_timestamp_literals_offset_per_dialect() -> None:
    q = TIMES.format(t="2024-03-01 01:00:00+02:00")
    check(q, "duckdb", duckdb_rows(q))  # DuckDB's TIMESTAMP drops the offset: 01:00
    assert len(duckdb_rows(q)) == len(duckdb_rows(TIMES.format(t="2024-03-01 01:00:00")))
    check(q, "spark", duckdb_rows(TIMES.format(t="2024-02-29 23:00:00")))  # Spark converts it
    zoned = "SELECT k, ts FROM Dx WHERE ts >= TIMESTAMPTZ '2024-03-01 01:00:00+02:00'"
    check(zoned, "duckdb", duckdb_rows(zoned))
    with pytest.raises(rp.UnsupportedError, match="zone offset"):
        rp.sql(q, sources=[Dx], dialect="flink")


AGGS = "SELECT k, SUM(v) AS s, AVG(v) AS a, AVG(x) AS ax, COUNT(v) AS c FROM Dx GROUP BY k"
WINDOW_AVG = "SELECT k, ts, AVG(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS a FROM Dx"


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_sum_and_avg_types_duckdb_and_spark(dialect: str) -> None:
    check(AGGS, dialect, duckdb_rows(AGGS))
    check(WINDOW_AVG, dialect, duckdb_rows(WINDOW_AVG))
    schema = rp.sql(AGGS, sources=[Dx], dialect=dialect).outputs[0].schema
    assert (schema.dtype("s"), schema.dtype("a"), schema.dtype("ax")) == (rp.Int64, rp.Float64, rp.Float64)


def test_flink_avg_of_a_bigint_is_a_truncated_bigint() -> None:
    check(AGGS, "flink", duckdb_rows(AGGS.replace("AVG(v)", "SUM(v) // COUNT(v)")))
    schema = rp.sql(AGGS, sources=[Dx], dialect="flink").outputs[0].schema
    assert (schema.dtype("s"), schema.dtype("a"), schema.dtype("ax")) == (rp.Int64, rp.Int64, rp.Float64)
    over = " OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)"
    check(WINDOW_AVG, "flink", duckdb_rows(WINDOW_AVG.replace(f"AVG(v){over}", f"SUM(v){over} // COUNT(v){over}")))


# ---- Spark, run directly -------------------------------------------------------------------

SPARK_QUERIES = [
    DIVISION.replace(" FROM", ", v DIV w AS t, -v % w AS n FROM"),
    ORDERED.format(n=""),
    ORDERED.format(n=" NULLS LAST"),
    STRINGS,
    TIMES.format(t="2024-03-01 01:00:00+02:00"),
    AGGS,
    "SELECT window.start AS b, window.end AS e, k, COUNT(*) AS c, SUM(v) AS s FROM Dx GROUP BY window(ts, '2 hours'), k",
    "SELECT k, window.start, window.end, MAX(x) AS m FROM Dx WHERE v > -7 GROUP BY k, window(ts, '2 hours', 1800000000)",
    # JOIN ... USING (k)'s unqualified k: the left's, the right's (RIGHT), the one there (FULL)
    "SELECT k, a.v, b.v AS bv FROM (SELECT * FROM Dx WHERE v > 0) a LEFT JOIN (SELECT * FROM Dx WHERE v < 0) b USING (k)",
    "SELECT k, a.v, b.v AS bv FROM (SELECT * FROM Dx WHERE v > 0) a RIGHT JOIN (SELECT * FROM Dx WHERE v < 0) b USING (k)",
    "SELECT k, a.k AS ak, b.k AS bk, a.v, b.v AS bv FROM (SELECT * FROM Dx WHERE v > 6) a "
    "FULL JOIN (SELECT * FROM Dx WHERE v < 0) b USING (k) WHERE k IS NULL OR k > 0",
    # ROWS frames that do not depend on the order among tied rows
    "SELECT k, ts, SUM(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS s, "
    "COUNT(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS c, "
    "AVG(v) OVER (ORDER BY ts ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS a FROM Dx",
    "SELECT k, SUM(x) OVER (PARTITION BY k) AS s, COUNT(*) OVER () AS c FROM Dx",  # no ORDER BY: the whole partition
    # aggregates of a NULL of no type: Spark types SUM(NULL) and AVG(NULL) DOUBLE, COUNT(NULL) is 0
    "SELECT k, SUM(NULL) AS s, COUNT(NULL) AS c, AVG(NULL) AS a, STDDEV_SAMP(NULL) AS d, "
    "SUM(NULL) OVER (PARTITION BY k ORDER BY MAX(ts)) AS ws FROM Dx GROUP BY k",
    "SELECT v, w, v / w AS q, v % w AS m, v DIV w AS t, x / CAST(w AS DOUBLE) AS r FROM Dx",  # over ZERO_TABLE
]


def test_spark_window_is_flinks_tumble_and_hop() -> None:
    spark = ("SELECT k, window.start AS b, window.end AS e, COUNT(*) AS c, SUM(v) AS s FROM Dx "
             "GROUP BY window(ts, '{size}'{slide}), k")
    flink = ("SELECT k, window_start AS b, window_end AS e, COUNT(*) AS c, SUM(v) AS s FROM TABLE({tvf}(TABLE Dx, "
             "DESCRIPTOR(ts), {args})) GROUP BY window_start, window_end, k")
    for size, slide, tvf, args in [("2 hours", "", "TUMBLE", "INTERVAL '2' HOUR"),
                                   ("2 hours", ", '30 minutes'", "HOP", "INTERVAL '30' MINUTE, INTERVAL '2' HOUR")]:
        expected = relplan_runs(flink.format(tvf=tvf, args=args), "flink")[0]
        check(spark.format(size=size, slide=slide), "spark", expected)
    tumbling = spark.format(size="2 hours", slide="").replace("window.start AS b, window.end AS e", "time_bucket(INTERVAL '2 hours', ts) AS b")
    check(tumbling.replace("window(ts, '2 hours')", "time_bucket(INTERVAL '2 hours', ts)"), "duckdb",
          duckdb_rows(tumbling.replace("window(ts, '2 hours')", "time_bucket(INTERVAL '2 hours', ts)")))
    with pytest.raises(rp.RelplanError):  # window() is Spark's: DuckDB's parser does not even read it
        rp.sql(spark.format(size="2 hours", slide=""), sources=[Dx], dialect="duckdb")


def test_spark_gives_what_rp_sql_of_its_dialect_gives(spark: Any) -> None:
    from relplan.backends.spark import collect, read_staged_parquet

    conf = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false"}  # Spark 3.5's default
    saved = {k: spark.conf.get(k, None) for k in conf}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for k, v in conf.items():
                spark.conf.set(k, v)
            for i, q in enumerate(SPARK_QUERIES):
                table = ZERO_TABLE if i == len(SPARK_QUERIES) - 1 else TABLE
                path = os.path.join(tmp, f"{i}.parquet")
                pq.write_table(table, path)
                read_staged_parquet(spark, path).createOrReplaceTempView("Dx")
                plan = rp.sql(q, sources=[Dx], dialect="spark")
                direct = collect(spark.sql(q), plan.outputs[0])
                check(q, "spark", direct, table)
        finally:
            spark.catalog.dropTempView("Dx")
            for k, v in saved.items():
                if v is None:
                    spark.conf.unset(k)
                else:
                    spark.conf.set(k, v)


# ---- NULL of no type ---------------------------------------------------------------------------

NULLS = ("SELECT k, SUM(NULL) AS s, COUNT(NULL) AS c, AVG(NULL) AS a, VAR_SAMP(NULL) AS va, COUNT(DISTINCT NULL) AS d, "
         "SUM(NULL) OVER (PARTITION BY k ORDER BY MAX(ts)) AS ws FROM Dx GROUP BY k")


@pytest.mark.parametrize(("clause", "dialect"), [
    (clause, dialect) for clause in ("WHERE NULL", "WHERE NULL AND v > 0", "GROUP BY k HAVING NULL")
    for dialect in ("duckdb", "flink", "spark")
    if not (dialect == "spark" and clause == "WHERE NULL") and not (dialect == "flink" and "AND" in clause)  # refused below
])
def test_a_null_condition_keeps_no_row(clause: str, dialect: str) -> None:
    q = f"SELECT k, COUNT(*) AS c FROM Dx {clause}" if "GROUP" in clause else f"SELECT k, v FROM Dx {clause}"
    expected = duckdb_rows(q)
    assert expected.num_rows == 0  # DuckDB; Flink 2.3 batch and Spark's HAVING NULL keep none either (measured)
    check(q, dialect, expected)


@pytest.mark.parametrize("query", [
    "SELECT k FROM Dx WHERE NULL AND v > 0", "SELECT k FROM Dx WHERE NOT NULL", "SELECT NULL + 1 AS x FROM Dx",
    "SELECT k, NULL AS x FROM Dx", "SELECT COALESCE(NULL, NULL) AS x FROM Dx", "SELECT CASE WHEN v > 0 THEN NULL END AS x FROM Dx",
])
def test_flink_refuses_a_null_of_no_type_as_flink_does(query: str) -> None:
    # Flink 2.3 (batch and streaming): "Illegal use of 'NULL'" for a NULL of no type anywhere
    # but a comparison, IN, IS NULL, BETWEEN or a bare WHERE NULL (measured); DuckDB reads them.
    with pytest.raises(rp.UnsupportedError, match="Flink refuses a (NULL|column) of no type") as e:
        rp.sql(query, sources=[Dx], dialect="flink")
    assert "line 1" in str(e.value) and "CAST(NULL AS BIGINT)" in str(e.value)
    rp.sql(query, sources=[Dx], dialect="duckdb")
    typed = query.replace("NULL", "CAST(NULL AS BIGINT)").replace("CAST(NULL AS BIGINT) AND", "CAST(NULL AS BOOLEAN) AND")
    rp.sql(typed.replace("NOT CAST(NULL AS BIGINT)", "NOT CAST(NULL AS BOOLEAN)"), sources=[Dx], dialect="flink")


def test_spark_refuses_where_null_as_spark_does() -> None:
    # Spark 3.5: [DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] Filter expression "NULL" of type "VOID"
    # is not a boolean (HAVING NULL it reads: no group)
    with pytest.raises(rp.UnsupportedError, match="Spark refuses WHERE NULL ") as e:
        rp.sql("SELECT k FROM Dx WHERE NULL", sources=[Dx], dialect="spark")
    assert "line 1, column 24" in str(e.value)


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "flink"])
def test_a_null_conjunct_of_on_joins_no_row(dialect: str) -> None:
    q = "SELECT a.k, b.v FROM Dx a JOIN Dx b ON a.k = b.k AND NULL"
    check(q, dialect, duckdb_rows(q))


def test_aggregates_of_a_null_of_no_type_in_duckdb() -> None:
    # DuckDB: SUM(NULL) is a HUGEINT (read as BIGINT, as its SUM of a BIGINT), AVG and
    # VAR_SAMP a DOUBLE, COUNT 0
    check(NULLS, "duckdb", duckdb_rows(NULLS))
    schema = rp.sql(NULLS, sources=[Dx], dialect="duckdb").outputs[0].schema
    assert [schema.dtype(c) for c in ("s", "c", "a", "va", "d", "ws")] == [rp.Int64, rp.Int64, rp.Float64, rp.Float64, rp.Int64, rp.Int64]
    assert rp.sql(NULLS, sources=[Dx], dialect="spark").outputs[0].schema.dtype("s") == rp.Float64  # Spark's DOUBLE


@pytest.mark.parametrize("agg", ["MIN(NULL)", "MAX(NULL)"])
@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_min_and_max_of_a_null_of_no_type_are_refused_their_type_is_none_of_relplans(agg: str, dialect: str) -> None:
    with pytest.raises(rp.UnsupportedError, match=rf"{agg[:3]}\(NULL\) has no type relplan has"):
        rp.sql(f"SELECT {agg} AS m FROM Dx", sources=[Dx], dialect=dialect)


def test_flink_refuses_an_aggregate_of_a_null_of_no_type() -> None:
    # Flink 2.3: "Illegal use of 'NULL'"; a cast NULL is read
    with pytest.raises(rp.UnsupportedError, match=r"Flink refuses SUM\(NULL\)"):
        rp.sql("SELECT SUM(NULL) AS s FROM Dx", sources=[Dx], dialect="flink")
    q = "SELECT SUM(CAST(NULL AS BIGINT)) AS s FROM Dx"
    check(q, "flink", duckdb_rows(q))


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "flink"])
def test_a_decimal_literal_as_a_case_value_is_the_same_value_typed_double(dialect: str) -> None:
    # The engines type it DECIMAL(11,1) (measured on DuckDB, Spark 3.5 and Flink 2.3);
    # relplan's IR has no decimal type: the DOUBLE of the same values (docs/sql.md).
    q = "SELECT k, CASE WHEN v > 0 THEN 1.5 ELSE 2 END AS d FROM Dx"
    direct = duckdb_rows(q)
    assert pa.types.is_decimal(direct.schema.field("d").type)
    assert rp.sql(q, sources=[Dx], dialect=dialect).outputs[0].schema.dtype("d") == rp.Float64
    check(q, dialect, direct.set_column(1, "d", direct.column("d").cast(pa.float64())))
