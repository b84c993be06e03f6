"""Shared bench machinery: each suite records medians and a baseline; the summary
at the end of the run prints every comparison as a ratio."""

from __future__ import annotations

from typing import Any

import pytest

from bench.results import RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("relplan bench: ratios (median times, same run)")
    for comparison, timings in RESULTS.items():
        base = timings.get("baseline")
        for label, secs in timings.items():
            ratio = f"  {secs / base:6.2f}x baseline" if base and label != "baseline" else ""
            tr.write_line(f"{comparison:<42} {label:<28} {secs * 1000:10.2f} ms{ratio}")


def _pedantic_with_progress(benchmark: Any) -> Any:
    """pytest-benchmark's ``pedantic`` of ``benchmark``, showing a bar over its rounds
    (warm-up included) where relplan's progress is on: a terminal (``./dev bench`` runs
    with -s), or RELPLAN_PROGRESS=1. The bar counts in ``setup`` (run before the user's),
    outside the timed call; relplan's own bars inside the rounds are off meanwhile, so
    that the rounds time the work alone."""
    run = benchmark.pedantic

    def pedantic(target: Any, args: Any = (), kwargs: Any = None, setup: Any = None, rounds: int = 1,
                 warmup_rounds: int = 0, iterations: int = 1) -> Any:
        from relplan.compiler import progress

        if iterations != 1 or not progress.progress_enabled():
            # pytest-benchmark takes no setup with iterations > 1: no count, no bar.
            return run(target, args=args, kwargs=kwargs, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds,
                       iterations=iterations)
        work = progress.task(benchmark.name, total=rounds + warmup_rounds, unit="round", progress=True, leave=False)

        def counted() -> Any:
            work.update()
            return setup() if setup is not None else None

        saved = progress.enabled
        progress.set_progress(False)  # no bars of relplan's inside the timed rounds
        try:
            with work:
                return run(target, args=args, kwargs=kwargs, setup=counted, rounds=rounds,
                           warmup_rounds=warmup_rounds, iterations=iterations)
        finally:
            progress.set_progress(saved)

    return pedantic


@pytest.fixture
def benchmark(benchmark: Any) -> Any:
    """pytest-benchmark's fixture, its ``pedantic`` with a bar over the rounds on a terminal."""
    benchmark.pedantic = _pedantic_with_progress(benchmark)
    return benchmark


@pytest.fixture(scope="session")
def transactions_1m():
    from relplan.demo import make_transactions

    return make_transactions(1_000_000, seed=7)


# The online store's benches run on a real redis-server of this run, the tests' fixture:
# started on a free localhost port, saving nothing, stopped at the end of the run.
from relplan.tests.conftest import redis_url  # noqa: E402,F401
