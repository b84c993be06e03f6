"""Served values equal training data, for random event streams (issue 16, item 1).

Per example: random events (few keys and NULL keys, NULL values, ties in time,
negative and repeated values) and a random ``until``. The events before it are
materialized, except some held back as late; the rest and the late ones are
pushed in random order and batch sizes, some batches twice under one batch_id
(applied once). Then one ``get_online_features(spine, ..., at="t")`` call serves
many (key, time) rows at once: every event time, every event time plus each
window (the edges), times before a key's first event, the start of the exact
range (``until`` minus the source's lateness), and days later. Each row must
equal ``rp.pitc_join_features`` over all the events, on SQLite and on Redis.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import relplan as rp
from serving_helpers import (
    LATENESS,
    ServTx,
    UTC,
    WINDOWS,
    all_features,
    assert_same,
    events_table,
    spine_table,
)

T0 = dt.datetime(2024, 3, 1, 22, 0, tzinfo=UTC)  # the span crosses midnight: lifetime's base moves
SPAN_S = 3 * 3600
US = dt.timedelta(microseconds=1)
FEATURES = all_features()

ACCOUNTS = [1, 2, 3, None]
MERCHANTS = ["a", "b", None]
AMOUNTS = [-3.0, -0.5, 0.0, 1.0, 2.5, 2.5, 1000.25, None]
QTYS = [-7, -1, 0, 1, 1, 5, None]
SPINE_ACCOUNTS = [1, 2, 3, None, 99]  # 99: never seen
SPINE_MERCHANTS = ["a", "b", None, "zz"]


def _offsets() -> st.SearchStrategy[dt.timedelta]:
    return st.one_of(
        st.integers(0, SPAN_S).map(lambda s: dt.timedelta(seconds=s)),
        st.integers(0, SPAN_S // 300).map(lambda m: dt.timedelta(minutes=5 * m)),  # on tile boundaries
        st.integers(0, SPAN_S * 1_000_000).map(lambda u: dt.timedelta(microseconds=u)),
        st.tuples(st.integers(1, 3), st.integers(0, 1440)).map(  # days later
            lambda dm: dt.timedelta(days=dm[0], minutes=dm[1])
        ),
    )


def _event(draw: Any, ts: dt.datetime) -> dict[str, Any]:
    return dict(
        account_id=draw(st.sampled_from(ACCOUNTS)), merchant=draw(st.sampled_from(MERCHANTS)),
        status=draw(st.sampled_from(["ok", "failed", None])), amt=draw(st.sampled_from(AMOUNTS)),
        qty=draw(st.sampled_from(QTYS)), ts=ts,
    )


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    pool = draw(st.lists(_offsets(), min_size=1, max_size=10))  # shared times: ties
    n = draw(st.integers(0, 40))
    events = []
    for _ in range(n):
        events.append(_event(draw, T0 + draw(st.one_of(st.sampled_from(pool), _offsets()))))
    until = T0 + draw(st.one_of(st.sampled_from(pool), _offsets()))
    serve_from = until - LATENESS
    # Events just before until (within the source's allowed lateness), some of them pushed late.
    for _ in range(draw(st.integers(0, 4))):
        back = draw(st.one_of(
            st.sampled_from([LATENESS, US, dt.timedelta(seconds=1)]),
            st.integers(1, LATENESS // US).map(lambda u: u * US),
        ))
        events.append(_event(draw, until - back))
    # Any event before until may come late instead (pushed after materialize), however late:
    # older than the lateness it lands in tiles no request reads, or in the lifetime base.
    late = [e["ts"] < until and draw(st.integers(0, 3)) == 0 for e in events]
    materialized = [e for e, lt in zip(events, late) if e["ts"] < until and not lt]
    pushed = [e for e, lt in zip(events, late) if e["ts"] >= until or lt]
    pushed = draw(st.permutations(pushed))
    batches: list[list[dict[str, Any]]] = []
    i = 0
    while i < len(pushed):
        size = draw(st.sampled_from([1, 2, 3, 7, 40]))
        batches.append(pushed[i:i + size])
        i += size
    plan: list[tuple[int, str | None]] = []  # (batch index, batch id) in push order; repeats: same id
    for b in range(len(batches)):
        bid = None if draw(st.integers(0, 4)) == 0 else f"batch-{b}"  # no id: pushed once
        plan.append((b, bid))
        if bid is not None and draw(st.booleans()):
            plan.append((b, bid))  # at once
        if plan and draw(st.integers(0, 3)) == 0:
            earlier = draw(st.sampled_from(plan))
            if earlier[1] is not None:
                plan.append(earlier)  # later, after other batches
    candidates = {serve_from, until, until + dt.timedelta(days=2)}
    for e in events:
        t = e["ts"]
        candidates.update({t, t + US, t - US})
        candidates.update(t + w for w in WINDOWS)
    candidates = sorted(c for c in candidates if c >= serve_from)
    times = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=30, unique=True))
    times.append(serve_from)
    times.extend(until + draw(_offsets()) for _ in range(3))
    return dict(events=events, until=until, materialized=materialized, batches=batches, plan=plan,
                times=times, seed=draw(st.integers(0, 2**32)))


def _spine(times: list[dt.datetime], seed: int) -> Any:
    rows = [dict(account_id=a, merchant=m, t=t)
            for t in times for a in SPINE_ACCOUNTS for m in SPINE_MERCHANTS]
    rows.append(dict(account_id=1, merchant="a", t=None))  # a NULL time: NULL for every feature
    random.Random(seed).shuffle(rows)
    return spine_table(rows)


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    return "sqlite://" if request.param == "sqlite" else request.getfixturevalue("redis_url")


def _open(url: str) -> rp.OnlineStore:
    if url.startswith("redis"):
        with redis.Redis.from_url(url) as client:
            client.flushall()
    return rp.online_store(url)


# About 0.5 s an example (a materialize and a training-data run on DuckDB, a few dozen
# pushes): 15 per store keep the file near 15 s. Explored with 150 per store.
@settings(
    max_examples=15, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_served_equals_training_data(store_url: str, sc: dict[str, Any]) -> None:
    with _open(store_url) as store:
        store.materialize(FEATURES, tables={"ServTx": events_table(sc["materialized"])}, until=sc["until"])
        applied: set[str] = set()
        for b, bid in sc["plan"]:
            batch = sc["batches"][b]
            n = store.push(ServTx, events_table(batch), batch_id=bid)
            fresh = bid is None or bid not in applied
            assert n == (len(batch) if fresh else 0), (b, bid)
            if bid is not None:
                applied.add(bid)
        spine = _spine(sc["times"], sc["seed"])
        served = store.get_online_features(spine, FEATURES, at="t")
    train = rp.pitc_join_features(spine, FEATURES, tables={"ServTx": events_table(sc["events"])}, time="t")
    assert_same(train, served)
