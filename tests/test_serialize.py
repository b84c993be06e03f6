"""The IR as JSON (catalog/serialize.py): plans, features, sources, nodes and expressions
round-trip exactly, deterministically, and a bad document is a FormatError that names
its problem.

- property: random plans (tests/plan_strategies.py) read back equal, with the same
  explain(), the same SQL for DuckDB, Spark and Flink (caches cleared in between, so
  equal-by-value nodes cannot hide a lost detail), the same document again, and (a
  subset, with data) the same rows on DuckDB;
- every expression and literal kind, including timestamps with microseconds, dates,
  -0.0, infinities, and unicode and quotes in strings and identifiers;
- a compiled plan of 1,000 stacked features (deeper than Python's recursion limit);
- optimized, placed and point-in-time plans: explain(verbose=True), trace, placement
  and deployment the same;
- the text is the same under different PYTHONHASHSEED values (subprocesses);
- features and source classes with their metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings

import relplan as rp
import test_differential as diff
from plan_strategies import DiffCase, cases, plans
from relplan.catalog import serialize as S
from relplan.catalog.serialize import FormatError
from relplan.compiler.execute import execute_all
from relplan.ir import nodes as N
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Case, Cast, Coalesce, Column, InList, Literal, Unary
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame, TimeWindow

UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
ENGINES = ("duckdb", "spark", "flink")


def round_trip(plan: rp.Plan) -> rp.Plan:
    text = plan.to_json()
    back = rp.Plan.from_json(text)
    assert back.to_json() == text  # the document read back is written back byte for byte
    return back


def sql_or_error(plan: rp.Plan, engine: str) -> str:
    try:
        return plan.to_sql(engine)
    except rp.RelplanError as e:
        return f"{type(e).__name__}: {e}"


def same_sql(plan: rp.Plan, back: rp.Plan) -> None:
    for engine in ENGINES:
        rp.clear_caches()  # SQL is cached by node, and nodes compare by value: render each afresh
        expected = sql_or_error(plan, engine)
        rp.clear_caches()
        assert sql_or_error(back, engine) == expected, engine


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("SET threads = 2")
    yield c
    c.close()


# ---- (a) random plans ----------------------------------------------------------------------


@settings(SETTINGS, max_examples=60)
@given(plan=plans(max_nodes=6))
def test_random_plans_round_trip_with_the_same_explain_and_sql(plan: rp.Plan) -> None:
    back = round_trip(plan)
    assert back.outputs == plan.outputs
    assert back.explain(verbose=True) == plan.explain(verbose=True)
    same_sql(plan, back)


@settings(SETTINGS, max_examples=40)
@given(plan=plans(max_nodes=6))
def test_random_optimized_plans_round_trip_with_their_trace(plan: rp.Plan) -> None:
    optimized = rp.optimize(plan)
    back = round_trip(optimized)
    assert back.outputs == optimized.outputs and back.optimized
    assert [t.lines() for t in back.trace] == [t.lines() for t in optimized.trace]
    assert back.explain(verbose=True) == optimized.explain(verbose=True)


@settings(SETTINGS, max_examples=25)
@given(case=cases(max_nodes=5))
def test_random_plans_read_back_return_the_same_rows(case: DiffCase, con: duckdb.DuckDBPyConnection) -> None:
    back = round_trip(case.plan)
    expected = execute_all(case.plan, "duckdb", tables=case.tables, connection=con)
    got = execute_all(back, "duckdb", tables=case.tables, connection=con)
    note(case.plan.explain())
    assert diff.differences(expected, got) == []


# ---- (b) expressions and literals ----------------------------------------------------------

ODD = 'it\'s "q" é 日本 🎉 \\ \n\t\x00 \u2028'
ODD_COLUMN = 'größe "x" \'y\''

LITERALS = [
    Literal(None),
    Literal(None, T.Float64),
    Literal(None, T.Timestamp),
    Literal(True),
    Literal(False),
    Literal(0),
    Literal(-5),
    Literal(2**62),
    Literal(2**70),  # Python ints are unbounded; the IR does not check
    Literal(1.5),
    Literal(0.1),
    Literal(-0.0),
    Literal(0.0),
    Literal(5e-324),
    Literal(1.7976931348623157e308),
    Literal(math.inf),
    Literal(-math.inf),
    Literal(""),
    Literal(ODD),
    Literal(dt.datetime(2024, 1, 31, 12, 30, 45, 123456, tzinfo=UTC)),
    Literal(dt.datetime(1969, 12, 31, 23, 59, 59, 999999)),  # naive: read as UTC
    Literal(dt.datetime(2024, 6, 1, 2, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))),
    Literal(dt.datetime(1, 1, 1, tzinfo=UTC)),
    Literal(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    Literal(dt.date(2024, 2, 29)),
    Literal(dt.date(1, 1, 1)),
    Literal(3, T.Float64),  # an int typed Float64 (the IR allows it)
]


def strict(v: Any) -> Any:
    """A literal value with its Python type (and a float's sign): what == on Literals ignores."""
    if isinstance(v, float):
        return ("float", math.copysign(1.0, v), repr(v))
    if isinstance(v, dt.datetime):
        return ("datetime", v.isoformat(), v.utcoffset())
    return (type(v).__name__, v)


@pytest.mark.parametrize("lit", LITERALS, ids=lambda lit: f"{lit.dtype}:{lit.sql()[:20]!r}")
def test_every_literal_round_trips_exactly(lit: Literal) -> None:
    d = S.expr_to_dict(lit)
    back = S.expr_from_dict(json.loads(S.dumps(d)))
    assert isinstance(back, Literal)
    assert back == lit and back.dtype == lit.dtype and back.sql() == lit.sql()
    assert strict(back.value) == strict(lit.value)


def test_timestamps_are_written_in_utc_with_microseconds() -> None:
    lit = Literal(dt.datetime(2024, 6, 1, 2, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))))
    assert S.expr_to_dict(lit)["value"] == "2024-05-31T20:30:00.000001+00:00"
    assert S.expr_to_dict(Literal(dt.date(2024, 2, 29)))["value"] == "2024-02-29"
    assert S.expr_to_dict(Literal(-math.inf))["value"] == "-inf"
    assert S.canonical_json(S.expr_to_dict(Literal(-0.0))) == '{"kind":"Literal","type":"Float64","value":-0.0,"value_type":"float"}'


ALL = N.Source(
    "all \"types\" 日本",
    Schema.of([
        ("i", T.Int64), ("f", T.Float64), ("s", T.String), ("b", T.Bool), ("ts", T.Timestamp), ("d", T.Date),
        (ODD_COLUMN, T.String),
    ]),
    event_time="ts", lateness=5_000_000, bounded=False, keys=("i", ODD_COLUMN),
)
i, f, s, b, ts, d, odd = (Column(fl.name, fl.dtype) for fl in ALL.columns.fields[:7])

EXPRESSIONS = [
    *(Binary(op, i, Literal(3)) for op in ("+", "-", "*", "/", "//", "%")),
    *(Binary(op, f, i) for op in ("=", "!=", "<", "<=", ">", ">=")),
    Binary("AND", b, Binary("OR", Literal(None), Unary("NOT", b))),
    Unary("NEG", f), Unary("IS NULL", s), Unary("IS NOT NULL", odd),
    InList(s, (Literal("a"), Literal(ODD), Literal(None))),
    InList(ts, (Literal(dt.datetime(2024, 1, 1, 0, 0, 0, 7, tzinfo=UTC)),)),
    Cast(i, T.Float64), Cast(f, T.Int64), Cast(b, T.Int64), Cast(i, T.String), Cast(d, T.Timestamp),
    Cast(ts, T.Date), Cast(Literal(None), T.Date),
    Coalesce((f, i, Literal(-0.0))),
    Case(((Binary(">", i, Literal(0)), Literal("pos")), (Unary("IS NULL", i), odd)), Literal(ODD)),
    Case(((b, f),)),
    Binary("=", odd, Literal(ODD)),
    Binary("<", d, Literal(dt.date(2024, 2, 29))),
]


@pytest.mark.parametrize("e", EXPRESSIONS, ids=lambda e: e.sql()[:40])
def test_every_expression_kind_round_trips(e: Any) -> None:
    back = S.expr_from_dict(json.loads(S.canonical_json(S.expr_to_dict(e))))
    assert back == e and back.dtype == e.dtype and back.sql() == e.sql()
    assert S.expr_to_dict(back) == S.expr_to_dict(e)


def every_node_kind() -> tuple[N.Sink, ...]:
    """One node of every kind, with every optional field set somewhere."""
    src = ALL
    ev = N.Source("ev", Schema.of([("k", T.Int64), ("x", T.Float64), ("t", T.Timestamp)]), "t")
    flt = N.Filter(src, Binary("AND", Binary(">", i, Literal(0)), Binary("=", odd, Literal(ODD))))
    proj = N.Project(flt, tuple((c.name, c) for c in (i, f, s, b, ts, d, odd)) + (("ñ \"q\"", Binary("*", f, Literal(2.5))),))
    count = AggCall("count", None, "n")
    agg = N.Aggregate(proj, ("i", ODD_COLUMN), (count, AggCall("sum", f, "total", filter=b), AggCall("max", d, "last_d")))
    win = N.WindowAggregate(proj, ("i",), "ts", (
        (Frame(3_600_000_000), (count, AggCall("last", s, "last_s", order=ts))),
        (Frame(None), (AggCall("count_distinct", odd, "kinds"),)),
        (Frame(7_200_000_000, lower_inclusive=True, upper=60_000_000, upper_inclusive=False),
         (AggCall("mean", i, "m"), AggCall("var", f, "v"), AggCall("std", f, "sd"))),
        (Frame(86_400_000_000 * 2, tile=86_400_000_000), (AggCall("sum", f, "tiled"), AggCall("min", f, "tiled_min"))),
    ))
    tw = N.TimeWindowAggregate(proj, ("i",), "ts", TimeWindow(3_600_000_000, 600_000_000), (AggCall("first", f, "first_f", order=ts),))
    tum = N.TimeWindowAggregate(proj, (), "ts", TimeWindow(60_000_000, 60_000_000), (count,))
    join = N.Join(N.Project(agg, (("i", i), ("n", Column("n", T.Int64)))), ev, "left", (("i", "k"),))
    union = N.Union((N.Project(tw, (("i", i),)), N.Project(tum, (("i", Literal(None, T.Int64)),)), N.Project(ev, (("i", Column("k", T.Int64)),))))
    asof = N.AsOfJoin(
        proj, ev, (("i", "k"),), "ts", "t",
        ((Frame(86_400_000_000 * 4, tile=86_400_000_000), (AggCall("sum", Column("x", T.Float64), "xs"),)),),
        row_id="s", lowering="tiles", tile=86_400_000_000, estimates=(("range_join", 0.25), ("tiles", 1.5e-7), ("union", math.inf)),
        unique_times=True,
    )
    asof2 = N.AsOfJoin(
        src, ev, (("i", "k"),), "ts", "t", ((Frame(None, upper_inclusive=False), (AggCall("last", Column("x", T.Float64), "lx", order=Column("t", T.Timestamp)),)),),
        lowering="asof", no_nulls=True,
    )
    # An interval join with every optional field set (a lookup too: the format reads each alone).
    ev2 = N.Source("ev2", Schema.of([("k2", T.Int64), ("t2", T.Timestamp)]), "t2")
    interval = N.Join(ev, ev2, "left", (("k", "k2"),), "t", "t2", 600_000_000, 0, lookup=True)
    return tuple(N.Sink(n, f"out {j} ü") for j, n in enumerate((win, join, union, asof, asof2, proj, interval)))


def test_every_node_kind_round_trips_and_shared_subplans_stay_shared() -> None:
    sinks = every_node_kind()
    doc = S.nodes_to_dict(sinks)
    kinds = {e["kind"] for e in doc["nodes"]}
    assert kinds == set(S.NODE_KINDS)
    assert sum(e["kind"] == "Source" for e in doc["nodes"]) == 3  # each distinct node once
    back = S.nodes_from_dict(json.loads(S.dumps(doc)))
    assert back == sinks
    assert rp.Plan(back).explain(schema=True) == rp.Plan(sinks).explain(schema=True)
    same_sql(rp.Plan(sinks[:4]), rp.Plan(back[:4]))
    # ids are positions, inputs first
    for j, e in enumerate(doc["nodes"]):
        assert e["id"] == j
        refs = [e[k] for k in ("input", "left", "right", "spine", "events") if k in e] + e.get("members", [])
        assert all(r < j for r in refs)
    assert S.node_from_dict(S.node_to_dict(sinks[0])) == sinks[0]


def test_the_format_covers_every_field() -> None:
    """A field added to an IR class without being written would be lost silently: name them all."""
    # Per kind, every key any of its nodes wrote: fields written only when set (a join's
    # interval bounds) are set on one of them.
    entries: dict[str, set[str]] = {}
    for e in S.nodes_to_dict(every_node_kind())["nodes"]:
        entries.setdefault(e["kind"], set()).update(e)
    for kind in S.NODE_KINDS:
        cls = getattr(N, kind)
        assert entries[kind] - {"id", "kind"} == set(S._field_names(cls, when_set=True)), kind
    written = {
        AggCall: set(S.aggcall_to_dict(AggCall("count", None, "n"))) | {"dtype", "_hash", "_columns"},
        Frame: set(S.frame_to_dict(Frame(1))),
        TimeWindow: set(S.time_window_to_dict(TimeWindow(1, 1))),
    }
    for cls, keys in written.items():
        assert keys == set(S._field_names(cls)), cls
    plan = placed_plan()
    doc = S.plan_to_dict(plan)
    assert set(doc) - {"relplan", "kind", "nodes"} == set(S._field_names(rp.Plan))
    p = doc["placement"]
    from relplan.rules.placement import Alternative, FeaturePlacement, Placement

    assert set(p) == set(S._field_names(Placement))
    assert set(p["knobs"]) == set(S._field_names(rp.Knobs))
    assert set(p["features"][0]) == set(S._field_names(FeaturePlacement))
    assert set(p["features"][0]["alternatives"][0]) == set(S._field_names(Alternative))
    assert set(p["config"]) == set(S._field_names(rp.OptimizerConfig))
    assert set(p["config"]["statistics"]) == set(S._field_names(rp.Statistics))
    assert set(p["config"]["statistics"]["sources"][0][1]) == set(S._field_names(rp.SourceStats))
    from relplan.compiler.dsl import FeatureBody
    from relplan.rules.driver import TraceEntry

    fd = doc["features"][0]
    assert set(fd) - {"body"} == set(S._field_names(rp.Feature)) - {"body"}
    assert set(fd["body"]) == set(S._field_names(FeatureBody))
    assert set(fd["body"]["spec"]) == set(S._field_names(rp.WindowSpec))
    assert S._field_names(TraceEntry) == ("pass_no", "rule", "removed_nodes", "added_nodes")  # pass, rule, removed, added
    assert set(doc["trace"][0]) == {"pass", "rule", "removed", "added"}


# ---- features and sources -----------------------------------------------------------------


class Payments(rp.Source):
    account_id: rp.Int64 = rp.key()
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time(lateness="10m")


class Clicks(rp.Source, name="clicks ü", bounded=False):
    user: rp.Int64 = rp.key()
    schema: rp.String  # a column named like an rp.Source method
    when: rp.Timestamp = rp.event_time()
    day: rp.Date


@rp.transformation(owner="risk-team", tags=["fraud", "payments"])
def payment_count(p: Payments, wspec: rp.WindowSpec):
    """Payments of the account in the window."""
    return p.groupby("account_id").window(wspec).count()


@rp.transformation
def failed_amount(p: Payments, wspec: rp.WindowSpec):
    return p[(p.status == "failed") & p.merchant.isin(["a", ODD])].groupby("account_id")["amt"].window(wspec).sum()


@rp.transformation
def stats(p: Payments, wspec: rp.WindowSpec):
    q = p.assign(cents=(p.amt * 100).fillna(0.0).astype(rp.Int64), big=p.amt > 100)
    return q[~q.big | q.status.isnull()].groupby(["account_id", "merchant"]).window(wspec).agg(
        total=("cents", "sum"), n="count", last_status=("status", "last"), first_amt=("amt", "first"),
        spread=("amt", "std"),
    )


@rp.transformation
def click_count(c: Clicks, wspec: rp.WindowSpec):
    return c[c.day >= "2024-01-01"].groupby("user")["schema"].window(wspec).nunique()


def all_features() -> list[rp.Feature]:
    return [
        payment_count(window=rp.sliding("1h"), description="how busy", tags="x"),
        payment_count(window=rp.sliding("30d")),
        failed_amount(window=rp.sliding("1d"), owner="ops"),
        stats(window=rp.lifetime(), name="stats_all"),
        stats(window=rp.tumbling("1d")),
        failed_amount(window=rp.hopping("2h", "30m")),
        click_count(window=rp.sliding("7d")),
    ]


def metadata(f: rp.Feature) -> tuple[Any, ...]:
    return (f.name, f.transformation, f.defined_at, f.called_at, f.description, f.owner, f.tags, f.body.location)


@pytest.fixture
def fresh_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the source classes written in this process: reading rebuilds them."""
    monkeypatch.setattr(S, "_SOURCE_CLASSES", weakref.WeakValueDictionary())


def read_in_fresh_process(texts: list[str]) -> list[rp.Feature]:
    """The features of ``texts`` as a process that never saw their classes reads them."""
    docs = [json.loads(t) for t in texts]
    S._SOURCE_CLASSES.clear()
    return [S.feature_from_dict(d) for d in docs]


def test_features_round_trip_with_metadata_and_compile_to_the_same_plan(fresh_classes: None) -> None:
    feats = all_features()
    assert feats[0].description == "how busy" and feats[0].owner == "risk-team" and feats[0].tags == ("x",)
    assert feats[1].description == "Payments of the account in the window." and feats[1].tags == ("fraud", "payments")
    texts = [f.to_json() for f in feats]
    back = read_in_fresh_process(texts)
    for a, z in zip(feats, back):
        assert metadata(z) == metadata(a)
        assert z.body.keys == a.body.keys and z.body.mask == a.body.mask and z.body.aggs == a.body.aggs
        assert z.spec == a.spec and z.columns == a.columns
        assert z.source is not a.source and z.source.node() == a.source.node()
        assert z.to_json() == a.to_json()
    # one class per source document, in the rebuilt features too
    assert back[0].source is back[1].source is back[2].source is back[3].source
    assert back[6].source.source_name == "clicks ü" and back[6].source.__name__ == "Clicks"
    assert back[6].source.node().bounded is False
    plan, plan_back = rp.compile(feats), rp.compile(back)
    assert plan_back.outputs == plan.outputs
    assert plan_back.explain(verbose=True) == plan.explain(verbose=True)
    same_sql(plan, plan_back)


def test_a_feature_read_back_in_the_process_that_wrote_it_equals_it() -> None:
    feats = all_features()
    back = [rp.Feature.from_json(f.to_json()) for f in feats]
    assert back == feats
    assert all(z.source is a.source for a, z in zip(feats, back))


def test_features_read_back_return_the_same_rows(fresh_classes: None) -> None:
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {"account_id": k % 3, "merchant": ("a", ODD, "b")[k % 3], "amt": [5.0, None, 150.0, 0.5][k % 4],
         "status": ("failed", "ok", None)[k % 3], "ts": base + dt.timedelta(minutes=17 * k, microseconds=k)}
        for k in range(40)
    ]
    tables = {"Payments": pa.Table.from_pylist(rows, schema=Payments.to_arrow_schema())}
    feats = [f for f in all_features() if f.source is Payments]
    back = read_in_fresh_process([f.to_json() for f in feats])
    expected = rp.execute_all(rp.compile(feats), "duckdb", tables=tables)
    got = rp.execute_all(rp.compile(back), "duckdb", tables=tables)
    assert list(got) == list(expected) and all(t.num_rows for t in got.values())
    assert diff.differences(expected, got) == []


def test_source_classes_round_trip(fresh_classes: None) -> None:
    for cls in (Payments, Clicks):
        text = cls.to_json()
        assert rp.Source.from_json(text) is cls  # written in this process: the class itself
        S._SOURCE_CLASSES.clear()
        new = rp.Source.from_json(text)
        assert new is not cls and issubclass(new, rp.Source)
        assert new.node() == cls.node() and new.source_name == cls.source_name and new.__name__ == cls.__name__
        assert new.schema() == cls.schema() and new.to_arrow_schema() == cls.to_arrow_schema()
        assert rp.Source.from_json(text) is new  # the same document: the same class
        assert new.to_json() == text
    # a key named like an rp.Source method: the rebuilt class keeps the method
    doc = S.source_to_dict(Clicks)
    doc["keys"] = ["user", "schema"]
    odd = S.source_from_dict(doc)
    assert odd.node().keys == ("user", "schema") and odd.schema() == Clicks.schema()
    arrow = pa.schema([("k", pa.int64()), ("t", pa.timestamp("us")), ("名前", pa.string())])
    made = rp.Source.from_arrow_schema("From Arrow", arrow, event_time="t", lateness="1m", keys=("k", "名前"))
    text = made.to_json()
    S._SOURCE_CLASSES.clear()
    again = rp.Source.from_json(text)
    assert again is not made and again.node() == made.node()


def test_a_source_document_reads() -> None:
    doc = S.source_to_dict(Payments)
    assert doc == {
        "relplan": 1, "kind": "source", "class_name": "Payments", "name": "Payments",
        "columns": [["account_id", "Int64"], ["merchant", "String"], ["amt", "Float64"], ["status", "String"],
                    ["ts", "Timestamp"]],
        "event_time": "ts", "lateness": 600_000_000, "bounded": True, "keys": ["account_id"],
    }
    assert Payments.to_json() == S.dumps(doc)
    assert '\n    ["account_id", "Int64"],\n' in Payments.to_json()  # pairs on one line each: diffs well


# ---- (c) deep plans ------------------------------------------------------------------------


class Transactions(rp.Source):
    cc_num: rp.Int64 = rp.key()
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation
def amount(tx: Transactions, wspec: rp.WindowSpec, key: str = "cc_num", agg: str = "sum", failed: bool = False):
    rows = tx[tx.status == "failed"] if failed else tx
    by_key = rows.groupby(key)
    return by_key.window(wspec).count() if agg == "count" else getattr(by_key["amt"].window(wspec), agg)()


def scaling_features(n: int) -> list[rp.Feature]:
    """The workload of bench/test_compile_scaling_bench.py."""
    keys, aggs = ("cc_num", "account_id", "merchant"), ("count", "sum", "mean", "max")
    return [
        amount(window=rp.sliding(f"{j // 24 + 1}h"), key=keys[j % 3], agg=aggs[(j // 3) % 4],
               failed=bool((j // 12) % 2), name=f"f{j}")
        for j in range(n)
    ]


def test_a_plan_of_a_thousand_stacked_features_round_trips() -> None:
    feats = scaling_features(1_000)
    plan = rp.compile(feats)
    depth, n = 0, plan.outputs[0]
    while n.inputs:
        n, depth = n.inputs[0], depth + 1
    assert depth > sys.getrecursionlimit()
    back = round_trip(plan)
    assert back.outputs == plan.outputs and back.features == plan.features
    assert back.explain() == plan.explain()
    optimized = rp.optimize(plan)
    back = round_trip(optimized)
    assert back.outputs == optimized.outputs
    assert back.explain(verbose=True) == optimized.explain(verbose=True)


# ---- (d) optimized, placed and point-in-time plans ----------------------------------------

STATS = rp.Statistics({
    "Payments": rp.SourceStats(
        rows=10_000_000, distinct={"account_id": 100_000, "merchant": 5_000, "status": 3}, spans={"ts": 50_000 * 10**6},
        lateness={0.0: 0, 0.9: 0, 0.99: "20s", 0.999: "2m", 1.0: "10m"}, unique=[("account_id", "ts")],
    ),
    "clicks ü": rp.SourceStats(rows=1_000, rate=2.5, lateness={1.0: 0}),
})


def placed_plan(knobs: rp.Knobs | None = None) -> rp.Plan:
    feats = [f for f in all_features() if f.source is Payments]
    knobs = knobs or rp.Knobs(
        max_staleness="5m", max_missed=0.001, state_cost=1, max_state="50GB",
        features={"stats_all": rp.Knobs(placement="batch", schedule="1h", batch_engine="spark")},
    )
    return rp.optimize(rp.compile(feats), statistics=STATS, knobs=knobs, disable=["merge_filters", "merge_projections", "simplify_expressions"])


@pytest.mark.parametrize("knobs", [
    None,
    rp.Knobs(priority="latency", allowed_lateness=0),
    rp.Knobs(priority="correctness", max_cost=1e6, allowed_lateness="30s"),
    rp.Knobs(placement="streaming_consistent"),
], ids=["own-knobs", "latency", "correctness", "forced"])
def test_placed_plans_round_trip_with_their_placement_and_deployment(knobs: rp.Knobs | None) -> None:
    plan = placed_plan(knobs)
    back = round_trip(plan)
    assert back.outputs == plan.outputs and back.features == plan.features
    assert back.placement == plan.placement and back.placement.config == plan.placement.config
    assert back.explain() == plan.explain()
    assert back.explain(verbose=True) == plan.explain(verbose=True)
    assert json.dumps(back.placement.to_dict()) == json.dumps(plan.placement.to_dict())
    assert back.deployment().to_json() == plan.deployment().to_json()


def test_an_optimized_plan_round_trips_with_its_trace() -> None:
    plan = rp.optimize(rp.compile(all_features()))
    assert plan.trace
    back = round_trip(plan)
    assert back.optimized and not back.placement
    assert [(t.pass_no, t.rule, t.removed_nodes, t.added_nodes) for t in back.trace] == [
        (t.pass_no, t.rule, t.removed_nodes, t.added_nodes) for t in plan.trace
    ]
    assert back.explain(verbose=True) == plan.explain(verbose=True)
    same_sql(plan, back)
    unoptimized = round_trip(rp.compile(all_features()))
    assert not unoptimized.optimized and unoptimized.explain_trace() == "(not optimized)"


def test_point_in_time_plans_round_trip_with_their_lowering() -> None:
    feats = [failed_amount(window=rp.sliding("7d")), payment_count(window=rp.sliding("1h")),
             rp.latest(Payments, "amt", by="account_id", ttl="1d")]
    spine = pa.schema([("account_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("label", pa.int64())])
    stats = rp.Statistics({
        "pitc_spine": rp.SourceStats(rows=100_000),
        "Payments": rp.SourceStats(rows=5_000_000, distinct={"account_id": 5}, spans={"ts": 60 * 86_400_000_000},
                                   unique=[("account_id", "ts")]),
    })
    plan = rp.pitc_plan(spine, feats, statistics=stats)
    text = plan.explain()
    assert "lowering=tiles tiles=" in text and "estimates=[" in text and "unique_times" in text
    back = round_trip(plan)
    assert back.outputs == plan.outputs
    assert back.explain(verbose=True) == plan.explain(verbose=True)
    same_sql(plan, back)


# ---- (e) determinism ---------------------------------------------------------------------

SCRIPT = f"""
import hashlib, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import test_serialize as t
plan = t.placed_plan()
docs = [plan.to_json(), plan.to_json(canonical=True), t.rp.compile(t.all_features()).to_json()]
docs += [f.to_json() for f in t.all_features()] + [t.Clicks.to_json()]
docs.append(t.S.canonical_json(t.S.nodes_to_dict(t.every_node_kind())))
print(hashlib.sha256("\\x00".join(docs).encode()).hexdigest())
"""


def test_the_text_is_the_same_under_any_hash_seed() -> None:
    digests = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, cwd=REPO / "tests")
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    # the features' locations name this file the same way in-process
    docs = [placed_plan().to_json(), placed_plan().to_json(canonical=True), rp.compile(all_features()).to_json()]
    docs += [f.to_json() for f in all_features()] + [Clicks.to_json()]
    docs.append(S.canonical_json(S.nodes_to_dict(every_node_kind())))
    assert hashlib.sha256("\x00".join(docs).encode()).hexdigest() in digests


def test_canonical_json_is_compact_sorted_and_unescaped() -> None:
    assert S.canonical_json({"b": [1, 2.0, None], "a": "日本 \"x\""}) == '{"a":"日本 \\"x\\"","b":[1,2.0,null]}'
    text = rp.compile(all_features()[:2]).to_json()
    assert json.loads(text) == json.loads(rp.compile(all_features()[:2]).to_json(canonical=True))
    assert text.startswith('{\n  "features": [')


# ---- (f) errors ---------------------------------------------------------------------------


def plan_doc() -> dict[str, Any]:
    feats = all_features()
    return json.loads(rp.compile([feats[0], feats[1], feats[4]]).to_json())  # Filter, WindowAggregate, TimeWindowAggregate


def find(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e for e in doc["nodes"] if e["kind"] == kind)


def read(doc: Any) -> rp.Plan:
    return rp.Plan.from_json(json.dumps(doc))


def test_a_newer_format_version_is_refused_with_both_versions() -> None:
    doc = plan_doc()
    doc["relplan"] = 7
    with pytest.raises(FormatError, match="written by a newer relplan: format version 7, this relplan reads up to 1"):
        read(doc)
    for bad in (0, "1", 1.0, None, True):
        doc["relplan"] = bad
        with pytest.raises(FormatError, match="format version .* is not a positive integer"):
            read(doc)
    del doc["relplan"]
    with pytest.raises(FormatError, match="no 'relplan' field"):
        read(doc)


@pytest.mark.parametrize("text, message", [
    ("", "not JSON"),
    ("{", "not JSON"),
    ("[1, 2]", "expected a JSON object, got a list"),
    ('"plan"', "expected a JSON object, got a string"),
    ('{"relplan": 1, "kind": "plan", "nodes": [], "outputs": [], "features": [], "optimized": NaN}', "NaN is not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"relplan": 1, "kind": "recipe"}', "unknown kind 'recipe'"),
    ('{"relplan": 1, "kind": "feature"}', "expected a plan document, got a feature document"),
])
def test_text_that_is_no_plan_document_is_named(text: Any, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        rp.Plan.from_json(text)


def test_a_wrong_kind_is_named_for_every_reader() -> None:
    with pytest.raises(FormatError, match="expected a feature document, got a source document"):
        rp.Feature.from_json(Payments.to_json())
    with pytest.raises(FormatError, match="expected a source document, got a feature document"):
        rp.Source.from_json(all_features()[0].to_json())
    with pytest.raises(FormatError, match="expected a nodes document, got a plan document"):
        S.nodes_from_dict(plan_doc())


def test_a_missing_field_is_named_with_its_entry() -> None:
    doc = plan_doc()
    del find(doc, "WindowAggregate")["order"]
    with pytest.raises(FormatError, match=r"nodes\[\d+\] \(WindowAggregate\): missing field 'order'"):
        read(doc)
    doc = plan_doc()
    del doc["outputs"]
    with pytest.raises(FormatError, match="plan document: missing field 'outputs'"):
        read(doc)
    doc = plan_doc()
    del doc["features"][1]["body"]["spec"]["size"]
    with pytest.raises(FormatError, match=r"features\[1\] \(feature 'payment_count_30d'\) body spec: missing field 'size'"):
        read(doc)
    fdoc = json.loads(all_features()[0].to_json())
    del fdoc["body"]["source"]["columns"]
    with pytest.raises(FormatError, match="body source: missing field 'columns'"):
        rp.Feature.from_json(json.dumps(fdoc))


def test_a_dangling_node_id_is_named() -> None:
    doc = plan_doc()
    entry = find(doc, "Filter")
    entry["input"] = entry["id"]  # itself: not an earlier entry
    with pytest.raises(FormatError, match=r"\(Filter\): field 'input' refers to node \d+, which is no earlier entry \(a dangling node id"):
        read(doc)
    doc = plan_doc()
    doc["outputs"] = [len(doc["nodes"]) + 5]
    with pytest.raises(FormatError, match=r"outputs\[0\] refers to node \d+, which is not in 'nodes' \(a dangling node id\)"):
        read(doc)
    doc = plan_doc()
    doc["outputs"] = [0]
    with pytest.raises(FormatError, match=r"outputs\[0\] is a Source node, but a plan's outputs are Sink nodes"):
        read(doc)
    doc = plan_doc()
    find(doc, "Sink")["input"] = "0"
    with pytest.raises(FormatError, match="field 'input' must be a node id"):
        read(doc)


def test_a_bad_type_name_is_named() -> None:
    doc = plan_doc()
    doc["nodes"][0]["columns"][0][1] = "Integer"
    with pytest.raises(FormatError, match=r"nodes\[0\] \(Source\) columns\[0\]: unknown type name 'Integer'; the relplan types are Int64"):
        read(doc)
    with pytest.raises(FormatError, match="unknown type name 'int'"):
        S.expr_from_dict({"kind": "Column", "name": "x", "type": "int"})


def test_unknown_kinds_are_named() -> None:
    doc = plan_doc()
    find(doc, "Filter")["kind"] = "Sample"
    with pytest.raises(FormatError, match=r"unknown node kind 'Sample'; the kinds are Source, Filter"):
        read(doc)
    doc = plan_doc()
    find(doc, "Filter")["predicate"]["kind"] = "Like"
    with pytest.raises(FormatError, match=r"\(Filter\) predicate: unknown expression kind 'Like'"):
        read(doc)
    with pytest.raises(FormatError, match="unknown literal value_type 'decimal'"):
        S.expr_from_dict({"kind": "Literal", "type": "Float64", "value_type": "decimal", "value": "1.5"})
    with pytest.raises(FormatError, match="unknown window kind 'session'"):
        doc = plan_doc()
        doc["features"][0]["body"]["spec"]["kind"] = "session"
        read(doc)


def test_a_node_that_fails_its_own_validation_names_the_entry() -> None:
    doc = plan_doc()
    find(doc, "Filter")["predicate"] = {"kind": "Column", "name": "amt", "type": "Float64"}
    with pytest.raises(FormatError, match=r"nodes\[\d+\] \(Filter\) is not valid: filter must be boolean, but amt is Float64"):
        read(doc)
    doc = plan_doc()
    find(doc, "WindowAggregate")["keys"] = ["nope"]
    with pytest.raises(FormatError, match=r"\(WindowAggregate\) is not valid: unknown column 'nope'"):
        read(doc)
    doc = plan_doc()
    find(doc, "WindowAggregate")["windows"][0]["frame"]["lower"] = -1
    with pytest.raises(FormatError, match=r"frame is not valid: frame lower offset -1us must exceed"):
        read(doc)
    doc = plan_doc()
    find(doc, "Filter")["predicate"]["left"] = {"kind": "Literal", "type": "String", "value_type": "str", "value": 1}
    with pytest.raises(FormatError, match=r"field 'value' must be a string \(value_type str\), got a number 1"):
        read(doc)
    doc = plan_doc()
    find(doc, "Filter")["predicate"] = {"kind": "Binary", "op": "=", "left": {"kind": "Literal", "type": "String", "value_type": "str", "value": "a"},
                                        "right": {"kind": "Literal", "type": "Int64", "value_type": "int", "value": 1}}
    with pytest.raises(FormatError, match=r"\(Filter\) predicate \(Binary\) is not valid: cannot compare String with Int64"):
        read(doc)
    doc = plan_doc()
    doc["nodes"][0]["id"] = 3
    with pytest.raises(FormatError, match=r"its id is 3, but a node's id is its position in the list \(0\)"):
        read(doc)
    fdoc = json.loads(all_features()[0].to_json())
    fdoc["name"] = "no spaces"
    with pytest.raises(FormatError, match="feature name 'no spaces' must be an identifier"):
        rp.Feature.from_json(json.dumps(fdoc))
    fdoc = json.loads(all_features()[2].to_json())
    fdoc["body"]["aggs"][0][1]["arg"]["name"] = "amount"
    with pytest.raises(FormatError, match=r"body aggregate '_' is not valid: unknown column 'amount'"):
        rp.Feature.from_json(json.dumps(fdoc))


def test_deeply_nested_documents_are_errors_not_crashes() -> None:
    depth = 50_000
    text = '{"kind": "Unary", "op": "NOT", "operand": ' * depth + '{"kind": "Column", "name": "b", "type": "Bool"}' + "}" * depth
    doc = plan_doc()
    find(doc, "Filter")["predicate"] = "@"
    with pytest.raises(FormatError, match="nested too deeply"):
        rp.Plan.from_json(json.dumps(doc).replace('"@"', text))
    # the same as an object (built without JSON): read without recursion, refused by validation
    pred: dict[str, Any] = {"kind": "Column", "name": "status", "type": "String"}
    pred = {"kind": "Unary", "op": "IS NULL", "operand": pred}
    for _ in range(depth):
        pred = {"kind": "Unary", "op": "NOT", "operand": pred}
    find(doc, "Filter")["predicate"] = pred
    with pytest.raises(FormatError, match=r"\(Filter\) is not valid: it is nested too deeply"):
        S.plan_from_dict(doc)


def test_mistyped_fields_are_named() -> None:
    doc = plan_doc()
    doc["optimized"] = "yes"
    with pytest.raises(FormatError, match="field 'optimized' must be true or false, got a string 'yes'"):
        read(doc)
    doc = plan_doc()
    doc["nodes"][0]["keys"] = "account_id"
    with pytest.raises(FormatError, match=r"nodes\[0\] \(Source\): field 'keys' must be a list, got a string"):
        read(doc)
    doc = plan_doc()
    doc["nodes"] = {}
    with pytest.raises(FormatError, match="nodes must be a list of node entries"):
        read(doc)
    doc = plan_doc()
    doc["nodes"][1] = 5
    with pytest.raises(FormatError, match=r"nodes\[1\]: expected an object, got a number 5"):
        read(doc)


def test_what_cannot_be_written_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="lone surrogate"):
        S.dumps(S.expr_to_dict(Literal("\ud800")))
    with pytest.raises(FormatError, match="expected a class declared as a subclass of rp.Source"):
        rp.Source.to_json()
    with pytest.raises(FormatError, match="cannot write literal"):
        S.expr_to_dict(Literal(b"bytes", T.String))
    with pytest.raises(FormatError, match="cannot write literal 'x' typed Int64: a str literal is never Int64"):
        S.expr_to_dict(Literal("x", T.Int64))
    with pytest.raises(FormatError, match="a str literal cannot have type Int64"):
        S.expr_from_dict({"kind": "Literal", "type": "Int64", "value_type": "str", "value": "x"})
