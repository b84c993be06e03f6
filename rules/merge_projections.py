"""merge_projections: a projection of a projection becomes one; identity projections go.

Legal: the outer projection's expressions are evaluated on the inner one's
output, so substituting each inner column by the expression that computed it
gives the same values from the inner input. It is done only when no non-trivial
expression gets computed twice: each inner expression that is not a column or a
literal is read at most once by the outer projection, and not at all when the
inner projection is shared (its other consumers compute it anyway)::

    Project k, total := v + 1.0
      Project k, v := x * 2.0, unused := x - 1.0
        Source T event_time=ts bounded

becomes::

    Project k, total := (x * 2.0) + 1.0
      Source T event_time=ts bounded

Refused: ``v`` is read twice, so inlining would compute ``x * 2.0`` twice::

    Project a := v + 1.0, b := v - 1.0
      Project v := x * 2.0
        Source T event_time=ts bounded

A projection that outputs exactly its input's columns, in order and by name,
changes nothing and is removed. One that reorders or renames them is kept::

    Project ts, k, x, y, s               -- the input's columns are k, x, y, s, ts:
      Source T event_time=ts bounded     -- removing it would change the schema
"""

from __future__ import annotations

from collections import Counter

from relplan.ir.expr import Column, Expr, Literal
from relplan.ir.nodes import Node, Project
from relplan.rules.driver import Roots, RuleContext


def merge_projections(roots: Roots, ctx: RuleContext) -> Roots:
    def rewrite(original: Node, inputs: tuple[Node, ...]) -> Node | None:
        if not isinstance(original, Project):
            return None
        node = original if inputs[0] is original.input else Project(inputs[0], original.exprs)
        merged = node
        if isinstance(node.input, Project):
            # shared as the input plan's node was: transform rewrites it once for all its consumers
            shared = ctx.uses(roots).get(original.input, 0) > 1
            merged = _merge(node, node.input, shared) or node
        if is_identity(merged):
            return merged.input
        return None if merged is original else merged

    # Only a projection of a projection, or one outputting its input's columns, changes.
    return ctx.transform_where(
        roots, lambda n: isinstance(n, Project) and (isinstance(n.input, Project) or is_identity(n)), rewrite, with_original=True
    )


def is_identity(p: Project) -> bool:
    """Does ``p`` output exactly its input's columns, in order and by name?"""
    names = p.input.schema.names
    return len(p.exprs) == len(names) and all(
        isinstance(e, Column) and e.name == name == col for (name, e), col in zip(p.exprs, names)
    )


def _trivial(e: Expr) -> bool:
    return isinstance(e, (Column, Literal))


def _merge(outer: Project, inner: Project, inner_shared: bool) -> Project | None:
    reads = Counter(c.name for _, e in outer.exprs for c in e.walk() if isinstance(c, Column))
    for name, e in inner.exprs:
        if not _trivial(e) and (reads[name] > 1 or (inner_shared and reads[name] > 0)):
            return None  # inlining would compute e twice
    by_name = dict(inner.exprs)

    def inline(e: Expr) -> Expr | None:
        return by_name[e.name] if isinstance(e, Column) else None

    return Project(inner.input, tuple((name, e.replace(inline)) for name, e in outer.exprs))
