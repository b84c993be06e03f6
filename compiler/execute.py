"""execute(): run a plan on an engine and return pyarrow tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from relplan.backends import get_backend
from relplan.backends.arrow_io import conform_table
from relplan.compiler.plan import Plan
from relplan.ir.errors import DataError, RelplanError
from relplan.ir.printer import sources


def _check_plan(plan: Any) -> Plan:
    if not isinstance(plan, Plan):
        raise RelplanError(f"execute() takes a plan from rp.compile(...), got {type(plan).__name__}")
    return plan


def _inputs(plan: Plan, tables: dict[str, Any] | None, backend: Any) -> dict[str, pa.Table | str]:
    if tables is not None and not isinstance(tables, Mapping):
        raise DataError(
            f"tables= takes a dict of source name to table, e.g. {{'Transactions': arrow_table}}, "
            f"got {type(tables).__name__}"
        )
    tables = dict(tables or {})
    out: dict[str, pa.Table | str] = {}
    for src in sources(plan.outputs):
        if src.name not in tables:
            raise DataError(
                f"no table given for source {src.name!r}: pass tables={{{src.name!r}: <pyarrow table>}}"
                + (f" (given: {sorted(tables)})" if tables else "")
            )
        given = tables[src.name]
        if isinstance(given, str):
            # The name of a table the engine already has (checked against the source by the backend).
            if not getattr(backend, "accepts_table_names", False):
                raise DataError(
                    f"source {src.name!r} was given the table name {given!r}, but engine {backend.name!r} "
                    "takes data, not names: pass a pyarrow Table or pandas DataFrame"
                )
            out[src.name] = given
        else:
            out[src.name] = conform_table(src, given)
    return out


def execute_all(
    plan: Plan, engine: str = "duckdb", tables: dict[str, Any] | None = None, **options: Any
) -> dict[str, pa.Table]:
    """Every output of ``plan`` by name, computed on ``engine`` from ``tables``."""
    plan = _check_plan(plan)
    backend = get_backend(engine, **options)
    return backend.run(plan.outputs, _inputs(plan, tables, backend))


def execute(
    plan: Plan,
    engine: str = "duckdb",
    tables: dict[str, Any] | None = None,
    *,
    output: str | None = None,
    **options: Any,
) -> pa.Table:
    """One output of ``plan`` as a pyarrow Table (``output=`` picks it when there are several)."""
    plan = _check_plan(plan)
    if output is None:
        if len(plan.outputs) != 1:
            raise RelplanError(
                f"the plan has {len(plan.outputs)} outputs {list(plan.output_names)}: pass output=<name>, "
                "or use rp.execute_all() for all of them"
            )
        sinks = plan.outputs
    else:
        sinks = (plan.output(output),)
    backend = get_backend(engine, **options)
    sub = Plan(sinks, plan.features)
    return backend.run(sinks, _inputs(sub, tables, backend))[sinks[0].name]
