"""choose_asof_lowering: pick how each point-in-time join is computed, by estimated cost.

The lowerings (backends/asof.py) give the same rows; their work differs by orders
of magnitude with the data's shape, and no single one wins everywhere:

- ``asof``: every aggregate is last() over a frame ending at t (a latest value,
  with or without a TTL). DuckDB's ASOF JOIN sorts both sides once: chosen always,
  statistics or not.
- ``range_join``: costs the pairs of a spine row and an event of the same key, which
  the hash join on the key enumerates before testing the frame: N * M / K for N
  spine rows, M events and K distinct keys. Cheap on many keys with short
  histories, ruinous on a few dense keys.
- ``union``: costs a sort and a window pass over N + M rows, whatever the keys.
  Never ruinous: the choice without statistics.

``OptimizerConfig(asof_lowering=...)`` forces a lowering wherever it applies.

Estimated cost, in the units of one key-matched pair (``OptimizerConfig``):
``range_join`` = N * M / K * asof_pair_cost, ``union`` = (N + M) * asof_union_row_cost.
The defaults were measured by bench/test_pitc_bench.py on DuckDB 2.0.1 (its
docstring has the figures).

Statistics: the spine's rows (the source under the spine's projections and
earlier point-in-time joins) and the events' rows and distinct key counts.

Fires (statistics: pitc_spine 100k rows; Transactions 5M rows, 50k distinct cc_num):

    AsOfJoin on cc_num = cc_num time=ts event_time=ts frames=[[t-7d, t) aggs=[n := count(*)]]
  =>
    AsOfJoin on cc_num = cc_num time=ts event_time=ts lowering=range_join frames=[[t-7d, t) aggs=[n := count(*)]]

and with 50 distinct cc_num (10^10 pairs against 5.1M rows) ``lowering=union``.
"""

from __future__ import annotations

from dataclasses import replace

from relplan.backends.asof import half_open, newest_event_only, tile_size
from relplan.ir.graph import transform
from relplan.ir.nodes import AsOfJoin, Node, Project, Source
from relplan.rules.driver import Roots, RuleContext

MIN_TILES = 8  # tiles per frame at the least, for the cost-based choice (few leave most rows raw)
from relplan.rules.statistics import Statistics, _per_partition, _source_of


def choose_asof_lowering(roots: Roots, ctx: RuleContext) -> Roots:
    def visit(n: Node) -> Node | None:
        if not isinstance(n, AsOfJoin) or n.lowering is not None:
            return None
        lowering = choose(n, ctx)
        if lowering == "tiles":
            forced = ctx.config.asof_lowering == "tiles"
            return replace(n, lowering=lowering, tile=tile_size(n, 2 if forced else MIN_TILES))
        return replace(n, lowering=lowering)

    return transform(roots, visit)  # type: ignore[return-value]


def choose(n: AsOfJoin, ctx: RuleContext) -> str:
    forced = ctx.config.asof_lowering
    if forced == "range_join" and n.row_id is not None or forced == "union":
        return forced
    if forced == "tiles" and tile_size(n, 2) is not None:
        return forced
    if newest_event_only(n):
        return "asof"
    costs = estimated_costs(n, ctx.config.statistics, ctx.config.asof_pair_cost, ctx.config.asof_union_row_cost)
    if costs is None or n.row_id is None:
        return "union"
    return min(costs, key=costs.__getitem__)


def estimated_costs(n: AsOfJoin, stats: Statistics | None, pair_cost: float, row_cost: float) -> dict[str, float] | None:
    """Each lowering's estimated cost, or None where the statistics lack a figure."""
    if stats is None:
        return None
    spine = _spine_source(n.spine)
    events = _source_of(n.events, (*(e for _, e in n.on), n.event_time))
    spine_st = None if spine is None else stats.of(spine.name)
    events_st = None if events is None else stats.of(events.name)
    if spine_st is None or events_st is None:
        return None
    per_key = _per_partition(events_st, tuple(e for _, e in n.on))
    if per_key is None:
        return None
    costs = {
        "range_join": spine_st.rows * per_key * pair_cost,
        "union": (spine_st.rows + events_st.rows) * row_cost,
    }
    tile = tile_size(n, MIN_TILES)
    span = events_st.span_of(n.event_time)
    if tile is not None and span is not None:
        # Whole tiles of the widest frame per spine row (no more than the key has),
        # the events of a head and a tail tile per frame, and the partials' GROUP BY.
        widest = max(lo - up for lo, up in (half_open(f) for f, _ in n.windows))
        tiles_per_key = min(span / tile + 1, per_key)
        per_tile = per_key * min(1.0, tile / max(span, 1))
        costs["tiles"] = (
            spine_st.rows * min(widest / tile, tiles_per_key) + spine_st.rows * 2 * len(n.windows) * per_tile
        ) * pair_cost + events_st.rows * row_cost / 4
    return costs


def _spine_source(node: Node) -> Source | None:
    """The source of the spine's rows: through projections and point-in-time joins,
    which keep every row."""
    while isinstance(node, (Project, AsOfJoin)):
        node = node.input if isinstance(node, Project) else node.spine
    return node if isinstance(node, Source) else None
