"""Flink: IR -> Flink SQL (relplan's own sqlglot dialect), run on PyFlink.

One plan becomes one script a user can hand to Flink's SQL client as it is:
``SET`` options, a ``CREATE TABLE`` per source (the event-time column with a
``WATERMARK``) and per output, and the ``INSERT INTO`` statements (a ``STATEMENT
SET`` when there are several outputs: one job). Two execution modes:

- **batch**: bounded inputs, every event counted. Flink's batch OVER windows
  cannot RANGE over a TIMESTAMP (FLINK-25802: accepted by the planner, fails at run
  time), so frames range over epoch microseconds, as on the other engines.
- **streaming**: OVER windows ``RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT
  ROW`` on the event-time attribute (TIMESTAMP(3): Flink's event time has
  millisecond precision), one frame per SELECT (Flink computes every OVER aggregate
  of a SELECT on one window), tumbling and hopping windows through the TUMBLE and HOP
  window table-valued functions. The watermark trails the largest event time seen by
  the source's declared lateness plus 1 ms, emitted on every event: an event at or
  below the watermark when it arrives is late, and Flink's OVER and window
  aggregates drop it (it gets no output row and is counted nowhere). An event out of
  order by at most the lateness is counted exactly as in batch mode.

Enrichment joins in streaming (point-in-time over frames ending at t, lookup joins on a
bounded table, interval joins) run as append-only formulations that give batch mode's
rows: backends/flink_joins.py; the rest stays an UnsupportedError.

Aggregates Flink SQL lacks are built from ones it runs in every context (GROUP BY,
window TVFs, OVER frames, both modes): count_distinct over a frame from ARRAY_AGG and
ARRAY_DISTINCT; first/last from MIN/MAX of order-preserving (time, value) strings
(backends/flink_extremes.py); var/std from sums shifted by the partition's first value
(Flink's VAR_SAMP loses everything on values large against their spread).

Runs go through PyFlink on a local mini-cluster (one per mode per process, started
on first use; parallelism 1, heap capped by ``JVM_ARGS``, default ``-Xmx1g``), or on
a ``TableEnvironment`` you pass, batch or streaming (``table_env=``, or ``session=``
as for Spark), whose configuration is left as it was found (``run_options``). Inputs are written as JSON lines (the connector
formats the PyPI package ships are CSV and JSON; JSON keeps NULL apart from '') and
read by the filesystem connector; outputs come back through a filesystem sink read
with Python's json and returned as Arrow in the IR's types.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from relplan.backends import flink_dialect as fd
from relplan.backends import flink_extremes as fx
from relplan.backends import flink_joins as fj
from relplan.backends.arrow_io import in_ir_types
from relplan.backends.jvm import java_root_message
from relplan.backends.sql import SqlLowering, as_name, bounded_put, col, gc_paused, ident, lit, paren
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.errors import DataError, EngineError, RelplanError, UnsupportedError
from relplan.ir.expr import Cast, Expr, Literal
from relplan.ir.graph import walk
from relplan.ir.nodes import WINDOW_END, WINDOW_START, Aggregate, AsOfJoin, Join, Node, Sink, Source, TimeWindowAggregate, WindowAggregate
from relplan.ir.windows import Frame, format_duration

MODES = ("batch", "streaming")
# At DEBUG: each input written, each statement (its SQL and time in ms), the job, the fetch.
_log = logging.getLogger("relplan.engine.flink")
_MS = 1000  # microseconds
_HOP_I = "__hop_i"

def _script_options(mode: str) -> dict[str, str]:
    """Options every script runs under: the mode; instants in UTC (TO_TIMESTAMP_LTZ
    reads the session zone); in streaming, a watermark after every event (interval 0),
    so that which events are late depends on the input's order alone, not on timing."""
    options = {"execution.runtime-mode": mode, "table.local-time-zone": "UTC"}
    if mode == "streaming":
        options["pipeline.auto-watermark-interval"] = "0"
    return options


def filesystem_options(path: str, *, format: str = "json") -> dict[str, str]:
    """WITH options of a filesystem table (the connector the PyPI package ships)."""
    opts = {"connector": "filesystem", "path": path, "format": format}
    if format == "json":
        opts["json.timestamp-format.standard"] = "SQL"
    return opts


def kafka_options(
    topic: str, bootstrap_servers: str, *, format: str = "json", group_id: str | None = None,
    startup_mode: str = "earliest-offset",
) -> dict[str, str]:
    """WITH options of a Kafka table (needs the Kafka connector jar on the cluster)."""
    opts = {
        "connector": "kafka", "topic": topic, "properties.bootstrap.servers": bootstrap_servers,
        "format": format, "scan.startup.mode": startup_mode,
    }
    if group_id:
        opts["properties.group.id"] = group_id
    if format == "json":
        opts["json.timestamp-format.standard"] = "SQL"
    return opts


class FlinkLowering(SqlLowering):
    dialect = "flink"
    engine = "flink"
    # COUNT and SUM(BIGINT) are BIGINT, mean and var of DOUBLE are DOUBLE.
    NATIVE_RESULT: ClassVar[frozenset[str]] = frozenset({"count", "count_distinct", "sum", "mean", "min", "max", "var", "std"})
    ARG_EXTREMES: ClassVar[bool] = False  # first/last at spine times: backends/asof.py extremes_by_join

    def __init__(self, table_names: dict[str, str] | None = None, mode: str = "batch") -> None:
        super().__init__(table_names)
        if mode not in MODES:
            raise RelplanError(f"Flink mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        # The var/std aggregates whose reference value (REF + name) the CTE being built has.
        self._refs: frozenset[str] = frozenset()

    @property
    def variant(self) -> tuple[object, ...]:
        return (type(self), self.mode)

    @property
    def streaming(self) -> bool:
        return self.mode == "streaming"

    # ---- types and expressions ---------------------------------------------
    def dtype(self, t: T.DataType) -> exp.DataType:
        if t == T.Timestamp:
            return timestamp_type(6)
        return super().dtype(t)

    def epoch_us(self, e: exp.Expression) -> exp.Expression:
        # EXTRACT(EPOCH) truncates toward zero and EXTRACT(MICROSECOND) follows its
        # sign (1969-12-31 23:59:59.999999 is 0 and -1), so the sum is exact both sides of 1970.
        secs = exp.Extract(this=exp.var("EPOCH"), expression=e)
        micros = exp.Extract(this=exp.var("MICROSECOND"), expression=e.copy())
        return paren(exp.Add(this=exp.Mul(this=secs, expression=lit(1_000_000)), expression=micros))

    def from_epoch_us(self, e: exp.Expression) -> exp.Expression:
        # An instant, shown in the session zone (UTC, set by every script), as TIMESTAMP(6).
        return exp.Cast(this=exp.Anonymous(this="TO_TIMESTAMP_LTZ", expressions=[e, lit(6)]), to=timestamp_type(6))

    def timestamp_literal(self, v: dt.datetime) -> exp.Expression:
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return super().timestamp_literal(v)

    def literal(self, lit_: Any) -> exp.Expression:
        v = lit_.value
        if isinstance(v, float) and math.isinf(v):  # Java's spelling; 'inf' is no DOUBLE to Flink
            return self.cast(exp.Literal.string("Infinity" if v > 0 else "-Infinity"), T.Float64)
        return super().literal(lit_)

    def expr(self, e: Expr) -> exp.Expression:
        if isinstance(e, Cast) and e.operand.dtype == T.Float64 and e.dtype == T.Int64:
            # Flink's CAST(DOUBLE AS BIGINT) truncates toward zero, as Python's int().
            return self.cast(super().expr(e.operand), e.dtype)
        if isinstance(e, Cast) and e.operand.dtype == T.Timestamp and e.dtype == T.Date:
            # Flink's CAST(TIMESTAMP AS DATE) truncates epoch days toward zero: 1969-12-31
            # 23:59 becomes 1970-01-01. A date whose midnight is after the time is a day late.
            ts = paren(self.expr(e.operand))
            day = self.cast(ts, T.Date)
            late = exp.GT(this=self.cast(day.copy(), T.Timestamp), expression=ts.copy())
            earlier = exp.Sub(this=day.copy(), expression=fd.interval(86_400_000_000))
            return exp.Case().when(late, earlier, copy=False).else_(day, copy=False)
        return super().expr(e)

    def group_key(self, name: str, dtype: T.DataType, table: str | None = None) -> exp.Expression:
        if dtype == T.Float64:
            # Flink groups, partitions and hash-joins by the key's bits: -0.0 and 0.0
            # would be two keys, though they compare equal.
            zero = exp.EQ(this=col(name, table), expression=lit(0))
            return exp.Case().when(zero, self.cast(lit(0), T.Float64), copy=False).else_(col(name, table), copy=False)
        return col(name, table)

    def extreme_key(self, a: AggCall) -> exp.Expression:
        """first/last's per-row key (backends/flink_extremes.py): (time, value) as a string
        ordered as the pair, NULL where the value is NULL or the filter drops the row."""
        assert a.arg is not None and a.order is not None
        value = self.expr(a.arg)
        keep: exp.Expression = exp.Not(this=exp.Is(this=paren(value), expression=exp.Null()))
        if a.filter is not None:
            keep = exp.And(this=paren(self.expr(a.filter)), expression=paren(keep))
        key = exp.DPipe(
            this=fx.time_key(self.epoch_us(self.expr(a.order))),
            expression=fx.value_key(value.copy(), a.arg.dtype, self.epoch_us),
        )
        return exp.Case().when(keep, key, copy=False)

    def extreme(self, a: AggCall, window: dict[str, Any] | None = None) -> exp.Expression:
        """first = the value of MIN(key), last = of MAX(key); over a frame with ``window``."""
        key: exp.Expression = (exp.Max if a.func == "last" else exp.Min)(this=self.extreme_key(a))
        if window is not None:
            key = exp.Window(this=key, **window)
        return fx.value_of(key, a.dtype, self.from_epoch_us)

    def no_rows(self, a: AggCall) -> exp.Expression | None:
        """The aggregate's value where its filter is a constant NULL or FALSE (no row
        counts): Flink's planner fails on such a COUNT over an aggregated input
        ("Index 1 out of bounds")."""
        if isinstance(a.filter, Literal) and a.filter.value in (None, False):
            return self.cast(lit(0), T.Int64) if a.func in ("count", "count_distinct") else self.cast(exp.Null(), a.dtype)
        return None

    def agg(self, a: AggCall) -> exp.Expression:
        empty = self.no_rows(a)
        if empty is not None:
            return empty
        if a.func in ("first", "last"):
            return self.extreme(a)
        if a.func == "count_distinct" and a.arg is not None and a.arg.dtype == T.Float64:
            return exp.Count(this=exp.Distinct(expressions=[self.distinct_value(a)]))
        if a.func in ("var", "std") and a.name in self._refs:
            return self.shifted_var(a)
        if a.func == "mean" and a.arg is not None and a.arg.dtype == T.Int64:
            return self.exact_mean(a)  # AVG(BIGINT) is a truncated BIGINT in Flink
        return super().agg(a)

    def over(self, a: AggCall, **window: exp.Expression | list[exp.Expression]) -> exp.Expression:
        empty = self.no_rows(a)
        if empty is not None:
            return empty
        if a.func == "count_distinct":
            return self.distinct_count_over(a, window)
        if a.func in ("first", "last"):
            return self.extreme(a, window)
        if a.func in ("var", "std") and a.name in self._refs:
            return self.shifted_var(a, window)
        if a.func == "mean" and a.arg is not None and a.arg.dtype == T.Int64:
            return self.exact_mean(a, window)
        return super().over(a, **window)

    def distinct_value(self, a: AggCall) -> exp.Expression:
        """count_distinct's argument, NULL where the filter drops the row; for Float64
        -0.0 is 0.0 (Flink's DISTINCT compares the bits: two values, though they are equal)."""
        value = self.masked(a.arg, a.filter)
        if a.arg is not None and a.arg.dtype == T.Float64:
            zero = exp.EQ(this=paren(value), expression=lit(0))
            value = exp.Case().when(zero, self.cast(lit(0), T.Float64), copy=False).else_(value.copy(), copy=False)
        return value

    def distinct_count_over(self, a: AggCall, window: dict[str, Any]) -> exp.Expression:
        """count_distinct over a frame: Flink refuses ``COUNT(DISTINCT x) OVER``, but runs
        ``ARRAY_AGG(x IGNORE NULLS) OVER`` in both modes (retracting rows that leave a
        sliding frame in streaming), so the count is the size of the frame's values
        after ``ARRAY_DISTINCT``. A frame without a value has no array: 0."""
        value = self.distinct_value(a)
        values = exp.Window(this=exp.Anonymous(this="ARRAY_AGG", expressions=[exp.IgnoreNulls(this=value)]), **window)
        size = exp.Anonymous(this="CARDINALITY", expressions=[exp.Anonymous(this="ARRAY_DISTINCT", expressions=[values])])
        return self.cast(exp.Coalesce(this=size, expressions=[lit(0)]), T.Int64)  # CARDINALITY is an INT

    REF: ClassVar[str] = "__rp_ref_"

    def shifted_var(self, a: AggCall, window: dict[str, Any] | None = None) -> exp.Expression:
        """var/std from sums of ``d = x - c``, ``c`` the partition's reference value (a
        column of the CTE before, see ``with_references``):
        ``(n * S(d^2) - S(d)^2) / (n * (n - 1))``.

        Flink's VAR_SAMP is a one-pass formula over ``x`` itself, which cancels
        catastrophically where values are large against their spread (integers near 2^45,
        all equal: -8.6e9). Variance does not change under a shift, and ``d`` is small
        where the values are close to ``c``, so the sums keep their precision. The
        numerator is one subtraction of two products, exact where they are (values of
        few significant bits), so the result is then rounded once, as the exact
        reference is; a rounding below 0 is clamped to 0, as equal values' variance is."""
        assert a.arg is not None
        d = exp.Sub(this=paren(self.as_double(self.masked(a.arg, a.filter), a.arg.dtype)), expression=col(self.REF + a.name))
        total: exp.Expression = exp.Sum(this=d)
        squares: exp.Expression = exp.Sum(this=exp.Mul(this=paren(d.copy()), expression=paren(d.copy())))
        n: exp.Expression = exp.Count(this=d.copy())
        if window is not None:
            total, squares, n = (exp.Window(this=e, **window) for e in (total, squares, n))
        spread = exp.Sub(this=exp.Mul(this=n, expression=squares), expression=exp.Mul(this=total, expression=total.copy()))
        pairs = exp.Mul(this=n.copy(), expression=paren(exp.Sub(this=n.copy(), expression=lit(1))))
        var = exp.Div(this=paren(spread), expression=exp.Nullif(this=pairs, expression=lit(0)))
        var = exp.Anonymous(this="GREATEST", expressions=[var, self.cast(lit(0), T.Float64)])
        return var if a.func == "var" else exp.Anonymous(this="SQRT", expressions=[var])

    def with_references(
        self, keys: tuple[str, ...], schema: Any, order: str | None, aggs: tuple[AggCall, ...] | list[AggCall], src: str, k: int,
    ) -> list[tuple[str, exp.Expression]]:
        """A CTE before an aggregate with var/std: ``src``'s rows, each with the reference
        value ``c`` of every var/std (``REF + name``): the partition's first value by
        event time (``FIRST_VALUE`` over ``UNBOUNDED PRECEDING``: constant from the row
        that holds it on, and the rows before it have no value to shift), or, for a
        GROUP BY without time, the partition's smallest value. None without var/std."""
        shifted = [a for a in aggs if a.func in ("var", "std") and self.no_rows(a) is None]
        if not shifted:
            return []
        cols: list[exp.Expression] = [exp.Star()]
        for a in shifted:
            assert a.arg is not None
            x = self.as_double(self.masked(a.arg, a.filter), a.arg.dtype)
            partition = [self.group_key(key, schema.dtype(key)) for key in keys]
            if order is None:
                ref = exp.Window(this=exp.Min(this=x), partition_by=partition, over="OVER")
            else:
                ref = exp.Window(
                    this=exp.Anonymous(this="FIRST_VALUE", expressions=[x]), partition_by=partition, over="OVER",
                    order=exp.Order(expressions=[exp.Ordered(this=self.window_order(col(order)))]),
                    spec=exp.WindowSpec(kind="RANGE", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"),
                )
            cols.append(exp.alias_(ref, ident(self.REF + a.name), copy=False))
        return [(f"t{k}", exp.select(*cols).from_(ident(src), copy=False))]

    def referenced(self, aggs: tuple[AggCall, ...] | list[AggCall]) -> frozenset[str]:
        return frozenset(a.name for a in aggs if a.func in ("var", "std") and self.no_rows(a) is None)

    def input_dependence(self, n: Node) -> object:
        # A window node with var/std ends by selecting its own columns by name (without
        # the reference columns): its text depends on every column of its input.
        if isinstance(n, WindowAggregate) and self.referenced([a for _, a in n.calls]):
            return tuple(i.schema for i in n.inputs)
        if self.streaming and isinstance(n, Join) and n.lookup and not n.interval:
            # Its CTEs read the table's whole subplan again, the source's table name, and
            # order by the left side's event time.
            return (n.left.schema, fj.time_of(n.left), n.right, tuple(sorted(self.table_names.items())))
        return super().input_dependence(n)

    def asof_join_ctes(self, n: AsOfJoin, spine: str, events: str, k: int) -> list[tuple[str, exp.Expression]]:
        if not self.streaming:
            return super().asof_join_ctes(n, spine, events, k)
        placeholders = (Source(spine, n.spine.schema), Source(events, n.events.schema))
        return self.subplan_ctes(fj.asof_union_subplan(n, *placeholders), dict(zip(placeholders, (spine, events))), k)

    def interval_condition(self, left_time: str, right_time: str, before: int, after: int) -> exp.Expression:
        if not self.streaming:
            return super().interval_condition(left_time, right_time, before, after)
        # Flink's interval join: bounds on the event-time attributes themselves (whole
        # milliseconds, checked by flink_joins.check_join), not on numbers computed from them.
        lt, rt = col(left_time, "l"), col(right_time, "r")

        def shifted(us: int) -> exp.Expression:
            if us == 0:
                return lt.copy()
            return exp.Add(this=lt.copy(), expression=fd.interval(us)) if us > 0 else exp.Sub(this=lt.copy(), expression=fd.interval(-us))

        return exp.And(
            this=exp.GTE(this=rt, expression=shifted(-before)), expression=exp.LTE(this=rt.copy(), expression=shifted(after))
        )

    def join(self, n: Join, left: str, right: str) -> exp.Select:
        q = super().join(n, left, right)
        if self.streaming and n.interval:
            # The output keeps the left side's event-time attribute; the right side's times
            # become plain TIMESTAMPs (a sink refuses two event-time attributes).
            q.set("expressions", [
                *[col(f.name, "l") for f in n.left.schema],
                *[exp.alias_(self.cast(col(f.name, "r"), T.Timestamp), ident(f.name), copy=False) if f.dtype == T.Timestamp
                  else col(f.name, "r") for f in n.right.schema],
            ])
        return q
        assert n.left_time is not None and n.right_time is not None
        lt, rt = col(n.left_time, "l"), col(n.right_time, "r")
        if self.streaming:
            # Flink's interval join: bounds on the event-time attributes themselves.
            def shifted(us: int) -> exp.Expression:
                return exp.Add(this=lt.copy(), expression=fd.interval(us)) if us >= 0 else exp.Sub(this=lt.copy(), expression=fd.interval(-us))

            low, high = shifted(-n.before), shifted(n.after)
        else:  # microseconds: batch times have them, intervals do not
            us = self.epoch_us(lt)
            low = exp.Sub(this=us, expression=lit(n.before))
            high = exp.Add(this=us.copy(), expression=lit(n.after))
            rt = self.epoch_us(rt)
        bounds = exp.And(this=exp.GTE(this=rt, expression=low), expression=exp.LTE(this=rt.copy(), expression=high))
        on = q.args["joins"][0].args["on"]
        q.args["joins"][0].set("on", exp.And(this=on, expression=bounds))
        if self.streaming:
            # The output keeps the left side's event-time attribute; the right side's times
            # become plain TIMESTAMPs (a sink refuses two event-time attributes).
            q.set("expressions", [
                *[col(f.name, "l") for f in n.left.schema],
                *[exp.alias_(self.cast(col(f.name, "r"), T.Timestamp), ident(f.name), copy=False) if f.dtype == T.Timestamp
                  else col(f.name, "r") for f in n.right.schema],
            ])
        return q

    def node(self, n: Node, ins: list[str], k: int) -> list[tuple[str, exp.Expression]]:
        if self.streaming and isinstance(n, Join) and n.lookup and not n.interval:
            # The table is read again, from its source with the computed VALID_FROM
            # (backends/flink_joins.py); the left side is its CTE.
            left = Source(ins[0], n.left.schema)
            return self.subplan_ctes(fj.lookup_subplan(n, left), {left: ins[0]}, k)
        if isinstance(n, Aggregate):
            pre = self.with_references(n.keys, n.input.schema, None, n.aggs, ins[0], k)
            if pre:
                self._refs = self.referenced(n.aggs)
                try:
                    return pre + super().node(n, [pre[-1][0]], k + len(pre))
                finally:
                    self._refs = frozenset()
        return super().node(n, ins, k)

    # ---- nodes ----------------------------------------------------------------
    def check_supported(self, n: Node) -> None:
        super().check_supported(n)
        if not self.streaming:
            return
        # Only append-only results can be written to the sinks a streaming job feeds.
        if isinstance(n, Aggregate):
            raise UnsupportedError(
                f"{n.kind} ({n.details()}) is not supported in Flink streaming mode: a GROUP BY without "
                "a time window is an updating result; use a tumbling/hopping window or batch mode"
            )
        # Joins: append-only formulations and their limits in backends/flink_joins.py.
        if isinstance(n, Join):
            fj.check_join(n)
        if isinstance(n, AsOfJoin):
            fj.check_asof(n)

    def window_order(self, order: exp.Expression) -> exp.Expression:
        # Streaming: the event-time attribute itself (a numeric ORDER BY is refused).
        return order if self.streaming else super().window_order(order)

    def frame(self, f: Frame) -> exp.WindowSpec:
        if not self.streaming:
            return super().frame(f)
        # Streaming OVER frames end at CURRENT ROW and range over milliseconds.
        up_inclusive_zero = f.upper == 0 and f.upper_inclusive
        if not up_inclusive_zero:
            raise UnsupportedError(
                f"frame {f.describe()} is not supported in Flink streaming mode: a streaming OVER window "
                "ends at the current row"
            )
        if f.lower is None:
            return exp.WindowSpec(kind="RANGE", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW")
        # Flink's RANGE INTERVAL includes its lower edge: (t - w, t] is [t - (w - 1ms), t] in milliseconds.
        width = f.lower if f.lower_inclusive else f.lower - _MS
        if f.lower % _MS or width < 0:
            raise UnsupportedError(
                f"frame {f.describe()} is not supported in Flink streaming mode: event time has "
                "millisecond precision there, so frame edges must be whole milliseconds"
            )
        return exp.WindowSpec(kind="RANGE", start=fd.interval(width), start_side="PRECEDING", end="CURRENT ROW")

    def window_aggregate_ctes(self, n: WindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        aggs = [a for _, a in n.calls]
        pre = self.with_references(n.keys, n.input.schema, n.order, aggs, src, k)
        if not pre:
            return self.frames_ctes(n, src, k)
        self._refs = self.referenced(aggs)
        try:
            ctes = pre + self.frames_ctes(n, pre[-1][0], k + len(pre))
        finally:
            self._refs = frozenset()
        # Without the reference columns: the node's own schema.
        out = exp.select(*[col(f.name) for f in n.schema]).from_(ident(ctes[-1][0]), copy=False)
        return [*ctes, (f"t{k + len(ctes)}", out)]

    def frames_ctes(self, n: WindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        if not self.streaming or len(n.windows) == 1:
            return [(f"t{k}", self.window_aggregate(n, src))]
        # Streaming: one frame per SELECT, stacked (an OVER aggregate keeps its rows and
        # its event-time attribute, so the next frame's SELECT reads the previous one).
        ctes: list[tuple[str, exp.Expression]] = []
        for i, (frame, aggs) in enumerate(n.windows):
            name = f"t{k + i}"
            ctes.append((name, self.window_aggregate(n, src, ((frame, aggs),))))
            src = name
        return ctes

    def time_window_aggregate(self, n: TimeWindowAggregate, src: str, k: int) -> list[tuple[str, exp.Expression]]:
        pre = self.with_references(n.keys, n.input.schema, n.time, n.aggs, src, k)
        if pre:
            src, k = pre[-1][0], k + len(pre)
        self._refs = self.referenced(n.aggs) if pre else frozenset()
        try:
            if self.streaming:
                return [*pre, (f"t{k}", self.window_tvf_aggregate(n, src))]
            return [*pre, *super().time_window_aggregate(n, src, k)]
        finally:
            self._refs = frozenset()

    def hop_start_rows(self, base: exp.Select, last: exp.Expression, span: int, slide: int) -> exp.Select:
        # No SEQUENCE/GENERATE_SERIES in Flink: a row per possible window, from a VALUES list of
        # offsets (a row is in span // slide windows at most, a constant).
        offsets = exp.Values(
            expressions=[exp.Tuple(expressions=[lit(i)]) for i in range(span // slide + 1)],
            alias=exp.TableAlias(this=ident("o"), columns=[ident(_HOP_I)]),
        )
        start = exp.Sub(this=paren(last), expression=exp.Mul(this=col(_HOP_I), expression=lit(slide)))
        return base.select(exp.alias_(start, ident(self.WS), copy=False), copy=False).join(offsets, join_type="cross", copy=False)

    def window_tvf_aggregate(self, n: TimeWindowAggregate, src: str) -> exp.Select:
        """Streaming tumbling/hopping windows: Flink's TUMBLE/HOP table-valued functions."""
        w = n.window
        if w.size % _MS or w.slide % _MS:
            raise UnsupportedError(
                f"window {w.describe()} is not supported in Flink streaming mode: event time has "
                "millisecond precision there"
            )
        if w.size % w.slide:
            raise UnsupportedError(
                f"window {w.describe()} is not supported in Flink streaming mode: Flink's HOP needs "
                "the size to be a multiple of the slide; use batch mode"
            )
        tvf = (
            fd.window_tvf("TUMBLE", src, n.time, w.size) if w.is_tumbling
            else fd.window_tvf("HOP", src, n.time, w.size, slide_us=w.slide)
        )
        keys = [self.group_key(key, n.input.schema.dtype(key)) for key in n.keys]
        q = exp.select(
            *[as_name(e, key) for e, key in zip(keys, n.keys)],
            exp.alias_(exp.Cast(this=col("window_start"), to=timestamp_type(6)), ident(WINDOW_START), copy=False),
            exp.alias_(exp.Cast(this=col("window_end"), to=timestamp_type(6)), ident(WINDOW_END), copy=False),
            *[exp.alias_(self.typed_agg(a, self.agg(a)), ident(a.name), copy=False) for a in n.aggs],
        ).from_(tvf, copy=False)
        if n.keys:
            q = q.where(self.keys_present(n.keys), copy=False)
        return q.group_by(*[k_.copy() for k_ in keys], col("window_start"), col("window_end"), copy=False)

    # ---- the script ---------------------------------------------------------------
    def source_ddl(self, src: Source, table: str, options: dict[str, str], *, temporary: bool = False) -> str:
        key = ("source", self.variant, src, table, tuple(options.items()), temporary)
        return _DDL_TEXT.get(key) or bounded_put(_DDL_TEXT, key, self._source_ddl(src, table, options, temporary), 4096)

    def _source_ddl(self, src: Source, table: str, options: dict[str, str], temporary: bool) -> str:
        columns = []
        computed = None
        for f in src.columns:
            if self.streaming and f.name == fj.VALID_FROM and src.event_time == fj.VALID_FROM:
                # A lookup table's rows, valid from before every event (backends/flink_joins.py).
                computed = {f.name: exp.Cast(this=exp.Literal.string(fj.VALID_FROM_TEXT), to=timestamp_type(3))}
                continue
            t = self.dtype(f.dtype)
            if self.streaming and f.name == src.event_time:
                t = timestamp_type(3)  # an event-time attribute is TIMESTAMP(3)
            columns.append((f.name, t))
        watermark = None
        if self.streaming and src.event_time is not None:
            if src.lateness % _MS:
                raise UnsupportedError(
                    f"allowed lateness {format_duration(src.lateness)} of source {src.name!r} is not a whole "
                    "number of milliseconds, as Flink's event time is"
                )
            # + 1 ms: an event at the watermark is late, so ties with the newest event must stay above it.
            watermark = (src.event_time, src.lateness + _MS)
            # A watermark after every event, as pipeline.auto-watermark-interval 0 gives
            # where the watermark is assigned after the scan (filesystem); a source that
            # generates it itself (Kafka) would otherwise emit none at that interval.
            options = {"scan.watermark.emit.strategy": "on-event", **options}
        return self._ddl(fd.create_table(table, columns, watermark=watermark, options=options, computed=computed), temporary)

    def ddl_sources(self, sinks: tuple[Sink, ...]) -> list[Source]:
        """The plan's sources as their tables are declared: in streaming, a lookup join's
        table with its computed event time (backends/flink_joins.py)."""
        sources = _sources(sinks)
        if not self.streaming:
            return sources
        lookups = fj.lookup_sources(list(walk(sinks)))
        return [fj.with_valid_from(s) if s.name in lookups else s for s in sources]

    def sink_ddl(self, sink: Sink, table: str, options: dict[str, str], *, temporary: bool = False) -> str:
        # By schema, not by sink: recompiling after one feature changed keeps the others' outputs' schemas.
        key = ("sink", sink.schema, table, tuple(options.items()), temporary)
        text = _DDL_TEXT.get(key)
        if text is None:
            columns = [(f.name, self.dtype(f.dtype)) for f in sink.schema]
            text = bounded_put(_DDL_TEXT, key, self._ddl(fd.create_table(table, columns, options=options), temporary), 4096)
        return text

    def _ddl(self, create: exp.Expression, temporary: bool) -> str:
        text = self.sql_text(create, pretty=True)
        return text.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1) if temporary else text

    def insert(self, sink: Sink, table: str, *, pretty: bool = True) -> str:
        return f"INSERT INTO {self.sql_text(ident(table), pretty)}\n{self.render_ctes(sink, pretty)}"

    def script(
        self, sinks: tuple[Sink, ...], connectors: dict[str, dict[str, str]], *, pretty: bool = True,
    ) -> str:
        """The whole job as Flink SQL client statements, each ending in ';'."""
        with gc_paused():
            return self._script(sinks, connectors, pretty)

    def _script(self, sinks: tuple[Sink, ...], connectors: dict[str, dict[str, str]], pretty: bool) -> str:
        statements = [fd.set_option(k, v) for k, v in _script_options(self.mode).items()]
        for src in self.ddl_sources(sinks):
            statements.append(self.source_ddl(src, self.table_names.get(src.name, src.name), connectors[src.name]))
        tables = output_tables(sinks)
        for s in sinks:
            statements.append(self.sink_ddl(s, tables[s.name], connectors[tables[s.name]]))
        inserts = [self.insert(s, tables[s.name], pretty=pretty) for s in sinks]
        statements.append(inserts[0] if len(inserts) == 1 else fd.statement_set(inserts))
        return ";\n\n".join(statements) + ";"


# CREATE TABLE texts by what decides them (a thousand-column output's takes ~10 ms).
_DDL_TEXT: dict[tuple[object, ...], str] = {}


def timestamp_type(precision: int) -> exp.DataType:
    return exp.DataType(this=exp.DataType.Type.TIMESTAMP, expressions=[exp.DataTypeParam(this=lit(precision))])


def output_tables(sinks: tuple[Sink, ...]) -> dict[str, str]:
    """The table each output is written to: its name, or ``<name>_features`` where a
    source has that name (per-event features are output under their source's name)."""
    sources = {s.name for s in _sources(sinks)}
    return {s.name: f"{s.name}_features" if s.name in sources else s.name for s in sinks}


def _sources(sinks: tuple[Sink, ...]) -> list[Source]:
    return [n for n in walk(sinks) if isinstance(n, Source)]


# ---- running on PyFlink ---------------------------------------------------------

_LOCAL_ENVS: dict[str, Any] = {}


def local_table_env(mode: str) -> Any:
    """The process's local TableEnvironment for ``mode``, created on first use (~5 s)."""
    env = _LOCAL_ENVS.get(mode)
    if env is not None:
        return env
    try:
        from pyflink.table import EnvironmentSettings, TableEnvironment
    except ImportError:
        raise EngineError("engine 'flink' needs PyFlink: pip install 'relplan[flink]'") from None
    # The mini-cluster's heap grows to several GB unless capped; JVM_ARGS is read when
    # PyFlink starts its JVM (once per process).
    os.environ.setdefault("JVM_ARGS", os.environ.get("RELPLAN_FLINK_JVM_ARGS", "-Xmx1g"))
    settings = EnvironmentSettings.in_streaming_mode() if mode == "streaming" else EnvironmentSettings.in_batch_mode()
    try:
        env = TableEnvironment.create(settings)
    except Exception as e:  # noqa: BLE001 - the JVM failing to start
        hint = "" if shutil.which("java") or os.environ.get("JAVA_HOME") else " (no Java found: Flink needs Java 17)"
        raise EngineError(f"could not start a local Flink environment: {flink_message(e)}{hint}") from e
    env.get_config().set("parallelism.default", "1")  # as fast as 2 on small jobs, half the memory
    _LOCAL_ENVS[mode] = env
    return env


class run_options:  # noqa: N801 - used as a context manager, like contextlib's
    """Set ``options`` in a TableEnvironment's configuration for a ``with`` block, and
    leave its configuration as it was found when the block ends, by an exception too.

    Each key relplan sets gets its previous value back, or is removed where there was
    none. Flink itself writes keys into the configuration while it plans and runs any
    job (its own map and the root configuration under it: ``__table.query-start.*``,
    adaptive batch strategies, ``pipeline.object-reuse``, ...); those of relplan's run
    are undone too, so that both maps are, key for key, what they were before."""

    def __init__(self, env: Any, options: dict[str, str]) -> None:
        self._env = env
        self._options = options
        self._saved: list[tuple[Any, dict[str, str]]] | None = None

    def __enter__(self) -> None:
        config = self._env.get_config()
        self._saved = [(c, c.to_dict()) for c in _config_maps(config)]
        try:
            for k, v in self._options.items():
                config.set(k, v)
        except BaseException:
            self._restore()
            raise

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self._restore()

    def _restore(self) -> None:
        saved, self._saved = self._saved, None
        for conf, before in saved or ():
            now = conf.to_dict()
            for k in now.keys() - before.keys():
                conf.remove_config(k)
            for k, v in before.items():
                if now.get(k) != v:
                    conf.set_string(k, v)


def _config_maps(config: Any) -> list[Any]:
    """A TableConfig's own key-value map and, where it is one, the root configuration
    under it (the executor's), both live (``pyflink.common.Configuration``)."""
    from pyflink.common import Configuration

    maps = [config.get_configuration()]
    try:
        root = config._j_table_config.getRootConfiguration()
        if root.getClass().getName() == "org.apache.flink.configuration.Configuration":
            maps.append(Configuration(j_configuration=root))
    except Exception:  # noqa: BLE001 - a PyFlink without it: the own map alone
        pass
    return maps


def check_table_env(env: Any, keyword: str = "table_env") -> None:
    """A clear error unless ``env`` is a PyFlink TableEnvironment (StreamTableEnvironment included)."""
    module = sys.modules.get("pyflink.table")  # an object of PyFlink's means PyFlink is imported
    cls = getattr(module, "TableEnvironment", None) if module is not None else None
    if cls is not None and isinstance(env, cls):
        return
    kind = type(env)
    what = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    shown = repr(env)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    hint = ""
    if kind.__name__ == "StreamExecutionEnvironment":
        hint = " (a DataStream environment: pass StreamTableEnvironment.create(it))"
    elif kind.__module__.startswith("pyspark"):
        hint = " (Spark's: for Spark, use engine='spark' with session=)"
    raise RelplanError(
        f"engine 'flink' takes {keyword}= a PyFlink TableEnvironment, batch or streaming (e.g. "
        f"TableEnvironment.create(EnvironmentSettings.in_batch_mode()), or StreamTableEnvironment.create(...)), "
        f"got {what}: {shown}{hint}"
    )


def table_env_mode(env: Any) -> str:
    """The mode ("batch" or "streaming") a TableEnvironment was created in."""
    value = env.get_config().get("execution.runtime-mode", "STREAMING")  # its own setting, else the root's
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise RelplanError(
            f"the TableEnvironment passed has execution.runtime-mode {value!r}; relplan runs plans in batch or "
            "streaming mode: create it with EnvironmentSettings.in_batch_mode() or in_streaming_mode()"
        )
    return mode


class FlinkBackend:
    """Runs plans on Flink through PyFlink.

    ``table_env`` (or ``session``, the keyword the Spark backend takes its session
    by): a TableEnvironment of yours, batch or streaming (e.g. with its own
    parallelism, or on a cluster), else a local mini-cluster of relplan's. The options
    every run needs (``execution.runtime-mode``, ``table.local-time-zone`` = UTC and, in
    streaming, ``pipeline.auto-watermark-interval``) are set for the run only: afterwards,
    even when the run fails, each has its previous value again, or is gone where it had
    none, and the run's temporary tables are dropped. ``mode``: "batch" or "streaming";
    by default the mode of the ``table_env`` passed (it must match: Flink fixes an
    environment's mode when it is created), else "batch". ``connectors``: WITH options
    per table of the script, by its name: a source's, or an output's table (see
    ``output_tables``), for ``to_sql`` (default: a filesystem table of JSON lines at a
    path named after it; see ``filesystem_options`` and ``kafka_options``).
    ``staging_dir``: where inputs and outputs are written while a plan runs.
    ``on_step``: called with a short text as a run moves on (writing inputs, the job,
    reading results): what a caller's progress bar shows.
    """

    name = "flink"
    on_step: Callable[[str], None] | None = None

    def __init__(
        self, mode: str | None = None, table_env: Any | None = None, connectors: dict[str, dict[str, str]] | None = None,
        staging_dir: str | None = None, session: Any | None = None,
    ) -> None:
        if table_env is not None and session is not None and session is not table_env:
            raise RelplanError("engine 'flink' takes its TableEnvironment as table_env= or as session=, not both")
        env = table_env if table_env is not None else session
        if env is not None:
            check_table_env(env, "table_env" if table_env is not None else "session")
            own = table_env_mode(env)
            if mode is None:
                mode = own
            elif mode != own:
                raise RelplanError(
                    f"mode={mode!r}, but the TableEnvironment passed runs in {own} mode (Flink fixes an environment's "
                    f"mode when it is created): pass mode={own!r}, or a TableEnvironment created with "
                    f"EnvironmentSettings.in_{mode}_mode()"
                )
        mode = "batch" if mode is None else mode
        self.lowering = FlinkLowering(mode=mode)
        self.mode = mode
        self._env = env
        self._connectors = connectors or {}
        self._staging_dir = staging_dir

    def connector(self, name: str) -> dict[str, str]:
        return self._connectors.get(name) or filesystem_options(name)

    def to_sql(self, sinks: tuple[Sink, ...], *, pretty: bool = True) -> str:
        names = [s.name for s in _sources(sinks)] + list(output_tables(sinks).values())
        unknown = sorted(set(self._connectors) - set(names))
        if unknown:
            raise RelplanError(
                f"connectors given for {unknown}, which are no tables of the plan's script; its tables: {names}"
            )
        return self.lowering.script(sinks, {n: self.connector(n) for n in names}, pretty=pretty)

    @property
    def env(self) -> Any:
        return self._env if self._env is not None else local_table_env(self.mode)

    def run(self, sinks: tuple[Sink, ...], tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        from relplan.backends.duckdb_udf import refuse_python_udfs

        refuse_python_udfs(sinks, self.name)  # before the environment starts
        env = self.env
        # The options every script sets (UTC above all: TO_TIMESTAMP_LTZ reads the
        # session zone), for this run only: the environment's own configuration gets
        # back each previous value, or loses the key where it had none.
        with run_options(env, _script_options(self.mode)):
            return self._run(env, sinks, tables)

    def _run(self, env: Any, sinks: tuple[Sink, ...], tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        staging = tempfile.mkdtemp(prefix="relplan-flink-", dir=self._staging_dir)
        run_id = uuid.uuid4().hex[:12]
        created: list[str] = []
        debug = _log.isEnabledFor(logging.DEBUG)
        step = self.on_step
        t0 = 0.0
        if debug:
            where = "the TableEnvironment passed" if self._env is not None else "relplan's local mini-cluster"
            _log.debug("flink: a run in %s mode on %s, staging in %s", self.mode, where, staging)
        try:
            views = {src.name: f"relplan_{run_id}_s{i}" for i, src in enumerate(_sources(sinks))}
            lowering = FlinkLowering(views, mode=self.mode)
            for src in lowering.ddl_sources(sinks):
                if step is not None:
                    step(f"writing {src.name}")
                if debug:
                    t0 = time.perf_counter()
                path = os.path.join(staging, views[src.name])
                os.makedirs(path)
                _write_json_lines(self._checked(src, tables[src.name]), os.path.join(path, "data.json"))
                if debug:
                    _log.debug("flink: input %r (%d rows) written as JSON lines in %.1f ms", src.name,
                               tables[src.name].num_rows, (time.perf_counter() - t0) * 1e3)
                self._execute(env, lowering.source_ddl(src, views[src.name], filesystem_options(path), temporary=True))
                created.append(views[src.name])
            outs = {}
            statements = env.create_statement_set()
            inserts = []
            for i, s in enumerate(sinks):
                table = f"relplan_{run_id}_o{i}"
                outs[s.name] = (table, os.path.join(staging, table))
                self._execute(env, lowering.sink_ddl(s, table, filesystem_options(outs[s.name][1]), temporary=True))
                created.append(table)
                inserts.append(lowering.insert(s, table, pretty=False))
                statements.add_insert_sql(inserts[-1])
            if step is not None:
                step("running the job")
            if debug:
                _log.debug("flink: job of %d INSERT(s), SQL:\n%s", len(inserts), ";\n".join(inserts))
                t0 = time.perf_counter()
            try:  # all outputs in one job: a job costs seconds to start
                statements.execute().wait()
            except Exception as e:  # noqa: BLE001 - Py4JJavaError and friends: Flink's own words
                sql = "\n\n".join(lowering.insert(s, outs[s.name][0]) for s in sinks)
                raise EngineError(f"Flink failed on outputs {[s.name for s in sinks]}: {flink_message(e)}\nSQL:\n{sql}") from e
            if debug:
                _log.debug("flink: job ran in %.1f ms", (time.perf_counter() - t0) * 1e3)
            if step is not None:
                step("reading results")
            out = {}
            for s in sinks:
                if debug:
                    t0 = time.perf_counter()
                out[s.name] = in_ir_types(_read_json_lines(outs[s.name][1], s), s, "Flink")
                if debug:
                    _log.debug("flink: output %r: %d rows fetched in %.1f ms", s.name, out[s.name].num_rows,
                               (time.perf_counter() - t0) * 1e3)
            return out
        finally:
            for table in created:
                try:
                    env.drop_temporary_table(table)
                except Exception:  # noqa: BLE001 - the JVM may be gone
                    pass
            shutil.rmtree(staging, ignore_errors=True)

    def _execute(self, env: Any, ddl: str) -> None:
        debug = _log.isEnabledFor(logging.DEBUG)
        t0 = time.perf_counter() if debug else 0.0
        try:
            env.execute_sql(ddl)
        except Exception as e:  # noqa: BLE001
            raise EngineError(f"Flink refused a table definition: {flink_message(e)}\nSQL:\n{ddl}") from e
        if debug:
            _log.debug("flink: %.1f ms: %s", (time.perf_counter() - t0) * 1e3, ddl)

    def _checked(self, src: Source, table: pa.Table) -> pa.Table:
        """Streaming: event times must be whole milliseconds (Flink's event-time precision)
        and after 1970 (Flink's OVER windows take a time at or before the epoch for late)."""
        if self.mode == "streaming" and src.event_time not in (None, fj.VALID_FROM) and table.num_rows:
            us = table.column(src.event_time).cast(pa.int64())
            early = pc.sum(pc.less_equal(us, 0)).as_py()
            if early:
                raise DataError(
                    f"event-time column {src.event_time!r} of source {src.name!r} has {early} value(s) at or "
                    "before 1970-01-01; Flink's streaming OVER windows would drop them as late (use batch mode)"
                )
            sub_ms = pc.sum(pc.not_equal(pc.subtract(us, pc.multiply(pc.divide(us, _MS), _MS)), 0)).as_py()
            if sub_ms:
                raise DataError(
                    f"event-time column {src.event_time!r} of source {src.name!r} has {sub_ms} value(s) with "
                    "sub-millisecond parts; Flink's streaming event time has millisecond precision "
                    "(round the times, or use batch mode)"
                )
        return table


_BUNDLED_CONNECTORS = ("filesystem", "datagen", "blackhole", "print")


def validate_script(script: str, table_env: Any | None = None) -> str:
    """Check a ``to_sql`` script with Flink's parser, validator and planner without
    running it; returns Flink's plan (EXPLAIN). ``table_env``: where to check (default
    a new environment on the local mini-cluster's JVM, in the script's mode).

    Tables of connectors PyPI's PyFlink lacks (Kafka, ...) cannot be planned: each is
    shadowed by a temporary table LIKE it (same columns and watermark) on a bundled
    connector, datagen for sources and blackhole for sinks, so that everything but the
    connector's own options is checked; so are filesystem sinks, whose planning would
    otherwise create their folders.
    """
    settings, statements = script_statements(script)
    env = _script_env(settings, table_env)
    job = statements[-1]
    sinks = set(re.findall(r"INSERT INTO `((?:[^`]|``)+)`", job))
    try:
        for statement in statements[:-1]:
            if statement.startswith("CREATE TABLE"):
                env.execute_sql(statement)
                name = re.match(r"CREATE TABLE `((?:[^`]|``)+)`", statement).group(1)  # type: ignore[union-attr]
                connector = re.search(r"'connector' = '([^']*)'", statement)
                # A filesystem sink is shadowed too: planning an INSERT into one makes its
                # staging folder at the table's path (checking a script must write nothing).
                unbundled = connector and connector.group(1) not in _BUNDLED_CONNECTORS
                if unbundled or (connector and connector.group(1) == "filesystem" and name in sinks):
                    stand_in = "blackhole" if name in sinks else "datagen"
                    env.execute_sql(
                        f"CREATE TEMPORARY TABLE `{name}` WITH ('connector' = '{stand_in}') "
                        f"LIKE `{name}` (EXCLUDING OPTIONS)"
                    )
        return str(env.explain_sql(job))
    except Exception as e:  # noqa: BLE001 - Flink's refusal, in its own words
        raise EngineError(f"Flink refused the script: {flink_message(e)}") from e


_SET = re.compile(r"SET '((?:[^']|'')*)' = '((?:[^']|'')*)'")


def script_statements(script: str) -> tuple[dict[str, str], list[str]]:
    """A ``to_sql`` script's SET options (commands of Flink's SQL client, not SQL) and
    its other statements, in order, without their ';'."""
    settings: dict[str, str] = {}
    statements = []
    for statement in (s.strip().rstrip(";") for s in script.split(";\n\n")):
        option = _SET.fullmatch(statement)
        if option:
            settings[option.group(1).replace("''", "'")] = option.group(2).replace("''", "'")
        else:
            statements.append(statement)
    return settings, statements


def run_script(script: str, table_env: Any | None = None) -> None:
    """Run a ``to_sql`` script as Flink's SQL client does: its SET options into the
    configuration, then each statement in order, waiting for the job to end.
    ``table_env``: where (default a new environment in the script's mode)."""
    settings, statements = script_statements(script)
    env = _script_env(settings, table_env)
    for statement in statements:
        env.execute_sql(statement).wait()


def _script_env(settings: dict[str, str], table_env: Any | None) -> Any:
    env = table_env if table_env is not None else _new_table_env(settings.get("execution.runtime-mode", "batch"))
    for k, v in settings.items():
        env.get_config().set(k, v)
    return env


def _new_table_env(mode: str) -> Any:
    local_table_env(mode)  # the JVM, started once with its options
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.in_streaming_mode() if mode == "streaming" else EnvironmentSettings.in_batch_mode()
    return TableEnvironment.create(settings)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"  # Flink's JSON format parses these strings
    if isinstance(v, dt.datetime):
        return (v.astimezone(dt.timezone.utc).replace(tzinfo=None) if v.tzinfo else v).isoformat(" ", "microseconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _write_json_lines(table: pa.Table, path: str) -> None:
    names = table.column_names
    with open(path, "w", encoding="utf-8") as f:
        for batch in table.to_batches():
            columns = [c.to_pylist() for c in batch.columns]
            for row in zip(*columns):
                f.write(json.dumps({n: _json_value(v) for n, v in zip(names, row)}, ensure_ascii=False))
                f.write("\n")


def _read_json_lines(path: str, sink: Sink) -> pa.Table | None:
    """The part files of a filesystem sink (hidden in-progress files skipped)."""
    rows = []
    for part in sorted(glob.glob(os.path.join(path, "**", "*"), recursive=True)):
        if os.path.isfile(part) and not os.path.basename(part).startswith("."):
            with open(part, encoding="utf-8") as f:
                rows += [json.loads(line) for line in f if line.strip()]
    if not rows:
        return None
    arrays = []
    for field in sink.schema:
        values = [r.get(field.name) for r in rows]
        if field.dtype == T.Float64:  # NaN and infinities come as strings
            arrays.append(pa.array([float(v) if v is not None else None for v in values], pa.float64()))
        elif field.dtype == T.Timestamp:  # UTC wall time, "2024-01-01 00:00:09[.fraction]"
            arrays.append(pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(field.dtype.to_arrow()))
        elif field.dtype == T.Date:
            arrays.append(pa.array(values, pa.string()).cast(field.dtype.to_arrow()))
        else:
            arrays.append(pa.array(values, field.dtype.to_arrow()))
    return pa.Table.from_arrays(arrays, names=[f.name for f in sink.schema])


def flink_message(e: BaseException) -> str:
    """Flink's own words: the message of the innermost Java cause, else the first line."""
    text = (java_root_message(e) or str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__
