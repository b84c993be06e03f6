"""The feature catalog (issue 17): plan after one change, name resolution, the plan's JSON round trip.

The workload is ``bench/test_compile_scaling_bench.py``'s: 1,000 features, 3 keys x
{count, sum, mean, max} x {plain, filtered on status} x sliding windows of 1h, 2h, ...
applied once to a catalog file in a temporary folder.

- ``plan``: ``cat.plan(definitions)`` of the 1,000 definitions with one window changed
  (what ``relplan plan`` does after an edit): the fingerprints of the definitions, the
  catalog's state read, every feature classified. Goal: < 200 ms. Baseline: the same
  plan with nothing changed; also with relplan's caches cleared before each round (a
  fresh ``relplan plan`` process has them empty).
- ``resolve``: ``cat.resolve`` of 50 names (goal: < 5 ms), on the Catalog object that
  resolved them before (the baseline: its parsed definitions are cached), on a fresh
  Catalog object per round (opened untimed: its definitions parsed from JSON), and
  opening that Catalog included (the cold cost a short-lived process pays).
- ``JSON round trip``: ``plan.to_json()`` then ``rp.Plan.from_json`` of the compiled
  1,000-feature plan, against compiling it (``rp.compile``, caches cleared: the
  baseline) in the same run; also with the compact ``to_json(canonical=True)``.

Benchmarks print figures and ratios; they assert what they computed, never speed.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import relplan as rp
from bench.results import RESULTS, record
from bench.test_compile_scaling_bench import changed_minutes, features
from relplan.catalog import Catalog, fingerprint

N = 1_000
N_RESOLVE = 50
GOAL_PLAN_S = 0.200
GOAL_RESOLVE_S = 0.005

PLAN = f"catalog plan, {N:,} features"
RESOLVE = f"catalog resolve, {N_RESOLVE} features"
ROUND_TRIP = f"plan JSON round trip, {N:,} features"

FIGURES: list[tuple[str, str]] = []  # (what, figure): printed at the end of the module


def _ms(s: float) -> str:
    return f"{s * 1000:.2f} ms"


def _figure(what: str, figure: str) -> None:
    FIGURES.append((what, figure))
    print(f"\n{what}: {figure}")


def _timing(benchmark, seconds: float) -> str:
    """The median, and the minimum (what a quiet machine approaches)."""
    if benchmark.stats is None:
        return "n/a (benchmarks disabled)"
    return f"median {_ms(seconds)}, min {_ms(benchmark.stats.stats.min)}"


def _goal(seconds: float, goal: float) -> str:
    if math.isnan(seconds):  # --benchmark-disable
        return ""
    return f" (goal < {_ms(goal)}: {'met' if seconds < goal else 'NOT met'})"


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    if FIGURES:
        width = max(len(w) for w, _ in FIGURES)
        print(f"\n== catalog figures ({N:,} features) " + "=" * 40)
        for what, figure in FIGURES:
            print(f"{what:<{width}}  {figure}")
        print(f"{'load average (1, 5, 15 min)':<{width}}  "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


def cold() -> None:
    rp.clear_caches()
    gc.collect()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Catalog]]:
    """The 1,000 features applied to a new catalog file (the apply timed once, as a figure)."""
    path = tmp_path_factory.mktemp("catalog") / "features.db"
    cat = Catalog(path)
    feats = features(N)
    t0 = time.perf_counter()
    applied = cat.apply(feats)
    seconds = time.perf_counter() - t0
    assert len(applied.by_category("added")) == N + 1  # and the source
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))  # with its -wal
    _figure(f"apply {N:,} features to a new catalog", f"{_ms(seconds)} (once); {size / 1e6:.1f} MB on disk")
    yield path, cat
    cat.close()


# -- plan after one change -----------------------------------------------------------------------


def test_plan_nothing_changed_baseline(benchmark, catalog):
    _, cat = catalog
    same = features(N)
    plan = benchmark.pedantic(lambda: cat.plan(same), rounds=10, iterations=1, warmup_rounds=1)
    assert not plan.has_changes
    record(PLAN, "baseline", benchmark)


def test_plan_one_feature_changed(benchmark, catalog):
    _, cat = catalog
    changed = features(N, changed=True)
    plan = benchmark.pedantic(lambda: cat.plan(changed), rounds=10, iterations=1, warmup_rounds=1)
    [c] = plan.breaking
    assert c.name == f"f{N // 2}" and f"{changed_minutes(N)}m" in c.reasons[0]
    seconds = record(PLAN, "one feature changed", benchmark)
    _figure("plan after one feature of 1,000 changed", _timing(benchmark, seconds) + _goal(seconds, GOAL_PLAN_S))

    t0 = time.perf_counter()
    for f in changed:
        fingerprint(f)
    _figure("  of which: fingerprints of the 1,000 definitions (warm, once)", _ms(time.perf_counter() - t0))


def test_plan_one_feature_changed_cold_caches(benchmark, catalog):
    _, cat = catalog
    changed = features(N, changed=True)
    plan = benchmark.pedantic(lambda: cat.plan(changed), setup=cold, rounds=5, iterations=1)
    assert len(plan.breaking) == 1
    seconds = record(PLAN, "one changed, caches cleared", benchmark)
    _figure("plan after one change, relplan's caches cleared", _timing(benchmark, seconds) + _goal(seconds, GOAL_PLAN_S))


# -- name resolution -----------------------------------------------------------------------------


def _names() -> list[str]:
    return [f"f{i}" for i in range(0, N, N // N_RESOLVE)][:N_RESOLVE]


def test_resolve_same_catalog_baseline(benchmark, catalog):
    _, cat = catalog
    names = _names()
    got = benchmark.pedantic(lambda: cat.resolve(names), rounds=200, iterations=1, warmup_rounds=5)
    assert [f.name for f in got] == names
    seconds = record(RESOLVE, "baseline", benchmark)
    _figure(f"resolve {N_RESOLVE} names, the same Catalog object", _timing(benchmark, seconds) + _goal(seconds, GOAL_RESOLVE_S))


def test_resolve_fresh_catalog(benchmark, catalog):
    path, _ = catalog
    names = _names()
    opened: list[Catalog] = []

    def fresh() -> tuple[tuple[Catalog], dict[str, object]]:
        while opened:
            opened.pop().close()
        opened.append(Catalog(path))
        return (opened[-1],), {}

    got = benchmark.pedantic(lambda c: c.resolve(names), setup=fresh, rounds=50, iterations=1)
    while opened:
        opened.pop().close()
    assert [f.name for f in got] == names
    seconds = record(RESOLVE, "fresh Catalog (opened untimed)", benchmark)
    _figure(f"resolve {N_RESOLVE} names, a fresh Catalog object", _timing(benchmark, seconds) + _goal(seconds, GOAL_RESOLVE_S))


def test_open_and_resolve(benchmark, catalog):
    path, _ = catalog
    names = _names()

    def open_and_resolve() -> list[rp.Feature]:
        with Catalog(path) as cat:
            return cat.resolve(names)

    got = benchmark.pedantic(open_and_resolve, rounds=50, iterations=1, warmup_rounds=1)
    assert [f.name for f in got] == names
    seconds = record(RESOLVE, "open Catalog + resolve", benchmark)
    _figure(f"open a Catalog + resolve {N_RESOLVE} names", _timing(benchmark, seconds))


# -- the compiled plan's JSON round trip ---------------------------------------------------------


@pytest.fixture(scope="module")
def compiled() -> rp.Plan:
    return rp.compile(features(N))


def test_compile_baseline(benchmark):
    feats = features(N)
    plan = benchmark.pedantic(rp.compile, args=(feats,), setup=cold, rounds=10, iterations=1)
    assert len(plan.features) == N
    seconds = record(ROUND_TRIP, "baseline", benchmark)
    _figure(f"rp.compile of {N:,} features (caches cleared)", _timing(benchmark, seconds))


def test_to_json(benchmark, compiled):
    text = benchmark.pedantic(compiled.to_json, setup=cold, rounds=10, iterations=1)
    record(ROUND_TRIP, "to_json", benchmark)
    _figure("plan JSON size", f"{len(text.encode()) / 1e6:.2f} MB ({len(text.encode()) / N:,.0f} bytes a feature)")


def test_from_json(benchmark, compiled):
    text = compiled.to_json()
    back = benchmark.pedantic(rp.Plan.from_json, args=(text,), setup=cold, rounds=10, iterations=1)
    assert back == compiled
    record(ROUND_TRIP, "from_json", benchmark)


def test_round_trip(benchmark, compiled):
    back = benchmark.pedantic(lambda: rp.Plan.from_json(compiled.to_json()), setup=cold, rounds=10, iterations=1)
    assert back == compiled and back.explain() == compiled.explain()
    seconds = record(ROUND_TRIP, "to_json + from_json", benchmark)
    base = RESULTS.get(ROUND_TRIP, {}).get("baseline")
    ratio = f", {seconds / base:.2f}x compiling it ({_ms(base)})" if base else ""
    _figure(f"JSON round trip of the compiled {N:,}-feature plan", _timing(benchmark, seconds) + ratio)


def test_round_trip_compact(benchmark, compiled):
    """The same with ``to_json(canonical=True)``: compact JSON, which Python's C encoder writes
    (an indented ``json.dumps`` runs the pure-Python encoder)."""
    back = benchmark.pedantic(lambda: rp.Plan.from_json(compiled.to_json(canonical=True)), setup=cold, rounds=10,
                              iterations=1)
    assert back == compiled
    seconds = record(ROUND_TRIP, "canonical to_json + from_json", benchmark)
    base = RESULTS.get(ROUND_TRIP, {}).get("baseline")
    ratio = f", {seconds / base:.2f}x compiling it" if base else ""
    _figure("  the same, to_json(canonical=True)", _timing(benchmark, seconds) + ratio)
