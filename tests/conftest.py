"""Test-run settings and fixtures shared by every file.

In CI (``CI`` set) hypothesis draws its examples deterministically, so a run
is reproducible and the same examples pass here before they are submitted;
elsewhere each run draws new examples and keeps exploring.

The online store's Redis tests run against a real ``redis-server`` (Debian's
package; ``.ci/run`` installs it on CI), started here on a free localhost port
with nothing written to disk, and stopped at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "explore")

REDIS_START_TIMEOUT_S = 10.0
REDIS_START_ATTEMPTS = 3  # a port found free can be taken before the server binds it


@pytest.fixture(scope="session")
def spark() -> Any:
    """The one Spark session of the test run (a local one; it starts in 5-8 s)."""
    from relplan.backends.spark import local_session

    return local_session()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_redis(exe: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server answering PING on a free port of 127.0.0.1, or pytest.fail."""
    import redis

    log_path = workdir / "redis-server.log"
    port, log_text, exit_code = 0, "", None
    for _ in range(REDIS_START_ATTEMPTS):
        port = _free_port()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(workdir), "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if client.ping():
                        return proc, port
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):  # not up yet
                    time.sleep(0.02)
        finally:
            client.close()
        exit_code = proc.poll()  # None: still running, so it timed out
        _stop(proc)
        log_text = log_path.read_text(errors="replace")
        if "Address already in use" not in log_text:
            break
    what = (f"did not answer PING within {REDIS_START_TIMEOUT_S:.0f} s" if exit_code is None
            else f"exited with code {exit_code} before answering PING")
    pytest.fail(f"redis-server on 127.0.0.1:{port} {what}; its output:\n{log_text}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a real redis-server of this test run.

    Real parts only: the Redis online store is tested against the server it runs
    on in production, not a fake. One server for the whole run (it starts in tens of
    milliseconds), on a free port so that it never meets another Redis on the
    machine, bound to localhost, saving nothing (no RDB, no AOF; its --dir is a temp
    directory). Terminated, and waited for, at the end of the run. A machine without
    redis-server fails the tests that need it rather than skipping them.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis tests run against a real server."
            " Install Debian's package `redis-server` (apt-get install redis-server;"
            " .ci/run does so on CI).",
            pytrace=False,
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.fail("the `redis` client package is missing: pip install -e '.[redis]'", pytrace=False)
    proc, port = _start_redis(exe, tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


@pytest.fixture
def redis_url_clean(redis_url: str) -> Iterator[str]:
    """The session's Redis URL, with the server emptied (FLUSHALL) before this test.

    The server is shared by the whole run; a test that starts from an empty store
    takes this one so that no keys of an earlier test can leak into its results.
    """
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    yield redis_url
