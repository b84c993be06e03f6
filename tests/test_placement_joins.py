"""Placement of features over joins: each feature placed on its own, with the joins'
state and delays in its estimates (rules/cardinality.py, rules/placement.py)."""

from __future__ import annotations

from typing import Any

import pytest

import relplan as rp


class PTx(rp.Source):
    cc_num: rp.Int64
    merchant_id: rp.Int64
    amt: rp.Float64
    ts: rp.Timestamp = rp.event_time()


class PMerchants(rp.Source):
    merchant_id: rp.Int64
    category: rp.String
    valid_from: rp.Timestamp = rp.event_time()


class PRegions(rp.Source):
    merchant_id: rp.Int64
    region: rp.String


class PLogins(rp.Source):
    cc_num: rp.Int64
    device: rp.String
    ts: rp.Timestamp = rp.event_time()


@rp.transformation
def spend_per_category(tx: PTx, m: PMerchants, wspec: rp.WindowSpec) -> Any:
    return tx.merge_asof(m, by="merchant_id").groupby("category")["amt"].window(wspec).sum()


@rp.transformation
def spend_per_region(tx: PTx, r: PRegions, wspec: rp.WindowSpec) -> Any:
    return tx.merge(r, on="merchant_id", how="left").groupby("region")["amt"].window(wspec).sum()


@rp.transformation
def devices_before(tx: PTx, lg: PLogins, wspec: rp.WindowSpec) -> Any:
    return tx.merge(lg, on="cc_num", within="10m", how="left").groupby("cc_num")["device"].window(wspec).count_distinct()


@rp.transformation
def card_spend(tx: PTx, wspec: rp.WindowSpec) -> Any:
    return tx.groupby("cc_num")["amt"].window(wspec).sum()


STATS = rp.Statistics({
    "PTx": rp.SourceStats(rows=1_000_000, rate=100.0, distinct={"cc_num": 10_000, "merchant_id": 1_000}, lateness={0.99: "30s", 1.0: "2m"}),
    "PMerchants": rp.SourceStats(rows=5_000, rate=0.01, distinct={"merchant_id": 1_000}),
    "PRegions": rp.SourceStats(rows=1_000, distinct={"merchant_id": 1_000}),
    "PLogins": rp.SourceStats(rows=100_000, rate=10.0, distinct={"cc_num": 10_000}),
})
FEATURES = [
    spend_per_category(window=rp.sliding("1h")),
    spend_per_region(window=rp.sliding("1h")),
    devices_before(window=rp.sliding("1h")),
    card_spend(window=rp.sliding("1h")),
]


def test_each_join_feature_is_placed_on_its_own_with_known_state() -> None:
    placement = rp.optimize(rp.compile(FEATURES), statistics=STATS, knobs=rp.Knobs(priority="latency")).placement
    assert placement is not None
    assert [f.feature for f in placement.features] == [f.name for f in FEATURES]
    for f in placement.features:
        streaming = {a.name: a for a in f.alternatives}["streaming"]
        assert streaming.refused is None, (f.feature, streaming.refused)
        assert streaming.state is not None and streaming.state > 0, f.feature


def test_a_lookup_table_without_event_time_needs_no_rate_and_is_held_whole() -> None:
    placement = rp.optimize(rp.compile([FEATURES[1]]), statistics=STATS, knobs=rp.Knobs()).placement
    assert placement is not None
    (f,) = placement.features
    batch = {a.name: a for a in f.alternatives}["batch"]
    assert batch.compute is not None  # the table adds no event rate: the batch run is estimated


def test_an_interval_join_holds_streaming_values_back_by_its_wider_bound() -> None:
    placement = rp.optimize(rp.compile(FEATURES), statistics=STATS, knobs=rp.Knobs(priority="latency")).placement
    assert placement is not None
    joined = {a.name: a for a in placement.of(FEATURES[2].name).alternatives}["streaming"]
    plain = {a.name: a for a in placement.of(FEATURES[3].name).alternatives}["streaming"]
    assert joined.latency is not None and plain.latency is not None
    assert abs((joined.latency - plain.latency) - 600.0) < 1e-6  # 10 minutes
    assert any("interval join holds values back by 10m" in n for n in joined.notes)
    asof = {a.name: a for a in placement.of(FEATURES[0].name).alternatives}["streaming"]
    assert any("waits for the dimension's watermark" in n for n in asof.notes)


def test_the_asof_join_state_is_the_dimensions_newest_value_per_key() -> None:
    from relplan.ir.graph import walk
    from relplan.ir.nodes import AsOfJoin
    from relplan.rules.cardinality import estimate

    plan = rp.compile([FEATURES[0]])
    est = estimate(plan.outputs, STATS)
    (asof,) = [n for n in walk(plan.outputs) if isinstance(n, AsOfJoin)]
    assert est[asof].state_rows == 1_000  # one row per merchant


def test_explain_with_statistics_shows_each_joins_estimates() -> None:
    text = rp.optimize(rp.compile(FEATURES)).explain(statistics=STATS)
    lines = {line.strip().split(" ")[0] + (" lookup" if " lookup" in line else " within" if " within " in line else ""): line
             for line in text.splitlines() if line.strip().startswith(("AsOfJoin", "Join"))}
    assert set(lines) == {"AsOfJoin", "Join lookup", "Join within"}
    for line in lines.values():
        assert "[rows ≈ " in line and "duckdb ≈ " in line and "stream state ≈ " in line, line
    assert "stream state ≈ 80KB" in lines["AsOfJoin"]  # one row per merchant (1,000 of 80 bytes)
    assert text.splitlines()[-1].startswith("estimated: a duckdb run ≈ ")
    with pytest.raises(rp.RelplanError, match="takes an rp.Statistics"):
        rp.compile(FEATURES).explain(statistics={"PTx": 1})  # type: ignore[arg-type]
