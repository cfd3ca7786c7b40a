"""The operator endpoint of `sense-respond run --metrics-port PORT`: metrics and health over HTTP.

| path | answers |
| --- | --- |
| `/metrics` | Prometheus text of `sense_respond.metrics.REGISTRY` (prometheus_client's WSGI app) |
| `/healthz` | 200 while the process runs (liveness) |
| `/readyz` | 200 while Redis answers PING and the source is connected, else 503 (readiness) |

Readiness is decided by a background checker every `CHECK_INTERVAL_SECONDS`, never by the
request: a probe answers at once from the last result, and a Redis that hangs cannot hang the
endpoint. A change shows within one interval plus one ping timeout (under 10 s).

The server is the standard library's WSGI server with one thread per request, bound to
`--metrics-host` (default 127.0.0.1: only local scrapers, unless asked). It runs in daemon
threads, so it never keeps a finished run alive.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

from sense_respond.metrics import REGISTRY

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 2.0

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Readiness:
    """The last readiness check: each part and when it was taken (monotonic seconds)."""

    redis: bool
    source: bool
    checked_at: float

    @property
    def ready(self) -> bool:
        """Serving traffic makes sense: Redis answers and the source is connected."""
        return self.redis and self.source


NOT_CHECKED = Readiness(redis=False, source=False, checked_at=0.0)


class ReadinessChecker:
    """Checks Redis and the source in a daemon thread; `current` is the last result.

    `ping_redis` returns whether Redis answered (it must bound its own time); `source_connected`
    whether the input is connected (files and stdin always are). Each ping's outcome goes to
    `report_redis` (the run passes `connectors.redis_retry.OUTAGE.probed`, the one writer of
    `sense_respond_redis_up`), so the gauge also falls when no command is running to fail.
    """

    def __init__(
        self,
        ping_redis: Callable[[], bool],
        source_connected: Callable[[], bool],
        interval: float = CHECK_INTERVAL_SECONDS,
        report_redis: Callable[[bool], None] | None = None,
    ) -> None:
        self._ping = ping_redis
        self._report_redis = report_redis
        self._source = source_connected
        self._interval = interval
        self._current = NOT_CHECKED
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sense-respond-ready", daemon=True)

    @property
    def current(self) -> Readiness:
        """The latest check (NOT_CHECKED before the first one)."""
        return self._current

    def check_now(self) -> Readiness:
        """Run one check and publish its result."""
        try:
            redis_ok = bool(self._ping())
        except Exception:  # a failing probe means "not ready", never a dead checker
            redis_ok = False
        try:
            source_ok = bool(self._source())
        except Exception:
            source_ok = False
        previous = self._current
        self._current = Readiness(redis_ok, source_ok, time.monotonic())
        if self._report_redis is not None:
            self._report_redis(redis_ok)
        if previous is not NOT_CHECKED and previous.ready != self._current.ready:
            log.info(
                "readiness: %s (redis %s, source %s)",
                "ready" if self._current.ready else "not ready",
                "up" if redis_ok else "down",
                "connected" if source_ok else "not connected",
            )
        return self._current

    def start(self) -> ReadinessChecker:
        """Start checking in the background (the first check runs at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the checker thread (bounded wait)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + PING_TIMEOUT_SECONDS + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_now()
            self._stop.wait(self._interval)


def health_app(readiness: Callable[[], Readiness]) -> Callable[[Environ, StartResponse], Any]:
    """The WSGI app: `/metrics` from prometheus_client, `/healthz`, `/readyz`, else 404."""
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            state = readiness()
            body = {
                "status": "ready" if state.ready else "not ready",
                "redis": "up" if state.redis else "down",
                "source": "connected" if state.source else "not connected",
                "checked_seconds_ago": (
                    None if state.checked_at == 0 else round(time.monotonic() - state.checked_at, 1)
                ),
            }
            status = "200 OK" if state.ready else "503 Service Unavailable"
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found", {"error": "not found", "path": path[:200]})

    return app


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = orjson.dumps(body) + b"\n"
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow scraper never blocks a health probe."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to debug logging instead of stderr (probes come every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    """`/metrics`, `/healthz` and `/readyz` on host:port in a daemon thread."""

    def __init__(self, host: str, port: int, readiness: Callable[[], Readiness]) -> None:
        """Bind now (so a taken port fails the run before the flow starts); serve on `start`."""
        self._server = make_server(
            host,
            port,
            health_app(readiness),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="sense-respond-metrics",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): port 0 asks the OS for a free one."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> HealthServer:
        """Serve requests in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
