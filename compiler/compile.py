"""compile(): features -> one IR plan.

Per-event features of one source become one output whose rows are the source's
events and which has one column per feature: a chain of WindowAggregate nodes
(one per feature; the optimizer shares them) under a final Project. Per-window
features with the same source, filter, keys and window share one
TimeWindowAggregate output.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from relplan.backends.sql import gc_paused
from relplan.compiler.derived import DerivedFeature, check_request_columns, split_features
from relplan.compiler.dsl import FeatureBody
from relplan.compiler.plan import Plan
from relplan.compiler.transformation import Feature, Transformation
from relplan.ir import nodes
from relplan.ir.errors import FeatureError, RelplanError
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Column, Expr


def compile(  # noqa: A001 - the public name
    features: Feature | DerivedFeature | str | Iterable[Feature | DerivedFeature | str], *, catalog: Any = None
) -> Plan:
    """Compile features into one plan (several outputs if their row sets differ).

    ``catalog``: an ``rp.Catalog`` that resolves features given by name ("tx_count_1h", "tx_count_1h@v2").
    A derived feature (``rp.derived``) is computed over the rows that hold all its inputs."""
    with gc_paused():  # thousands of nodes and no cycles: the collector's passes would be wasted
        return _compile(features, catalog)


def _compile(features: Feature | str | Iterable[Feature | str], catalog: Any = None) -> Plan:
    feats, derived = split_features(_check_features(features, catalog))
    per_event: dict[tuple[str, nodes.Node | None], list[Feature]] = {}
    per_window: dict[tuple[Any, ...], list[Feature]] = {}
    for f in feats:
        src = f.source.node()
        b = f.body
        if f.per_event:  # one output per row set: the source's events, or a merge's rows
            per_event.setdefault((src.name, b.rows), []).append(f)
        else:
            per_window.setdefault((src, b.rows, b.mask, b.keys, b.spec), []).append(f)
    sinks: list[nodes.Sink] = []
    taken: set[str] = set()
    for group in per_event.values():
        sinks.append(_unique(_compile_per_event(_Group(tuple(group))), taken))
    derived_in = _place_derived(derived, list(per_event))
    for i, ds in derived_in.items():
        sinks[i] = _with_derived(sinks[i], ds)
    for group in per_window.values():
        sinks.append(_unique(_compile_per_window(tuple(group)), taken))
    return Plan(tuple(sinks), tuple(feats))


def _place_derived(derived: list[DerivedFeature], groups: list[tuple[str, nodes.Node | None]]) -> dict[int, list[DerivedFeature]]:
    """Per per-event output (by index), the derived features computed on its rows: a
    derived feature is computed in a batch plan where one row holds all its inputs,
    the rows of one source (or one merge) whose features they all are."""
    out: dict[int, list[DerivedFeature]] = {}
    for d in derived:
        row_sets = {(f.source.node().name, f.body.rows) for f in d.inputs}
        if len(row_sets) != 1 or not all(f.per_event for f in d.inputs):
            reads = ", ".join(f"{f.name} ({_rows_name(f)}, {f.spec!r})" for f in d.inputs) or "no feature"
            raise FeatureError(
                f"derived feature {d.name} reads {reads}: no row of a batch plan holds them all (a batch plan's "
                "rows are one source's events); compute it in training data (rp.pitc_join_features) or serve it "
                "from an online store, which look every input up at the row",
                where=d.defined_at,
            )
        out.setdefault(groups.index(next(iter(row_sets))), []).append(d)
    return out


def _with_derived(sink: nodes.Sink, derived: list[DerivedFeature]) -> nodes.Sink:
    """The output's rows with the derived features' columns computed over them."""
    schema = sink.input.schema
    for d in derived:
        # In a batch plan the request being scored is the event itself: its fields are the event's columns.
        check_request_columns(d, schema, f"a batch plan, whose rows are the events of output {sink.name},")
        if d.name in schema:
            raise FeatureError(f"derived feature {d.name!r} has the name of a column of output {sink.name}", where=d.defined_at)
    exprs = tuple((f.name, Column(f.name, f.dtype)) for f in schema) + tuple((d.name, d.expr) for d in derived)
    return nodes.Sink(nodes.Project(sink.input, exprs), sink.name)


def _unique(sink: nodes.Sink, taken: set[str]) -> nodes.Sink:
    name, i = sink.name, 2
    while name in taken:
        name, i = f"{sink.name}_{i}", i + 1
    taken.add(name)
    return sink if name == sink.name else nodes.Sink(sink.input, name)


def _check_features(features: Any, catalog: Any = None) -> list[Any]:
    """The features given (Feature, DerivedFeature, or names a catalog resolves), checked."""
    if isinstance(features, (Feature, DerivedFeature, Transformation, str)):
        items: list[Any] = [features]
    elif isinstance(features, Iterable) and not isinstance(features, (str, bytes)):
        items = list(features)
    else:
        raise FeatureError(
            f"compile() takes a feature or a list of features, got {type(features).__name__}: {features!r}"
        )
    if not items:
        raise FeatureError("compile() needs at least one feature")
    names = [f for f in items if isinstance(f, str)]
    if names:
        if catalog is None:
            raise FeatureError(f"features {names} are given by name: pass catalog=rp.Catalog(path) to resolve them")
        # Duck-typed: the compiler does not import the catalog, which is built on it.
        items = catalog.resolve(items)
    seen: dict[str, Feature] = {}
    derived: dict[str, DerivedFeature] = {}
    for f in items:
        if isinstance(f, DerivedFeature):
            if derived.setdefault(f.name, f) != f:
                raise FeatureError(f"two derived features are named {f.name!r}; give one another name", where=f.defined_at)
            continue
        if isinstance(f, Transformation):
            raise FeatureError(
                f"{f.name} is a transformation, not a feature: call it with a window, "
                f"e.g. {f.name}(window=rp.sliding('1h'))",
                where=f.defined_at,
            )
        if not isinstance(f, Feature):
            raise FeatureError(f"compile() takes features, got {type(f).__name__}: {f!r}")
        for col in f.columns:
            if col in seen:
                other = seen[col]
                raise FeatureError(
                    f"two features are named {col!r}: one defined at {_origin(other)}, "
                    f"the other at {_origin(f)}; pass name=... to tell them apart",
                    where=f.defined_at,
                )
            if col in f.body.input_node().schema:
                raise FeatureError(
                    f"feature {col!r} has the name of a column of {_rows_name(f)}; pass name=...",
                    where=f.defined_at,
                )
            seen[col] = f
    for name, d in derived.items():
        if name in seen:
            raise FeatureError(
                f"derived feature {name!r} has the name of a column of feature {seen[name].name} ({_origin(seen[name])})",
                where=d.defined_at,
            )
    return items


def _rows_name(f: Feature) -> str:
    """The name of the rows a feature aggregates: its source, or the sources a merge joined."""
    if f.body.rows is None:
        return f.source.source_name
    from relplan.ir.graph import walk

    return "+".join(dict.fromkeys(n.name for n in walk([f.body.rows]) if isinstance(n, nodes.Source)))


def _origin(f: Feature) -> str:
    """Where a feature comes from: its definition line and, since one transformation
    called twice gives two features of the same definition line, the call."""
    if f.called_at is None:
        return str(f.defined_at)
    return f"{f.defined_at} (made at {f.called_at})"


def _key_columns(node: nodes.Node, bodies: list[tuple[str, FeatureBody]]) -> tuple[nodes.Node, dict[str, tuple[str, ...]]]:
    """Project derived groupby keys (assigned expressions) into columns.

    Returns the (maybe projected) input and, per feature, its key column names.
    """
    derived: dict[Expr, str] = {}
    keys_of: dict[str, tuple[str, ...]] = {}
    for fname, body in bodies:
        names = []
        for k, e in body.keys:
            if isinstance(e, Column) and e.name == k:
                names.append(k)
            else:
                names.append(derived.setdefault(e, f"{fname}__key_{k}"))
        keys_of[fname] = tuple(names)
    if derived:
        passthrough = tuple((f.name, Column(f.name, f.dtype)) for f in node.schema)
        node = nodes.Project(node, passthrough + tuple((n, e) for e, n in derived.items()))
    return node, keys_of


def _calls(f: Feature, mask: Expr | None) -> tuple[AggCall, ...]:
    """The feature's aggregates named by its columns; a per-event feature's row
    mask becomes each aggregate's filter, since its rows are all the source's events."""
    # AggCall(...) rather than dataclasses.replace: the same call, without replace's checks per field.
    return tuple(AggCall(call.func, call.arg, col, mask, call.order) for col, (_, call) in zip(f.columns, f.body.aggs))


class _Group:
    """A group of per-event features as a cache key: each feature is hashed once per
    compile (a feature hashes its whole definition again each time it is asked), and
    the caches below key by that hash."""

    __slots__ = ("features", "hashes", "_hash")

    def __init__(self, features: tuple[Feature, ...]) -> None:
        self.features = features
        self.hashes = tuple(hash(f) for f in features)
        self._hash = hash(self.hashes)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _Group) and self._hash == other._hash and self.features == other.features)


class _Key:
    """A tuple of values as a dictionary key whose hash is given (made of hashes known already)."""

    __slots__ = ("values", "_hash")

    def __init__(self, values: tuple[Any, ...], h: int) -> None:
        self.values = values
        self._hash = h

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _Key) and self._hash == other._hash and self.values == other.values)


# Recompiling a feature set after one feature changed rebuilds only its group.
@lru_cache(maxsize=1024)
def _compile_per_event(g: _Group) -> nodes.Sink:
    group = g.features
    src = group[0].source.node()
    assert src.event_time is not None
    rows = group[0].body.input_node()
    try:
        node, keys_of = _key_columns(rows, [(f.name, f.body) for f in group])
        for f, fh in zip(group, g.hashes):
            node = _feature_window(node, f, fh, keys_of[f.name], src.event_time)
        out = [(c.name, Column(c.name, c.dtype)) for c in rows.schema]
        out += [(c, Column(c, node.schema.dtype(c))) for f in group for c in f.columns]
        name = src.name if group[0].body.rows is None else _rows_name(group[0]).replace("+", "_")
        return nodes.Sink(nodes.Project(node, tuple(out)), name)
    except RelplanError as e:
        raise e.at(group[-1].defined_at) from None


def _feature_window(input: nodes.Node, f: Feature, fh: int, keys: tuple[str, ...], order: str) -> nodes.WindowAggregate:
    """Feature ``f``'s window over ``input``: the node made for the same feature over the
    same input before, if any (a look-up by the feature, before its aggregates are made).

    Features are values: a feature set defined again (the same definitions, new
    objects) finds the nodes and aggregates of its first compile, so the caches after
    compile (the optimizer's, the SQL text's) meet the very same objects, whose hashes
    and columns are computed already, and compare them by identity. ``fh`` is ``hash(f)``."""
    key = _Key((input, f, keys, order), hash((hash(input), fh, keys, order)))
    made = _BY_FEATURE.get(key)
    if made is None:
        fkey = _Key((f,), fh)
        windows = _CALLS.get(fkey)
        if windows is None:  # the feature's frame and aggregates: the same objects in every compile
            windows = ((f.spec.frame(), _calls(f, f.body.mask)),)
            _bounded_put(_CALLS, fkey, windows)
        made = _window(input, keys, order, windows)
        _bounded_put(_BY_FEATURE, key, made)
    return made


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _WINDOWS_MAX:
        cache.clear()  # (one operation: safe for threads compiling at once)
    cache[key] = value


def _window(
    input: nodes.Node, keys: tuple[str, ...], order: str, windows: tuple[tuple[Any, tuple[AggCall, ...]], ...]
) -> nodes.WindowAggregate:
    """One feature's window over ``input``: the node built for it before, if any.

    A group's features are stacked, so after one feature changed the group is built
    again, but the features below it stack over the very same nodes as before: they
    are looked up, not built (nodes are values; the optimizer and the SQL caches then
    meet the same objects too)."""
    key = (input, keys, order, windows)
    made = _WINDOWS.get(key)
    if made is None:
        made = nodes.WindowAggregate(input, keys, order, windows)
        if len(_WINDOWS) >= _WINDOWS_MAX:
            _WINDOWS.clear()  # (one operation: safe for threads compiling at once)
        _WINDOWS[key] = made
    return made


_WINDOWS: dict[tuple[Any, ...], nodes.WindowAggregate] = {}
_BY_FEATURE: dict[_Key, nodes.WindowAggregate] = {}
_CALLS: dict[_Key, tuple[tuple[Any, tuple[AggCall, ...]], ...]] = {}  # a feature's windows
_WINDOWS_MAX = 100_000


@lru_cache(maxsize=1024)
def _compile_per_window(group: tuple[Feature, ...]) -> nodes.Sink:
    first = group[0]
    src = first.source.node()
    assert src.event_time is not None
    try:
        rows = first.body.input_node()
        node: nodes.Node = rows if first.body.mask is None else nodes.Filter(rows, first.body.mask)
        node, keys_of = _key_columns(node, [(first.name, first.body)])
        aggs = tuple(call for f in group for call in _calls(f, None))
        twa = nodes.TimeWindowAggregate(node, keys_of[first.name], src.event_time, first.spec.time_window(), aggs)
        # Name derived keys as the user did (the hidden column name is an internal detail).
        keys = [(k, Column(n, twa.schema.dtype(n))) for (k, _), n in zip(first.body.keys, keys_of[first.name])]
        rest = [(f.name, Column(f.name, f.dtype)) for f in twa.schema.fields[len(keys):]]
        out: nodes.Node = twa
        if any(k != n for (k, _), n in zip(first.body.keys, keys_of[first.name])):
            out = nodes.Project(twa, tuple(keys + rest))
        name = f"{_rows_name(first).replace('+', '_')}_{first.spec.label}_by_{'_'.join(first.keys)}"
        return nodes.Sink(out, name)
    except RelplanError as e:
        raise e.at(first.defined_at) from None

