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

from dataclasses import replace
from functools import lru_cache

from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Cast, Column, Expr
from relplan.ir.graph import transform, use_counts
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
    """``a`` named ``name`` (dataclasses.replace's result, without its checks per field)."""
    return AggCall(a.func, a.arg, name, a.filter, a.order)


def share_windows(roots: Roots, ctx: RuleContext) -> Roots:
    uses = use_counts(roots)
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

    return transform(roots, rewrite, with_original=True)  # type: ignore[return-value]


def _merge(chain: list[WindowAggregate], ctx: RuleContext) -> Node | None:
    base = chain[0].input
    produced: set[str] = set()
    calls: list[tuple[tuple[str, ...], Frame, AggCall]] = []
    for wa in chain:
        if set(wa.keys) & produced:
            return None  # partitions by another window's output: must stay stacked
        for frame, a in wa.calls:
            if a.columns() & produced:
                return None  # reads another window's output: must stay stacked
            calls.append((wa.keys, frame, a))
        produced |= {a.name for a in wa.aggs}

    # What each (keys, frame) computes anyway decides which means are decomposed.
    present: dict[tuple[tuple[str, ...], Frame], dict[AggCall, str]] = {}
    for keys, frame, a in calls:
        present.setdefault((keys, frame), {}).setdefault(_unnamed(a), a.name)
    groups: dict[tuple[str, ...], Group] = {}
    outputs: dict[str, Expr] = {}  # original column -> its value over the merged nodes
    for keys, frame, a in calls:
        group = groups.setdefault(keys, {}).setdefault(frame, {})
        outputs[a.name] = _place(a, group, present[(keys, frame)], ctx)

    node: Node = base
    for keys, frames in groups.items():
        windows = tuple((f, tuple(_named(a, name) for a, name in aggs.items())) for f, aggs in frames.items())
        node = WindowAggregate(node, keys, chain[0].order, windows)
    top = chain[-1]
    if node == top:
        return None
    exprs = tuple((f.name, outputs.get(f.name) or Column(f.name, f.dtype)) for f in top.schema)
    if node.schema == top.schema and all(isinstance(e, Column) and e.name == n for n, e in exprs):
        return node
    return Project(node, exprs)


def _place(a: AggCall, group: dict[AggCall, str], present: dict[AggCall, str], ctx: RuleContext) -> Expr:
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
            s = group.setdefault(total, present.get(total) or ctx.fresh(f"{a.name}_sum"))
            c = group.setdefault(count, present.get(count) or ctx.fresh(f"{a.name}_count"))
            # A Float64 sum needs no cast: simplify_expressions would drop it in another pass.
            numerator: Expr = Column(s, total.dtype)
            return Binary("/", numerator if total.dtype == T.Float64 else Cast(numerator, T.Float64), Column(c, T.Int64))
    group[key] = a.name
    return Column(a.name, a.dtype)
