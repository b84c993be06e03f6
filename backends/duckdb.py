"""DuckDB: the embedded default engine, in-process, no set-up."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sqlglot import exp

from relplan.backends.arrow_io import in_ir_types
from relplan.backends.asof import TIME, VALUE, key_name, key_types, newest_event_only, no_point
from relplan.backends.sql import SqlLowering, all_of, as_name, col, ident, lit, paren
from relplan.backends.tiles import TiledWindows
from relplan.ir import types as T
from relplan.ir.errors import EngineError
from relplan.ir.graph import walk
from relplan.ir.nodes import AsOfJoin, Sink, Source, WindowAggregate


class DuckDBLowering(SqlLowering):
    dialect = "duckdb"
    engine = "duckdb"

    def mean_input(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        # AVG(BIGINT) sums exactly (HUGEINT) and returns DOUBLE: no early rounding.
        return e

    def asof_join_ctes(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        if n.lowering == "asof" and newest_event_only(n):
            return [(f"t{k}", self.asof_join(n, spine, events))]
        return super().asof_join_ctes(n, spine, events, k)

    def asof_join(self, n: AsOfJoin, spine: str, events: str) -> exp.Select:
        """last() at each spine row as DuckDB's ASOF JOIN: per aggregate, the events
        reduced to one row per key and time (the largest non-NULL value: last()'s tie
        rule), then the newest such row at or before the row's time. A lower frame
        bound (a TTL) is checked on the row found: if the newest is too old, all are."""
        q = exp.select(*[col(f.name, "s") for f in n.spine.schema]).from_(
            exp.Table(this=ident(spine)).as_(ident("s")), copy=False
        )
        guard = self.expr(no_point(n))
        joined: dict[tuple[object, ...], str] = {}  # one ASOF JOIN per value, filter and edge
        for frame, a in n.calls:
            assert a.arg is not None
            value = self.masked(a.arg, a.filter)
            spine_time = col(n.spine_time, "s")
            e = joined.get((a.arg, a.filter, frame.upper_inclusive))
            if e is None:
                e = joined[(a.arg, a.filter, frame.upper_inclusive)] = f"e{len(joined)}"
                q = self.join_newest(q, n, events, e, value, frame.upper_inclusive)
            result: exp.Expression = col(VALUE, e)
            if frame.lower is not None:
                age = exp.Sub(this=self.epoch_us(spine_time), expression=self.epoch_us(col(TIME, e)))
                fresh = (exp.LTE if frame.lower_inclusive else exp.LT)(this=age, expression=lit(frame.lower))
                result = exp.Case().when(fresh, result, copy=False)
            result = exp.Case().when(guard.copy(), self.cast(exp.Null(), a.dtype), copy=False).else_(result, copy=False)
            q = q.select(exp.alias_(result, ident(a.name), copy=False), copy=False)
        return q

    def join_newest(self, q: exp.Select, n: AsOfJoin, events: str, e: str, value: exp.Expression, inclusive: bool) -> exp.Select:
        """``q`` ASOF LEFT JOIN the newest non-NULL ``value`` per key at or before
        (``inclusive``) or before the spine row's time, as ``e``."""
        types = key_types(n)
        present = [exp.Not(this=exp.Is(this=paren(value.copy()), expression=exp.Null()))]
        present += [exp.Not(this=exp.Is(this=col(c), expression=exp.Null())) for _, c in n.on]
        present.append(exp.Not(this=exp.Is(this=col(n.event_time), expression=exp.Null())))
        keys = [
            as_name(self.cast(col(c), t) if n.events.schema.dtype(c) != t else col(c), key_name(j))
            for j, ((_, c), t) in enumerate(zip(n.on, types))
        ]
        newest = (
            exp.select(*keys, as_name(col(n.event_time), TIME), as_name(exp.Max(this=value), VALUE))
            .from_(ident(events), copy=False)
            .where(all_of(present), copy=False)
            .group_by(*[lit(j + 1) for j in range(len(keys) + 1)], copy=False)
        )
        on = [
            exp.EQ(
                this=self.cast(col(sk, "s"), t) if n.spine.schema.dtype(sk) != t else col(sk, "s"),
                expression=col(key_name(j), e),
            )
            for j, ((sk, _), t) in enumerate(zip(n.on, types))
        ]
        on.append((exp.GTE if inclusive else exp.GT)(this=col(n.spine_time, "s"), expression=col(TIME, e)))
        q = q.join(exp.Subquery(this=newest, alias=exp.TableAlias(this=ident(e))), on=all_of(on), join_type="left", copy=False)
        q.args["joins"][-1].set("method", "ASOF")
        return q

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
