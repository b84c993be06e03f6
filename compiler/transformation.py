"""``@rp.transformation``: a feature written once as a function of typed sources.

    @rp.transformation
    def transaction_count(tx: Transactions, wspec: rp.WindowSpec):
        return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()

    f = transaction_count(window=rp.sliding("1d"))   # Feature 'transaction_count_1d'
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from relplan.compiler.dsl import SCORED_ROW, DataFrame, FeatureBody, Series, ValueOps
from relplan.compiler.location import describe_frame, is_internal, user_location
from relplan.compiler.source import Source
from relplan.compiler.windowspec import WindowSpec
from relplan.ir.errors import FeatureError, RelplanError
from relplan.ir.expr import Column

if TYPE_CHECKING:
    from typing import TypeAlias

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: A feature function: typed sources (and a ``rp.WindowSpec``) in, a windowed aggregate
#: such as ``tx.groupby("k").window(wspec).count()`` out.
FeatureFunction: TypeAlias = Callable[..., FeatureBody]
#: Tags of a feature: one tag or several.
Tags: TypeAlias = str | Sequence[str] | AbstractSet[str] | None


@dataclass(frozen=True)
class Feature(ValueOps):
    """A named, windowed feature: what rp.compile() takes.

    Features compare by value, so a feature defined again unchanged hits the
    compile cache. Arithmetic on a feature (``f / g``, ``f.value > 3``) builds the
    expression of a derived feature (``rp.derived``)."""

    name: str
    transformation: str
    body: FeatureBody
    defined_at: str | None
    called_at: str | None = None  # where the transformation was called to make this feature
    # Metadata: what a catalog lists and searches by. It never changes what the
    # feature computes, so it takes no part in equality (nor in its fingerprint).
    description: str | None = field(default=None, compare=False)
    owner: str | None = field(default=None, compare=False)
    tags: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> WindowSpec:
        return self.body.spec

    @property
    def source(self) -> type[Source]:
        return self.body.source

    @property
    def per_event(self) -> bool:
        return self.body.spec.per_event

    @property
    def columns(self) -> tuple[str, ...]:
        """Output column names: the feature's name, or name_<agg name> for .agg(...)."""
        return tuple(self.name if suffix is None else f"{self.name}_{suffix}" for suffix, _ in self.body.aggs)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.body.keys)

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, source={self.source.source_name}, window={self.spec!r})"

    def column(self, name: str) -> Series:
        """One output column's value, as an expression of the scored row (for rp.derived)."""
        for col, (_, call) in zip(self.columns, self.body.aggs):
            if col == name:
                return Series(Column(col, call.dtype), SCORED_ROW, col, refs=(self,))
        raise FeatureError(f"feature {self.name} has no column {name!r}; its columns are {list(self.columns)}")

    def _as_series(self) -> Series:
        if len(self.columns) != 1:
            raise FeatureError(
                f"feature {self.name} has {len(self.columns)} columns {list(self.columns)}: pick one with "
                f"{self.name}.column({self.columns[0]!r})"
            )
        return self.column(self.columns[0])

    def to_json(self, *, canonical: bool = False) -> str:
        """The feature as a relplan JSON document (catalog/serialize.py): what it
        computes, its name, metadata and locations; indented, or compact (``canonical``)."""
        from relplan.catalog.serialize import dumps, feature_to_dict

        return dumps(feature_to_dict(self), canonical=canonical)

    @classmethod
    def from_json(cls, text: str | bytes) -> Feature:
        """The feature of a document ``to_json()`` wrote: it compiles to the same plan."""
        from relplan.catalog.serialize import feature_from_dict, loads

        return feature_from_dict(loads(text, "feature"))


class Transformation:
    """A decorated feature function; call it with a window to get a Feature."""

    def __init__(
        self, fn: FeatureFunction, name: str | None, scope: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.metadata = _metadata(metadata or {}, where=None)
        if self.metadata.get("description") is None and fn.__doc__:
            self.metadata["description"] = inspect.cleandoc(fn.__doc__)
        self._scope = scope
        code = fn.__code__
        self.defined_at = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno} in {fn.__name__}"
        self._params: list[tuple[str, Any]] | None = None

    def _resolve(self) -> list[tuple[str, Any]]:
        if self._params is not None:
            return self._params
        out = []
        for p in inspect.signature(self.fn).parameters.values():
            ann = p.annotation
            if isinstance(ann, str):
                try:
                    ann = eval(ann, dict(self.fn.__globals__), dict(self._scope))
                except Exception:  # noqa: BLE001 - unresolved annotations are reported below
                    ann = inspect.Parameter.empty
            out.append((p.name, ann))
        self._params = out
        return out

    def __call__(
        self,
        window: WindowSpec | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        owner: str | None = None,
        tags: Tags = None,
        **options: Any,
    ) -> Feature:
        """The feature over ``window`` (``rp.sliding("1h")``, ...): named ``<transformation>_<window>``
        unless ``name`` is given; ``description``, ``owner`` and ``tags`` override the
        transformation's; ``options`` fill its other parameters."""
        where = user_location()
        meta = {**self.metadata, **_metadata({"description": description, "owner": owner, "tags": tags}, where=where)}
        kwargs: dict[str, Any] = {}
        window_param = None
        for pname, ann in self._resolve():
            if isinstance(ann, type) and issubclass(ann, Source):
                kwargs[pname] = DataFrame(ann)
            elif ann is WindowSpec or pname in ("wspec", "window"):
                window_param = pname
                if window is None:
                    raise FeatureError(
                        f"transformation {self.name} takes a window: call it as "
                        f"{self.name}(window=rp.sliding('1h'))",
                        where=where,
                    )
                if not isinstance(window, WindowSpec):
                    raise FeatureError(
                        f"window of {self.name} must be rp.sliding(...), rp.tumbling(...), "
                        f"rp.hopping(...) or rp.lifetime(), got {window!r}",
                        where=where,
                    )
                kwargs[pname] = window
            elif pname in options:
                kwargs[pname] = options.pop(pname)
        if options:
            raise FeatureError(f"transformation {self.name} has no parameter(s) {sorted(options)}", where=where)
        if window is not None and window_param is None:
            raise FeatureError(
                f"transformation {self.name} has no WindowSpec parameter, so it takes no window", where=where
            )
        if not any(isinstance(v, DataFrame) for v in kwargs.values()):
            raise FeatureError(
                f"transformation {self.name} has no source parameter: annotate one, e.g. (tx: Transactions)",
                where=self.defined_at,
            )
        try:
            body = self.fn(**kwargs)
        except RelplanError:
            raise
        except (AttributeError, TypeError, KeyError) as e:
            raise FeatureError(
                f"transformation {self.name} failed: {type(e).__name__}: {e}", where=_innermost_user_line(e)
            ) from e
        if not isinstance(body, FeatureBody):
            raise FeatureError(
                f"transformation {self.name} must return a windowed aggregate such as "
                f"tx.groupby('key').window(wspec).count(), but returned {type(body).__name__}",
                where=self.defined_at,
            )
        fname = name if name is not None else f"{self.name}_{body.spec.label}"
        if not _NAME.match(fname):
            raise FeatureError(f"feature name {fname!r} must be an identifier (letters, digits, _)", where=where)
        return Feature(
            fname, self.name, body, body.location or self.defined_at, where,
            meta.get("description"), meta.get("owner"), meta.get("tags", ()),
        )

    def __repr__(self) -> str:
        return f"<transformation {self.name} ({self.defined_at})>"


def _innermost_user_line(e: BaseException) -> str | None:
    """The deepest traceback line in the user's code: a Python error raised inside
    relplan (say a TypeError from a bad argument) points at the line that called it."""
    tb = e.__traceback__
    last = None
    while tb is not None:
        if not is_internal(tb.tb_frame.f_code.co_filename):
            last = tb
        tb = tb.tb_next
    if last is None:
        return None
    return describe_frame(last.tb_frame, last.tb_lineno)


def _metadata(given: dict[str, Any], where: str | None) -> dict[str, Any]:
    """The metadata given (None left out), checked: description and owner are text, tags a list of text."""
    out: dict[str, Any] = {}
    for key in ("description", "owner"):
        value = given.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise FeatureError(f"{key} must be a string, got {value!r}", where=where)
        out[key] = value
    tags = given.get("tags")
    if tags is not None:
        if isinstance(tags, str):
            tags = (tags,)
        if not isinstance(tags, (list, tuple, set, frozenset)) or not all(isinstance(t, str) for t in tags):
            raise FeatureError(f"tags must be a list of strings, got {tags!r}", where=where)
        out["tags"] = tuple(sorted(set(tags)))
    return out


@overload
def transformation(
    fn: FeatureFunction,
    *,
    name: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> Transformation: ...
@overload
def transformation(
    fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> Callable[[FeatureFunction], Transformation]: ...


def transformation(
    fn: FeatureFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    tags: Tags = None,
) -> Transformation | Callable[[FeatureFunction], Transformation]:
    """Decorate a feature function; ``@rp.transformation`` or ``@rp.transformation(name=..., owner=..., tags=[...])``.

    ``description`` (default: the function's docstring), ``owner`` and ``tags`` are
    metadata a catalog lists and searches by; each feature may override them."""
    scope = dict(sys._getframe(1).f_locals)
    metadata = {"description": description, "owner": owner, "tags": tags}

    def wrap(f: FeatureFunction) -> Transformation:
        return Transformation(f, name, scope, metadata)

    return wrap(fn) if fn is not None else wrap
