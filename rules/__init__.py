"""The optimizer: rewrite rules (one module each) and the driver that runs them.

``RULES`` is the order the driver applies them in, pass after pass, to a fixed point.
"""

from __future__ import annotations

from relplan.rules.driver import OptimizerConfig, Roots, RuleContext, TraceEntry, run_rules

# (name, function) in application order; the name is the module, the flag, the trace label.
RULES: tuple[tuple[str, object], ...] = ()
RULE_NAMES: tuple[str, ...] = tuple(name for name, _ in RULES)


def optimize_roots(roots: Roots, config: OptimizerConfig | None = None) -> tuple[Roots, tuple[TraceEntry, ...]]:
    """Optimize a plan's outputs; returns the new outputs and the rule trace."""
    return run_rules(roots, config or OptimizerConfig(), RULES)  # type: ignore[arg-type]


__all__ = ["RULES", "RULE_NAMES", "OptimizerConfig", "RuleContext", "TraceEntry", "optimize_roots", "run_rules"]
