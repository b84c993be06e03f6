"""Mistakes in merges and derived features are relplan errors naming what the user wrote."""

from __future__ import annotations

from typing import Any

import pytest

import relplan as rp


class ETx(rp.Source):
    cc_num: rp.Int64
    merchant_id: rp.Int64
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class EVersions(rp.Source):
    merchant_id: rp.Int64
    category: rp.String
    ts: rp.Timestamp = rp.event_time()


class ETable(rp.Source):
    merchant_id: rp.String  # a String key: does not compare with ETx's Int64
    region: rp.String


class ELookup(rp.Source):
    merchant_id: rp.Int64
    region: rp.String


class EScoring(rp.Request):
    amount: rp.Float64


def feature_of(body: Any) -> rp.Feature:
    @rp.transformation
    def f(tx: ETx, v: EVersions, t: ETable, lk: ELookup, wspec: rp.WindowSpec) -> Any:
        return body(tx, v, t, lk).groupby("cc_num").window(wspec).count()

    return f(window=rp.sliding("1h"))


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (lambda tx, v, t, lk: tx.merge(v, on="merchant_id"), rp.FeatureError, r"point-in-time trap.*merge_asof\(EVersions"),
        (lambda tx, v, t, lk: tx.merge(lk, on="merchant_id", how="outer"), rp.FeatureError, r"how='outer'.*'inner' or 'left'"),
        (lambda tx, v, t, lk: tx.merge(lk, on="nope"), rp.SchemaError, r"unknown column 'nope' in ETx"),
        (lambda tx, v, t, lk: tx.merge(t, on="merchant_id"), rp.TypeMismatchError, r"ETx.merchant_id is Int64 but ETable.merchant_id is String"),
        (lambda tx, v, t, lk: tx.merge(lk), rp.FeatureError, r"needs the keys to join on"),
        (lambda tx, v, t, lk: tx.merge(lk, on="merchant_id", suffixes=("_l", "_r")), rp.FeatureError, r"left frame keeps its column names"),
        (lambda tx, v, t, lk: tx.merge(lk, on="merchant_id", within="10m"), rp.FeatureError, r"needs an event time on both sides; ELookup has none"),
        (lambda tx, v, t, lk: tx.merge(v, on="merchant_id", within="-5m"), rp.WindowError, r"must be positive"),
        (lambda tx, v, t, lk: tx.merge_asof(v, by="merchant_id", direction="nearest"), rp.FeatureError, r"only 'backward'"),
        (lambda tx, v, t, lk: tx.merge_asof(v, on="amt", by="merchant_id"), rp.FeatureError, r"matches on the event times"),
        (lambda tx, v, t, lk: tx.merge_asof(lk, by="merchant_id"), rp.FeatureError, r"ELookup has none"),
        (lambda tx, v, t, lk: tx[["cc_num", "merchant_id"]].merge_asof(v, by="merchant_id"), rp.FeatureError, r"no longer has its event time 'ts'"),
        (lambda tx, v, t, lk: tx.merge(lk, on="merchant_id").merge_asof(tx.merge(lk, on="merchant_id"), by="cc_num"), rp.FeatureError, r"not a merged one"),
    ],
)
def test_merge_mistakes_name_what_was_written(body: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        feature_of(body)
    assert "test_dsl_joins_errors.py" in str(info.value)  # the user's line


def test_derived_mistakes_name_what_was_written() -> None:
    @rp.transformation
    def total(tx: ETx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("cc_num")["amt"].window(wspec).sum()

    @rp.transformation
    def stats(tx: ETx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("cc_num").window(wspec).agg(n="count", s=("amt", "sum"))

    f = total(window=rp.sliding("1h"))
    with pytest.raises(rp.FeatureError, match=r"must be an identifier"):
        rp.derived("not a name", f / 2)
    with pytest.raises(rp.FeatureError, match=r"takes an expression over features"):
        rp.derived("x", 3)
    with pytest.raises(rp.FeatureError, match=r"has 2 columns .*column\('stats_1h_n'\)"):
        rp.derived("x", stats(window=rp.sliding("1h")) / 2)
    with pytest.raises(rp.FeatureError, match=r"has no column 'nope'"):
        stats(window=rp.sliding("1h")).column("nope")
    with pytest.raises(rp.TypeMismatchError, match=r"arithmetic"):
        rp.derived("x", f / "text")
    with pytest.raises(rp.FeatureError, match=r"has the name of a value it reads"):
        rp.derived(f.name, f * 2)
    with pytest.raises(rp.FeatureError, match=r"rp.derived\('x', ...\) got .* columns of ETx"):

        @rp.transformation
        def sneaky(tx: ETx, wspec: rp.WindowSpec) -> Any:
            rp.derived("x", tx.amt * 2)
            return tx.groupby("cc_num").window(wspec).count()

        sneaky(window=rp.sliding("1h"))
    ratio = rp.derived("ratio", EScoring.amount / f)
    with pytest.raises(rp.FeatureError, match=r"reads request field EScoring.amount, but a batch plan.*no column 'amount'"):
        rp.compile([ratio])


def test_a_derived_feature_over_two_row_sets_is_computed_where_a_row_holds_both() -> None:
    @rp.transformation
    def total(tx: ETx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("cc_num")["amt"].window(wspec).sum()

    @rp.transformation
    def versions(v: EVersions, wspec: rp.WindowSpec) -> Any:
        return v.groupby("merchant_id").window(wspec).count()

    mixed = rp.derived("mixed", total(window=rp.sliding("1h")) / versions(window=rp.sliding("1d")))
    with pytest.raises(rp.FeatureError, match=r"no row of a batch plan holds them all.*rp.pitc_join_features"):
        rp.compile([mixed])


def test_the_same_feature_made_twice_is_one_input_and_a_different_one_is_refused() -> None:
    import datetime as dt

    import pyarrow as pa

    @rp.transformation
    def total(tx: ETx, wspec: rp.WindowSpec) -> Any:
        return tx.groupby("cc_num")["amt"].window(wspec).sum()

    given = total(window=rp.sliding("1h"))
    again = total(window=rp.sliding("1h"))  # another call, another line: the same definition
    doubled = rp.derived("doubled", again * 2)
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    tx = pa.table({"cc_num": [1, 1], "merchant_id": [1, 1], "amt": [1.0, 2.0], "ts": [t0, t0 + dt.timedelta(minutes=1)]})
    out = rp.execute(rp.compile([given, doubled]), tables={"ETx": tx})
    assert out.column("doubled").to_pylist() == [2.0, 6.0] and out.column_names.count(given.name) == 1
    other = total(window=rp.sliding("2h"), name=given.name)  # the same name, another window
    with pytest.raises(rp.FeatureError, match=r"reads a feature named total_1h .* differs from the feature of that name"):
        rp.compile([given, rp.derived("d2", other * 2)])
