"""merge_filters: two stacked filters become one filter on the conjunction.

Legal: a row passes both filters exactly when both predicates are TRUE on it,
which is when their AND is TRUE (three-valued logic included: a NULL in either
drops the row both ways)::

    Filter x > 10.0
      Filter s = 'failed'
        Source T event_time=ts bounded

becomes::

    Filter (s = 'failed') AND (x > 10.0)
      Source T event_time=ts bounded

The inner predicate comes first. The rule does not fire on a filter over anything
but a filter (e.g. a Filter over a Project: moving it is push_down_filter's job)::

    Filter x > 10.0
      Project x, s
        Filter s = 'failed'
          Source T event_time=ts bounded

If the inner filter is shared by other consumers it stays for them; re-evaluating
its predicate in the merged filter costs little and lets the merged one move on.
"""

from __future__ import annotations

from relplan.ir.expr import Binary
from relplan.ir.nodes import Filter, Node
from relplan.rules.driver import Roots, RuleContext


def merge_filters(roots: Roots, ctx: RuleContext) -> Roots:
    def rewrite(node: Node) -> Node | None:
        if isinstance(node, Filter) and isinstance(node.input, Filter):
            inner = node.input
            return Filter(inner.input, Binary("AND", inner.predicate, node.predicate))
        return None

    return ctx.transform_where(roots, lambda n: isinstance(n, Filter) and isinstance(n.input, Filter), rewrite)
