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
from relplan.backends.spark import SparkLowering

from plan_strategies import plans

LOWERINGS = (DuckDBLowering, SparkLowering)


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
