"""DuckDB: the embedded default engine, in-process, no set-up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from sqlglot import exp

from relplan.backends.arrow_io import in_ir_types
from relplan.backends.asof import TIME, VALUE, key_name, key_types, newest_event_only, newest_rows, no_point, with_proven_properties
from relplan.backends.duckdb_udf import registered as udfs_registered
from relplan.backends.sql import SqlLowering, all_of, as_name, col, ident, lit, paren
from relplan.backends.tiles import TiledWindows
from relplan.ir import types as T
from relplan.ir.errors import EngineError
from relplan.ir.graph import walk
from relplan.ir.expr import Column
from relplan.ir.nodes import AsOfJoin, Sink, Source, WindowAggregate

# At DEBUG: each query's SQL, and its times (ms) to prepare, to run and fetch, to type.
_log = logging.getLogger("relplan.engine.duckdb")


class DuckDBLowering(SqlLowering):
    dialect = "duckdb"
    engine = "duckdb"
    PYTHON_UDFS = True  # registered for each run: backends/duckdb_udf.py

    def mean_input(self, e: exp.Expression, t: T.DataType) -> exp.Expression:
        # AVG(BIGINT) sums exactly (HUGEINT) and returns DOUBLE: no early rounding.
        return e

    def asof_join_ctes(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        if n.lowering == "asof" and newest_rows(n):
            return self.asof_join_newest_rows(n, spine, events, k)
        if n.lowering == "asof" and newest_event_only(n):
            return self.asof_join(n, spine, events, k)
        return super().asof_join_ctes(n, spine, events, k)

    def asof_join_newest_rows(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        """last() at each spine row where the newest event's row holds every answer
        (``newest_rows``: events unique per key and time, no NULL argument): one ASOF
        JOIN per filter and edge (most joins: one in all) selecting every column read,
        nothing to settle, as DuckDB's ASOF JOIN by hand. A spine row with a NULL key
        or time gets NULLs (the guard); events with a NULL key are left out (the
        ASOF JOIN would match none either way). A lower frame bound (a TTL) is checked
        on the time found. One CTE."""
        types = key_types(n)
        spine_keys = [
            self.cast(col(sk, "s"), t) if n.spine.schema.dtype(sk) != t else col(sk, "s") for (sk, _), t in zip(n.on, types)
        ]
        event_keys = [
            as_name(self.cast(col(c), t) if n.events.schema.dtype(c) != t else col(c), key_name(j))
            for j, ((_, c), t) in enumerate(zip(n.on, types))
        ]
        joins: dict[tuple[object, ...], list[str]] = {}  # (filter, edge) -> the columns it reads
        for frame, a in n.calls:
            assert isinstance(a.arg, Column)
            read = joins.setdefault((a.filter, frame.upper_inclusive), [])
            if a.arg.name not in read:
                read.append(a.arg.name)
        q = exp.select(*[col(f.name, "s") for f in n.spine.schema]).from_(exp.Table(this=ident(spine)).as_(ident("s")), copy=False)
        for i, ((filt, inclusive), read) in enumerate(joins.items()):
            present = [self.keys_present(tuple(c for _, c in n.on))]
            if filt is not None:
                present.append(paren(self.expr(filt)))  # type: ignore[arg-type]
            candidates = exp.select(
                *[e.copy() for e in event_keys], as_name(col(n.event_time), TIME),
                *[as_name(col(c), f"{VALUE}{j}") for j, c in enumerate(read)],
            ).from_(ident(events), copy=False).where(all_of(present), copy=False)
            e = f"e{i}"
            on = [exp.EQ(this=spine_keys[j].copy(), expression=col(key_name(j), e)) for j in range(len(n.on))]
            later = exp.GTE if inclusive else exp.GT
            on.append(later(this=col(n.spine_time, "s"), expression=col(TIME, e)))
            q = q.join(exp.Subquery(this=candidates, alias=exp.TableAlias(this=ident(e))), on=all_of(on), join_type="left", copy=False)
            q.args["joins"][-1].set("method", "ASOF")
        guard = self.expr(no_point(n))
        for c in guard.find_all(exp.Column):
            c.set("table", ident("s"))  # the spine's key and time
        keys = list(joins)
        for frame, a in n.calls:
            assert isinstance(a.arg, Column)
            i = keys.index((a.filter, frame.upper_inclusive))
            e = f"e{i}"
            result: exp.Expression = col(f"{VALUE}{joins[keys[i]].index(a.arg.name)}", e)
            if frame.lower is not None:
                age = exp.Sub(this=self.epoch_us(col(n.spine_time, "s")), expression=self.epoch_us(col(TIME, e)))
                fresh = (exp.LTE if frame.lower_inclusive else exp.LT)(this=age, expression=lit(frame.lower))
                result = exp.Case().when(fresh, result, copy=False)
            result = exp.Case().when(guard.copy(), self.cast(exp.Null(), a.dtype), copy=False).else_(result, copy=False)
            q = q.select(exp.alias_(result, ident(a.name), copy=False), copy=False)
        return [(f"t{k}", q)]

    def asof_join(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        """last() at each spine row by DuckDB's ASOF JOIN. Per distinct value (and
        filter, and edge): the ASOF JOIN finds the newest event time with a non-NULL
        value at or before (or before) the row's time; among events tied at that time
        it picks any, so an equi-join of the matches with the events finds where a tied
        event holds a larger value (last()'s tie rule: the largest), and only those
        matches change. Cheaper than reducing every event to one row per key and time
        first (bench/test_pitc_bench.py), but still a second pass over the events:
        where the events are known unique per key and time (``unique_times``: declared,
        seen by pitc_join_features in a log in time order, or proven on the run's
        tables by ``with_proven_properties``) the ASOF JOIN's match is the answer
        (and where no argument is NULL either, ``asof_join_newest_rows`` joins once
        for all of them). A lower frame bound (a TTL) is checked on the time found: if the
        newest is too old, all are. CTEs: the ASOF JOINs, one per value the larger
        tied values (none where ``unique_times``), the result."""
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
            # Only the matches a tied event beats: events at a time found whose value is
            # larger than the one the ASOF JOIN picked (usually none, so the GROUP BY
            # and the join back are nearly free), the largest of them per key and time.
            # The matches are made distinct first: DuckDB then builds its hash table on
            # them (on the bare matches it built it on the events). CPU against the ASOF
            # JOIN by hand, 3M events without ties: this 1.31x, the bare matches 1.47x,
            # the largest value at every time found (a GROUP BY and a join back of
            # every match, the earlier form) 1.37x; with ties all about 1.46x.
            found_at = [*(col(key_name(j)) for j in range(len(n.on))), col(f"{TIME}{i}"), col(f"{VALUE}{i}")]
            matches = exp.select(*found_at).distinct().from_(ident(f"t{k}"), copy=False).where(
                exp.Not(this=exp.Is(this=col(f"{TIME}{i}"), expression=exp.Null())), copy=False
            )
            tie_on = [exp.EQ(this=col(key_name(j), "m"), expression=col(key_name(j), "c")) for j in range(len(n.on))]
            tie_on.append(exp.EQ(this=col(f"{TIME}{i}", "m"), expression=col(TIME, "c")))
            tie_on.append(exp.GT(this=col(VALUE, "c"), expression=col(f"{VALUE}{i}", "m")))
            ties = (
                exp.select(*[col(key_name(j), "m") for j in range(len(n.on))], col(f"{TIME}{i}", "m"), as_name(exp.Max(this=col(VALUE, "c")), VALUE))
                .from_(exp.Subquery(this=matches, alias=exp.TableAlias(this=ident("m"))), copy=False)
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
            picked = col(f"{VALUE}{i}", "f")
            result: exp.Expression = picked if n.unique_times else exp.Coalesce(this=col(VALUE, f"v{i}"), expressions=[picked])
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
    # Only the zoned timestamp columns are replaced: rebuilding the whole table cost
    # more than the casts on small inputs.
    schema = table.schema
    out = table
    for i, t in enumerate(schema.types):
        if pa.types.is_timestamp(t) and t.tz is not None:
            out = out.set_column(i, schema.names[i], table.column(i).cast(pa.timestamp(t.unit)))
    return out


class DuckDBBackend:
    """Runs plans on DuckDB; pass ``connection=`` to use your own (e.g. with settings or
    extensions); the inputs are Arrow tables, registered on it for the run.

    Without ``connection=``, each run gets a fresh cursor of an in-memory database the
    process keeps open (``backends/duckdb_connections.py``): no connection set-up per
    call, nothing registered visible to another call. ``threads=`` caps DuckDB's worker
    threads for the run (on your connection: restored afterwards).

    ``on_step``: called with a short text as a run moves on (registering inputs, each
    query): what a caller's progress bar shows."""

    name = "duckdb"
    on_step: Callable[[str], None] | None = None

    def __init__(self, connection: Any | None = None, threads: int | None = None) -> None:
        from relplan.ir.errors import RelplanError

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise RelplanError(f"threads= takes a positive int (DuckDB's worker threads), got {threads!r}")
        self._connection = connection
        self._threads = threads
        self.lowering = DuckDBLowering()

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        return self.lowering.to_sql(sinks, pretty=pretty)

    def run(self, sinks: tuple[Sink, ...], tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        # What this run's tables show (no NULL to skip, no tie to settle) lets an as-of
        # join take one ASOF JOIN for all its columns; only here, for these tables:
        # to_sql() never assumes it. Every run (rp.execute, training data, a local
        # deployment) comes through here.
        sinks = with_proven_properties(sinks, tables)
        registered: list[str] = []
        if self._connection is None:
            from relplan.backends.duckdb_connections import call_cursor

            # Closing the cursor drops what was registered on it (unregistering first
            # would cost a third of a ms per table).
            with call_cursor(self._threads) as cursor, udfs_registered(cursor, sinks):
                return self._run_on(cursor, sinks, tables, registered)
        con = self._connection
        before = None
        if self._threads is not None:
            # SET threads is the database's setting: the user's is put back after the run.
            ((before,),) = con.execute("SELECT current_setting('threads')").fetchall()
            con.execute(f"SET threads = {self._threads}")
        try:
            with udfs_registered(con, sinks):
                return self._run_on(con, sinks, tables, registered)
        finally:
            # What keeps one run's tables from the next on the user's connection.
            for name in registered:
                con.unregister(name)
            if before is not None:
                con.execute(f"SET threads = {int(before)}")

    def _run_on(
        self, con: Any, sinks: tuple[Sink, ...], tables: dict[str, pa.Table], registered: list[str]
    ) -> dict[str, pa.Table]:
        import duckdb

        debug = _log.isEnabledFor(logging.DEBUG)
        step = self.on_step
        if step is not None:
            step("registering inputs")
        t0 = time.perf_counter() if debug else 0.0
        for src in (n for n in walk(sinks) if isinstance(n, Source)):
            if src.name not in tables:  # never read whatever else has that name
                from relplan.ir.errors import DataError

                raise DataError(f"no table given for source {src.name!r} (given: {sorted(tables)})")
            con.register(src.name, _naive(tables[src.name]))
            registered.append(src.name)
        if debug:
            _log.debug(
                "duckdb: registered %s in %.2f ms (on %s)", ", ".join(f"{n} ({tables[n].num_rows} rows)" for n in registered),
                (time.perf_counter() - t0) * 1e3,
                "the connection passed" if self._connection is not None else f"a cursor of relplan's database, threads={self._threads}",
            )
        out = {}
        t1 = t2 = 0.0
        for s in sinks:
            sql = self.lowering.render(s, pretty=False)
            if step is not None:
                step(f"query {s.name}")
            if debug:
                _log.debug("duckdb: output %r, SQL:\n%s", s.name, sql)
                t0 = time.perf_counter()
            try:
                relation = con.sql(sql)
                if debug:
                    t1 = time.perf_counter()
                result = relation.to_arrow_table()  # DuckDB runs the query as it is fetched
            except duckdb.Error as e:
                raise EngineError(f"DuckDB failed on output {s.name!r}: {e}\nSQL:\n{sql}") from e
            if debug:
                t2 = time.perf_counter()
            out[s.name] = in_ir_types(result, s, "DuckDB")
            if debug:
                _log.debug(
                    "duckdb: output %r: %d rows; prepared in %.2f ms, ran and fetched in %.2f ms, typed in %.2f ms",
                    s.name, result.num_rows, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (time.perf_counter() - t2) * 1e3,
                )
        return out
