"""Derived and request-time features served online, and features over merged rows.

The contract: a derived feature served for (keys, t) with request values r equals
training data's value for a spine row (keys, t, r) (``rp.pitc_join_features``), on
SQLite and on a real Redis server; its inputs are materialized and pushed as usual,
and its expression is the IR's (evaluated by the reference executor). Features over
rows a merge made are materialized through the merge and equal training data; push()
cannot update them and says so, as does a request without a request field.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import relplan as rp
from relplan.ir.errors import FeatureError
from relplan.serving import streaming_jobs
from test_pitc_derived import (
    AMOUNT_VS_AVG,
    AVG_30D,
    CARD_VS_MERCHANT,
    DAY,
    MERCHANT_1D,
    MIN,
    RISK_SUM_7D,
    RISKY_30D,
    SHARE_RISKY,
    SPINE,
    T0,
    TABLES,
    TX,
    DerivMerchants,
    DerivTx,
    Scoring,
    bucket,
    div,
)

UNTIL = T0 + 4 * DAY + 5 * MIN
TS = pa.timestamp("us", tz="UTC")
PLAIN_DERIVED = [AMOUNT_VS_AVG, CARD_VS_MERCHANT]


def before(t: dt.datetime) -> pa.Table:
    return TX.filter(pc.less(TX.column("ts"), pa.scalar(t, TS)))


def after(t: dt.datetime) -> pa.Table:
    return TX.filter(pc.greater_equal(TX.column("ts"), pa.scalar(t, TS)))


def requests(start: dt.datetime, n: int = 40) -> pa.Table:
    """Entity rows with the request's amount and a time each, from ``start`` on."""
    rows = SPINE.slice(0, n).to_pylist()
    for i, r in enumerate(rows):
        r["t"] = start + MIN * (i * 97 % (3 * 24 * 60))
        del r["label"]
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("card", pa.int64()), ("merchant_id", pa.int64()), ("amount", pa.float64()), ("t", TS),
    ]))


def same(served: pa.Table, trained: pa.Table, columns: list[str]) -> None:
    for c in columns:
        assert served.schema.field(c).type == trained.schema.field(c).type, c
        for i, (a, b) in enumerate(zip(served.column(c).to_pylist(), trained.column(c).to_pylist())):
            if isinstance(a, float) and isinstance(b, float):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{c} row {i}: {a} != {b}"
            else:
                assert a == b, f"{c} row {i}: served {a!r}, training data {b!r}"


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'features.db'}"
    return str(request.getfixturevalue("redis_url_clean"))


def test_served_derived_values_equal_training_data(url: str) -> None:
    """Inputs materialized until UNTIL and the rest pushed; each request row at its own time."""
    rows = requests(UNTIL)
    with rp.online_store(url, log_requests=True) as store:
        store.materialize(PLAIN_DERIVED, tables={"DerivTx": before(UNTIL)}, until=UNTIL)
        assert store.push(DerivTx, after(UNTIL), batch_id="b1") == after(UNTIL).num_rows
        got = store.get_online_features(rows, [*PLAIN_DERIVED, AVG_30D], at="t")
        # The derived features and the one input asked for; the other input is read, not returned.
        assert got.column_names == [*rows.column_names, "amount_vs_avg_30d", "card_vs_merchant", "card_avg_30d"]
        trained = rp.pitc_join_features(rows, [*PLAIN_DERIVED, AVG_30D], {"DerivTx": TX}, time="t")
        same(got, trained, ["amount_vs_avg_30d", "card_vs_merchant", "card_avg_30d"])
        # Served values equal the expression over the served inputs, exactly.
        inputs = store.get_online_features(rows, [AVG_30D, MERCHANT_1D], at="t").to_pylist()
        assert got.column("amount_vs_avg_30d").to_pylist() == [div(r["amount"], r["card_avg_30d"]) for r in inputs]
        assert got.column("card_vs_merchant").to_pylist() == [div(r["card_avg_30d"], r["merchant_sum_1d"]) for r in inputs]
        assert any(r["card_avg_30d"] == 0 for r in inputs) or any(r["merchant_sum_1d"] == 0 for r in inputs)
        # A prepared request: the same values.
        assert store.prepare([*PLAIN_DERIVED, AVG_30D]).get(rows, "t").equals(got)
        report = rp.check_online_consistency(store, {"DerivTx": TX})
        assert report.mismatches == 0, str(report)
        assert {"amount_vs_avg_30d", "card_vs_merchant"} <= set(report.features)


def test_features_over_merged_rows_are_materialized_through_the_merge(url: str) -> None:
    end = T0 + 7 * DAY
    rows = requests(end)
    feats = [RISKY_30D, RISK_SUM_7D, SHARE_RISKY]
    with rp.online_store(url, log_requests=True) as store:
        store.materialize(feats, tables=TABLES, until=end)
        got = store.get_online_features(rows, feats, at="t")
        trained = rp.pitc_join_features(rows, feats, TABLES, time="t")
        same(got, trained, ["risky_count_30d", "risk_sum_7d", "share_risky"])
        assert sum(v or 0 for v in got.column("risky_count_30d").to_pylist()) > 0
        assert rp.check_online_consistency(store, TABLES).mismatches == 0
        # push() cannot enrich events as of their time: refused, naming the features, whichever source.
        with pytest.raises(rp.StoreError, match=r"push\(\) of 'DerivTx'.*risky_count_30d.*materialize"):
            store.push(DerivTx, after(end - DAY).slice(0, 1))
        with pytest.raises(rp.StoreError, match=r"push\(\) of 'DerivMerchants'.*merged from \['DerivMerchants', 'DerivTx'\]"):
            store.push(DerivMerchants, TABLES["DerivMerchants"].slice(0, 1))


def test_materialize_takes_derived_features_and_stores_their_inputs() -> None:
    with rp.online_store("sqlite://") as store:
        store.materialize([CARD_VS_MERCHANT], tables={"DerivTx": TX})
        served = {s.column for st in store.group_states().values() for s in st.group.slots}
        assert served == {"card_avg_30d", "merchant_sum_1d"}
        # The inputs can be served on their own too.
        at = T0 + 7 * DAY
        got = store.get_online_features([{"card": 1, "merchant_id": 10}], [AVG_30D, CARD_VS_MERCHANT], at=at)
        assert got.column_names == ["card", "merchant_id", "card_avg_30d", "card_vs_merchant"]


def test_request_fields_come_from_the_entity_rows() -> None:
    at = T0 + 7 * DAY
    with rp.online_store("sqlite://") as store:
        store.materialize([AMOUNT_VS_AVG], tables={"DerivTx": TX})
        avg = store.get_online_features([{"card": 1}], [AVG_30D], at=at).column("card_avg_30d")[0].as_py()
        assert avg
        got = store.get_online_features(
            [{"card": 1, "amount": 3.0}, {"card": 1, "amount": None}, {"card": 1, "amount": 0.0}, {"card": 7, "amount": 1.0}],
            [AMOUNT_VS_AVG], at=at,
        )
        assert got.column("amount_vs_avg_30d").to_pylist() == [3.0 / avg, None, 0.0, None]
        # Integers are read as the declared Float64.
        ints = store.get_online_features(pa.table({"card": [1], "amount": [3]}), [AMOUNT_VS_AVG], at=at)
        assert ints.column("amount_vs_avg_30d").to_pylist() == [3.0 / avg]
        with pytest.raises(rp.StoreError, match=r"request field Scoring\.amount.*no column 'amount'"):
            store.get_online_features([{"card": 1}], [AMOUNT_VS_AVG], at=at)
        with pytest.raises(rp.StoreError, match=r"'amount' as Float64.*string"):
            store.get_online_features([{"card": 1, "amount": "3"}], [AMOUNT_VS_AVG], at=at)


def test_where_coalesce_and_a_python_udf_are_served_as_training_data_computes_them() -> None:
    at = T0 + 7 * DAY
    capped = rp.derived("capped", rp.where(Scoring.amount > AVG_30D, AVG_30D, Scoring.amount))
    filled = rp.derived("filled", rp.coalesce(Scoring.amount / AVG_30D, -1.0))
    bucketed = rp.derived("bucketed", bucket(AVG_30D.column("card_avg_30d")))
    feats = [capped, filled, bucketed]
    rows = pa.table({
        "card": [1, 2, 3, None, 4], "amount": [100.0, -5.0, None, 1.0, 2.0], "t": [at] * 5,
    }, schema=pa.schema([("card", pa.int64()), ("amount", pa.float64()), ("t", TS)]))
    with rp.online_store("sqlite://") as store:
        store.materialize(feats, tables={"DerivTx": TX})
        got = store.get_online_features(rows, feats, at="t")
    trained = rp.pitc_join_features(rows, feats, {"DerivTx": TX}, time="t")
    same(got, trained, ["capped", "filled", "bucketed"])


def test_names_asked_twice_are_refused() -> None:
    with rp.online_store("sqlite://") as store:
        store.materialize([AMOUNT_VS_AVG], tables={"DerivTx": TX})
        with pytest.raises(FeatureError, match="requested twice"):
            store.prepare([AMOUNT_VS_AVG, AMOUNT_VS_AVG])


def test_a_streaming_job_for_a_merged_feature_is_refused() -> None:
    with rp.online_store("sqlite://") as store:
        with pytest.raises(rp.StoreError, match=r"merged from \['DerivMerchants', 'DerivTx'\].*materialize"):
            streaming_jobs(store, [RISKY_30D])


def test_a_later_dimension_version_never_reaches_earlier_events_online() -> None:
    """Materialized again with a dimension version dated v, the values served at v (events
    before v) are unchanged, and equal training data's with or without the version."""
    v = T0 + 4 * DAY + 3 * MIN
    later = pa.concat_tables([TABLES["DerivMerchants"], pa.Table.from_pylist(
        [dict(merchant_id=11, risk=0.0, updated=v), dict(merchant_id=10, risk=0.05, updated=v)],
        schema=DerivMerchants.to_arrow_schema(),
    )])
    rows = pa.table({"card": [1, 2, 3, None]})
    feats = [RISK_SUM_7D, RISKY_30D]
    with rp.online_store("sqlite://") as store:
        store.materialize(feats, tables={**TABLES, "DerivTx": before(v)}, until=v)
        first = store.get_online_features(rows, feats, at=v)
        store.materialize(feats, tables={**TABLES, "DerivTx": before(v), "DerivMerchants": later}, until=v)
        again = store.get_online_features(rows, feats, at=v)
    # Sums of floats may differ in the last bit between runs (DuckDB adds in parallel), so
    # the two materializations are compared as training data is: to 1e-9 relative.
    assert first.column_names == again.column_names
    same(first, again, ["risk_sum_7d", "risky_count_30d"])
    spine = rows.append_column("t", pa.array([v] * rows.num_rows, TS))
    for dims in (TABLES["DerivMerchants"], later):
        same(first, rp.pitc_join_features(spine, feats, {**TABLES, "DerivMerchants": dims}, time="t"), ["risk_sum_7d", "risky_count_30d"])
