"""place(): each feature of a plan placed on batch, streaming or both, under the knobs.

Each feature is compiled on its own (the compile cache makes a thousand of them
cheap), so that its alternatives are estimated for its own plan; features that
land on the same placement share jobs again in the deployment
(compiler/deployment.py).
"""

from __future__ import annotations

from relplan.backends.flink import FlinkLowering
from relplan.backends.hybrid import hybrid_refusal, hybrid_stream
from relplan.compiler.plan import Plan
from relplan.ir.errors import OptimizerError, UnsupportedError
from relplan.ir.graph import walk
from relplan.ir.nodes import Sink, Source
from relplan.ir.printer import sources
from relplan.rules import OptimizerConfig
from relplan.rules.placement import Knobs, Placement, place_feature


def place(plan: Plan, knobs: Knobs, config: OptimizerConfig) -> Placement:
    """The placement of every feature of ``plan`` (or of every output, for a plan
    built without features and for training data), estimated with ``config.statistics``."""
    if not isinstance(knobs, Knobs):
        raise OptimizerError(f"knobs= takes an rp.Knobs(...), got {type(knobs).__name__}")
    from relplan.compiler.compile import compile as compile_features
    from relplan.compiler.pitc import SPINE

    units = []
    # Training data is one plan whose point-in-time joins read the spine: placed whole.
    # (An AsOfJoin of a feature's own merge_asof is part of that feature, placed with it.)
    by_output = not plan.features or any(isinstance(n, Source) and n.name == SPINE for n in walk(plan.outputs))
    if not by_output:
        # Each feature's compiled plan (cached): the optimizer would only drop its
        # final projection of column references, which costs nothing in the model,
        # and it is a tenth of the time of placing a thousand features.
        for f in plan.features:
            (sink,) = compile_features([f]).outputs
            units.append((f.name, f.columns, sink))
    else:  # built without features, or training data (its point-in-time joins are one plan)
        units = [(s.name, s.schema.names, s) for s in plan.outputs]
    _check_statistics(plan, config)
    unknown = sorted({name for name, _ in knobs.features} - {name for name, _, _ in units})
    if unknown:
        raise OptimizerError(
            f"Knobs features= names {unknown}, which the plan does not have; its features: {[name for name, _, _ in units]}"
        )
    placed = []
    for name, columns, sink in units:
        refusal = hybrid_refusal(sink)
        stream = None if refusal else hybrid_stream(sink)
        placed.append(place_feature(name, columns, sink, config.statistics, knobs, refusal, stream, _flink_refusal(sink)))
    return Placement(knobs, tuple(placed), config, by_output)


def _check_statistics(plan: Plan, config: OptimizerConfig) -> None:
    """Placement weighs cost, which needs every source's rows, and a stream's rate:
    without them it would choose blind, so it refuses and says what to give."""
    stats = config.statistics
    missing = []
    for src in sources(plan.outputs):
        st = None if stats is None else stats.of(src.name)
        if st is None or (src.event_time is not None and st.rate_of(src.event_time) is None):
            missing.append(src.name)
    if missing:
        raise OptimizerError(
            f"placement needs statistics of source(s) {missing}: their rows and event rate "
            "(rp.measure_statistics(tables), or rp.Statistics({name: rp.SourceStats(rows=..., rate=...)})), "
            "passed as rp.optimize(plan, statistics=..., knobs=...)"
        )


def _flink_refusal(sink: Sink) -> str | None:
    """Why Flink's streaming mode cannot run ``sink`` (its lowering says), or None."""
    try:
        FlinkLowering(mode="streaming").lower(sink)  # the AST, not its text: the checks are in the lowering
    except UnsupportedError as e:
        return str(e)
    return None
