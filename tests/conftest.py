"""Test-run settings shared by every file.

In CI (``CI`` set) hypothesis draws its examples deterministically, so a run
is reproducible and the same examples pass here before they are submitted;
elsewhere each run draws new examples and keeps exploring.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")


@pytest.fixture(scope="session")
def spark() -> Any:
    """The one Spark session of the test run (a local one; it starts in 5-8 s)."""
    from relplan.backends.spark import local_session

    return local_session()
