"""The ``redis_url`` fixture gives a real redis-server of this run, on localhost, on the
port it picked, and ``redis_url_clean`` an empty one."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis


def test_the_fixture_runs_a_real_server_on_its_own_localhost_port(redis_url_clean: str) -> None:
    url = urlsplit(redis_url_clean)
    assert url.scheme == "redis"
    assert url.hostname == "127.0.0.1"
    assert url.path == "/0"
    assert url.port is not None
    with redis.Redis.from_url(redis_url_clean) as client:
        assert client.dbsize() == 0
        assert client.set("relplan:test", "value")
        assert client.get("relplan:test") == b"value"
        info = client.info("server")
        assert info["tcp_port"] == url.port
        assert "redis_version" in info


def test_each_clean_test_starts_empty(redis_url_clean: str) -> None:
    with redis.Redis.from_url(redis_url_clean) as client:
        assert client.dbsize() == 0
        client.set("relplan:test", "left behind")
