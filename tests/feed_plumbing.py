"""Plumbing shared by the live-feed test servers and tests: quick feed settings, the base of the
local HTTP servers (quiet about clients hanging up, served from a daemon thread), and polling
helpers.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

FAST_FEED: dict[str, float | int] = {
    "reconnect_initial_seconds": 0.01,
    "reconnect_max_seconds": 0.05,
    "connect_timeout_seconds": 2.0,
    "poll_interval_ms": 1,
}
"""Live-feed settings for tests: quick reconnects and polling."""


class QuietHttpServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is what these tests do on purpose: no traceback for it."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class BackgroundHttp:
    """Serves an HTTP server from a daemon thread while in its `with` block."""

    _httpd: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, httpd: ThreadingHTTPServer) -> int:
        """Adopt `httpd` (its handlers find this object as `server.owner`); returns its port."""
        self._httpd = httpd
        httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        return httpd.server_address[1]

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def drain(part: Any, until: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
    """Poll the partition like Bytewax would, until `until(items)` or the timeout."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(items):
        try:
            batch = part.next_batch()
        except StopIteration:
            break
        items.extend(batch)
        if not batch:
            time.sleep(0.002)
    return items


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout`; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
