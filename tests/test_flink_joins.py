"""Enrichment joins on Flink, batch and streaming: the reference executor's rows.

Hand-built IR plans of the three shapes the DSL's enrichment joins produce (see
backends/flink_joins.py for how streaming mode runs each append-only):

- as-of enrichment: ``AsOfJoin`` of transactions with a merchant dimension's versions,
  ``last`` of each column over the versions at or before the transaction's time, plus
  the ``__asof_versions`` count the DSL filters on for an inner join;
- lookup join: ``Join(lookup=True)`` with a table of one row per key;
- interval join: ``Join`` with ``left_time``/``right_time`` bounds;

each, inner and left, under a per-event OVER window ordered by the transaction's time.
The data pins the edges: a version at exactly the event's time, versions tied on time,
a newer version with NULL values, NULL keys on both sides, events before any version,
keys without versions or table rows, interval bounds hit exactly and missed by 1 ms.
All outputs of a mode run as one Flink job (a job costs seconds).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import relplan as rp
from relplan.backends.flink import FlinkLowering
from relplan.compiler.execute import execute_all
from relplan.compiler.plan import Plan
from relplan.ir import types as T
from relplan.ir.aggregates import AggCall
from relplan.ir.expr import Binary, Column, Literal
from relplan.ir.nodes import AsOfJoin, Filter, Join, Node, Project, Sink, Source, WindowAggregate
from relplan.ir.schema import Schema
from relplan.ir.windows import Frame

from test_differential import differences

T0 = dt.datetime(2024, 1, 1)
S = 1_000_000  # microseconds
MS = 1_000

TX = Source("Tx", Schema.of([("tx_id", T.Int64), ("mk", T.Int64), ("amount", T.Float64), ("ts", T.Timestamp)]), event_time="ts")
# Merchant versions: each row is the merchant's record from vt on.
M = Source("M", Schema.of([("mid", T.Int64), ("category", T.String), ("risk", T.Int64), ("vt", T.Timestamp)]), event_time="vt")
# A lookup table: one row per key, no time.
U = Source("U", Schema.of([("uk", T.Int64), ("name", T.String), ("tier", T.Int64)]))
# Payments, joined to transactions by an interval around the transaction's time.
P = Source("P", Schema.of([("pk", T.Int64), ("pamt", T.Float64), ("pts", T.Timestamp)]), event_time="pts")


def c(name: str, dtype: T.DataType) -> Column:
    return Column(name, dtype)


def per_event(x: Node, name: str, *aggs: AggCall) -> Sink:
    """``x`` with per-event aggregates over the 10 s before each transaction, per merchant."""
    return Sink(WindowAggregate.of(x, ("mk",), "ts", Frame(10 * S), (AggCall("sum", c("amount", T.Float64), "amt_10s"), *aggs)), name)


def asof_sinks() -> list[Sink]:
    """The DSL's as-of enrichment: ``last`` per column, the version count; inner drops
    count 0; and with a tolerance (a frame with a lower bound)."""
    vt = c("vt", T.Timestamp)
    aggs = (
        AggCall("last", c("category", T.String), "category", order=vt),
        AggCall("last", c("risk", T.Int64), "risk", order=vt),
        AggCall("count", None, "__asof_versions"),
    )
    joined = AsOfJoin(TX, M, (("mk", "mid"),), "ts", "vt", ((Frame(None), aggs),))
    sinks = []
    for how in ("inner", "left"):
        x: Node = joined
        if how == "inner":
            x = Filter(x, Binary(">", c("__asof_versions", T.Int64), Literal(0)))
        x = Project(x, tuple((f.name, c(f.name, f.dtype)) for f in x.schema if f.name != "__asof_versions"))
        sinks.append(per_event(
            x, f"asof_{how}", AggCall("max", c("risk", T.Int64), "max_risk_10s"), AggCall("count", c("category", T.String), "n_cat_10s"),
        ))
    # merge_asof's tolerance: only versions at most 2 s old, [t - 2s, t].
    recent = AsOfJoin(TX, M, (("mk", "mid"),), "ts", "vt", ((Frame(2 * S, lower_inclusive=True), aggs[:2]),))
    sinks.append(Sink(recent, "asof_tolerance"))
    return sinks


def lookup_sinks() -> list[Sink]:
    return [
        per_event(
            Join(TX, U, how, (("mk", "uk"),), lookup=True), f"lookup_{how}",
            AggCall("count", c("name", T.String), "n_named_10s"), AggCall("max", c("tier", T.Int64), "max_tier_10s"),
        )
        for how in ("inner", "left")
    ]


def interval_sinks() -> list[Sink]:
    """Payments within [ts - 1 s, ts + 500 ms] (inner, left; right and full without a
    window: their unmatched payments have no transaction time), and a left join to
    payments strictly ahead, [ts + 1 s, ts + 2 s] (a negative ``before``)."""
    sinks = []
    for how in ("inner", "left", "right", "full"):
        j = Join(TX, P, how, (("mk", "pk"),), left_time="ts", right_time="pts", before=S, after=S // 2)
        if how in ("inner", "left"):
            sinks.append(per_event(
                j, f"interval_{how}", AggCall("count", c("pamt", T.Float64), "n_pay_10s"), AggCall("sum", c("pamt", T.Float64), "pay_10s"),
            ))
        else:
            sinks.append(Sink(j, f"interval_{how}"))
    ahead = Join(TX, P, "left", (("mk", "pk"),), left_time="ts", right_time="pts", before=-S, after=2 * S)
    sinks.append(per_event(ahead, "interval_ahead", AggCall("count", c("pamt", T.Float64), "n_ahead_10s")))
    return sinks


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=round(seconds * 1000))


def tables(
    tx: list[tuple[Any, ...]], m: list[tuple[Any, ...]], u: list[tuple[Any, ...]], p: list[tuple[Any, ...]],
) -> dict[str, pa.Table]:
    """Sources from rows, each in time order (the arrival order in streaming)."""
    tx, m, p = sorted(tx, key=lambda r: r[3]), sorted(m, key=lambda r: r[3]), sorted(p, key=lambda r: r[2])
    ts = pa.timestamp("us")
    return {
        "Tx": pa.table({
            "tx_id": pa.array([r[0] for r in tx], pa.int64()), "mk": pa.array([r[1] for r in tx], pa.int64()),
            "amount": pa.array([r[2] for r in tx], pa.float64()), "ts": pa.array([at(r[3]) for r in tx], ts),
        }),
        "M": pa.table({
            "mid": pa.array([r[0] for r in m], pa.int64()), "category": pa.array([r[1] for r in m], pa.string()),
            "risk": pa.array([r[2] for r in m], pa.int64()), "vt": pa.array([at(r[3]) for r in m], ts),
        }),
        "U": pa.table({
            "uk": pa.array([r[0] for r in u], pa.int64()), "name": pa.array([r[1] for r in u], pa.string()),
            "tier": pa.array([r[2] for r in u], pa.int64()),
        }),
        "P": pa.table({
            "pk": pa.array([r[0] for r in p], pa.int64()), "pamt": pa.array([r[1] for r in p], pa.float64()),
            "pts": pa.array([at(r[2]) for r in p], ts),
        }),
    }


# (tx_id, merchant, amount, seconds)
TXS = [
    (1, 1, 10.0, 2), (2, 2, 5.0, 1), (3, None, 7.0, 3), (4, 1, 1.0, 4), (5, 1, 2.0, 6),
    (6, 3, 4.0, 6.5), (7, 2, 8.0, 8), (8, 1, 3.0, 1),
]
# (merchant, category, risk, seconds): merchant 1 from exactly tx 1's time, two versions
# tied at tx 4's time (the larger value wins each column: 'grocery', and risk 3 over
# NULL), then a version of NULLs (the older values stay); merchant 2 after tx 2; a NULL
# merchant; merchant 3 never.
VERSIONS = [
    (1, "food", 5, 2), (2, "toys", None, 3), (None, "x", 9, 3), (1, "grocery", 3, 4),
    (1, "books", None, 4), (1, None, None, 6), (2, None, 7, 7),
]
# (key, name, tier): merchant 2 with a NULL name, a NULL key, a key no transaction has.
TABLE = [(1, "acme", 2), (2, None, 1), (None, "nobody", 9), (4, "unused", 3)]
# (merchant, amount, seconds): tx 4 (4 s) meets 3 s and 4.5 s exactly and misses
# 4.501 s; tx 5 (6 s) meets 6.5 s exactly; tx 2 (1 s) meets 0.999 s; tx 7 (8 s) none.
PAYMENTS = [
    (1, 1.0, 1.0), (1, 2.0, 3.0), (1, 4.0, 4.5), (1, 8.0, 4.501), (1, 16.0, 6.5), (2, 32.0, 0.999),
    (2, 64.0, 9.0), (None, 128.0, 3.0), (3, 256.0, 7.0), (5, 512.0, 2.0),
]


def all_sinks() -> Plan:
    return Plan((*asof_sinks(), *lookup_sinks(), *interval_sinks()))


@pytest.mark.parametrize("mode", ["batch", "streaming"])
def test_enrichment_joins_return_the_references_rows(mode: str) -> None:
    plan = all_sinks()
    data = tables(TXS, VERSIONS, TABLE, PAYMENTS)
    expected = execute_all(plan, "reference", data)
    # The data reaches the edges it is meant to (a sanity check of the fixture itself).
    left = {r["tx_id"]: r for r in expected["asof_left"].to_pylist()}
    assert (left[1]["category"], left[4]["category"], left[4]["risk"], left[5]["category"]) == ("food", "grocery", 3, "grocery")
    assert left[2]["category"] is None and left[8]["category"] is None and left[3]["amt_10s"] is None
    assert sorted(r["tx_id"] for r in expected["asof_inner"].to_pylist()) == [1, 4, 5, 7]
    assert sorted(r["pamt"] for r in expected["interval_inner"].to_pylist() if r["tx_id"] == 4) == [2.0, 4.0]
    got = execute_all(plan, "flink", data, mode=mode)
    assert differences(expected, got) == []


def test_streaming_declares_the_lookup_tables_rows_valid_from_before_every_event() -> None:
    script = Plan(tuple(lookup_sinks())).to_sql("flink", mode="streaming")
    assert "`__rp_valid_from` AS CAST('1970-01-01 00:00:00.001' AS TIMESTAMP(3))" in script
    assert "WATERMARK FOR `__rp_valid_from` AS `__rp_valid_from` - INTERVAL '0.001' SECOND" in script
    assert "__rp_valid_from" not in Plan(tuple(lookup_sinks())).to_sql("flink", mode="batch")
    interval = Plan(tuple(interval_sinks()[:1])).to_sql("flink", mode="streaming")
    # Flink's interval join: bounds on the event-time attributes.
    assert "`r`.`pts` >= `l`.`ts` - INTERVAL '1' SECOND" in interval and "`r`.`pts` <= `l`.`ts` + INTERVAL '0.500' SECOND" in interval


# ---- what streaming mode cannot run exactly is refused, naming the node and the way out ----


def streaming_sql(*sinks: Sink) -> str:
    return FlinkLowering(mode="streaming").to_sql(tuple(sinks))


def test_point_in_time_frames_not_ending_at_the_events_time_are_refused_in_streaming() -> None:
    vt = c("vt", T.Timestamp)
    aggs = (AggCall("last", c("category", T.String), "category", order=vt),)
    ended = AsOfJoin(TX, M, (("mk", "mid"),), "ts", "vt", ((Frame(None, upper=S, upper_inclusive=False), aggs),))
    with pytest.raises(rp.UnsupportedError, match=r"AsOfJoin \(on mk = mid .*\) is not supported in Flink streaming mode: frame .* does not end at the spine row's time.*or batch mode"):
        streaming_sql(Sink(ended, "out"))
    assert "JOIN" in FlinkLowering(mode="batch").to_sql((Sink(ended, "out"),))
    untimed = Source("S", Schema.of([("mk", T.Int64), ("t", T.Timestamp)]))  # a time, but no event time
    with pytest.raises(rp.UnsupportedError, match=r"AsOfJoin .* the spine time 't' is not an event time Flink tracks.*mode='batch'"):
        streaming_sql(Sink(AsOfJoin(untimed, M, (("mk", "mid"),), "t", "vt", ((Frame(None), aggs),)), "out"))


def test_lookup_and_interval_joins_streaming_cannot_run_exactly_are_refused() -> None:
    with pytest.raises(rp.UnsupportedError, match=r"right join \(right on mk = uk lookup\) is not supported in Flink streaming mode: a right lookup join emits the table's unmatched rows.*inner or left lookup join"):
        streaming_sql(Sink(Join(TX, U, "right", (("mk", "uk"),), lookup=True), "out"))
    timed = Join(TX, P, "left", (("mk", "pk"),), lookup=True)
    with pytest.raises(rp.UnsupportedError, match=r"table 'P' must be bounded and without an event time.*point-in-time join"):
        streaming_sql(Sink(timed, "out"))
    sub_ms = Join(TX, P, "left", (("mk", "pk"),), left_time="ts", right_time="pts", before=1, after=0)
    with pytest.raises(rp.UnsupportedError, match=r"left join .* bounds are not whole milliseconds"):
        streaming_sql(Sink(sub_ms, "out"))
    with pytest.raises(rp.UnsupportedError, match=r"left join .* the join has no time bounds.*interval join.*lookup join"):
        streaming_sql(Sink(Join(TX, U, "left", (("mk", "uk"),)), "out"))


# ---- random data --------------------------------------------------------------------------

KEYS = st.sampled_from([1, 2, 3, None])
SECONDS = st.integers(1, 12).map(lambda h: h / 2)  # half seconds: ties are common


@st.composite
def join_data(draw: Any) -> dict[str, pa.Table]:
    tx = [(i, draw(KEYS), float(draw(st.integers(0, 9))), draw(SECONDS)) for i in range(draw(st.integers(1, 8)))]
    m = draw(st.lists(st.tuples(KEYS, st.sampled_from(["a", "b", None]), st.sampled_from([0, 1, None]), SECONDS), max_size=8))
    keys = draw(st.lists(st.sampled_from([1, 2, 3, None]), unique=True, max_size=4))
    u = [(k, draw(st.sampled_from(["n", None])), draw(st.sampled_from([0, 5, None]))) for k in keys]
    p = draw(st.lists(st.tuples(KEYS, st.sampled_from([1.0, 2.0, None]), SECONDS), max_size=8))
    return tables(tx, m, u, p)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=join_data())
def test_enrichment_joins_on_random_data_in_streaming_are_the_references(data: dict[str, pa.Table]) -> None:
    note(str({k: v.to_pylist() for k, v in data.items()}))
    plan = all_sinks()
    assert differences(execute_all(plan, "reference", data), execute_all(plan, "flink", data, mode="streaming")) == []
