"""DuckDB connections for runs without ``connection=``: a fresh cursor per call of one
in-memory database per process (and per ``threads=`` setting), opened once.

Why this shape (measured, bench/test_execute_bench.py):
- ``duckdb.connect()`` costs tens of ms, most of a small run; a cursor of an open
  database costs microseconds, no more than reusing one cursor per thread.
- A cursor is a connection of its own: the inputs a call registers (temporary views)
  are visible to it alone and gone when it is closed, so nothing registered for one
  call can be read by the next, or by a call running at the same time in another
  thread (a DuckDB connection must not be used by two threads at once; cursors may).
- ``SET threads`` is a setting of the database, not of a cursor: a call with
  ``threads=`` gets a database of its own kept for that setting, so the setting never
  reaches a call that did not ask for it.
- Replacement scans are off: a name no call registered is not found, never read from
  a Python variable that happens to be named like it.
- A database opened before ``os.fork()`` is not used in the child (DuckDB's worker
  threads do not survive a fork): databases are kept per process id.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# (process id, threads setting or None) -> an open in-memory database.
_DATABASES: dict[tuple[int, int | None], Any] = {}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock at the fork: the child's copy
    # would never be released. The parent's databases stay referenced (closing them in
    # the child could wait on worker threads that are not there) and are never used.
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _database(threads: int | None) -> Any:
    key = (os.getpid(), threads)
    db = _DATABASES.get(key)
    if db is None:
        with _LOCK:
            db = _DATABASES.get(key)
            if db is None:
                import duckdb

                db = duckdb.connect()
                # A relplan query reads only the tables registered for it: DuckDB's
                # replacement scans (a Python variable of the caller named like a table)
                # are off for this database and its cursors.
                db.execute("SET GLOBAL python_enable_replacements = false")
                if threads is not None:
                    db.execute(f"SET threads = {threads}")
                _DATABASES[key] = db
    return db


@contextmanager
def call_cursor(threads: int | None = None) -> Iterator[Any]:
    """A connection for one call, closed (with all it registered) when the call ends."""
    cursor = _database(threads).cursor()
    try:
        yield cursor
    finally:
        cursor.close()
