"""The optimizer: rewrite rules (one module each) and the driver that runs them.

``RULES`` is the order the driver applies them in, pass after pass, to a fixed point.
"""

from __future__ import annotations

from relplan.rules.choose_asof_lowering import choose_asof_lowering
from relplan.rules.driver import OptimizerConfig, Roots, RuleContext, TraceEntry, run_rules
from relplan.rules.eliminate_common_subplans import eliminate_common_subplans
from relplan.rules.merge_filters import merge_filters
from relplan.rules.merge_projections import merge_projections
from relplan.rules.prune_columns import prune_columns
from relplan.rules.push_down_filter import push_down_filter
from relplan.rules.share_windows import share_windows
from relplan.rules.simplify_expressions import simplify_expressions
from relplan.rules.statistics import SourceStats, Statistics
from relplan.rules.tile_long_windows import tile_long_windows

# (name, function) in application order; the name is the module, the flag, the trace label.
RULES: tuple[tuple[str, object], ...] = (
    ("simplify_expressions", simplify_expressions),
    ("merge_filters", merge_filters),
    ("push_down_filter", push_down_filter),
    ("merge_projections", merge_projections),
    ("eliminate_common_subplans", eliminate_common_subplans),
    ("share_windows", share_windows),
    ("tile_long_windows", tile_long_windows),
    ("choose_asof_lowering", choose_asof_lowering),
    ("prune_columns", prune_columns),
)
RULE_NAMES: tuple[str, ...] = tuple(name for name, _ in RULES)


def optimize_roots(roots: Roots, config: OptimizerConfig | None = None) -> tuple[Roots, tuple[TraceEntry, ...]]:
    """Optimize a plan's outputs; returns the new outputs and the rule trace."""
    return run_rules(roots, config or OptimizerConfig(), RULES)  # type: ignore[arg-type]


__all__ = ["RULES", "RULE_NAMES", "OptimizerConfig", "SourceStats", "Statistics", "RuleContext", "TraceEntry", "optimize_roots", "run_rules"]
