"""Fixtures for the notifier tests: lifecycle CloudEvents in the contract's format, and a real
local HTTP receiver standing in for PagerDuty, Slack or a webhook endpoint.

`lifecycle_event` builds exactly what the dataflow writes to `{prefix}alerts` (HELPERS.md
contract), so the notifier is tested without the incidents branch.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import redis

NAMESPACE = uuid.UUID("0b6f7d8e-2c1a-4f5e-9a3b-7c4d2e1f0a99")
TYPES = {
    "firing": "sense_respond.unhappy_influential_customer",
    "acknowledged": "sense_respond.unhappy_influential_customer.acknowledged",
    "resolved": "sense_respond.unhappy_influential_customer.resolved",
}
WEBHOOK_KEY = b"0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()


def lifecycle_event(
    status: str,
    incident_id: str,
    *,
    seq: int = 0,
    customer_id: str = "bluesky:did:plc:alice",
    handle: str | None = "alice.example",
    severity: str = "critical",
    team: str = "service",
    silenced_by: str | None = None,
    evidence: list[dict[str, Any]] | None = None,
    event_time: str = "2026-11-30T12:00:00Z",
) -> dict[str, Any]:
    """A lifecycle CloudEvent as the dataflow writes it (firing / acknowledged / resolved)."""
    data: dict[str, Any] = {
        "status": status,
        "incident_id": incident_id,
        "customer_id": customer_id,
        "platform": customer_id.split(":", 1)[0],
        "handle": handle,
        "severity": severity,
        "event_time": event_time,
        "routing": {"team": team, "route": "default", "matched": []},
    }
    if status == "firing":
        data |= {
            "trigger_event_id": f"post-{incident_id}-{seq}",
            "sentiment": {"mean": -0.72, "posts": 4, "min": -0.91, "latest": -0.6},
            "influence": {
                "score": 0.01,
                "percentile": 0.99,
                "followers": 120_000,
                "pagerank": 0.002,
                "inbound_accounts": 35,
            },
            "evidence": evidence
            if evidence is not None
            else [
                {
                    "id": "at://did:plc:alice/app.bsky.feed.post/1",
                    "text": "Worst airline ever, lost my bag <again> & no answer",
                    "compound": -0.91,
                    "created_at": "2026-11-30T11:58:00Z",
                    "matched": ["acme air"],
                    "url": "https://bsky.app/profile/alice.example/post/1",
                },
                {
                    "id": "at://did:plc:alice/app.bsky.feed.post/2",
                    "text": "Still waiting",
                    "compound": -0.5,
                    "created_at": "2026-11-30T11:59:00Z",
                    "matched": ["acme air"],
                },
            ],
            "reasons": ["mean sentiment -0.72 over 4 posts <= -0.35", "120000 followers >= 10000"],
            "listen": {"scope": "post"},
        }
    elif status == "acknowledged":
        data["acknowledged_by"] = "sam"
    else:
        data["resolved_reason"] = "sentiment_recovered"
    if silenced_by is not None:
        data["silenced_by"] = silenced_by
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(NAMESPACE, f"{incident_id}/{status}/{seq}")),
        "source": "urn:sense-respond",
        "type": TYPES[status],
        "subject": customer_id,
        "time": event_time,
        "datacontenttype": "application/json",
        "data": data,
    }


def xadd_events(client: redis.Redis, prefix: str, events: Iterable[dict[str, Any]]) -> list[str]:
    """Append events to `{prefix}alerts` as the alert sink does (fields `alert` and `id`)."""
    ids = []
    for event in events:
        entry = client.xadd(f"{prefix}alerts", {"alert": orjson.dumps(event), "id": event["id"]})
        ids.append(entry.decode())
    return ids


@dataclass(frozen=True)
class Reply:
    """A scripted answer: a status (+ headers/body), or `reset` (abrupt TCP RST), or `hold`
    (keep the request open until `Receiver.release()`), or `delay` seconds before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    reset: bool = False
    hold: bool = False
    delay: float = 0.0
    stall: bool = False
    """Announce a body 1,000 times longer than `body`, send `body`, then stall."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """A threaded HTTP server on 127.0.0.1 (free port) recording every POST.

    `script` answers requests in order (then `default`); `reply_for(request)` may pick an
    answer per request instead (returns None for the default).
    """

    def __init__(
        self,
        script: Iterable[Reply] = (),
        default: Reply | None = None,
        reply_for: Callable[[Received], Reply | None] | None = None,
    ) -> None:
        self.script = list(script)
        self.default = default or Reply()
        self.reply_for = reply_for
        self.requests: list[Received] = []
        self.answered: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.held = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                reply = receiver._next(got)
                if reply.hold:
                    receiver.held.set()
                    receiver._released.wait(60)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    # SO_LINGER 0: close() sends RST, the client sees a connection reset.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                size = len(reply.body) * (1000 if reply.stall else 1)
                self.send_header("content-length", str(size))
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.stall:
                    self.wfile.flush()
                    receiver._released.wait(60)
                    self.close_connection = True
                    return
                if 200 <= reply.status < 300:
                    with receiver._lock:
                        receiver.answered.append(got)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _next(self, got: Received) -> Reply:
        with self._lock:
            self.requests.append(got)
            if self.reply_for is not None:
                chosen = self.reply_for(got)
                if chosen is not None:
                    return chosen
            return self.script.pop(0) if self.script else self.default

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def release(self) -> None:
        self._released.set()

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx, in arrival order."""
        with self._lock:
            return list(self.answered)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until true; generous timeouts, the machine is shared."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
