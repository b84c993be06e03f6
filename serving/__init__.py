"""Online serving: feature state in an online store (embedded SQLite, or a Redis server),
fed by materialize (backfill on a batch engine) and push (streaming updates), read by
get_online_features with the values training data has. See ``store.py``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from relplan.serving.consistency import ConsistencyReport, check_online_consistency
from relplan.serving.storage import StoreError
from relplan.serving.store import OnlineStore, PreparedRequest
from relplan.serving.streaming import feed_from_flink, streaming_jobs, with_online_store


def online_store(url: str = "sqlite://", **options: Any) -> OnlineStore:
    """Open an online store: ``sqlite://`` (in memory), ``sqlite:///path/features.db``
    (a file, created if absent) or ``redis://host:port/db`` (a running Redis server).

    ``clock``: a function returning the current time (for ``at=None``; tests inject one);
    ``log_requests``: keep what is served, for ``rp.check_online_consistency``;
    ``catalog``: an ``rp.Catalog`` that resolves features given by name ("name", "name@v2")."""
    if not isinstance(url, str):
        raise StoreError(f"rp.online_store() takes a URL like 'sqlite:///features.db' or 'redis://localhost:6379/0', got {url!r}")
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from relplan.serving.storage import SqliteStorage

        rest = url[len("sqlite://"):]
        if rest in ("", "/", "/:memory:"):
            storage: Any = SqliteStorage(url, None)
        else:
            storage = SqliteStorage(url, rest[1:] if rest.startswith("/") else rest)
    elif scheme in ("redis", "rediss", "unix"):
        from relplan.serving.redis_storage import RedisStorage

        storage = RedisStorage(url)
    else:
        raise StoreError(f"unknown online store URL {url!r}: use sqlite:///path/features.db, sqlite:// or redis://host:port/db")
    return OnlineStore(storage, **options)


__all__ = ["ConsistencyReport", "check_online_consistency", "feed_from_flink", "streaming_jobs", "with_online_store", "OnlineStore", "PreparedRequest", "StoreError", "online_store"]
