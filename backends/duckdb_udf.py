"""Python UDFs on DuckDB: registered on the run's connection, removed after it.

The SQL of a plan calls a UDF by a name fixed by the function's ``module:qualname``
and its argument and result types (``sql_name``), so the text is the same on every
run and can be cached. For a run, ``registered`` gives that name a meaning on the
run's connection alone:

- the Python function is registered in the database (``create_function``; DuckDB's
  Python functions are visible to every connection of a database) under a name
  new for this run, ``<sql name>_<random>``, wrapped to convert values to the
  UDF's conventions and check its result (``relplan.ir.expr.PythonUDF``);
- a temporary macro with the SQL name calls it. Temporary objects belong to one
  connection (one cursor of relplan's database, see duckdb_connections.py), so
  two runs at once, in two threads, each with its own definition of a function
  of the same name, each call their own;
- after the run, whatever happened, the macro is dropped and the function removed
  (closing a cursor drops its macros, but not a registered Python function), so a
  registration never leaks into the next call.

Cost: about a millisecond per distinct UDF and run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import FeatureError, RelplanError, UnsupportedError
from relplan.ir.expr import Expr, PythonUDF
from relplan.ir.graph import walk
from relplan.ir.nodes import Node

# Engines that run Python UDFs: DuckDB (here) and the reference engine (per row in Python).
RUNS_PYTHON_UDFS = ("duckdb", "reference")

_DUCKDB_TYPES = {
    "Int64": "BIGINT", "Float64": "DOUBLE", "String": "VARCHAR", "Bool": "BOOLEAN",
    "Timestamp": "TIMESTAMP", "Date": "DATE",
}
_UTC = dt.timezone.utc


def sql_name(u: PythonUDF) -> str:
    """The name the SQL calls ``u`` by: a plain lower-case word (no quoting needed), the
    same for the same function and types in every process."""
    word = re.sub(r"[^0-9a-z_]", "_", u.name.lower())[:40]
    key = "|".join((u.path, *(a.dtype.name for a in u.args), u.dtype.name))
    return f"relplan_udf_{word}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def python_udfs(roots: Iterable[Node] | Node) -> list[PythonUDF]:
    """The distinct Python UDF calls in a plan, in plan order."""
    found: dict[PythonUDF, None] = {}

    def scan(v: Any) -> None:
        if isinstance(v, Expr):
            for e in v.walk():
                if isinstance(e, PythonUDF):
                    found.setdefault(e, None)
        elif isinstance(v, (tuple, list)):
            for x in v:
                scan(x)
        elif isinstance(v, AggCall):
            scan((v.arg, v.filter, v.order))

    for n in walk(roots):  # type: ignore[arg-type]
        scan(n._own_values())
    return list(found)


def unsupported(u: PythonUDF, engine: str, what: str = "run") -> UnsupportedError:
    """The error for a UDF an engine cannot run (``what``: "run", or "written as SQL")."""
    verb = "cannot run on" if what == "run" else "cannot be written in the SQL of"
    return UnsupportedError(
        f"python_udf {u.name} ({u.path}) {verb} {engine}: Python UDFs run only on DuckDB and the "
        f"reference engine. Run this plan with engine='duckdb', or express {u.name} with relplan's "
        "operators (arithmetic, comparisons, isin, fillna, astype, ...)"
    )


def refuse_python_udfs(roots: Iterable[Node] | Node, engine: str) -> None:
    """Raise ``UnsupportedError`` naming the first UDF of the plan unless ``engine`` runs them.

    Meant for a backend's run before it starts anything (a session, a job)."""
    if engine in RUNS_PYTHON_UDFS:
        return
    udfs = python_udfs(roots)
    if udfs:
        raise unsupported(udfs[0], engine)


def _wrapper(u: PythonUDF, failures: list[RelplanError]) -> Any:
    """``u.call`` with DuckDB's values: naive UTC timestamps in and out."""
    stamps = [i for i, a in enumerate(u.args) if a.dtype == T.Timestamp]
    stamp_out = u.dtype == T.Timestamp

    def call(*values: Any) -> Any:
        if stamps:
            vs = list(values)
            for i in stamps:
                if vs[i] is not None:
                    vs[i] = vs[i].replace(tzinfo=_UTC)
            values = tuple(vs)
        try:
            out = u.call(*values)
        except RelplanError as e:
            failures.append(e)  # reported as itself once DuckDB gives up (see registered)
            raise
        if stamp_out and out is not None:
            out = out.astimezone(_UTC).replace(tzinfo=None)
        return out

    # DuckDB counts the parameters of the function it is given.
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(u.args))]
    )
    return call


@contextmanager
def registered(con: Any, roots: Iterable[Node] | Node) -> Iterator[None]:
    """The plan's Python UDFs callable by their ``sql_name`` on ``con`` while inside.

    An error a UDF raised (its exception, or a result of the wrong type) leaves as
    that ``EngineError`` (naming the UDF and the row's arguments), not as DuckDB's
    wrapping of it."""
    udfs = python_udfs(roots)
    if not udfs:
        yield
        return
    by_name: dict[str, PythonUDF] = {}
    for u in udfs:
        first = by_name.setdefault(sql_name(u), u)
        if first.fn is not u.fn:
            raise FeatureError(
                f"python_udf {u.name}: two different functions named {u.path} are used in one plan "
                "(a function defined again?); give them different names"
            )
    failures: list[RelplanError] = []
    made: list[tuple[str, str | None]] = []  # (registered function, macro)
    try:
        for name, u in by_name.items():
            run_name = f"{name}_{uuid.uuid4().hex[:12]}"
            con.create_function(
                run_name, _wrapper(u, failures), [_DUCKDB_TYPES[a.dtype.name] for a in u.args],
                _DUCKDB_TYPES[u.dtype.name], type="native", null_handling="special",
                exception_handling="default", side_effects=False,
            )
            made.append((run_name, None))
            params = ", ".join(f"a{i}" for i in range(len(u.args)))
            con.execute(f"CREATE OR REPLACE TEMP MACRO {name}({params}) AS {run_name}({params})")
            made[-1] = (run_name, name)
        yield
    except Exception as exc:
        if failures:
            raise failures[0] from exc
        raise
    finally:
        for run_name, macro in reversed(made):
            try:
                if macro is not None:
                    con.execute(f"DROP MACRO IF EXISTS temp.{macro}")
            except Exception:  # noqa: S110 - best effort: the connection may be broken; the cursor's close drops it too
                pass
            try:
                con.remove_function(run_name)
            except Exception:  # noqa: S110 - not registered (create_function failed half-way)
                pass
