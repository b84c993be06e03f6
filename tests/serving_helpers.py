"""Shared parts of the online store's tests: a source, a feature set that covers every
aggregate the store serves, and a comparison of served values with training data.

The contract under test: the value served for key k at time t is
``rp.pitc_join_features`` of a spine row (k, t) over every event so far
(``inclusive=False``), floats within 1e-9 (relative, absolute near zero).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from typing import Any

import pyarrow as pa

import relplan as rp

LATENESS = dt.timedelta(minutes=5)
FLOAT_TOLERANCE = 1e-9
UTC = dt.timezone.utc


class ServTx(rp.Source):
    account_id: rp.Int64
    merchant: rp.String
    status: rp.String
    amt: rp.Float64
    qty: rp.Int64
    ts: rp.Timestamp = rp.event_time(lateness="5m")


TX_SCHEMA = ServTx.to_arrow_schema()


class ServLogin(rp.Source):
    user_id: rp.Int64
    ok: rp.Bool
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def logins(lg: ServLogin, wspec: rp.WindowSpec):
    return lg.groupby("user_id").window(wspec).count()


@rp.transformation
def amt_all(tx: ServTx, wspec: rp.WindowSpec):
    """Every aggregate over a Float64 column (and count_distinct over a String one)."""
    return tx.groupby("account_id")["amt"].window(wspec).agg(
        n=("amt", "count"), s=("amt", "sum"), m=("amt", "mean"), lo=("amt", "min"), hi=("amt", "max"),
        d=("merchant", "nunique"), f=("amt", "first"), la=("amt", "last"), sd=("amt", "std"),
        v=("amt", "var"),
    )


@rp.transformation
def qty_int(tx: ServTx, wspec: rp.WindowSpec):
    """Integer aggregates: sums exact, min/max/first/last of Int64."""
    return tx.groupby("account_id")["qty"].window(wspec).agg(
        qs=("qty", "sum"), qlo=("qty", "min"), qhi=("qty", "max"), qf=("qty", "first"), ql=("qty", "last"),
        qd=("qty", "nunique"),
    )


@rp.transformation
def failed(tx: ServTx, wspec: rp.WindowSpec):
    """A filtered feature: count and sum over the failed transactions only."""
    return tx[tx.status == "failed"].groupby("account_id")["amt"].window(wspec).agg(
        fn=("amt", "count"), fs=("amt", "sum"),
    )


@rp.transformation
def pair(tx: ServTx, wspec: rp.WindowSpec):
    """A two-column key (account_id, merchant)."""
    return tx.groupby(["account_id", "merchant"])["amt"].window(wspec).agg(
        pn=("amt", "count"), ps=("amt", "sum"), pl=("amt", "last"), pm=("amt", "max"),
    )


def all_features() -> list[rp.Feature]:
    """Windows of 5m (10 s tiles), 1h (5 min tiles), lifetime (a base and day tiles),
    latest with a 20 min ttl (1 min tiles) and without."""
    return [
        amt_all(window=rp.sliding("5m"), name="a5m"),
        amt_all(window=rp.sliding("1h"), name="a1h"),
        amt_all(window=rp.lifetime(), name="alife"),
        qty_int(window=rp.sliding("5m"), name="q5m"),
        qty_int(window=rp.lifetime(), name="qlife"),
        failed(window=rp.sliding("1h"), name="f1h"),
        pair(window=rp.sliding("5m"), name="p5m"),
        rp.latest(ServTx, "amt", by="account_id", ttl="20m"),
        rp.latest(ServTx, "merchant", by="account_id"),
        rp.latest(ServTx, "qty", by=["account_id", "merchant"], name="latest_qty_pair"),
    ]


KEYS_AND_TIME = ("account_id", "merchant", "t")  # a spine's columns
WINDOWS = (dt.timedelta(minutes=5), dt.timedelta(hours=1), dt.timedelta(minutes=20))


def events_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=TX_SCHEMA)


def spine_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([
        ("account_id", pa.int64()), ("merchant", pa.string()), ("t", pa.timestamp("us", tz="UTC")),
    ])
    return pa.Table.from_pylist(list(rows), schema=schema)


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return a == b and type(a) is type(b)


def mismatches(expected: pa.Table, got: pa.Table, limit: int = 20) -> list[str]:
    """What differs between two tables, row for row (empty: equal)."""
    if expected.column_names != got.column_names:
        return [f"columns differ: expected {expected.column_names}, got {got.column_names}"]
    if expected.num_rows != got.num_rows:
        return [f"row counts differ: expected {expected.num_rows}, got {got.num_rows}"]
    out = []
    for c in expected.column_names:
        want, have = expected.schema.field(c).type, got.schema.field(c).type
        if want != have:
            out.append(f"column {c!r}: type {want} expected, got {have}")
        for i, (a, b) in enumerate(zip(expected.column(c).to_pylist(), got.column(c).to_pylist())):
            if not same_value(a, b):
                row = {k: expected.column(k)[i].as_py() for k in KEYS_AND_TIME if k in expected.column_names}
                out.append(f"row {i} {row} column {c!r}: expected {a!r}, served {b!r}")
                if len(out) >= limit:
                    return out
    return out


def assert_same(expected: pa.Table, got: pa.Table) -> None:
    bad = mismatches(expected, got)
    assert not bad, "served values differ from training data:\n" + "\n".join(bad)


def feature_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c not in KEYS_AND_TIME]


def dump_records(url: str) -> dict[Any, dict[Any, Any]]:
    """Every record the store at ``url`` holds, field by field, as stored (bytes or text),
    read around the store (sqlite3 on the file, a redis client on the server): what is
    stored, not what is served."""
    out: dict[Any, dict[Any, Any]] = {}
    if url.startswith("redis"):
        import redis

        with redis.Redis.from_url(url) as r:
            for k in r.scan_iter(count=1000):
                out[k] = r.hgetall(k)
        return out
    assert url.startswith("sqlite:///"), url
    with closing(sqlite3.connect(url[len("sqlite:///"):])) as con:
        for record, fld, value in con.execute("SELECT record, field, value FROM rp_records"):
            out.setdefault(record, {})[fld] = value
    return out


def write_table(table: pa.Table, path: Any) -> None:
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)


def read_table(path: Any) -> pa.Table:
    with pa.memory_map(str(path)) as f:
        return pa.ipc.open_file(f).read_all()
