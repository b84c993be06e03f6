"""DuckDB: the embedded default engine, in-process, no set-up."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sqlglot import exp

from relplan.backends.arrow_io import in_ir_types
from relplan.backends.sql import SqlLowering
from relplan.backends.tiles import TiledWindows
from relplan.ir import types as T
from relplan.ir.errors import EngineError
from relplan.ir.graph import walk
from relplan.ir.nodes import Sink, Source, WindowAggregate


class DuckDBLowering(SqlLowering):
    dialect = "duckdb"
    engine = "duckdb"

    def mean_input(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        # AVG(BIGINT) sums exactly (HUGEINT) and returns DOUBLE: no early rounding.
        return e

    def window_aggregate_ctes(self, n: WindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        tiled = [(f, aggs) for f, aggs in n.windows if f.tile is not None]
        if not tiled:
            return super().window_aggregate_ctes(n, src, k)
        return TiledWindows(self, n, src, k).ctes()


def _naive(table: pa.Table) -> pa.Table:
    """UTC timestamps as naive TIMESTAMP, so no DuckDB session time zone is involved."""
    cols = []
    for c in table.columns:
        if pa.types.is_timestamp(c.type) and c.type.tz is not None:
            c = c.cast(pa.timestamp(c.type.unit))
        cols.append(c)
    return pa.Table.from_arrays(cols, names=table.column_names)


class DuckDBBackend:
    """Runs plans on DuckDB; pass ``connection=`` to use your own (e.g. with settings or
    extensions); the inputs are Arrow tables, registered on it for the run."""

    name = "duckdb"

    def __init__(self, connection: Any | None = None, threads: int | None = None) -> None:
        self._connection = connection
        self._threads = threads
        self.lowering = DuckDBLowering()

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        return self.lowering.to_sql(sinks, pretty=pretty)

    def run(self, sinks: tuple[Sink, ...], tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        import duckdb

        con = self._connection if self._connection is not None else duckdb.connect()
        if self._threads:
            con.execute(f"SET threads = {int(self._threads)}")
        registered = []
        try:
            for src in (n for n in walk(sinks) if isinstance(n, Source)):
                con.register(src.name, _naive(tables[src.name]))
                registered.append(src.name)
            out = {}
            for s in sinks:
                sql = self.lowering.render(s, pretty=False)
                try:
                    result = con.sql(sql).to_arrow_table()
                except duckdb.Error as e:
                    raise EngineError(f"DuckDB failed on output {s.name!r}: {e}\nSQL:\n{sql}") from e
                out[s.name] = in_ir_types(result, s, "DuckDB")
            return out
        finally:
            for name in registered:
                con.unregister(name)
            if self._connection is None:
                con.close()
