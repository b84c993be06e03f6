"""The talk's example end to end: transactions enriched with the merchant's category as of
each transaction, failed transactions per category over a day, the card's 30-day average
amount, and a request-time ratio of the amount to that average.

Compiled once and run on DuckDB, Spark, Flink (batch) and the reference executor: the
same rows everywhere, and values worked out by hand from the data below (merchant 10
changes category from grocery to travel on day 2: its earlier transactions count as
grocery, its later ones as travel). Then the training data for a spine of scoring
requests on DuckDB, point in time (events at the inference time not counted).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

import relplan as rp

from test_differential import differences

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)


class Transactions(rp.Source):
    cc_num: rp.Int64
    merchant_id: rp.Int64
    amt: rp.Float64
    status: rp.String
    ts: rp.Timestamp = rp.event_time()


class Merchants(rp.Source):
    """Versions of each merchant's record: a row holds from updated_at on."""

    merchant_id: rp.Int64
    category: rp.String
    updated_at: rp.Timestamp = rp.event_time()


class Scoring(rp.Request):
    amt: rp.Float64


@rp.transformation
def failed_by_category(tx: Transactions, merchants: Merchants, wspec: rp.WindowSpec) -> Any:
    enriched = tx.merge_asof(merchants, by="merchant_id")  # the category as of each transaction
    return enriched[enriched.status == "failed"].groupby("category").window(wspec).count()


@rp.transformation
def avg_amount(tx: Transactions, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("cc_num").amt.window(wspec).mean()


failed_1d = failed_by_category(window=rp.sliding("1d"))
avg_30d = avg_amount(window=rp.sliding("30d"))
amt_vs_avg = rp.derived("amt_vs_avg_30d", Scoring.amt / avg_30d)
FEATURES = [failed_1d, avg_30d, amt_vs_avg]

MERCHANTS = [
    (10, "grocery", T0 - 10 * DAY),
    (10, "travel", T0 + 2 * DAY),  # merchant 10 becomes a travel merchant
    (20, "travel", T0 - 5 * DAY),
    (30, "grocery", T0 - DAY),
]
# (cc_num, merchant_id, amt, status, ts) and, by hand: the category as of then, the
# failed count of that category in (t - 1d, t], the card's mean in (t - 30d, t], amt / mean.
TRANSACTIONS = [
    ((1, 10, 50.0, "ok", T0 + DAY), "grocery", 0, 50.0, 1.0),
    ((1, 10, 20.0, "failed", T0 + DAY + HOUR), "grocery", 1, 35.0, 20 / 35),
    ((2, 30, 100.0, "failed", T0 + DAY + 2 * HOUR), "grocery", 2, 100.0, 1.0),
    ((1, 20, 80.0, "failed", T0 + DAY + 3 * HOUR), "travel", 1, 50.0, 1.6),
    ((2, 10, 40.0, "failed", T0 + 2 * DAY + HOUR), "travel", 2, 70.0, 40 / 70),
    ((1, 10, 10.0, "ok", T0 + 2 * DAY + 2 * HOUR), "travel", 2, 40.0, 0.25),
    ((3, 30, 30.0, "failed", T0 + 2 * DAY + 3 * HOUR), "grocery", 1, 30.0, 1.0),
    ((2, 20, 60.0, "ok", T0 + 40 * DAY), "travel", 0, 60.0, 1.0),  # card 2's others are > 30 days old
]


def tables() -> dict[str, pa.Table]:
    return {
        "Transactions": pa.Table.from_pylist(
            [dict(zip(("cc_num", "merchant_id", "amt", "status", "ts"), t)) for t, *_ in TRANSACTIONS],
            schema=Transactions.to_arrow_schema(),
        ),
        "Merchants": pa.Table.from_pylist(
            [dict(zip(("merchant_id", "category", "updated_at"), m)) for m in MERCHANTS],
            schema=Merchants.to_arrow_schema(),
        ),
    }


def run(engine: str, **options: Any) -> dict[str, pa.Table]:
    return rp.execute_all(rp.optimize(rp.compile(FEATURES)), engine, tables(), **options)


def _by_time(table: pa.Table) -> dict[dt.datetime, dict[str, Any]]:
    return {r["ts"]: r for r in table.to_pylist()}


def test_the_plan_has_one_output_per_row_set_and_the_derived_feature_beside_its_input() -> None:
    plan = rp.compile(FEATURES)
    assert plan.output_names == ("Transactions_Merchants", "Transactions")
    assert plan.output("Transactions_Merchants").schema.names == (
        "cc_num", "merchant_id", "amt", "status", "ts", "category", "updated_at", "failed_by_category_1d",
    )
    assert plan.output("Transactions").schema.names == (
        "cc_num", "merchant_id", "amt", "status", "ts", "avg_amount_30d", "amt_vs_avg_30d",
    )


def test_duckdb_gives_the_values_worked_out_by_hand() -> None:
    out = run("duckdb")
    own, enriched = _by_time(out["Transactions"]), _by_time(out["Transactions_Merchants"])
    assert len(own) == len(enriched) == len(TRANSACTIONS)
    for (tx, category, failed, mean, ratio) in TRANSACTIONS:
        ts = tx[4]
        assert enriched[ts]["category"] == category, ts
        assert enriched[ts]["failed_by_category_1d"] == failed, ts
        assert own[ts]["avg_amount_30d"] == pytest.approx(mean), ts
        assert own[ts]["amt_vs_avg_30d"] == pytest.approx(ratio), ts
    # Merchant 10 changed category between card 1's transactions at day 1 and day 2:
    # the earlier one carries the old category, as of its own time.
    assert enriched[T0 + DAY + HOUR]["category"] == "grocery"
    assert enriched[T0 + 2 * DAY + 2 * HOUR]["category"] == "travel"
    assert enriched[T0 + 2 * DAY + 2 * HOUR]["updated_at"] == T0 + 2 * DAY


@pytest.mark.parametrize("engine", ["reference", "spark", "flink"])
def test_every_engine_returns_duckdbs_rows(engine: str, request: pytest.FixtureRequest) -> None:
    options: dict[str, Any] = {}
    if engine == "spark":
        options["session"] = request.getfixturevalue("spark")
    elif engine == "flink":
        pytest.importorskip("pyflink")
        options["mode"] = "batch"
    expected = run("duckdb")
    got = run(engine, **options)
    diffs = differences(expected, got)
    assert not diffs, f"{engine} disagrees with duckdb:\n" + "\n".join(diffs)


def spine() -> pa.Table:
    """Scoring requests: the card, the merchant's category at scoring time, the time, the
    amount to score, and the label."""
    rows = [
        (1, "grocery", T0 + 2 * DAY + 2 * HOUR, 10.0, 0),  # at card 1's day-2 transaction
        (2, "travel", T0 + 2 * DAY + HOUR, 40.0, 1),  # at card 2's day-2 transaction
        (9, None, T0 + 3 * DAY, 5.0, 0),  # a card without history, no category
        (1, "travel", T0, 7.0, 0),  # before any transaction
    ]
    return pa.Table.from_pylist(
        [dict(zip(("cc_num", "category", "ts", "amt", "label"), r)) for r in rows],
        schema=pa.schema([("cc_num", pa.int64()), ("category", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
                          ("amt", pa.float64()), ("label", pa.int64())]),
    )


def test_training_data_on_duckdb_is_point_in_time_correct() -> None:
    train = rp.pitc_join_features(spine(), FEATURES, tables(), engine="duckdb")
    assert train.column_names == ["cc_num", "category", "ts", "amt", "label",
                                  "failed_by_category_1d", "avg_amount_30d", "amt_vs_avg_30d"]
    rows = train.to_pylist()
    assert [r["label"] for r in rows] == [1 if i == 1 else 0 for i in range(4)]  # the spine, row for row
    # The events at exactly the inference time are not counted (they are what is scored):
    # card 1 before day 2, 02:00 had 50, 20 and 80 (mean 50), so 10 / 50; grocery's failed
    # transactions in [t - 1d, t): card 2's at exactly t - 1d (day 1, 02:00) only.
    assert (rows[0]["failed_by_category_1d"], rows[0]["avg_amount_30d"]) == (1, 50.0)
    assert rows[0]["amt_vs_avg_30d"] == pytest.approx(0.2)
    # Card 2 before day 2, 01:00: only its 100; travel's failed: card 1's at day 1, 03:00.
    assert (rows[1]["failed_by_category_1d"], rows[1]["avg_amount_30d"]) == (1, 100.0)
    assert rows[1]["amt_vs_avg_30d"] == pytest.approx(0.4)
    # No history: no mean, so no ratio; a NULL category is no key: NULL, not 0.
    assert (rows[2]["failed_by_category_1d"], rows[2]["avg_amount_30d"], rows[2]["amt_vs_avg_30d"]) == (None, None, None)
    # Before every transaction: a count of 0, no mean.
    assert (rows[3]["failed_by_category_1d"], rows[3]["avg_amount_30d"], rows[3]["amt_vs_avg_30d"]) == (0, None, None)
