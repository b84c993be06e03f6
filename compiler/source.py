"""Typed sources declared as classes, the way a data scientist writes them.

    class Transactions(rp.Source):
        account_id: rp.Int64 = rp.key()
        amt: rp.Float64
        ts: rp.Timestamp = rp.event_time(lateness="5m")
"""

from __future__ import annotations

import datetime as dt
import inspect
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from relplan.ir import nodes
from relplan.ir.errors import SchemaError
from relplan.ir.schema import Schema
from relplan.ir.types import DataType, Timestamp
from relplan.ir.windows import parse_duration

if TYPE_CHECKING:
    # To a type checker a source class has the DataFrame API (tx.groupby(...),
    # tx[mask], tx.assign(...)) besides the columns it declares: a transformation's
    # parameter ``tx: Transactions`` is a frame over Transactions when it runs. The
    # base is plain ``object`` at run time.
    from relplan.compiler.dsl import DataFrameAPI as _SourceBase
else:
    _SourceBase = object


@dataclass(frozen=True)
class _EventTime:
    lateness: int


@dataclass(frozen=True)
class _Key:
    pass


def event_time(lateness: str | dt.timedelta | int = 0) -> Any:
    """Mark the event-time column; ``lateness`` is how late events may arrive ("5m").

    Typed ``Any``, as ``dataclasses.field()`` is, so that ``ts: rp.Timestamp = rp.event_time()``
    type-checks: the marker is read when the class is declared, never used as a value."""
    us = 0 if lateness in (0, "0", "") else parse_duration(lateness, what="allowed lateness")
    return _EventTime(us)


def key() -> Any:
    """Mark an entity-key column (groupby keys need not be declared); typed ``Any`` as
    :func:`event_time` is."""
    return _Key()


def declared_columns(cls: type, caller: FrameType, what: str) -> list[tuple[str, DataType]]:
    """The (column, relplan type) pairs a class body annotates, resolved as written
    (strings under ``from __future__ import annotations`` are evaluated where the class is)."""
    raw = inspect.get_annotations(cls)  # the class's own, as written
    module_globals = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
    columns: list[tuple[str, DataType]] = []
    for col, ann in raw.items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, dict(module_globals), dict(caller.f_locals))
            except Exception as e:  # noqa: BLE001 - any failure is the user's annotation
                raise SchemaError(f"{what} {cls.__name__}: cannot resolve the type {ann!r} of column {col!r} ({e})") from None
        if not isinstance(ann, DataType):
            raise SchemaError(
                f"{what} {cls.__name__}: column {col!r} is annotated {ann!r}; use a relplan type "
                "such as rp.Int64, rp.Float64, rp.String, rp.Bool, rp.Timestamp or rp.Date"
            )
        columns.append((col, ann))
    return columns


class Source(_SourceBase):
    """Base class of typed sources; subclass it and annotate columns with relplan types."""

    __relplan_source__: ClassVar[nodes.Source]
    source_name: ClassVar[str]

    def __init_subclass__(cls, name: str | None = None, bounded: bool = True, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        columns = declared_columns(cls, sys._getframe(1), "source")
        event: str | None = None
        lateness = 0
        keys: list[str] = []
        for col, ann in columns:
            marker = cls.__dict__.get(col)
            if isinstance(marker, _EventTime):
                if event is not None:
                    raise SchemaError(f"source {cls.__name__} declares two event-time columns: {event!r} and {col!r}")
                if ann != Timestamp:
                    raise SchemaError(
                        f"source {cls.__name__}: event-time column {col!r} must be rp.Timestamp, not {ann}"
                    )
                event, lateness = col, marker.lateness
            elif isinstance(marker, _Key):
                keys.append(col)
        if not columns:
            raise SchemaError(f"source {cls.__name__} declares no columns")
        cls.source_name = name or cls.__name__
        # (ir.nodes' @node decorator makes a dataclass that type checkers do not see as one)
        cls.__relplan_source__ = nodes.Source(  # type: ignore[call-arg, unused-ignore]
            cls.source_name, Schema.of(columns), event, lateness, bounded, tuple(keys)
        )

    @classmethod
    def node(cls) -> nodes.Source:
        """The IR source node of this declaration."""
        return cls.__relplan_source__

    @classmethod
    def schema(cls) -> Schema:
        return cls.__relplan_source__.columns

    @classmethod
    def to_json(cls, *, canonical: bool = False) -> str:
        """This declaration as a relplan JSON document (catalog/serialize.py)."""
        from relplan.catalog.serialize import dumps, source_to_dict

        return dumps(source_to_dict(cls), canonical=canonical)

    @classmethod
    def from_json(cls, text: str | bytes) -> type[Source]:
        """The source class of a document ``to_json()`` wrote: a subclass of rp.Source with
        the same name, columns, event time, lateness, keys and boundedness (the same
        class for the same document)."""
        from relplan.catalog.serialize import loads, source_from_dict

        return source_from_dict(loads(text, "source"))

    @classmethod
    def to_arrow_schema(cls) -> pa.Schema:
        return cls.__relplan_source__.columns.to_arrow()

    @classmethod
    def from_arrow_schema(
        cls,
        name: str,
        schema: pa.Schema,
        *,
        event_time: str | None = None,
        lateness: str | int = 0,
        keys: tuple[str, ...] = (),
    ) -> type[Source]:
        """Declare a source from an arrow schema: ``rp.Source.from_arrow_schema("Tx", t.schema, event_time="ts")``."""
        logical = Schema.from_arrow(schema)
        ns: dict[str, Any] = {"__annotations__": {f.name: f.dtype for f in logical}}
        if event_time is not None:
            if event_time not in logical:
                raise SchemaError(f"event_time {event_time!r} is not a column of {name}: {list(logical.names)}")
            ns[event_time] = _EventTime(
                0 if lateness in (0, "0", "") else parse_duration(lateness, what="allowed lateness")
            )
        for k in keys:
            if k not in logical:
                raise SchemaError(f"key {k!r} is not a column of {name}: {list(logical.names)}")
            ns[k] = _Key()
        return type(name, (Source,), ns)
