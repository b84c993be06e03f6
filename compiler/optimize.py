"""optimize(): run the rule-based optimizer over a compiled plan."""

from __future__ import annotations

from collections.abc import Iterable

from relplan.compiler.plan import Plan
from relplan.ir.errors import RelplanError
from relplan.rules import OptimizerConfig, optimize_roots


def optimize(plan: Plan, config: OptimizerConfig | None = None, *, disable: Iterable[str] = ()) -> Plan:
    """The optimized plan (same outputs, same results); ``disable`` names rules to skip.

    ``plan.explain(verbose=True)`` on the result shows which rule changed what.
    """
    if not isinstance(plan, Plan):
        raise RelplanError(f"optimize() takes a plan from rp.compile(...), got {type(plan).__name__}")
    config = config or OptimizerConfig()
    disable = tuple(disable)
    if disable:
        config = config.without(*disable)
    roots, trace = optimize_roots(plan.outputs, config)
    return Plan(roots, plan.features, plan.trace + trace, optimized=True)
