"""End to end: a local Jetstream-like server streams a conversation in which an influential account
turns negative; the whole flow (`--input jetstream:ws://...`) runs into the real Redis and the
alert appears in `{prefix}alerts`. Followers come from a local getProfiles server."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import run_main
from feed_servers import JetstreamServer, ProfilesServer, jetstream_commit

from config.settings import load_settings
from connectors.jetstream import map_frame
from flows.pipeline import build_flow

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
    redis_url: str, redis_prefix: str
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
    redis_url: str, redis_prefix: str, bad: bytes
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
