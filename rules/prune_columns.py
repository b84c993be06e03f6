"""prune_columns: compute and carry only the columns some consumer reads.

The columns each node must output are computed top-down over the DAG: a Sink
needs all of its columns, a node shared by several consumers needs the union of
what they read. Then, bottom-up:

- a Project drops the expressions nobody reads;
- an Aggregate or TimeWindowAggregate drops the aggregates nobody reads (it keeps
  at least one: the node itself must stay, since it decides the rows);
- a WindowAggregate drops them too, and when none of its outputs is read it is
  removed, which is legal since it outputs one row per input row, unchanged; an
  AsOfJoin likewise (exactly its spine's rows: a merge_asof whose columns nobody
  reads is not run);
- below a node that carries its input's columns through or reads only some of
  them (Aggregate, TimeWindowAggregate, WindowAggregate, Join, Union), a Project
  narrows the input to the columns that node needs. So a Source is read through
  a Project of the columns used (a Filter directly over a Source stays there, the
  pushed-down form, and the Project goes above it).

Legal: every output schema that something reads keeps what is read, and the
Sinks' schemas, names and order, are untouched::

    Sink out
      Project k, n
        WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*), sx := sum(x)]
          Source T event_time=ts bounded     -- columns k, x, y, s, ts

becomes::

    Sink out
      Project k, n
        WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*)]
          Project k, ts
            Source T event_time=ts bounded

Refused: a column a consumer reads is never dropped, nor one a Sink outputs.
Here ``sx`` is read by the Sink, so nothing changes::

    Sink out
      WindowAggregate partition=[k] order=ts frame=(t-1h, t] aggs=[n := count(*), sx := sum(x)]
        Source T event_time=ts bounded

and an aggregate nobody reads is not removed when it is its node's last one::

    Sink out
      Project k
        Aggregate keys=[k] aggs=[n := count(*)]
          Source S bounded                   -- columns k

When no column of a node is read (say by ``count(*)``), it still outputs its
first column: a relation has at least one. The rule reaches its fixed point in
one run: it inserts a Project only where the columns it narrows to are fewer.
"""

from __future__ import annotations

from collections.abc import Iterable

from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Column, Expr
from relplan.ir.graph import transform, walk
from relplan.ir.nodes import (
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.ir.windows import Frame
from relplan.rules.driver import Roots, RuleContext


def prune_columns(roots: Roots, ctx: RuleContext) -> Roots:
    # The rule reaches its fixed point in one run: a plan it returned (the very
    # object, in a later pass no rule before it changed) is returned as it is.
    if ctx.memo.get(("prune_columns", "done")) is roots:
        return roots
    out = _prune(roots)
    ctx.memo[("prune_columns", "done")] = out
    return out


def _prune(roots: Roots) -> Roots:
    need = required_columns(roots)

    # Each node is built from its original over its narrowed inputs: the original
    # may read columns that its narrowed form does not and those inputs no longer have.
    def rewrite(original: Node, inputs: tuple[Node, ...]) -> Node | None:
        mine = need[original]
        return _narrow(original, inputs, mine, _reads(original, mine))

    return transform(roots, rewrite, with_original=True)  # type: ignore[return-value]


def required_columns(roots: Roots) -> dict[Node, set[str]]:
    """The columns each node must output: the union over its consumers of what each reads."""
    need: dict[Node, set[str]] = {}
    for n in reversed(walk(roots)):  # every consumer before its inputs
        if isinstance(n, Sink):
            mine = set(n.schema.names)
        else:
            mine = need.setdefault(n, set())
        need[n] = mine
        for inp, cols in zip(n.inputs, _reads(n, mine)):
            need.setdefault(inp, set()).update(cols)
    return need


def _reads(n: Node, mine: set[str]) -> list[set[str]]:
    """What ``n``, narrowed to output ``mine``, reads from each input; at least one
    column of each (``count(*)`` reads none, but its input still has rows)."""
    return [r or set(i.schema.names[:1]) for r, i in zip(_input_needs(n, mine), n.inputs)]


def _cols(exprs: Iterable[Expr]) -> set[str]:
    out: set[str] = set()
    for e in exprs:
        if type(e) is Column:  # most of a wide projection: its columns are its name
            out.add(e.name)
        else:
            out |= e.columns()
    return out


def _agg_cols(aggs: Iterable[AggCall]) -> set[str]:
    out: set[str] = set()
    for a in aggs:
        out |= a.columns()  # cached on the aggregate: the columns of its expressions
    return out


def _kept_exprs(p: Project, mine: set[str]) -> tuple[tuple[str, Expr], ...]:
    return tuple((n, e) for n, e in p.exprs if n in mine) or p.exprs[:1]


def _kept_aggs(aggs: tuple[AggCall, ...], mine: set[str]) -> tuple[AggCall, ...]:
    return tuple(a for a in aggs if a.name in mine) or aggs[:1]


def _kept_windows(w: WindowAggregate | AsOfJoin, mine: set[str]) -> tuple[tuple[Frame, tuple[AggCall, ...]], ...]:
    out = []
    for frame, aggs in w.windows:
        kept = tuple(a for a in aggs if a.name in mine)
        if kept:
            out.append((frame, kept))
    return tuple(out)


def _input_needs(n: Node, mine: set[str]) -> list[set[str]]:
    if isinstance(n, Sink):
        return [set(n.input.schema.names)]
    if isinstance(n, Filter):
        return [mine | n.predicate.columns()]
    if isinstance(n, Project):
        return [_cols(e for _, e in _kept_exprs(n, mine))]
    if isinstance(n, Aggregate):
        return [set(n.keys) | _agg_cols(_kept_aggs(n.aggs, mine))]
    if isinstance(n, TimeWindowAggregate):
        return [set(n.keys) | {n.time} | _agg_cols(_kept_aggs(n.aggs, mine))]
    if isinstance(n, WindowAggregate):
        passed = mine & set(n.input.schema.names)
        windows = _kept_windows(n, mine)
        if not windows:
            return [passed]  # removed: its consumers read its input directly
        return [passed | set(n.keys) | {n.order} | _agg_cols(a for _, aggs in windows for a in aggs)]
    if isinstance(n, Join):
        left, right = set(n.left.schema.names), set(n.right.schema.names)
        return [
            (mine & left) | {lk for lk, _ in n.on} | ({n.left_time} if n.left_time else set()),
            (mine & right) | {rk for _, rk in n.on} | ({n.right_time} if n.right_time else set()),
        ]
    if isinstance(n, Union):
        return [set(mine) for _ in n.members]
    if isinstance(n, AsOfJoin):
        passed = mine & set(n.spine.schema.names)
        windows = _kept_windows(n, mine)
        if not windows:
            return [passed, set()]  # removed: its consumers read its spine directly
        spine = passed | {s for s, _ in n.on} | {n.spine_time}
        kept = _agg_cols(a for _, aggs in windows for a in aggs)
        return [spine | ({n.row_id} if n.row_id else set()), {e for _, e in n.on} | {n.event_time} | kept]
    return [set(i.schema.names) for i in n.inputs]  # any other node: all of its inputs


def _fit(node: Node, cols: set[str]) -> Node:
    """``node`` narrowed by a Project to ``cols`` (in its order), if it has more."""
    if set(node.schema.names) <= cols:
        return node
    return Project(node, tuple((f.name, Column(f.name, f.dtype)) for f in node.schema if f.name in cols))


def _narrow(node: Node, inputs: tuple[Node, ...], mine: set[str], reads: list[set[str]]) -> Node | None:
    """``node`` over its narrowed ``inputs``, outputting at least ``mine``; None for
    ``node.with_inputs(inputs)`` (which is ``node`` when the inputs are unchanged)."""
    same_inputs = all(a is b for a, b in zip(inputs, node.inputs))
    if isinstance(node, Project):
        kept = _kept_exprs(node, mine)
        return None if same_inputs and len(kept) == len(node.exprs) else Project(inputs[0], kept)
    if isinstance(node, (Aggregate, TimeWindowAggregate)):
        inp = _fit(inputs[0], reads[0])
        aggs = _kept_aggs(node.aggs, mine)
        if inp is node.input and len(aggs) == len(node.aggs):
            return None
        return node.replace_fields(input=inp, aggs=aggs)
    if isinstance(node, WindowAggregate):
        windows = _kept_windows(node, mine)
        if not windows:
            return inputs[0]  # removed: it only added columns nobody reads
        inp = _fit(inputs[0], reads[0])
        if inp is node.input and windows == node.windows:
            return None
        return WindowAggregate(inp, node.keys, node.order, windows)
    if isinstance(node, Join):
        left, right = _fit(inputs[0], reads[0]), _fit(inputs[1], reads[1])
        if left is node.left and right is node.right:
            return None
        return node.with_inputs((left, right))
    if isinstance(node, AsOfJoin):
        windows = _kept_windows(node, mine)
        if not windows:
            return inputs[0]  # removed: exactly its spine's rows, plus columns nobody reads
        spine, events = _fit(inputs[0], reads[0]), _fit(inputs[1], reads[1])
        if spine is node.spine and events is node.events and windows == node.windows:
            return None
        return node.replace_fields(spine=spine, events=events, windows=windows)
    if isinstance(node, Union):
        members = tuple(_fit(m, r) for m, r in zip(inputs, reads))
        if all(a is b for a, b in zip(members, node.members)):
            return None
        return Union(members)
    return None  # Source, Filter, Sink: nothing of their own to drop; they fit their inputs
