"""Logical data types and their pyarrow counterparts.

relplan has few types on purpose: every backend must give each one the same
meaning. Timestamps are always microseconds in UTC; a table whose timestamps are
naive is read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from relplan.ir.errors import SchemaError


@dataclass(frozen=True, slots=True)
class DataType:
    """A logical type; compare by name."""

    name: str

    def __repr__(self) -> str:
        return self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in ("Int64", "Float64")

    @property
    def is_orderable(self) -> bool:
        return self.name != "Bool"

    def to_arrow(self) -> pa.DataType:
        return _TO_ARROW[self.name]


Int64 = DataType("Int64")
Float64 = DataType("Float64")
String = DataType("String")
Bool = DataType("Bool")
Timestamp = DataType("Timestamp")
Date = DataType("Date")
Null = DataType("Null")  # the type of a bare None literal; unifies with anything

ALL_TYPES = (Int64, Float64, String, Bool, Timestamp, Date)

_TO_ARROW = {
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "String": pa.string(),
    "Bool": pa.bool_(),
    "Timestamp": pa.timestamp("us", tz="UTC"),
    "Date": pa.date32(),
    "Null": pa.null(),
}


def from_arrow(arrow_type: pa.DataType, *, column: str = "?") -> DataType:
    """The logical type an arrow column is read as; lossless widenings only."""
    if pa.types.is_integer(arrow_type):
        if arrow_type == pa.uint64():
            raise SchemaError(f"column {column!r}: uint64 does not fit Int64 losslessly")
        return Int64
    if pa.types.is_floating(arrow_type):
        return Float64
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return String
    if pa.types.is_boolean(arrow_type):
        return Bool
    if pa.types.is_timestamp(arrow_type):
        if arrow_type.tz not in (None, "UTC", "+00:00", "Etc/UTC"):
            raise SchemaError(
                f"column {column!r}: timestamps must be UTC or naive (read as UTC), "
                f"got time zone {arrow_type.tz!r}; convert with pyarrow.compute.cast first"
            )
        return Timestamp
    if pa.types.is_date(arrow_type):
        return Date
    if pa.types.is_null(arrow_type):
        return Null
    raise SchemaError(f"column {column!r}: arrow type {arrow_type} has no relplan type")


def common_type(a: DataType, b: DataType) -> DataType | None:
    """The type two operands are compared or combined in, or None if incompatible."""
    if a == b:
        return a
    if a == Null:
        return b
    if b == Null:
        return a
    if a.is_numeric and b.is_numeric:
        return Float64
    return None
