"""Test-run settings shared by every file.

In CI (``CI`` set) hypothesis draws its examples deterministically, so a run
is reproducible and the same examples pass here before they are submitted;
elsewhere each run draws new examples and keeps exploring.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")
