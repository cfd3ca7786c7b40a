"""Entries the Redis stream source cannot hand on as they are, against a real Redis: an entry
without an `event` field is a dead letter at once; a poison entry (its step fails) is isolated in
ever smaller groups and goes to the dead letters after `max_deliveries`, the others complete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from redis_source_helpers import add, pending

# The `key` and `build` fixtures (see redis_source_helpers).
from redis_source_helpers import build_fixture as build_fixture
from redis_source_helpers import key_fixture as key_fixture

from config.runtime import RedisSettings
from connectors.redis_source import (
    RedisStreamSource,
    StreamPartition,
    acknowledged_on_success,
    isolation_size,
)
from operators.events import DeadLetter

# ---------------------------------------------------------------------------------------------
# entries that are not events


def test_entry_without_event_field_becomes_a_dead_letter(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    bad = redis_client.xadd(key, {"payload": b"{}", "n": b"1"})
    add(redis_client, key, b"ok")
    batch = part.next_batch()
    assert batch[1] == b"ok"
    letter = batch[0]
    assert isinstance(letter, DeadLetter)
    assert "no 'event' field" in letter.reason and "n, payload" in letter.reason
    assert orjson.loads(letter.raw) == {"payload": "{}", "n": "1"}
    assert letter.source == f"redis:{key}#{bad.decode()}"


# ---------------------------------------------------------------------------------------------
# poison entries


@pytest.mark.parametrize(
    ("delivery", "expected"), [(1, 500), (2, 500), (3, 62), (4, 7), (5, 1), (9, 1)]
)
def test_isolation_groups_shrink_to_one_entry_at_the_last_delivery(
    delivery: int, expected: int
) -> None:
    assert isolation_size(delivery, 5, 500) == expected


@pytest.mark.parametrize(
    ("delivery", "max_deliveries", "expected"), [(2, 2, 1), (2, 3, 50), (3, 3, 1), (1, 1, 50)]
)
def test_isolation_sizes_for_small_limits(
    delivery: int, max_deliveries: int, expected: int
) -> None:
    assert isolation_size(delivery, max_deliveries, 50) == expected


class _Poisoned(Exception):
    """What the flow's step raises on the poison entry."""


def test_a_poison_entry_goes_to_the_dead_letters_after_max_deliveries_and_the_others_complete(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, key: str
) -> None:
    events = [orjson.dumps({"n": i}) for i in range(12)]
    events[7] = b"poison"
    add(redis_client, key, *events)
    settings = RedisSettings(
        prefix=redis_prefix, consumer="flow", block_ms=20, max_deliveries=5,
        input_idle_exit_seconds=0.3,
    )  # fmt: skip
    processed: list[Any] = []

    def step(item: Any) -> Any:
        if item == b"poison":
            raise _Poisoned
        processed.append(item)
        return item

    runs = 0
    while True:
        runs += 1
        assert runs <= 12, "the poison entry was never isolated"
        flow = Dataflow("poison")
        stream = op.input("inp", flow, RedisStreamSource(redis_url, key, settings, batch_size=5))
        op.inspect("out", op.map("step", stream, step))
        try:
            with acknowledged_on_success():
                run_main(flow, epoch_interval=timedelta(seconds=0.05))
            break
        except Exception as exc:  # Bytewax wraps what the step raised
            chain: list[BaseException] = []
            cause: BaseException | None = exc
            while cause is not None:
                chain.append(cause)
                cause = cause.__cause__
            assert any(isinstance(c, _Poisoned) for c in chain), exc
    letters = [p for p in processed if isinstance(p, DeadLetter)]
    assert len(letters) == 1
    assert "delivered 5 times without completing" in letters[0].reason
    assert letters[0].raw == b"poison"
    assert {p for p in processed if isinstance(p, bytes)} == set(events) - {b"poison"}
    assert pending(redis_client, key) == {}  # the poison entry is acknowledged too
    assert runs == 6  # five failed deliveries, then the dead letter
