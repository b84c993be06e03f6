"""Records as Redis hashes on a real server, through the ``redis`` client package.

Reads are one pipelined round trip (HMGET per record); ``update`` is optimistic:
WATCH the records it reads, compute, then write them in MULTI/EXEC, retried when
another client changed a watched record in between, so a push is all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from relplan.serving.storage import Reads, Records, Storage, StoreError

_RETRIES = 50
_CHUNK = 10_000  # commands per pipeline flush on bulk writes


class RedisStorage(Storage):
    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise StoreError(
                f"the online store {url} needs the redis client package: pip install 'relplan[redis]'"
            ) from None
        self.url = url
        self._redis = redis
        try:
            self._r = redis.Redis.from_url(url, decode_responses=False, socket_connect_timeout=5)
            self._r.ping()
        except redis.RedisError as e:
            raise StoreError(f"cannot reach the online store {url}: {e}") from None
        except ValueError as e:
            raise StoreError(f"cannot read the online store URL {url!r}: {e}") from None

    def _fail(self, what: str, e: Exception) -> StoreError:
        return StoreError(f"{what} the online store {self.url} failed: {e}")

    def read(self, reads: Reads) -> list[dict[str, bytes]]:
        try:
            return self._read(reads)
        except self._redis.RedisError as e:
            raise self._fail("reading", e) from None

    def _read(self, reads: Reads) -> list[dict[str, bytes]]:
        """The fields asked for, in one pipelined round trip."""
        pipe = self._r.pipeline(transaction=False)
        for record, fields in reads:
            if fields is None:
                pipe.hgetall(record)
            elif fields:
                pipe.hmget(record, list(fields))
            else:
                pipe.exists(record)
        return [_as_dict(fields, value) for (_, fields), value in zip(reads, pipe.execute())]

    def replace(self, drop_prefixes: Iterable[str], records: Records) -> None:
        try:
            doomed = [k for p in drop_prefixes for k in self._r.scan_iter(match=_glob_escape(p) + "*", count=1000)]
            pipe = self._r.pipeline(transaction=False)
            for i in range(0, len(doomed), _CHUNK):
                pipe.unlink(*doomed[i:i + _CHUNK])
            n = 0
            for record, fields in records.items():
                if fields:
                    pipe.hset(record, mapping=dict(fields))
                    n += 1
                    if n % _CHUNK == 0:
                        pipe.execute()
            pipe.execute()
        except self._redis.RedisError as e:
            raise self._fail("writing", e) from None

    def update(self, reads: Reads, compute: Callable[[list[dict[str, bytes]]], Records | None]) -> bool:
        names = sorted({record for record, _ in reads})
        for _ in range(_RETRIES):
            try:
                with self._r.pipeline(transaction=True) as pipe:
                    try:
                        if names:
                            pipe.watch(*names)
                        # Read after WATCH (on another connection: WATCH guards against any writer).
                        writes = compute(self._read(reads))
                        if writes is None:
                            pipe.unwatch()
                            return False
                        pipe.multi()
                        for record, fields in writes.items():
                            if fields:
                                pipe.hset(record, mapping=dict(fields))
                        pipe.execute()
                        return True
                    except self._redis.WatchError:
                        continue
            except self._redis.RedisError as e:
                raise self._fail("writing", e) from None
        raise StoreError(f"writing the online store {self.url} failed: {_RETRIES} tries lost to concurrent writers")

    def close(self) -> None:
        self._r.close()


def _as_dict(fields: Any, value: Any) -> dict[str, bytes]:
    if fields is None:
        return {k.decode(): v for k, v in value.items()}
    if not fields:
        return {}
    return {f: v for f, v in zip(fields, value) if v is not None}


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)
