"""choose_asof_lowering: pick how each point-in-time join is computed, by estimated cost.

The lowerings (backends/asof.py) give the same rows; their work differs by orders
of magnitude with the data's shape, and no single one wins everywhere:

- ``asof``: every aggregate is last() over a frame ending at t (a latest value,
  with or without a TTL). DuckDB's ASOF JOIN sorts both sides once: chosen always,
  statistics or not. Where the statistics declare the events unique per key and
  time (``SourceStats(unique=[(key, time)])``), ``unique_times``: there are no ties
  to settle, and the ASOF JOIN's match is the answer. No rule sets ``no_nulls``
  (nor ``unique_times`` from data): a run on given Arrow tables proves both on them
  (``with_proven_properties`` in backends/asof.py, applied by the DuckDB backend),
  and with both one ASOF JOIN gives every column; a plan's SQL never assumes them.
- ``range_join``: costs the pairs of a spine row and an event of the same key, which
  the hash join on the key enumerates before testing the frame: N * M / K for N
  spine rows, M events and K distinct keys. Cheap on many keys with short
  histories, ruinous on a few dense keys.
- ``tiles`` (count, sum, mean, min, max over frames of at least MIN_TILES whole
  tiles): the tiles of the widest frame per spine row (at most the key's tiles),
  the events of a head and a tail tile per frame, and one pass over the events
  for the partials.
- ``union``: costs a sort and a window pass over N + M rows, whatever the keys.
  Never ruinous: the choice without statistics.

``OptimizerConfig(asof_lowering=...)`` forces a lowering wherever it applies.

The estimates are times, from the spine's rows N, the events' rows M, their
distinct keys K and time span, with constants measured on DuckDB (below):
``range_join`` reads the events and pairs each spine row with its key's M / K
events; ``tiles`` builds the partials and pairs each spine row with its key's
tiles and the events of its head and tail tiles; ``union`` sorts and windows N + M
rows at a cost per row growing with the square root of a key's rows. explain()
shows them (``estimates=[...]``, seconds) beside the choice.

Statistics: the spine's rows (the source under the spine's projections and
earlier point-in-time joins) and the events' rows, distinct key counts and time
span.

Fires (statistics: pitc_spine 100k rows; Transactions 5M rows over 60 days, 50k distinct cc_num):

    AsOfJoin on cc_num = cc_num time=ts event_time=ts frames=[[t-7d, t) aggs=[n := count(*)]]
  =>
    AsOfJoin on cc_num = cc_num time=ts event_time=ts lowering=range_join estimates=[range_join 290ms, tiles 910ms, union 2.1s] frames=[[t-7d, t) aggs=[n := count(*)]]

and with 50 distinct cc_num ``lowering=tiles tiles=1h estimates=[range_join 60.2s,
tiles 1.8s, union 28.9s]`` (the issue measured 88 s, 8.9 s and 27 s on its machine).
"""

from __future__ import annotations

import math
from dataclasses import replace

from relplan.backends.asof import newest_event_only, tile_size
from relplan.ir.graph import transform, walk
from relplan.ir.nodes import AsOfJoin, Node, Project, Source
from relplan.rules.driver import Roots, RuleContext
from relplan.rules.statistics import Statistics, _per_partition, _source_of

MIN_TILES = 8  # tiles per frame at the least, for the cost-based choice (few leave most rows raw)


def choose_asof_lowering(roots: Roots, ctx: RuleContext) -> Roots:
    # Most plans have no point-in-time join: a walk is a sixth of a rebuild's cost
    # (0.6 ms against 3.4 ms for a thousand features, on every pass).
    if not any(isinstance(n, AsOfJoin) and n.lowering is None for n in walk(roots)):
        return roots

    def visit(n: Node) -> Node | None:
        if not isinstance(n, AsOfJoin) or n.lowering is not None:
            return None
        lowering, costs = choose(n, ctx)
        tile = tile_size(n, 2 if ctx.config.asof_lowering == "tiles" else MIN_TILES) if lowering == "tiles" else None
        estimates = tuple(sorted((k, round(v / 1e9, 9)) for k, v in costs.items()))
        unique = lowering == "asof" and _unique_times(n, ctx.config.statistics)
        return replace(n, lowering=lowering, tile=tile, estimates=estimates, unique_times=unique)

    return transform(roots, visit)  # type: ignore[return-value]


def choose(n: AsOfJoin, ctx: RuleContext) -> tuple[str, dict[str, float]]:
    """The lowering, and the estimates (nanoseconds) it was chosen from."""
    costs = estimated_costs(n, ctx.config.statistics)
    forced = ctx.config.asof_lowering
    if forced == "range_join" and n.row_id is not None or forced == "union":
        return forced, costs
    if forced == "tiles" and tile_size(n, 2) is not None:
        return forced, costs
    if newest_event_only(n):
        return "asof", {}
    if not costs or n.row_id is None:
        return "union", costs
    return min(costs, key=costs.__getitem__), costs


# Measured on DuckDB 2.0.1, 2 cores (bench/test_pitc_bench.py, windows of 1, 7 and 30
# days, spines of 10k-100k rows over 500k-5M events with 50 or 50k keys), nanoseconds:
EVENT_NS = 46  # range_join: reading an event and building the hash join's side
PAIR_NS = 6  # range_join and tiles: one pair of a spine row and an event (or tile) of its key
TILE_EVENT_NS = 170  # tiles: an event into its key's and tile's partials
UNION_ROW_NS = 240  # union: a row sorted and windowed, plus UNION_SQRT_NS * sqrt(rows of its key):
UNION_SQRT_NS = 17  # window frames over long partitions cost more per row (fit: 0.42-2 us a row)


def estimated_costs(n: AsOfJoin, stats: Statistics | None) -> dict[str, float]:
    """Each lowering's estimated time in nanoseconds (none where the statistics lack
    a figure). The hash join on the key pairs every spine row with every event (or
    tile) of its key before the frame is tested, so the pairs are spine rows x events
    (tiles) per key, whatever the window."""
    if stats is None:
        return {}
    spine = _spine_source(n.spine)
    events = _source_of(n.events, (*(e for _, e in n.on), n.event_time))
    spine_st = None if spine is None else stats.of(spine.name)
    events_st = None if events is None else stats.of(events.name)
    if spine_st is None or events_st is None:
        return {}
    per_key = _per_partition(events_st, tuple(e for _, e in n.on))
    if per_key is None:
        return {}
    rows, events_n = spine_st.rows, events_st.rows
    keys = max(1.0, events_n / max(per_key, 1e-9))
    union_rows = rows + events_n
    costs = {
        "range_join": EVENT_NS * events_n + PAIR_NS * rows * per_key,
        "union": union_rows * (UNION_ROW_NS + UNION_SQRT_NS * math.sqrt(union_rows / keys)),
    }
    tile = tile_size(n, MIN_TILES)
    span = events_st.span_of(n.event_time)
    if tile is not None and span is not None:
        tiles_per_key = min(span / tile + 1, per_key)
        per_tile = per_key * min(1.0, tile / max(span, 1))
        raw = 2 * len(n.windows) * per_tile  # the events of a head and a tail tile per frame
        costs["tiles"] = TILE_EVENT_NS * events_n + PAIR_NS * rows * (tiles_per_key + raw)
    return costs


def _unique_times(n: AsOfJoin, stats: Statistics | None) -> bool:
    """Declared: no two events share a key and a time, so the newest is one event."""
    events = _source_of(n.events, (*(e for _, e in n.on), n.event_time))
    st = None if stats is None or events is None else stats.of(events.name)
    return st is not None and st.is_unique({*(e for _, e in n.on), n.event_time})


def _spine_source(node: Node) -> Source | None:
    """The source of the spine's rows: through projections and point-in-time joins,
    which keep every row."""
    while isinstance(node, (Project, AsOfJoin)):
        node = node.input if isinstance(node, Project) else node.spine
    return node if isinstance(node, Source) else None
