"""The hybrid placement (backends/hybrid.py) gives the all-batch plan's rows.

A long sliding window split into batch steps over (t - w, midnight) and a streamed
tail over [midnight, t], merged by an ASOF JOIN, must equal the plan run all on
DuckDB: row for row, same columns, order and types. By example (ties, an event
exactly w before another, NULL keys and values, times before 1970, events at
midnight), by property over random features and events on a grid of days, and on
Flink in streaming mode (one JVM start for the file: its examples are few). And as
deployed: the steps job run at midnight of a day, on the events before it alone,
serves that day's events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.backends.hybrid import (
    HYBRID_AGGS,
    TILE_US,
    HybridParts,
    hybrid_refusal,
    run_hybrid_locally,
    split_hybrid,
    steps_select_sql,
)

import reference as ref
from strategies import BASES_US, Events, FeatureSpec, bools, feature_specs, floats, ints, keys_, strings, to_table

DAY = TILE_US
HOUR = 3_600_000_000


class Card(rp.Source):
    cc_num: rp.Int64
    amt: rp.Float64
    qty: rp.Int64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def failed_spend(tx: Card, wspec: rp.WindowSpec):
    failed = tx[tx.status == "failed"]
    return failed.groupby("cc_num").window(wspec).agg(
        total=("amt", "sum"), n="count", avg=("amt", "mean"), lo=("amt", "min"), hi=("amt", "max"),
        qty_sum=("qty", "sum"), qty_avg=("qty", "mean"), first_at=("ts", "min"),
    )


@rp.transformation
def card_count(tx: Card, wspec: rp.WindowSpec):
    return tx.groupby("cc_num").window(wspec).count()


@rp.transformation
def distinct_statuses(tx: Card, wspec: rp.WindowSpec):
    return tx.groupby("cc_num")["status"].window(wspec).nunique()


@rp.transformation
def daily_spend(tx: Card, wspec: rp.WindowSpec):
    return tx.groupby("cc_num")["amt"].window(wspec).sum()


def card_rows(base_us: int) -> list[dict[str, Any]]:
    """A few days of card events from ``base_us`` (a midnight), 30d window edges in mind."""
    rows = []

    def add(cc: int | None, at_us: int, amt: float | None, qty: int | None, status: str | None) -> None:
        rows.append({"cc_num": cc, "amt": amt, "qty": qty, "status": status, "ts": ref.from_us(base_us + at_us)})

    add(1, 0, 10.0, 1, "failed")  # exactly at a midnight
    add(1, 0, 2.5, 2, "failed")  # tied with it
    add(1, 5 * HOUR, None, 3, "failed")  # NULL amount, masked in
    add(1, 5 * HOUR, 7.0, None, "ok")  # masked out
    add(1, DAY - 1_000, -4.0, -5, "failed")  # the last millisecond of the day
    add(1, 3 * DAY + 2 * HOUR, 1.25, 4, None)  # a NULL mask: dropped
    add(1, 30 * DAY, 8.0, 6, "failed")  # exactly 30d after the first two: they are out
    add(1, 30 * DAY, 0.5, 1, "failed")
    add(1, 30 * DAY + 5 * HOUR, 3.0, 2, "failed")  # 30d after the NULL amount
    add(1, 31 * DAY - 1_000, 6.0, 3, "failed")  # 30d after the day's last millisecond
    add(1, 33 * DAY + 2 * HOUR, 9.0, 7, "failed")  # 30d after the NULL mask
    add(1, 40 * DAY, 1.0, 1, "failed")  # everything before has left the window
    add(2, 2 * DAY + HOUR, 100.0, 10, "failed")
    add(2, 2 * DAY + HOUR, None, None, "failed")  # a tie, all NULL
    add(2, 20 * DAY, 50.0, 5, "ok")
    add(2, 20 * DAY + 20 * HOUR, 5.0, 1, "failed")  # 6 hours before the next event, across a midnight
    add(2, 21 * DAY + 2 * HOUR, 4.0, 2, "failed")
    add(2, 31 * DAY + 30 * 60_000_000, -1.0, -1, "failed")  # 29 days later
    add(None, 0, 99.0, 9, "failed")  # no entity: NULL features, a count too
    add(None, 30 * DAY, 1.0, 1, "failed")
    add(3, 35 * DAY, None, None, "failed")  # only NULL values: sums NULL, counts 1
    return rows


def table(rows: list[dict[str, Any]], source: type[rp.Source]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=source.to_arrow_schema())


def assert_same_output(got: pa.Table, expected: pa.Table) -> None:
    """Same schema, same rows as multisets (floats to 1e-9 relative)."""
    assert got.schema.equals(expected.schema), f"\n{got.schema}\nexpected\n{expected.schema}"
    ref.assert_same_rows(got.to_pylist(), expected.to_pylist(), expected.column_names)


def check_hybrid(plan: rp.Plan, tables: dict[str, pa.Table], stream_engine: str, *, day: int | None = None) -> None:
    """The hybrid parts give the all-batch plan's rows; with ``day``, so do they with the
    steps job run at midnight of one day with events (``check_steps_run_at_midnight``)."""
    (sink,) = plan.outputs
    expected = rp.execute(plan, "duckdb", tables)
    parts = split_hybrid(sink)
    assert_same_output(run_hybrid_locally(parts, tables, stream_engine=stream_engine), expected)
    if day is not None:
        check_steps_run_at_midnight(parts, tables, expected, pick=day)


def day_of(t: pa.Table, day_us: int) -> pa.Table:
    """``t``'s rows with ``ts`` in the day from midnight ``day_us``."""
    us = pc.cast(t.column("ts"), pa.int64())
    return t.filter(pc.and_(pc.greater_equal(us, day_us), pc.less(us, day_us + DAY)))


def check_steps_run_at_midnight(
    parts: HybridParts, tables: dict[str, pa.Table], expected: pa.Table, pick: int | None = None
) -> None:
    """The deployed steps job: for each day D with events (or the ``pick``-th, cyclically),
    the steps computed from the events before D alone (the job run at midnight D) and
    the stream part's rows of D serve D's events their all-batch values (``expected``)."""
    import duckdb

    from relplan.backends.duckdb import _naive

    ((name, events),) = tables.items()
    head = rp.execute_all(rp.Plan((parts.stream,)), "duckdb", tables)[parts.head_table]
    us = pc.cast(events.column("ts"), pa.int64())
    days = sorted({u // DAY * DAY for u in us.to_pylist() if u is not None})
    if pick is not None and days:
        days = [days[pick % len(days)]]
    con = duckdb.connect()
    try:
        for day in days:
            con.register(name, _naive(events.filter(pc.less(us, day))))
            con.execute(parts.steps_sql)
            con.register(parts.head_table, _naive(day_of(head, day)))
            got = con.sql(parts.serve_sql).to_arrow_table().cast(parts.schema.to_arrow())
            try:
                assert_same_output(got, day_of(expected, day))
            except AssertionError as e:
                raise AssertionError(f"the steps run at {ref.from_us(day)}: {e}") from None
    finally:
        con.close()


# Around the epoch: all but the last events lie before 1970, and so do the window edges
# (s + 30d) and midnights of most.
EPOCH_BASE = -35 * DAY


@pytest.mark.parametrize("optimized", [False, True], ids=["compiled", "optimized"])
@pytest.mark.parametrize("stream_engine", ["duckdb", "reference"])
def test_hybrid_equals_all_batch_by_example(stream_engine: str, optimized: bool) -> None:
    plan = rp.compile([failed_spend(window=rp.sliding("30d"))])
    plan = rp.optimize(plan) if optimized else plan  # the optimizer writes a mean as sum / count
    check_hybrid(plan, {"Card": table(card_rows(EPOCH_BASE), Card)}, stream_engine)


@pytest.mark.parametrize("base", [EPOCH_BASE, BASES_US[-1]], ids=["1970", "2024"])
def test_steps_of_a_day_need_only_the_events_before_it(base: int) -> None:
    # Key 1's events of day 3 and key 2's of days 20 and 31 come after days without
    # its events: their midnight steps must exist before the day's events do.
    tables = {"Card": table(card_rows(base), Card)}
    for plan in (rp.optimize(rp.compile([failed_spend(window=rp.sliding("30d"))])), rp.compile([card_count(window=rp.sliding("2d"))])):
        (sink,) = plan.outputs
        check_steps_run_at_midnight(split_hybrid(sink), tables, rp.execute(plan, "duckdb", tables))


def test_hybrid_counts_rows_and_handles_no_rows() -> None:
    plan = rp.compile([card_count(window=rp.sliding("2d"))])
    rows = card_rows(EPOCH_BASE)
    check_hybrid(plan, {"Card": table(rows, Card)}, "duckdb")
    check_hybrid(plan, {"Card": table([], Card)}, "duckdb")
    check_hybrid(plan, {"Card": table([r for r in rows if r["cc_num"] is None], Card)}, "duckdb")


def test_parts_are_plain_and_named() -> None:
    (sink,) = rp.optimize(rp.compile([failed_spend(window=rp.sliding("30d"))])).outputs
    parts = split_hybrid(sink, lateness_us=5 * 60_000_000)
    assert (parts.output, parts.head_table, parts.steps_table) == ("Card", "Card__head", "Card__steps")
    assert parts.stream.name == parts.head_table
    assert parts.steps_sql.startswith('CREATE OR REPLACE TABLE "Card__steps" AS')
    assert '"Card__head"' in parts.serve_sql and '"Card__steps"' in parts.serve_sql
    assert parts.schema == sink.schema
    src = parts.stream.input
    while src.inputs:
        src = src.inputs[0]
    assert src.lateness == 5 * 60_000_000
    # The tail keeps the source's columns and adds the partials, one per (function,
    # argument, mask): count(amt) serves the count and the mean; count(*) is its own.
    names = parts.stream.schema.names
    assert names[:5] == Card.schema().names
    assert all(n.startswith("__rp_") for n in names[5:]) and len(names[5:]) == len(set(names[5:]))
    # The stream part's window is one day, partitioned by the day too.
    assert "partition=[cc_num, __rp_day]" in rp.Plan((parts.stream,)).explain()
    assert "frame=(t-1d, t]" in rp.Plan((parts.stream,)).explain()


def test_steps_render_for_spark() -> None:
    (sink,) = rp.compile([failed_spend(window=rp.sliding("30d"))]).outputs
    sql = steps_select_sql(sink, "spark")
    assert "UNIX_MICROS(`ts`)" in sql and "EPOCH_US" not in sql
    with pytest.raises(rp.UnsupportedError, match="DuckDB or Spark"):
        steps_select_sql(sink, "flink")


# ---- refusals ------------------------------------------------------------------------


@rp.transformation
def count_and_statuses(tx: Card, wspec: rp.WindowSpec):
    return tx.groupby("cc_num").window(wspec).agg(n="count", statuses=("status", "nunique"))


TILES_NOTE = " (the batch tiles are UTC days)"


# Short: explain() shows a refusal on the line of its feature, split_hybrid after the output's name.
@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        (distinct_statuses(window=rp.sliding("30d")), "count_distinct(status) has no partials to combine; supported: count, max, mean, min, sum"),
        (count_and_statuses(window=rp.sliding("30d")), "count_distinct(status) (feature 'count_and_statuses_30d_statuses') has no partials"),
        (card_count(window=rp.sliding("1h")), "window (t-1h, t] is not a whole number of days of at least 2d" + TILES_NOTE),
        (card_count(window=rp.sliding("36h")), "window (t-36h, t] is not a whole number of days of at least 2d" + TILES_NOTE),
        (card_count(window=rp.sliding("1d")), "window (t-1d, t] is not a whole number of days of at least 2d" + TILES_NOTE),
        (card_count(window=rp.lifetime()), "window (-inf, t] is not (t-w, t] with w a whole number of days of at least 2d" + TILES_NOTE),
        (daily_spend(window=rp.tumbling("1d")), "not one per-event window feature over a source (found TimeWindowAggregate keys=[cc_num]"),
    ],
    ids=["count_distinct", "count_distinct_of_two", "1h", "36h", "1d", "lifetime", "tumbling"],
)
def test_refusals_say_why(feature: rp.Feature, reason: str) -> None:
    (sink,) = rp.optimize(rp.compile([feature])).outputs
    got = hybrid_refusal(sink)
    assert got is not None and got.startswith(reason), got
    with pytest.raises(rp.UnsupportedError) as e:
        split_hybrid(sink)
    assert str(e.value) == f"output {sink.name!r} cannot be placed hybrid: {got}"


def test_two_window_aggregates_are_refused() -> None:
    @rp.transformation
    def by_status(tx: Card, wspec: rp.WindowSpec):
        return tx.groupby("status").window(wspec).count()

    plan = rp.optimize(rp.compile([card_count(window=rp.sliding("30d")), by_status(window=rp.sliding("30d"))]))
    (sink,) = plan.outputs
    reason = hybrid_refusal(sink)
    assert reason is not None and reason.startswith("computed over WindowAggregate "), reason
    assert reason.endswith(", not directly over a source's columns"), reason


def test_two_windows_in_one_aggregate_are_refused() -> None:
    plan = rp.optimize(rp.compile([card_count(window=rp.sliding("30d")), daily_spend(window=rp.sliding("7d"))]))
    (sink,) = plan.outputs
    reason = hybrid_refusal(sink)
    assert reason == "2 windows ((t-30d, t], (t-7d, t]) in one window aggregate; the hybrid placement splits one", reason


def test_a_supported_feature_has_no_refusal() -> None:
    (sink,) = rp.compile([failed_spend(window=rp.sliding("30d"))]).outputs
    assert hybrid_refusal(sink) is None
    assert HYBRID_AGGS == {"count", "sum", "mean", "min", "max"}


# ---- by property ---------------------------------------------------------------------

HYBRID_WINDOWS = st.sampled_from([("sliding", "2d"), ("sliding", "3d"), ("sliding", "30d")])
# Within a day: midnight, its first and last moments, and a few hours; +-1 unit, so
# events fall exactly on, just inside and just outside the window's edge and the day's.
OFFSETS = (0, 0, 1, DAY // 4, DAY // 2, DAY // 2, 18 * HOUR, DAY - 1)


def hybrid_funcs(window: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(HYBRID_AGGS))


@st.composite
def day_rows(draw: st.DrawFn, unit_us: int = 1, bases: tuple[int, ...] = (EPOCH_BASE, BASES_US[-1])) -> list[dict[str, Any]]:
    """Rows of ``Events`` over a few days on a grid (ties, exact window edges, midnights)."""
    base = draw(st.sampled_from(bases))
    span = draw(st.sampled_from((3, 5, 8)))  # days: 2d and 3d windows slide past events
    null_rate = draw(st.sampled_from((0, 10, 30)))

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return None if null_rate and draw(st.integers(0, 99)) < null_rate else draw(strategy)

    def at() -> dt.datetime:
        offset = draw(st.sampled_from(OFFSETS)) // unit_us * unit_us
        jitter = draw(st.sampled_from((0, 0, 0, 1, -1))) * unit_us
        day = draw(st.integers(0, span))
        return ref.from_us(base + day * DAY + max(0, offset + jitter))

    rows = [
        {"k": draw(keys_), "v": maybe(ints), "x": maybe(floats), "s": maybe(strings), "b": maybe(bools), "ts": at()}
        for _ in range(draw(st.integers(0, 24)))
    ]
    if rows and draw(st.booleans()):  # exact duplicates: same key, same time
        rows += [dict(r) for r in draw(st.lists(st.sampled_from(rows), max_size=3))]
    if rows and draw(st.booleans()):  # same key, exactly 2d or 3d later: on a window's edge
        later = draw(st.lists(st.tuples(st.sampled_from(rows), st.sampled_from((2, 3))), max_size=4))
        rows += [dict(r, ts=r["ts"] + dt.timedelta(days=d)) for r, d in later]
    return rows


def check_spec(
    spec: FeatureSpec, rows: list[dict[str, Any]], stream_engine: str, optimized: bool, *, day: int | None = None
) -> None:
    note(f"feature: {spec}")
    plan = rp.compile([spec.feature("f")])
    plan = rp.optimize(plan) if optimized else plan
    check_hybrid(plan, {"Events": to_table(rows)}, stream_engine, day=day)


def settings_for(examples: int) -> Any:
    return settings(
        max_examples=examples, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


@settings_for(30)
@given(spec=feature_specs(HYBRID_WINDOWS, hybrid_funcs), rows=day_rows(), optimized=st.booleans(), day=st.integers(0, 8))
def test_hybrid_equals_all_batch_on_random_features_and_events(
    spec: FeatureSpec, rows: list[dict[str, Any]], optimized: bool, day: int
) -> None:
    check_spec(spec, rows, "duckdb", optimized, day=day)


@rp.transformation
def positive_stats(e: Events, wspec: rp.WindowSpec):
    kept = e[e.v > 0]
    return kept.groupby("k").window(wspec).agg(n="count", total=("v", "sum"), lo=("x", "min"), hi=("x", "max"), avg=("x", "mean"))


def expected_steps(rows: list[dict[str, Any]], w: int, partials: list[Any]) -> dict[tuple[Any, int], tuple[Any, ...]]:
    """The steps of ``positive_stats`` by brute force: per key, a step at each midnight
    1d to w after a day with events and at s + w for each event time s, with the
    partials of the key's kept events in (v - w, midnight of v's day)."""
    by_key: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        if r["k"] is not None:
            by_key.setdefault(r["k"], []).append(r)
    out: dict[tuple[Any, int], tuple[Any, ...]] = {}
    for k, events in by_key.items():
        times = [ref.to_us(r["ts"]) for r in events]
        steps = {s + w for s in times} | {s // DAY * DAY + j * DAY for s in times for j in range(1, w // DAY + 1)}
        for v in steps:
            frame = [r for r, s in zip(events, times) if v - w < s < v // DAY * DAY and r["v"] is not None and r["v"] > 0]
            values = []
            for p in partials:
                xs = [1 if p.arg is None else r[p.arg.name] for r in frame]
                xs = [x for x in xs if x is not None]
                if p.func == "count":
                    values.append(len(xs))
                else:
                    values.append(({"sum": sum, "min": min, "max": max}[p.func])(xs) if xs else None)
            out[(k, v)] = tuple(values)
    return out


@settings_for(40)
@given(rows=day_rows(), window=st.sampled_from(("2d", "3d", "30d")))
def test_steps_are_the_partials_of_their_frames(rows: list[dict[str, Any]], window: str) -> None:
    """Every step, and no other, with its frame's partials: serving reads only the
    newest step before each event, so this pins the steps no event reads, too."""
    import duckdb

    from relplan.backends.duckdb import _naive
    from relplan.backends.hybrid import _checked_shape, _partials

    (sink,) = rp.compile([positive_stats(window=rp.sliding(window))]).outputs
    partials, _ = _partials(_checked_shape(sink).window)
    assert all(p.arg is None or p.arg.name in ("v", "x") for p in partials)
    parts = split_hybrid(sink)
    con = duckdb.connect()
    try:
        con.register("Events", _naive(to_table(rows)))
        con.execute(parts.steps_sql)
        got = con.sql(f'SELECT * FROM "{parts.steps_table}"').to_arrow_table().to_pylist()
    finally:
        con.close()
    got_steps = {(r["k"], r["__rp_v"]): tuple(r[p.name] for p in partials) for r in got}
    assert len(got_steps) == len(got), "one step per key and time"
    w = int(window[:-1]) * DAY
    assert got_steps == expected_steps(rows, w, partials)


def test_steps_pair_no_step_with_other_days_events() -> None:
    # Tiles and window functions only: no range join of steps and events.
    (sink,) = rp.compile([failed_spend(window=rp.sliding("30d"))]).outputs
    for sql in (split_hybrid(sink).steps_sql, steps_select_sql(sink, "spark")):
        assert "JOIN" not in sql.upper() and "RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING" in sql


# ---- on Flink, streaming ---------------------------------------------------------------

FLINK_BASE = BASES_US[-1]  # 2024: Flink's streaming OVER windows drop times at or before 1970


def test_hybrid_with_the_tail_on_flink_streaming_by_example() -> None:
    pytest.importorskip("pyflink")
    plan = rp.optimize(rp.compile([failed_spend(window=rp.sliding("30d"))]))
    rows = sorted(card_rows(FLINK_BASE), key=lambda r: r["ts"])  # in order, as a stream arrives
    tables = {"Card": table(rows, Card)}
    parts = split_hybrid(plan.outputs[0])
    # The tail really runs as a Flink streaming job, and gives DuckDB's partials.
    flink_head = rp.execute_all(rp.Plan((parts.stream,)), "flink", tables, mode="streaming")[parts.head_table]
    duckdb_head = rp.execute_all(rp.Plan((parts.stream,)), "duckdb", tables)[parts.head_table]
    assert_same_output(flink_head, duckdb_head)
    # Rows out of order: run_hybrid_locally feeds the stream part in event-time order.
    shuffled = {"Card": table(rows[::-1], Card)}
    assert_same_output(run_hybrid_locally(parts, shuffled, stream_engine="flink"), rp.execute(plan, "duckdb", tables))


@settings_for(4)
@given(
    spec=feature_specs(HYBRID_WINDOWS, hybrid_funcs),
    rows=day_rows(unit_us=1_000, bases=(FLINK_BASE,)),
)
def test_hybrid_with_the_tail_on_flink_streaming_on_random_features(spec: FeatureSpec, rows: list[dict[str, Any]]) -> None:
    pytest.importorskip("pyflink")
    check_spec(spec, rows, "flink", optimized=True)

