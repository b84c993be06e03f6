"""Emitting SQL: the text assembled from cached per-node CTE texts is exactly what
sqlglot renders for the whole plan's AST, for any plan, in every dialect, pretty or not,
also when some of its nodes were rendered before as part of another plan."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from hypothesis import HealthCheck, given, settings

import relplan as rp
from relplan.backends.duckdb import DuckDBLowering
from relplan.backends.flink import FlinkLowering
from relplan.backends.spark import SparkLowering

from plan_strategies import plans

LOWERINGS = (DuckDBLowering, SparkLowering, FlinkLowering)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=plans(), second=plans())
def test_assembled_text_equals_the_whole_ast_rendered(first: rp.Plan, second: rp.Plan) -> None:
    for plan in (first, second, rp.optimize(first)):  # the later ones reuse cached CTE texts
        for lowering in LOWERINGS:
            low = lowering()
            for sink in plan.outputs:
                for pretty in (True, False):
                    whole = low.lower(sink).sql(dialect=low.dialect, identify=True, pretty=pretty)
                    assert low.render(sink, pretty=pretty) == whole


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_a_newline_in_a_string_literal_is_kept_in_pretty_sql(lowering: type) -> None:
    class Notes(rp.Source):
        k: rp.Int64
        text: rp.String
        ts: rp.Timestamp = rp.event_time()

    @rp.transformation
    def multiline(n: Notes, wspec: rp.WindowSpec):
        return n[n.text == "line one\nline two"].groupby("k").window(wspec).count()

    plan = rp.compile(multiline(window=rp.sliding("1h")))
    low = lowering()
    sql = low.render(plan.outputs[0], pretty=True)
    strings = {e.this for e in sqlglot.parse_one(sql, read=low.dialect).find_all(exp.Literal) if e.is_string}
    assert strings == {"line one\nline two"}  # not indented inside the literal


def test_a_window_node_that_lists_its_input_columns_is_rendered_again_when_they_change() -> None:
    """Flink lowers var/std with a reference column and then selects the node's own
    columns by name: its cached text must not outlive a change in the columns below it."""

    class Readings(rp.Source):
        k: rp.Int64
        j: rp.Int64
        x: rp.Float64
        ts: rp.Timestamp = rp.event_time()

    @rp.transformation
    def total(r: Readings, wspec: rp.WindowSpec):
        return r.groupby("k")["x"].window(wspec).sum()

    @rp.transformation
    def spread(r: Readings, wspec: rp.WindowSpec):
        return r.groupby("j")["x"].window(wspec).var()

    low = FlinkLowering()
    for name in ("a", "b"):  # the second plan's var node has the first's own fields and position
        plan = rp.compile([total(window=rp.sliding("1h"), name=name), spread(window=rp.sliding("1h"), name="v")])
        sink = plan.outputs[0]
        assert low.render(sink, pretty=True) == low.lower(sink).sql(dialect=low.dialect, identify=True, pretty=True)
