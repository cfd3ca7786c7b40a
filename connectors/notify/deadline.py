"""A whole-attempt deadline for the notifier's HTTP requests.

httpx's timeouts bound each network operation (a connect, one read, one write), not a request:
a receiver that sends its answer one byte a second never trips a 10 s read timeout, and would
hold the destination's worker (and every incident queued behind it) for as long as it likes,
past the retry budget and past a shutdown's grace. Here every read, write and connect of an
attempt gets at most what is left of the attempt's deadline, and none starts once it has passed:
the attempt then fails as a read timeout, which the retry policy handles like any other.

The deadline lives in the network backend httpcore builds its connections with; httpx's own
transport (`HTTPTransport`) does the rest (pooling, TLS, mapping errors to httpx's).
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import time
import typing
import urllib.request
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore
import httpx

log = logging.getLogger(__name__)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, every operation bounded by the current deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._until = math.inf
        self._seconds = 0.0

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound what runs inside to `seconds` of monotonic time (one thread at a time)."""
        self._until, self._seconds = time.monotonic() + seconds, seconds
        try:
            yield
        finally:
            self._until = math.inf

    def left(self, timeout: float | None) -> float | None:
        """`timeout`, cut to what is left of the deadline; raises once nothing is left."""
        if self._until == math.inf:
            return timeout
        remaining = self._until - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout(f"no complete answer within {self._seconds:g} s")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self.left(timeout), local_address, socket_options
        )
        return DeadlineStream(stream, self)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, self.left(timeout), socket_options)
        return DeadlineStream(stream, self)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineStream(httpcore.NetworkStream):
    """One connection's stream; its operations are bounded by its backend's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: DeadlineBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._backend.left(timeout))
        return DeadlineStream(tls, self._backend)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    `NO_PROXY` honoured), which httpx would use by itself without a transport of ours. A value
    without a scheme (`proxy.corp:3128`) is an http:// proxy, as httpx and curl read it. A proxy
    of another kind (SOCKS) is not used: a warning says so, and requests go directly."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or (parts.hostname and urllib.request.proxy_bypass_environment(parts.hostname)):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    scheme = urlsplit(proxy).scheme
    if scheme not in ("http", "https"):
        log.warning(
            "notifier: the environment names a %s:// proxy for %s:// requests; only http:// and"
            " https:// proxies are used: connecting directly",
            scheme,
            parts.scheme,
        )
        return None
    return proxy


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over connections from a `DeadlineBackend` (HTTP/1.1), directly or
    through an HTTP(S) proxy (`proxy`, e.g. from `environment_proxy`)."""

    def __init__(
        self, backend: DeadlineBackend, limits: httpx.Limits, proxy: str | None = None
    ) -> None:
        super().__init__(limits=limits)
        # The pool httpx built is replaced before any use by one on our backend, with the
        # same settings: httpx offers no way to hand its transport a network backend.
        pool: dict[str, typing.Any] = {
            "ssl_context": httpx.create_ssl_context(),
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": backend,
        }
        if proxy is None:
            self._pool = httpcore.ConnectionPool(**pool)
            return
        parts = urlsplit(proxy)  # http:// or https:// (`environment_proxy` gives no other)
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self._pool = httpcore.HTTPProxy(proxy_url=urlunsplit(parts), proxy_auth=auth, **pool)
