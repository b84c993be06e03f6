"""Differential tests of enrichment joins and derived features: optimizing never changes the rows.

Features over merge_asof / merge / merge(within=...) and derived features over them
(tests/join_strategies.py; tumbling windows too, whose masks become Filter nodes over
the joins) are compiled into one plan and run on DuckDB as compiled with every rule off
(``OptimizerConfig.all_off()``, which must hand the plan back untouched) and as
``rp.optimize`` leaves it: the same schema and the same multiset of rows (floats within
tests/test_differential.py's tolerance). On a difference the failure names the rules
that reproduce it alone.

Filter pushdown through a join that pads one side with NULLs must never move a
predicate into that side: a predicate over the padded columns filters the join's
output (dropping rows), while below the join it would only drop matches (keeping the
rows, padded). Checked on plan text for each join shape, and on every generated plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
import relplan.rules
from relplan.compiler.execute import execute_all
from relplan.ir import nodes
from relplan.ir.expr import conjuncts
from relplan.ir.graph import walk

from join_strategies import SLIDING, Data, Dim, Ev, JoinCase, Look, Tx, compile_cases, data, join_cases
from test_differential import differences

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
WINDOWS = (*SLIDING, "lifetime", "tumbling:1m", "tumbling:2m")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("SET threads = 2")
    yield c
    c.close()


def padded_side_filters(plan: rp.Plan) -> list[tuple[str, str]]:
    """(join, predicate) for every filter conjunct below the NULL-padded side of a join
    that pads one: a left join's right input, an as-of join's events."""
    out = []
    for n in walk(plan.outputs):
        if isinstance(n, nodes.Join) and n.how == "left":
            side = n.right
        elif isinstance(n, nodes.AsOfJoin):
            side = n.events
        else:
            continue
        for m in walk([side]):
            if isinstance(m, nodes.Filter):
                out += [(n.kind, c.sql()) for c in conjuncts(m.predicate)]
    return out


def _blame(plan: rp.Plan, expected: Any, tables: Any, con: Any) -> str:
    bad = []
    for name in relplan.rules.RULE_NAMES:
        try:
            got = execute_all(rp.optimize(plan, config=rp.OptimizerConfig.only(name)), "duckdb", tables, connection=con)
            if differences(expected, got):
                bad.append(name)
        except rp.RelplanError as e:
            bad.append(f"{name} (raises {type(e).__name__}: {e})")
    return "rules that reproduce it alone: " + (", ".join(bad) or "none")


@SETTINGS
@given(cases=st.lists(join_cases(windows=WINDOWS), min_size=1, max_size=3), d=data())
def test_optimized_join_features_return_the_same_rows(cases: list[JoinCase], d: Data, con: duckdb.DuckDBPyConnection) -> None:
    plan = compile_cases(cases)
    off = rp.optimize(plan, config=rp.OptimizerConfig.all_off())
    assert off.outputs == plan.outputs and all(a is b for a, b in zip(off.outputs, plan.outputs))
    optimized = rp.optimize(plan)
    note(f"cases: {cases}\nplan:\n{plan.explain()}\noptimized:\n{optimized.explain(verbose=True)}")
    assert [(s.name, s.schema) for s in optimized.outputs] == [(s.name, s.schema) for s in plan.outputs]
    tables = d.tables()
    expected = execute_all(off, "duckdb", tables, connection=con)
    try:
        diffs = differences(expected, execute_all(optimized, "duckdb", tables, connection=con))
    except rp.RelplanError as e:  # the unoptimized plan ran: the optimized one must too
        diffs = [f"the optimized plan fails: {type(e).__name__}: {e}"]
    if diffs:
        pytest.fail("optimized plan disagrees with the unoptimized one\n" + "\n".join(diffs) + "\n" + _blame(plan, expected, tables, con))
    # Pushdown never adds a predicate below a NULL-padded side: what is there was written
    # there (a mask on the right frame before the merge).
    before = padded_side_filters(plan)
    moved = [f for f in padded_side_filters(optimized) if f not in before]
    assert not moved, f"predicates moved into the NULL-padded side of a join: {moved}"


# ---- plan text ---------------------------------------------------------------------------------


@rp.transformation
def eu_count(tx: Tx, look: Look, wspec: rp.WindowSpec) -> Any:
    m = tx.merge(look, on="m", how="left")
    return m[(m.v > 0) & (m.region == "eu") & m.w.isnull()].groupby("k").window(wspec).count()


@rp.transformation
def near_count(tx: Tx, ev: Ev, wspec: rp.WindowSpec) -> Any:
    m = tx.merge(ev, on="k", how="left", within="1m")
    return m[(m.v > 0) & (m.y > 0)].groupby("k").window(wspec).count()


@rp.transformation
def cat_count(tx: Tx, dim: Dim, wspec: rp.WindowSpec) -> Any:
    m = tx.merge_asof(dim[dim.r > 0], by="m")
    return m[(m.v > 0) & (m.cat == "a")].groupby("k").window(wspec).count()


def _pushed(feature: rp.Feature) -> str:
    return rp.optimize(rp.compile([feature]), config=rp.OptimizerConfig.only("push_down_filter")).explain()


def test_pushdown_moves_left_predicates_below_a_left_lookup_join_and_keeps_right_ones_above() -> None:
    assert _pushed(eu_count(window=rp.tumbling("1m"))) == """\
Sink Tx_Look_tumble_1m_by_k
  TimeWindowAggregate keys=[k] time=ts tumble 1m aggs=[eu_count_tumble_1m := count(*)]
    Project k, m, v, x, s, ts, region, w
      Filter (region = 'eu') AND w IS NULL
        Join left on m = __right_m lookup
          Filter v > 0
            Source Tx event_time=ts bounded
          Project __right_m := m, region, w
            Source Look bounded"""


def test_pushdown_keeps_right_predicates_above_a_left_interval_join() -> None:
    assert _pushed(near_count(window=rp.tumbling("1m"))) == """\
Sink Tx_Ev_tumble_1m_by_k
  TimeWindowAggregate keys=[k] time=ts tumble 1m aggs=[near_count_tumble_1m := count(*)]
    Project k, m, v, x, s, ts, y, s_right, et
      Filter y > 0
        Join left on k = __right_k within et in [ts - 1m, ts + 0s]
          Filter v > 0
            Source Tx event_time=ts bounded
          Project __right_k := k, y, s_right := s, et
            Source Ev event_time=et bounded"""


def test_pushdown_keeps_a_predicate_on_an_as_of_value_above_the_as_of_join() -> None:
    # cat = 'a' below the join would pick the newest version *with* category a, not test
    # the newest version's category; the mask written on the versions stays where it was.
    assert _pushed(cat_count(window=rp.tumbling("1m"))) == """\
Sink Tx_Dim_tumble_1m_by_k
  TimeWindowAggregate keys=[k] time=ts tumble 1m aggs=[cat_count_tumble_1m := count(*)]
    Filter cat = 'a'
      AsOfJoin on m = m time=ts event_time=vt frames=[(-inf, t] aggs=[cat := last(cat by vt), r := last(r by vt), vt := last(vt by vt)]]
        Filter v > 0
          Source Tx event_time=ts bounded
        Filter r > 0
          Source Dim event_time=vt bounded"""


def test_the_fully_optimized_plans_keep_the_padded_sides_as_written() -> None:
    for t in (eu_count, near_count, cat_count):
        plan = rp.compile([t(window=rp.tumbling("1m")), t(window=rp.sliding("1m"))])
        assert padded_side_filters(rp.optimize(plan)) == padded_side_filters(plan), t.name
