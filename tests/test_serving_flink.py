"""The streaming path of a deployment feeding the online store from a local Flink job.

Part of the events is materialized on DuckDB; the rest (late ones included) goes
through the store's streaming job, run on PyFlink's mini-cluster in streaming mode
and applied in micro-batches, into an SQLite store and a Redis store (a real
redis-server). What is served then equals ``rp.pitc_join_features`` over every
event, and feeding the same micro-batches again changes nothing.

One Flink job per store: a job costs seconds to start.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import relplan as rp
from relplan.backends import get_backend
from relplan.backends.flink import script_statements
from relplan.serving.streaming import (
    OnlineStoreFeed,
    feed_from_flink,
    micro_batches,
    store_label,
    streaming_job,
    with_online_store,
)

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
UNTIL = T0 + dt.timedelta(hours=4)
LATENESS = dt.timedelta(minutes=5)
FLOAT_TOLERANCE = 1e-9
BATCH_SIZE = 40


class FeedTx(rp.Source):
    account_id: rp.Int64
    merchant: rp.String
    status: rp.String
    amt: rp.Float64
    qty: rp.Int64
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation
def amounts(tx: FeedTx, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["amt"].window(wspec).agg(
        n=("amt", "count"), s=("amt", "sum"), m=("amt", "mean"), lo=("amt", "min"), hi=("amt", "max"),
        d=("merchant", "nunique"), f=("amt", "first"), la=("amt", "last"), sd=("amt", "std"), v=("amt", "var"),
    )


@rp.transformation
def quantities(tx: FeedTx, wspec: rp.WindowSpec):
    return tx.groupby("account_id")["qty"].window(wspec).agg(
        qs=("qty", "sum"), qhi=("qty", "max"), ql=("qty", "last")
    )


@rp.transformation
def failed(tx: FeedTx, wspec: rp.WindowSpec):
    ok = tx[tx.status == "failed"]
    return ok.groupby("account_id")["amt"].window(wspec).agg(fn=("amt", "count"), fs=("amt", "sum"))


@rp.transformation
def pair(tx: FeedTx, wspec: rp.WindowSpec):
    by_pair = tx.groupby(["account_id", "merchant"])
    return by_pair["amt"].window(wspec).agg(pn=("amt", "count"), ps=("amt", "sum"))


def features() -> list[rp.Feature]:
    """Two groups (keys account_id; account_id and merchant): sliding windows of 10 min
    and 1 h, lifetime, latest with and without a ttl, a filter, every aggregate."""
    return [
        amounts(window=rp.sliding("10m"), name="a10m"),
        amounts(window=rp.lifetime(), name="alife"),
        quantities(window=rp.sliding("1h"), name="q1h"),
        failed(window=rp.sliding("1h"), name="f1h"),
        pair(window=rp.sliding("10m"), name="p10m"),
        rp.latest(FeedTx, "amt", by="account_id", ttl="20m"),
        rp.latest(FeedTx, "merchant", by="account_id"),
    ]


def events() -> pa.Table:
    """400 events over 6 hours (whole seconds: Flink's event time has milliseconds), keys
    and values NULL now and then; values like 0.1 and 1e6 for the floats' sake."""
    rng = random.Random(16)
    rows = []
    for _ in range(400):
        rows.append({
            "account_id": rng.choice([1, 2, 3, 4, None]),
            "merchant": rng.choice(["m1", "m2", "m3", None]),
            "status": rng.choice(["ok", "ok", "failed"]),
            "amt": rng.choice([0.1, 2.5, -3.0, 1e6, 7.25, None]),
            "qty": rng.choice([1, 2, 10, None]),
            "ts": T0 + dt.timedelta(seconds=rng.randrange(0, 6 * 3600)),
        })
    return pa.Table.from_pylist(rows, schema=FeedTx.to_arrow_schema())


def split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(materialized, fed): events before UNTIL are materialized, except every third one
    in the last 4 minutes before it, which arrives late, with the events after UNTIL."""
    ts = table.column("ts")
    late_zone = pc.and_(
        pc.greater_equal(ts, pa.scalar(UNTIL - dt.timedelta(minutes=4))), pc.less(ts, pa.scalar(UNTIL))
    )
    every_third = pa.array([i % 3 == 0 for i in range(table.num_rows)])
    late = pc.and_(late_zone, every_third)
    fed = pc.or_(pc.greater_equal(ts, pa.scalar(UNTIL)), late)
    assert pc.sum(late).as_py() > 0
    return table.filter(pc.invert(fed)), table.filter(fed)


def spine() -> pa.Table:
    """Keys known, unknown and NULL, at times from the first exact one (UNTIL minus the
    lateness) to past the last event, some on an event's time or a tile's edge."""
    rng = random.Random(7)
    times = [UNTIL - LATENESS, UNTIL, UNTIL + dt.timedelta(minutes=10), T0 + dt.timedelta(hours=7)]
    times += [UNTIL - LATENESS + dt.timedelta(seconds=rng.randrange(0, 3 * 3600)) for _ in range(16)]
    keys = [(1, "m1"), (2, "m2"), (3, None), (4, "m3"), (None, "m1"), (99, "m1")]
    rows = [{"account_id": a, "merchant": m, "t": t} for t in times for a, m in keys]
    schema = pa.schema([
        ("account_id", pa.int64()), ("merchant", pa.string()), ("t", pa.timestamp("us", tz="UTC")),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return a == b and type(a) is type(b)


def assert_served_as_trained(store: rp.OnlineStore, feats: list[rp.Feature], all_events: pa.Table) -> None:
    sp = spine()
    trained = rp.pitc_join_features(sp, feats, tables={"FeedTx": all_events}, time="t")
    served = store.get_online_features(sp, feats, at="t")
    assert served.column_names == trained.column_names
    bad = []
    for c in trained.column_names:
        for i, (a, b) in enumerate(zip(trained.column(c).to_pylist(), served.column(c).to_pylist())):
            if not same(a, b):
                bad.append(f"row {i} {sp.slice(i, 1).to_pylist()[0]} {c}: trained {a!r}, served {b!r}")
    assert not bad, f"{len(bad)} values differ from training data:\n" + "\n".join(bad[:20])
    assert sum(v is not None for c in served.column_names[3:] for v in served.column(c).to_pylist()) > 100


def sqlite_snapshot(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as con:
        return con.execute("SELECT record, field, value FROM rp_records ORDER BY record, field").fetchall()


def redis_snapshot(url: str) -> dict[bytes, dict[bytes, bytes]]:
    import redis

    with redis.Redis.from_url(url) as client:
        return {k: client.hgetall(k) for k in sorted(client.keys("*"))}


def check_feed(store: rp.OnlineStore, snapshot: Any) -> None:
    """Materialize, feed through Flink, compare with training data, feed the same again."""
    feats = features()
    all_events = events()
    materialized, fed = split(all_events)
    store.materialize(feats, tables={"FeedTx": materialized}, until=UNTIL)

    (result,) = feed_from_flink(store, feats, {"FeedTx": fed}, batch_size=BATCH_SIZE)

    # Every micro-batch applied once, all events in them; cut at event times.
    assert len(result.batches) == math.ceil(fed.num_rows / BATCH_SIZE)
    assert sum(b.events for b in result.batches) == fed.num_rows
    assert result.applied == tuple(b.batch_id for b in result.batches) and not result.skipped
    has_account = pc.is_valid(fed.column("account_id"))
    has_pair = pc.and_(has_account, pc.is_valid(fed.column("merchant")))
    job = streaming_job(store, feats)
    assert [sum(b.rows[g.id].num_rows for b in result.batches) for g in job.groups] == [
        pc.sum(has_account).as_py(), pc.sum(has_pair).as_py()
    ]
    assert result.events_applied == fed.num_rows
    assert_served_as_trained(store, feats, all_events)

    # The batch ids are a function of the rows: DuckDB's run of the same event plans
    # (push's engine; rows in another order) cuts the same batches under the same ids.
    ordered = fed.take(pc.sort_indices(fed, [("ts", "ascending")]))
    duck = get_backend("duckdb").run(job.sinks, {"FeedTx": ordered})
    by_group = {g.id: duck[s.name] for g, s in zip(job.groups, job.sinks)}
    again = micro_batches(job, ordered, by_group, batch_size=BATCH_SIZE)
    assert [b.batch_id for b in again] == [b.batch_id for b in result.batches]
    for b, a in zip(result.batches, again):
        for gid in b.rows:
            assert b.rows[gid].equals(a.rows[gid])

    # Feeding the same micro-batches again changes nothing, byte for byte.
    before = snapshot()
    redo = job.apply(result.batches)
    assert redo.applied == () and redo.events_applied == 0 and len(redo.skipped) == len(result.batches)
    assert job.apply(again).applied == ()
    assert snapshot() == before
    assert_served_as_trained(store, feats, all_events)


def test_flink_feeds_an_sqlite_store_as_training_data(tmp_path: Path) -> None:
    path = tmp_path / "features.db"
    with rp.online_store(f"sqlite:///{path}") as store:
        check_feed(store, lambda: sqlite_snapshot(path))


def test_flink_feeds_a_redis_store_as_training_data(redis_url_clean: str) -> None:
    with rp.online_store(redis_url_clean) as store:
        check_feed(store, lambda: redis_snapshot(redis_url_clean))


def test_the_feed_is_a_streaming_job_in_the_deployment() -> None:
    feats = features()
    store = rp.online_store("sqlite://")
    stats = rp.measure_statistics({"FeedTx": events()})
    plan = rp.optimize(rp.compile(feats), statistics=stats, knobs=rp.Knobs(max_staleness="5m"))
    deployment = with_online_store(plan, store, feats)
    (job,) = [j for j in deployment.jobs if isinstance(j, OnlineStoreFeed)]
    assert (job.kind, job.engine, job.reads, job.writes, job.schedule) == (
        "streaming", "flink", ("FeedTx",), "online_store:sqlite://", None
    )
    assert job.features == tuple(f.name for f in feats)
    assert job.name.startswith("FeedTx__online_") and len(job.groups) == 2 and len(job.sinks) == 2
    assert job.plan is None  # two outputs, one per group: ``sinks``
    line = f"streaming job {job.name} on flink: FeedTx -> online_store:sqlite://  [{', '.join(job.features)}]"
    assert line in deployment.explain().splitlines()
    assert deployment.jobs[: len(plan.deployment().jobs)] == plan.deployment().jobs  # the plan's own jobs kept
    g = deployment.graph
    assert g.has_edge("table:FeedTx", f"job:{job.name}")
    assert g.has_edge(f"job:{job.name}", "table:online_store:sqlite://")
    assert f'"job:{job.name}"' in deployment.to_json()

    # The job's SQL: one Flink script in streaming mode, one INSERT per group in a statement set.
    settings, statements = script_statements(job.sql)
    assert settings["execution.runtime-mode"] == "streaming"
    assert any("WATERMARK FOR `ts`" in s for s in statements if s.startswith("CREATE TABLE `FeedTx`"))
    assert statements[-1].startswith("EXECUTE STATEMENT SET") and statements[-1].count("INSERT INTO") == 2

    # Same features, same store: the same job; another store: another job, its URL without a password.
    assert streaming_job(store, feats).name == job.name
    assert store_label("redis://:s3cret@localhost:6379/0") == "redis://localhost:6379/0"
    assert store_label("redis://user:s3cret@localhost/1") == "redis://user@localhost/1"

    # How Deployment.run_locally would run it: the job feeds its store itself, here on
    # DuckDB (push's engine); one row per micro-batch, each applied once.
    all_events = events()
    materialized, fed = split(all_events)
    fresh = rp.online_store("sqlite://")
    fresh.materialize(feats, tables={"FeedTx": materialized}, until=UNTIL)
    fresh_job = streaming_job(fresh, feats)
    ran = fresh_job.run_locally({"FeedTx": fed}, stream_engine="duckdb", batch_size=BATCH_SIZE)
    assert ran.column_names == ["batch_id", "events", "rows", "applied"]
    assert ran.num_rows == math.ceil(fed.num_rows / BATCH_SIZE) and all(ran.column("applied").to_pylist())
    assert sum(ran.column("events").to_pylist()) == fed.num_rows
    assert_served_as_trained(fresh, feats, all_events)
    rerun = fresh_job.run_locally({"FeedTx": fed}, stream_engine="duckdb", batch_size=BATCH_SIZE)
    assert rerun.column("batch_id").equals(ran.column("batch_id"))
    assert not any(rerun.column("applied").to_pylist())

    # A store that has not materialized these features (together) is refused before Flink starts.
    with pytest.raises(rp.FeatureError, match=r"materialize these features"):
        feed_from_flink(store, feats, {"FeedTx": events()})
    store.materialize(feats[:2], tables={"FeedTx": events()})
    with pytest.raises(rp.FeatureError, match=r"materialize these features"):
        job.feed(events())
    store.materialize(feats, tables={"FeedTx": events()})
    with pytest.raises(rp.DataError, match=r"every event needs a time"):
        bad = events().set_column(5, "ts", pa.array([None] * 400, pa.timestamp("us", tz="UTC")))
        job.run_on_flink(bad)
