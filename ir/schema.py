"""Schemas: ordered, named, typed columns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from difflib import get_close_matches

import pyarrow as pa

from relplan.ir.errors import SchemaError
from relplan.ir.types import DataType, from_arrow


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    dtype: DataType

    def __repr__(self) -> str:
        return f"{self.name}: {self.dtype}"


@dataclass(frozen=True, slots=True)
class Schema:
    """An ordered tuple of fields with unique names."""

    fields: tuple[Field, ...]
    _by_name: dict[str, Field] = dataclass_field(init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            seen: set[str] = set()
            dup = next(f.name for f in self.fields if f.name in seen or seen.add(f.name))  # type: ignore[func-returns-value]
            raise SchemaError(f"duplicate column name {dup!r}")
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, DataType]]) -> Schema:
        return cls(tuple(Field(n, t) for n, t in pairs))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def field(self, name: str, *, context: str = "") -> Field:
        f = self._by_name.get(name)
        if f is None:
            raise SchemaError(unknown_column_message(name, self.names, context))
        return f

    def dtype(self, name: str) -> DataType:
        return self.field(name).dtype

    def to_arrow(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.dtype.to_arrow()) for f in self.fields])

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        return cls.of((f.name, from_arrow(f.type, column=f.name)) for f in schema)

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(f) for f in self.fields) + ")"


def unknown_column_message(name: str, available: Iterable[str], context: str = "") -> str:
    available = list(available)
    hint = get_close_matches(name, available, n=1)
    where = f" {context}" if context else ""
    msg = f"unknown column {name!r}{where}; available: {', '.join(available)}"
    if hint:
        msg += f" (did you mean {hint[0]!r}?)"
    return msg
