"""RedisStreamSource, push_jsonl and AlertReader against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from config.settings import RedisSettings
from connectors.redis_client import alerts_key
from connectors.redis_sinks import AlertSink
from connectors.redis_source import (
    AlertReader,
    RedisStreamPartition,
    RedisStreamSource,
    default_consumer,
    push_jsonl,
)
from operators.events import DeadLetter
from operators.records import AlertRecord, CustomerView

GROUP = "sense-respond"


@pytest.fixture
def key(redis_prefix: str) -> str:
    return f"{redis_prefix}in"


@pytest.fixture
def build(
    redis_url: str, redis_prefix: str, key: str
) -> Iterator[Callable[..., RedisStreamPartition]]:
    """Build partitions (closed at teardown unless the test "crashed" them)."""
    built: list[RedisStreamPartition] = []

    def make(
        consumer: str | None = "c1",
        worker: tuple[int, int] = (0, 1),
        claim_every_seconds: float = 5.0,
        **overrides: object,
    ) -> RedisStreamPartition:
        settings = RedisSettings(prefix=redis_prefix, consumer=consumer, block_ms=50, **overrides)
        source = RedisStreamSource(
            redis_url, key, settings, batch_size=100, claim_every_seconds=claim_every_seconds
        )
        part = source.build("in", *worker)
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


def test_reads_event_bytes_and_acks_on_the_next_batch(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    add(redis_client, key, b'{"a":1}', b'{"a":2}', b"not json is still bytes")
    assert part.next_batch() == [b'{"a":1}', b'{"a":2}', b"not json is still bytes"]
    # Handed to the flow, not yet acknowledged.
    assert pending(redis_client, key) == {"c1": 3}
    assert part.next_batch() == []
    assert pending(redis_client, key) == {}


def test_empty_stream_read_returns_after_block(
    build: Callable[..., RedisStreamPartition],
) -> None:
    part = build()
    assert part.next_batch() == []
    assert part.next_batch() == []


def test_idle_exit_acks_everything_then_ends(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build(input_idle_exit_seconds=0.2)
    add(redis_client, key, b'{"a":1}')
    assert part.next_batch() == [b'{"a":1}']
    with pytest.raises(StopIteration):
        for _ in range(100):  # ~50 ms per empty read: ends after about 0.2 s of nothing new
            part.next_batch()
    assert pending(redis_client, key) == {}


def test_without_idle_exit_an_idle_stream_never_ends(
    build: Callable[..., RedisStreamPartition],
) -> None:
    part = build()
    for _ in range(8):
        assert part.next_batch() == []


def test_entry_without_event_field_becomes_a_dead_letter(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    bad = redis_client.xadd(key, {"payload": b"{}", "n": b"1"})
    add(redis_client, key, b"ok")
    batch = part.next_batch()
    assert batch[1] == b"ok"
    letter = batch[0]
    assert isinstance(letter, DeadLetter)
    assert "no 'event' field" in letter.reason
    assert "n, payload" in letter.reason
    assert orjson.loads(letter.raw) == {"payload": "{}", "n": "1"}
    assert letter.source == f"redis:{key}#{bad.decode()}"
    part.next_batch()
    assert pending(redis_client, key) == {}


def test_unacked_entries_are_replayed_after_a_crash(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    add(redis_client, key, b"1", b"2")
    first = build(consumer="stable")
    assert first.next_batch() == [b"1", b"2"]
    # Crash: the partition is never asked again nor closed. A restart (same consumer name)
    # replays its pending entries first, then continues with new ones.
    add(redis_client, key, b"3")
    second = build(consumer="stable")
    assert second.next_batch() == [b"1", b"2"]
    assert second.next_batch() == [b"3"]
    assert second.next_batch() == []
    assert pending(redis_client, key) == {}


def test_trimmed_pending_entry_is_acked_without_output(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = add(redis_client, key, b"gone", b"kept")
    assert build(consumer="stable").next_batch() == [b"gone", b"kept"]
    redis_client.xdel(key, ids[0])
    again = build(consumer="stable")
    assert again.next_batch() == [b"kept"]
    again.next_batch()
    assert pending(redis_client, key) == {}


def test_idle_entries_of_a_dead_consumer_are_claimed(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build(consumer="alive", claim_every_seconds=0.0, claim_idle_ms=1000)
    add(redis_client, key, b"a", b"b")
    # Another consumer takes both entries and dies without acknowledging them.
    redis_client.xreadgroup(GROUP, "dead", {key: ">"}, count=10)
    assert part.next_batch() == []  # not idle long enough to be claimed yet
    time.sleep(1.1)
    assert part.next_batch() == [b"a", b"b"]
    assert pending(redis_client, key) == {"alive": 2}
    part.next_batch()
    assert pending(redis_client, key) == {}


def test_workers_are_distinct_consumers_of_one_group(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    w0, w1 = build(consumer="svc", worker=(0, 2)), build(consumer="svc", worker=(1, 2))
    assert (w0.consumer, w1.consumer) == ("svc-0", "svc-1")
    events = [str(i).encode() for i in range(150)]
    add(redis_client, key, *events)
    got0, got1 = w0.next_batch(), w1.next_batch()
    got0 += w0.next_batch()
    got1 += w1.next_batch()
    assert len(got0) + len(got1) == len(events)
    assert sorted(got0 + got1) == sorted(events)


@pytest.mark.parametrize(
    ("configured", "worker", "expected"),
    [
        ("svc", (0, 1), "svc"),
        ("svc", (3, 4), "svc-3"),
        (None, (2, 4), default_consumer(2)),
    ],
)
def test_consumer_names(
    redis_url: str, configured: str | None, worker: tuple[int, int], expected: str
) -> None:
    source = RedisStreamSource(redis_url, "k", RedisSettings(consumer=configured))
    assert source.consumer_name(*worker) == expected


def test_group_is_recreated_when_the_stream_is_deleted(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    add(redis_client, key, b"1")
    assert part.next_batch() == [b"1"]
    redis_client.delete(key)
    assert part.next_batch() == []
    add(redis_client, key, b"2")
    assert part.next_batch() == [b"2"]


def test_close_leaves_the_last_batch_pending(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    # Bytewax also closes a partition when a step failed: the batch may not be processed.
    part = build(consumer=None)
    add(redis_client, key, b"1")
    assert part.next_batch() == [b"1"]
    part.close()
    assert pending(redis_client, key) == {part.consumer: 1}


def test_close_retires_a_throwaway_consumer_with_nothing_pending(
    build: Callable[..., RedisStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build(consumer=None)
    add(redis_client, key, b"1")
    assert part.next_batch() == [b"1"]
    assert part.next_batch() == []
    names = [c["name"].decode() for c in redis_client.xinfo_consumers(key, GROUP)]
    assert names == [part.consumer]
    part.close()
    assert redis_client.xinfo_consumers(key, GROUP) == []


def test_push_jsonl_adds_each_non_blank_line(redis_client: redis.Redis, key: str) -> None:
    lines = [b'{"n":1}\n', b"\n", '{"n":2}\r\n', b"   \n", b'{"n":3}']
    assert push_jsonl(redis_client, key, lines, chunk=2) == 3
    events = [f[b"event"] for _, f in redis_client.xrange(key)]
    assert events == [b'{"n":1}', b'{"n":2}', b'{"n":3}']


def test_push_jsonl_paces_and_trims(redis_client: redis.Redis, key: str) -> None:
    naps: list[float] = []
    lines = [b"{}"] * 600
    assert push_jsonl(redis_client, key, lines, rate=1000, maxlen=50, sleep=naps.append) == 600
    assert naps and all(n > 0 for n in naps)
    assert 50 <= redis_client.xlen(key) < 600
    with pytest.raises(ValueError):
        push_jsonl(redis_client, key, lines, rate=0)


def _alert(alert_id: str) -> AlertRecord:
    payload = orjson.dumps({"specversion": "1.0", "id": alert_id, "subject": "x:1"})
    return AlertRecord(alert_id, "x:1", payload, CustomerView("x:1", {"s": b"1"}))


def test_alert_reader_returns_parsed_alerts_until_acked(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    sink = AlertSink(redis_url, RedisSettings(prefix=redis_prefix)).build("out", 0, 1)
    sink.write_batch([_alert("a1"), _alert("a2")])
    sink.close()
    redis_client.xadd(alerts_key(redis_prefix), {"alert": b"garbage", "id": b"zz"})

    reader = AlertReader(redis_client, redis_prefix, consumer="me", block_ms=50, start_id="0")
    got = reader.read()
    assert [alert["id"] for _, alert in got] == ["a1", "a2"]
    reader.ack([got[0][0]])
    assert reader.read() == []

    # Restarted: the unacknowledged alert comes back; the garbage entry was acked.
    again = AlertReader(redis_client, redis_prefix, consumer="me", block_ms=50)
    assert [alert["id"] for _, alert in again.read()] == ["a2"]


class _Enough(Exception):
    """Stops the unbounded flow once every event has been seen."""


def test_bytewax_flow_reads_the_stream_as_a_dynamic_source(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, key: str
) -> None:
    events = [orjson.dumps({"n": i}) for i in range(25)]
    add(redis_client, key, *events)
    settings = RedisSettings(prefix=redis_prefix, consumer="flow", block_ms=20)

    def run_until(n: int) -> list[bytes | DeadLetter]:
        seen: list[bytes | DeadLetter] = []

        def collect(_step: str, item: bytes | DeadLetter) -> None:
            seen.append(item)
            if len(seen) == n:
                raise _Enough

        flow = Dataflow("redis_source_e2e")
        source = RedisStreamSource(redis_url, key, settings, batch_size=10)
        op.inspect("collect", op.input("inp", flow, source), collect)
        with pytest.raises(Exception) as info:  # Bytewax wraps what the step raised
            run_main(flow)
        assert isinstance(info.value.__cause__, _Enough)
        return seen

    assert run_until(len(events)) == events
    # The flow failed inside the last batch (entries 20..24): it stays pending...
    assert pending(redis_client, key) == {"flow": 5}
    # ...and the restarted flow (same consumer name) starts by replaying it.
    assert run_until(5) == events[20:]
