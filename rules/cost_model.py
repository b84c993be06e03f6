"""The cost model: how long a plan takes on a batch engine, and what a streaming
job costs a day and holds in state, from the estimates of rules/cardinality.py.

Batch time is a sum over the plan's nodes of rows times a per-row cost of the
node's kind (a sort and window pass per WindowAggregate and per frame, a hash
aggregate, a hash join, reading and writing the rows), plus a fixed cost per run.
The DuckDB constants were fitted to measured runs (bench/test_placement_bench.py
prints estimate / measured for a set of plans; DuckDB 2.0.1 on 2 cores); Spark's
are DuckDB's times SPARK_ROW_FACTOR plus a job's start-up, from the measured
ratios of the Spark and DuckDB benches (10k x 100k: 0.75-1.06 s against 75-94 ms).

Streaming cost is per event and operator (FLINK_EVENT_NS, FLINK_STATELESS_NS:
measured on a local Flink, below), and state is rules/cardinality.py's state rows
times their width (an interval join: each side's events within the bounds; a
lookup join: its table).

An interval join costs a batch engine its input rows, as a hash join, plus a bound
test per pair of rows with equal keys (not fitted: the filter's cost per row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from relplan.ir.expr import Column
from relplan.ir.graph import walk
from relplan.ir.nodes import (
    Aggregate,
    AsOfJoin,
    Filter,
    Join,
    Node,
    Project,
    Sink,
    Source,
    TimeWindowAggregate,
    Union,
    WindowAggregate,
)
from relplan.rules.cardinality import NodeEstimate, estimate, key_groups
from relplan.rules.statistics import Statistics


@dataclass(frozen=True)
class BatchConstants:
    """Nanoseconds per row of each operator, and seconds per run, of a batch engine."""

    run_s: float  # a job's fixed cost: start-up, planning
    scan_ns: float  # a row read, per column
    filter_ns: float
    project_ns: float  # a computed expression, per row
    window_ns: float  # a WindowAggregate: partition and sort, per row
    frame_ns: float  # each frame over the sorted rows, per row
    agg_ns: float  # each aggregate in a frame, per row
    distinct_ns: float  # a count_distinct in a frame, per row (a set per frame)
    group_ns: float  # a hash aggregate, per input row
    join_ns: float  # a hash join, per input row
    output_ns: float  # a result row written out, per column


# Fitted on DuckDB 2.0.1, 2 cores, 250k-2M events (bench/test_placement_bench.py).
DUCKDB = BatchConstants(
    run_s=0.03, scan_ns=2.0, filter_ns=4.0, project_ns=5.0, window_ns=120.0, frame_ns=60.0,
    agg_ns=25.0, distinct_ns=400.0, group_ns=40.0, join_ns=60.0, output_ns=6.0,
)
SPARK_ROW_FACTOR = 8.0
SPARK = BatchConstants(**{k: v * SPARK_ROW_FACTOR for k, v in DUCKDB.__dict__.items() if k != "run_s"}, run_s=3.0)
BATCH_ENGINES = {"duckdb": DUCKDB, "spark": SPARK}

# Measured on Flink 2.3's local mini-cluster, parallelism 1, JSON files in and out
# (bench/test_placement_bench.py: the time per event between runs of 20k and 200k
# events): 69 us an event through one OVER window, 132 us through five. A cluster
# reading Kafka in a binary format is faster, so these are on the safe side.
FLINK_EVENT_NS = 16_000  # an event through a stateful operator: each OVER frame (Flink stacks one per frame), window, join
FLINK_STATELESS_NS = 10_000  # through a stateless one: reading, projecting, writing


def batch_seconds(roots: Node | Iterable[Node], stats: Statistics | None, engine: str = "duckdb", *, scale: float = 1.0) -> float | None:
    """Estimated seconds of one batch run of the plan, every source's rows times
    ``scale`` (a scheduled run reads part of the log); None without statistics."""
    ns = batch_row_ns(roots, stats, engine)
    return None if ns is None else BATCH_ENGINES[engine].run_s + ns * scale / 1e9


def batch_row_ns(roots: Node | Iterable[Node], stats: Statistics | None, engine: str = "duckdb") -> float | None:
    """The nanoseconds of a run that grow with the rows (at the statistics' rows):
    a run over ``scale`` times the rows takes ``run_s + scale x`` this."""
    c = BATCH_ENGINES[engine]
    est = estimate(roots, stats)
    total = 0.0
    for n, e in est.items():
        rows = _input_rows(n, est)
        if rows is None:
            return None
        total += _node_ns(n, rows, e, c)
    return total


def _input_rows(n: Node, est: dict[Node, NodeEstimate]) -> float | None:
    if isinstance(n, Source):
        return est[n].rows
    rows = [est[i].rows for i in n.inputs]
    return None if any(r is None for r in rows) else sum(rows)  # type: ignore[arg-type]


def _node_ns(n: Node, rows: float, e: NodeEstimate, c: BatchConstants) -> float:
    if isinstance(n, Source):
        return rows * c.scan_ns * len(n.schema.fields)
    if isinstance(n, Filter):
        return rows * c.filter_ns
    if isinstance(n, Project):
        return rows * c.project_ns * sum(not isinstance(x, Column) for _, x in n.exprs)
    if isinstance(n, WindowAggregate):
        per_row = c.window_ns
        for _, aggs in n.windows:
            per_row += c.frame_ns + sum(c.distinct_ns if a.func == "count_distinct" else c.agg_ns for a in aggs)
        return rows * per_row
    if isinstance(n, (Aggregate, TimeWindowAggregate)):
        copies = 1 if isinstance(n, Aggregate) else math.ceil(n.window.size / n.window.slide)
        return rows * copies * (c.group_ns + c.agg_ns * len(n.aggs))
    if isinstance(n, Join) and n.interval:
        # Engines hash-join on the keys, then test the bounds on every pair of a key:
        # a wide key pays for its pairs, however few lie within the bounds.
        return rows * c.join_ns + (e.pairs or 0.0) * c.filter_ns
    if isinstance(n, (Join, AsOfJoin, Union)):
        return rows * c.join_ns
    if isinstance(n, Sink):
        return (e.rows or 0.0) * c.output_ns * len(n.schema.fields)
    return 0.0


# The steps job of a hybrid feature (backends/hybrid.py): tiles per key and day,
# then each step from one day's events and its window's tiles, by window functions:
# linear in the events it reads and the steps it makes. Fitted on DuckDB 2.0.1
# (bench/test_placement_bench.py: 1M events over 60 days, 50-10k keys, 7d and 30d).
STEPS_EVENT_NS = 500  # an event read, tiled and sorted into its day
STEPS_STEP_NS = 500  # a step made and aggregated


def hybrid_steps_seconds(
    sink: Node, stats: Statistics | None, engine: str, events_per_s: float, window_us: int, history_us: int | None = None
) -> float | None:
    """One run of a hybrid feature's steps job over ``history_us`` of events (by
    default the window and a day: what a daily run reads). Its steps: one per
    event time, and a midnight step per key and day on which the key has events
    in the window before it."""
    est = estimate(sink, stats)
    window = next((n for n in est if isinstance(n, WindowAggregate)), None)
    if window is None:
        return None
    keys = key_groups(est[window.input], window.keys)
    if keys is None:
        return None
    history_us = history_us or window_us + 86_400_000_000
    events = events_per_s * history_us / 1e6
    days = history_us / 86_400_000_000
    events_per_key_day = events / max(keys, 1.0) / max(days, 1.0)
    # A key has a midnight step on a day when it has an event in the window before it.
    active = min(1.0, events_per_key_day * window_us / 86_400_000_000)
    steps = events + keys * days * active
    factor = 1.0 if engine == "duckdb" else SPARK_ROW_FACTOR
    return BATCH_ENGINES[engine].run_s + factor * (events * STEPS_EVENT_NS + steps * STEPS_STEP_NS) / 1e9


def stream_ns_per_event(roots: Node | Iterable[Node]) -> float:
    """Nanoseconds an event costs a streaming job: each operator it passes."""
    ns = 0.0
    for n in walk(roots):
        if isinstance(n, WindowAggregate):
            ns += FLINK_EVENT_NS * len(n.windows)
        elif isinstance(n, (Aggregate, TimeWindowAggregate, Join)):
            ns += FLINK_EVENT_NS
        else:
            ns += FLINK_STATELESS_NS
    return ns


def stream_state_bytes(roots: Node | Iterable[Node], stats: Statistics | None, lateness_us: int = 0) -> float | None:
    """Bytes a streaming job holds: each stateful node's state rows times their
    width, plus every source's events buffered until the watermark passes them
    (rate x allowed lateness)."""
    total = 0.0
    for n, e in estimate(roots, stats).items():
        if e.state_bytes is None:
            return None
        total += e.state_bytes
        if isinstance(n, Source) and lateness_us:
            if e.rate is None:
                return None
            total += e.rate * lateness_us / 1e6 * e.width
    return total
