"""Bluesky Jetstream reconnects: the subscribe URL and its cursor, backoff, and the source against
a real local WebSocket server that drops it, is gone or rejects it: resumed at the cursor minus
the rewind, from a snapshot, past an oversized message, without loss."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from feed_plumbing import drain, wait_until
from jetstream_helpers import ALICE, BOB, OWN_FRAMES, POST, did, fast, part_for, synthetic
from jetstream_helpers import no_reader_threads_left as no_reader_threads_left
from jetstream_server import JetstreamServer

from config.feeds import JetstreamSettings
from connectors.feed_reader import backoff_delay, redact_url
from connectors.jetstream import JetstreamReader, JetstreamSource, subscribe_url
from connectors.jetstream_frames import time_us_to_datetime
from operators.events import DeadLetter

# -- the subscribe URL, backoff, the cursor --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cursor", "expected"),
    [
        (
            "wss://js.example",
            None,
            "wss://js.example/subscribe?wantedCollections=app.bsky.feed.post",
        ),
        (
            "wss://js.example/subscribe?wantedCollections=app.bsky.feed.like&cursor=5",
            None,
            "wss://js.example/subscribe?wantedCollections=app.bsky.feed.like&cursor=5",
        ),
        (
            "wss://js.example/subscribe?cursor=5",
            42,
            "wss://js.example/subscribe?wantedCollections=app.bsky.feed.post&cursor=42",
        ),
    ],
)
def test_subscribe_url(url: str, cursor: int | None, expected: str) -> None:
    settings = JetstreamSettings(wanted_collections=["app.bsky.feed.post"])
    assert subscribe_url(url, settings, cursor) == expected


def test_subscribe_url_wanted_dids() -> None:
    settings = JetstreamSettings(wanted_collections=[], wanted_dids=[ALICE, BOB])
    url = subscribe_url("ws://h/subscribe", settings, None)
    assert url == f"ws://h/subscribe?wantedDids={ALICE}&wantedDids={BOB}"


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 0.0, 0.25),
        (0, 0.999, 0.49975),
        (1, 0.0, 0.5),
        (3, 1.0, 4.0),
        (10, 0.0, 15.0),
        (99, 1.0, 30.0),
    ],
)
def test_backoff_delay_is_capped_exponential_with_jitter(
    attempt: int, rand: float, expected: float
) -> None:
    assert backoff_delay(attempt, 0.5, 30.0, rand) == pytest.approx(expected)


def test_redact_url() -> None:
    url = "https://user:pw@h.example/api/v1/streaming/public?access_token=s3cret&tag=x"
    assert redact_url(url) == "https://***@h.example/api/v1/streaming/public?access_token=***&tag=x"


def test_reader_cursor_helper() -> None:
    reader = JetstreamReader("ws://x", JetstreamSettings(rewind_seconds=2), resume_cursor=None)
    assert reader.connect_cursor() is None
    reader.position_seen = 5_000_000
    assert reader.connect_cursor() == 3_000_000
    reader.position_seen = 1
    assert reader.connect_cursor() == 0
    assert time_us_to_datetime(1) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1)


# -- reconnects against a local Jetstream ----------------------------------------------------------


def test_reconnect_resumes_at_cursor_minus_rewind_without_loss() -> None:
    frames = synthetic(300)
    times = [orjson.loads(f)["time_us"] for f in frames]
    ids = [f"at://{did(f'user{i % 7}')}/{POST}/k{i:05d}" for i in range(300)]
    rewind_us = 500_000  # 0.5 s = 50 frames
    settings = fast(rewind_seconds=0.5)
    with JetstreamServer(frames, drops={0: 100, 1: 120}) as server:
        part = part_for(server.url, settings, batch_size=50)
        try:
            items = drain(part, lambda got: {i.id for i in got} >= set(ids))
        finally:
            part.close()
        connections = server.connections
    delivered = [i.id for i in items]
    assert set(delivered) == set(ids)  # nothing lost
    assert len(connections) == 3 and part.metrics.reconnects == 2
    assert connections[0]["cursor"] is None
    # first drop after frame 99: resume at its time_us minus the rewind
    assert connections[1]["cursor"] == times[99] - rewind_us
    # the second connection started at frame 49 (time_us >= cursor) and sent 120 frames, the
    # last being frame 168
    assert connections[2]["cursor"] == times[168] - rewind_us
    duplicates = {i for i, n in Counter(delivered).items() if n > 1}
    # duplicates only within the rewind window before each drop
    window = {ids[k] for k in range(49, 100)} | {ids[k] for k in range(118, 169)}
    assert duplicates and duplicates <= window
    assert max(Counter(delivered).values()) == 2
    assert part.snapshot() == times[-1]


def test_resume_from_snapshot_rewinds() -> None:
    frames = synthetic(100)
    times = [orjson.loads(f)["time_us"] for f in frames]
    with JetstreamServer(frames) as server:
        source = JetstreamSource(server.url, fast(rewind_seconds=0.1), batch_size=100)
        part = source.build_part("in", "jetstream", times[60])
        assert part.snapshot() == times[60]  # before anything arrives: the resume state
        try:
            items = drain(part, lambda got: len(got) >= 50)
        finally:
            part.close()
        assert server.connections[0]["cursor"] == times[60] - 100_000
    # 0.1 s before frame 60 is frame 50: frames 50..99 are replayed, the flow drops 50..60
    assert [i.id.rsplit("/", 1)[1] for i in items] == [f"k{i:05d}" for i in range(50, 100)]
    assert part.snapshot() == times[-1]


def test_ignored_frames_still_move_the_cursor() -> None:
    frames = [*synthetic(3, t0=1_779_999_000_000_000), OWN_FRAMES[14]]  # a block: ignored
    block_time = orjson.loads(OWN_FRAMES[14])["time_us"]
    with JetstreamServer(frames) as server:
        part = part_for(server.url, fast(), batch_size=10)
        try:
            drain(part, lambda got: len(got) >= 3)
            assert wait_until(lambda: (part.next_batch(), part.snapshot())[1] == block_time)
        finally:
            part.close()


def test_idle_timeout_ends_the_source_when_the_server_is_gone() -> None:
    with JetstreamServer([]) as server:
        url = server.url
    # nothing listens any more: the reader retries with backoff, the source ends when idle
    part = part_for(url, fast(idle_timeout_seconds=0.3), batch_size=3)
    started = time.monotonic()
    items = drain(part, lambda got: False, timeout=4)
    assert items == [] and time.monotonic() - started < 3
    assert part.metrics.disconnects >= 2 and part.metrics.connects == 0
    assert not part.reader.alive


def test_rejected_handshake_fails_the_source() -> None:
    with JetstreamServer(synthetic(3), reject_status=403) as server:
        part = part_for(server.url, fast(), batch_size=3)
        try:
            assert wait_until(lambda: part.reader.fatal is not None)
            with pytest.raises(RuntimeError, match="jetstream source failed"):
                part.next_batch()
        finally:
            part.close()


def test_an_oversized_message_is_read_past_not_refetched_forever() -> None:
    frames = synthetic(30)
    big = orjson.loads(frames[10])
    big["commit"]["record"]["text"] = "x" * 100_000  # > max_message_bytes (64 KiB) below
    frames[10] = orjson.dumps(big)
    ids = [f"at://{did(f'user{i % 7}')}/{POST}/k{i:05d}" for i in range(30) if i != 10]
    settings = fast(max_message_bytes=64 * 1024, rewind_seconds=0.05)
    with JetstreamServer(frames) as server:
        part = part_for(server.url, settings, batch_size=50)
        try:
            items = drain(part, lambda got: {getattr(i, "id", None) for i in got} >= set(ids))
        finally:
            part.close()
        connections = len(server.connections)
    assert {getattr(i, "id", None) for i in items} >= set(ids)  # everything after it arrived
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert len(dead) == 1 and "text" in dead[0].reason  # the big post, dead-lettered
    assert connections == 2  # one close for the big message, one lenient reconnect
