"""End to end over a live Jetstream feed that breaks mid-stream: the source resumes at a rewound
cursor, so the flow receives duplicates and must count every post once (deletes included); and a
reconnect while the first profile lookup is still held keeps the cursor of what was read.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from bluesky_conversation import ANGRY, GRUMPY, HAPPY, POST, fan
from feed_flow import COMMON, RULE, assert_closed, compounds, live_source, run_flow, sentiment_view
from feed_plumbing import FAST_FEED, wait_until
from jetstream_server import JetstreamServer, jetstream_commit
from profiles_server import ProfilesServer
from redis_helpers import stream_alerts

from config.feeds import JetstreamSettings
from config.settings import load_settings
from connectors.jetstream import JetstreamSource
from connectors.redis_client import dlq_key

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
