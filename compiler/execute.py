"""execute(): run a plan on an engine and return pyarrow tables."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from relplan.backends import get_backend
from relplan.backends.arrow_io import conform_table
from relplan.backends.lookup_check import check_lookup_keys
from relplan.compiler import progress as _progress
from relplan.compiler.plan import Plan
from relplan.ir.errors import DataError, RelplanError
from relplan.ir.printer import sources
from relplan.ir.nodes import Sink

_log = logging.getLogger("relplan.execute")


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
    # Before any engine starts, on every engine: a duplicate in a lookup table would
    # multiply rows silently, and an engine's error would come after a long run.
    check_lookup_keys(plan.outputs, out)
    return out


def execute_all(
    plan: Plan, engine: str = "duckdb", tables: dict[str, Any] | None = None, *, progress: bool | None = None,
    **options: Any,
) -> dict[str, pa.Table]:
    """Every output of ``plan`` by name, computed on ``engine`` from ``tables``.

    ``options`` go to the engine's backend: DuckDB's ``connection=``, Spark's
    ``session=``, Flink's ``table_env=`` (or ``session=``: a TableEnvironment of
    yours, batch or streaming, its configuration left as it was found). ``progress``: a bar while it runs (default: on a terminal, for work of a second or
    more; see ``rp.set_progress``)."""
    plan = _check_plan(plan)
    backend = get_backend(engine, **options)
    return _run(backend, plan, plan.outputs, tables, progress, "execute_all")


def execute(
    plan: Plan,
    engine: str = "duckdb",
    tables: dict[str, Any] | None = None,
    *,
    output: str | None = None,
    progress: bool | None = None,
    **options: Any,
) -> pa.Table:
    """One output of ``plan`` as a pyarrow Table (``output=`` picks it when there are several).

    ``progress``: a bar while it runs (default: on a terminal, for work of a second or
    more; see ``rp.set_progress``)."""
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
    return _run(backend, sub, sinks, tables, progress, "execute")[sinks[0].name]


def _run(
    backend: Any, plan: Plan, sinks: tuple[Sink, ...], tables: dict[str, Any] | None, progress: bool | None, what: str
) -> dict[str, pa.Table]:
    info = _log.isEnabledFor(logging.INFO)
    started = time.perf_counter() if info else 0.0
    work = _progress.task(what, total=2, progress=progress, leave=False)
    with work:
        work.step("checking inputs")
        inputs = _inputs(plan, tables, backend)
        work.step(f"running on {backend.name}")
        if work is not _progress.OFF:
            backend.on_step = work.note  # the engine's steps: statements, fetching
        out: dict[str, pa.Table] = backend.run(sinks, inputs)
    if info:
        rows = sum(t.num_rows for t in inputs.values() if isinstance(t, pa.Table))
        _log.info(
            "%s on %s: %d output(s) %s from %d input row(s) -> %s rows in %.1f ms", what, backend.name, len(sinks),
            [s.name for s in sinks], rows, [t.num_rows for t in out.values()], (time.perf_counter() - started) * 1e3,
        )
    return out
