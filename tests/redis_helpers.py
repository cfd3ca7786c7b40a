"""Helpers for tests that listen on Redis pub/sub channels and read the alerts stream."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import redis

from connectors.redis_client import alerts_key

END_OF_TEST = b"--end-of-test--"


def confirm_subscribed(pubsub: redis.client.PubSub, kind: str = "subscribe") -> None:
    """Wait for the server to confirm the `kind` ("subscribe" or "psubscribe") just asked for:
    from then on nothing published is missed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=1.0)
        if msg is not None and msg["type"] == kind:
            return
    pytest.fail(f"no {kind} confirmation")


def drain_messages(
    pubsub: redis.client.PubSub, client: redis.Redis, channel: str
) -> list[tuple[bytes, bytes]]:
    """(channel, data) of everything published so far, counted exactly: a sentinel published on
    `channel` (which `pubsub` must hear) marks the end."""
    client.publish(channel, END_OF_TEST)
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is None:
            continue
        if msg["data"] == END_OF_TEST:
            return got
        got.append((msg["channel"], msg["data"]))
    raise AssertionError("sentinel never arrived")


def drain_channel(pubsub: redis.client.PubSub, client: redis.Redis, channel: str) -> list[bytes]:
    """Everything published on `channel` so far, counted exactly: a sentinel marks the end."""
    return [data for _, data in drain_messages(pubsub, client, channel)]


def stream_alerts(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """The events in the alerts stream `{prefix}alerts`, oldest first, as JSON."""
    return [orjson.loads(f[b"alert"]) for _, f in client.xrange(alerts_key(prefix))]


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix` (in batches: a test may leave many)."""
    client = redis.Redis.from_url(url)
    try:
        doomed: list[bytes] = []
        for name in client.scan_iter(match=f"{prefix}*", count=1000):
            doomed.append(name)
            if len(doomed) >= 500:
                client.unlink(*doomed)
                doomed.clear()
        if doomed:
            client.unlink(*doomed)
    finally:
        client.close()
