"""optimize(): run the rule-based optimizer over a compiled plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import lru_cache

import networkx as nx

from relplan.backends.sql import gc_paused
from relplan.compiler.plan import Plan
from relplan.ir.errors import RelplanError
from relplan.ir.graph import walk
from relplan.ir.nodes import Sink, Source
from relplan.rules import OptimizerConfig, Statistics, TraceEntry, optimize_roots
from relplan.rules.placement import Knobs


def optimize(
    plan: Plan,
    config: OptimizerConfig | None = None,
    *,
    disable: Iterable[str] = (),
    statistics: Statistics | None = None,
    knobs: Knobs | None = None,
) -> Plan:
    """The optimized plan (same outputs, same results); ``disable`` names rules to skip.

    ``statistics`` (``rp.Statistics``, or ``rp.measure_statistics(tables)``) lets the
    cost-based choices be made (see ``OptimizerConfig``); ``plan.explain(verbose=True)``
    on the result shows which rule changed what.

    ``knobs`` (``rp.Knobs(...)``) also places every feature on batch, streaming or
    both (rules/placement.py): ``explain()`` then shows, per feature, the
    alternatives with their estimated cost, latency and correctness, the one chosen
    and the knob that decided; ``plan.deployment()`` gives the jobs.
    """
    if not isinstance(plan, Plan):
        raise RelplanError(f"optimize() takes a plan from rp.compile(...), got {type(plan).__name__}")
    with gc_paused():  # rules build and drop many nodes, with no cycles among them
        return _optimize(plan, config, tuple(disable), statistics, knobs)


def _optimize(
    plan: Plan, config: OptimizerConfig | None, disable: tuple[str, ...], statistics: Statistics | None, knobs: Knobs | None
) -> Plan:
    config = config or OptimizerConfig()
    if disable:
        config = config.without(*disable)
    if statistics is not None:
        config = dataclasses.replace(config, statistics=statistics)
    roots: tuple[Sink, ...] = ()
    trace: tuple[TraceEntry, ...] = ()
    for component in _independent(plan.outputs):
        out, tr = _optimize_component(component, config)
        # The cache may hold an equal plan built earlier: unchanged outputs stay the caller's objects.
        roots += tuple(before if after == before else after for before, after in zip(component, out))
        trace += tr
    by_name = {s.name: s for s in roots}
    outputs = tuple(by_name[s.name] for s in plan.outputs)
    if all(a is b for a, b in zip(outputs, plan.outputs)):
        outputs = plan.outputs  # nothing changed: the very same plan
    optimized = Plan(outputs, plan.features, plan.trace + trace, optimized=True)
    if knobs is None:
        return optimized
    from relplan.compiler.place import place

    return dataclasses.replace(optimized, placement=place(plan, knobs, config))


def _independent(outputs: tuple[Sink, ...]) -> list[tuple[Sink, ...]]:
    """Outputs grouped so that no two groups share a subplan other than a Source.

    Each group is optimized on its own (and cached): a changed feature re-optimizes
    only its own group."""
    if len(outputs) == 1:
        return [outputs]  # one group, whatever it holds (the graph below was 7 ms for 1,000 features)
    g = nx.Graph()
    for s in outputs:
        g.add_node(s)
        for n in walk(s):
            if n is not s and not isinstance(n, Source):
                g.add_edge(s, n)
    order = {s: i for i, s in enumerate(outputs)}
    groups = [sorted((n for n in comp if n in order), key=order.__getitem__) for comp in nx.connected_components(g)]
    return [tuple(c) for c in sorted(groups, key=lambda c: order[c[0]])]


@lru_cache(maxsize=256)
def _optimize_component(roots: tuple[Sink, ...], config: OptimizerConfig) -> tuple[tuple[Sink, ...], tuple[TraceEntry, ...]]:
    return optimize_roots(roots, config)
