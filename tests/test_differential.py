"""Differential tests: the optimized plan returns the same rows as the plan it came from.

Plans are drawn directly from ir nodes (tests/plan_strategies.py): filters, projections,
window aggregates with several frames, aggregates, tumbling and hopping windows, joins
of every kind and unions, stacked a few deep over typed data with NULLs, ties and
times on window edges. Each is run on DuckDB as written and as ``rp.optimize`` leaves
it; the outputs must have the same schema and the same multiset of rows (floats within
``REL_TOL``/``ABS_TOL``, everything else exact). When they differ, the failure names
the rules that reproduce the difference alone (``OptimizerConfig.only(name)``).

With every rule off the optimizer must hand the plan back untouched.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings

import relplan as rp
import relplan.rules
from relplan.compiler.execute import execute_all

from plan_strategies import DiffCase, cases, plans

REL_TOL = 1e-9  # floats agree within this relative tolerance ...
ABS_TOL = 1e-9  # ... or this absolute one near 0

SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    c.execute("SET threads = 2")
    yield c
    c.close()


# ---- comparing results ------------------------------------------------------------


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """None-safe; floats rounded so that values within tolerance sort together."""
    out: list[tuple[Any, ...]] = []
    for v in row:
        if v is None:
            out.append((0,))
        elif isinstance(v, float):
            out.append((2, float("inf")) if math.isnan(v) else (1, float(f"{v:.6g}")))
        else:
            out.append((1, v))
    return tuple(out)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return type(a) is type(b) and a == b


def _same_row(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))


def _exact_part(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(None if isinstance(v, float) else v for v in row)


def row_differences(expected: pa.Table, got: pa.Table) -> list[str]:
    """Rows of each side with no partner on the other (empty when the multisets agree)."""
    a = sorted((tuple(r.values()) for r in expected.to_pylist()), key=_sort_key)
    b = sorted((tuple(r.values()) for r in got.to_pylist()), key=_sort_key)
    if len(a) == len(b) and all(_same_row(x, y) for x, y in zip(a, b)):
        return []
    # Sorting can interleave rows whose floats differ within tolerance: match greedily
    # within groups of rows equal in everything but their floats.
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for r in b:
        groups[_exact_part(r)].append(r)
    missing = []
    for r in a:
        cands = groups[_exact_part(r)]
        for i, c in enumerate(cands):
            if _same_row(r, c):
                del cands[i]
                break
        else:
            missing.append(r)
    extra = [r for rs in groups.values() for r in rs]
    out = [f"only in the unoptimized result: {r!r}" for r in missing[:10]]
    out += [f"only in the optimized result:   {r!r}" for r in extra[:10]]
    if missing or extra:
        out.insert(0, f"{len(a)} vs {len(b)} rows; {len(missing)} unmatched vs {len(extra)} unmatched")
    return out


def differences(expected: dict[str, pa.Table], got: dict[str, pa.Table]) -> list[str]:
    if list(expected) != list(got):
        return [f"outputs {list(expected)} vs {list(got)}"]
    out = []
    for name, table in expected.items():
        if not table.schema.equals(got[name].schema):
            out.append(f"output {name!r}: schema\n{table.schema}\nvs\n{got[name].schema}")
            continue
        out += [f"output {name!r}: {d}" for d in row_differences(table, got[name])]
    return out


def run(plan: rp.Plan, case: DiffCase, con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    return execute_all(plan, "duckdb", tables=case.tables, connection=con)


def _reproduces(case: DiffCase, expected: dict[str, pa.Table], config: rp.OptimizerConfig, con: Any) -> str | None:
    """Why the plan optimized under ``config`` is wrong on this case, or None."""
    try:
        optimized = rp.optimize(case.plan, config=config)
        if optimized.outputs is case.plan.outputs:
            return None
        return "differs" if differences(expected, run(optimized, case, con)) else None
    except rp.RelplanError as e:
        return f"raises {type(e).__name__}: {e}"


def blame(case: DiffCase, expected: dict[str, pa.Table], con: duckdb.DuckDBPyConnection) -> str:
    """Which rules reproduce the failure alone, and without which ones it goes away."""
    names = relplan.rules.RULE_NAMES
    alone = [(n, r) for n in names if (r := _reproduces(case, expected, rp.OptimizerConfig.only(n), con))]
    needed = [n for n in names if not _reproduces(case, expected, rp.OptimizerConfig().without(n), con)]
    return (
        "rules that reproduce it alone: " + (", ".join(f"{n} ({r})" for n, r in alone) or "none")
        + "\nrules without which it goes away: " + (", ".join(needed) or "none")
    )


def _reporting() -> bool:
    """True on the run hypothesis reports (the minimal example), not while it shrinks."""
    try:
        from hypothesis.control import should_note
    except ImportError:  # pragma: no cover - an internal name; blame every failure then
        return True
    return should_note()


# ---- the tests ------------------------------------------------------------------------


@SETTINGS
@given(case=cases())
def test_optimized_plan_returns_the_same_rows(case: DiffCase, con: duckdb.DuckDBPyConnection) -> None:
    plan = case.plan
    expected = run(plan, case, con)
    optimized = rp.optimize(plan)
    note(f"optimized:\n{optimized.explain(verbose=True)}")

    assert [(s.name, s.schema) for s in optimized.outputs] == [(s.name, s.schema) for s in plan.outputs]
    try:
        diffs = differences(expected, run(optimized, case, con))
    except rp.RelplanError as e:  # the unoptimized plan ran: the optimized one must too
        diffs = [f"the optimized plan fails: {type(e).__name__}: {e}"]
    if diffs:
        pytest.fail(
            "optimized plan disagrees with the unoptimized one\n"
            + "\n".join(diffs)
            + ("\n" + blame(case, expected, con) if _reporting() else "")
            + f"\n\nplan:\n{plan.explain()}\n\noptimized:\n{optimized.explain(verbose=True)}"
        )


@settings(SETTINGS, max_examples=300)
@given(plan=plans())
def test_all_rules_off_returns_the_plan_unchanged(plan: rp.Plan) -> None:
    optimized = rp.optimize(plan, config=rp.OptimizerConfig.all_off())
    assert len(optimized.outputs) == len(plan.outputs)
    assert all(a is b for a, b in zip(optimized.outputs, plan.outputs))
    assert optimized.outputs == plan.outputs
    assert optimized.trace == ()
    assert optimized.explain() == plan.explain()
