"""Running the whole flow over a live feed, for the feed end-to-end tests: bounded in time, with the
source kept to read its metrics, and reading what the flow left in Redis.
"""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from typing import Any

import orjson
import pytest
import redis
from bytewax.inputs import Source
from bytewax.testing import run_main

from config.settings import Settings
from connectors.feed_runtime import FeedSource
from connectors.inputs import make_source
from connectors.redis_client import customer_key
from flows.pipeline import build_flow
from operators.scoring import score_texts

FLOW_TIMEOUT = 10.0
"""Longest a flow may run; every scenario of the feed end-to-end tests ends in about two seconds."""


def assert_closed(port: int) -> None:
    """Nothing listens on `port` any more."""
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def run_flow(settings: Settings, source: Source) -> None:
    """Run the real flow over `source` to its end, bounded in time; re-raise what it raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_main(build_flow(settings, source), epoch_interval=timedelta(seconds=0.2))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    # A daemon thread: if the flow hangs, the test fails here instead of hanging pytest.
    runner = threading.Thread(target=run, name="e2e-flow", daemon=True)
    runner.start()
    runner.join(FLOW_TIMEOUT)
    assert not runner.is_alive(), f"the flow did not end within {FLOW_TIMEOUT}s"
    if errors:
        raise errors[0]


def live_source(settings: Settings, redis_url: str) -> FeedSource[Any]:
    """The source `--input` names, built as the flow builds it (kept to read its metrics)."""
    source = make_source(settings.input, settings, redis_url)
    assert isinstance(source, FeedSource)
    return source


def sentiment_view(client: redis.Redis, prefix: str, customer_id: str) -> dict[str, Any]:
    """The `sentiment` field of a customer's view hash."""
    raw = client.hget(customer_key(prefix, customer_id), "sentiment")
    assert raw is not None, f"no view of {customer_id}"
    return orjson.loads(raw)


def compounds(texts: list[str]) -> list[float]:
    """VADER compound scores, as the flow computes them."""
    return [s.compound for s in score_texts(texts)]


RULE = -0.35
"""`rules.unhappy_mean_compound` (the default): a window with a mean at or below it is unhappy."""

COMMON = {
    "flow": {"epoch_interval_seconds": 0.2},
    # Influence comes from follower counts only: no ranking refresh (whose timing depends on how
    # many accounts the stream has shown so far) can raise an alert of its own.
    "influence": {"min_accounts_to_rank": 1_000},
}
