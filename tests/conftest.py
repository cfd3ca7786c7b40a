"""Shared fixtures: a real Redis for the session, a unique key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis_helpers import confirm_subscribed, delete_prefix

from config.runtime import RedisSettings
from connectors.embedded_redis import EmbeddedRedis
from connectors.redis_client import make_client, ping_url

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """$REDIS_URL if it answers, else the local Redis on 6379, else an embedded one.

    `REDIS_URL=embedded` forces the embedded server (what a machine without Redis gets).
    """
    configured = os.environ.get("REDIS_URL")
    candidates = () if configured == "embedded" else (configured, LOCAL_REDIS_URL)
    for url in candidates:
        if url and ping_url(url, timeout=1.0):
            yield url
            return
    with EmbeddedRedis() as embedded:
        yield embedded.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique "test:<uuid>:" prefix; every key under it is deleted after the test."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A bytes client (decode_responses=False) built the way the connectors build theirs."""
    client = make_client(redis_url, RedisSettings())
    yield client
    client.close()


@pytest.fixture
def alerts_subscriber(
    redis_client: redis.Redis, redis_prefix: str
) -> Iterator[redis.client.PubSub]:
    """Subscribed to `{prefix}alerts`, confirmed live on the server, before the test runs."""
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"{redis_prefix}alerts")
    confirm_subscribed(pubsub)
    yield pubsub
    pubsub.close()


@pytest.fixture(scope="session")
def outage_feed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The feed of the Redis-outage tests (`outage_harness.Feed`)."""
    from outage_harness import COPIES, Feed
    from private_redis import scenario_feed

    return Feed(*scenario_feed(tmp_path_factory.mktemp("outage-feed"), COPIES))


@pytest.fixture(scope="session", autouse=True)
def background_outages(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The Redis-outage scenarios of `tests/test_redis_outages.py` (`OUTAGE_LANES`: the 60 s
    outage, and the 8 s outage, the hung server and the run past its budget one after another),
    started with the session when their tests are selected: they are paused or waiting for most
    of their time, so that time overlaps the other tests instead of adding to the suite; each
    test waits for its scenario's outcome (`outcome(test name)`) and checks it."""
    from outage_harness import OUTAGE_LANES, BackgroundScenarios

    names = {name for lane in OUTAGE_LANES for name, _ in lane}
    selected = {item.name for item in request.session.items} & names
    feed = request.getfixturevalue("outage_feed") if selected else None
    scenarios = BackgroundScenarios(feed, tmp_path_factory, selected)
    try:
        yield scenarios
    finally:
        scenarios.close()
