"""End to end: local Jetstream-like and Mastodon-like servers stream conversations in which an
influential account turns negative; the whole flow (`--input jetstream:ws://...`,
`--input mastodon:http://...`) runs into the real Redis and the alert appears in `{prefix}alerts`.
Followers come from a local getProfiles server (Bluesky) or the statuses (Mastodon).

The servers break their connections mid-stream: Jetstream is resumed at a rewound cursor, so the
flow receives duplicates and must count every post once; the Mastodon stream resumes where it is.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from bytewax.inputs import Source
from bytewax.testing import run_main
from feed_servers import (
    FAST_FEED,
    JetstreamServer,
    ProfilesServer,
    SseServer,
    jetstream_commit,
    wait_until,
)
from private_redis import THREAD_PREFIX
from redis_helpers import stream_alerts

from config.feeds import JetstreamSettings
from config.settings import Settings, load_settings
from connectors.feed_runtime import FeedSource
from connectors.inputs import make_source
from connectors.jetstream import JetstreamSource
from connectors.jetstream_frames import map_frame
from connectors.mastodon_statuses import html_to_text
from connectors.redis_client import customer_key, dlq_key
from flows.pipeline import build_flow
from operators.scoring import score_texts

POST = "app.bsky.feed.post"
VIP = "did:plc:vipvipvipvipvipvipvipvipv"
GRUMPY = "did:plc:grumpygrumpygrumpygrumpy"  # unhappy, but nobody listens
HAPPY = "Great point, thanks for sharing"
ANGRY = [
    "I hate everything about this company. Scam.",
    "This is the worst service ever. I am furious and disgusted with Acme.",
    "Acme lost my order again. Terrible, awful, horrible support. Never again!",
]


def fan(i: int) -> str:
    return f"did:plc:fan{i:021d}"


def conversation(t0_us: int) -> tuple[list[bytes], dict[str, str]]:
    """The frames, and the ids of the posts the assertions name."""
    frames: list[bytes] = []
    clock = [t0_us]

    def at() -> tuple[int, str]:
        clock[0] += 1_000_000  # one second apart
        created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=clock[0])
        return clock[0], created.isoformat().replace("+00:00", "Z")

    def post(did: str, rkey: str, text: str, **record: Any) -> str:
        t, created = at()
        frames.append(
            jetstream_commit(did, t, POST, rkey, {"createdAt": created, "text": text, **record})
        )
        return f"at://{did}/{POST}/{rkey}"

    ids: dict[str, str] = {}
    # the account's first post is angry, and deleted at once: it must never count
    ids["deleted"] = post(VIP, "vip0", ANGRY[0])
    t, _ = at()
    frames.append(jetstream_commit(VIP, t, POST, "vip0", operation="delete"))
    ids["calm"] = post(VIP, "vip1", "Heading to the Acme store to pick up my order.")
    calm_ref = {"uri": ids["calm"], "cid": "bafyreivip1"}
    # a crowd replies, reposts, likes and mentions: the account is central
    for i in range(40):
        post(fan(i), f"r{i}", HAPPY, reply={"parent": calm_ref, "root": calm_ref})
        t, created = at()
        kind = "app.bsky.feed.repost" if i % 2 else "app.bsky.feed.like"
        frames.append(
            jetstream_commit(fan(i), t, kind, f"x{i}", {"createdAt": created, "subject": calm_ref})
        )
    post(GRUMPY, "g1", ANGRY[1])
    post(GRUMPY, "g2", ANGRY[2])
    # with the deleted post withdrawn, this is the post that makes the rule true (calm + angry);
    # had the delete been missed, the calm post itself would have fired it (deleted + calm)
    ids["trigger"] = post(VIP, "vip2", ANGRY[1])
    ids["later"] = post(VIP, "vip3", ANGRY[2])  # within the cooldown: no second alert
    return frames, ids


def test_influential_account_turning_negative_raises_an_alert(
    redis_url: str, redis_prefix: str, no_leftover_threads: None
) -> None:
    t0 = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp() * 1_000_000)
    frames, ids = conversation(t0)
    received = datetime.now(UTC)
    items = sum(len(f.events) + len(f.items) for f in (map_frame(raw, received) for raw in frames))
    profiles = {VIP: ("vip.example.com", 48_000), GRUMPY: ("grumpy.example.com", 3)}
    profiles |= {fan(i): (f"fan{i}.example.com", 10 + i) for i in range(40)}
    with ProfilesServer(profiles) as appview, JetstreamServer(frames) as server:
        settings = load_settings(
            overrides={
                "input": f"jetstream:{server.url}",
                "redis": {"url": redis_url, "prefix": redis_prefix},
                "jetstream": {
                    "max_events": items,
                    "idle_timeout_seconds": 10.0,  # a safety net: the run must end
                    "profiles_enabled": True,
                    "profiles_url": appview.url,
                    "profiles_hold_ms": 1_000,  # generous: the test asserts followers arrived
                    "poll_interval_ms": 1,
                },
                "flow": {"epoch_interval_seconds": 0.2},
            },
            environ={},
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                run_main(build_flow(settings), epoch_interval=timedelta(seconds=0.2))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        runner = threading.Thread(target=run, name="e2e-flow")
        started = time.monotonic()
        runner.start()
        runner.join(30)
        assert not runner.is_alive(), "the flow did not end"
        assert not errors, errors
        assert server.connections[0]["query"]["wantedCollections"]
    assert time.monotonic() - started < 30

    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(f"{redis_prefix}alerts")
    finally:
        client.close()
    alerts = [orjson.loads(fields[b"alert"]) for _, fields in entries]
    assert [a["subject"] for a in alerts] == [f"bluesky:{VIP}"], alerts
    data = alerts[0]["data"]
    assert data["trigger_event_id"] == ids["trigger"]
    assert data["platform"] == "bluesky" and data["handle"] == "vip.example.com"
    assert data["influence"]["followers"] == 48_000
    evidence = {e["id"] for e in data["evidence"]}
    assert {ids["calm"], ids["trigger"]} <= evidence
    assert ids["deleted"] not in evidence  # withdrawn by the delete


@pytest.mark.parametrize("bad", [b"not json", b'{"did":"did:plc:x","kind":"commit"}'])
def test_malformed_frames_reach_the_dead_letter_stream(
    redis_url: str, redis_prefix: str, bad: bytes, no_leftover_threads: None
) -> None:
    frames = [bad]
    with JetstreamServer(frames) as server:
        settings = load_settings(
            overrides={
                "input": f"jetstream:{server.url}",
                "redis": {"url": redis_url, "prefix": redis_prefix},
                "jetstream": {"max_events": 1, "idle_timeout_seconds": 10.0},
            },
            environ={},
        )
        run_main(build_flow(settings), epoch_interval=timedelta(seconds=0.2))
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(f"{redis_prefix}dlq")
    finally:
        client.close()
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"raw"] == bad and fields[b"reason"].startswith(b"jetstream: ")


# -- shared helpers ----------------------------------------------------------------------------

FLOW_TIMEOUT = 10.0
"""Longest a flow may run; every scenario below ends in about two seconds."""


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Fail the test if it leaves a thread running (servers, readers, flows)."""
    before = set(threading.enumerate())
    yield

    def extra() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(THREAD_PREFIX)
        ]

    assert wait_until(lambda: not extra(), timeout=5), [t.name for t in extra()]


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
# -- Jetstream: drops, cursor rewind, duplicates -----------------------------------------------

LOUD = "did:plc:loudloudloudloudloudloudl"
CALM_TEXT = "Good morning everyone"  # mildly positive
TO_DELETE_TEXT = "This is the worst service ever. I am furious and disgusted with Acme."
NEGATIVE_TEXT = "Acme refund denied. Horrible, dishonest company, I am angry."
TRIGGER_TEXT = "Acme lost my order again. Terrible, awful, horrible support. Never again!"
LATER_TEXT = "I hate everything about this company. Scam."


@dataclass
class Script:
    """Builds a Jetstream stream frame by frame, one second apart, and remembers which posts are
    live at the end (the expected window contents)."""

    t_us: int
    frames: list[bytes] = field(default_factory=list)
    live: dict[str, tuple[str, str]] = field(default_factory=dict)  # post uri -> (author, text)

    def _tick(self) -> tuple[int, str]:
        self.t_us += 1_000_000
        created = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.t_us)
        return self.t_us, created.isoformat().replace("+00:00", "Z")

    @property
    def last(self) -> int:
        """Index of the newest frame."""
        return len(self.frames) - 1

    def post(self, did: str, rkey: str, text: str, **record: Any) -> str:
        """A post (or a reply, with `reply=`); returns its at:// uri."""
        t, created = self._tick()
        self.frames.append(
            jetstream_commit(did, t, POST, rkey, {"createdAt": created, "text": text, **record})
        )
        uri = f"at://{did}/{POST}/{rkey}"
        self.live[uri] = (did, text)
        return uri

    def delete(self, did: str, rkey: str) -> None:
        """The author deletes a post."""
        t, _ = self._tick()
        self.frames.append(jetstream_commit(did, t, POST, rkey, operation="delete"))
        del self.live[f"at://{did}/{POST}/{rkey}"]

    def crowd(self, i: int, subject: str) -> None:
        """Fan i replies to `subject` and likes or reposts it: background traffic."""
        ref = {"uri": subject, "cid": "bafyreisubject"}
        self.post(fan(i), f"r{i}", HAPPY, reply={"parent": ref, "root": ref})
        t, created = self._tick()
        kind = "app.bsky.feed.repost" if i % 2 else "app.bsky.feed.like"
        self.frames.append(
            jetstream_commit(fan(i), t, kind, f"x{i}", {"createdAt": created, "subject": ref})
        )

    def posts_by(self) -> Counter[str]:
        """Live posts per author: what each author's window must count."""
        return Counter(author for author, _ in self.live.values())


REWIND_SECONDS = 20.0
"""The source's rewind on reconnect: 20 frames of this stream."""


def reconnect_conversation(t0_us: int) -> tuple[Script, dict[str, str], dict[str, int]]:
    """The stream, the ids of the posts the assertions name, and the indexes of key frames."""
    s = Script(t0_us)
    ids: dict[str, str] = {}
    at: dict[str, int] = {}
    ids["calm"] = s.post(LOUD, "calm", CALM_TEXT)
    for i in range(10):
        s.crowd(i, ids["calm"])
    s.post(GRUMPY, "g1", ANGRY[0])
    # Deleted before the account's next post: it must never count. It lies within the rewind
    # of the first drop, so its create frame is delivered a second time after the reconnect; if
    # that duplicate reached the window, the window {calm, deleted, negative} would be unhappy
    # and an alert would fire on the deleted post.
    ids["deleted"] = s.post(LOUD, "gone", TO_DELETE_TEXT)
    at["deleted"] = s.last
    s.crowd(10, ids["calm"])
    s.delete(LOUD, "gone")
    s.crowd(11, ids["calm"])
    ids["negative"] = s.post(LOUD, "neg", NEGATIVE_TEXT)  # {calm, negative}: not yet unhappy
    for i in range(12, 15):
        s.crowd(i, ids["calm"])
    at["drop1"] = s.last
    for i in range(15, 18):
        s.crowd(i, ids["calm"])
    s.post(GRUMPY, "g2", ANGRY[2])
    ids["trigger"] = s.post(LOUD, "trig", TRIGGER_TEXT)  # {calm, negative, trigger}: unhappy
    at["trigger"] = s.last
    for i in range(18, 21):
        s.crowd(i, ids["calm"])
    at["drop2"] = s.last  # the trigger is replayed after this drop: no second alert
    ids["later"] = s.post(LOUD, "later", LATER_TEXT)  # within the cooldown: no second alert
    for i in range(21, 24):
        s.crowd(i, ids["calm"])
    assert at["drop1"] - at["deleted"] < REWIND_SECONDS  # the rewind reaches the deleted post
    assert at["drop2"] - at["trigger"] < REWIND_SECONDS
    return s, ids, at


def test_jetstream_reconnects_with_rewind_count_every_post_once(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis, no_leftover_threads: None
) -> None:
    calm, deleted, negative, trigger = compounds(
        [CALM_TEXT, TO_DELETE_TEXT, NEGATIVE_TEXT, TRIGGER_TEXT]
    )
    # The scenario's premises: only the trigger makes the window unhappy, unless the deleted
    # post is counted (then the rule holds one post earlier, or on the deleted post itself).
    assert (calm + deleted) / 2 > RULE and (calm + negative) / 2 > RULE
    assert (calm + deleted + negative) / 3 <= RULE
    assert (calm + negative + trigger) / 3 <= RULE

    t0 = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp() * 1_000_000)
    script, ids, at = reconnect_conversation(t0)
    frames = script.frames
    profiles = {LOUD: ("loud.example.com", 148_000), GRUMPY: ("grumpy.example.com", 3)}
    profiles |= {fan(i): (f"fan{i}.example.com", 10 + i) for i in range(24)}
    drops = {0: at["drop1"], 1: at["drop2"]}
    with (
        ProfilesServer(profiles) as appview,
        # Paced like a live stream, so that the first profile lookup has answered long before
        # the first drop (see test_reconnect_before_the_first_profile_answer_keeps_the_cursor).
        JetstreamServer(frames, drop_after_index=drops, frame_delay=0.01) as server,
    ):
        settings = load_settings(
            overrides={
                **COMMON,
                "input": f"jetstream:{server.url}",
                "redis": {"url": redis_url, "prefix": redis_prefix},
                "jetstream": {
                    **FAST_FEED,
                    # Duplicates make the number of delivered items unknowable up front: the
                    # source ends once the stream has been quiet for a second.
                    "idle_timeout_seconds": 1.0,
                    "rewind_seconds": REWIND_SECONDS,
                    "profiles_enabled": True,
                    "profiles_url": appview.url,
                    "profiles_hold_ms": 500,
                    "profiles_batch_wait_ms": 0,
                },
            },
            environ={},
        )
        source = live_source(settings, redis_url)
        run_flow(settings, source)
        connections, sent = server.connections, server.sent
        ports = (server.port, int(appview.url.rsplit(":", 1)[1]))
    for port in ports:
        assert_closed(port)

    # The stream broke twice and was resumed at a rewound cursor: duplicates were delivered.
    assert len(connections) == 3
    assert connections[0]["cursor"] is None
    assert all(c["cursor"] is not None for c in connections[1:])
    assert frames[at["deleted"]] in sent[0] and frames[at["deleted"]] in sent[1]
    assert frames[at["trigger"]] in sent[1] and frames[at["trigger"]] in sent[2]
    assert sum(map(len, sent)) > len(frames)
    metrics = source.partitions[0].metrics
    assert metrics.reconnects == 2
    assert metrics.frames == sum(map(len, sent))  # the client read every frame sent

    alerts = stream_alerts(redis_client, redis_prefix)
    assert [a["subject"] for a in alerts] == [f"bluesky:{LOUD}"], alerts
    data = alerts[0]["data"]
    assert data["trigger_event_id"] == ids["trigger"]
    assert data["severity"] == "critical"  # 148k followers: no escalation can follow
    assert data["influence"]["followers"] == 148_000
    evidence = [e["id"] for e in data["evidence"]]
    assert len(evidence) == len(set(evidence))
    assert set(evidence) == {ids["calm"], ids["negative"], ids["trigger"]}
    assert data["sentiment"]["posts"] == 3
    assert data["sentiment"]["mean"] == pytest.approx((calm + negative + trigger) / 3, abs=1e-4)

    # Every account's view counts its live posts exactly once (replies were replayed too).
    expected = script.posts_by()
    assert expected[LOUD] == 4 and expected[GRUMPY] == 2
    for author, posts in expected.items():
        assert sentiment_view(redis_client, redis_prefix, f"bluesky:{author}")["posts"] == posts
    loud_texts = [text for author, text in script.live.values() if author == LOUD]
    view = sentiment_view(redis_client, redis_prefix, f"bluesky:{LOUD}")
    assert view["mean"] == pytest.approx(statistics.fmean(compounds(loud_texts)), abs=1e-4)
    assert redis_client.xlen(dlq_key(redis_prefix)) == 0


def test_reconnect_before_the_first_profile_answer_keeps_the_cursor(
    no_leftover_threads: None,
) -> None:
    t0 = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp() * 1_000_000)
    script = Script(t0)
    for i in range(3):
        script.post(LOUD, f"p{i}", CALM_TEXT)
    first_drop_time = orjson.loads(script.frames[1])["time_us"]
    with (
        ProfilesServer({LOUD: ("loud.example.com", 148_000)}, delay=0.5) as appview,
        JetstreamServer(script.frames, drop_after_index={0: 1}) as server,
    ):
        settings = JetstreamSettings(
            **FAST_FEED,
            profiles_enabled=True,
            profiles_url=appview.url,
            profiles_hold_ms=1_000,
            profiles_batch_wait_ms=0,
        )
        part = JetstreamSource(server.url, settings, batch_size=10).build_part(
            "ingest", "jetstream", None
        )
        try:
            # Frames 0 and 1 were read and are held (the lookup takes 0.5 s) when the drop comes.
            assert wait_until(lambda: len(server.connections) >= 2, timeout=3)
        finally:
            part.close()
        connections = server.connections
    rewind_us = int(settings.rewind_seconds * 1_000_000)
    assert connections[1]["cursor"] == first_drop_time - rewind_us


# -- Mastodon: delete, edit, dropped SSE connection --------------------------------------------

M_LOUD = "110000000000000042"
M_CALM = "110000000000000007"
M_GRUMPY = "110000000000000013"
ACCOUNTS = {
    M_LOUD: ("loud", 25_000),  # over the 10k follower threshold, under the critical 100k
    M_CALM: ("calm", 80),
    M_GRUMPY: ("grumpy", 12),  # unhappy, but nobody listens
}
FIRST_HTML = "<p>The Acme headphones are okay I guess.</p>"
EDITED_HTML = (
    "<p>Acme headphones broke after a day. Awful quality, total rip-off, I&#39;m furious.</p>"
)
DELETED_HTML = "<p>Acme refund denied. Horrible, dishonest company, I am angry.</p>"
THIRD_HTML = "<p>Acme lost my order again. Terrible, awful, horrible support.</p>"
LAST_HTML = '<p>Still waiting on <span class="h-card">@Acme</span>. Not happy.</p>'


def m_status(
    status_id: str, account_id: str, created: datetime, html: str, edited: datetime | None = None
) -> dict[str, Any]:
    """A Mastodon Status, with the fields the mapping reads."""
    username, followers = ACCOUNTS[account_id]

    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "id": status_id,
        "created_at": iso(created),
        "edited_at": None if edited is None else iso(edited),
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"https://social.example/users/{username}/statuses/{status_id}",
        "url": f"https://social.example/@{username}/{status_id}",
        "content": html,
        "account": {
            "id": account_id,
            "username": username,
            "acct": username,
            "followers_count": followers,
        },
        "mentions": [],
        "reblog": None,
    }


def sse(event: str, payload: dict[str, Any] | str) -> str:
    """One SSE frame as Mastodon's streaming server writes it."""
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"event: {event}\ndata: {data}\n\n"


def mastodon_conversation(t0: datetime) -> tuple[list[str], dict[str, str], dict[str, int]]:
    """SSE frames, the status ids the assertions name, and where the connection drops (frames
    sent on connection i before it breaks)."""
    ids = {
        "first": "112000000000000101",  # okay-ish, later edited to furious
        "deleted": "112000000000000103",
        "third": "112000000000000106",
        "last": "112000000000000110",
    }
    at = {k: t0 + timedelta(seconds=10 * n) for n, k in enumerate("abcdefghij")}
    frames = [
        sse("update", m_status(ids["first"], M_LOUD, at["a"], FIRST_HTML)),
        sse("update", m_status("112000000000000102", M_CALM, at["b"], "<p>Lovely day!</p>")),
        sse("update", m_status(ids["deleted"], M_LOUD, at["c"], DELETED_HTML)),
        sse("update", m_status("112000000000000104", M_GRUMPY, at["d"], THIRD_HTML)),
        sse("delete", ids["deleted"]),
        # -- connection 0 breaks here
        sse("update", m_status(ids["third"], M_LOUD, at["f"], THIRD_HTML)),
        ":thump\n",
        sse("update", m_status("112000000000000107", M_GRUMPY, at["g"], DELETED_HTML)),
        sse("status.update", m_status(ids["first"], M_LOUD, at["a"], EDITED_HTML, at["h"])),
        # -- connection 1 breaks here
        sse("update", m_status(ids["last"], M_LOUD, at["i"], LAST_HTML)),
        sse("update", m_status("112000000000000111", M_CALM, at["j"], "<p>Good coffee.</p>")),
    ]
    return frames, ids, {0: 5, 1: 3}


def test_mastodon_delete_edit_and_dropped_stream_through_the_flow(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis, no_leftover_threads: None
) -> None:
    first, edited, deleted, third, last = compounds(
        [html_to_text(h) for h in (FIRST_HTML, EDITED_HTML, DELETED_HTML, THIRD_HTML, LAST_HTML)]
    )
    # The scenario's premises: no alert until the edit, unless the deleted status is counted
    # (then the third status fires it); the edit alone turns the account unhappy.
    assert first > 0 > edited and deleted < 0 and third < 0
    assert (first + deleted) / 2 > RULE and (first + third) / 2 > RULE
    assert (first + deleted + third) / 3 <= RULE
    assert (edited + third) / 2 <= RULE

    t0 = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    frames, ids, drops = mastodon_conversation(t0)
    items = sum(1 for f in frames if f.startswith("event:"))  # each maps to one item
    with SseServer("".join(frames), drops=drops) as server:
        settings = load_settings(
            overrides={
                **COMMON,
                "input": f"mastodon:{server.url('/api/v1/streaming/public')}",
                "redis": {"url": redis_url, "prefix": redis_prefix},
                "mastodon": {
                    **FAST_FEED,
                    "max_events": items,
                    "idle_timeout_seconds": 5.0,  # a safety net: the run must end
                },
            },
            environ={},
        )
        source = live_source(settings, redis_url)
        run_flow(settings, source)
        requests, served, port = server.requests, server.served, server.port
    assert_closed(port)

    # Two drops, two reconnects, and the statuses after each reconnect still arrived.
    assert len(requests) == 3
    metrics = source.partitions[0].metrics
    assert (metrics.reconnects, metrics.gaps) == (2, 2)
    assert metrics.withdrawals == 1 and metrics.unknown_deletes == 0
    assert any(ids["third"] in block for block in served[1])
    assert any(ids["last"] in block for block in served[2])

    alerts = stream_alerts(redis_client, redis_prefix)
    assert [a["subject"] for a in alerts] == [f"mastodon:{M_LOUD}"], alerts
    data = alerts[0]["data"]
    # The edit made the rule true: the alert fires on the edited status.
    assert data["trigger_event_id"] == ids["first"]
    assert data["handle"] == "loud" and data["influence"]["followers"] == 25_000
    evidence = {e["id"]: e for e in data["evidence"]}
    assert set(evidence) == {ids["first"], ids["third"]}  # the deleted status is gone
    assert evidence[ids["first"]]["compound"] == pytest.approx(edited)
    assert evidence[ids["first"]]["text"] == html_to_text(EDITED_HTML)
    assert data["sentiment"]["posts"] == 2
    assert data["sentiment"]["mean"] == pytest.approx((edited + third) / 2, abs=1e-4)

    # The last status arrived after the second reconnect; the edited status counts once, with
    # its new score.
    view = sentiment_view(redis_client, redis_prefix, f"mastodon:{M_LOUD}")
    assert view["posts"] == 3
    assert view["mean"] == pytest.approx((edited + third + last) / 3, abs=1e-4)
    assert sentiment_view(redis_client, redis_prefix, f"mastodon:{M_GRUMPY}")["posts"] == 2
    assert redis_client.xlen(dlq_key(redis_prefix)) == 0
