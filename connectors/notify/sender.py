"""One HTTP attempt per call, through httpx: explicit timeouts (the whole attempt's too: see
`connectors.notify.deadline`), no redirects, capped reads.

The destination's URL, routing key and secret never appear in a log line or a dead letter:
`redacted_url` keeps only scheme, host and port.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson

from config.notify import DestinationSettings, NotifySettings, webhook_key
from connectors.notify.deadline import DeadlineBackend, DeadlineTransport, environment_proxy
from connectors.notify.events import LifecycleEvent
from connectors.notify.payloads import pagerduty_body, slack_body, webhook_request

USER_AGENT = "sense-respond-notifier/0.1"
QUIET_LOGGERS = ("httpx", "httpcore")
"""httpx logs every request's full URL at INFO: a Slack webhook URL is a credential."""
REASON_CHARS = 300


def redacted_url(url: str) -> str:
    """`scheme://host:port/…`: where a request went, without the path (Slack's is the secret)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}/…"
    except ValueError:
        return "<unparseable url>"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt got: an HTTP status (None: no response) and why, for logs/dead letters."""

    status: int | None
    reason: str
    retry_after: str | None = None


class Sender:
    """Builds and posts a destination's request for a lifecycle event."""

    def __init__(self, destination: DestinationSettings, notify: NotifySettings) -> None:
        for name in QUIET_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        self.destination = destination
        self._url = destination.url.get_secret_value()
        self._where = redacted_url(self._url)
        self._max_bytes = notify.max_response_bytes
        self._webhook_key = (
            webhook_key(destination.secret) if destination.secret is not None else None
        )
        timeout = notify.timeout_seconds
        self._timeout = timeout
        self._deadline = DeadlineBackend()  # the whole attempt, not only each read
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            transport=DeadlineTransport(
                self._deadline,
                httpx.Limits(max_connections=2, max_keepalive_connections=1),
                proxy=environment_proxy(self._url),
            ),
            headers={"user-agent": USER_AGENT},
        )

    @property
    def where(self) -> str:
        return self._where

    def request(self, event: LifecycleEvent, unix_now: int) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (webhooks are re-signed per attempt)."""
        kind = self.destination.type
        if kind == "pagerduty":
            assert self.destination.routing_key is not None
            body = pagerduty_body(event, self.destination.routing_key.get_secret_value())
            return orjson.dumps(body), {"content-type": "application/json"}
        if kind == "slack":
            return orjson.dumps(slack_body(event)), {"content-type": "application/json"}
        assert self._webhook_key is not None
        return webhook_request(event, self._webhook_key, unix_now)

    def send(self, event: LifecycleEvent) -> Attempt:
        """POST the event once. Never raises for network trouble: it is an `Attempt` too."""
        body, headers = self.request(event, int(time.time()))
        try:
            with (
                self._deadline.deadline(self._timeout),
                self._client.stream("POST", self._url, content=body, headers=headers) as resp,
            ):
                text = self._read_capped(resp)
                status = resp.status_code
                retry_after = resp.headers.get("retry-after")
        except httpx.HTTPError as exc:
            # httpx messages may quote the URL; ours is a secret.
            message = str(exc).replace(self._url, self._where)
            return Attempt(None, f"{type(exc).__name__}: {message}"[:REASON_CHARS])
        reason = f"HTTP {status}"
        if text and not 200 <= status <= 299:
            reason += ": " + text
        return Attempt(status, reason[:REASON_CHARS], retry_after)

    def _read_capped(self, resp: httpx.Response) -> str:
        """Up to `max_response_bytes` of the body (a hostile receiver cannot exhaust memory)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self._max_bytes:
                break
        raw = b"".join(chunks)[: self._max_bytes]
        text = raw.decode("utf-8", "replace")
        return "".join(c if c.isprintable() else " " for c in text).strip()

    def close(self) -> None:
        self._client.close()
