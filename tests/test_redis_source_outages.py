"""The Redis stream source when Redis fails it: a lost XREADGROUP reply skips nothing (a private
redis-server behind a proxy that cuts one reply), a key of the wrong type stops the run, and
Redis gone past the outage budget stops it too."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_source_helpers import add, pending, read_n

# The `key` and `build` fixtures (see redis_source_helpers).
from redis_source_helpers import build_fixture as build_fixture
from redis_source_helpers import key_fixture as key_fixture

from connectors.redis_errors import NonTransientRedisError, OutageBudgetExceeded
from connectors.redis_retry import OUTAGE
from connectors.redis_source import StreamPartition

# ---------------------------------------------------------------------------------------------
# a lost XREADGROUP reply (private redis-server behind a proxy that cuts one reply)


class CuttingProxy:
    """A loopback TCP proxy to `port` that, when armed, forwards the next XREADGROUP '>' to
    the server, drops the server's reply and closes the connection."""

    def __init__(self, port: int) -> None:
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            dropping = threading.Event()
            threading.Thread(target=self._requests, args=(conn, upstream, dropping),
                             daemon=True).start()  # fmt: skip
            threading.Thread(target=self._replies, args=(upstream, conn, dropping),
                             daemon=True).start()  # fmt: skip

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  dropping: threading.Event) -> None:  # fmt: skip
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                cutting = self.armed.is_set() and b"XREADGROUP" in data and b">" in data
                if cutting:
                    self.armed.clear()
                    dropping.set()
                upstream.sendall(data)
                if cutting:
                    time.sleep(0.3)  # the server runs it and answers into the void
                    self.cut.set()
                    break
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _replies(self, upstream: socket.socket, client: socket.socket,
                 dropping: threading.Event) -> None:  # fmt: skip
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not dropping.is_set():
                    client.sendall(data)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.skip("no redis-server binary")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield port
    client.close()
    proc.terminate()
    proc.wait(10)


def test_a_lost_read_reply_does_not_skip_entries(
    build: Callable[..., StreamPartition], private_redis: int, key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    proxy = CuttingProxy(private_redis)
    direct = redis.Redis(port=private_redis)
    try:
        part = build("c1", url=f"redis://127.0.0.1:{proxy.port}/0")
        add(direct, key, b"1", b"2")
        assert part.next_batch() == [b"1", b"2"]
        add(direct, key, b"3", b"4")
        proxy.armed.set()
        assert part.next_batch() == []  # the reply was lost
        assert proxy.cut.is_set()
        assert pending(direct, key) == {"c1": 4}  # ...after the server handed 3 and 4 to c1
        got: list[Any] = []
        for _ in range(60):
            got += part.next_batch()
            if len(got) >= 2:
                break
            time.sleep(0.05)
        # The server handed 3 and 4 to the lost reply; they come from the PEL, once.
        assert got == [b"3", b"4"]
        assert "Redis unavailable" in caplog.text and "Redis is back" in caplog.text
        add(direct, key, b"5")
        assert read_n(part, 1) == [b"5"]
    finally:
        proxy.close()
        direct.close()


# ---------------------------------------------------------------------------------------------
# errors that stop the run


def test_a_key_of_the_wrong_type_stops_the_run_with_the_command_named(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    redis_client.set(key, b"not a stream")
    with pytest.raises(NonTransientRedisError, match="WRONGTYPE"):
        build().next_batch()


def test_redis_gone_past_the_outage_budget_stops_the_run(
    build: Callable[..., StreamPartition], private_redis: int
) -> None:
    part = build(url=f"redis://127.0.0.1:{private_redis}/0", outage_budget_seconds=0.5)
    assert part.next_batch() == []
    # No retries: the reply to SHUTDOWN is the connection closing, which a client with the
    # default retries would answer with seconds of reconnect attempts to a stopped server.
    redis.Redis(port=private_redis, retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
    deadline = time.monotonic() + 30
    with pytest.raises(OutageBudgetExceeded, match="outage_budget_seconds"):
        while time.monotonic() < deadline:
            assert part.next_batch() == []  # paused, not failed, within the budget
            time.sleep(0.05)
    OUTAGE.answered()  # the process-wide tracker: later tests start with Redis "up"
