"""measure_statistics(): source statistics measured from tables, with DuckDB."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from relplan.backends.arrow_io import as_arrow
from relplan.ir.errors import DataError
from relplan.rules.statistics import SourceStats, Statistics


def measure_statistics(
    tables: Mapping[str, Any],
    *,
    columns: Mapping[str, Iterable[str]] | None = None,
    unique: Mapping[str, Iterable[Iterable[str]]] | None = None,
    arrival: Mapping[str, str] | None = None,
    event_time: Mapping[str, str] | None = None,
) -> Statistics:
    """Row counts, distinct counts of every column and the time each timestamp
    column spans, by source name.

    ``tables`` maps source names to pyarrow Tables or pandas DataFrames (a sample
    scales the row count only if you scale it: pass the full table for exact
    rows). ``columns``: per source, the columns to measure (default all of them).
    Distinct counts are DuckDB's HyperLogLog estimates (a few percent).
    ``unique``: per source, column sets to check exactly (no two rows share their
    values; NULLs count as values): those that are go into ``SourceStats.unique``.
    ``arrival``: per source, the column holding when each event arrived (a
    sample of the log with its ingestion times): the lateness quantiles are
    measured from it, an event's lateness being how far its event time lies behind
    the newest event time that arrived before it (``event_time`` names the event
    time where the table has more than one other timestamp column). The event rate
    is the rows over the event time's span (``SourceStats.rate_of``).
    Measure once, reuse the statistics for many runs.
    """
    import duckdb

    if not isinstance(tables, Mapping):
        raise DataError(f"measure_statistics() takes a dict of source name to table, got {type(tables).__name__}")
    out = {}
    con = duckdb.connect()
    try:
        for name, value in tables.items():
            table = as_arrow(value, name)
            con.register("t", table)
            cols = table.column_names
            if columns is not None and name in columns:
                cols = [c for c in cols if c in set(columns[name])]
            times = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.name in cols]
            (row,) = con.sql(
                "SELECT COUNT(*)"
                + "".join(f", APPROX_COUNT_DISTINCT({_quote(c)})" for c in cols)
                + "".join(f", EPOCH_US(MAX({_quote(c)})) - EPOCH_US(MIN({_quote(c)}))" for c in times)
                + " FROM t"
            ).fetchall()
            rows, distinct, spans = row[0], row[1 : 1 + len(cols)], row[1 + len(cols) :]
            held = [tuple(u) for u in (unique or {}).get(name, ())]
            for u in held:
                for c in u:
                    if c not in table.column_names:
                        raise DataError(f"unique columns {list(u)} of {name!r}: the table has no column {c!r}")
            checked = tuple(u for u in held if _is_unique(con, u, rows))
            lateness = ()
            if arrival is not None and name in arrival:
                lateness = _lateness(con, table, name, arrival[name], (event_time or {}).get(name))
            con.unregister("t")
            out[name] = SourceStats(
                rows=int(rows),
                distinct={c: max(1, int(d)) for c, d in zip(cols, distinct)},
                spans={c: int(s) for c, s in zip(times, spans) if s is not None},
                unique=checked,
                lateness=lateness,
            )
    finally:
        con.close()
    return Statistics(out)


LATENESS_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def _lateness(con: Any, table: pa.Table, name: str, arrival: str, event_time: str | None) -> tuple[tuple[float, int], ...]:
    """Quantiles of lateness: in arrival order, how far each event's time lies behind
    the newest event time before it (0 for the first and for events in order)."""
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if arrival not in stamps:
        raise DataError(f"arrival column {arrival!r} of {name!r} is not a timestamp column of the table; its timestamps: {stamps}")
    if event_time is None:
        others = [c for c in stamps if c != arrival]
        if len(others) != 1:
            raise DataError(f"which column of {name!r} is the event time? pass event_time={{{name!r}: <column>}} (timestamps: {others})")
        event_time = others[0]
    elif event_time not in stamps or event_time == arrival:
        raise DataError(f"event time {event_time!r} of {name!r} is not another timestamp column; its timestamps: {stamps}")
    ts, arr = _quote(event_time), _quote(arrival)
    qs = ", ".join(repr(q) for q in LATENESS_QUANTILES)
    ((values,),) = con.sql(
        f"SELECT QUANTILE_DISC(late, [{qs}]) FROM (SELECT GREATEST(0, EPOCH_US(MAX({ts}) OVER ("
        f"ORDER BY {arr}, {ts} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) - EPOCH_US({ts})) AS late "
        f"FROM t WHERE {ts} IS NOT NULL AND {arr} IS NOT NULL)"
    ).fetchall()
    if values is None:
        return ()
    return tuple((q, int(v or 0)) for q, v in zip(LATENESS_QUANTILES, values))


def _is_unique(con: Any, columns: tuple[str, ...], rows: int) -> bool:
    """Exactly: as many distinct value tuples as rows (a GROUP BY, not an estimate)."""
    keys = ", ".join(_quote(c) for c in columns)
    ((groups,),) = con.sql(f"SELECT COUNT(*) FROM (SELECT 1 FROM t GROUP BY {keys})").fetchall()
    return int(groups) == int(rows)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
