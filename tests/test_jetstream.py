"""Bluesky Jetstream source: frame mapping (own and real captured fixtures), and the source against
a real local WebSocket server: cursor resume, reconnects, dead letters, profile lookups."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from feed_servers import FAST_FEED, JetstreamServer, ProfilesServer, drain, wait_until

from config.feeds import JetstreamSettings
from connectors.feed_reader import backoff_delay, redact_url
from connectors.feed_runtime import FeedPartition
from connectors.jetstream import JetstreamReader, JetstreamSource, subscribe_url
from connectors.jetstream_frames import (
    facet_mentions,
    finalize,
    map_frame,
    parse_at_uri,
    record_time,
    time_us_to_datetime,
)
from connectors.jetstream_profiles import Profile, ProfileCache
from connectors.rate_limit import TokenBucket
from operators.events import DeadLetter, SocialEvent
from operators.records import AccountPurge, Withdrawal

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
OWN_FRAMES = (FIXTURES / "jetstream_frames.jsonl").read_bytes().splitlines()
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "streaming_fixtures"
REAL_DIR = SHARED / "bluesky_jetstream"
NOW = datetime(2026, 5, 28, 21, 0, tzinfo=UTC)


def did(name: str) -> str:
    return f"did:plc:{name:a<24}"


ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA, ACME, HELP = (
    did(n) for n in ["alice", "bob", "carol", "dave", "erin", "frank", "gina", "acme", "acmehelp"]
)
POST = "app.bsky.feed.post"


def fast(**kw: Any) -> JetstreamSettings:
    """Settings for tests: quick reconnects and polling."""
    return JetstreamSettings(**{**FAST_FEED, **kw})


def mapped(raw: bytes) -> list[Any]:
    """Everything one frame becomes, validated."""
    frame = map_frame(raw, NOW)
    return [finalize(e, raw, NOW) for e in frame.events] + frame.items


@pytest.fixture(autouse=True)
def no_reader_threads_left() -> Iterator[None]:
    """Every test must stop the reader threads it started."""
    yield
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("sense-respond-")], 3
    ), [t.name for t in threading.enumerate()]


# -- pure mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind", "author", "target"),
    [
        (0, "post", ALICE, None),
        (1, "reply", BOB, ALICE),
        (2, "quote", CAROL, ALICE),
        (3, "quote", DAVE, BOB),  # app.bsky.embed.recordWithMedia
        (4, "post", ERIN, None),
        (5, "repost", ERIN, ALICE),
        (6, "like", FRANK, BOB),
        (7, "follow", GINA, ACME),
        (8, "quote", CAROL, ALICE),  # update of a post = an edit
        (15, "post", FRANK, None),
        (16, "post", GINA, None),
        (17, "post", GINA, None),  # reply whose parent is not an at:// URI: kept as a post
    ],
)
def test_own_fixture_events(line: int, kind: str, author: str, target: str | None) -> None:
    raw = OWN_FRAMES[line]
    obj = orjson.loads(raw)
    [event] = mapped(raw)
    assert isinstance(event, SocialEvent)
    commit = obj["commit"]
    assert event.id == f"at://{author}/{commit['collection']}/{commit['rkey']}"
    assert (event.platform, event.kind, event.author.id) == ("bluesky", kind, author)
    assert (event.target.id if event.target else None) == target
    assert event.customer_id == f"bluesky:{author}"
    if event.text is not None:
        assert event.text == commit["record"]["text"]


def test_post_fields_mentions_and_times() -> None:
    first = mapped(OWN_FRAMES[0])[0]
    assert first.mentions[0].id == ACME and first.mentions[0].handle == "acme.bsky.social"
    assert first.created_at == datetime(2026, 5, 28, 20, 26, 39, 600_000, tzinfo=UTC)
    assert first.lang == "en"
    assert first.url == f"https://bsky.app/profile/{ALICE}/post/3lalice00001"
    reply = mapped(OWN_FRAMES[1])[0]
    assert reply.in_reply_to == f"at://{ALICE}/{POST}/3lalice00001"
    # UTF-8 byte offsets: "Café problème — " has multibyte characters before the mentions
    multi = mapped(OWN_FRAMES[4])[0]
    assert [(m.id, m.handle) for m in multi.mentions] == [
        (ACME, "acme.bsky.social"),
        (HELP, "help.acme.com"),
    ]
    assert multi.lang == "fr"
    edited = mapped(OWN_FRAMES[8])[0]
    assert edited.edited_at == time_us_to_datetime(orjson.loads(OWN_FRAMES[8])["time_us"])
    assert edited.dedupe_key != mapped(OWN_FRAMES[2])[0].dedupe_key
    for line in (15, 16):  # createdAt in 2099 / missing: Jetstream's own time is used
        assert mapped(OWN_FRAMES[line])[0].created_at == time_us_to_datetime(
            orjson.loads(OWN_FRAMES[line])["time_us"]
        )


def test_delete_and_account_events() -> None:
    [withdrawal] = mapped(OWN_FRAMES[9])
    assert withdrawal == Withdrawal(
        f"at://{ALICE}/{POST}/3lalice00001",
        f"bluesky:{ALICE}",
        time_us_to_datetime(orjson.loads(OWN_FRAMES[9])["time_us"]),
    )
    # the withdrawal names exactly the id the original post had
    assert withdrawal.event_id == mapped(OWN_FRAMES[0])[0].id
    [purge] = mapped(OWN_FRAMES[11])
    assert isinstance(purge, AccountPurge) and purge.customer_id == f"bluesky:{BOB}"
    for line, reason in [
        (10, "delete of app.bsky.feed.like"),
        (12, "account active"),
        (13, "kind 'identity'"),
        (14, "collection app.bsky.graph.block"),
    ]:
        frame = map_frame(OWN_FRAMES[line], NOW)
        assert (frame.ignored, frame.events, frame.items) == (reason, [], [])
        assert frame.time_us == orjson.loads(OWN_FRAMES[line])["time_us"]


@pytest.mark.parametrize(
    ("line", "reason", "has_time"),
    [
        (18, "not JSON", False),
        (19, "not a JSON object", False),
        (20, "create without record", True),
        (21, "without subject at:// uri", True),
        (22, "missing or invalid time_us", False),
        (23, "missing or invalid did", True),
        (24, "post without text", True),
    ],
)
def test_malformed_frames_are_dead_letters(line: int, reason: str, has_time: bool) -> None:
    raw = OWN_FRAMES[line]
    frame = map_frame(raw, NOW)
    [dead] = frame.items
    assert isinstance(dead, DeadLetter)
    assert reason in dead.reason and dead.reason.startswith("jetstream: ")
    assert (dead.raw, dead.received_at, dead.source) == (raw, NOW, "jetstream")
    assert (frame.time_us is not None) == has_time  # a readable time still moves the cursor


def test_oversized_frame_and_invalid_event_are_dead_letters() -> None:
    huge = b'{"did":"did:plc:x","time_us":1,"kind":"commit","pad":"' + b"x" * (1 << 20) + b'"}'
    assert "too large" in map_frame(huge, NOW).items[0].reason
    event = {"id": "x", "platform": "bluesky", "kind": "post", "created_at": NOW, "author": {}}
    dead = finalize(event, b"raw", NOW)
    assert isinstance(dead, DeadLetter) and "author.id" in dead.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-28T20:00:00.000Z", datetime(2026, 5, 28, 20, tzinfo=UTC)),
        ("2026-05-28T22:00:00+02:00", datetime(2026, 5, 28, 20, tzinfo=UTC)),
        ("2026-05-28T20:00:00.123456789Z", datetime(2026, 5, 28, 20, 0, 0, 123456, tzinfo=UTC)),
        ("2026-05-28T20:04:59Z", datetime(2026, 5, 28, 20, 4, 59, tzinfo=UTC)),  # within skew
        ("2026-05-28T20:05:01Z", None),  # beyond 300 s ahead of time_us
        ("2026-05-28T20:00:00", None),  # no offset
        ("yesterday", None),
        (1780000000, None),
        (None, None),
        ("9999-12-31T23:59:59-01:00", None),  # overflows on conversion to UTC
        ("0001-01-01T00:00:00+01:00", None),
    ],
)
def test_record_time(value: object, expected: datetime | None) -> None:
    server_time = datetime(2026, 5, 28, 20, tzinfo=UTC)
    assert record_time(value, server_time, 300.0) == (expected or server_time)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"at://{ALICE}/{POST}/3k", (ALICE, POST, "3k")),
        (f"at://{ALICE}", (ALICE, "", "")),
        ("at:///x/y", None),
        ("https://bsky.app/profile/x", None),
        (None, None),
    ],
)
def test_parse_at_uri(uri: object, expected: tuple[str, str, str] | None) -> None:
    assert parse_at_uri(uri) == expected


def test_facet_mentions_skip_bad_facets_and_duplicates() -> None:
    text = "hi @a.b and @a.b"
    facets: list[Any] = [
        "junk",
        {"features": "junk"},
        {"features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:a"}]},
        {
            "index": {"byteStart": 12, "byteEnd": 16},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:a"}],
        },
        {"index": {"byteStart": 3, "byteEnd": 7}, "features": [{"$type": "x#tag", "tag": "t"}]},
    ]
    assert facet_mentions(facets, text) == [{"id": "did:plc:a", "handle": None}]
    assert facet_mentions(None, text) == []


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


def test_profile_cache_ttl_and_lru() -> None:
    cache = ProfileCache(max_size=2)
    cache.put("a", Profile("a.test", 10), now=0, ttl=10)
    cache.put("b", Profile("b.test", 20), now=0, ttl=10)
    assert cache.get("a", 5) == Profile("a.test", 10)  # touches a
    cache.put("c", Profile(None, None), now=5, ttl=1)  # evicts b, the least recently used
    assert (cache.known("b", 5), cache.known("c", 5.5), cache.known("c", 6)) == (False, True, False)
    assert cache.get("a", 10) is None and len(cache) == 0


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.4) is False and bucket.take(0.5) is True


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="reconnect_max_seconds"):
        JetstreamSettings(reconnect_initial_seconds=5, reconnect_max_seconds=1)
    with pytest.raises(ValueError):
        JetstreamSettings(profiles_batch_size=26)
    with pytest.raises(ValueError):
        JetstreamSettings(profiles_hold_ms=5_000)


# -- real captured frames ------------------------------------------------------------------------


def real_lines(name: str) -> list[bytes]:
    path = REAL_DIR / name
    if not path.is_file():
        pytest.skip(f"shared fixtures absent: {path}")
    return path.read_bytes().splitlines()


@pytest.mark.shared
def test_real_corpus_maps_every_frame() -> None:
    lines = real_lines("corpus_expected_v1.jsonl") + real_lines("subscribe_golden_v1.jsonl")
    kinds: Counter[str] = Counter()
    for raw in lines:
        obj = orjson.loads(raw)
        items = mapped(raw)
        assert not [i for i in items if isinstance(i, DeadLetter)], raw
        commit = obj.get("commit", {})
        collection, op_ = commit.get("collection"), commit.get("operation")
        for item in items:
            kinds[type(item).__name__ if not isinstance(item, SocialEvent) else item.kind] += 1
            if isinstance(item, SocialEvent):
                assert item.id == f"at://{obj['did']}/{collection}/{commit['rkey']}"
                assert item.author.id == obj["did"]
                record = commit["record"]
                if collection == POST:
                    assert item.text == record["text"]
                    assert (item.kind == "reply") == ("reply" in record)
                elif collection == "app.bsky.graph.follow":
                    assert item.target is not None and item.target.id == record["subject"]
                else:
                    assert item.target is not None
                    assert record["subject"]["uri"].startswith(f"at://{item.target.id}/")
        if collection not in {
            POST,
            "app.bsky.feed.like",
            "app.bsky.feed.repost",
            "app.bsky.graph.follow",
        } or (op_ == "delete" and collection != POST):
            assert items == []
    # 152 + 10 real frames: counts from the capture manifest (PROVENANCE.txt)
    assert kinds == {"like": 106, "repost": 16, "post": 9, "reply": 9, "follow": 7, "Withdrawal": 1}


@pytest.mark.shared
def test_real_corpus_through_the_websocket_source() -> None:
    lines = real_lines("corpus_expected_v1.jsonl")
    expected = [i for raw in lines for i in mapped(raw)]
    with JetstreamServer(lines) as server:
        source = JetstreamSource(server.url, fast(max_events=len(expected)), batch_size=16)
        out: list[Any] = []
        flow = Dataflow("jetstream_real")
        op.output("out", op.input("in", flow, source), TestingSink(out))
        run_main(flow)
    assert [(type(i).__name__, getattr(i, "id", None)) for i in out] == [
        (type(i).__name__, getattr(i, "id", None)) for i in expected
    ]
    assert out == expected
    part = source.partitions[0]
    # the cursor is the newest time_us delivered (the capture is not strictly ordered)
    assert part.snapshot() == max(orjson.loads(raw)["time_us"] for raw in lines)


# -- the source against a local Jetstream -------------------------------------------------------


def part_for(
    url: str, settings: JetstreamSettings, batch_size: int, resume: int | None = None
) -> FeedPartition[int]:
    """Build the source's partition as Bytewax would."""
    return JetstreamSource(url, settings, batch_size).build_part("in", "jetstream", resume)


def synthetic(
    n: int, t0: int = 1_780_000_000_000_000, step_us: int = 10_000, authors: int = 7
) -> list[bytes]:
    """n post frames, `step_us` apart, by `authors` distinct accounts."""
    frames = []
    for i in range(n):
        t = t0 + i * step_us
        frames.append(
            orjson.dumps(
                {
                    "did": did(f"user{i % authors}"),
                    "time_us": t,
                    "kind": "commit",
                    "commit": {
                        "rev": f"r{i}",
                        "operation": "create",
                        "collection": POST,
                        "rkey": f"k{i:05d}",
                        "record": {
                            "$type": POST,
                            "createdAt": time_us_to_datetime(t).isoformat(),
                            "text": f"post {i}",
                        },
                        "cid": f"c{i}",
                    },
                }
            )
        )
    return frames


def test_own_fixture_through_run_main() -> None:
    expected = [i for raw in OWN_FRAMES for i in mapped(raw)]
    with JetstreamServer(OWN_FRAMES) as server:
        source = JetstreamSource(server.url, fast(max_events=len(expected)), batch_size=4)
        out: list[Any] = []
        flow = Dataflow("jetstream_own")
        op.output("out", op.input("in", flow, source), TestingSink(out))
        run_main(flow)
        assert server.connections[0]["query"]["wantedCollections"] == [
            POST,
            "app.bsky.feed.repost",
            "app.bsky.feed.like",
            "app.bsky.graph.follow",
        ]
    strip = lambda i: (type(i).__name__, getattr(i, "id", None), getattr(i, "reason", None))  # noqa: E731
    assert [strip(i) for i in out] == [strip(i) for i in expected]
    assert Counter(type(i).__name__ for i in out) == {
        "SocialEvent": 12,
        "DeadLetter": 7,
        "Withdrawal": 1,
        "AccountPurge": 1,
    }
    metrics = source.partitions[0].metrics
    assert (metrics.frames, metrics.ignored, metrics.dead_letters) == (25, 4, 7)


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


def test_max_events_ends_the_source() -> None:
    with JetstreamServer(synthetic(20)) as server:
        part = part_for(server.url, fast(max_events=7), batch_size=3)
        items = drain(part, lambda got: False, timeout=3)
    assert len(items) == 7
    with pytest.raises(StopIteration):
        part.next_batch()
    assert not part.reader.alive


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


def test_small_queue_applies_backpressure_without_loss() -> None:
    frames = synthetic(200)
    with JetstreamServer(frames) as server:
        part = part_for(server.url, fast(queue_size=4), batch_size=3)
        try:
            items = drain(part, lambda got: len(got) >= 200)
        finally:
            part.close()
    assert [i.id.rsplit("/", 1)[1] for i in items] == [f"k{i:05d}" for i in range(200)]


# -- follower lookup -----------------------------------------------------------------------------


def test_profiles_fill_followers_in_batches_with_cache() -> None:
    frames = synthetic(60)  # 7 distinct authors, posts
    profiles = {did(f"user{i}"): (f"user{i}.bsky.social", 1000 * i) for i in range(7)}
    # frames trickle in, so later events find their author in the cache
    with ProfilesServer(profiles) as appview, JetstreamServer(frames, frame_delay=0.003) as server:
        settings = fast(profiles_enabled=True, profiles_url=appview.url, profiles_batch_wait_ms=20)
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 60)
        finally:
            part.close()
        requests = appview.requests
    assert len(items) == 60
    by_author = {i.author.id: (i.author.handle, i.author.followers) for i in items}
    assert by_author == profiles
    # batched (each request names up to 25 actors) and cached (each actor asked once)
    asked = [a for r in requests for a in r]
    assert sorted(asked) == sorted(profiles) and all(len(r) <= 25 for r in requests)
    assert part.metrics.profile_cache_hits >= 30


def test_profile_lookup_failure_lets_events_flow_without_followers() -> None:
    with ProfilesServer({}, fail=True) as appview, JetstreamServer(synthetic(20)) as server:
        settings = fast(profiles_enabled=True, profiles_url=appview.url, profiles_batch_wait_ms=5)
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 20)
        finally:
            part.close()
    assert len(items) == 20 and all(i.author.followers is None for i in items)
    assert part.metrics.profile_failures >= 1


def test_slow_profile_lookup_holds_events_only_briefly() -> None:
    profiles = {did(f"user{i}"): ("h", 5) for i in range(7)}
    with ProfilesServer(profiles, delay=1.5) as appview, JetstreamServer(synthetic(10)) as server:
        settings = fast(
            profiles_enabled=True,
            profiles_url=appview.url,
            profiles_hold_ms=100,
            profiles_timeout_seconds=3.0,
        )
        part = part_for(server.url, settings, batch_size=100)
        try:
            started = time.monotonic()
            items = drain(part, lambda got: len(got) >= 10, timeout=1.2)
            elapsed = time.monotonic() - started
        finally:
            part.close()
    assert len(items) == 10 and elapsed < 1.2  # released at the hold deadline, not the answer
    assert all(i.author.followers is None for i in items)
    assert part.metrics.profile_timeouts >= 1


def test_profile_lookups_are_rate_limited() -> None:
    frames = synthetic(40, step_us=1000, authors=40)  # every frame needs its own lookup
    with ProfilesServer({}) as appview, JetstreamServer(frames) as server:
        settings = fast(
            profiles_enabled=True,
            profiles_url=appview.url,
            profiles_batch_size=1,
            profiles_batch_wait_ms=0,
            profiles_requests_per_second=1.0,
        )
        part = part_for(server.url, settings, batch_size=100)
        try:
            items = drain(part, lambda got: len(got) >= 40)
        finally:
            part.close()
    assert len(items) == 40
    assert part.metrics.profile_rate_limited >= 30 and len(appview.requests) <= 5


def test_reader_cursor_helper() -> None:
    reader = JetstreamReader("ws://x", JetstreamSettings(rewind_seconds=2), resume_cursor=None)
    assert reader.connect_cursor() is None
    reader.position_seen = 5_000_000
    assert reader.connect_cursor() == 3_000_000
    reader.position_seen = 1
    assert reader.connect_cursor() == 0
    assert time_us_to_datetime(1) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1)


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


def test_dead_letters_of_big_frames_keep_an_excerpt_only() -> None:
    from operators.events import RAW_EXCERPT_BYTES

    huge = b'{"did": "did:plc:x", "time_us": 1, "kind": "commit", "pad": "' + b"p" * (3 << 20)
    frame = map_frame(huge + b'"', datetime.now(UTC))
    [dead] = frame.items
    assert isinstance(dead, DeadLetter) and len(dead.raw) == RAW_EXCERPT_BYTES
