"""The storage under an online store: named records of fields holding bytes (a Redis hash).

Everything the store means (tiles, partials, edges, metadata) is in ``store.py``;
a storage only keeps records and offers three operations, so that SQLite and
Redis pass the same tests by construction:

- ``read``: many records' fields in one round trip (the serving path);
- ``replace``: drop every record under some prefixes and write records in bulk
  (materialize: idempotent, since it replaces);
- ``update``: read some fields, compute writes from them, write them, atomically:
  nothing is written if the computation fails or another writer got in between.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence

from relplan.ir.errors import RelplanError

Records = Mapping[str, Mapping[str, bytes]]
Reads = Sequence[tuple[str, Sequence[str] | None]]  # record name, its fields (None: all)


class StoreError(RelplanError):
    """The online store's storage failed or cannot be reached (the message names its URL)."""


class Storage(ABC):
    url: str

    @abstractmethod
    def read(self, reads: Reads) -> list[dict[str, bytes]]:
        """Per (record, fields): the fields that exist, by name."""

    @abstractmethod
    def replace(self, drop_prefixes: Iterable[str], records: Records) -> None:
        """Delete the records whose names start with any of ``drop_prefixes``, then write ``records``."""

    @abstractmethod
    def update(self, reads: Reads, compute: Callable[[list[dict[str, bytes]]], Records | None]) -> bool:
        """Atomically: read, ``compute`` the writes (None: write nothing), write. False if nothing was written."""

    @abstractmethod
    def close(self) -> None: ...


class SqliteStorage(Storage):
    """Records as rows (record, field, value) of one table, in a file or in memory.

    One connection per thread (sqlite3 connections are not shared across threads);
    writes take the database's write lock first (BEGIN IMMEDIATE), so concurrent
    writers in other threads or processes wait their turn instead of failing."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS rp_records (record TEXT NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL, "
        "PRIMARY KEY (record, field)) WITHOUT ROWID"
    )

    def __init__(self, url: str, path: str | None) -> None:
        self.url = url
        self._path = path
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        if path is None:
            # An in-memory database lives in its connection: one, shared, serialized by a lock.
            self._memory = self._connect(":memory:", check_same_thread=False)
            self._lock: threading.Lock | None = threading.Lock()
        else:
            self._lock = None
            self._con()

    def _connect(self, target: str, **kw: object) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(target, timeout=30, isolation_level=None, **kw)  # type: ignore[arg-type]
            if target != ":memory:":
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
            con.execute(self.SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the online store {self.url}: {e}") from None
        return con

    def _con(self) -> sqlite3.Connection:
        if self._memory is not None:
            return self._memory
        con = getattr(self._local, "con", None)
        if con is None:
            assert self._path is not None
            con = self._local.con = self._connect(self._path)
        return con

    def _locked(self) -> object:
        return self._lock if self._lock is not None else _NoLock()

    def _read(self, con: sqlite3.Connection, reads: Reads) -> list[dict[str, bytes]]:
        out = []
        for record, fields in reads:
            if fields is None:
                rows = con.execute("SELECT field, value FROM rp_records WHERE record = ?", (record,)).fetchall()
            elif not fields:
                rows = []
            else:
                marks = ",".join("?" * len(fields))
                rows = con.execute(
                    f"SELECT field, value FROM rp_records WHERE record = ? AND field IN ({marks})", (record, *fields)
                ).fetchall()
            out.append(dict(rows))
        return out

    def read(self, reads: Reads) -> list[dict[str, bytes]]:
        with self._locked():  # type: ignore[attr-defined]
            try:
                return self._read(self._con(), reads)
            except sqlite3.Error as e:
                raise StoreError(f"reading the online store {self.url} failed: {e}") from None

    @staticmethod
    def _write(con: sqlite3.Connection, records: Records) -> None:
        con.executemany(
            "INSERT OR REPLACE INTO rp_records (record, field, value) VALUES (?, ?, ?)",
            ((r, f, v) for r, fields in records.items() for f, v in fields.items()),
        )

    def replace(self, drop_prefixes: Iterable[str], records: Records) -> None:
        with self._locked():  # type: ignore[attr-defined]
            con = self._con()
            try:
                con.execute("BEGIN IMMEDIATE")
                for p in drop_prefixes:
                    # Names are ASCII: the records starting with p sort in [p, p + U+FFFF).
                    con.execute("DELETE FROM rp_records WHERE record >= ? AND record < ?", (p, p + "\uffff"))
                self._write(con, records)
                con.execute("COMMIT")
            except BaseException as e:
                con.execute("ROLLBACK") if con.in_transaction else None
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"writing the online store {self.url} failed: {e}") from None
                raise

    def update(self, reads: Reads, compute: Callable[[list[dict[str, bytes]]], Records | None]) -> bool:
        with self._locked():  # type: ignore[attr-defined]
            con = self._con()
            try:
                con.execute("BEGIN IMMEDIATE")
                writes = compute(self._read(con, reads))
                if writes is None:
                    con.execute("ROLLBACK")
                    return False
                self._write(con, writes)
                con.execute("COMMIT")
                return True
            except BaseException as e:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"writing the online store {self.url} failed: {e}") from None
                raise

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
