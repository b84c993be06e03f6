"""Cross-engine property tests on Flink: the reference's rows in batch and streaming mode.

The features and data of tests/test_cross_engine.py (DuckDB, Spark and the reference
executor meet the same brute-force oracle there), every aggregate included:
count_distinct over sliding and lifetime frames (ARRAY_AGG/ARRAY_DISTINCT) and
first/last (MIN/MAX of order-preserving keys, backends/flink_extremes.py) and
var/std (sums shifted by the partition's first value: Flink's own VAR_SAMP gives
-8.6e9 for the data's equal 2**32-scaled integers). Streaming mode further takes events in order, in whole milliseconds
(Flink's event-time precision), with sliding frames of whole milliseconds and hopping
windows whose size is a multiple of the slide (Flink's HOP). Each example is one Flink
job computing all of its features (1-3) through one statement set.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.compiler.execute import execute_all

import reference as ref
from plan_strategies import DiffCase, cases
from strategies import BASES_US, HOPPING, SLIDING, TUMBLING, check_against_reference, event_rows, feature_spec_lists
from test_differential import differences

FLINK_FUNCS = ref.AGG_FUNCS  # every aggregate, in every window


def flink_funcs(window: tuple[str, ...]) -> tuple[str, ...]:
    return FLINK_FUNCS


def settings_for(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def flink(mode: str) -> Any:
    def run(plan: rp.Plan, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        return execute_all(rp.optimize(plan), "flink", tables, mode=mode)

    return run


@settings_for(50)
@given(specs=feature_spec_lists(funcs_for=flink_funcs), rows=event_rows())
def test_flink_batch_returns_the_reference_rows(specs: list[Any], rows: list[dict[str, Any]]) -> None:
    note(f"features: {specs}")
    check_against_reference(specs, rows, flink("batch"))


streaming_windows = st.one_of(
    st.sampled_from([s for s in SLIDING if s != "1us"]).map(lambda s: ("sliding", s)),
    st.just(("lifetime",)),
    st.sampled_from(TUMBLING).map(lambda s: ("tumbling", s)),
    st.sampled_from([h for h in HOPPING if rp.hopping(*h).size % rp.hopping(*h).slide == 0]).map(
        lambda h: ("hopping", *h)
    ),
)


@settings_for(20)
@given(specs=feature_spec_lists(streaming_windows, funcs_for=flink_funcs), rows=event_rows(unit_us=1000, bases=BASES_US[-1:]))
def test_flink_streaming_returns_the_reference_rows_for_in_order_events(
    specs: list[Any], rows: list[dict[str, Any]]
) -> None:
    note(f"features: {specs}")
    in_order = sorted(rows, key=lambda r: r["ts"])  # the file's order is the arrival order
    check_against_reference(specs, in_order, flink("streaming"))


@settings_for(30)
@given(case=cases())
def test_flink_batch_runs_generated_plans_as_duckdb_does(case: DiffCase) -> None:
    expected = execute_all(case.plan, "duckdb", case.tables)
    got = execute_all(case.plan, "flink", case.tables, mode="batch")  # every aggregate, every frame
    diffs = differences(expected, got)
    if diffs:  # which one is wrong: the reference executor decides
        oracle = execute_all(case.plan, "reference", case.tables)
        verdict = f"duckdb vs reference: {differences(oracle, expected)[:2]}; flink vs reference: {differences(oracle, got)[:2]}"
        pytest.fail("flink disagrees with duckdb\n" + "\n".join(diffs) + "\n" + verdict + "\n" + case.plan.to_sql("flink"))
