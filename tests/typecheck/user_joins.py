"""A user's features module with enrichment joins, derived and request-time features,
in strict typing (tests/test_typecheck.py checks it with ``mypy --strict`` and runs ``run()``)."""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa

import relplan as rp

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - Python 3.10
    from typing_extensions import assert_type


class Payments(rp.Source):
    cc_num: rp.Int64
    merchant_id: rp.Int64
    amt: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


class MerchantVersions(rp.Source):
    merchant_id: rp.Int64
    category: rp.String
    valid_from: rp.Timestamp = rp.event_time()


class Countries(rp.Source):
    merchant_id: rp.Int64
    country: rp.String


class Scoring(rp.Request):
    amt: rp.Float64


@rp.transformation
def failed_per_category(p: Payments, m: MerchantVersions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    enriched = p.merge_asof(m, by="merchant_id")
    assert_type(enriched, rp.DataFrame)
    failed = enriched[enriched.status == "failed"]
    return failed.groupby("category").window(wspec).count()


@rp.transformation
def spend_per_country(p: Payments, c: Countries, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return rp.merge(p, c, on="merchant_id", how="left").groupby("country")["amt"].window(wspec).sum()


@rp.transformation
def card_mean(p: Payments, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return p.groupby("cc_num")["amt"].window(wspec).mean()


@rp.transformation
def card_total(p: Payments, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return p.groupby("cc_num")["amt"].window(wspec).sum()


def features() -> list[rp.Feature | rp.DerivedFeature]:
    mean_30d = card_mean(window=rp.sliding("30d"))
    total_1d = card_total(window=rp.sliding("1d"))
    ratio = Scoring.amt / mean_30d
    assert_type(ratio, rp.Series)
    vs_avg = rp.derived("amount_vs_30d_mean", ratio)
    share = rp.derived("day_share", rp.where(mean_30d > 0, total_1d / mean_30d, 0.0))
    filled = rp.derived("total_or_zero", rp.coalesce(total_1d, 0.0))
    assert_type(vs_avg, rp.DerivedFeature)
    return [
        failed_per_category(window=rp.sliding("1d")), spend_per_country(window=rp.sliding("1d")),
        mean_30d, total_1d, vs_avg, share, filled,
    ]


def tables() -> dict[str, pa.Table]:
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    ts = pa.timestamp("us", tz="UTC")
    return {
        "Payments": pa.table({
            "cc_num": pa.array([1, 1, 2], pa.int64()), "merchant_id": pa.array([7, 7, 8], pa.int64()),
            "amt": pa.array([10.0, 20.0, 5.0]), "status": pa.array(["failed", "ok", "failed"]),
            "ts": pa.array([t0, t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)], ts),
        }),
        "MerchantVersions": pa.table({
            "merchant_id": pa.array([7, 7], pa.int64()), "category": pa.array(["food", "travel"]),
            "valid_from": pa.array([t0 - dt.timedelta(days=1), t0 + dt.timedelta(minutes=30)], ts),
        }),
        "Countries": pa.table({"merchant_id": pa.array([7, 8], pa.int64()), "country": pa.array(["FR", "DE"])}),
    }


def run() -> dict[str, int]:
    plan = rp.optimize(rp.compile(features()))
    assert_type(plan, rp.Plan)
    results: dict[str, pa.Table] = rp.execute_all(plan, tables=tables())
    return {name: t.num_rows for name, t in results.items()}
