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
            return self.asof_join(n, spine, events, k)
        return super().asof_join_ctes(n, spine, events, k)

    def asof_join(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        """last() at each spine row by DuckDB's ASOF JOIN. Per distinct value (and
        filter, and edge): the ASOF JOIN finds the newest event time with a non-NULL
        value at or before (or before) the row's time; among events tied at that time
        it picks any, so the largest value there (last()'s tie rule) is looked up by an
        equi-join of the times found with the events. Cheaper than reducing every
        event to one row per key and time first (bench/test_pitc_bench.py). A lower
        frame bound (a TTL) is checked on the time found: if the newest is too old,
        all are. CTEs: the ASOF JOINs, one per value the ties' maxima (none where the
        events are declared unique per key and time), the result."""
        types = key_types(n)
        spine_keys = [
            self.cast(col(sk, "s"), t) if n.spine.schema.dtype(sk) != t else col(sk, "s") for (sk, _), t in zip(n.on, types)
        ]
        found = exp.select(
            *[col(f.name, "s") for f in n.spine.schema], *[as_name(e.copy(), key_name(j)) for j, e in enumerate(spine_keys)]
        ).from_(
            exp.Table(this=ident(spine)).as_(ident("s")), copy=False
        )
        values: dict[tuple[object, ...], int] = {}  # one ASOF JOIN per value, filter and edge
        ctes: list[tuple[str, exp.Expression]] = []
        for frame, a in n.calls:
            assert a.arg is not None
            key = (a.arg, a.filter, frame.upper_inclusive)
            if key in values:
                continue
            i = values[key] = len(values)
            value = self.masked(a.arg, a.filter)
            present = [
                exp.Not(this=exp.Is(this=paren(value.copy()), expression=exp.Null())),
                self.keys_present(tuple(c for _, c in n.on)),
            ]
            event_keys = [
                as_name(self.cast(col(c), t) if n.events.schema.dtype(c) != t else col(c), key_name(j))
                for j, ((_, c), t) in enumerate(zip(n.on, types))
            ]
            candidates = exp.select(*event_keys, as_name(col(n.event_time), TIME), as_name(value, VALUE)).from_(
                ident(events), copy=False
            ).where(all_of(present), copy=False)
            e = f"e{i}"
            on = [exp.EQ(this=spine_keys[j].copy(), expression=col(key_name(j), e)) for j in range(len(n.on))]
            later = exp.GTE if frame.upper_inclusive else exp.GT
            on.append(later(this=col(n.spine_time, "s"), expression=col(TIME, e)))
            found = found.join(exp.Subquery(this=candidates, alias=exp.TableAlias(this=ident(e))), on=all_of(on), join_type="left", copy=False)
            found.args["joins"][-1].set("method", "ASOF")
            found = found.select(as_name(col(TIME, e), f"{TIME}{i}"), as_name(col(VALUE, e), f"{VALUE}{i}"), copy=False)
            if n.unique_times:
                continue  # declared: one event per key and time, nothing to settle
            # The largest value among the events tied at each time found.
            times = exp.select(*[col(key_name(j)) for j in range(len(n.on))], col(f"{TIME}{i}")).distinct().from_(
                ident(f"t{k}"), copy=False
            ).where(exp.Not(this=exp.Is(this=col(f"{TIME}{i}"), expression=exp.Null())), copy=False)
            tie_on = [exp.EQ(this=col(key_name(j), "m"), expression=col(key_name(j), "c")) for j in range(len(n.on))]
            tie_on.append(exp.EQ(this=col(f"{TIME}{i}", "m"), expression=col(TIME, "c")))
            ties = (
                exp.select(*[col(key_name(j), "m") for j in range(len(n.on))], col(f"{TIME}{i}", "m"), as_name(exp.Max(this=col(VALUE, "c")), VALUE))
                .from_(exp.Subquery(this=times, alias=exp.TableAlias(this=ident("m"))), copy=False)
                .join(exp.Subquery(this=candidates.copy(), alias=exp.TableAlias(this=ident("c"))), on=all_of(tie_on), join_type="inner", copy=False)
                .group_by(*[col(key_name(j), "m") for j in range(len(n.on))], col(f"{TIME}{i}", "m"), copy=False)
            )
            ctes.append((f"t{k + 1 + i}", ties))
        guard = self.expr(no_point(n))
        out = exp.select(*[col(f.name, "f") for f in n.spine.schema]).from_(exp.Table(this=ident(f"t{k}")).as_(ident("f")), copy=False)
        for i in range(len(ctes)):
            on = [exp.EQ(this=col(key_name(j), "f"), expression=col(key_name(j), f"v{i}")) for j in range(len(n.on))]
            on.append(exp.EQ(this=col(f"{TIME}{i}", "f"), expression=col(f"{TIME}{i}", f"v{i}")))
            out = out.join(exp.Table(this=ident(f"t{k + 1 + i}")).as_(ident(f"v{i}")), on=all_of(on), join_type="left", copy=False)
        for frame, a in n.calls:
            i = values[(a.arg, a.filter, frame.upper_inclusive)]
            result: exp.Expression = col(f"{VALUE}{i}", "f") if n.unique_times else col(VALUE, f"v{i}")
            if frame.lower is not None:
                age = exp.Sub(this=self.epoch_us(col(n.spine_time, "f")), expression=self.epoch_us(col(f"{TIME}{i}", "f")))
                fresh = (exp.LTE if frame.lower_inclusive else exp.LT)(this=age, expression=lit(frame.lower))
                result = exp.Case().when(fresh, result, copy=False)
            result = exp.Case().when(guard.copy(), self.cast(exp.Null(), a.dtype), copy=False).else_(result, copy=False)
            out = out.select(exp.alias_(result, ident(a.name), copy=False), copy=False)
        return [(f"t{k}", found), *ctes, (f"t{k + 1 + len(ctes)}", out)]

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
