"""Shared fixtures: a real Redis for the session, a unique key prefix per test."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
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


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Fail the test if it leaves a thread running (servers, readers, flows)."""
    from feed_plumbing import wait_until
    from private_redis import THREAD_PREFIX

    before = set(threading.enumerate())
    yield

    def extra() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(THREAD_PREFIX)
        ]

    assert wait_until(lambda: not extra(), timeout=5), [t.name for t in extra()]


@pytest.fixture(scope="session")
def recovery_feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The feed of the end-to-end recovery tests and its config (`recovery_helpers.write_feed`)."""
    from recovery_helpers import write_feed

    return write_feed(tmp_path_factory.mktemp("recovery"))


@pytest.fixture(scope="session")
def recovery_clean_run_started(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path] | None]:
    """The process of the clean run of `recovery_feed`, started once for the session when a
    selected test needs `recovery_clean_run`. The in-process recovery modules use it, so that it
    runs (on the other core) while they do, instead of before the first kill test."""
    if not any("recovery_clean_run" in item.fixturenames for item in request.session.items):
        yield None
        return
    from recovery_helpers import clean_env, run_command

    feed_files = request.getfixturevalue("recovery_feed")
    prefix = f"test:recovery-clean:{os.getpid()}:{time.time_ns()}:"
    log = tmp_path_factory.mktemp("clean-run") / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            run_command(feed_files, redis_url, prefix),
            stdout=subprocess.DEVNULL, stderr=err, env=clean_env(),
        )  # fmt: skip
    try:
        yield proc, prefix, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture(scope="session")
def recovery_clean_run(
    recovery_clean_run_started: tuple[subprocess.Popen[bytes], str, Path] | None, redis_url: str
) -> Iterator[Any]:
    """One uninterrupted run of `recovery_feed`, without recovery, into its own prefix: a
    `recovery_helpers.CleanRun`, computed once for every module that compares with it (the tests
    only read it)."""
    from recovery_helpers import TIMEOUT, CleanRun, customer_views, stream_ids

    assert recovery_clean_run_started is not None
    proc, prefix, log = recovery_clean_run_started
    client = redis.Redis.from_url(redis_url)
    try:
        code = proc.wait(TIMEOUT)
        assert code == 0, log.read_text(errors="replace")[-3000:]
        yield CleanRun(stream_ids(client, prefix), customer_views(client, prefix))
    finally:
        client.close()
        delete_prefix(redis_url, prefix)
