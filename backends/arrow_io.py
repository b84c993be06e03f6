"""Tables in: checked against their source's declaration and brought to canonical types."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from relplan.ir.errors import DataError, EngineError, RelplanError
from relplan.ir.nodes import Sink, Source
from relplan.ir.types import from_arrow


def as_arrow(value: Any, name: str) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if hasattr(value, "to_arrow_table"):  # a DuckDB relation or RecordBatchReader
        return value.to_arrow_table()
    if type(value).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(value, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            # e.g. an object column mixing ints and strings: name the source and column.
            raise DataError(f"table for source {name!r} cannot be read by pyarrow: {e}") from None
    raise DataError(f"table for source {name!r} must be a pyarrow Table or pandas DataFrame, got {type(value).__name__}")


def conform_table(source: Source, value: Any) -> pa.Table:
    """``value`` with exactly the source's columns, in canonical arrow types.

    Lossless widenings are accepted (int32 -> Int64, naive timestamps read as UTC,
    NaN read as NULL as pandas does); anything else is a DataError naming the column.
    """
    table = as_arrow(value, source.name)
    schema = arrow_schema(source)
    if table.schema.equals(schema) and _conforms(source, table):
        # Already canonical (e.g. a table a previous run conformed, or one built with the
        # source's schema): the loop below would rebuild it unchanged, which was a third
        # of execute()'s own time on small inputs. Metadata is dropped, as the loop does.
        if table.schema.equals(schema, check_metadata=True):
            return table
        return pa.Table.from_arrays(table.columns, schema=schema)
    arrays = []
    for f in source.columns:
        if f.name not in table.column_names:
            raise DataError(
                f"table for source {source.name!r} lacks column {f.name!r} ({f.dtype}); "
                f"it has {table.column_names}"
            )
        col = table.column(f.name)
        try:
            got = from_arrow(col.type, column=f.name)
        except RelplanError as e:
            raise DataError(f"table for source {source.name!r}: {e.message}") from None
        if got != f.dtype and not (got.name == "Null"):
            raise DataError(
                f"column {f.name!r} of the table for source {source.name!r} is {col.type} ({got}), "
                f"but the source declares {f.dtype}"
            )
        target = f.dtype.to_arrow()
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = col.cast(pa.timestamp(col.type.unit)).cast(pa.timestamp(col.type.unit, tz="UTC"))
        try:
            arrays.append(col.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(
                f"column {f.name!r} of the table for source {source.name!r} ({col.type}) cannot be read "
                f"as {f.dtype} without loss: {e}"
            ) from None
        if f.name == source.event_time and arrays[-1].null_count:
            raise DataError(
                f"event-time column {f.name!r} of the table for source {source.name!r} has "
                f"{arrays[-1].null_count} NULL value(s); every event needs a time"
            )
    return pa.Table.from_arrays(arrays, schema=schema)


@lru_cache(maxsize=256)  # as many as the rendered SQL kept (a sink keeps its plan alive)
def arrow_schema(node: Source | Sink) -> pa.Schema:
    """The canonical arrow schema of a source's columns or an output's, built once per
    node (nodes hash once; building the schema again costs more than the look-up)."""
    return node.columns.to_arrow() if isinstance(node, Source) else node.schema.to_arrow()


def _conforms(source: Source, table: pa.Table) -> bool:
    """A table of the source's arrow schema needs no change: no NaN to read as NULL,
    and (checked here so that the loop raises the error) no NULL event time."""
    floats, time = _columns_to_check(source)
    for i in floats:
        col = table.column(i)
        if col.null_count < len(col) and pc.any(pc.is_nan(col)).as_py():
            return False
    return time is None or table.column(time).null_count == 0


@lru_cache(maxsize=1024)
def _columns_to_check(source: Source) -> tuple[tuple[int, ...], int | None]:
    """Positions of the source's Float64 columns and of its event time."""
    floats = tuple(i for i, f in enumerate(source.columns) if pa.types.is_floating(f.dtype.to_arrow()))
    names = [f.name for f in source.columns]
    return floats, names.index(source.event_time) if source.event_time in names else None


def in_ir_types(result: pa.Table | None, sink: Sink, engine: str) -> pa.Table:
    """An engine's result for ``sink`` cast to the output's IR types (None: no rows)."""
    target = arrow_schema(sink)
    if result is None:
        return target.empty_table()
    try:
        if result.schema.names == target.names:
            # Cast only the columns whose type differs (on DuckDB: the timestamps, read
            # back naive): casting the whole table cost several times more.
            out = result
            for i, (got, want) in enumerate(zip(result.schema.types, target.types)):
                if got != want:
                    out = out.set_column(i, target.field(i), result.column(i).cast(want))
            if out.schema.equals(target, check_metadata=True):
                return out
        return result.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:  # e.g. an Int64 out of range
        raise EngineError(f"{engine}'s result for output {sink.name!r} does not fit its IR types: {e}") from e
