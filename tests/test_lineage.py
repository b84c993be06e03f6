"""Column lineage: per node kind (ir/lineage.py), per feature and job (catalog/lineage.py),
cross-checked against sqlglot's lineage of the SQL relplan emits, rendered, and at scale.

The cross-check (``test_lineage_agrees_with_sqlglot``) draws plans from
tests/plan_strategies.py (Filter, Project, Aggregate, WindowAggregate,
TimeWindowAggregate, Join and Union over two sources), emits each output's DuckDB
SQL (one ``WITH ... SELECT`` per output, a CTE per node, unoptimized) and asks
``sqlglot.lineage`` which table columns each output column's select item reaches.
sqlglot follows an item's expression through CTEs, ``SELECT *``, join select lists
and UNION branches, but no clause outside the expression. So it sees

- every "value" step: projected expressions, aggregate arguments, columns passed
  through (a window's ``SELECT *``, a join's select list, union branches);
- the "rows" steps the lowering writes inside the select item: an aggregate's FILTER
  (lowered as ``agg(CASE WHEN filter THEN arg END)``) and its first/last order (a
  struct inside ARG_MIN/ARG_MAX); a window aggregate's partition keys and order
  (inside ``OVER (PARTITION BY ... ORDER BY EPOCH_US(order))`` and, for the keys,
  ``CASE WHEN key IS NULL THEN NULL ...``). The lowering names its windows
  (``OVER w0 ... WINDOW w0 AS (...)``) and sqlglot's lineage does not resolve
  named windows, so the test inlines them first (``_inline_named_windows``);

and it does not see WHERE (a Filter's predicate; the NULL-key guard of Aggregate
and TimeWindowAggregate), GROUP BY (their keys, and the time bucket their
aggregates are grouped by), JOIN ... ON (join keys), nor row sets (``count(*)``
names no column). One lowering detail on top: an aggregate over a frame that holds
no time at all, such as (t-1us, t), is emitted as the constant 0 or NULL under the
partition-key CASE, so sqlglot sees only its partition keys. Leaves that are not
table columns (``CAST(NULL AS ...)``) are not columns and are left out.

``_sqlglot_sees`` states exactly that per node kind, as a filter over the IR's own
steps (``output_lineage(keep=...)``); the test asserts, for every output column X:

1. sqlglot's columns of X == the IR lineage of X composed over the steps sqlglot sees;
2. sqlglot's columns of X are among the IR's sources of X (any role);
3. the IR's value sources of X are among sqlglot's (in plans without empty frames).

AsOfJoin is not drawn by the strategies (its SQL is a lowering of a different
subplan: spine rows sorted in among the events), so it is covered by the
hand-written case only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from sqlglot import exp
from sqlglot.lineage import lineage as sqlglot_lineage

import relplan as rp
from relplan.backends import get_backend
from relplan.backends.sql import _holds_no_time
from relplan.catalog.lineage import LineageGraph, lineage_graph
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.graph import walk
from relplan.ir.lineage import (
    ROWS,
    VALUE,
    ColumnRef,
    column_sources,
    output_lineage,
    plan_lineage,
    row_sources,
    sources_of,
)
from relplan.ir.nodes import (
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame, TimeWindow

from plan_strategies import plans

MINUTE = 60 * 1_000_000


def v(i: int, c: str | None) -> tuple[int, str | None, str]:
    return (i, c, VALUE)


def r(i: int, c: str | None) -> tuple[int, str | None, str]:
    return (i, c, ROWS)


def col(name: str, t: T.DataType = T.Int64) -> Column:
    return Column(name, t)


EV = Source(
    "ev",
    Schema.of([("k", T.Int64), ("g", T.Int64), ("x", T.Float64), ("s", T.String), ("ts", T.Timestamp)]),
    event_time="ts",
)
SP = Source("sp", Schema.of([("sk", T.Int64), ("st", T.Timestamp), ("label", T.Bool)]), event_time="st")
STATUS_OK = Binary("=", col("s", T.String), Literal("ok"))


# ---- (a) one node at a time ---------------------------------------------------------------


def test_source_is_a_leaf() -> None:
    assert column_sources(EV) == {}
    assert row_sources(EV) == ()


def test_filter_every_column_reads_itself_and_the_predicate() -> None:
    n = Filter(EV, Binary("AND", STATUS_OK, Binary(">", col("k"), col("g"))))
    assert column_sources(n) == {
        "k": (v(0, "k"), r(0, "g"), r(0, "k"), r(0, "s")),
        "g": (v(0, "g"), r(0, "g"), r(0, "k"), r(0, "s")),
        "x": (v(0, "x"), r(0, "g"), r(0, "k"), r(0, "s")),
        "s": (v(0, "s"), r(0, "g"), r(0, "k"), r(0, "s")),
        "ts": (v(0, "ts"), r(0, "g"), r(0, "k"), r(0, "s")),
    }
    assert row_sources(n) == (r(0, None), r(0, "g"), r(0, "k"), r(0, "s"))
    assert all(isinstance(ref, ColumnRef) for refs in column_sources(n).values() for ref in refs)


def test_project_reads_its_expressions_and_a_literal_reads_the_rows() -> None:
    n = Project(EV, (("k", col("k")), ("y", Binary("+", col("x", T.Float64), col("g"))), ("one", Literal(1))))
    assert column_sources(n) == {"k": (v(0, "k"),), "y": (v(0, "g"), v(0, "x")), "one": (r(0, None),)}
    assert row_sources(n) == (r(0, None),)


def test_aggregate_keys_and_calls() -> None:
    n = Aggregate(EV, ("k", "g"), (
        AggCall("sum", col("x", T.Float64), "total", STATUS_OK),
        AggCall("count", None, "n"),
        AggCall("last", col("s", T.String), "latest", None, col("ts", T.Timestamp)),
        AggCall("count", None, "failed", Binary("=", col("k"), Literal(3))),  # a key in a FILTER: one ref
    ))
    assert column_sources(n) == {
        "k": (v(0, "k"), r(0, "g")),
        "g": (v(0, "g"), r(0, "k")),
        "total": (v(0, "x"), r(0, "s"), r(0, "g"), r(0, "k")),
        "n": (r(0, "g"), r(0, "k")),
        "latest": (v(0, "s"), r(0, "ts"), r(0, "g"), r(0, "k")),
        "failed": (r(0, "k"), r(0, "g")),
    }
    assert row_sources(n) == (r(0, None), r(0, "g"), r(0, "k"))
    # A global count(*) reads no column: the input's rows.
    assert column_sources(Aggregate(EV, (), (AggCall("count", None, "n"),))) == {"n": (r(0, None),)}


def test_window_aggregate_passes_rows_through_and_adds_aggregates() -> None:
    n = WindowAggregate(EV, ("k",), "ts", (
        (Frame(MINUTE), (AggCall("sum", col("x", T.Float64), "x_1m", STATUS_OK),)),
        (Frame(None), (AggCall("count", None, "n_all"),)),
    ))
    assert column_sources(n) == {
        "k": (v(0, "k"),), "g": (v(0, "g"),), "x": (v(0, "x"),), "s": (v(0, "s"),), "ts": (v(0, "ts"),),
        "x_1m": (v(0, "x"), r(0, "s"), r(0, "k"), r(0, "ts")),
        "n_all": (r(0, "k"), r(0, "ts")),
    }
    assert list(column_sources(n)) == list(n.schema.names)
    assert row_sources(n) == (r(0, None),)


def test_time_window_aggregate() -> None:
    n = TimeWindowAggregate(EV, ("k",), "ts", TimeWindow(5 * MINUTE, MINUTE), (
        AggCall("mean", col("x", T.Float64), "avg_x", STATUS_OK),
        AggCall("count", None, "n"),
    ))
    assert column_sources(n) == {
        "k": (v(0, "k"), r(0, "ts")),
        "window_start": (v(0, "ts"), r(0, "k")),
        "window_end": (v(0, "ts"), r(0, "k")),
        "avg_x": (v(0, "x"), r(0, "s"), r(0, "k"), r(0, "ts")),
        "n": (r(0, "k"), r(0, "ts")),
    }
    assert row_sources(n) == (r(0, None), r(0, "k"), r(0, "ts"))


def test_join_columns_read_themselves_and_both_sides_keys() -> None:
    n = Join(EV, SP, "left", (("k", "sk"),))
    keys = (r(0, "k"), r(1, "sk"))
    assert column_sources(n) == {
        "k": (v(0, "k"), *keys), "g": (v(0, "g"), *keys), "x": (v(0, "x"), *keys), "s": (v(0, "s"), *keys),
        "ts": (v(0, "ts"), *keys),
        "sk": (v(1, "sk"), *keys), "st": (v(1, "st"), *keys), "label": (v(1, "label"), *keys),
    }
    assert row_sources(n) == (r(0, None), r(1, None), *keys)


def test_union_columns_read_every_member() -> None:
    other = Filter(EV, STATUS_OK)
    n = Union((EV, other, EV))
    assert column_sources(n)["x"] == (v(0, "x"), v(1, "x"), v(2, "x"))
    assert row_sources(n) == (r(0, None), r(1, None), r(2, None))


def test_asof_join_spine_passes_through_aggregates_read_both_sides() -> None:
    n = AsOfJoin(SP, EV, (("sk", "k"),), "st", "ts", (
        (Frame(MINUTE), (AggCall("sum", col("x", T.Float64), "x_1m", STATUS_OK),
                         AggCall("first", col("g"), "first_g", None, col("ts", T.Timestamp)))),
    ))
    spine_and_events = (r(1, "k"), r(1, "ts"), r(0, "sk"), r(0, "st"))
    assert column_sources(n) == {
        "sk": (v(0, "sk"),), "st": (v(0, "st"),), "label": (v(0, "label"),),
        "x_1m": (v(1, "x"), r(1, "s"), *spine_and_events),
        "first_g": (v(1, "g"), r(1, "ts"), r(1, "k"), r(0, "sk"), r(0, "st")),  # its order first
    }
    assert row_sources(n) == (r(0, None),)
    g = plan_lineage(Sink(n, "training"))
    assert sources_of(g, "training", "x_1m") == {("ev", "x"), ("ev", "s"), ("ev", "k"), ("ev", "ts"), ("sp", "sk"), ("sp", "st")}
    assert sources_of(g, "training", "x_1m", role=VALUE) == {("ev", "x")}
    assert sources_of(g, "training", "label") == {("sp", "label")}


def test_sink_passes_through() -> None:
    n = Sink(Filter(EV, STATUS_OK), "out")
    assert column_sources(n) == {c: (v(0, c),) for c in EV.schema.names}
    assert row_sources(n) == (r(0, None),)


def test_every_node_kind_has_a_rule() -> None:
    from relplan.ir import nodes
    from relplan.ir.lineage import RULES

    kinds = {c for c in vars(nodes).values() if isinstance(c, type) and issubclass(c, Node) and c is not Node}
    assert kinds <= set(RULES)


# ---- composing over a plan ------------------------------------------------------------------


def test_roles_compose_along_paths() -> None:
    """value only if some path is value all the way; rows if any path has a rows step."""
    f = Filter(EV, STATUS_OK)
    p = Project(f, (("s", col("s", T.String)), ("y", Binary("*", col("x", T.Float64), Literal(2.0)))))
    a = Aggregate(p, ("s",), (AggCall("sum", col("y", T.Float64), "total"), AggCall("count", None, "n")))
    g = plan_lineage(Sink(a, "out"))
    roles = {(u[2], w[2]): d for u, w, d in g.edges(data="roles")}
    assert roles == {
        ("s", "s"): {VALUE, ROWS},  # its value, and the filter on it
        ("s", "total"): {ROWS},
        ("x", "total"): {VALUE},
        ("s", "n"): {ROWS},
    }
    # Every source column and every output column is a node, read or not.
    assert {n for n in g if n[0] == "source"} == {("source", "ev", c) for c in EV.schema.names}
    assert g.nodes["output", "out", "n"] == {"kind": "output", "name": "out", "column": "n"}


def test_count_star_over_a_filter_depends_on_the_predicate() -> None:
    a = Aggregate(Filter(EV, STATUS_OK), (), (AggCall("count", None, "n"),))
    assert sources_of(plan_lineage(Sink(a, "out")), "out", "n") == {("ev", "s")}


def test_shared_subplans_and_several_outputs() -> None:
    shared = Filter(EV, STATUS_OK)
    u = Union((shared, shared))
    outs = (Sink(u, "a"), Sink(Project(shared, (("k2", col("k")),)), "b"))
    lin = output_lineage(outs)
    assert lin["a", "k"] == {("ev", "k"): {VALUE}, ("ev", "s"): {ROWS}}
    assert lin["b", "k2"] == lin["a", "k"]
    with pytest.raises(rp.RelplanError, match="takes a plan or its Sink nodes"):
        plan_lineage([shared])


def test_deep_chain_has_no_recursion() -> None:
    """3,000 stacked windows: deeper than Python's recursion limit."""
    node: Node = EV
    for i in range(3000):
        node = WindowAggregate.of(node, ("k",), "ts", Frame(MINUTE), (AggCall("sum", col("x", T.Float64), f"a{i}"),))
    node = Project(node, (("last", col("a2999", T.Float64)), ("k", col("k"))))
    assert 3000 > sys.getrecursionlimit() / 2
    lin = output_lineage(Sink(node, "out"))
    assert lin["out", "last"] == {("ev", "x"): {VALUE}, ("ev", "k"): {ROWS}, ("ev", "ts"): {ROWS}}


# ---- (b) features, jobs ---------------------------------------------------------------------


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation
def failed_amount(tx: Transactions, wspec: rp.WindowSpec):
    return tx[tx.status == "failed"].groupby("account_id").window(wspec)["amt"].sum()


@rp.transformation
def total_amount(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].window(wspec).sum()


@rp.transformation
def merchant_stats(tx: Transactions, wspec: rp.WindowSpec):
    return tx.groupby("account_id").window(wspec).agg(n="count", merchants=("merchant", "nunique"))


@rp.transformation
def bucket_total(tx: Transactions, wspec: rp.WindowSpec):
    return tx.assign(bucket=tx.cc_num % 16).groupby("bucket")["amt"].window(wspec).sum()


FAILED_1H = failed_amount(window=rp.sliding("1h"))  # per event
FAILED_1D = failed_amount(window=rp.tumbling("1d"))  # per window
TOTAL_1H = total_amount(window=rp.sliding("1h"))
STATS_1D = merchant_stats(window=rp.sliding("1d"))
BUCKET_1H = bucket_total(window=rp.hopping("1h", "30m"))
FEATURES = [FAILED_1H, FAILED_1D, TOTAL_1H, STATS_1D, BUCKET_1H]
JOBS = {
    "tx_stream": ["failed_amount_1h", "total_amount_1h"],
    "tx_daily": ["failed_amount_tumble_1d", "merchant_stats_1d"],
    "serving": ["failed_amount_1h"],
}


@pytest.fixture(scope="module")
def graph() -> LineageGraph:
    return lineage_graph(FEATURES, JOBS)


def test_a_filtered_feature_reads_its_value_by_value_and_the_rest_as_rows(graph: LineageGraph) -> None:
    for f in (FAILED_1H, FAILED_1D):
        assert graph.reads(f.name) == [
            ("Transactions", "account_id", {ROWS}),
            ("Transactions", "amt", {VALUE}),
            ("Transactions", "status", {ROWS}),
            ("Transactions", "ts", {ROWS}),
        ]
    # The same through the IR alone: the compiled plan's output column.
    g = plan_lineage(rp.compile([FAILED_1H]))
    assert sources_of(g, "Transactions", "failed_amount_1h", role=VALUE) == {("Transactions", "amt")}
    assert sources_of(g, "Transactions", "failed_amount_1h", role=ROWS) == {
        ("Transactions", "status"), ("Transactions", "account_id"), ("Transactions", "ts")
    }


def test_features_without_a_filter_and_with_derived_keys(graph: LineageGraph) -> None:
    assert [(s, c) for s, c, _ in graph.reads("total_amount_1h")] == [
        ("Transactions", "account_id"), ("Transactions", "amt"), ("Transactions", "ts")
    ]
    # A derived key (cc_num % 16) decides partitions: cc_num is read as rows.
    assert ("Transactions", "cc_num", {ROWS}) in graph.reads("bucket_total_hop_1h_30m")
    # A feature of several columns reads what any of them reads; the edge says which.
    assert graph.reads("merchant_stats_1d") == [
        ("Transactions", "account_id", {ROWS}), ("Transactions", "merchant", {VALUE}), ("Transactions", "ts", {ROWS})
    ]
    edge = graph.graph.edges[("column", "Transactions", "merchant"), ("feature", "merchant_stats_1d")]
    assert edge["columns"] == ("merchant_stats_1d_merchants",)


def test_readers_of_a_column(graph: LineageGraph) -> None:
    assert graph.readers("Transactions", "status") == ["failed_amount_1h", "failed_amount_tumble_1d"]
    assert graph.readers("Transactions", "amt", role=VALUE) == [
        "bucket_total_hop_1h_30m", "failed_amount_1h", "failed_amount_tumble_1d", "total_amount_1h"
    ]
    assert graph.readers("Transactions", "amt", role=ROWS) == []
    assert graph.readers("Transactions", "merchant") == ["merchant_stats_1d"]
    assert graph.features_of_source("Transactions") == sorted(f.name for f in FEATURES)
    assert graph.columns("Transactions") == sorted(Transactions.__relplan_source__.schema.names)


def test_jobs_affected_and_downstream(graph: LineageGraph) -> None:
    assert graph.jobs_affected("failed_amount_1h") == ["serving", "tx_stream"]
    assert graph.jobs_affected("merchant_stats_1d") == ["tx_daily"]
    assert graph.jobs_affected("bucket_total_hop_1h_30m") == []
    assert graph.downstream(("column", "Transactions", "status")) == [
        ("feature", "failed_amount_1h"), ("feature", "failed_amount_tumble_1d"),
        ("job", "serving"), ("job", "tx_daily"), ("job", "tx_stream"),
    ]
    assert graph.downstream("merchant_stats_1d") == [("job", "tx_daily")]
    assert ("column", "Transactions", "merchant") in graph.upstream(("job", "tx_daily"))
    assert graph.features == sorted(f.name for f in FEATURES)
    assert graph.jobs == ["serving", "tx_daily", "tx_stream"]


def test_unknown_names_say_what_was_asked_and_what_is_close(graph: LineageGraph) -> None:
    with pytest.raises(rp.FeatureError, match=r"no feature 'failed_amount_1' .*did you mean 'failed_amount_1h'"):
        graph.reads("failed_amount_1")
    with pytest.raises(rp.SchemaError, match=r"no source 'Transaction' .*did you mean 'Transactions'"):
        graph.readers("Transaction", "amt")
    with pytest.raises(rp.SchemaError, match=r"source 'Transactions' has no column 'stauts'.*did you mean 'status'"):
        graph.readers("Transactions", "stauts")
    with pytest.raises(rp.RelplanError, match=r"no job 'tx_dialy'.*'tx_daily'"):
        graph.downstream(("job", "tx_dialy"))
    with pytest.raises(rp.RelplanError, match="is no lineage node"):
        graph.downstream(("table", "x"))
    with pytest.raises(rp.RelplanError, match="unknown lineage role"):
        graph.readers("Transactions", "amt", role="values")
    with pytest.raises(rp.FeatureError, match=r"job 'tx_daily' names feature 'merchant_stat_1d', which is not among"):
        lineage_graph(FEATURES, {"tx_daily": ["merchant_stat_1d"]})
    with pytest.raises(rp.FeatureError, match="takes features"):
        lineage_graph([failed_amount])


def test_no_jobs_and_a_job_given_one_name() -> None:
    g = lineage_graph([TOTAL_1H])
    assert g.jobs == [] and g.jobs_affected("total_amount_1h") == []
    g = lineage_graph([TOTAL_1H], {"one": "total_amount_1h"})
    assert g.jobs_affected("total_amount_1h") == ["one"]


def test_subgraph_for_one_feature(graph: LineageGraph) -> None:
    sub = graph.subgraph_for("merchant_stats_1d")
    assert sub.features == ["merchant_stats_1d"]
    assert sub.jobs == ["tx_daily"]
    assert sub.columns("Transactions") == ["account_id", "merchant", "ts"]
    assert graph.to_text(feature="merchant_stats_1d") == sub.to_text()
    assert graph.to_json(feature="merchant_stats_1d") == sub.to_json()
    assert graph.to_dot(feature="merchant_stats_1d") == sub.to_dot()


# ---- (c) against sqlglot --------------------------------------------------------------------

def _inline_named_windows(tree: exp.Expression) -> exp.Expression:
    """``agg OVER w ... WINDOW w AS (spec)`` -> ``agg OVER (spec)``: sqlglot's lineage
    does not look up named windows."""
    for select in tree.find_all(exp.Select):
        named = {w.this.name: w for w in select.args.get("windows") or []}
        if not named:
            continue
        for window in list(select.find_all(exp.Window)):
            alias = window.args.get("alias")
            if alias is None or alias.name not in named:
                continue
            spec = named[alias.name]
            window.set("alias", None)
            for part in ("partition_by", "order", "spec"):
                value = spec.args.get(part)
                window.set(part, [e.copy() for e in value] if isinstance(value, list) else value and value.copy())
        select.set("windows", None)
    return tree


def sqlglot_columns(sink: Sink) -> tuple[dict[str, set[tuple[str, str]]], str]:
    """Per output column, the (table, column) leaves sqlglot's lineage reaches; and the SQL.

    sqlglot normalizes DuckDB's identifiers to lower case (DuckDB resolves them
    case-insensitively), so names come back in lower case."""
    sql = get_backend("duckdb").to_sql((sink,), pretty=False)
    schema = {n.name: {c: "BIGINT" for c in n.schema.names} for n in walk(sink) if isinstance(n, Source)}  # names suffice
    tree = _inline_named_windows(sqlglot.parse_one(sql, dialect="duckdb"))
    out: dict[str, set[tuple[str, str]]] = {}
    for name, node in sqlglot_lineage(None, tree, schema=schema, dialect="duckdb").items():
        leaves = set()
        for n in node.walk():
            if not n.downstream and isinstance(n.source, exp.Table):  # a table column (not a literal)
                column = sqlglot.parse_one(n.name, dialect="duckdb")
                assert isinstance(column, exp.Column), n.name
                leaves.add((n.source.name, column.name))
        out[name] = leaves
    return out, sql


def _sqlglot_sees(node: Node, column: str | None, ref: ColumnRef) -> bool:
    """Whether sqlglot's lineage follows this step of the IR's (see the module docstring)."""
    if ref.column is None:  # a row set: no column in any expression
        return False
    if isinstance(node, WindowAggregate):
        for frame, aggs in node.windows:
            if any(a.name == column for a in aggs):
                # inside the select item: argument, FILTER, order, PARTITION BY, ORDER BY;
                # only the partition keys' NULL guard when the frame holds no time
                return not _holds_no_time(frame) or ref.column in node.keys
        return True  # passed through by SELECT *
    if isinstance(node, (Aggregate, TimeWindowAggregate)):
        for a in node.aggs:
            if a.name == column:  # the call's own columns; not its GROUP BY
                return ref.role == VALUE or ref.column in a.columns()
    return ref.role == VALUE  # WHERE, GROUP BY and JOIN ... ON are outside every select item


def _has_empty_frame(sinks: tuple[Sink, ...]) -> bool:
    return any(
        _holds_no_time(f) for n in walk(sinks) if isinstance(n, WindowAggregate) for f, _ in n.windows
    )


def _lower(pairs: Any) -> set[tuple[str, str]]:
    return {(t.lower(), c.lower()) for t, c in pairs}


def check_against_sqlglot(plan: rp.Plan) -> None:
    """The three assertions of the module docstring, for every output column of ``plan``."""
    full = output_lineage(plan)
    seen = output_lineage(plan, keep=_sqlglot_sees)
    empty_frames = _has_empty_frame(plan.outputs)
    for sink in plan.outputs:
        found, sql = sqlglot_columns(sink)
        assert list(found) == [c.lower() for c in sink.schema.names]
        for c in sink.schema.names:
            got = found[c.lower()]
            ir_all = _lower(full[sink.name, c])
            ir_value = _lower(k for k, roles in full[sink.name, c].items() if VALUE in roles)
            where = f"output column {sink.name}.{c} of\n{plan.explain()}\nSQL:\n{sql}"
            assert got == _lower(seen[sink.name, c]), where
            assert got <= ir_all, where
            if not empty_frames:
                assert ir_value <= got, where


@settings(
    max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(plan=plans(max_nodes=6))
def test_lineage_agrees_with_sqlglot(plan: rp.Plan) -> None:
    check_against_sqlglot(plan)


def test_compiled_features_agree_with_sqlglot() -> None:
    """Features as compile() makes them: stacked windows whose FILTER is the feature's
    mask, a filtered tumbling window, a hopping one over a derived key."""
    plan = rp.compile(FEATURES)
    kinds = {n.kind for n in walk(plan.outputs)}
    assert {"Filter", "Project", "WindowAggregate", "TimeWindowAggregate"} <= kinds
    check_against_sqlglot(plan)


def test_a_hand_made_plan_agrees_with_sqlglot() -> None:
    """Each kind once, deterministically: a union of both sources, a join, a global
    count(*), a window over a frame that holds no time, a hopping window."""
    u = Union((
        Project(EV, (("key", col("k")), ("val", col("x", T.Float64)), ("t", col("ts", T.Timestamp)))),
        Project(SP, (("key", col("sk")), ("val", Literal(None, T.Float64)), ("t", col("st", T.Timestamp)))),
    ))
    w = WindowAggregate(u, ("key",), "t", (
        (Frame(MINUTE), (AggCall("sum", col("val", T.Float64), "s1", Binary(">", col("val", T.Float64), Literal(0.0))),)),
        (Frame(1, False, 0, False), (AggCall("max", col("val", T.Float64), "never"),)),  # (t-1us, t): no time
    ))
    j = Join(Filter(EV, STATUS_OK), SP, "inner", (("k", "sk"),))
    plan = rp.Plan((
        Sink(w, "windows"),
        Sink(Aggregate(j, (), (AggCall("count", None, "n"), AggCall("count_distinct", col("label", T.Bool), "labels"))), "counts"),
        Sink(TimeWindowAggregate(j, ("g",), "st", TimeWindow(2 * MINUTE, MINUTE), (AggCall("count", None, "n"),)), "hops"),
    ))
    check_against_sqlglot(plan)
    lin = output_lineage(plan)
    assert set(lin["windows", "val"]) == {("ev", "x")}  # the literal NULL member reads nothing
    assert set(lin["windows", "key"]) == {("ev", "k"), ("sp", "sk")}
    assert lin["counts", "n"] == {("ev", "s"): {ROWS}, ("ev", "k"): {ROWS}, ("sp", "sk"): {ROWS}}


@settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(plan=plans())
def test_the_optimizer_never_adds_a_dependency(plan: rp.Plan) -> None:
    """Rules rewrite a plan into an equal one; they may drop a dependency (folding
    ``CASE WHEN g = g THEN v ELSE v END`` to ``v``), never add one or a role."""
    before = output_lineage(plan)
    after = output_lineage(rp.optimize(plan))
    assert before.keys() == after.keys()
    for key, deps in after.items():
        for src, roles in deps.items():
            assert roles <= before[key].get(src, frozenset()), (key, src)


# ---- (d) rendering --------------------------------------------------------------------------


def test_text_is_a_readable_deterministic_tree(graph: LineageGraph) -> None:
    again = lineage_graph(list(reversed(FEATURES)), dict(reversed(list(JOBS.items()))))
    assert again.to_text() == graph.to_text()
    assert graph.to_text(feature="failed_amount_1h") == textwrap.dedent("""\
        features (1):
          failed_amount_1h
            reads Transactions.account_id  rows
                  Transactions.amt         value
                  Transactions.status      rows
                  Transactions.ts          rows
            jobs  serving, tx_stream
        sources (1):
          Transactions
            account_id  <- failed_amount_1h (rows)
            amt         <- failed_amount_1h (value)
            status      <- failed_amount_1h (rows)
            ts          <- failed_amount_1h (rows)
        jobs (2):
          serving: failed_amount_1h
          tx_stream: failed_amount_1h""")
    assert "    cc_num      <- bucket_total_hop_1h_30m (rows)" in graph.to_text()


def test_json_is_deterministic_and_complete(graph: LineageGraph) -> None:
    again = lineage_graph(list(reversed(FEATURES)), dict(reversed(list(JOBS.items()))))
    text = graph.to_json()
    assert text == again.to_json()
    data = json.loads(text)
    assert {tuple(n["id"]) for n in data["nodes"]} == set(graph.graph)
    assert len(data["edges"]) == graph.graph.number_of_edges()
    edge = next(e for e in data["edges"] if e["from"] == ["column", "Transactions", "status"]
                and e["to"] == ["feature", "failed_amount_1h"])
    assert edge == {"from": ["column", "Transactions", "status"], "to": ["feature", "failed_amount_1h"],
                    "roles": ["rows"], "columns": ["failed_amount_1h"]}
    stats = next(n for n in data["nodes"] if n["id"] == ["feature", "merchant_stats_1d"])
    assert stats["columns"] == ["merchant_stats_1d_n", "merchant_stats_1d_merchants"]


def test_dot_has_a_cluster_per_layer_and_parses(graph: LineageGraph) -> None:
    dot = graph.to_dot()
    assert dot == lineage_graph(list(reversed(FEATURES)), JOBS).to_dot()
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    for cluster in ("cluster_columns", "cluster_source_0", "cluster_features", "cluster_jobs"):
        assert f"subgraph {cluster} {{" in dot
    assert '"column:Transactions.status" -> "feature:failed_amount_1h" [label="rows", style=dashed];' in dot
    assert '"column:Transactions.amt" -> "feature:failed_amount_1h" [label="value"];' in dot
    assert '"feature:failed_amount_1h" -> "job:serving";' in dot
    assert dot.count("{") == dot.count("}")
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tcanon"], input=dot.encode(), capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
    else:
        with warnings.catch_warnings():  # pydot's parser uses pyparsing's old names
            warnings.simplefilter("ignore", DeprecationWarning)
            pydot = pytest.importorskip("pydot")
            (parsed,) = pydot.graph_from_dot_data(dot)
        assert parsed.get_name() == "lineage"


def test_dot_quotes_odd_names() -> None:
    class Odd(rp.Source, name='we"ird\\src'):
        a: rp.Int64
        ts: rp.Timestamp = rp.event_time()

    @rp.transformation
    def odd_count(o: Odd, wspec: rp.WindowSpec):
        return o.groupby("a").window(wspec).count()

    g = lineage_graph([odd_count(window=rp.sliding("1h"))], {'job "quoted"\nname': ["odd_count_1h"]})
    dot = g.to_dot()
    assert '"column:we\\"ird\\\\src.a"' in dot and '"job:job \\"quoted\\"\\nname"' in dot
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tcanon"], input=dot.encode(), capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()


def test_svg_runs_dot_or_names_the_package(graph: LineageGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("dot"):
        svg = graph.to_svg(feature="failed_amount_1h")
        assert "<svg" in svg and "failed_amount_1h" in svg
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(rp.UnsupportedError, match="Debian package graphviz"):
        graph.to_svg()


# ---- (e) at scale ---------------------------------------------------------------------------


def test_a_thousand_features() -> None:
    feats = [failed_amount(window=rp.sliding(f"{i + 1}m"), name=f"failed_{i}") for i in range(1000)]
    plan = rp.compile(feats)
    g = plan_lineage(plan)
    assert sources_of(g, "Transactions", "failed_999", role=VALUE) == {("Transactions", "amt")}
    lg = lineage_graph(feats, {"all": [f.name for f in feats]})
    assert len(lg.readers("Transactions", "status")) == 1000
    assert lg.jobs_affected("failed_500") == ["all"]
    assert len(lg.to_text().splitlines()) > 4000


def test_point_in_time_join_of_a_spine() -> None:
    """A training set's count reads no event column's value: only keys and times decide it."""
    spine = Source("spine", Schema.of([("account_id", T.Int64), ("t", T.Timestamp)]), event_time="t")
    tx = Transactions.__relplan_source__
    n = AsOfJoin(spine, tx, (("account_id", "account_id"),), "t", "ts",
                 ((Frame(MINUTE), (AggCall("count", None, "n"),)),))
    assert output_lineage(Sink(n, "train"))["train", "n"] == {
        ("Transactions", "account_id"): {ROWS}, ("Transactions", "ts"): {ROWS},
        ("spine", "account_id"): {ROWS}, ("spine", "t"): {ROWS},
    }
