"""Tables in: checked against their source's declaration and brought to canonical types."""

from __future__ import annotations

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
    return pa.Table.from_arrays(arrays, schema=source.columns.to_arrow())


def in_ir_types(result: pa.Table | None, sink: Sink, engine: str) -> pa.Table:
    """An engine's result for ``sink`` cast to the output's IR types (None: no rows)."""
    target = sink.schema.to_arrow()
    if result is None:
        return target.empty_table()
    try:
        return result.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:  # e.g. an Int64 out of range
        raise EngineError(f"{engine}'s result for output {sink.name!r} does not fit its IR types: {e}") from e
