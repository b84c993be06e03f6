"""Cross-engine property tests: one feature, the same rows on every engine.

Hypothesis draws typed data (NULLs in every column but the event time, NaN, duplicate
timestamps, events exactly on and one microsecond either side of window edges, keys
with no rows after the filter, magnitudes up to 2**36 and 2**32 times the small
values, unicode strings) and features written through the DSL (tests/strategies.py).
DuckDB, Spark and the reference executor must each return exactly the rows of the
brute-force oracle (tests/reference.py), so they agree with each other. Floats are
compared within ``reference.FLOAT_REL_TOL`` relative (``FLOAT_ABS_TOL`` near zero), the
same for every engine; everything else exactly, after sorting.

A second test draws whole plans (joins, unions, aggregates, tumbling and hopping
windows, projections, filters) straight from IR nodes and checks Spark and the
reference executor against DuckDB.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings

import relplan as rp
from relplan.compiler.execute import execute_all

from plan_strategies import DiffCase, cases
from strategies import check_against_reference, event_rows, feature_spec_lists
from test_differential import differences

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def runner(engine: str, optimize: bool) -> Any:
    def run(plan: rp.Plan, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        return execute_all(rp.optimize(plan) if optimize else plan, engine, tables)

    return run


@SETTINGS
@given(specs=feature_spec_lists(), rows=event_rows())
def test_every_engine_returns_the_reference_rows(spark: Any, specs: list[Any], rows: list[dict[str, Any]]) -> None:
    note(f"features: {specs}")
    # The optimized plan on the SQL engines (what users run), the plan as compiled on the reference.
    for engine, optimize in (("duckdb", True), ("spark", True), ("reference", False)):
        try:
            check_against_reference(specs, rows, runner(engine, optimize))
        except AssertionError as e:
            raise AssertionError(f"engine {engine}: {e}") from None


@SETTINGS
@given(case=cases())
def test_generated_plans_agree_with_duckdb(spark: Any, case: DiffCase) -> None:
    expected = execute_all(case.plan, "duckdb", case.tables)
    for engine in ("spark", "reference"):
        diffs = differences(expected, execute_all(case.plan, engine, case.tables))
        if diffs:
            pytest.fail(f"{engine} disagrees with duckdb\n" + "\n".join(diffs))
