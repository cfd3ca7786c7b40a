"""RedisStreamSource, push_jsonl and AlertReader against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from config.settings import RedisSettings, Settings
from connectors.inputs import make_source
from connectors.redis_client import alerts_key, make_client
from connectors.redis_sinks import AlertSink
from connectors.redis_source import (
    RESUMABLE_CONSUMER,
    AlertReader,
    RedisStreamPartition,
    RedisStreamSource,
    ResumableRedisStreamSource,
    ResumableStreamPartition,
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


# ---------------------------------------------------------------------------------------------
# the resumable source (Bytewax recovery on): one snapshotted partition


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def resumable(redis_url: str, key: str) -> Iterator[Callable[..., ResumableStreamPartition]]:
    """Build resumable partitions on `key` (closed at teardown)."""
    built: list[ResumableStreamPartition] = []

    def make(
        resume_state: str | bytes | None = None,
        *,
        count: int = 100,
        idle_exit_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> ResumableStreamPartition:
        if isinstance(resume_state, bytes):
            resume_state = resume_state.decode()
        part = ResumableStreamPartition(
            make_client(redis_url, RedisSettings()),
            key,
            GROUP,
            RESUMABLE_CONSUMER,
            resume_id=resume_state,
            count=count,
            block_ms=50,
            idle_exit_seconds=idle_exit_seconds,
            clock=clock,
        )
        built.append(part)
        return part

    yield make
    for part in built:
        part.close()


def read_n(part: ResumableStreamPartition, n: int) -> list[bytes | DeadLetter]:
    """Batches until `n` items came (fails after 50 reads)."""
    out: list[bytes | DeadLetter] = []
    for _ in range(50):
        out += part.next_batch()
        if len(out) >= n:
            return out
    raise AssertionError(f"only {len(out)} of {n} items: {out}")


def test_resumable_source_is_one_partition_named_after_the_stream(
    redis_url: str, redis_prefix: str, key: str
) -> None:
    source = ResumableRedisStreamSource(redis_url, key, RedisSettings())
    assert source.list_parts() == [key]
    assert source.consumer == RESUMABLE_CONSUMER
    assert ResumableRedisStreamSource(redis_url, key, RedisSettings(consumer="svc")).consumer == (
        "svc"
    )
    part = source.build_part("in", key, "5-0")
    try:
        assert part.snapshot() == "5-0"  # resumed and nothing read yet: the same position
    finally:
        part.close()
    settings = Settings(redis=RedisSettings(prefix=redis_prefix))
    spec = f"redis:{key}"
    assert isinstance(make_source(spec, settings, redis_url), RedisStreamSource)
    resumable_source = make_source(spec, settings, redis_url, resumable=True)
    assert isinstance(resumable_source, ResumableRedisStreamSource)


def test_resumable_fresh_start_takes_every_pending_entry_first_in_order(
    resumable: Callable[..., ResumableStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = add(redis_client, key, b"1", b"2", b"3", b"4", b"5", b"6")
    redis_client.xgroup_create(key, GROUP, id="0")
    # A run without recovery (or one killed before its first snapshot) left 1 and 3 pending
    # under two consumer names; 2 was processed and acknowledged.
    redis_client.xreadgroup(GROUP, "old-a", {key: ">"}, count=2)
    redis_client.xreadgroup(GROUP, "old-b", {key: ">"}, count=1)
    redis_client.xack(key, GROUP, ids[1])
    part = resumable()
    assert part.next_batch() == [b"1", b"3"]
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 2}
    assert part.next_batch() == [b"4", b"5", b"6"]
    # Nothing is acknowledged before a snapshot covers it and Bytewax asks for more after it.
    assert part.next_batch() == []
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 5}
    assert part.snapshot() == ids[5].decode()
    add(redis_client, key, b"7")
    assert part.next_batch() == [b"7"]
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 1}
    assert part.snapshot() == part.last_id


@pytest.mark.parametrize("count", [2, 100])
def test_resume_rereads_what_followed_the_snapshot_then_new_entries(
    resumable: Callable[..., ResumableStreamPartition],
    redis_client: redis.Redis,
    key: str,
    count: int,
) -> None:
    ids = add(redis_client, key, *[str(i).encode() for i in range(1, 8)])
    redis_client.xgroup_create(key, GROUP, id="0")
    # The crashed run read 1..5 and acknowledged 1..4, but its last committed snapshot is 2:
    # 3 and 4 were acknowledged after it, 5 is pending, 6 and 7 were never read.
    redis_client.xreadgroup(GROUP, "crashed", {key: ">"}, count=5)
    redis_client.xack(key, GROUP, *ids[:4])
    part = resumable(ids[1], count=count)
    first = part.next_batch()
    # Everything pending up to the group's last-delivered id is acknowledged at start.
    assert pending(redis_client, key) == {}
    rest = read_n(part, 5 - len(first))
    assert first + rest == [b"3", b"4", b"5", b"6", b"7"]
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 2}  # 6, 7 through the group
    assert part.snapshot() == ids[6].decode()
    add(redis_client, key, b"8")
    assert part.next_batch() == [b"8"]
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 1}


def test_resume_recreates_a_missing_group_after_the_snapshot(
    resumable: Callable[..., ResumableStreamPartition],
    redis_client: redis.Redis,
    key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = add(redis_client, key, b"1", b"2", b"3")
    part = resumable(ids[0])
    assert read_n(part, 2) == [b"2", b"3"]
    assert "missing" in caplog.text


def test_resume_moves_a_group_that_is_behind_the_snapshot(
    resumable: Callable[..., ResumableStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = add(redis_client, key, b"1", b"2", b"3", b"4")
    redis_client.xgroup_create(key, GROUP, id="0")  # e.g. recreated: it would hand out 1 and 2
    part = resumable(ids[1])
    assert read_n(part, 2) == [b"3", b"4"]


def test_resume_skips_entries_deleted_since_and_warns(
    resumable: Callable[..., ResumableStreamPartition],
    redis_client: redis.Redis,
    key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = add(redis_client, key, b"1", b"2", b"3", b"4", b"5")
    redis_client.xgroup_create(key, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "crashed", {key: ">"}, count=5)
    redis_client.xdel(key, ids[2])
    part = resumable(ids[0])
    assert read_n(part, 3) == [b"2", b"4", b"5"]
    assert pending(redis_client, key) == {}
    assert "deleted or trimmed" in caplog.text


def test_resumable_fresh_run_ends_only_once_a_snapshot_covers_what_it_read(
    resumable: Callable[..., ResumableStreamPartition], redis_client: redis.Redis, key: str
) -> None:
    clock = Clock()
    part = resumable(idle_exit_seconds=1.0, clock=clock)
    ids = add(redis_client, key, b"1")
    assert part.next_batch() == [b"1"]
    clock.now += 5
    # Idle long enough, but no snapshot is committed: a crash after acknowledging would lose
    # entry 1, so the partition waits for the next snapshot.
    assert part.next_batch() == []
    assert pending(redis_client, key) == {RESUMABLE_CONSUMER: 1}
    assert part.snapshot() == ids[0].decode()
    with pytest.raises(StopIteration):
        part.next_batch()
    assert pending(redis_client, key) == {}


@pytest.mark.parametrize("resumed", [False, True])
def test_resumable_run_that_read_nothing_or_was_resumed_ends_at_once(
    resumable: Callable[..., ResumableStreamPartition],
    redis_client: redis.Redis,
    key: str,
    resumed: bool,
) -> None:
    clock = Clock()
    ids = add(redis_client, key, b"1", b"2")
    redis_client.xgroup_create(key, GROUP, id="$" if not resumed else "0")
    if resumed:
        redis_client.xreadgroup(GROUP, "crashed", {key: ">"}, count=2)
    part = resumable(ids[0] if resumed else None, idle_exit_seconds=1.0, clock=clock)
    assert part.next_batch() == ([b"2"] if resumed else [])
    clock.now += 5
    with pytest.raises(StopIteration):
        for _ in range(3):
            part.next_batch()
    assert pending(redis_client, key) == {}


def test_bytewax_recovery_resumes_the_stream_after_the_committed_snapshot(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, key: str, tmp_path: Path
) -> None:
    events = [orjson.dumps({"n": i}) for i in range(40)]
    add(redis_client, key, *events)
    settings = RedisSettings(prefix=redis_prefix, block_ms=20, input_idle_exit_seconds=0.3)
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))

    def run(crash_after: int | None = None) -> list[bytes | DeadLetter]:
        seen: list[bytes | DeadLetter] = []

        def collect(_step: str, item: bytes | DeadLetter) -> None:
            seen.append(item)
            time.sleep(0.01)  # several epochs per run
            if len(seen) == crash_after:
                raise _Enough

        flow = Dataflow("resumable_e2e")
        source = ResumableRedisStreamSource(redis_url, key, settings, batch_size=4)
        op.inspect("collect", op.input("inp", flow, source), collect)
        epoch = timedelta(seconds=0.05)
        if crash_after is None:
            run_main(flow, epoch_interval=epoch, recovery_config=recovery)
        else:
            with pytest.raises(Exception) as info:
                run_main(flow, epoch_interval=epoch, recovery_config=recovery)
            assert isinstance(info.value.__cause__, _Enough)
        return seen

    first = run(crash_after=23)
    assert first == events[:23]
    second = run()
    # The resumed run re-reads exactly what followed the last committed snapshot, in order.
    done = len(events) - len(second)
    assert 0 < done <= len(first)
    assert second == events[done:]
    assert pending(redis_client, key) == {}
    more = [orjson.dumps({"n": i}) for i in range(40, 45)]
    add(redis_client, key, *more)
    assert run() == more  # the finished run's snapshot is after its last entry
    assert pending(redis_client, key) == {}
