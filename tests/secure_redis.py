"""A private redis-server configured by a config file: ACL users, passwords, TLS.

The fault-test harness (`tests/private_redis.py`) pings its server unauthenticated over a unix
socket; the security tests need servers that refuse exactly that. This one takes its
directives (ACL users, `tls-*`) from a 0600 config file, waits for the port to open, and can be
stopped. Never the shared Redis.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_redis import free_port, server_binary


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ConfiguredRedis:
    """One redis-server process with `directives` (config-file lines), restartable on its port."""

    def __init__(self, directory: Path, directives: list[str], *, tls: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.binary = server_binary()  # a build without TLS makes the TLS tests skip (start)
        self.tls = tls
        self._directives = directives
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.directory / "redis.conf"

    def start(self) -> ConfiguredRedis:
        port_line = ["port 0", f"tls-port {self.port}"] if self.tls else [f"port {self.port}"]
        lines = [
            "bind 127.0.0.1",
            *port_line,
            f"dir {self.directory}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "loglevel warning",
            f"logfile {self.directory / 'redis.log'}",
            *self._directives,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o600)
        with open(self.directory / "server.out", "ab") as out:
            self._proc = subprocess.Popen(
                [str(self.binary), str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = " ".join(
                    p.read_text(errors="replace")[-800:]
                    for p in (self.directory / "server.out", self.directory / "redis.log")
                    if p.exists()
                )
                if self.tls and "Bad directive" in tail:
                    pytest.skip(f"{self.binary} was built without TLS: {tail}")
                raise RuntimeError(f"redis-server exited {self._proc.returncode}: {tail}")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not open its port within 30 s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


@contextlib.contextmanager
def configured_redis(
    tmp_path: Path, directives: list[str] | None = None, *, tls: bool = False
) -> Iterator[ConfiguredRedis]:
    directory = tmp_path / f"redis-{free_port()}"
    directory.mkdir()
    server = ConfiguredRedis(directory, directives or [], tls=tls).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
