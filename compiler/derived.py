"""Derived and request-time features: expressions over features and the request.

    class Scoring(rp.Request):          # what arrives with the request being scored
        amount: rp.Float64

    amount_vs_avg = rp.derived("amount_vs_avg_30d", Scoring.amount / avg_amount_30d)
    spend_ratio = rp.derived("card_vs_merchant", card_sum_1d / rp.where(merchant_sum_1d > 0, merchant_sum_1d))

A derived feature's value at a row is its expression over the values, at that row,
of the features it reads (each as of the row's time, by its own keys) and of the
request fields (the spine's columns in training data, the request's values when
served, the event's own columns in a batch plan). Every path computes it the same
way: a Project of the expression over the input features' columns, with the IR's
semantics (division by zero is NULL, NULL in gives NULL out, ...). Its type is the
expression's IR type (``/`` is always Float64).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from relplan.compiler.dsl import SCORED_ROW, Series, ValueOps, as_series
from relplan.compiler.location import user_location
from relplan.compiler.source import declared_columns
from relplan.compiler.transformation import Feature, _metadata
from relplan.ir import types as T
from relplan.ir.errors import FeatureError, SchemaError
from relplan.ir.expr import Column, Expr
from relplan.ir.schema import Schema

if TYPE_CHECKING:
    from typing import TypeAlias

    Tags: TypeAlias = str | Sequence[str] | AbstractSet[str] | None

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RequestField:
    """One value that arrives with the request: a column of the spine in training data."""

    request: str
    name: str
    dtype: T.DataType


class Request:
    """Base class of request declarations: the values that arrive with the request
    being scored (the transaction itself: its amount, merchant, time).

        class Scoring(rp.Request):
            amount: rp.Float64
            merchant_id: rp.Int64

    ``Scoring.amount`` is then an expression usable in ``rp.derived(...)``. In training
    data each field is the spine's column of that name; when served, the request's value."""

    request_name: ClassVar[str]
    __relplan_request__: ClassVar[Schema]

    def __init_subclass__(cls, name: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        columns = declared_columns(cls, sys._getframe(1), "request")
        if not columns:
            raise SchemaError(f"request {cls.__name__} declares no fields")
        cls.request_name = name or cls.__name__
        cls.__relplan_request__ = Schema.of(columns)
        for col, dtype in columns:
            field_ = RequestField(cls.request_name, col, dtype)
            setattr(cls, col, Series(Column(col, dtype), SCORED_ROW, col, refs=(field_,)))

    @classmethod
    def schema(cls) -> Schema:
        return cls.__relplan_request__


@dataclass(frozen=True)
class DerivedFeature(ValueOps):
    """A feature computed from other features' values and the request's, at the row."""

    name: str
    expr: Expr
    inputs: tuple[Feature, ...]  # the features read, in first-use order
    request: tuple[RequestField, ...]  # the request fields read
    defined_at: str | None
    description: str | None = field(default=None, compare=False)
    owner: str | None = field(default=None, compare=False)
    tags: tuple[str, ...] = field(default=(), compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def dtype(self) -> T.DataType:
        return self.expr.dtype

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key its inputs are looked up by, in first-use order."""
        return tuple(dict.fromkeys(k for f in self.inputs for k in f.keys))

    @property
    def per_event(self) -> bool:
        return True

    def _as_series(self) -> Series:
        # A derived feature's value is its expression: one derived over another reads
        # the base features directly (no order of evaluation among derived features).
        return Series(self.expr, SCORED_ROW, self.name, refs=(*self.inputs, *self.request))

    def __repr__(self) -> str:
        return f"DerivedFeature({self.name!r}, {self.expr.sql()})"


def derived(
    name: str,
    value: Any,
    *,
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> DerivedFeature:
    """A feature defined by an expression over features and request fields:
    ``rp.derived("amt_vs_avg", Scoring.amount / avg_amount_30d)``.

    The inputs may have different keys (a card's feature over a merchant's): each is
    looked up by its own keys at the row. Operators, ``rp.where``, ``rp.coalesce``,
    ``.fillna``, ``.isnull`` and casts are written as on columns."""
    where = user_location()
    if not isinstance(name, str) or not _NAME.match(name):
        raise FeatureError(f"derived feature name {name!r} must be an identifier (letters, digits, _)", where=where)
    series = as_series(value)
    if not isinstance(series, Series):
        raise FeatureError(
            f"rp.derived({name!r}, ...) takes an expression over features and request fields, "
            f"e.g. Scoring.amount / avg_amount_30d; got {value!r}",
            where=where,
        )
    if series.source != SCORED_ROW:
        raise FeatureError(
            f"rp.derived({name!r}, ...) got {series.expr.sql()}, an expression over columns of {series.source}: "
            "a source's columns are aggregated in a transformation; a derived feature combines features and request fields",
            where=where,
        )
    inputs = tuple(r for r in series.refs if isinstance(r, Feature))
    request = tuple(r for r in series.refs if isinstance(r, RequestField))
    if not inputs and not request:
        raise FeatureError(f"rp.derived({name!r}, ...) reads no feature and no request field", where=where)
    names: dict[str, Any] = {}
    refs: tuple[Feature | RequestField, ...] = (*inputs, *request)
    for ref in refs:
        for col in ref.columns if isinstance(ref, Feature) else (ref.name,):
            other = names.setdefault(col, ref)
            if other is not ref:
                raise FeatureError(
                    f"rp.derived({name!r}, ...) reads two values named {col!r} ({_what(other)} and {_what(ref)}); "
                    "rename one (name=... on the feature)",
                    where=where,
                )
    if name in names:
        raise FeatureError(f"derived feature {name!r} has the name of a value it reads; pick another name", where=where)
    meta = _metadata({"description": description, "owner": owner, "tags": tags}, where=where)
    return DerivedFeature(
        name, series.expr, inputs, request, where, meta.get("description"), meta.get("owner"), meta.get("tags", ())
    )


def _what(ref: Any) -> str:
    return f"feature {ref.name}" if isinstance(ref, Feature) else f"request field {ref.request}.{ref.name}"


def split_features(items: Sequence[Any]) -> tuple[list[Feature], list[DerivedFeature]]:
    """The features to compute (given ones, then the inputs of derived ones not
    given) and the derived features, each in order."""
    feats = [f for f in items if isinstance(f, Feature)]
    derived_ = [f for f in items if isinstance(f, DerivedFeature)]
    # By name and definition: the same transformation called twice with the same window
    # is one feature, though the two calls were made on different lines.
    known = {f.name: f for f in feats}
    for d in derived_:
        for f in d.inputs:
            other = known.get(f.name)
            if other is None:
                known[f.name] = f
                feats.append(f)
            elif other.body != f.body:
                raise FeatureError(
                    f"derived feature {d.name} reads a feature named {f.name} ({f.defined_at}) that differs from "
                    f"the feature of that name given with it ({other.defined_at}); give one of them another name",
                    where=d.defined_at,
                )
    return feats, derived_


def check_request_columns(d: DerivedFeature, schema: Schema, where: str) -> None:
    """Each request field ``d`` reads is a column of ``schema`` (the spine, the events)
    of a type its declaration accepts."""
    for r in d.request:
        if r.name not in schema:
            raise FeatureError(
                f"derived feature {d.name} reads request field {r.request}.{r.name}, but {where} has no column "
                f"{r.name!r} (its columns: {list(schema.names)}); name the field as the column that carries it",
                where=d.defined_at,
            )
        got = schema.dtype(r.name)
        if got != r.dtype and T.common_type(got, r.dtype) != r.dtype:
            raise FeatureError(
                f"derived feature {d.name} reads request field {r.request}.{r.name} as {r.dtype}, but {where}'s "
                f"column {r.name!r} is {got}",
                where=d.defined_at,
            )
