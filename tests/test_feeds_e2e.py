"""End to end: local Jetstream-like and Mastodon-like servers stream conversations in which an
influential account turns negative; the whole flow (`--input jetstream:ws://...`,
`--input mastodon:http://...`) runs into the real Redis and the alert appears in `{prefix}alerts`.
Followers come from a local getProfiles server (Bluesky) or the statuses (Mastodon).

The servers break their connections mid-stream: Jetstream is resumed at a rewound cursor, so the
flow receives duplicates and must count every post once; the Mastodon stream resumes where it is.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
from bluesky_conversation import GRUMPY, VIP, conversation, fan
from bytewax.testing import run_main
from jetstream_server import JetstreamServer
from profiles_server import ProfilesServer

from config.settings import load_settings
from connectors.jetstream_frames import map_frame
from flows.pipeline import build_flow


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
