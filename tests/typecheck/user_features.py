"""A user's features module, written as a data scientist writes one, in strict typing.

tests/test_typecheck.py checks it with ``mypy --strict`` (relplan's API must give no
error) and then runs ``run()`` on a small table, so that the types a checker sees are
the ones the code gets. ``assert_type`` makes the check mean something: an API that
returned ``Any`` would fail it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa

import relplan as rp
from relplan.catalog import CatalogPlan

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_type


class Transactions(rp.Source):
    account_id: rp.Int64 = rp.key()
    cc_num: rp.Int64
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    is_online: rp.Bool
    ts: rp.Timestamp = rp.event_time(lateness="5m")


class Payouts(rp.Source, name="Payouts"):
    account_id: rp.Int64 = rp.key()
    day: rp.Date
    amount: rp.Float64
    ts: rp.Timestamp = rp.event_time(dt.timedelta(minutes=1))


# -- the two decorator forms --------------------------------------------------------------

@rp.transformation
def failed_count(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    """Failed transactions per account."""
    assert_type(tx.status, rp.String)
    failed = tx.status == "failed"
    assert_type(failed, rp.Series)
    rows = tx[failed]
    assert_type(rows, rp.DataFrame)
    grouped = rows.groupby("account_id")
    assert_type(grouped, rp.GroupBy)
    return grouped.window(wspec).count()


@rp.transformation(name="big_spend", owner="risk", tags=["spend", "daily"], description="Large spend.")
def big_spend(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    mask = ((tx.amt > 500) & tx.status.isin(["ok", "declined"])) | ~tx.is_online
    big = tx[mask]
    return big.groupby(["account_id", "merchant"]).window(wspec).agg(total=("amt", "sum"), n="count")


@rp.transformation(tags="amounts")
def amount_stats(tx: Transactions, wspec: rp.WindowSpec, factor: float = 1.0) -> rp.FeatureBody:
    """Arithmetic, reflected operators, null handling, casts and a derived column."""
    scaled = tx.assign(
        amt_usd=tx.amt.fillna(0.0) * factor,
        cents=(100 * tx.amt).astype(rp.Int64),
        half=lambda df: df.amt / 2 - 1,
        online=tx.is_online,
        country="US",
    )
    assert_type(scaled, rp.DataFrame)
    assert_type(scaled.amt_usd, rp.Series)
    kept = scaled[scaled.amt_usd.between(1, 10_000, inclusive="left") & scaled["status"].notnull()]
    kept = kept[(-kept.amt < 0) | kept.merchant.isna() | (kept.cc_num % 2 == np.int64(0))]
    kept = kept[kept.ts >= dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)]
    return kept.groupby(("account_id",))["amt_usd"].window(wspec).mean()


@rp.transformation
def merchants(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    # window and column in either order; a column by attribute
    return tx.groupby("cc_num").window(wspec).merchant.nunique()


@rp.transformation
def payout_total(p: Payouts, wspec: rp.WindowSpec) -> rp.FeatureBody:
    recent = p[p.day >= dt.date(2024, 1, 1)]
    return recent.groupby("account_id")["amount"].window(wspec).sum()


assert_type(failed_count, rp.Transformation)
assert_type(big_spend, rp.Transformation)


def features() -> list[rp.Feature]:
    windows: list[rp.WindowSpec] = [
        rp.sliding("1h"), rp.sliding(dt.timedelta(days=1)), rp.lifetime(), rp.tumbling("1d"), rp.hopping("1h", "10m"),
    ]
    assert_type(windows[0].per_event, bool)
    assert_type(windows[0].label, str)
    out = [failed_count(window=w) for w in windows]
    out.append(big_spend(window=rp.sliding("7d"), owner="fraud", tags=("big",)))
    out.append(amount_stats(window=rp.sliding("1d"), factor=1.1, name="amount_usd_1d"))
    out.append(merchants(window=rp.sliding("1d")))
    out.append(payout_total(window=rp.sliding("30d")))
    latest = rp.latest(Transactions, "merchant", by="cc_num", ttl="1d", name="last_merchant")
    assert_type(latest, rp.Feature)
    out.append(latest)
    return out


# -- using the results as the types they are declared ----------------------------------

def transactions() -> pa.Table:
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    n = 24
    return pa.table({
        "account_id": pa.array([i % 3 for i in range(n)], pa.int64()),
        "cc_num": pa.array([100 + i % 4 for i in range(n)], pa.int64()),
        "merchant": pa.array([f"m{i % 5}" for i in range(n)], pa.string()),
        "amt": pa.array([float(i * 60) for i in range(n)], pa.float64()),
        "status": pa.array(["failed" if i % 4 == 0 else "ok" for i in range(n)], pa.string()),
        "is_online": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
        "ts": pa.array([start + dt.timedelta(minutes=20 * i) for i in range(n)], pa.timestamp("us", tz="UTC")),
    })


def run() -> dict[str, int]:
    """Compile, optimize, explain, run on DuckDB, training data, serving and the catalog;
    returns row counts (the test checks the run, the checker the types)."""
    feats = features()
    first: rp.Feature = feats[0]
    name: str = first.name
    columns: tuple[str, ...] = first.columns
    spec: rp.WindowSpec = first.spec
    source: type[rp.Source] = first.source
    assert source is Transactions and spec == rp.sliding("1h") and columns == (name,)
    assert rp.Feature.from_json(first.to_json()) == first

    per_event = [f for f in feats if f.per_event and f.source is Transactions]
    plan = rp.compile(per_event)
    assert_type(plan, rp.Plan)
    optimized = rp.optimize(plan, disable=())
    assert_type(optimized, rp.Plan)
    text: str = optimized.explain(verbose=True)
    sql: str = optimized.to_sql("duckdb")
    assert text and sql
    tables = {"Transactions": transactions()}
    result: pa.Table = rp.execute(optimized, engine="duckdb", tables=tables)
    results: dict[str, pa.Table] = rp.execute_all(optimized, tables=tables)

    spine = pa.table({
        "account_id": pa.array([0, 1], pa.int64()),
        "cc_num": pa.array([100, 101], pa.int64()),
        "merchant": pa.array(["m0", "m1"], pa.string()),
        "ts": pa.array([dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("us", tz="UTC")),
    })
    training: pa.Table = rp.pitc_join_features(spine, per_event, tables=tables)

    now = dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc)
    store: rp.OnlineStore
    with rp.online_store("sqlite://", clock=lambda: now) as store:
        store.materialize(per_event, tables=tables, until=now)
        pushed: int = store.push(Transactions, transactions().slice(0, 2), batch_id="b1")
        served: pa.Table = store.get_online_features([{"account_id": 0, "cc_num": 100, "merchant": "m0"}], per_event)

    with tempfile.TemporaryDirectory() as tmp, rp.Catalog(os.path.join(tmp, "features.db")) as catalog:
        changes: CatalogPlan = catalog.plan(per_event)
        assert changes.has_changes
        catalog.apply(per_event)
        again = catalog.get(first.name)  # a catalog holds features and derived features
        assert isinstance(again, rp.Feature) and again == first

    return {
        "per_event": len(per_event), "result": result.num_rows, "outputs": len(results),
        "training": training.num_rows, "pushed": pushed, "served": served.num_rows,
    }
