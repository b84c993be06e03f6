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


@pytest.fixture(scope="session")
def transactions_1m():
    from relplan.demo import make_transactions

    return make_transactions(1_000_000, seed=7)


# The online store's benches run on a real redis-server of this run, the tests' fixture:
# started on a free localhost port, saving nothing, stopped at the end of the run.
from relplan.tests.conftest import redis_url  # noqa: E402,F401
