"""One way to build a Redis client, plus the key names every connector shares.

Every client is built by `make_client` so timeouts, retries and the wire protocol are explicit and
identical everywhere: a connector never hangs forever on a dead Redis (a hung server is a socket
timeout). The run's sinks take `retries=0` and wait outages out in `connectors.redis_retry`
instead; the on-call tools keep redis-py's short retry of `redis.retries` attempts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from config.runtime import RedisSettings

PROTOCOL = 2
"""RESP2: the reply shapes redis-py has always had, and it works with every Redis >= 2."""

HEALTH_CHECK_INTERVAL_SECONDS = 30
"""A pooled connection idle for longer is PINGed before use, so a silently dropped socket
(load balancer, NAT timeout) is replaced instead of failing the first command."""

BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 2.0

_REDACTED = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "token", "secret"})


def make_client(
    url: str,
    settings: RedisSettings,
    *,
    socket_timeout: float | None = None,
    client_name: str | None = None,
    retries: int | None = None,
) -> redis.Redis:
    """Build a bytes (`decode_responses=False`) RESP2 client for `url`.

    `socket_timeout` overrides `settings.socket_timeout_seconds`; blocking readers pass a value
    larger than their BLOCK time so a blocked read is never mistaken for a dead socket.
    Connection and timeout errors are retried `retries` times (default `settings.retries`) with
    exponential backoff; pass 0 when the caller retries (`connectors.redis_retry.RedisRetry`).
    A `rediss://` URL verifies the server against `settings.ssl_ca_certs` (else the system CAs).
    """
    tls: dict[str, Any] = {}
    if settings.ssl_ca_certs and url.lower().startswith("rediss://"):
        tls["ssl_ca_certs"] = settings.ssl_ca_certs
    return redis.Redis.from_url(
        url,
        socket_timeout=(
            settings.socket_timeout_seconds if socket_timeout is None else socket_timeout
        ),
        socket_connect_timeout=settings.connect_timeout_seconds,
        retry=Retry(
            ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
            settings.retries if retries is None else retries,
        ),
        health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        decode_responses=False,
        protocol=PROTOCOL,
        client_name=client_name,
        **tls,
    )


def redacted_url(url: str) -> str:
    """`url` with any password (userinfo or query string) replaced by `***`: safe to log."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, sep, _password = userinfo.partition(":")
            # "redis://:secret@host" has no user, "redis://secret@host" is a bare password
            # (redis-py reads it as the username, but people put passwords there).
            netloc = f"{user}:{_REDACTED}@{hostport}" if sep else f"{_REDACTED}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, _REDACTED if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
        # Rebuilt by hand: urlunsplit drops the empty authority of "unix:///path".
        out = f"{parts.scheme}:" if parts.scheme else ""
        if netloc or url[len(out) :].startswith("//"):
            out += f"//{netloc}"
        out += parts.path
        if query:
            out += f"?{query}"
        if parts.fragment:
            out += f"#{parts.fragment}"
        return out
    except ValueError:
        # Unparseable: never echo something that may hold a secret.
        return "<unparseable redis url>"


def ping_url(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING at `url` within `timeout` seconds (no retries)."""
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(), 0),
            protocol=PROTOCOL,
        )
    except (ValueError, RedisError):
        return False
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def key(prefix: str, *parts: str) -> str:
    """`prefix` followed by `parts` joined with ':' (the prefix carries its own separator)."""
    return prefix + ":".join(parts)


def alerts_key(prefix: str) -> str:
    """The alerts stream, which is also the name of the alerts pub/sub channel."""
    return key(prefix, "alerts")


def dlq_key(prefix: str) -> str:
    """The dead-letter stream."""
    return key(prefix, "dlq")


def dlq_ids_key(prefix: str) -> str:
    """The sorted set of recent dead-letter ids (appending each dead letter once)."""
    return key(prefix, "dlq", "ids")


def customer_key(prefix: str, customer_id: str) -> str:
    """The hash holding a customer's latest view."""
    return key(prefix, "customer", customer_id)


def alert_id_key(prefix: str, alert_id: str) -> str:
    """The marker remembering that an alert id was delivered (idempotent delivery)."""
    return key(prefix, "alert-id", alert_id)
