"""Helpers for tests that listen on Redis pub/sub channels."""

from __future__ import annotations

import time

import redis

END_OF_TEST = b"--end-of-test--"


def drain_channel(pubsub: redis.client.PubSub, client: redis.Redis, channel: str) -> list[bytes]:
    """Everything published on `channel` so far, counted exactly: a sentinel marks the end."""
    client.publish(channel, END_OF_TEST)
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is None:
            continue
        if msg["data"] == END_OF_TEST:
            return got
        got.append(msg["data"])
    raise AssertionError("sentinel never arrived")
