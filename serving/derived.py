"""Derived and request-time features when served: the expression over served values.

A derived feature (``rp.derived``) is served by reading its input features from
the store as usual and evaluating its expression on those values and on the
request fields, which arrive as columns of the entity rows named like the fields.
The expression is evaluated by the reference executor (``backends/reference.py``):
a Project of the expressions over a source of the served values, the same IR node
training data computes on the engine, so every rule (division by zero is NULL,
NULL in gives NULL out, integer overflow, Python UDFs) is the IR's, defined once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from relplan.compiler.derived import DerivedFeature
from relplan.ir import nodes
from relplan.ir import types as T
from relplan.ir.errors import RelplanError
from relplan.ir.schema import Field, Schema
from relplan.serving.storage import StoreError

SERVED = "served"  # the source of served values and request fields in the evaluating plan


class DerivedEvaluator:
    """The Project computing ``derived`` over served columns ``values`` (name, type) and
    the request fields they read; built once per prepared request."""

    def __init__(self, derived: Sequence[DerivedFeature], values: Sequence[tuple[str, T.DataType]]) -> None:
        from relplan.backends.reference import ReferenceBackend

        self.derived = tuple(derived)
        fields = {n: Field(n, t) for n, t in values}
        self.request: dict[str, tuple[T.DataType, DerivedFeature, str]] = {}  # field -> type, a reader, its spelling
        for d in self.derived:
            for r in d.request:
                if r.name in fields:
                    raise StoreError(
                        f"derived feature {d.name} reads request field {r.request}.{r.name}, named like a feature "
                        "column it is served with; rename one"
                    )
                known = self.request.setdefault(r.name, (r.dtype, d, f"{r.request}.{r.name}"))
                if known[0] != r.dtype:
                    raise StoreError(f"request field {r.name!r} is read as {known[0]} and as {r.dtype}; declare it with one type")
        for name, (t, _, _) in self.request.items():
            fields[name] = Field(name, t)
        self.source = nodes.Source(SERVED, Schema(tuple(fields.values())))
        try:
            project = nodes.Project(self.source, tuple((d.name, d.expr) for d in self.derived))
        except RelplanError as e:
            raise StoreError(f"derived features {[d.name for d in self.derived]} cannot be served: {e.message}") from None
        self.sink = nodes.Sink(project, "derived")
        self.arrow = self.source.columns.to_arrow()
        self.backend = ReferenceBackend()

    def request_columns(self, rows: pa.Table) -> dict[str, pa.ChunkedArray]:
        """The request fields' values: the entity rows' columns named like them, in the declared types."""
        out = {}
        for name, (t, d, spelled) in self.request.items():
            if name not in rows.column_names:
                raise StoreError(
                    f"derived feature {d.name} reads request field {spelled}, but the entity rows have no column "
                    f"{name!r} (their columns: {rows.column_names}): pass the request's value as a column named {name!r}"
                )
            out[name] = _as_declared(rows.column(name), name, t, self.arrow.field(name).type, d.name)
        return out

    def evaluate(self, values: dict[str, pa.Array], request: dict[str, pa.ChunkedArray], n: int) -> dict[str, pa.ChunkedArray]:
        """Per derived feature, its values over ``n`` rows of served ``values`` and ``request`` columns."""
        arrays = []
        for f in self.source.columns:
            col = values[f.name] if f.name in values else request[f.name]
            arrays.append(col)
        table = pa.Table.from_arrays(arrays, schema=self.arrow) if n else self.arrow.empty_table()
        out = self.backend.run((self.sink,), {SERVED: table})["derived"]
        return {d.name: out.column(d.name) for d in self.derived}


def _as_declared(col: pa.ChunkedArray, name: str, t: T.DataType, target: pa.DataType, feature: str) -> pa.ChunkedArray:
    if col.type == target or pa.types.is_null(col.type):
        return col.cast(target)
    widening = t == T.Float64 and pa.types.is_integer(col.type) or t == T.Int64 and pa.types.is_integer(col.type)
    widening = widening or (pa.types.is_timestamp(target) and pa.types.is_timestamp(col.type))
    widening = widening or (pa.types.is_string(target) and pa.types.is_large_string(col.type))
    if not widening:
        raise StoreError(
            f"derived feature {feature} reads request field {name!r} as {t}, but the entity rows' column {name!r} is {col.type}"
        )
    try:
        return col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise StoreError(f"entity rows' column {name!r} cannot be read as {t} for derived feature {feature}: {e}") from None

