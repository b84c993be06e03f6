"""The online store's consistency check, and materialize on Spark.

The check replays logged requests through training data: it must report 0 mismatches
where the store is right, and count each kind of mismatch where it is not (a request
served before more events arrived is one: the replay sees them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import relplan as rp

T0 = dt.datetime(2024, 3, 1)


class Swipes(rp.Source):
    card: rp.Int64
    amt: rp.Float64
    shop: rp.String
    ts: rp.Timestamp = rp.event_time(lateness="2m")


@rp.transformation
def spend(sw: Swipes, wspec: rp.WindowSpec):
    return sw.groupby("card")["amt"].window(wspec).agg(
        total=("amt", "sum"), avg=("amt", "mean"), sd=("amt", "std"), shops=("shop", "nunique"), first=("amt", "first")
    )


@rp.transformation
def big(sw: Swipes, wspec: rp.WindowSpec):
    return sw[sw.amt > 50].groupby("card").window(wspec).count()


FEATURES = [
    spend(window=rp.sliding("30m")), big(window=rp.sliding("2h")), big(window=rp.lifetime(), name="big_ever"),
    rp.latest(Swipes, "shop", by="card", ttl="20m"),
]


def swipes(n: int = 400, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    amt = rng.choice([5.0, 20.0, 60.0, 120.5, -1.0], n).tolist()
    for i in rng.choice(n, n // 10, replace=False):
        amt[i] = None
    card = rng.integers(0, 6, n).tolist()
    for i in rng.choice(n, n // 20, replace=False):
        card[i] = None
    return pa.table({
        "card": pa.array(card, pa.int64()),
        "amt": pa.array(amt, pa.float64()),
        "shop": pa.array(rng.choice(["a", "b", "c", "d"], n).tolist(), pa.string()),
        # Whole minutes over 6 hours: ties, and events exactly a window apart.
        "ts": pa.array([T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 360, n)], pa.timestamp("us")),
    })


def split(events: pa.Table, at: dt.datetime) -> tuple[pa.Table, pa.Table]:
    ts = events.column("ts")
    cut = pa.scalar(at, ts.type)
    return events.filter(pa.compute.less(ts, cut)), events.filter(pa.compute.greater_equal(ts, cut))


def requests(store: Any, times: list[dt.datetime]) -> None:
    rows = [{"card": c, "t": t} for t in times for c in (0, 1, 2, 3, 4, 5, 99, None)]
    spine = pa.Table.from_pylist(rows, schema=pa.schema([("card", pa.int64()), ("t", pa.timestamp("us"))]))
    store.get_online_features(spine, FEATURES, at="t")


CUT = T0 + dt.timedelta(hours=4)
TIMES = [CUT + dt.timedelta(minutes=m) for m in (0, 1, 7, 30, 45, 90, 119, 120, 121)]


def test_the_check_reports_no_mismatch_where_the_store_is_right() -> None:
    events = swipes()
    before, after = split(events, CUT)
    with rp.online_store("sqlite://", log_requests=True) as store:
        store.materialize(FEATURES, tables={"Swipes": before}, until=CUT)
        store.push(Swipes, after, batch_id="rest")
        requests(store, TIMES)
        report = rp.check_online_consistency(store, tables={"Swipes": events})
    columns = [c for f in FEATURES for c in f.columns]
    assert list(report.features) == columns
    assert all(f.rows == len(TIMES) * 8 for f in report.features.values())
    assert report.mismatches == 0, str(report)
    assert "0 mismatches" in str(report)


def test_the_check_counts_what_arrived_after_a_request_was_served() -> None:
    events = swipes()
    before, after = split(events, CUT)
    with rp.online_store("sqlite://", log_requests=True) as store:
        store.materialize(FEATURES, tables={"Swipes": before}, until=CUT)
        requests(store, TIMES)  # served before the last two hours' events were pushed
        report = rp.check_online_consistency(store, tables={"Swipes": events})
    spent = report.features["spend_30m_total"]
    # Training data sees the pushed-later events: served NULL where it has a value, and differing sums.
    assert spent.served_null_trained_value > 0
    assert spent.value_mismatches > 0 and spent.max_relative_difference > 0
    assert report.features["big_ever"].value_mismatches > 0
    assert report.mismatches == sum(f.mismatches for f in report.features.values()) > 0


def test_the_check_needs_a_logging_store() -> None:
    with rp.online_store("sqlite://") as store:
        with pytest.raises(rp.FeatureError, match="log_requests=True"):
            rp.check_online_consistency(store, tables={})


def test_materialize_on_spark_serves_what_duckdb_does(spark: Any) -> None:
    events = swipes(seed=11)
    before, after = split(events, CUT)
    served = {}
    for engine in ("duckdb", "spark"):
        with rp.online_store("sqlite://", log_requests=True) as store:
            store.materialize(FEATURES, tables={"Swipes": before}, until=CUT, engine=engine)
            store.push(Swipes, after, batch_id="rest")
            requests(store, TIMES)
            report = rp.check_online_consistency(store, tables={"Swipes": events})
            assert report.mismatches == 0, f"{engine}:\n{report}"
            served[engine] = store.request_log()[0][2]
    for name in served["duckdb"].column_names:
        a, b = served["duckdb"].column(name).to_pylist(), served["spark"].column(name).to_pylist()
        if pa.types.is_floating(served["duckdb"].schema.field(name).type):
            assert [x is None for x in a] == [y is None for y in b], name
            assert [x for x in a if x is not None] == pytest.approx([y for y in b if y is not None], rel=1e-9), name
        else:
            assert a == b, name


def test_a_request_prepared_before_another_materialize_serves_the_new_state(tmp_path: Any) -> None:
    """Another process (here: another store object on the same file) materializes again with
    a new layout (a later until moves the lifetime base); a request prepared before notices
    in its own round trip and serves the new state, as training data has it."""
    events = swipes()
    url = f"sqlite:///{tmp_path}/features.db"
    early, _ = split(events, T0 + dt.timedelta(hours=1))
    with rp.online_store(url) as writer, rp.online_store(url) as reader:
        writer.materialize(FEATURES, tables={"Swipes": early}, until=T0 + dt.timedelta(hours=1))
        request = reader.prepare(FEATURES)
        writer.materialize(FEATURES, tables={"Swipes": events}, until=T0 + dt.timedelta(days=1, hours=1))
        at = T0 + dt.timedelta(days=1, hours=2)
        spine = pa.table({"card": pa.array([0, 1, 2, 7], pa.int64()), "t": pa.array([at] * 4, pa.timestamp("us"))})
        served = request.get(spine, at=at)
    trained = rp.pitc_join_features(spine, FEATURES, tables={"Swipes": events}, time="t")
    for name in ("big_ever", "latest_shop_20m", "spend_30m_shops"):
        assert served.column(name).to_pylist() == trained.column(name).to_pylist(), name
    assert served.column("big_ever").to_pylist() != [0, 0, 0, 0]
