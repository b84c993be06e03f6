"""The lookup join's promise, checked on the data: at most one right row per key.

A ``Join`` with ``lookup=True`` declares its right side a lookup table (merchants,
accounts: one row per ``on`` key), so the join never repeats a left row. Engines
cannot check that promise, and a broken one multiplies rows silently; so a run
checks it on the right side's table before any engine starts, and names a
duplicated key:

    check_lookup_keys(plan.outputs, {"Transactions": tx, "Merchants": merchants})
    # DataError: lookup table 'Merchants' has 2 rows for merchant_id = 7; ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from relplan.ir.errors import DataError
from relplan.ir.expr import Column
from relplan.ir.graph import walk
from relplan.ir.nodes import Filter, Join, Node, Project, Sink, Source

def check_lookup_keys(sinks: Iterable[Sink], tables: Mapping[str, Any]) -> None:
    """Raise a ``DataError`` if the table under a lookup join's right side has two rows
    with the same (non-NULL) key.

    ``tables``: source name -> pyarrow Table, as given to the run. The table checked
    is the source's own, whatever filters lie between it and the join: a lookup
    table is declared unique per key as a table, and a check of the table gives the
    same answer for the plan as written and as optimized (push_down_filter moves
    filters into the right side of inner joins). Key names are followed down through
    filters and projections that pass a column on unchanged (renamed or not); a key
    computed by an expression, or a right side of another kind (an aggregate, a
    union, another join), cannot be traced to one source column and is not checked.
    A source given as a table *name* (a string: a table the engine already holds,
    as Spark's ``session.table``) is not checked either: relplan never reads it.
    Rows with a NULL in a key are ignored (a NULL key matches nothing).
    """
    checked: set[tuple[str, tuple[str, ...]]] = set()
    for n in walk(tuple(sinks)):
        if not isinstance(n, Join) or not n.lookup:
            continue
        traced = _trace_to_source(n.right, tuple(rk for _, rk in n.on))
        if traced is None:
            continue
        source, columns = traced
        table = tables.get(source.name)
        if not isinstance(table, pa.Table) or (source.name, columns) in checked:
            continue
        checked.add((source.name, columns))
        _check_unique(table, source.name, columns)


def _trace_to_source(n: Node, keys: tuple[str, ...]) -> tuple[Source, tuple[str, ...]] | None:
    """The source below ``n`` and its columns that ``keys`` of ``n`` are, or None
    where a key is computed or ``n`` is not a chain of filters and projections."""
    while True:
        if isinstance(n, Source):
            return n, keys
        if isinstance(n, Filter):
            n = n.input
            continue
        if isinstance(n, Project):
            exprs = dict(n.exprs)
            traced = []
            for k in keys:
                e = exprs[k]
                if not isinstance(e, Column):
                    return None  # a computed key: its values are not a column of the table
                traced.append(e.name)
            keys, n = tuple(traced), n.input
            continue
        return None


def _check_unique(table: pa.Table, name: str, columns: tuple[str, ...]) -> None:
    # Keys renamed k0, k1, ...: pyarrow names the count "count_all", which a key column may be.
    keys = [f"k{i}" for i in range(len(columns))]
    present = None
    for c in columns:
        valid = pc.is_valid(table.column(c))
        present = valid if present is None else pc.and_(present, valid)
    keyed = pa.table(
        {k: _as_join_compares(table.column(c).filter(present)) for k, c in zip(keys, columns)}  # type: ignore[arg-type]
    )
    if keyed.num_rows < 2:
        return
    counts = keyed.group_by(keys).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dupes.num_rows == 0:
        return
    # The most repeated key (the smallest such key among ties): the same message every run.
    first = dupes.sort_by([("count_all", "descending"), *((k, "ascending") for k in keys)]).slice(0, 1).to_pylist()[0]
    where = ", ".join(f"{c} = {_value(first[k])}" for k, c in zip(keys, columns))
    raise DataError(
        f"lookup table {name!r} has {first['count_all']} rows for {where}; a lookup join needs one row per key "
        "(deduplicate it, or join with merge_asof if it holds versions)"
    )


def _as_join_compares(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Key values as the join tells them apart: -0.0 and 0.0 are one key (x + 0.0 is +0.0 for both)."""
    return pc.add(values, 0.0) if pa.types.is_floating(values.type) else values


def _value(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)
