"""place(): each feature of a plan placed on batch, streaming or both, under the knobs.

Each feature is compiled and optimized on its own (the compile and optimize
caches make a thousand of them cheap), so that its alternatives are estimated for
its own plan; features that land on the same placement are grouped into shared
jobs again by the deployment (compiler/deployment.py).
"""

from __future__ import annotations

import dataclasses

from relplan.backends.hybrid import hybrid_refusal, split_hybrid
from relplan.compiler.plan import Plan
from relplan.ir.errors import OptimizerError
from relplan.rules import OptimizerConfig
from relplan.rules.placement import Knobs, Placement, place_feature


def place(plan: Plan, knobs: Knobs, config: OptimizerConfig) -> Placement:
    """The placement of every feature of ``plan`` (or of every output, for a plan
    built without features), estimated with ``config.statistics``."""
    if not isinstance(knobs, Knobs):
        raise OptimizerError(f"knobs= takes an rp.Knobs(...), got {type(knobs).__name__}")
    from relplan.compiler.compile import compile as compile_features
    from relplan.compiler.optimize import optimize

    units = []
    if plan.features:
        for f in plan.features:
            (sink,) = optimize(compile_features([f]), config).outputs
            units.append((f.name, f.columns, sink))
    else:
        units = [(s.name, tuple(c.name for c in s.schema.fields), s) for s in plan.outputs]
    placed = []
    for name, columns, sink in units:
        refusal = hybrid_refusal(sink)
        stream = None if refusal else split_hybrid(sink).stream
        placed.append(place_feature(name, columns, sink, config.statistics, knobs, refusal, stream))
    return Placement(knobs, tuple(placed), config)


def with_placement(plan: Plan, placement: Placement) -> Plan:
    return dataclasses.replace(plan, placement=placement)
