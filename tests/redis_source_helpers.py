"""Shared by the Redis stream source tests (`tests/test_redis_source_*.py`): the consumer group,
the `key` and `build` fixtures, and helpers that add entries and read the group's state.

A test module imports the fixtures (`from redis_source_helpers import build_fixture as
build_fixture`): pytest finds them in its namespace, under their names `key` and `build`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from config.runtime import RedisSettings
from connectors.redis_client import make_client
from connectors.redis_source import StreamPartition

GROUP = "sense-respond"


@pytest.fixture(name="key")
def key_fixture(redis_prefix: str) -> str:
    return f"{redis_prefix}in"


@pytest.fixture(name="build")
def build_fixture(redis_url: str, key: str) -> Iterator[Callable[..., StreamPartition]]:
    """Build partitions on `key` (their clients are closed at teardown)."""
    built: list[StreamPartition] = []

    def make(consumer: str = "c1", url: str | None = None, **kwargs: Any) -> StreamPartition:
        client = make_client(url or redis_url, RedisSettings(retries=0, socket_timeout_seconds=2))
        kwargs.setdefault("block_ms", 50)
        kwargs.setdefault("count", 100)
        part = StreamPartition(client, key, GROUP, consumer, **kwargs)
        built.append(part)
        return part

    yield make
    for part in built:
        part._client.close()


def add(client: redis.Redis, key: str, *events: bytes) -> list[bytes]:
    return [client.xadd(key, {"event": e}) for e in events]


def pending(client: redis.Redis, key: str) -> dict[str, int]:
    info = client.xpending(key, GROUP)
    return {c["name"].decode(): c["pending"] for c in info["consumers"]}


def consumers(client: redis.Redis, key: str) -> list[str]:
    return sorted(c["name"].decode() for c in client.xinfo_consumers(key, GROUP))


def read_n(part: StreamPartition, n: int, *, snapshot_between: bool = False) -> list[Any]:
    """Batches until `n` items came (fails after 60 calls)."""
    out: list[Any] = []
    for _ in range(60):
        out += part.next_batch()
        if len(out) >= n:
            return out
        if snapshot_between:
            part.snapshot()
    raise AssertionError(f"only {len(out)} of {n} items: {out}")
