"""Python UDFs: a function relplan cannot express, as an explicit, marked escape hatch.

    @rp.udf(returns=rp.Float64)
    def normalize(merchant: str) -> float | None:
        return None if merchant is None else float(len(merchant.strip()))

    @rp.transformation
    def merchant_len_mean(tx: Transactions, wspec: rp.WindowSpec):
        return tx.assign(n=normalize(tx.merchant)).groupby("account_id")["n"].window(wspec).mean()

Calling the decorated function on columns builds an expression
(``python_udf:normalize(merchant)`` in ``explain()``), it does not run it. The
function runs per row on DuckDB and on the reference engine only; every other
engine (Spark, Flink, and their SQL text) refuses the plan with an
``UnsupportedError`` naming the UDF. Its semantics (None for NULL, both ways;
errors; result type checks; deterministic) are ``relplan.ir.expr.PythonUDF``'s.

A feature using a UDF can be stored in a catalog or as JSON only if the function
is importable by its ``module:qualname`` (defined at the top level of a module):
the document names the function, it does not hold its code.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from relplan.compiler.dsl import DataFrameAPI, Series, _literal, as_series
from relplan.compiler.location import user_facing
from relplan.ir import types as T
from relplan.ir.errors import FeatureError, SchemaError, TypeMismatchError
from relplan.ir.expr import Expr, Literal, PythonUDF

R = TypeVar("R")

# A parameter's annotation, read as the relplan type of a NULL passed to it.
_ANNOTATED: dict[Any, T.DataType] = {
    int: T.Int64, float: T.Float64, str: T.String, bool: T.Bool, dt.datetime: T.Timestamp, dt.date: T.Date,
    "int": T.Int64, "float": T.Float64, "str": T.String, "bool": T.Bool,
    "datetime": T.Timestamp, "dt.datetime": T.Timestamp, "datetime.datetime": T.Timestamp,
    "date": T.Date, "dt.date": T.Date, "datetime.date": T.Date,
}


def _annotated_type(annotation: Any) -> T.DataType | None:
    """The relplan type an annotation names (``float``, ``float | None``, ``Optional[str]``), if any."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        for suffix in ("|None", "|NoneType"):
            if text.endswith(suffix):
                text = text[: -len(suffix)]
        if text.startswith("None|"):
            text = text[len("None|"):]
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1]
        return _ANNOTATED.get(text)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _annotated_type(members[0]) if len(members) == 1 else None
    try:
        return _ANNOTATED.get(annotation)
    except TypeError:  # an unhashable annotation
        return None


class UDF(Generic[R]):
    """A Python function marked for use in features (made by :func:`udf`).

    ``f(tx.amt, tx.merchant)`` gives a column computed by calling the function per
    row; ``f.fn`` is the plain function (call it to test it on Python values)."""

    def __init__(self, fn: Callable[..., R], returns: T.DataType) -> None:
        name = getattr(fn, "__name__", type(fn).__name__)
        if isinstance(fn, UDF):
            raise FeatureError(f"@rp.udf is applied twice to {name}")
        if not callable(fn):
            raise FeatureError(f"@rp.udf decorates a function, got {fn!r}")
        if not isinstance(returns, T.DataType) or returns not in T.ALL_TYPES:
            raise TypeMismatchError(
                f"@rp.udf(returns=...) of {name} takes a relplan type such as rp.Float64, got {returns!r}"
            )
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none: any arguments go
            self.signature = None
        if self.signature is not None:
            for p in self.signature.parameters.values():
                if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) and p.default is p.empty:
                    raise FeatureError(
                        f"@rp.udf {name}: parameter {p.name!r} is keyword-only; a UDF is called with "
                        "its arguments in order, so write it as a positional parameter"
                    )
            declared = _annotated_type(self.signature.return_annotation)
            if declared is not None and declared != returns and not (declared == T.Int64 and returns == T.Float64):
                raise TypeMismatchError(
                    f"@rp.udf {name}: returns=rp.{returns} but the function is annotated to return {declared}"
                )
        self.fn = fn
        self.returns = returns
        self.name = name
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # __module__, __qualname__, __doc__

    def __repr__(self) -> str:
        return f"<rp.udf {self.name} returns {self.returns}>"

    @overload
    def __call__(self, *args: Any) -> Series: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Series: ...

    @user_facing
    def __call__(self, *args: Any, **kwargs: Any) -> Series:
        values = self._bind(args, kwargs)
        source: str | None = None
        exprs: list[Expr] = []
        refs: tuple[Any, ...] = ()  # the features and request fields it reads, for rp.derived
        params = self._parameters(len(values))
        for i, (v, p) in enumerate(zip(values, params)):
            v = as_series(v)  # a feature passed as an argument: its value
            what = f"argument {i + 1}" + (f" ({p.name})" if p is not None else "")
            if isinstance(v, DataFrameAPI):
                raise TypeMismatchError(f"python_udf {self.name}: {what} is a whole DataFrame; pass a column, e.g. tx.amt")
            if isinstance(v, Series):
                if source is not None and v.source != source:
                    raise SchemaError(
                        f"python_udf {self.name}: {what} is a column of {v.source}, but an earlier one is of "
                        f"{source}; a UDF's columns must come from one frame"
                    )
                source = v.source
                refs = tuple(dict.fromkeys(refs + v.refs))
                e = v.expr
                self._check_annotation(p, e.dtype, what)
                exprs.append(e)
                continue
            annotated = _annotated_type(p.annotation) if p is not None else None
            lit = _literal(v, annotated)
            if lit.dtype == T.Null:
                if annotated is None:
                    raise TypeMismatchError(
                        f"python_udf {self.name}: {what} is None, and its parameter has no type annotation "
                        "(int, float, str, bool, datetime or date) that says which type of NULL it is"
                    )
                lit = Literal(None, annotated)
            self._check_annotation(p, lit.dtype, what)
            exprs.append(lit)
        if source is None:
            raise FeatureError(
                f"python_udf {self.name} is called without a column: it builds a column expression "
                f"(e.g. {self.name}(tx.merchant)); to run the function on plain values call {self.name}.fn(...)"
            )
        return Series(PythonUDF(self.name, self.fn, tuple(exprs), self.returns), source, refs=refs)

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The arguments in the function's parameter order, defaults filled in."""
        if self.signature is None:
            if kwargs:
                raise FeatureError(f"python_udf {self.name} takes positional arguments only")
            return list(args)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise FeatureError(f"python_udf {self.name}{self.signature}: {e}") from None
        bound.apply_defaults()
        out: list[Any] = []
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                out.extend(value)
            elif kind == inspect.Parameter.VAR_KEYWORD:
                if value:
                    raise FeatureError(f"python_udf {self.name}: keyword arguments {sorted(value)} cannot be passed on")
            elif kind == inspect.Parameter.KEYWORD_ONLY:
                continue  # a default the function keeps
            else:
                out.append(value)
        return out

    def _parameters(self, n: int) -> list[inspect.Parameter | None]:
        """The parameter each of ``n`` bound values goes to (None past the signature, or without one)."""
        if self.signature is None:
            return [None] * n
        params: list[inspect.Parameter | None] = []
        for p in self.signature.parameters.values():
            if p.kind == inspect.Parameter.VAR_POSITIONAL:
                params.extend([p] * (n - len(params)))
                break
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params.append(p)
        return (params + [None] * n)[:n]

    def _check_annotation(self, p: inspect.Parameter | None, dtype: T.DataType, what: str) -> None:
        if p is None or p.kind == inspect.Parameter.VAR_POSITIONAL:
            return
        annotated = _annotated_type(p.annotation)
        if annotated is None or annotated == dtype or (annotated == T.Float64 and dtype == T.Int64):
            return
        raise TypeMismatchError(
            f"python_udf {self.name}: {what} is {dtype}, but the parameter is annotated {annotated}"
        )


@overload
def udf(fn: Callable[..., R], *, returns: T.DataType | type[Series]) -> UDF[R]: ...
@overload
def udf(*, returns: T.DataType | type[Series]) -> Callable[[Callable[..., R]], UDF[R]]: ...


def udf(fn: Callable[..., R] | None = None, *, returns: T.DataType | type[Series]) -> Any:
    """Mark a Python function as a UDF returning ``returns`` (``rp.Float64``, ...).

    ``@rp.udf(returns=rp.Float64)`` on ``def f(a: float, b: str) -> float``; then
    ``f(tx.amt, tx.merchant)`` is a column. Runs on DuckDB and the reference engine
    only (see the module docstring)."""

    def wrap(f: Callable[..., R]) -> UDF[R]:
        return UDF(f, returns)  # type: ignore[arg-type]  # a column class only to a type checker

    return wrap if fn is None else wrap(fn)
