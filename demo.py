"""The demo: the talk's credit-card features on a seeded 1M-row data set, on DuckDB.

    python -m relplan.demo [--rows 1000000] [--seed 7]

Prints the plan (explain), the DuckDB SQL, a sample of the results and timings;
then training data: features as of each of 100k scored transactions (a spine).
The transactions are also enriched with a small merchants dimension as of each one's
time (merge_asof), and one feature is derived from two others (rp.derived).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute

import relplan as rp


class Transactions(rp.Source):
    cc_num: rp.Int64 = rp.key()
    merchant: rp.String
    amt: rp.Float64
    status: rp.String
    account_id: rp.Int64 = rp.key()
    ts: rp.Timestamp = rp.event_time(lateness="5m")


@rp.transformation
def average_transaction_amount_by_merchant(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby(["cc_num", "merchant"])["amt"].window(wspec).mean()


@rp.transformation
def failed_transaction_count(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx[tx.status == "failed"].groupby("account_id").window(wspec).count()


@rp.transformation
def transaction_count(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby("cc_num").window(wspec).count()


@rp.transformation
def max_transaction_amount(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby("cc_num")["amt"].window(wspec).max()


@rp.transformation
def distinct_merchants(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx.groupby("cc_num")["merchant"].window(wspec).nunique()


@rp.transformation
def large_spend(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    big = tx[(tx.amt > 500) & tx.status.isin(["ok", "declined"])]
    return big.groupby("account_id").window(wspec).agg(total=("amt", "sum"), n="count")


@rp.transformation
def hourly_failures(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    return tx[tx.status != "ok"].groupby("account_id").window(wspec).count()


class Merchants(rp.Source):
    """The merchants dimension: a merchant's risk score and category, one row per version."""

    merchant: rp.String = rp.key()
    risk: rp.Float64
    category: rp.String
    updated_at: rp.Timestamp = rp.event_time()


@rp.transformation
def risky_merchant_spend(tx: Transactions, wspec: rp.WindowSpec) -> rp.FeatureBody:
    # Each transaction with its merchant's row as of the transaction's time: a later
    # risk score (the merchant flagged afterwards) never reaches an earlier transaction.
    enriched = tx.merge_asof(Merchants, by="merchant")
    return enriched[enriched.risk > 0.5].groupby("account_id")["amt"].window(wspec).sum()


def enrichment_features(features: list[rp.Feature]) -> list[rp.Feature | rp.DerivedFeature]:
    """A feature over the transactions joined with the merchants dimension as of each
    one's time, and one derived from two of ``features`` (demo_features(): a Project
    over their rows, no extra pass over the events)."""
    by_name = {f.name: f for f in features}
    avg_1h = by_name["average_transaction_amount_by_merchant_1h"]
    max_7d = by_name["max_transaction_amount_7d"]
    return [
        # Per account and day: one row per window, not another row per transaction (the
        # demo's run time stays about what it was).
        risky_merchant_spend(window=rp.tumbling("1d")),
        rp.derived("merchant_avg_to_max_7d", avg_1h.value / max_7d.value),
    ]


def demo_features() -> list[rp.Feature]:
    """The per-event features the docs, the bench and the tests share."""
    return [
        average_transaction_amount_by_merchant(window=rp.sliding("1h")),
        failed_transaction_count(window=rp.sliding("1d")),
        transaction_count(window=rp.sliding("1h")),
        max_transaction_amount(window=rp.sliding("7d")),
        distinct_merchants(window=rp.sliding("1d")),
        large_spend(window=rp.sliding("7d")),
    ]


def make_transactions(rows: int = 1_000_000, seed: int = 7, days: int = 30) -> pa.Table:
    """A realistic, seeded card-transaction log: skewed cards and merchants, a daily
    rhythm, lognormal amounts, 3% failures, and a few nulls as real logs have."""
    rng = np.random.default_rng(seed)
    n_cards = max(rows // 50, 10)
    cc_pool = rng.integers(4_000_000_000_000_000, 4_999_999_999_999_999, n_cards)
    # Card activity is skewed (lognormal weights), merchant popularity follows Zipf.
    activity = rng.lognormal(0.0, 1.0, n_cards)
    card = rng.choice(n_cards, rows, p=activity / activity.sum())
    cc = cc_pool[card]
    account = (card // 2).astype(np.int64) + 10_000  # two cards per account
    merchants = np.array([f"merchant_{i:04d}" for i in range(2_000)], dtype=object)
    popularity = 1.0 / np.arange(1, len(merchants) + 1) ** 1.1
    merchant = merchants[rng.choice(len(merchants), rows, p=popularity / popularity.sum())]
    # Events cluster in the day (a sine-shaped rhythm) and are sorted by time.
    day = rng.integers(0, days, rows)
    hour = (rng.beta(2.5, 2.0, rows) * 24 * 3600 * 1_000_000).astype(np.int64)
    start = np.datetime64("2024-03-01T00:00:00", "us").astype(np.int64)
    ts = np.sort(start + day * 86_400_000_000 + hour)
    amt = np.round(rng.lognormal(3.5, 1.2, rows), 2)
    status = rng.choice(np.array(["ok", "failed", "declined"], dtype=object), rows, p=[0.95, 0.03, 0.02])
    amt_mask = rng.random(rows) < 0.001  # a few amounts missing
    return pa.table(
        {
            "cc_num": pa.array(cc, pa.int64()),
            "merchant": pa.array(merchant, pa.string()),
            "amt": pa.array(amt, pa.float64(), mask=amt_mask),
            "status": pa.array(status, pa.string()),
            "account_id": pa.array(account, pa.int64()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        }
    )


def make_merchants(seed: int = 7, days: int = 30, versions: int = 4) -> pa.Table:
    """The merchants of make_transactions, each with a first version before the log starts
    and about ``versions`` more at random times in it: a risk score that drifts (a few
    merchants become risky) and a category that rarely changes."""
    rng = np.random.default_rng(seed + 2)
    n = 2_000
    names = np.array([f"merchant_{i:04d}" for i in range(n)], dtype=object)
    start = np.datetime64("2024-03-01T00:00:00", "us").astype(np.int64)
    first = start - rng.integers(1, 365, n) * 86_400_000_000
    later = rng.poisson(versions, n)
    who = np.concatenate([np.arange(n), np.repeat(np.arange(n), later)])
    at = np.concatenate([first, start + rng.integers(0, days * 86_400_000_000, int(later.sum()))])
    base = rng.beta(2.0, 5.0, n)  # most merchants are low risk, one in ten above 0.5
    risk = np.clip(base[who] + rng.normal(0.0, 0.1, len(who)), 0.0, 1.0)
    categories = np.array(["grocery", "travel", "fuel", "online", "restaurants", "electronics"], dtype=object)
    category = categories[(who * 7 + (rng.random(len(who)) < 0.05)) % len(categories)]
    order = np.argsort(at, kind="stable")
    return pa.table({
        "merchant": pa.array(names[who][order], pa.string()),
        "risk": pa.array(np.round(risk[order], 3), pa.float64()),
        "category": pa.array(category[order], pa.string()),
        "updated_at": pa.array(at[order], pa.timestamp("us", tz="UTC")),
    })


def make_spine(transactions: pa.Table, seed: int = 7, rows: int = 100_000) -> pa.Table:
    """Transactions to score (a seeded sample, each with its keys and time) and a label:
    the training spine. Their own events are in the log: pitc_join_features leaves
    events at exactly the inference time out, so no feature sees the one it scores."""
    rng = np.random.default_rng(seed + 1)
    pick = np.sort(rng.choice(transactions.num_rows, min(rows, transactions.num_rows), replace=False))
    scored = transactions.take(pa.array(pick))
    label = pa.compute.equal(scored.column("status"), "failed")
    return pa.table({
        "cc_num": scored.column("cc_num"),
        "account_id": scored.column("account_id"),
        "ts": scored.column("ts"),
        "is_failed": label,
    })


def serve_one_card(table: pa.Table, features: list[rp.Feature], seed: int = 7) -> str:
    """Backfill an online store with all but the log's last hour, push that hour as a stream
    would (micro-batches, out of order), and serve one card now: the values equal training
    data's for that card at that time (checked here, as the tests check every feature kind)."""
    ts = table.column("ts")
    newest = pa.compute.max(ts).as_py()
    cut = newest - dt.timedelta(hours=1)
    recent = table.filter(pa.compute.greater_equal(ts, pa.scalar(cut, ts.type)))
    now = newest + dt.timedelta(seconds=1)
    with rp.online_store("sqlite://", clock=lambda: now) as store:
        t0 = time.perf_counter()
        done = store.materialize(features, tables={"Transactions": table.filter(pa.compute.less(ts, pa.scalar(cut, ts.type)))}, until=cut)
        t_mat = time.perf_counter() - t0
        rng = np.random.default_rng(seed)
        order = pa.array(rng.permutation(recent.num_rows))
        t0 = time.perf_counter()
        for i, start in enumerate(range(0, recent.num_rows, 500)):
            store.push(Transactions, recent.take(order[start:start + 500]), batch_id=f"last-hour/{i}")
        t_push = time.perf_counter() - t0
        card, account = recent.column("cc_num")[0].as_py(), recent.column("account_id")[0].as_py()
        request = store.prepare(features)
        t0 = time.perf_counter()
        served = request.get([{"cc_num": card, "account_id": account}])  # at=None: the store's clock, now
        t_get = time.perf_counter() - t0
    trained = rp.pitc_join_features(
        pa.table({"cc_num": [card], "account_id": [account], "ts": pa.array([now], pa.timestamp("us"))}),
        features, tables={"Transactions": table},
    )
    names = [c for f in features for c in f.columns]
    print(f"card {card} (account {account}) at {now:%Y-%m-%d %H:%M:%S}: served from the store / training data for the same time")
    for name in names:
        print(f"  {name:<28} {served.column(name)[0].as_py()!s:>16} / {trained.column(name)[0].as_py()!s}")
    same = all(served.column(n).to_pylist() == trained.column(n).to_pylist() for n in names)
    print(f"served == training data: {same}; {done['records']:,} keys materialized, "
          f"{recent.num_rows:,} events of the last hour pushed in batches of 500")
    print()
    return f"{t_mat:.2f} s, {t_push:.2f} s ({recent.num_rows:,} events), {t_get * 1000:.2f} ms"


def with_arrival_times(table: pa.Table, seed: int = 7) -> pa.Table:
    """The log with when each event arrived: most within 100 ms of their event time,
    one in ten after a delay of about 20 s (a phone offline), a few after minutes."""
    rng = np.random.default_rng(seed + 1)
    n = table.num_rows
    delay_us = rng.integers(0, 100_000, n)
    delayed = rng.random(n) < 0.1
    delay_us[delayed] += rng.exponential(20e6, int(delayed.sum())).astype(np.int64)
    ts = table.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    arrived = pa.array(ts + delay_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return table.append_column("arrived_at", arrived)


def sample(table: pa.Table) -> str:
    """A few rows as aligned text (the demo needs no pandas: it installs relplan's core only)."""
    def show(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, dt.datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        return "NULL" if v is None else str(v)

    columns = [[name] + [show(v) for v in table.column(name).to_pylist()] for name in table.column_names]
    widths = [max(len(x) for x in col) for col in columns]
    rows = zip(*columns)
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    base = demo_features()
    features: list[rp.Feature | rp.DerivedFeature] = [
        *base, hourly_failures(window=rp.tumbling("1h")), *enrichment_features(base)
    ]
    t0 = time.perf_counter()
    compiled = rp.compile(features)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = rp.optimize(compiled)
    t_optimize = time.perf_counter() - t0

    print("== explain() of the compiled plan " + "=" * 39)
    print(compiled.explain())
    print()
    print("== explain() of the optimized plan, with the optimizer's trace " + "=" * 10)
    print(plan.explain())
    print("-- trace:")
    print(plan.explain_trace())
    print()
    per_event = plan.output("Transactions")
    print("== DuckDB SQL of the per-event output " + "=" * 36)
    print(rp.Plan((per_event,), plan.features).to_sql("duckdb"))
    print()

    # The data after the plans: what relplan makes of the features shows at once.
    t0 = time.perf_counter()
    table = make_transactions(args.rows, args.seed)
    merchants = make_merchants(args.seed)
    t_gen = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = rp.execute_all(plan, engine="duckdb", tables={"Transactions": table, "Merchants": merchants})
    t_exec = time.perf_counter() - t0

    for name, result in results.items():
        print(f"== {name}: {result.num_rows:,} rows; a sample " + "=" * 20)
        print(sample(result.slice(result.num_rows // 2, 5)))
        print()
    spine = make_spine(table, args.seed)
    training_features = [
        failed_transaction_count(window=rp.sliding("1d")),
        transaction_count(window=rp.sliding("1h")),
        max_transaction_amount(window=rp.sliding("7d")),
        rp.latest(Transactions, "merchant", by="cc_num", name="last_merchant"),
        rp.latest(Transactions, "amt", by="cc_num", ttl="1d", name="last_amt_1d"),
    ]
    tables = {"Transactions": table}
    print("== training data: explain() of the point-in-time plan " + "=" * 19)
    print(rp.pitc_plan(spine, training_features, tables=tables).explain())
    t0 = time.perf_counter()
    train = rp.pitc_join_features(spine, training_features, tables=tables, engine="duckdb")
    t_train = time.perf_counter() - t0
    print(f"== training data: {train.num_rows:,} spine rows; a sample " + "=" * 20)
    print(sample(train.slice(train.num_rows // 2, 5)))
    print()

    print("== placement: where each feature would run, fresh within 15 minutes, missing at most 0.1% " + "=" * 1)
    t0 = time.perf_counter()
    stats = rp.measure_statistics(
        {"Transactions": with_arrival_times(table, args.seed), "Merchants": merchants},
        arrival={"Transactions": "arrived_at"}, event_time={"Transactions": "ts", "Merchants": "updated_at"},
    )
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    placed = rp.optimize(compiled, statistics=stats, knobs=rp.Knobs(max_staleness="15m", max_missed=0.001))
    t_place = time.perf_counter() - t0
    assert placed.placement is not None
    lateness = ", ".join(f"{q:g}: {us / 1e6:g}s" for q, us in stats.of("Transactions").lateness)  # type: ignore[union-attr, misc]
    print(f"measured lateness quantiles (seconds): {lateness}")
    for f in placed.placement.features:
        print(f.lines()[0])
    print("-- the deployment's jobs:")
    print(placed.deployment().explain())
    print()

    print("== online serving: the embedded store (SQLite, in memory), one card " + "=" * 6)
    t_serve = serve_one_card(table, training_features, args.seed)

    n_feat = sum(len(f.columns) for f in features)
    print("== timings " + "=" * 62)
    print(f"generate {args.rows:,} transactions, {merchants.num_rows:,} merchant versions: {t_gen:8.3f} s")
    print(f"compile {len(features)} features:           {t_compile * 1000:8.2f} ms")
    print(f"optimize:                          {t_optimize * 1000:8.2f} ms")
    print(f"execute on DuckDB ({n_feat} columns):  {t_exec:8.3f} s  ({t_exec * 1000 / n_feat:.0f} ms per feature column)")
    print(f"training data, {spine.num_rows:,} rows x {len(training_features)} features: {t_train:8.3f} s")
    print(f"statistics with lateness, measured: {t_stats:8.3f} s")
    print(f"placement of {len(features)} features:          {t_place * 1000:8.2f} ms")
    print(f"online store: materialize, push the last hour, serve: {t_serve}")


if __name__ == "__main__":
    main()
