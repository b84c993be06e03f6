"""share_windows: window aggregates over one input, partition and order run in one node.

Features compile to one WindowAggregate each, stacked. Every one of them sorts
its partitions; stacked windows with the same partition keys and order are
merged into one node (whatever their frames), so the engine sorts once and
computes the frames side by side. Inside the merged node, duplicate aggregates
are computed once, and ``mean`` is decomposed into ``sum / count`` when one of
those parts is computed anyway, so the shared part is computed once.

Legal: stacked windows only append columns, and none reads another's output::

    WindowAggregate partition=[k] order=ts frame=(t-1d, t] aggs=[s1d := sum(x)]
      WindowAggregate partition=[j] order=ts frame=(t-1h, t] aggs=[n := count(*)]
        WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[s1h := sum(x), m1h := mean(x)]
          Source T

becomes (a Project restores the column order and computes the decomposed mean)::

    Project ..., n, s1h, m1h := s1h / __m1h_count, s1d
      WindowAggregate partition=[j] order=ts frame=(t-1h, t] aggs=[n := count(*)]
        WindowAggregate partition=[k] order=ts frames=[(t-1h, t] aggs=[s1h := sum(x), __m1h_count := count(x)]; (t-1d, t] aggs=[s1d := sum(x)]]
          Source T

Refused: a window whose aggregate or partition key reads another window's output
must stay above it, so the two are not merged::

    WindowAggregate partition=[k] order=ts frame=(t-1d, t] aggs=[m := max(n)]
      WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]

Also refused: merging into a window that other consumers share (it would be
computed twice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Cast, Column, Expr
from relplan.ir.nodes import Node, Project, WindowAggregate
from relplan.ir.windows import Frame
from relplan.rules.driver import Roots, RuleContext

Group = dict[Frame, dict[AggCall, str]]  # frame -> {aggregate (name-less): output column}


def _chain(top: WindowAggregate, uses: dict[Node, int]) -> list[WindowAggregate]:
    """``top`` and the windows stacked under it (same order, used only by the chain), bottom first."""
    chain = [top]
    below = top.input
    while isinstance(below, WindowAggregate) and below.order == top.order and uses.get(below, 0) == 1:
        chain.append(below)
        below = below.input
    return chain[::-1]


@lru_cache(maxsize=65_536)
def _unnamed(a: AggCall) -> AggCall:
    return replace(a, name="")


def _named(a: AggCall, name: str) -> AggCall:
    """``a`` named ``name`` (dataclasses.replace's result, without its checks per field).

    The same object each time, across runs: a merged node rebuilt after one feature
    changed holds the very aggregates it held before, so the caches keyed by them
    (the SQL items' text, the merge of an unchanged group) compare them by identity."""
    key = (a, name)
    out = _NAMED.get(key)
    if out is None:
        out = AggCall(a.func, a.arg, name, a.filter, a.order)
        _bounded_put(_NAMED, key, out)
    return out


def _bounded_put(cache: dict, key: object, value: object) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()  # (one operation: safe for threads optimizing at once)
    cache[key] = value


_NAMED: dict[tuple[AggCall, str], AggCall] = {}
# One partition's merged windows by the (frame, aggregate) calls merged, in order:
# (windows, each call's value by output column, the fresh names made, the node built last).
_MERGED: dict[tuple[object, ...], tuple[object, ...]] = {}
_CACHE_MAX = 100_000


def share_windows(roots: Roots, ctx: RuleContext) -> Roots:
    uses = ctx.uses(roots)
    consumers_in_chain: set[Node] = set()
    for n in uses:
        if isinstance(n, WindowAggregate) and isinstance(n.input, WindowAggregate) and n.input.order == n.order:
            if uses.get(n.input, 0) == 1:
                consumers_in_chain.add(n.input)

    def rewrite(original: Node, inputs: tuple[Node, ...]) -> Node | None:
        # The chain's top merges the whole chain; its members below stay as they are.
        if not isinstance(original, WindowAggregate) or original in consumers_in_chain:
            return None
        node = original.with_inputs(inputs)
        assert isinstance(node, WindowAggregate)
        chain = _chain(node, uses)
        key = ("share_windows", node)
        merged = ctx.memo.get(key, ...) if len(chain) > 1 else None  # a chain merged in an earlier pass
        if merged is ...:
            merged = ctx.memo[key] = _merge(chain, ctx)
            if merged is not None:  # what a merge makes is merged: the next pass need not try again
                ctx.memo[("share_windows", merged.input if isinstance(merged, Project) else merged)] = None
        return merged or (None if node == original else node)

    return ctx.transform_where(
        roots, lambda n: isinstance(n, WindowAggregate) and n not in consumers_in_chain, rewrite, with_original=True
    )


def _merge(chain: list[WindowAggregate], ctx: RuleContext) -> Node | None:
    base = chain[0].input
    produced: set[str] = set()
    calls: list[tuple[tuple[str, ...], Frame, AggCall]] = []
    for wa in chain:
        keys = wa.keys
        if not produced.isdisjoint(keys):
            return None  # partitions by another window's output: must stay stacked
        for frame, aggs in wa.windows:
            for a in aggs:
                if not produced.isdisjoint(a.columns()):
                    return None  # reads another window's output: must stay stacked
                calls.append((keys, frame, a))
        for _, aggs in wa.windows:
            produced.update(a.name for a in aggs)

    # What each (keys, frame) computes anyway decides which means are decomposed.
    by_keys: dict[tuple[str, ...], list[tuple[Frame, AggCall]]] = {}
    for keys, frame, a in calls:
        by_keys.setdefault(keys, []).append((frame, a))
    if any(_fresh_taken(a, ctx) for _, _, a in calls if a.func == "mean"):  # (only a mean makes names)
        # A fresh name would take a number: made in the order of the calls, as they come.
        windows_of, outputs = _place_all(calls, ctx)
    else:
        # No fresh name depends on another's: each partition's windows are merged on
        # their own, and an unchanged partition (after one feature of a thousand
        # changed, most of them) is a look-up.
        windows_of, outputs = {}, {}
        for keys, keyed in by_keys.items():
            windows_of[keys], out = _merge_partition(keys, tuple(keyed), ctx)
            outputs.update(out)

    node: Node = base
    for keys, windows in windows_of.items():
        node = _window(node, keys, chain[0].order, windows)
    top = chain[-1]
    if node == top:
        return None
    exprs = tuple((f.name, outputs.get(f.name) or Column(f.name, f.dtype)) for f in top.schema)
    if all(isinstance(e, Column) and e.name == n for n, e in exprs) and node.schema == top.schema:
        return node
    return Project(node, exprs)


def _fresh_taken(a: AggCall, ctx: RuleContext) -> bool:
    """Is a name ``_place`` may make for ``a`` taken (so that ``fresh`` would number it)?"""
    return a.func == "mean" and (f"__{a.name}_sum" in ctx.used_names or f"__{a.name}_count" in ctx.used_names)


Windows = tuple[tuple[Frame, tuple[AggCall, ...]], ...]


def _place_all(
    calls: list[tuple[tuple[str, ...], Frame, AggCall]], ctx: RuleContext
) -> tuple[dict[tuple[str, ...], Windows], dict[str, Expr]]:
    present: dict[tuple[tuple[str, ...], Frame], dict[AggCall, str]] = {}
    for keys, frame, a in calls:
        present.setdefault((keys, frame), {}).setdefault(_unnamed(a), a.name)
    groups: dict[tuple[str, ...], Group] = {}
    outputs: dict[str, Expr] = {}  # original column -> its value over the merged nodes
    for keys, frame, a in calls:
        group = groups.setdefault(keys, {}).setdefault(frame, {})
        outputs[a.name] = _place(a, group, present[(keys, frame)], ctx.fresh)
    return {keys: _windows(frames) for keys, frames in groups.items()}, outputs


def _windows(frames: Group) -> Windows:
    return tuple((f, tuple(_named(a, name) for a, name in aggs.items())) for f, aggs in frames.items())


def _merge_partition(
    keys: tuple[str, ...], calls: tuple[tuple[Frame, AggCall], ...], ctx: RuleContext
) -> tuple[Windows, dict[str, Expr]]:
    """One partition's calls (frame, aggregate) merged: its windows and each call's value.

    The same for the same calls, but for the fresh names of decomposed means, which
    are ``__<hint>`` when no plan column has that name (checked by the caller: the
    names are the same in every run that takes them)."""
    key = (keys, calls)
    done = _MERGED.get(key)
    if done is not None:
        windows, outputs, made = done
        if not any(name in ctx.used_names for name in made):
            ctx.used_names.update(made)
            return windows, outputs  # type: ignore[return-value]
    # Each frame's aggregates are placed on their own (a frame's placing reads only
    # its own aggregates, and no fresh name depends on another's): a partition that
    # gained one frame or aggregate places that frame again, and looks the rest up.
    by_frame: dict[Frame, list[AggCall]] = {}
    for frame, a in calls:
        by_frame.setdefault(frame, []).append(a)
    made: list[str] = []
    windows: list[tuple[Frame, tuple[AggCall, ...]]] = []
    outputs: dict[str, Expr] = {}
    for frame, aggs in by_frame.items():
        placed, outs, fresh_names = _merge_frame(frame, tuple(aggs), ctx)
        windows.append((frame, placed))
        outputs.update(outs)
        made += fresh_names
    _bounded_put(_MERGED, key, (tuple(windows), outputs, tuple(made)))
    return tuple(windows), outputs


def _merge_frame(
    frame: Frame, aggs: tuple[AggCall, ...], ctx: RuleContext
) -> tuple[tuple[AggCall, ...], dict[str, Expr], tuple[str, ...]]:
    """One frame's aggregates merged: its aggregates (named), each one's value, the
    fresh names made (remembered like a partition's, see _merge_partition)."""
    key = (frame, aggs)
    done = _MERGED.get(key)
    if done is not None:
        placed, outputs, made = done
        if not any(name in ctx.used_names for name in made):
            ctx.used_names.update(made)
            return placed, outputs, made  # type: ignore[return-value]
    present: dict[AggCall, str] = {}
    for a in aggs:
        present.setdefault(_unnamed(a), a.name)
    fresh_names: list[str] = []

    def fresh(hint: str) -> str:
        fresh_names.append(ctx.fresh(hint))
        return fresh_names[-1]

    group: dict[AggCall, str] = {}
    outputs: dict[str, Expr] = {}
    for a in aggs:
        outputs[a.name] = _place(a, group, present, fresh)
    placed = tuple(_named(a, name) for a, name in group.items())
    _bounded_put(_MERGED, key, (placed, outputs, tuple(fresh_names)))
    return placed, outputs, tuple(fresh_names)


def _window(input: Node, keys: tuple[str, ...], order: str, windows: Windows) -> WindowAggregate:
    """The merged node: the one built before for the same input and windows, if any."""
    key = (input, keys, order, windows)
    made = _WINDOWS.get(key)
    if made is None:
        made = WindowAggregate(input, keys, order, windows)
        _bounded_put(_WINDOWS, key, made)
    return made


_WINDOWS: dict[tuple[object, ...], WindowAggregate] = {}


def _place(a: AggCall, group: dict[AggCall, str], present: dict[AggCall, str], fresh: Callable[[str], str]) -> Expr:
    """Add ``a`` to its frame's aggregates, reusing or decomposing; return its value.

    ``present`` maps every aggregate the frame computes anyway to its first name,
    so a part shared with a feature keeps that feature's name."""
    key = _unnamed(a)
    if key in group:  # a duplicate: computed once
        return Column(group[key], a.dtype)
    if a.func == "mean" and a.arg is not None:
        total = AggCall("sum", a.arg, "", a.filter)
        count = AggCall("count", a.arg, "", a.filter)
        if total in present or count in present:
            s = group.setdefault(total, present.get(total) or fresh(f"{a.name}_sum"))
            c = group.setdefault(count, present.get(count) or fresh(f"{a.name}_count"))
            # A Float64 sum needs no cast: simplify_expressions would drop it in another pass.
            numerator: Expr = Column(s, total.dtype)
            return Binary("/", numerator if total.dtype == T.Float64 else Cast(numerator, T.Float64), Column(c, T.Int64))
    group[key] = a.name
    return Column(a.name, a.dtype)
