"""Schemas: ordered, named, typed columns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from threading import Lock

import pyarrow as pa

from relplan.ir.errors import SchemaError
from relplan.ir.types import DataType, from_arrow


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    dtype: DataType

    def __repr__(self) -> str:
        return f"{self.name}: {self.dtype}"


class Schema:
    """An ordered tuple of fields with unique names; immutable.

    ``extend`` shares its storage with the schema it extends: a plan of n stacked
    window nodes, each adding a column to its input's schema, stores and indexes n
    columns in all, not n**2 / 2 (compiling 10,000 features was quadratic in exactly
    this). A schema sees the first ``len(self)`` columns of its storage; columns past
    that belong to schemas extending it.
    """

    __slots__ = ("_columns", "_n", "_index", "_fields", "_names", "_hash")

    def __init__(self, fields: Iterable[Field]) -> None:
        fields = tuple(fields)
        index = {f.name: i for i, f in enumerate(fields)}
        if len(index) != len(fields):
            seen: set[str] = set()
            dup = next(f.name for f in fields if f.name in seen or seen.add(f.name))  # type: ignore[func-returns-value]
            raise SchemaError(f"duplicate column name {dup!r}")
        self._init(list(fields), len(fields), index, fields)

    def _init(self, columns: list[Field], n: int, index: dict[str, int], fields: tuple[Field, ...] | None) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_columns", columns)  # shared with extensions, append-only
        setattr_(self, "_n", n)
        setattr_(self, "_index", index)  # name -> position, shared like _columns
        setattr_(self, "_fields", fields)  # the first n columns as a tuple, made when asked for
        setattr_(self, "_names", None)  # their names, likewise
        setattr_(self, "_hash", None)

    @property
    def fields(self) -> tuple[Field, ...]:
        f = self._fields
        if f is None:
            f = tuple(self._columns[: self._n])
            object.__setattr__(self, "_fields", f)
        return f

    def extend(self, extra: Iterable[Field]) -> Schema:
        """This schema's fields followed by ``extra`` (names unique across both)."""
        extra = tuple(extra)
        n = self._n
        with _EXTEND_LOCK:
            columns, index = self._columns, self._index
            if len(columns) != n:  # another schema extends this one already: branch off a copy
                columns = columns[:n]
                index = {f.name: i for i, f in enumerate(columns)}
            for i, f in enumerate(extra, n):
                if f.name in index:
                    for g in extra[: i - n]:  # leave shared storage as it was
                        del index[g.name]
                    raise SchemaError(f"duplicate column name {f.name!r}")
                index[f.name] = i
            columns.extend(extra)
        out = object.__new__(Schema)
        out._init(columns, n + len(extra), index, None)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        if self._columns is other._columns:  # one storage: equal prefixes
            return self._n == other._n
        return self._n == other._n and self.fields == other.fields

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(self.fields)
            object.__setattr__(self, "_hash", h)
        return h

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Schema is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[type[Schema], tuple[tuple[Field, ...]]]:
        return (Schema, (self.fields,))

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, DataType]]) -> Schema:
        return cls(tuple(Field(n, t) for n, t in pairs))

    @property
    def names(self) -> tuple[str, ...]:
        names = self._names
        if names is None:  # asked for by rules for every node of every pass
            names = tuple(f.name for f in self.fields)
            object.__setattr__(self, "_names", names)
        return names

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        i = self._index.get(name)  # type: ignore[call-overload]
        return i is not None and i < self._n

    def field(self, name: str, *, context: str = "") -> Field:
        i = self._index.get(name)
        if i is None or i >= self._n:
            raise SchemaError(unknown_column_message(name, self.names, context))
        return self._columns[i]

    def has_all(self, columns: Iterable[tuple[str, DataType | None]]) -> bool:
        """Has this schema every one of ``columns`` (name, and type unless None)?"""
        index, n, fields = self._index, self._n, self._columns
        for name, dtype in columns:
            i = index.get(name)
            if i is None or i >= n or (dtype is not None and fields[i].dtype != dtype):
                return False
        return True

    def dtype(self, name: str) -> DataType:
        return self.field(name).dtype

    def to_arrow(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.dtype.to_arrow()) for f in self.fields])

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        return cls.of((f.name, from_arrow(f.type, column=f.name)) for f in schema)

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(f) for f in self.fields) + ")"


def names_in(schemas: Iterable[Schema]) -> set[str]:
    """Every column name of any of ``schemas`` (perhaps more: names of schemas that
    extend them), in time linear in the distinct name indexes, not in the sum of the
    schemas' lengths (which is quadratic for stacked nodes)."""
    indexes = {id(s._index): s._index for s in schemas}
    return set().union(*indexes.values())


_EXTEND_LOCK = Lock()  # extending a shared index is check-then-add


def unknown_column_message(name: str, available: Iterable[str], context: str = "") -> str:
    available = list(available)
    hint = get_close_matches(name, available, n=1)
    where = f" {context}" if context else ""
    msg = f"unknown column {name!r}{where}; available: {', '.join(available)}"
    if hint:
        msg += f" (did you mean {hint[0]!r}?)"
    return msg
