"""The SQL front end: a query in DuckDB, Spark or Flink SQL to the IR the DSL compiles to.

    plan = rp.sql(\"\"\"
        SELECT account_id, ts,
               COUNT(*) OVER (PARTITION BY account_id ORDER BY ts
                              RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW) AS n_1d
        FROM Transactions WHERE status = 'failed'
    \"\"\", sources=[Transactions], dialect="flink")

The query is read with the dialect's meaning (docs/sql.md lists it), never relplan's
own conventions, and every error is a RelplanError naming the line and column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relplan.compiler.plan import Plan
from relplan.compiler.sql.emitted import is_script, sql_script
from relplan.compiler.sql.expressions import Located
from relplan.compiler.sql.query import Context, build_query
from relplan.compiler.sql.reader import check_dialect, locate, read_query
from relplan.ir.errors import RelplanError, SchemaError, SqlError
from relplan.ir.nodes import Sink, Source

__all__ = ["sql"]


def sql(query: str, sources: Iterable[Any] = (), *, dialect: str = "duckdb", name: str = "sql") -> Plan:
    """A plan of one output, ``name``, computing ``query`` over ``sources``.

    ``sources`` are ``rp.Source`` classes (or IR ``Source`` nodes); the query names them
    by their source names. The plan is like any compiled one: ``rp.optimize``,
    ``rp.execute`` on every engine, ``explain()`` and ``to_sql()`` take it.
    """
    dialect = check_dialect(dialect)
    by_name = _sources(sources)
    if not isinstance(name, str) or not name:
        raise SqlError(f"name= takes the output's name as a non-empty string, got {name!r}")
    if is_script(query, dialect):  # relplan's own script of several outputs (plan.to_sql): emitted.py
        return sql_script(query, list(by_name.values()), dialect=dialect, name=name)
    try:
        rel = read_query(query, dialect, lambda tree: build_query(tree, Context(dialect, by_name)))
    except Located as e:
        raise _relocated(e, query) from None
    except RecursionError:
        raise SqlError("the SQL is nested too deeply to compile; split it into CTEs") from None
    return Plan(outputs=(Sink(rel.node, name),))


def _relocated(e: Located, text: str) -> RelplanError:
    err = e.error
    located = type(err).__new__(type(err))
    RelplanError.__init__(located, err.message, where=locate(text, e.node))
    return located


def _sources(sources: Iterable[Any]) -> dict[str, Source]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
        raise SchemaError(f"sources= takes a list of rp.Source classes, got {sources!r}")
    out: dict[str, Source] = {}
    for s in sources:
        node = s if isinstance(s, Source) else getattr(s, "node", None)
        if callable(node) and not isinstance(s, Source):
            node = node()
        if not isinstance(node, Source):
            raise SchemaError(f"sources= takes rp.Source classes; {s!r} is not one")
        if node.name in out and out[node.name] != node:
            raise SchemaError(f"two different sources are named {node.name!r}")
        out[node.name] = node
    return out
