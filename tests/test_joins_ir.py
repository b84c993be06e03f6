"""Interval joins and lookup joins, built as IR: the same rows on DuckDB, Spark and the
reference executor; the optimizer never changes them; filters never cross into a side
a join pads with NULLs; a lookup table's duplicate key is a DataError before any
engine starts; the new Join fields serialize, trace lineage and get estimates.

Data: few keys with NULLs, times on a one-minute grid (+-1 us) and bounds in whole
minutes, so right times land exactly on a bound (inclusive) and one microsecond
beyond it (outside) often.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.backends.lookup_check import check_lookup_keys
from relplan.catalog import serialize as S
from relplan.compiler.execute import execute_all
from relplan.compiler.plan import Plan
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.lineage import plan_lineage
from relplan.ir.nodes import AsOfJoin, Filter, Join, Node, Project, Sink, Source
from relplan.ir.schema import Field, Schema
from relplan.ir.windows import Frame
from relplan.rules.cardinality import INTERVAL_FRACTION, LOOKUP_MATCH_FRACTION, estimate

UTC = dt.timezone.utc
MIN = 60_000_000  # microseconds
BASES = (dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(1969, 12, 31, 23, 58, tzinfo=UTC))  # and before the epoch

# No event time declared: an interval join takes any Timestamp column, NULLs included.
PAY = Source("Pay", Schema((Field("k", T.Int64), Field("lt", T.Timestamp), Field("a", T.Int64))))
LOG = Source("Log", Schema((Field("rk", T.Int64), Field("rt", T.Timestamp), Field("b", T.Int64))))
MERCH = Source("Merch", Schema((Field("mk", T.Int64), Field("name", T.String))))

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def col(name: str, t: T.DataType = T.Int64) -> Column:
    return Column(name, t)


def gt(name: str, v: int) -> Binary:
    return Binary(">", col(name), Literal(v, T.Int64))


def interval(how: str, before: int, after: int, left: Node = PAY, right: Node = LOG) -> Join:
    return Join(left, right, how, (("k", "rk"),), "lt", "rt", before, after)


def lookup(how: str, left: Node = PAY, right: Node = MERCH) -> Join:
    return Join(left, right, how, (("k", "mk"),), lookup=True)


def plan_of(*nodes: Node) -> Plan:
    return Plan(outputs=tuple(Sink(n, f"out{i}") for i, n in enumerate(nodes)))


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def _merch(keys_: list[int | None]) -> pa.Table:
    return pa.Table.from_pylist([{"mk": k, "name": f"m{i}"} for i, k in enumerate(keys_)], schema=MERCH.columns.to_arrow())


def same_results(expected: dict[str, pa.Table], got: dict[str, pa.Table]) -> None:
    assert list(expected) == list(got)
    for name, table in expected.items():
        assert got[name].schema.equals(table.schema), name
        assert rows(got[name]) == rows(table), name


# ---- data -----------------------------------------------------------------------------------


@st.composite
def times(draw: st.DrawFn, base: dt.datetime) -> dt.datetime | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    us = draw(st.integers(0, 4)) * MIN + draw(st.sampled_from((0, 0, 0, -1, 1)))
    return base + dt.timedelta(microseconds=us)


keys = st.one_of(st.none(), st.integers(1, 3))


@st.composite
def tables(draw: st.DrawFn) -> dict[str, pa.Table]:
    base = draw(st.sampled_from(BASES))
    pay = draw(st.lists(st.tuples(keys, times(base), st.integers(-2, 2)), max_size=6))
    log = draw(st.lists(st.tuples(keys, times(base), st.integers(-2, 2)), max_size=6))
    # A lookup table: unique non-NULL keys (NULL keys may repeat: they match nothing).
    merch_keys = draw(st.lists(st.integers(1, 3), unique=True, max_size=3)) + draw(st.lists(st.none(), max_size=2))
    return {
        "Pay": pa.Table.from_pylist([dict(zip(("k", "lt", "a"), r)) for r in pay], schema=PAY.columns.to_arrow()),
        "Log": pa.Table.from_pylist([dict(zip(("rk", "rt", "b"), r)) for r in log], schema=LOG.columns.to_arrow()),
        "Merch": pa.Table.from_pylist(
            [{"mk": k, "name": f"m{k}"} for k in merch_keys], schema=MERCH.columns.to_arrow()
        ),
    }


@st.composite
def bounds(draw: st.DrawFn) -> tuple[int, int]:
    """(before, after) in whole minutes, possibly negative, with -before <= after."""
    before = draw(st.integers(-1, 2))
    return before * MIN, draw(st.integers(-before, 2)) * MIN


@st.composite
def join_plans(draw: st.DrawFn) -> Plan:
    """An inner and a left interval join, and a lookup join (inner or left), each now
    and then under a filter on one side or both."""
    before, after = draw(bounds())
    outs: list[Node] = [interval("inner", before, after), interval("left", before, after), lookup(draw(st.sampled_from(("inner", "left"))))]
    filtered = []
    for n in outs:
        has_log = "b" in n.schema
        for p in draw(st.lists(st.sampled_from(("a", "b", "both")), max_size=2)):
            if p == "a":
                n = Filter(n, gt("a", 0))
            elif p == "b" and has_log:
                n = Filter(n, gt("b", -1))
            elif p == "both" and has_log:
                n = Filter(n, Binary("AND", Binary("<=", col("a"), col("b")), gt("a", -2)))
        filtered.append(n)
    return plan_of(*filtered)


# ---- same rows on every engine ----------------------------------------------------------------


@settings(SETTINGS, max_examples=60)
@given(plan=join_plans(), data=tables())
def test_duckdb_returns_the_reference_rows(plan: Plan, data: dict[str, pa.Table]) -> None:
    same_results(execute_all(plan, "reference", tables=data), execute_all(plan, "duckdb", tables=data))


def edge_tables() -> dict[str, pa.Table]:
    """Right times one microsecond outside, exactly on and inside the bounds [t - 10m, t];
    a NULL time and a NULL key on each side."""
    t = dt.datetime(2024, 1, 1, tzinfo=UTC)
    us = dt.timedelta(microseconds=1)
    return {
        "Pay": pa.Table.from_pylist(
            [{"k": 1, "lt": t, "a": 0}, {"k": 1, "lt": None, "a": 1}, {"k": None, "lt": t, "a": 2}],
            schema=PAY.columns.to_arrow(),
        ),
        "Log": pa.Table.from_pylist(
            [{"rk": 1, "rt": x, "b": i} for i, x in enumerate((
                t - dt.timedelta(minutes=10) - us, t - dt.timedelta(minutes=10), t, t + us, None,
            ))] + [{"rk": None, "rt": t, "b": 9}],
            schema=LOG.columns.to_arrow(),
        ),
        "Merch": _merch([1, None, None, 2]),
    }


# Each Spark run stages its inputs and runs a query per output (about a second each):
# a few drawn examples and the edges; DuckDB and the reference are compared more widely.
@settings(SETTINGS, max_examples=2)
@given(data=tables(), bound=bounds())
@example(data=edge_tables(), bound=(10 * MIN, 0))
def test_spark_returns_the_reference_rows(spark: Any, data: dict[str, pa.Table], bound: tuple[int, int]) -> None:
    plan = plan_of(interval("inner", *bound), interval("left", *bound), lookup("left"), lookup("inner"))
    same_results(execute_all(plan, "reference", tables=data), execute_all(plan, "spark", tables=data, session=spark))


def test_the_bounds_are_inclusive_and_a_null_time_matches_nothing() -> None:
    t = dt.datetime(2024, 1, 1, tzinfo=UTC)
    plan = plan_of(interval("inner", 10 * MIN, 0), interval("left", 10 * MIN, 0))
    for engine in ("duckdb", "reference"):
        out = execute_all(plan, engine, tables=edge_tables())
        assert [r[2:] for r in rows(out["out0"])] == [(0, 1, t - dt.timedelta(minutes=10), 1), (0, 1, t, 2)], engine
        left = rows(out["out1"])
        assert len(left) == 4, engine  # the two matches, and the rows with a NULL time or key unmatched
        assert sorted(r[2] for r in left if r[3] is None) == [1, 2], engine


# ---- the optimizer -------------------------------------------------------------------------------


@settings(SETTINGS, max_examples=40)
@given(plan=join_plans(), data=tables())
def test_the_optimizer_never_changes_the_rows(plan: Plan, data: dict[str, pa.Table]) -> None:
    unoptimized = rp.optimize(plan, config=rp.OptimizerConfig.all_off())
    assert unoptimized.outputs == plan.outputs
    same_results(execute_all(unoptimized, "duckdb", tables=data), execute_all(rp.optimize(plan), "duckdb", tables=data))


def _pushed(root: Node) -> str:
    return rp.optimize(plan_of(root), config=rp.OptimizerConfig.only("push_down_filter")).explain()


def test_a_filter_never_goes_into_the_right_side_of_a_left_join() -> None:
    pred = Binary("AND", gt("a", 0), gt("b", 0))
    assert _pushed(Filter(interval("left", 10 * MIN, 0), pred)) == """\
Sink out0
  Filter b > 0
    Join left on k = rk within rt in [lt - 10m, lt + 0s]
      Filter a > 0
        Source Pay bounded
      Source Log bounded"""
    assert _pushed(Filter(interval("inner", 10 * MIN, 0), pred)) == """\
Sink out0
  Join inner on k = rk within rt in [lt - 10m, lt + 0s]
    Filter a > 0
      Source Pay bounded
    Filter b > 0
      Source Log bounded"""
    name_pred = Binary("AND", gt("a", 0), Binary("=", Column("name", T.String), Literal("m1", T.String)))
    assert _pushed(Filter(lookup("left"), name_pred)) == """\
Sink out0
  Filter name = 'm1'
    Join left on k = mk lookup
      Filter a > 0
        Source Pay bounded
      Source Merch bounded"""


SPINE = Source("Spine", Schema((Field("sk", T.Int64), Field("st", T.Timestamp), Field("label", T.Int64))))
EVENTS = Source("Events", Schema((Field("ek", T.Int64), Field("et", T.Timestamp), Field("v", T.Int64))), event_time="et")


def asof() -> AsOfJoin:
    aggs = (AggCall("count", None, "n"), AggCall("sum", col("v"), "total"))
    return AsOfJoin(SPINE, EVENTS, (("sk", "ek"),), "st", "et", ((Frame(10 * MIN), aggs),))


def test_a_spine_filter_goes_below_a_point_in_time_join_and_an_aggregate_filter_stays() -> None:
    pred = Binary("AND", Binary("AND", gt("label", 0), gt("n", 1)), Binary("<", col("sk"), col("total")))
    text = _pushed(Filter(asof(), pred))
    frames = asof().details().split(" frames=")[1]
    assert text == f"""\
Sink out0
  Filter (n > 1) AND (sk < total)
    AsOfJoin on sk = ek time=st event_time=et frames={frames}
      Filter label > 0
        Source Spine bounded
      Source Events event_time=et bounded"""
    assert _pushed(Filter(asof(), gt("n", 1))).count("Filter") == 1  # nothing to move: the plan as it was


@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_a_spine_filter_moved_below_a_point_in_time_join_keeps_the_rows(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(BASES))
    spine = data.draw(st.lists(st.tuples(keys, times(base).filter(lambda t: t is not None), st.integers(-1, 2)), max_size=6))
    events = data.draw(st.lists(st.tuples(keys, times(base).filter(lambda t: t is not None), st.integers(-2, 2)), max_size=8))
    tables_ = {
        "Spine": pa.Table.from_pylist([dict(zip(("sk", "st", "label"), r)) for r in spine], schema=SPINE.columns.to_arrow()),
        "Events": pa.Table.from_pylist([dict(zip(("ek", "et", "v"), r)) for r in events], schema=EVENTS.columns.to_arrow()),
    }
    pred = Binary("AND", gt("label", 0), gt("n", 0))
    plan = plan_of(Filter(asof(), pred))
    optimized = rp.optimize(plan)
    assert "Filter label > 0" in optimized.explain()
    same_results(execute_all(plan, "duckdb", tables=tables_), execute_all(optimized, "duckdb", tables=tables_))
    same_results(execute_all(plan, "reference", tables=tables_), execute_all(optimized, "duckdb", tables=tables_))


# ---- the lookup check ----------------------------------------------------------------------------


def _pay() -> pa.Table:
    return pa.Table.from_pylist([{"k": 7, "lt": None, "a": 1}], schema=PAY.columns.to_arrow())


@pytest.mark.parametrize("engine", ["duckdb", "reference", "flink"])
def test_a_duplicate_key_in_a_lookup_table_is_a_data_error_before_the_run(engine: str) -> None:
    if engine == "flink":
        pytest.importorskip("pyflink")
    plan = plan_of(lookup("inner"))
    with pytest.raises(rp.DataError) as err:
        execute_all(plan, engine, tables={"Pay": _pay(), "Merch": _merch([1, 7, 2, 7, None, None])})
    assert str(err.value) == (
        "lookup table 'Merch' has 2 rows for mk = 7; a lookup join needs one row per key "
        "(deduplicate it, or join with merge_asof if it holds versions)"
    )


def test_a_lookup_table_with_unique_keys_passes() -> None:
    plan = plan_of(lookup("left"))
    merch = _merch([1, 7, None, None])  # NULL keys may repeat: they match nothing
    for engine in ("duckdb", "reference"):
        out = execute_all(plan, engine, tables={"Pay": _pay(), "Merch": merch})["out0"]
        assert out.column("name").to_pylist() == ["m1"]


def test_the_check_follows_renames_and_filters_down_to_the_source_table() -> None:
    renamed = Filter(
        Project(MERCH, (("merchant", Column("mk", T.Int64)), ("mname", Column("name", T.String)))),
        Binary("=", Column("mname", T.String), Literal("m1", T.String)),
    )
    join = Join(PAY, renamed, "inner", (("k", "merchant"),), lookup=True)
    # The table is checked, not the filtered rows: the same answer before and after optimizing.
    with pytest.raises(rp.DataError, match=r"lookup table 'Merch' has 3 rows for mk = 7;"):
        check_lookup_keys(plan_of(join).outputs, {"Pay": _pay(), "Merch": _merch([7, 7, 7, 2, 2])})
    keys2 = Source("Merch2", Schema((Field("c", T.String), Field("d", T.Float64), Field("count_all", T.Int64))))
    two = Join(
        Project(PAY, (("k", col("k")), ("kf", Binary("*", col("k"), Literal(1.0, T.Float64))))),
        keys2, "left", (("k", "count_all"), ("kf", "d")), lookup=True,
    )
    table = pa.table({"c": ["x", "y", "z"], "d": [0.0, -0.0, 1.0], "count_all": [1, 1, 1]})
    with pytest.raises(rp.DataError, match=r"has 2 rows for count_all = 1, d = 0.0;"):  # -0.0 is 0.0 to a join
        check_lookup_keys(plan_of(two).outputs, {"Pay": _pay(), "Merch2": table})


def test_what_the_check_cannot_see_it_leaves_alone() -> None:
    dupes = _merch([7, 7])
    # A key computed by an expression is no column of the table.
    computed = Project(MERCH, (("mk2", Binary("+", col("mk"), Literal(1, T.Int64))), ("name", Column("name", T.String))))
    check_lookup_keys(plan_of(Join(PAY, computed, "inner", (("k", "mk2"),), lookup=True)).outputs, {"Merch": dupes})
    # A table the engine holds by name is never read by relplan.
    check_lookup_keys(plan_of(lookup("inner")).outputs, {"Pay": _pay(), "Merch": "merch_in_spark"})
    # A join not declared a lookup multiplies rows, as SQL does.
    out = execute_all(plan_of(Join(PAY, MERCH, "inner", (("k", "mk"),))), "duckdb", tables={"Pay": _pay(), "Merch": dupes})
    assert out["out0"].num_rows == 2


# ---- serialization, lineage, estimates, pictures ---------------------------------------------------


def test_the_new_join_fields_round_trip_and_a_plain_join_is_written_as_before() -> None:
    full = Join(PAY, LOG, "left", (("k", "rk"),), "lt", "rt", -MIN, 5 * MIN, lookup=True)
    sinks = (Sink(full, "a"), Sink(interval("inner", 10 * MIN, 0), "b"), Sink(lookup("inner"), "c"), Sink(Join(PAY, LOG, "full", (("k", "rk"),)), "d"))
    doc = S.nodes_to_dict(sinks)
    back = S.nodes_from_dict(json.loads(S.dumps(doc)))
    assert back == sinks
    assert [s.input.details() for s in back] == [s.input.details() for s in sinks]
    joins = [e for e in doc["nodes"] if e["kind"] == "Join"]
    assert set(joins[0]) - {"id", "kind"} == set(S._field_names(Join, when_set=True))
    assert joins[0]["before"] == -MIN and joins[0]["after"] == 5 * MIN and joins[0]["lookup"] is True
    assert "lookup" not in joins[1] and "left_time" not in joins[2]
    assert set(joins[3]) == {"id", "kind", "left", "right", "how", "on"}  # byte for byte what it was
    broken = json.loads(S.dumps(doc))
    del [e for e in broken["nodes"] if e["kind"] == "Join"][0]["right_time"]
    with pytest.raises(rp.RelplanError, match="missing field 'right_time'"):
        S.nodes_from_dict(broken)


def test_an_interval_joins_times_decide_every_rows_membership() -> None:
    g = plan_lineage(plan_of(interval("inner", 10 * MIN, 0)))
    for out_col in ("k", "a", "rt", "b"):
        assert g.edges[("source", "Log", "rt"), ("output", "out0", out_col)]["roles"] >= {"rows"}
        assert g.edges[("source", "Pay", "lt"), ("output", "out0", out_col)]["roles"] >= {"rows"}
    assert g.edges[("source", "Log", "rt"), ("output", "out0", "rt")]["roles"] == {"rows", "value"}


STATS = rp.Statistics({
    "Pay": rp.SourceStats(rows=1_000_000, distinct={"k": 1000}, rate=100.0),
    "Log": rp.SourceStats(rows=2_000_000, distinct={"rk": 1000}, rate=200.0),
    "Merch": rp.SourceStats(rows=500, distinct={"mk": 500}),
})


def test_interval_and_lookup_joins_are_estimated() -> None:
    inner = interval("inner", 10 * MIN, 0)
    left_ = interval("left", 10 * MIN, 5 * MIN)
    est = estimate([inner, left_, lookup("inner"), lookup("left"), Join(PAY, LOG, "inner", (("k", "rk"),))], STATS)
    # A key's right rows within 10 minutes: 200/s x 600 s / 1000 keys = 120 per payment.
    assert est[inner].rows == pytest.approx(1_000_000 * 120)
    assert est[inner].rate == pytest.approx(100 * 120)
    # Held: payments while logins could still match them (after = 0: none), logins for 10 minutes.
    assert est[inner].state_rows == pytest.approx(200 * 600)
    assert est[left_].state_rows == pytest.approx(100 * 300 + 200 * 600)
    assert est[lookup("inner")].rows == pytest.approx(1_000_000 * 0.5)  # 500 of 1000 keys found
    assert est[lookup("left")].rows == pytest.approx(1_000_000)
    assert est[lookup("inner")].state_rows == 500  # the table
    plain = est[Join(PAY, LOG, "inner", (("k", "rk"),))]
    assert plain.rows == pytest.approx(1_000_000 * 2000) and plain.state_rows == 3_000_000
    # Without a rate or distinct counts: the stated default fractions.
    bare = rp.Statistics({"Pay": rp.SourceStats(rows=100), "Log": rp.SourceStats(rows=50), "Merch": rp.SourceStats(rows=10)})
    est = estimate([inner, lookup("inner")], bare)
    assert est[inner].rows == pytest.approx(100 * 50 * INTERVAL_FRACTION)
    assert est[inner].state_rows is None  # no rates: the state is unknown
    assert est[lookup("inner")].rows == pytest.approx(100 * LOOKUP_MATCH_FRACTION)


def test_pictures_and_text_show_the_bounds_the_lookup_and_the_estimates() -> None:
    plan = plan_of(interval("inner", 10 * MIN, 0), lookup("left"))
    text = plan.explain()
    assert "Join inner on k = rk within rt in [lt - 10m, lt + 0s]" in text
    assert "Join left on k = mk lookup" in text
    dot = plan.to_dot(statistics=STATS)
    assert "within rt in [lt - 10m, lt + 0s]" in dot and "lookup" in dot
    assert "rows ≈ 120M" in dot and "stream state ≈" in dot
    rp.optimize(plan).to_dot(statistics=STATS)  # and optimized


class Payments(rp.Source):
    user_id: rp.Int64
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class Logins(rp.Source):
    login_user: rp.Int64
    device: rp.String
    lts: rp.Timestamp = rp.event_time()


@rp.transformation
def logins_before_payment(p: Payments, wspec: rp.WindowSpec):
    joined = p.merge(Logins, left_on="user_id", right_on="login_user", within="10m")
    return joined.groupby("user_id")["device"].window(wspec).count()


def test_a_feature_over_a_merge_round_trips_with_its_rows() -> None:
    feature = logins_before_payment(window=rp.sliding("1h"))
    assert feature.body.rows is not None
    doc = S.feature_to_dict(feature)
    assert set(doc["body"]) == set(S._field_names(type(feature.body), when_set=True))
    back = S.feature_from_dict(json.loads(S.dumps(doc)))
    assert back.body.rows == feature.body.rows
    assert rp.compile(back).explain() == rp.compile(feature).explain()
