"""Engines: one module per engine (IR -> sqlglot AST -> SQL; running it)."""

from __future__ import annotations

from typing import Any

from relplan.ir.errors import RelplanError

ENGINES = ("duckdb", "spark", "flink", "reference")


def get_backend(engine: str, **options: Any) -> Any:
    """The backend for ``engine``; options go to its constructor.

    "duckdb" (embedded, the default), "spark" (pyspark: a local session, or pass
    ``session=``), "flink" (PyFlink: ``mode="batch"`` or ``"streaming"``, a local
    mini-cluster or pass ``table_env=``) and "reference" (the IR run directly in
    Python: slow, obviously correct, the tests' oracle).
    """
    if engine == "duckdb":
        from relplan.backends.duckdb import DuckDBBackend

        return DuckDBBackend(**options)
    if engine == "spark":
        from relplan.backends.spark import SparkBackend

        return SparkBackend(**options)
    if engine == "reference":
        from relplan.backends.reference import ReferenceBackend

        return ReferenceBackend(**options)
    if engine == "flink":
        from relplan.backends.flink import FlinkBackend

        return FlinkBackend(**options)
    raise RelplanError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
