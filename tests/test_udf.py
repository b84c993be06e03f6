"""Python UDFs (@udf): run per row on DuckDB and the reference engine with equal results,
refused with an UnsupportedError naming the UDF on Spark and Flink (their SQL too),
registered for one DuckDB call only (also with threads), errors naming the UDF,
opaque to the optimizer, stored by import path."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference as ref
import relplan as rp
from relplan.backends import duckdb_connections
from relplan.backends.duckdb_udf import python_udfs, sql_name
from relplan.catalog.serialize import FormatError
from relplan.compiler.udf import udf
from relplan.ir import types as T
from relplan.ir.errors import EngineError, FeatureError, TypeMismatchError, UnsupportedError
from relplan.ir.expr import Binary, Column, Literal, PythonUDF
from relplan.rules.simplify_expressions import simplify
from strategies import Events, event_rows, to_table

SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


# ---- module-level UDFs (importable: storable by their path) ---------------------------


@udf(returns=rp.Float64)
def normalize(s: str) -> float | None:
    """A string's length without surrounding blanks; NULL for NULL."""
    return None if s is None else float(len(s.strip()))


@udf(returns=rp.Float64)
def blend(x: float, s: str) -> float:
    """Called for NULLs too: None arrives as None, and this one decides what it means."""
    return (0.0 if x is None else x * 2) + (-1.0 if s is None else len(s))


@udf(returns=rp.Bool)
def is_short(s: str) -> bool | None:
    return None if s is None else len(s) < 2


@udf(returns=rp.Int64)
def minute_of(ts: dt.datetime) -> int | None:
    assert ts.tzinfo is not None, "timestamps arrive in UTC, tz-aware"
    return ts.minute


@udf(returns=rp.Float64)
def boom(v: int) -> float:
    if v is not None and v % 3 == 0:
        raise ValueError(f"no multiples of three, got {v}")
    return 1.0


@udf(returns=rp.Float64)
def wrong_type(s: str) -> Any:
    return "not a float"


@rp.transformation
def udf_sum(e: Events, wspec: rp.WindowSpec) -> Any:
    return e.assign(n=normalize(e.s))[is_short(e.s) | (minute_of(e.ts) < 2)].groupby("k")["n"].window(wspec).sum()


@rp.transformation
def blend_mean(e: Events, wspec: rp.WindowSpec) -> Any:
    return e.assign(y=blend(e.x, e.s)).groupby("k")["y"].window(wspec).mean()


@rp.transformation
def short_count(e: Events, wspec: rp.WindowSpec) -> Any:
    return e[is_short(e.s)].groupby("k").window(wspec).count()


FEATURES = [
    udf_sum(window=rp.sliding("1h"), name="udf_sum"),
    blend_mean(window=rp.sliding("2m"), name="blend_mean"),
    short_count(window=rp.tumbling("1m"), name="short_count"),
]


def rows_of(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as sortable tuples (None first), floats rounded for a tolerant comparison."""
    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return (1, round(v, 6)) if math.isfinite(v) else (1, str(v))
        return (0, None) if v is None else (1, v)

    return sorted(tuple(norm(v) for v in r.values()) for r in table.to_pylist())


def registered_udfs() -> int:
    """Python functions relplan registered in the database execute() keeps (none between calls)."""
    cursor = duckdb_connections._database(None).cursor()
    try:
        sql = "SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'relplan_udf_%'"
        return int(cursor.execute(sql).fetchall()[0][0])
    finally:
        cursor.close()


def table(*rows: tuple[int | None, str | None, float | None]) -> pa.Table:
    return to_table([
        {"k": k, "v": i, "x": x, "s": s, "b": None, "ts": ref.from_us(i * 20_000_000)}
        for i, (k, s, x) in enumerate(rows)
    ])


# ---- the expression and the DSL -------------------------------------------------------


def test_explain_marks_every_use() -> None:
    text = rp.compile([FEATURES[0]]).explain()
    assert "python_udf:normalize(s)" in text
    assert "python_udf:is_short(s)" in text and "python_udf:minute_of(ts)" in text


def test_the_expression_is_typed_hashable_and_compared_by_function() -> None:
    a = PythonUDF("normalize", normalize.fn, (Column("s", T.String),), T.Float64)
    b = PythonUDF("normalize", normalize.fn, (Column("s", T.String),), T.Float64)
    assert a == b and hash(a) == hash(b) and a.path.endswith(":normalize") and a.dtype == T.Float64
    other = PythonUDF("normalize", lambda s: 1.0, (Column("s", T.String),), T.Float64)
    assert other != a  # a function defined again is another expression: no cache mixes them


def test_plain_values_become_literals_and_none_takes_the_annotation() -> None:
    e = blend(_events().x, None).expr
    assert isinstance(e, PythonUDF)
    assert e.args[1] == Literal(None, T.String)
    e2 = blend(_events().x, "abc").expr
    assert e2.args[1] == Literal("abc")  # type: ignore[attr-defined]


def _events() -> Any:
    from relplan.compiler.dsl import DataFrame

    return DataFrame(Events)


def test_argument_count_and_untyped_none_are_errors_naming_the_udf() -> None:
    e = _events()
    with pytest.raises(FeatureError, match="python_udf blend.*missing a required argument"):
        blend(e.x)
    with pytest.raises(FeatureError, match="python_udf normalize.*too many"):
        normalize(e.s, e.s)

    @udf(returns=rp.Float64)
    def untyped(a, b):  # type: ignore[no-untyped-def]
        return 1.0

    with pytest.raises(TypeMismatchError, match="python_udf untyped: argument 2 .* is None"):
        untyped(e.x, None)
    with pytest.raises(FeatureError, match="without a column.*normalize.fn"):
        normalize("abc")
    with pytest.raises(TypeMismatchError, match="argument 1 \\(s\\) is Float64, but the parameter is annotated String"):
        normalize(e.x)
    with pytest.raises(TypeMismatchError, match="returns="):
        udf(returns=int)(lambda s: 1)  # type: ignore[arg-type]
    assert normalize.fn("  ab ") == 2.0  # the plain function, for testing it alone


# ---- DuckDB and the reference engine agree ---------------------------------------------


@SETTINGS
@given(rows=event_rows(max_rows=16), optimized=st.booleans())
def test_duckdb_equals_the_reference_engine(rows: list[dict[str, Any]], optimized: bool) -> None:
    plan = rp.compile(FEATURES)
    if optimized:
        plan = rp.optimize(plan)
    tables = {"Events": to_table(rows)}
    for name in plan.output_names:
        duck = rp.execute(plan, tables=tables, output=name)
        refd = rp.execute(plan, engine="reference", tables=tables, output=name)
        assert rows_of(duck) == rows_of(refd), name
    assert registered_udfs() == 0


def test_nulls_reach_the_function_and_none_is_null() -> None:
    plan = rp.compile([blend_mean(window=rp.sliding("1s"), name="y")])
    t = table((1, None, None), (1, "ab", None), (1, None, 1.5), (None, "x", 2.0))
    for engine in ("duckdb", "reference"):
        out = rp.execute(plan, engine=engine, tables={"Events": t}).sort_by("v").column("y").to_pylist()
        assert out == [-1.0, 2.0, 2.0, None], engine  # the NULL key is no entity


# ---- every other engine refuses, naming the UDF ---------------------------------------


@pytest.mark.parametrize("engine", ["spark", "flink"])
def test_other_engines_sql_is_refused_naming_udf_and_way_out(engine: str) -> None:
    plan = rp.compile([FEATURES[1]])
    with pytest.raises(UnsupportedError, match=f"python_udf blend .* {engine}.*engine='duckdb'.*relplan's operators"):
        plan.to_sql(engine)
    assert "relplan_udf_blend_" in plan.to_sql("duckdb").lower()


def test_spark_execute_is_refused(spark: Any) -> None:
    plan = rp.compile([FEATURES[2]])
    with pytest.raises(UnsupportedError, match="python_udf is_short .* spark"):
        rp.execute(plan, engine="spark", session=spark, tables={"Events": table((1, "a", 1.0))})


def test_spark_execute_is_refused_before_any_job(spark: Any) -> None:
    plan = rp.compile([FEATURES[2]])
    tracker = spark.sparkContext.statusTracker()
    jobs_before = set(tracker.getJobIdsForGroup(None))
    with pytest.raises(UnsupportedError, match="python_udf is_short .* spark"):
        rp.execute(plan, engine="spark", session=spark, tables={"Events": table((1, "a", 1.0))})
    assert set(tracker.getJobIdsForGroup(None)) == jobs_before


# ---- one call's registration is its own ------------------------------------------------


def _bump(offset: float) -> Any:
    """A UDF named ``bump`` (the same module:qualname every time) adding ``offset``."""

    @udf(returns=rp.Float64)
    def bump(x: float) -> float | None:
        return None if x is None else x + offset

    return bump


def _bump_plan(bump: Any) -> rp.Plan:
    @rp.transformation
    def bumped(e: Events, wspec: rp.WindowSpec) -> Any:
        return e.assign(y=bump(e.x)).groupby("k")["y"].window(wspec).max()

    return rp.compile([bumped(window=rp.sliding("1h"), name="y")])


def test_two_definitions_of_one_name_give_their_own_results() -> None:
    t = table((1, "a", 1.0), (1, "b", 2.0))
    one, two = _bump(10.0), _bump(100.0)
    assert sql_name(python_udfs(_bump_plan(one).outputs)[0]) == sql_name(python_udfs(_bump_plan(two).outputs)[0])
    assert rp.execute(_bump_plan(one), tables={"Events": t}).column("y").to_pylist() == [11.0, 12.0]
    assert rp.execute(_bump_plan(two), tables={"Events": t}).column("y").to_pylist() == [101.0, 102.0]
    assert rp.execute(_bump_plan(one), tables={"Events": t}).column("y").to_pylist() == [11.0, 12.0]
    assert registered_udfs() == 0


def test_threads_at_once_each_call_their_own_definition() -> None:
    t = table(*[(i % 3, "a", float(i)) for i in range(200)])
    offsets = [float(10 ** i) for i in range(6)]
    start = threading.Barrier(len(offsets))
    results: dict[float, list[Any]] = {}
    errors: list[BaseException] = []

    def run(offset: float) -> None:
        try:
            plan = _bump_plan(_bump(offset))
            start.wait()
            for _ in range(5):
                got = rp.execute(plan, tables={"Events": t}).sort_by("v").column("y").to_pylist()
                assert results.setdefault(offset, got) == got
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(o,)) for o in offsets]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for offset, got in results.items():
        best: dict[int, float] = {}
        want = []
        for i in range(200):
            best[i % 3] = max(best.get(i % 3, -math.inf), i + offset)
            want.append(best[i % 3])
        assert got == want, offset
    assert registered_udfs() == 0


def test_a_users_connection_keeps_nothing() -> None:
    import duckdb

    con = duckdb.connect()
    plan = rp.compile([FEATURES[0]])
    rp.execute(plan, connection=con, tables={"Events": table((1, "a", 1.0))})
    left = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'relplan_udf_%'").fetchall()
    assert left == [(0,)]
    con.close()


# ---- errors name the UDF ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_an_exception_in_the_udf_names_it_and_the_row(engine: str) -> None:
    @rp.transformation
    def exploding(e: Events, wspec: rp.WindowSpec) -> Any:
        return e.assign(y=boom(e.v)).groupby("k")["y"].window(wspec).sum()

    plan = rp.compile([exploding(window=rp.sliding("1h"), name="y")])
    t = table((1, "a", 1.0), (1, "b", 2.0), (1, "c", 3.0), (1, "d", 4.0))  # v = 0..3
    with pytest.raises(EngineError, match=r"python_udf boom \(test_udf:boom\) raised ValueError: no multiples of three") as info:
        rp.execute(plan, engine=engine, tables={"Events": t})
    assert "on arguments (v=" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)
    assert registered_udfs() == 0


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_a_result_of_the_wrong_type_names_the_udf_and_the_declared_type(engine: str) -> None:
    @rp.transformation
    def mistyped(e: Events, wspec: rp.WindowSpec) -> Any:
        return e.assign(y=wrong_type(e.s)).groupby("k")["y"].window(wspec).sum()

    plan = rp.compile([mistyped(window=rp.sliding("1h"), name="y")])
    with pytest.raises(EngineError, match=r"python_udf wrong_type .* returned 'not a float' \(str\).*declared to return Float64"):
        rp.execute(plan, engine=engine, tables={"Events": table((1, "a", 1.0))})


# ---- the optimizer treats it as opaque -------------------------------------------------


def test_literal_arguments_are_never_folded() -> None:
    call = PythonUDF("boom", boom.fn, (Binary("+", Literal(1), Literal(2)),), T.Float64)
    out = simplify(call)
    assert isinstance(out, PythonUDF) and out.args == (Literal(3),)  # its argument folds, the call does not
    pred = Binary("AND", Binary(">", call, Literal(0.0)), Literal(True))
    assert simplify(pred) == Binary(">", out, Literal(0.0))


def test_a_filter_over_a_udf_survives_the_optimizer() -> None:
    @rp.transformation
    def masked(e: Events, wspec: rp.WindowSpec) -> Any:
        return e[(e.k > 0) & is_short(e.s) & (e.v >= 0)].groupby("k")["v"].window(wspec).sum()

    plan = rp.compile([masked(window=rp.tumbling("1m"), name="m")])
    optimized = rp.optimize(plan)
    assert "python_udf:is_short(s)" in optimized.explain()
    t = table((1, "a", None), (1, "abc", None), (2, None, None), (2, "b", None), (0, "c", None))
    want = rows_of(rp.execute(plan, engine="reference", tables={"Events": t}))
    assert rows_of(rp.execute(optimized, tables={"Events": t})) == want
    assert rows_of(rp.execute(optimized, engine="reference", tables={"Events": t})) == want


# ---- stored by import path -------------------------------------------------------------


def test_a_module_level_udf_round_trips_through_json() -> None:
    plan = rp.compile(FEATURES)
    text = plan.to_json()
    assert '"function": "test_udf:normalize"' in text
    back = rp.Plan.from_json(text)
    assert back == plan
    t = table((1, "a", 1.0), (1, " ab ", None), (2, None, 3.0))
    for name in plan.output_names:
        assert rows_of(rp.execute(back, tables={"Events": t}, output=name)) == rows_of(
            rp.execute(plan, engine="reference", tables={"Events": t}, output=name)
        )


def test_a_lambda_or_local_function_cannot_be_stored() -> None:
    lam = udf(returns=rp.Float64)(lambda s: 1.0)
    with pytest.raises(FormatError, match="cannot write python_udf <lambda> .*it is a lambda"):
        _single(lam).to_json()
    with pytest.raises(FormatError, match="cannot write python_udf bump .*defined inside a function"):
        _bump_plan(_bump(1.0)).to_json()


def _single(f: Any) -> rp.Plan:
    @rp.transformation
    def single(e: Events, wspec: rp.WindowSpec) -> Any:
        return e.assign(y=f(e.s)).groupby("k")["y"].window(wspec).sum()

    return rp.compile([single(window=rp.sliding("1h"), name="y")])


def test_a_missing_module_or_function_at_read_time_is_a_format_error_naming_it() -> None:
    text = _single(normalize).to_json()
    assert "test_udf:normalize" in text
    with pytest.raises(FormatError, match="cannot import module 'no_such_udf_module' of python_udf function"):
        rp.Plan.from_json(text.replace("test_udf:normalize", "no_such_udf_module:normalize"))
    with pytest.raises(FormatError, match="module 'test_udf' has no 'gone'"):
        rp.Plan.from_json(text.replace("test_udf:normalize", "test_udf:gone"))
    doc = json.loads(text)
    assert doc["relplan"] == 1  # an additive change: the format version stays


def test_placement_keeps_a_udf_feature_off_flink() -> None:
    """Streaming and hybrid would run the UDF on Flink: both are refused by name, and
    the feature is placed in batch on DuckDB."""
    f = udf_sum(window=rp.sliding("1h"))
    stats = rp.Statistics({"Events": rp.SourceStats(rows=10_000, rate=10.0)})
    (placed,) = rp.optimize(rp.compile([f]), statistics=stats, knobs=rp.Knobs()).placement.features  # type: ignore[union-attr]
    refused = {a.name: a.refused for a in placed.alternatives}
    assert placed.chosen.name == "batch"
    for name in ("streaming", "streaming_consistent", "hybrid"):
        assert refused[name] is not None and ("is_short" in refused[name] or "normalize" in refused[name]), (name, refused[name])
