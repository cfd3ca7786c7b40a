"""Bluesky Jetstream frames: what each becomes (events, withdrawals, purges, dead letters),
record times, at:// URIs and mention facets, on our own fixture and on real captured frames."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from jetstream_helpers import (
    ACME,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    FRANK,
    GINA,
    HELP,
    NOW,
    OWN_FRAMES,
    POST,
    mapped,
    real_lines,
)
from jetstream_helpers import no_reader_threads_left as no_reader_threads_left

from connectors.jetstream_frames import (
    facet_mentions,
    finalize,
    map_frame,
    parse_at_uri,
    record_time,
    time_us_to_datetime,
)
from operators.events import DeadLetter, SocialEvent
from operators.records import AccountPurge, Withdrawal

# -- pure mapping ----------------------------------------------------------------------------------


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


def test_dead_letters_of_big_frames_keep_an_excerpt_only() -> None:
    from operators.events import RAW_EXCERPT_BYTES

    huge = b'{"did": "did:plc:x", "time_us": 1, "kind": "commit", "pad": "' + b"p" * (3 << 20)
    frame = map_frame(huge + b'"', datetime.now(UTC))
    [dead] = frame.items
    assert isinstance(dead, DeadLetter) and len(dead.raw) == RAW_EXCERPT_BYTES


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


# -- real captured frames --------------------------------------------------------------------------


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
