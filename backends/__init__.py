"""Engines: one module per engine (IR -> sqlglot AST -> SQL; running it)."""

from __future__ import annotations

from typing import Any

from relplan.ir.errors import RelplanError

ENGINES = ("duckdb",)


def get_backend(engine: str, **options: Any) -> Any:
    """The backend for ``engine`` ("duckdb"); options go to its constructor."""
    if engine == "duckdb":
        from relplan.backends.duckdb import DuckDBBackend

        return DuckDBBackend(**options)
    if engine in ("spark", "flink"):
        raise RelplanError(f"engine {engine!r} is not available in this version of relplan; use 'duckdb'")
    raise RelplanError(f"unknown engine {engine!r}; known engines: {', '.join(ENGINES)}")
