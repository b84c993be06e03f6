"""push_down_filter: move each conjunct of a filter as close to the sources as is legal.

The predicate is split at its ANDs and every conjunct goes down on its own, as
far as it legally can; what cannot move stays in a filter where it was. A filter
directly over a Source is the pushed-down form (sources have no predicate).

Legal moves, with the reason each keeps the rows:

- below a Project, the predicate rewritten over the projected expressions (it
  reads the same values; every expression is deterministic);
- below a Union, into every member (a row passes or not whichever member it
  comes from);
- below a Join, a conjunct reading one side's columns alone goes into that side,
  but never into the side whose unmatched rows the join pads with NULLs (for a
  left join only into the left side, right join only into the right, full join
  into neither); a conjunct reading both sides stays above. Interval and lookup
  joins alike: a pair's match depends on its two rows alone, so a side's rows may
  be dropped before the join as after it;
- below an AsOfJoin, a conjunct reading spine columns alone goes into the spine
  (each spine row is one output row, its aggregates computed from the events
  alone, whatever other spine rows there are); never one reading an aggregate,
  and nothing into the events (that would change every aggregate);
- below an Aggregate or a TimeWindowAggregate, a conjunct reading grouping keys
  alone (it keeps or drops whole groups, the same before and after);
- below a WindowAggregate, a conjunct reading partition keys alone (it keeps or
  drops whole partitions, and a row's windows only see its own partition).

For example::

    Filter (k = 1) AND (n > 2)
      WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]
        Project k, ts, y2 := x * 2.0
          Source T event_time=ts bounded

becomes::

    Filter n > 2
      WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]
        Project k, ts, y2 := x * 2.0
          Filter k = 1
            Source T event_time=ts bounded

Refused: a conjunct on anything but the partition keys changes which rows a
window sees. Here ``x > 0`` must stay above: below, ``n`` would count only the
rows with ``x > 0`` instead of every row of the last hour::

    Filter x > 0.0
      WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]
        Source T event_time=ts bounded

Likewise a conjunct on ``window_start``/``window_end`` or on an aggregate's
output stays above its (time-window) aggregate, one on the right side of a left
join stays above the join (below it would turn dropped rows into NULL-padded
ones), and a conjunct reading no column is not moved (below a global aggregate,
``FALSE`` would leave one row of empty aggregates instead of none).

A point-in-time join: ``k = 1`` reads the spine alone and goes into it; ``n > 2``
reads an aggregate and stays::

    Filter (k = 1) AND (n > 2)
      AsOfJoin on k = ek time=ts event_time=ets frames=[(t-1h, t] aggs=[n := count(*)]]
        Source Spine bounded
        Source Events event_time=ets bounded

becomes::

    Filter n > 2
      AsOfJoin on k = ek time=ts event_time=ets frames=[(t-1h, t] aggs=[n := count(*)]]
        Filter k = 1
          Source Spine bounded
        Source Events event_time=ets bounded

A node with several consumers is not pushed through: the filter is one
consumer's, and pushing it below would make a second, filtered copy of the node.
"""

from __future__ import annotations

from relplan.ir.expr import Column, Expr, and_all, conjuncts
from relplan.ir.nodes import (
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.rules.driver import Roots, RuleContext


def push_down_filter(roots: Roots, ctx: RuleContext) -> Roots:
    def rewrite(original: Node, inputs: tuple[Node, ...]) -> Node | None:
        # A filter whose input this pass already rewrote is left for the next pass,
        # so that the consumer counts (taken on the input plan) hold below it.
        if not isinstance(original, Filter) or inputs[0] is not original.input:
            return None
        return _place(original.input, conjuncts(original.predicate), ctx.uses(roots))

    return ctx.transform_where(roots, lambda n: isinstance(n, Filter), rewrite, with_original=True)


def _place(node: Node, preds: list[Expr], uses: dict[Node, int]) -> Node | None:
    """``Filter(node, preds)`` with conjuncts moved below ``node`` as far as legal;
    None if none can move below ``node`` itself."""
    levels: list[tuple[Node, list[Expr]]] = []  # nodes passed through, with what stays above each
    out: Node | None = None
    # A loop, not recursion, down chains of single-input nodes: plans of a thousand
    # stacked windows are deeper than Python's recursion limit.
    while preds and uses.get(node, 0) == 1:
        if isinstance(node, (Union, Join, AsOfJoin)):
            out = _branch(node, preds, uses)
            if out is not None:
                preds = []
            break
        split = _split(node, preds)
        if split is None or not split[0]:
            break
        down, stay = split
        levels.append((node, stay))
        node, preds = node.inputs[0], down
    if out is None:
        if not levels:
            return None
        out = _filter(node, preds)
    for parent, stay in reversed(levels):
        out = _filter(parent.with_inputs((out,)), stay)
    return out


def _filter(node: Node, preds: list[Expr]) -> Node:
    return Filter(node, and_all(preds)) if preds else node  # type: ignore[arg-type]


def _place_or_filter(node: Node, preds: list[Expr], uses: dict[Node, int]) -> Node:
    if not preds:
        return node
    return _place(node, preds, uses) or Filter(node, and_all(preds))  # type: ignore[arg-type]


def _split(node: Node, preds: list[Expr]) -> tuple[list[Expr], list[Expr]] | None:
    """(conjuncts moved below ``node``, rewritten for its input; conjuncts that stay)."""
    if isinstance(node, Project):
        by_name = dict(node.exprs)

        def substitute(e: Expr) -> Expr | None:
            return by_name[e.name] if isinstance(e, Column) else None

        return [p.replace(substitute) for p in preds], []
    if isinstance(node, (Aggregate, TimeWindowAggregate, WindowAggregate)):
        # grouping keys / partition keys only: never window_start, window_end or an aggregate
        keys = set(node.keys)
        down = [p for p in preds if p.columns() and p.columns() <= keys]
        return down, [p for p in preds if not (p.columns() and p.columns() <= keys)]
    return None  # Source (the destination), Filter (merge_filters' job), Sink


def _branch(node: Node, preds: list[Expr], uses: dict[Node, int]) -> Node | None:
    if isinstance(node, Union):
        return Union(tuple(_place_or_filter(m, preds, uses) for m in node.members))
    if isinstance(node, AsOfJoin):
        spine_cols = set(node.spine.schema.names)
        down = [p for p in preds if p.columns() and p.columns() <= spine_cols]
        if not down:
            return None
        kept = [p for p in preds if not (p.columns() and p.columns() <= spine_cols)]
        return _filter(node.with_inputs((_place_or_filter(node.spine, down, uses), node.events)), kept)
    assert isinstance(node, Join)
    left_cols, right_cols = set(node.left.schema.names), set(node.right.schema.names)
    into_left = node.how in ("inner", "left")  # never into a side the join pads with NULLs
    into_right = node.how in ("inner", "right")
    left: list[Expr] = []
    right: list[Expr] = []
    stay: list[Expr] = []
    for p in preds:
        cols = p.columns()
        if cols and cols <= left_cols and into_left:
            left.append(p)
        elif cols and cols <= right_cols and into_right:
            right.append(p)
        else:
            stay.append(p)
    if not left and not right:
        return None
    joined = node.with_inputs((_place_or_filter(node.left, left, uses), _place_or_filter(node.right, right, uses)))
    return _filter(joined, stay)
