"""Training data with derived and request-time features, and with features over merged rows.

- A derived feature's column is exactly its expression over the point-in-time values
  of its inputs (each looked up by its own keys) and the spine's request columns:
  held against the inputs computed alone and combined here in Python, with the IR's
  rules (division by zero is NULL, NULL in gives NULL out).
- A feature over ``merge_asof`` rows counts the events before the spine row's time,
  each enriched with the dimension version as of the EVENT's time: a version dated
  after an event never changes it, nor any training row before the version.
- DuckDB, the reference engine, Spark and Flink (batch) give the same rows.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp
from relplan.ir.errors import FeatureError

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


class DerivTx(rp.Source):
    card: rp.Int64
    merchant_id: rp.Int64
    amount: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class DerivMerchants(rp.Source):
    merchant_id: rp.Int64
    risk: rp.Float64
    updated: rp.Timestamp = rp.event_time()


class Scoring(rp.Request):
    amount: rp.Float64


@rp.transformation
def card_avg(tx: DerivTx, wspec: rp.WindowSpec):
    return tx.groupby("card")["amount"].window(wspec).mean()


@rp.transformation
def merchant_sum(tx: DerivTx, wspec: rp.WindowSpec):
    return tx.groupby("merchant_id")["amount"].window(wspec).sum()


@rp.transformation
def card_count(tx: DerivTx, wspec: rp.WindowSpec):
    return tx.groupby("card").window(wspec).count()


@rp.transformation
def risky_count(tx: DerivTx, wspec: rp.WindowSpec):
    """Per card, its transactions at merchants risky AS OF each transaction's time."""
    enriched = tx.merge_asof(DerivMerchants, by="merchant_id")
    return enriched[enriched.risk > 0.5].groupby("card").window(wspec).count()


@rp.transformation
def risk_sum(tx: DerivTx, wspec: rp.WindowSpec):
    enriched = tx.merge_asof(DerivMerchants, by="merchant_id")
    return enriched.groupby("card")["risk"].window(wspec).sum()


AVG_30D = card_avg(window=rp.sliding("30d"))
MERCHANT_1D = merchant_sum(window=rp.sliding("1d"))
COUNT_1D = card_count(window=rp.sliding("1d"))
RISKY_30D = risky_count(window=rp.sliding("30d"))
RISK_SUM_7D = risk_sum(window=rp.sliding("7d"))

AMOUNT_VS_AVG = rp.derived("amount_vs_avg_30d", Scoring.amount / AVG_30D)
CARD_VS_MERCHANT = rp.derived("card_vs_merchant", AVG_30D / MERCHANT_1D)  # different keys
SHARE_RISKY = rp.derived("share_risky", RISKY_30D / COUNT_1D)  # a merge feature's over a plain one's
DERIVED = [AMOUNT_VS_AVG, CARD_VS_MERCHANT, SHARE_RISKY]


def div(a: Any, b: Any) -> Any:
    """The IR's ``/``: Float64, NULL in gives NULL out, division by zero is NULL."""
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)


@rp.udf(returns=rp.Float64)
def bucket(x: float | None) -> float | None:
    """A Python UDF (NULL arrives as None)."""
    return None if x is None else float(math.floor(x))


# ---- data ---------------------------------------------------------------------------


def events(n: int = 120, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    rows = [
        dict(
            card=rng.choice([1, 2, 3, None]), merchant_id=rng.choice([10, 11, 12]),
            amount=rng.choice([0.0, 0.0, 2.5, -2.5, 10.0, 4.0, None]),
            ts=T0 + MIN * rng.randrange(0, 6 * 24 * 60, 7),  # multiples of 7 minutes: ties
        )
        for _ in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=DerivTx.to_arrow_schema())


def merchants(extra: list[dict[str, Any]] = ()) -> pa.Table:  # type: ignore[assignment]
    rows = [
        dict(merchant_id=10, risk=0.9, updated=T0 - DAY),
        dict(merchant_id=11, risk=0.1, updated=T0 - DAY),
        dict(merchant_id=11, risk=0.8, updated=T0 + 2 * DAY),
        dict(merchant_id=10, risk=None, updated=T0 + 3 * DAY),  # NULL: latest() keeps the last non-NULL
        dict(merchant_id=12, risk=0.6, updated=T0 + DAY + 14 * MIN),  # at an event's time: matched
        *extra,
    ]
    return pa.Table.from_pylist(rows, schema=DerivMerchants.to_arrow_schema())


def spine(tx: pa.Table, n: int = 60, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    times = tx.column("ts").to_pylist()
    rows = []
    for i in range(n):
        t = rng.choice(times) if i % 3 == 0 else T0 + MIN * rng.randrange(-60, 7 * 24 * 60)
        rows.append(dict(
            card=rng.choice([1, 2, 3, 4, None]), merchant_id=rng.choice([10, 11, 12, 13]),
            amount=rng.choice([0.0, 12.0, -3.0, None, 7.25]), t=t, label=i % 2,
        ))
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("card", pa.int64()), ("merchant_id", pa.int64()), ("amount", pa.float64()),
        ("t", pa.timestamp("us", tz="UTC")), ("label", pa.int64()),
    ]))


TX = events()
SPINE = spine(TX)
TABLES = {"DerivTx": TX, "DerivMerchants": merchants()}


# ---- derived features -----------------------------------------------------------------


def test_derived_values_are_the_expression_over_the_point_in_time_inputs() -> None:
    got = rp.pitc_join_features(SPINE, DERIVED, TABLES)
    # The derived columns only: inputs not asked for are computed, not returned.
    assert got.column_names == [*SPINE.column_names, *(d.name for d in DERIVED)]
    assert got.select(SPINE.column_names).equals(SPINE)
    inputs = rp.pitc_join_features(SPINE, [AVG_30D, MERCHANT_1D, RISKY_30D, COUNT_1D], TABLES).to_pylist()
    expected = {
        "amount_vs_avg_30d": [div(r["amount"], r["card_avg_30d"]) for r in inputs],
        "card_vs_merchant": [div(r["card_avg_30d"], r["merchant_sum_1d"]) for r in inputs],
        "share_risky": [div(r["risky_count_30d"], r["card_count_1d"]) for r in inputs],
    }
    for name, values in expected.items():
        assert got.schema.field(name).type == pa.float64()
        assert got.column(name).to_pylist() == values, name  # exactly: one IEEE division each
    # The data reaches every case: zero divisors, NULL inputs, ordinary values.
    assert any(r["card_avg_30d"] == 0 for r in inputs)
    assert any(r["merchant_sum_1d"] == 0 for r in inputs)
    assert any(r["amount"] is None and r["card_avg_30d"] is not None for r in inputs)
    assert any(r["card_avg_30d"] is None for r in inputs)
    assert sum(v is not None for v in expected["amount_vs_avg_30d"]) > 5


def test_derived_with_its_inputs_asked_for_returns_both_in_order() -> None:
    got = rp.pitc_join_features(SPINE, [CARD_VS_MERCHANT, AVG_30D], TABLES)
    assert got.column_names == [*SPINE.column_names, "card_vs_merchant", "card_avg_30d"]
    alone = rp.pitc_join_features(SPINE, [AVG_30D], TABLES)
    assert got.column("card_avg_30d").equals(alone.column("card_avg_30d"))


def test_null_and_zero_division_by_example() -> None:
    tx = pa.Table.from_pylist([
        dict(card=1, merchant_id=10, amount=0.0, ts=T0),  # card 1 averages 0
        dict(card=2, merchant_id=11, amount=None, ts=T0),  # card 2's average is NULL
        dict(card=3, merchant_id=12, amount=4.0, ts=T0),
    ], schema=DerivTx.to_arrow_schema())
    at = T0 + MIN
    sp = pa.table({
        "card": [1, 2, 3, 3, 9], "amount": [5.0, 5.0, 2.0, None, 1.0], "t": [at] * 5,
    }, schema=pa.schema([("card", pa.int64()), ("amount", pa.float64()), ("t", pa.timestamp("us", tz="UTC"))]))
    fill = rp.derived("filled", rp.coalesce(Scoring.amount / AVG_30D, -1.0))
    got = rp.pitc_join_features(sp, [AMOUNT_VS_AVG, fill], {"DerivTx": tx})
    assert got.column("amount_vs_avg_30d").to_pylist() == [None, None, 0.5, None, None]
    assert got.column("filled").to_pylist() == [-1.0, -1.0, 0.5, -1.0, -1.0]


def test_the_plan_shows_the_derived_project() -> None:
    text = rp.pitc_plan(SPINE, [AMOUNT_VS_AVG, CARD_VS_MERCHANT]).explain()
    assert "amount_vs_avg_30d := amount / card_avg_30d" in text
    assert "card_vs_merchant := card_avg_30d / merchant_sum_1d" in text
    # The request field is a column of the spine source, which pitc_spine() hands over.
    plan = rp.pitc_plan(SPINE, [AMOUNT_VS_AVG])
    assert "amount" in rp.pitc_spine(SPINE, plan).column_names


def test_a_spine_without_the_request_field_is_refused_naming_it() -> None:
    with pytest.raises(FeatureError, match=r"request field Scoring\.amount.*no column 'amount'"):
        rp.pitc_join_features(SPINE.drop_columns(["amount"]), [AMOUNT_VS_AVG], TABLES)
    with pytest.raises(FeatureError, match=r"Scoring\.amount as Float64.*String"):
        bad = SPINE.set_column(SPINE.column_names.index("amount"), "amount", pa.array(["x"] * SPINE.num_rows))
        rp.pitc_join_features(bad, [AMOUNT_VS_AVG], TABLES)


def test_an_integer_request_column_is_read_as_the_declared_float() -> None:
    ints = SPINE.set_column(
        SPINE.column_names.index("amount"), "amount", pa.array([i % 5 for i in range(SPINE.num_rows)], pa.int64())
    )
    got = rp.pitc_join_features(ints, [AMOUNT_VS_AVG, AVG_30D], TABLES).to_pylist()
    assert [r["amount_vs_avg_30d"] for r in got] == [div(r["amount"], r["card_avg_30d"]) for r in got]


def test_a_derived_name_clashing_with_the_spine_is_refused() -> None:
    clash = rp.derived("label", Scoring.amount / AVG_30D)
    with pytest.raises(FeatureError, match="label"):
        rp.pitc_join_features(SPINE, [clash], TABLES)


def test_a_python_udf_in_a_derived_feature_runs_on_duckdb_and_the_reference() -> None:
    d = rp.derived("avg_bucket", bucket(AVG_30D))  # a UDF of a feature: the feature is its input
    want = [None if v is None else float(math.floor(v))
            for v in rp.pitc_join_features(SPINE, [AVG_30D], TABLES).column("card_avg_30d").to_pylist()]
    for engine in ("duckdb", "reference"):
        assert rp.pitc_join_features(SPINE, [d], TABLES, engine=engine).column("avg_bucket").to_pylist() == want


# ---- features over merged rows --------------------------------------------------------


def enriched_risk(tx: pa.Table, dims: pa.Table) -> list[Any]:
    """Per event, its merchant's risk as of the event's time (newest version at or before
    it; the newest non-NULL value; ties: the largest), by brute force."""
    versions = dims.to_pylist()
    out = []
    for e in tx.to_pylist():
        vs = [v for v in versions if v["merchant_id"] == e["merchant_id"] and v["updated"] <= e["ts"] and v["risk"] is not None]
        if not vs:
            out.append(None)
            continue
        newest = max(v["updated"] for v in vs)
        out.append(max(v["risk"] for v in vs if v["updated"] == newest))
    return out


def brute_force_merged(sp: pa.Table, tx: pa.Table, dims: pa.Table) -> tuple[list[Any], list[Any]]:
    risk = enriched_risk(tx, dims)
    evs = [(e["card"], e["ts"], r) for e, r in zip(tx.to_pylist(), risk)]
    risky, sums = [], []
    for row in sp.to_pylist():
        k, t = row["card"], row["t"]
        if k is None or t is None:
            risky.append(None)
            sums.append(None)
            continue
        risky.append(sum(1 for c, ts, r in evs if c == k and t - 30 * DAY <= ts < t and r is not None and r > 0.5))
        vals = [r for c, ts, r in evs if c == k and t - 7 * DAY <= ts < t and r is not None]
        sums.append(math.fsum(vals) if vals else None)
    return risky, sums


def test_features_over_merged_rows_equal_the_brute_force() -> None:
    got = rp.pitc_join_features(SPINE, [RISKY_30D, RISK_SUM_7D], TABLES)
    risky, sums = brute_force_merged(SPINE, TX, TABLES["DerivMerchants"])
    assert got.column("risky_count_30d").to_pylist() == risky
    for a, b in zip(got.column("risk_sum_7d").to_pylist(), sums):
        assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    assert sum(r or 0 for r in risky) > 10  # the data reaches the feature
    # The merge's rows are the events: the event plan shows the merge_asof under the spine's join.
    assert "AsOfJoin on merchant_id = merchant_id time=ts event_time=updated" in rp.pitc_plan(SPINE, [RISKY_30D]).explain()


def test_a_later_dimension_version_never_changes_earlier_events_nor_earlier_training_rows() -> None:
    """The point-in-time trap: a merchant re-rated at time v must not re-rate the events
    before v, so training rows before v are unchanged, and rows after v differ only
    through events after v."""
    v = T0 + 4 * DAY + 3 * MIN
    later = merchants([dict(merchant_id=11, risk=0.0, updated=v), dict(merchant_id=10, risk=0.05, updated=v)])
    before = rp.pitc_join_features(SPINE, [RISKY_30D, RISK_SUM_7D, SHARE_RISKY], TABLES)
    after = rp.pitc_join_features(SPINE, [RISKY_30D, RISK_SUM_7D, SHARE_RISKY], {**TABLES, "DerivMerchants": later})
    # Each event's enriched value: the same for every event before v.
    old_risk, new_risk = enriched_risk(TX, TABLES["DerivMerchants"]), enriched_risk(TX, later)
    for e, a, b in zip(TX.column("ts").to_pylist(), old_risk, new_risk):
        if e < v:
            assert a == b
    changed = 0
    for i, t in enumerate(SPINE.column("t").to_pylist()):
        row_b, row_a = before.slice(i, 1).to_pylist()[0], after.slice(i, 1).to_pylist()[0]
        if t is not None and t <= v:
            assert row_a == row_b, f"spine row {i} at {t}, before the version at {v}, changed"
        changed += row_a != row_b
    assert changed > 0  # the new version does reach the rows after it
    risky, sums = brute_force_merged(SPINE, TX, later)
    assert after.column("risky_count_30d").to_pylist() == risky


def test_a_lookup_merge_feature_and_ties_on_duckdb_and_the_reference() -> None:
    class DerivRegion(rp.Source):
        merchant_id: rp.Int64
        region: rp.String

    @rp.transformation
    def region_count(tx: DerivTx, wspec: rp.WindowSpec):
        return tx.merge(DerivRegion, on="merchant_id").groupby("region").window(wspec).count()

    @rp.transformation
    def newest_risk(tx: DerivTx, wspec: rp.WindowSpec):
        enriched = tx.merge_asof(DerivMerchants, by="merchant_id")
        return enriched.groupby("card")["risk"].window(wspec).last()

    feats = [region_count(window=rp.sliding("2d")), newest_risk(window=rp.lifetime())]
    regions = pa.table({"merchant_id": [10, 11, 12], "region": ["eu", "us", "eu"]})
    sp = SPINE.append_column("region", pa.array([["eu", "us", None][i % 3] for i in range(SPINE.num_rows)]))
    tables = {**TABLES, "DerivRegion": regions}
    duck = rp.pitc_join_features(sp, feats, tables)
    assert duck.equals(rp.pitc_join_features(sp, feats, tables, engine="reference"))
    # Brute force of the lookup one.
    region_of = {10: "eu", 11: "us", 12: "eu"}
    evs = [(region_of[e["merchant_id"]], e["ts"]) for e in TX.to_pylist()]
    want = [None if r is None or t is None else sum(1 for g, ts in evs if g == r and t - 2 * DAY <= ts < t)
            for r, t in zip(sp.column("region").to_pylist(), sp.column("t").to_pylist())]
    assert duck.column("region_count_2d").to_pylist() == want


# ---- every engine -----------------------------------------------------------------------


ALL = [AMOUNT_VS_AVG, CARD_VS_MERCHANT, SHARE_RISKY, RISK_SUM_7D]


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        for x, y in zip(a.column(name).to_pylist(), b.column(name).to_pylist()):
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), name
            else:
                assert x == y, name


def test_reference_engine_equals_duckdb() -> None:
    _same(rp.pitc_join_features(SPINE, ALL, TABLES, engine="reference"), rp.pitc_join_features(SPINE, ALL, TABLES))


def test_spark_equals_duckdb(spark: Any) -> None:
    _same(rp.pitc_join_features(SPINE, ALL, TABLES, engine="spark", session=spark), rp.pitc_join_features(SPINE, ALL, TABLES))


def test_flink_batch_equals_duckdb() -> None:
    _same(rp.pitc_join_features(SPINE, ALL, TABLES, engine="flink"), rp.pitc_join_features(SPINE, ALL, TABLES))
