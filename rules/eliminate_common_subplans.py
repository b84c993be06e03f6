"""eliminate_common_subplans: equal subplans become one object; duplicate aggregates one call.

Plan nodes are values: two subplans built separately (two features over one
source, say) compare equal, and become the very same object, read by every
consumer; explain prints it once (``r0 := ...``) and the backends compute it
once (one CTE), so a source is scanned once for many features. Two equal
Source objects under two filters become one object; explain() prints it once
either way, since it compares by value::

    r0 := Source T event_time=ts bounded
    Sink out
      Filter x > 0.0
        r0
    Sink out2
      Filter x < 0.0
        r0

Inside one Aggregate, TimeWindowAggregate or WindowAggregate, aggregates with the
same function, argument, filter and order (and, in a window, the same frame)
compute the same column: it is computed once and a Project above names it as
each duplicate, so the output schema (names, types and order) stays the same::

    Aggregate keys=[k] aggs=[n := count(*), sx := sum(x), rows := count(*)]
      Source T event_time=ts bounded

becomes::

    Project k, n, sx, rows := n
      Aggregate keys=[k] aggs=[n := count(*), sx := sum(x)]
        Source T event_time=ts bounded

A window stacked on or under another window with the same order is left alone
while share_windows is on: that rule merges such windows and their duplicates at
once, and an alias Project between them would keep them apart.

Refused: aggregates that differ in anything but their name are different
computations, e.g. ``count(*)`` and ``count(x)`` (which skips NULLs), or the same
aggregate over two frames of a window::

    WindowAggregate partition=[k] order=ts frames=[(t-1h, t] aggs=[a := sum(x)]; (t-1d, t] aggs=[b := sum(x)]]
      Source T event_time=ts bounded
"""

from __future__ import annotations

from dataclasses import replace

from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Column
from relplan.ir.nodes import Aggregate, Node, Project, TimeWindowAggregate, WindowAggregate
from relplan.rules.driver import Roots, RuleContext


def eliminate_common_subplans(roots: Roots, ctx: RuleContext) -> Roots:
    stacked: set[Node] = set()  # windows share_windows will merge with a neighbour
    if ctx.config.enabled("share_windows"):
        for n in ctx.nodes(roots):
            below = n.inputs[0] if isinstance(n, WindowAggregate) else None
            if isinstance(below, WindowAggregate) and below.order == n.order:  # type: ignore[union-attr]
                stacked |= {n, below}

    # transform() maps every subplan equal to one already rebuilt to that one
    # object, so equal subplans become one object without more code here.
    def rewrite(original: Node, inputs: tuple[Node, ...]) -> Node | None:
        same = all(a is b for a, b in zip(inputs, original.inputs))
        node = original if same else original.with_inputs(inputs)
        if isinstance(node, (Aggregate, TimeWindowAggregate)):
            aggs, alias = _dedup(node.aggs)
            return _aliased(node, node.replace_fields(aggs=aggs), alias) if alias else None
        if isinstance(node, WindowAggregate) and original not in stacked:
            windows = []
            alias: dict[str, str] = {}
            for frame, calls in node.windows:
                kept, more = _dedup(calls)
                windows.append((frame, kept))
                alias.update(more)
            if not alias:
                return None
            return _aliased(node, WindowAggregate(node.input, node.keys, node.order, tuple(windows)), alias)
        return None if node is original else node

    def touches(n: Node) -> bool:  # what rewrite changes though its inputs did not
        return isinstance(n, (Aggregate, TimeWindowAggregate)) or (isinstance(n, WindowAggregate) and n not in stacked)

    return ctx.transform_where(roots, touches, rewrite, with_original=True)


def _dedup(aggs: tuple[AggCall, ...]) -> tuple[tuple[AggCall, ...], dict[str, str]]:
    """The first of each group of equal aggregates, and duplicate name -> kept name."""
    first: dict[AggCall, str] = {}
    kept: list[AggCall] = []
    alias: dict[str, str] = {}
    for a in aggs:
        key = replace(a, name="")
        if key in first:
            alias[a.name] = first[key]
        else:
            first[key] = a.name
            kept.append(a)
    return tuple(kept), alias


def _aliased(old: Node, new: Node, alias: dict[str, str]) -> Node:
    """``new`` under a Project giving it exactly ``old``'s schema."""
    return Project(new, tuple((f.name, Column(alias.get(f.name, f.name), f.dtype)) for f in old.schema))
