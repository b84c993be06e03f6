"""Tiles for long sliding windows on DuckDB: when do they pay?

Features {sum, count} of an amount over a sliding window by card, on 5M events over
60 days, with dense partitions (50 cards: 100k events each) and sparse ones (100k
cards: 50 each). In each shape, relplan's plan computing the windows directly
(rules on, no statistics: the baseline) against the plan the optimizer gives with
measured statistics: tiles where a frame holds many rows (dense, 30 days: about 50k
rows), direct windows elsewhere (the rule refuses; the ratio shows asking is free).
To see tiles where the rule refuses them, ``RELPLAN_BENCH_FORCE_TILES=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

import relplan as rp
from bench.results import record
from relplan.demo import Transactions

HOUR_US = 3_600_000_000


@rp.transformation
def card_spend(tx: Transactions, wspec: rp.WindowSpec, agg: str = "sum"):
    by_card = tx.groupby("cc_num")
    return by_card.window(wspec).count() if agg == "count" else by_card["amt"].window(wspec).sum()


def features(window: str) -> list[rp.Feature]:
    return [card_spend(window=rp.sliding(window), agg=a, name=f"card_{a}_{window}") for a in ("sum", "count")]


def events(rows: int, cards: int, seed: int = 5) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000_000
    us = np.sort(rng.integers(start, start + 60 * 24 * HOUR_US, rows))
    return pa.table({
        "cc_num": pa.array(rng.integers(0, cards, rows), pa.int64()),
        "merchant": pa.array(np.char.add("m", (rng.integers(0, 1000, rows)).astype(str))),
        "amt": pa.array(np.round(rng.gamma(2.0, 30.0, rows), 2)),
        "status": pa.array(np.where(rng.random(rows) < 0.05, "failed", "ok")),
        "account_id": pa.array(rng.integers(0, 1000, rows), pa.int64()),
        "ts": pa.array(us, pa.timestamp("us", tz="UTC")),
    })


SHAPES = {"dense": 50, "sparse": 100_000}
FORCE = os.environ.get("RELPLAN_BENCH_FORCE_TILES") == "1"


@pytest.fixture(scope="module", params=sorted(SHAPES))
def shape(request):
    table = events(5_000_000, SHAPES[request.param])
    return request.param, {"Transactions": table}, rp.measure_statistics({"Transactions": table})


@pytest.mark.parametrize("window", ["30d", "1d"])
@pytest.mark.parametrize("with_statistics", [False, True], ids=["direct", "optimizer-choice"])
def test_tiles(benchmark, shape, window, with_statistics):
    name, tables, stats = shape
    config = rp.OptimizerConfig(tile_min_rows_per_frame=0 if FORCE else 20_000)
    plan = rp.optimize(rp.compile(features(window)), config, statistics=stats if with_statistics else None)
    tiled = "tiles=" in plan.explain()
    assert tiled == (with_statistics and (FORCE or (name, window) == ("dense", "30d")))
    # A warm-up round: the first query of a run also pays for DuckDB's and the OS's caches.
    out = benchmark.pedantic(lambda: rp.execute(plan, engine="duckdb", tables=tables), rounds=2, iterations=1, warmup_rounds=1)
    assert out.num_rows == 5_000_000
    label = "baseline" if not with_statistics else ("tiles" if tiled else "optimizer refused tiles")
    record(f"5M events, {name}, {{sum,count}} {window}", label, benchmark)
