"""Cross-engine tests of enrichment joins and derived features: every engine, the oracle's rows.

Features over ``merge_asof``, lookup ``merge`` and interval ``merge(within=...)``
(inner and left, masks before and after the merge, keys from either side, every
aggregate kind, sliding and lifetime windows) and derived features over two of them,
drawn by tests/join_strategies.py, whose brute-force oracle computes the expected
rows from the documented definitions. DuckDB (optimized plan), the reference executor
(plan as compiled), Spark and Flink (batch; streaming with events in time order)
must each return exactly those rows: floats within tests/reference.py's tolerance,
row order ignored, columns and types exact.

Cost: DuckDB and the reference take many drawn examples; Spark (a query per output,
seconds each) and Flink (a job per run, several seconds) take the hand-picked edges
(all in one plan: one job per Flink mode) and a few drawn examples. One Spark session
per run (the ``spark`` fixture) and one Flink environment per run (the backend's).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.compiler.execute import execute_all

from join_strategies import (
    AggSpec,
    Data,
    Dim,
    Ev,
    JoinCase,
    JoinSpec,
    Look,
    Tx,
    check_cases,
    compile_cases,
    data,
    edge_cases,
    edge_data,
    join_cases,
    streaming_edge_cases,
)
from test_differential import differences


def settings_for(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def runner(engine: str, optimize: bool, **options: Any) -> Any:
    def run(plan: rp.Plan, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        return execute_all(rp.optimize(plan) if optimize else plan, engine, tables, **options)

    return run


case_lists = st.lists(join_cases(), min_size=1, max_size=2)


@settings_for(80)
@given(cases=case_lists, d=data())
@example(cases=edge_cases(), d=edge_data())
def test_duckdb_and_the_reference_return_the_oracles_rows(cases: list[JoinCase], d: Data) -> None:
    note(f"cases: {cases}")
    for engine, optimize in (("duckdb", True), ("reference", False)):
        try:
            check_cases(cases, d, runner(engine, optimize))
        except AssertionError as e:
            raise AssertionError(f"engine {engine}: {e}") from None


def test_the_edges_on_duckdb_and_the_reference_give_the_values_worked_out_by_hand() -> None:
    """A few values of edge_data() worked out by hand, so the oracle is checked too."""
    d = edge_data()
    plan = rp.compile(edge_cases()[0].features("e"))
    for engine in ("duckdb", "reference"):
        rows = execute_all(plan, engine, d.tables())["Tx_Dim"].to_pylist()
        by_v = {r["v"]: r for r in rows if r["k"] == 1 or r["m"] == 2}  # v is unique among these
        # At 60 s merchant 1 has versions at 0 s ("a", 1) and two at exactly 60 s ("b", 2)
        # and ("", -1): the tie goes to the larger value of each column.
        assert (by_v[1]["cat"], by_v[1]["r"]) == ("b", 2), engine
        # At 120 s the newest version (90 s) is all NULL: each column keeps its newest non-NULL value.
        assert (by_v[-2]["cat"], by_v[-2]["r"], by_v[-2]["vt"].second) == ("b", 2, 30), engine
        # Merchant 2's only version is later than its event: nothing as of then.
        assert by_v[3]["cat"] is None and by_v[3]["vt"] is None, engine
        # Card 1's lifetime sum of r over r > 0 at 120 s: 2 (at 60 s) + 2 + 2 (the two events at 120 s).
        assert by_v[-2]["e1"] == 6 and by_v[1]["e1"] == 2, engine
        assert by_v[1]["e0"] == 1 and by_v[1]["ed0"] == 2.0, engine  # 1 row of category "b" in 1m; 2 / 1


@settings_for(2)
@given(cases=st.lists(join_cases(), min_size=1, max_size=1), d=data(max_rows=6))
@example(cases=edge_cases(), d=edge_data())
def test_spark_returns_the_oracles_rows(spark: Any, cases: list[JoinCase], d: Data) -> None:
    note(f"cases: {cases}")
    check_cases(cases, d, runner("spark", True, session=spark))


# ---- Flink ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def has_flink() -> None:
    pytest.importorskip("pyflink")


@settings_for(1)
@given(cases=case_lists, d=data(max_rows=6))
@example(cases=edge_cases(), d=edge_data())
def test_flink_batch_returns_the_oracles_rows(has_flink: None, cases: list[JoinCase], d: Data) -> None:
    note(f"cases: {cases}")
    check_cases(cases, d, runner("flink", True, mode="batch"))


# Streaming: events in time order (a file's order is its arrival order), in whole
# milliseconds (Flink's event-time precision); the sliding windows and interval bounds
# are whole seconds. merge_asof(allow_exact_matches=False) is refused in streaming mode
# (UnsupportedError: its frame ends before the row's time), so only exact matches.
@settings_for(1)
@given(
    cases=st.lists(join_cases(exact=(True,)), min_size=1, max_size=2),
    d=data(max_rows=6, unit_us=1000, bases=(1_704_067_200_000_000,)),
)
@example(cases=streaming_edge_cases(), d=edge_data())
def test_flink_streaming_returns_the_oracles_rows_for_in_order_events(
    has_flink: None, cases: list[JoinCase], d: Data
) -> None:
    note(f"cases: {cases}")
    check_cases(cases, d.in_time_order(), runner("flink", True, mode="streaming"))


# ---- beyond the generator: chained merges, a duplicate lookup key ------------------------------


@rp.transformation
def chained(tx: Tx, dim: Dim, look: Look, ev: Ev, wspec: rp.WindowSpec) -> Any:
    m = tx.merge_asof(dim, by="m").merge(look, on="m", how="left").merge(ev, on="k", within="1m", how="left")
    return m[m.cat.notnull()].groupby(["region", "cat"]).y.window(wspec).sum()


@rp.transformation
def twice(tx: Tx, dim: Dim, wspec: rp.WindowSpec) -> Any:
    # The same dimension as of the row's time and as of just before it (suffixed).
    m = tx.merge_asof(dim, by="m").merge_asof(dim, by="m", suffixes=("", "_before"), allow_exact_matches=False)
    return m.groupby("cat").r_before.window(wspec).max()


def test_chained_merges_give_the_same_rows_on_duckdb_and_the_reference() -> None:
    feats = [chained(window=rp.sliding("2m")), twice(window=rp.lifetime())]
    plan = rp.compile([*feats, rp.derived("half", feats[0] / 2)])
    d = edge_data()
    expected = execute_all(plan, "reference", d.tables())
    assert not differences(expected, execute_all(rp.optimize(plan), "duckdb", d.tables()))
    assert not differences(expected, execute_all(plan, "duckdb", d.tables()))
    rows = {(r["k"], r["v"]): r for r in expected["Tx_Dim"].to_pylist()}
    # Merchant 1 at exactly 60 s: the versions at 60 s count as of then, not just before.
    assert (rows[1, 1]["cat"], rows[1, 1]["cat_before"], rows[1, 1]["r_before"]) == ("b", "a", 1)


@pytest.mark.parametrize("engine", ["duckdb", "reference"])
def test_a_duplicate_key_in_a_merged_lookup_table_is_a_data_error(engine: str) -> None:
    case = JoinCase(JoinSpec("lookup", "left"), (AggSpec(("k",), "none", "lifetime", "count", None),))
    d = edge_data()
    d = Data(d.tx, d.dim, [*d.look, {"m": 3, "region": "z", "w": 9}], d.ev)
    with pytest.raises(rp.DataError, match=r"lookup table 'Look' has 2 rows for m = 3"):
        execute_all(compile_cases([case]), engine, d.tables())
